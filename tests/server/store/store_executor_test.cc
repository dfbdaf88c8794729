/* The store and the executor wired the way the RPC layer wires them: job
 * events drive the record, and Kill goes through px_record_kill. */
#include <string.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

#include <gtest/gtest.h>

#include "server/executor/executor.h"
#include "server/store/memory.h"
#include "tests/server/executor/fake_sandbox.h"

namespace {

constexpr int64_t kWaitMs = 10000;

void OnRunning(void *ud, int64_t started_at_ms) {
    px_record_set_running(static_cast<px_record *>(ud), started_at_ms);
}
void OnOutput(void *ud, px_stream stream, const uint8_t *data, size_t len) {
    px_record_append(static_cast<px_record *>(ud), stream, data, len);
}
void OnDone(void *ud, const px_outcome *o) {
    auto *r = static_cast<px_record *>(ud);
    px_record_finish(r, o);
    px_record_unref(r); /* the reference the events held */
}

void KillJob(void *ctx, void *job, px_kill_cause cause) {
    px_executor_kill(static_cast<px_executor *>(ctx), static_cast<px_job *>(job), cause);
}
void UnrefJob(void *job) {
    px_job_unref(static_cast<px_job *>(job));
}
const px_record_job_ops kJobOps = {KillJob, UnrefJob};

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
        store_ = px_memory_store_new(&scfg, nullptr);
        ASSERT_NE(nullptr, store_);
    }
    void TearDown() override {
        px_executor_free(ex_);
        px_store_free(store_);
        fake_sandbox_unref(fake_);
    }

    /* Creates a record, submits `spec` for it and attaches the job. */
    px_record *Start(px_job_spec *spec, bool kill_first = false) {
        px_record *r = px_store_create(store_, "", nullptr, nullptr, nullptr);
        EXPECT_NE(nullptr, r);
        if (kill_first)
            px_record_kill(r, PX_KILL_RPC);
        px_record_ref(r);
        px_job_events ev{};
        ev.ud = r;
        ev.on_running = OnRunning;
        ev.on_output = OnOutput;
        ev.on_done = OnDone;
        px_error err = PX_ERROR_INIT;
        px_job *job = px_executor_submit(ex_, spec, &ev, &err);
        EXPECT_NE(nullptr, job) << err.msg;
        px_record_attach_job(r, &kJobOps, ex_, job);
        return r;
    }

    /* Waits for the record to turn terminal; returns its view. */
    px_record_view WaitTerminal(px_record *r) {
        struct Ctx {
            std::mutex mu;
            std::condition_variable cv;
        } ctx;
        px_watch *w = px_record_watch(r, PX_WATCH_READER,
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

}  // namespace
