/* The store and the executor wired the way pyexecd wires them: the store
 * admits jobs to the executor's runner, job events drive the record, and
 * Kill goes through px_record_kill. */
#include <string.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

#include <gtest/gtest.h>

#include "server/executor/executor.h"
#include "server/executor/runner.h"
#include "server/store/memory.h"
#include "tests/server/executor/fake_sandbox.h"

namespace {

constexpr int64_t kWaitMs = 10000;

class StoreExecutorTest : public ::testing::Test {
  protected:
    void SetUp() override {
        fake_ = fake_sandbox_new();
        px_executor_config ecfg{};
        ecfg.max_concurrent = 1;
        ecfg.max_queue = 4;
        ecfg.output_limit_bytes = 1 << 20;
        ex_ = px_executor_new(&ecfg, fake_sandbox_as_sandbox(fake_), nullptr);
        ASSERT_NE(nullptr, ex_);
        px_store_config scfg{};
        scfg.retention_ms = 60000;
        scfg.max_records = 100;
        scfg.max_readers = 4;
        scfg.runner = px_executor_runner(ex_);
        store_ = px_memory_store_new(&scfg, nullptr);
        ASSERT_NE(nullptr, store_);
    }
    void TearDown() override {
        px_executor_free(ex_);
        px_store_free(store_);
        fake_sandbox_unref(fake_);
    }

    /* Admits `spec` (with `kill_first`: creates the record, kills it, then
     * hands the job to the runner, as a Kill arriving before the job is
     * attached would). */
    px_record *Start(px_job_spec *spec, bool kill_first = false) {
        px_error err = PX_ERROR_INIT;
        bool existed;
        if (!kill_first) {
            px_record *r = px_store_admit(store_, "", nullptr, spec, "test", &existed, &err);
            EXPECT_NE(nullptr, r) << err.msg;
            return r;
        }
        px_record *r = px_store_create(store_, "", nullptr, nullptr, nullptr);
        EXPECT_NE(nullptr, r);
        px_record_kill(r, PX_KILL_RPC);
        px_job_runner run = px_executor_runner(ex_);
        EXPECT_EQ(0, run.ops->submit(run.ctx, r, spec, "test", &err)) << err.msg;
        return r;
    }

    /* Waits for the record to turn terminal; returns its view. */
    px_record_view WaitTerminal(px_record *r) {
        struct Ctx {
            std::mutex mu;
            std::condition_variable cv;
        } ctx;
        px_watch *w = px_record_watch(
            r, PX_WATCH_READER,
            [](void *ud, px_record *) {
                auto *c = static_cast<Ctx *>(ud);
                std::lock_guard<std::mutex> lock(c->mu);
                c->cv.notify_all();
            },
            &ctx, nullptr);
        px_record_view v{};
        std::unique_lock<std::mutex> lock(ctx.mu);
        bool ok = ctx.cv.wait_for(lock, std::chrono::milliseconds(kWaitMs), [&] {
            px_record_view_release(&v);
            px_record_snapshot(r, true, &v, nullptr);
            return px_status_terminal(v.status);
        });
        lock.unlock();
        px_record_unwatch(r, w);
        EXPECT_TRUE(ok);
        return v;
    }

    fake_sandbox *fake_ = nullptr;
    px_executor *ex_ = nullptr;
    px_store *store_ = nullptr;
};

TEST_F(StoreExecutorTest, EventsFillTheRecord) {
    px_record *r = Start(fake_sandbox_spec("print:out", "stderr:err", "exit:2", NULL));
    px_record_view v = WaitTerminal(r);
    EXPECT_EQ(PX_STATUS_COMPLETED, v.status);
    EXPECT_EQ(2, v.outcome.exit_code);
    EXPECT_GT(v.outcome.started_at_ms, 0);
    EXPECT_EQ(std::string("out"), std::string((char *)v.stdout_data, v.stdout_len));
    EXPECT_EQ(std::string("err"), std::string((char *)v.stderr_data, v.stderr_len));
    EXPECT_EQ(6, v.log_len);
    px_record_view_release(&v);
    px_record_unref(r);
}

TEST_F(StoreExecutorTest, KillBeforeAttachEndsQueuedJobOnAttach) {
    px_record *blocker = Start(fake_sandbox_spec("sleep", NULL));
    ASSERT_TRUE(fake_sandbox_wait_runs(fake_, 1, kWaitMs));
    /* Killed before its job exists: attach forwards the kill, the executor
     * ends the queued job synchronously, and on_done finishes the record
     * from inside px_record_attach_job without deadlocking. */
    px_record *r = Start(fake_sandbox_spec("print:never", NULL), /*kill_first=*/true);
    px_record_view v;
    ASSERT_EQ(0, px_record_snapshot(r, true, &v, nullptr));
    EXPECT_EQ(PX_STATUS_KILLED, v.status);
    EXPECT_EQ(PX_REASON_KILLED, v.outcome.reason);
    EXPECT_EQ(0, v.log_len);
    px_record_view_release(&v);

    px_record_kill(blocker, PX_KILL_RPC);
    v = WaitTerminal(blocker);
    EXPECT_EQ(PX_STATUS_KILLED, v.status);
    px_record_view_release(&v);
    EXPECT_EQ(1u, fake_sandbox_runs(fake_));
    px_record_unref(r);
    px_record_unref(blocker);
}

TEST_F(StoreExecutorTest, KillRunningThroughRecord) {
    px_record *r = Start(fake_sandbox_spec("print:x", "sleep", NULL));
    ASSERT_TRUE(fake_sandbox_wait_runs(fake_, 1, kWaitMs));
    px_record_kill(r, PX_KILL_CANCEL);
    px_record_view v = WaitTerminal(r);
    EXPECT_EQ(PX_STATUS_KILLED, v.status);
    EXPECT_EQ(PX_REASON_CLIENT_CANCELLED, v.outcome.reason);
    px_record_view_release(&v);
    px_record_unref(r);
}

} // namespace
