#include "server/executor/executor.h"

#include <string.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/server/executor/fake_sandbox.h"

namespace {

constexpr int64_t kWaitMs = 10000; /* generous upper bound for any event */

/* Records one job's events in order. */
struct Recorder {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::string> events; /* "running", "out:<text>", "err:<text>", "done" */
    std::string out, err;
    int running = 0;
    int done = 0;
    int64_t started_at = 0;
    px_outcome outcome{};
    std::function<void(Recorder *)> on_output_hook;
    std::function<void(Recorder *)> on_done_hook;

    px_job_events Events() {
        px_job_events ev{};
        ev.ud = this;
        ev.on_running = [](void *ud, int64_t started_at_ms) {
            auto *r = static_cast<Recorder *>(ud);
            std::lock_guard<std::mutex> lock(r->mu);
            r->running++;
            r->started_at = started_at_ms;
            r->events.push_back("running");
            r->cv.notify_all();
        };
        ev.on_output = [](void *ud, px_stream stream, const uint8_t *data, size_t len) {
            auto *r = static_cast<Recorder *>(ud);
            {
                std::lock_guard<std::mutex> lock(r->mu);
                std::string s(reinterpret_cast<const char *>(data), len);
                if (stream == PX_STREAM_STDOUT) {
                    r->out += s;
                    r->events.push_back("out:" + s.substr(0, 32));
                } else {
                    r->err += s;
                    r->events.push_back("err:" + s.substr(0, 32));
                }
                r->cv.notify_all();
            }
            if (r->on_output_hook)
                r->on_output_hook(r);
        };
        ev.on_done = [](void *ud, const px_outcome *o) {
            auto *r = static_cast<Recorder *>(ud);
            if (r->on_done_hook)
                r->on_done_hook(r);
            std::lock_guard<std::mutex> lock(r->mu);
            r->done++;
            r->outcome = *o;
            r->events.push_back("done");
            r->cv.notify_all();
        };
        return ev;
    }

    bool WaitDone() {
        std::unique_lock<std::mutex> lock(mu);
        return cv.wait_for(lock, std::chrono::milliseconds(kWaitMs), [&] { return done > 0; });
    }
    bool WaitRunning() {
        std::unique_lock<std::mutex> lock(mu);
        return cv.wait_for(lock, std::chrono::milliseconds(kWaitMs), [&] { return running > 0; });
    }
    int Done() {
        std::lock_guard<std::mutex> lock(mu);
        return done;
    }
};

class ExecutorTest : public ::testing::Test {
  protected:
    void SetUp() override { fake_ = fake_sandbox_new(); }
    void TearDown() override {
        px_executor_free(ex_);
        fake_sandbox_unref(fake_);
    }

    void Start(unsigned max_concurrent = 2, unsigned max_queue = 4,
               uint64_t output_limit = 1 << 20) {
        px_executor_config cfg{};
        cfg.max_concurrent = max_concurrent;
        cfg.max_queue = max_queue;
        cfg.output_limit_bytes = output_limit;
        px_error err = PX_ERROR_INIT;
        ex_ = px_executor_new(&cfg, fake_sandbox_as_sandbox(fake_), &err);
        ASSERT_NE(nullptr, ex_) << err.msg;
    }

    px_job *Submit(px_job_spec *spec, Recorder *rec) {
        px_job_events ev = rec->Events();
        px_error err = PX_ERROR_INIT;
        px_job *job = px_executor_submit(ex_, spec, &ev, &err);
        EXPECT_NE(nullptr, job) << err.msg;
        return job;
    }

    /* Runs a job to its end and returns its recorder's outcome. */
    px_outcome RunToEnd(px_job_spec *spec, Recorder *rec) {
        px_job *job = Submit(spec, rec);
        EXPECT_TRUE(rec->WaitDone());
        px_job_unref(job);
        return rec->outcome;
    }

    fake_sandbox *fake_ = nullptr;
    px_executor *ex_ = nullptr;
};

TEST_F(ExecutorTest, ExitedWithOutputInOrder) {
    Start();
    Recorder rec;
    int64_t before = 0;
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        before = int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
    }
    px_outcome o = RunToEnd(
        fake_sandbox_spec("print:hi", "stderr:oops", "print:there", "exit:3", NULL), &rec);
    EXPECT_EQ(PX_STATUS_COMPLETED, o.status);
    EXPECT_EQ(PX_REASON_EXITED, o.reason);
    EXPECT_TRUE(o.ran);
    EXPECT_EQ(3, o.exit_code);
    EXPECT_FALSE(o.output_truncated);
    EXPECT_EQ(PX_OK, o.error_code);
    EXPECT_STREQ("", o.error);
    EXPECT_GE(o.started_at_ms, before);
    EXPECT_EQ(rec.started_at, o.started_at_ms);
    EXPECT_GE(o.finished_at_ms, o.started_at_ms);
    std::vector<std::string> want = {"running", "out:hi", "err:oops", "out:there", "done"};
    EXPECT_EQ(want, rec.events);
    EXPECT_EQ("hithere", rec.out);
    EXPECT_EQ("oops", rec.err);
}

TEST_F(ExecutorTest, NoStepsExitsZero) {
    Start();
    Recorder rec;
    px_outcome o = RunToEnd(fake_sandbox_spec(NULL), &rec);
    EXPECT_EQ(PX_STATUS_COMPLETED, o.status);
    EXPECT_EQ(PX_REASON_EXITED, o.reason);
    EXPECT_EQ(0, o.exit_code);
    std::vector<std::string> want = {"running", "done"};
    EXPECT_EQ(want, rec.events);
}

TEST_F(ExecutorTest, Timeout) {
    Start();
    Recorder rec;
    px_outcome o = RunToEnd(fake_sandbox_spec("print:x", "timeout", NULL), &rec);
    EXPECT_EQ(PX_STATUS_COMPLETED, o.status);
    EXPECT_EQ(PX_REASON_TIMEOUT, o.reason);
    EXPECT_TRUE(o.ran);
    EXPECT_EQ(137, o.exit_code);
}

TEST_F(ExecutorTest, MemoryLimit) {
    Start();
    Recorder rec;
    px_outcome o = RunToEnd(fake_sandbox_spec("oom", NULL), &rec);
    EXPECT_EQ(PX_STATUS_COMPLETED, o.status);
    EXPECT_EQ(PX_REASON_MEMORY_LIMIT, o.reason);
    EXPECT_EQ(137, o.exit_code);
    EXPECT_EQ(64 * 1024 * 1024, o.peak_memory_bytes);
}

TEST_F(ExecutorTest, BackendFailureBeforeStart) {
    Start();
    struct Case {
        const char *step;
        px_code code;
    } cases[] = {
        {"fail", PX_E_INTERNAL}, {"noimage", PX_E_PRECONDITION}, {"unavailable", PX_E_UNAVAILABLE}};
    for (const Case &c : cases) {
        SCOPED_TRACE(c.step);
        Recorder rec;
        px_outcome o = RunToEnd(fake_sandbox_spec(c.step, NULL), &rec);
        EXPECT_EQ(PX_STATUS_FAILED, o.status);
        EXPECT_EQ(PX_REASON_SANDBOX_ERROR, o.reason);
        EXPECT_FALSE(o.ran);
        EXPECT_EQ(c.code, o.error_code);
        EXPECT_STRNE("", o.error);
        EXPECT_EQ(0, o.started_at_ms);
        EXPECT_GT(o.finished_at_ms, 0);
        std::vector<std::string> want = {"done"};
        EXPECT_EQ(want, rec.events);
    }
    Recorder rec;
    px_outcome o = RunToEnd(fake_sandbox_spec("noimage", NULL), &rec);
    EXPECT_STREQ("fake: image 'fake:image' not found", o.error);
}

TEST_F(ExecutorTest, Lost) {
    Start();
    Recorder rec;
    px_outcome o = RunToEnd(fake_sandbox_spec("print:a", "lost", NULL), &rec);
    EXPECT_EQ(PX_STATUS_FAILED, o.status);
    EXPECT_EQ(PX_REASON_LOST, o.reason);
    EXPECT_FALSE(o.ran);
    EXPECT_EQ(PX_E_INTERNAL, o.error_code);
    EXPECT_STREQ("fake: sandbox vanished", o.error);
    EXPECT_GT(o.started_at_ms, 0);
}

TEST_F(ExecutorTest, KillRpcEndsRunningJob) {
    Start();
    Recorder rec;
    px_job *job = Submit(fake_sandbox_spec("print:a", "sleep", NULL), &rec);
    ASSERT_TRUE(rec.WaitRunning());
    px_executor_kill(ex_, job, PX_KILL_RPC);
    ASSERT_TRUE(rec.WaitDone());
    EXPECT_EQ(PX_STATUS_KILLED, rec.outcome.status);
    EXPECT_EQ(PX_REASON_KILLED, rec.outcome.reason);
    EXPECT_TRUE(rec.outcome.ran);
    EXPECT_EQ(137, rec.outcome.exit_code);
    px_job_unref(job);
}

TEST_F(ExecutorTest, CancelEndsRunningJob) {
    Start();
    Recorder rec;
    px_job *job = Submit(fake_sandbox_spec("sleep", NULL), &rec);
    ASSERT_TRUE(rec.WaitRunning());
    px_executor_kill(ex_, job, PX_KILL_CANCEL);
    ASSERT_TRUE(rec.WaitDone());
    EXPECT_EQ(PX_STATUS_KILLED, rec.outcome.status);
    EXPECT_EQ(PX_REASON_CLIENT_CANCELLED, rec.outcome.reason);
    px_job_unref(job);
}

TEST_F(ExecutorTest, KillBeforeBackendReturnsBeatsTimeout) {
    Start();
    Recorder rec;
    px_job *job = Submit(fake_sandbox_spec("gate:g", "timeout", NULL), &rec);
    ASSERT_TRUE(fake_sandbox_wait_gate(fake_, "g", 1, kWaitMs));
    px_executor_kill(ex_, job, PX_KILL_RPC);
    fake_sandbox_open_gate(fake_, "g");
    ASSERT_TRUE(rec.WaitDone());
    EXPECT_EQ(PX_STATUS_KILLED, rec.outcome.status);
    EXPECT_EQ(PX_REASON_KILLED, rec.outcome.reason);
    px_job_unref(job);
}

TEST_F(ExecutorTest, KillBeforeBackendReturnsBeatsExit) {
    Start();
    Recorder rec;
    px_job *job = Submit(fake_sandbox_spec("gate:g", "exit:0", NULL), &rec);
    ASSERT_TRUE(fake_sandbox_wait_gate(fake_, "g", 1, kWaitMs));
    px_executor_kill(ex_, job, PX_KILL_RPC);
    fake_sandbox_open_gate(fake_, "g");
    ASSERT_TRUE(rec.WaitDone());
    EXPECT_EQ(PX_STATUS_KILLED, rec.outcome.status);
    EXPECT_EQ(PX_REASON_KILLED, rec.outcome.reason);
    EXPECT_EQ(0, rec.outcome.exit_code);
    px_job_unref(job);
}

TEST_F(ExecutorTest, FirstKillCauseWins) {
    Start();
    Recorder rec;
    px_job *job = Submit(fake_sandbox_spec("gate:g", NULL), &rec);
    ASSERT_TRUE(fake_sandbox_wait_gate(fake_, "g", 1, kWaitMs));
    px_executor_kill(ex_, job, PX_KILL_CANCEL);
    px_executor_kill(ex_, job, PX_KILL_RPC);
    fake_sandbox_open_gate(fake_, "g");
    ASSERT_TRUE(rec.WaitDone());
    EXPECT_EQ(PX_STATUS_KILLED, rec.outcome.status);
    EXPECT_EQ(PX_REASON_CLIENT_CANCELLED, rec.outcome.reason);
    px_job_unref(job);
}

TEST_F(ExecutorTest, EarlyEndIsReportedWhileTheWorkerStillCleansUp) {
    Start(1, 4);
    Recorder a, b;
    px_job *ja = Submit(fake_sandbox_spec("print:hi", "ended:3", "gate:cleanup", NULL), &a);
    /* The gate holds run() in its cleanup: the end arrives before it returns. */
    ASSERT_TRUE(a.WaitDone());
    EXPECT_EQ(PX_STATUS_COMPLETED, a.outcome.status);
    EXPECT_EQ(PX_REASON_EXITED, a.outcome.reason);
    EXPECT_EQ(3, a.outcome.exit_code) << "the early result, not run()'s later one";
    EXPECT_EQ(2, a.outcome.cpu_time_ms);
    EXPECT_EQ("hi", a.out);
    EXPECT_EQ(0u, px_executor_active(ex_));

    /* A kill after the early end changes nothing and delivers nothing. */
    px_executor_kill(ex_, ja, PX_KILL_RPC);
    EXPECT_EQ(1, a.Done());

    /* The one worker is still busy: the next job waits for the cleanup. */
    px_job *jb = Submit(fake_sandbox_spec("exit:8", NULL), &b);
    EXPECT_FALSE(fake_sandbox_wait_runs(fake_, 2, 0));
    fake_sandbox_open_gate(fake_, "cleanup");
    ASSERT_TRUE(b.WaitDone());
    EXPECT_EQ(8, b.outcome.exit_code);
    EXPECT_EQ(1, a.Done());
    px_job_unref(ja);
    px_job_unref(jb);
}

TEST_F(ExecutorTest, KillAfterExitChangesNothing) {
    Start();
    Recorder rec;
    px_job *job = Submit(fake_sandbox_spec("print:a", "exit:4", NULL), &rec);
    ASSERT_TRUE(rec.WaitDone());
    px_executor_kill(ex_, job, PX_KILL_RPC);
    px_executor_kill(ex_, job, PX_KILL_CANCEL);
    px_executor_shutdown(ex_, 0); /* every on_done has returned */
    EXPECT_EQ(1, rec.Done());
    EXPECT_EQ(PX_STATUS_COMPLETED, rec.outcome.status);
    EXPECT_EQ(PX_REASON_EXITED, rec.outcome.reason);
    EXPECT_EQ(4, rec.outcome.exit_code);
    px_job_unref(job);
}

TEST_F(ExecutorTest, KillFromOutputCallback) {
    Start();
    Recorder rec;
    px_job *job = nullptr;
    std::mutex job_mu;
    rec.on_output_hook = [&](Recorder *) {
        std::lock_guard<std::mutex> lock(job_mu);
        px_executor_kill(ex_, job, PX_KILL_RPC);
    };
    {
        std::lock_guard<std::mutex> lock(job_mu);
        job = Submit(fake_sandbox_spec("flood:1000000", NULL), &rec);
    }
    ASSERT_TRUE(rec.WaitDone());
    EXPECT_EQ(PX_STATUS_KILLED, rec.outcome.status);
    EXPECT_EQ(PX_REASON_KILLED, rec.outcome.reason);
    EXPECT_EQ(4096u, rec.out.size()); /* the fake notices the kill before its next chunk */
    px_job_unref(job);
}

static std::string FloodPattern(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; i++)
        s[i] = char('a' + i % 26);
    return s;
}

TEST_F(ExecutorTest, OutputCapKeepsExactPrefix) {
    Start(2, 4, 10000);
    Recorder rec;
    px_outcome o = RunToEnd(fake_sandbox_spec("flood:50000", NULL), &rec);
    EXPECT_EQ(PX_STATUS_COMPLETED, o.status);
    EXPECT_EQ(PX_REASON_OUTPUT_LIMIT, o.reason);
    EXPECT_TRUE(o.output_truncated);
    EXPECT_EQ(137, o.exit_code);
    EXPECT_EQ(FloodPattern(10000), rec.out);
}

TEST_F(ExecutorTest, OutputExactlyAtCapIsNotTruncated) {
    Start(2, 4, 10000);
    Recorder rec;
    px_outcome o = RunToEnd(fake_sandbox_spec("flood:10000", NULL), &rec);
    EXPECT_EQ(PX_REASON_EXITED, o.reason);
    EXPECT_FALSE(o.output_truncated);
    EXPECT_EQ(FloodPattern(10000), rec.out);
}

TEST_F(ExecutorTest, OutputCapCountsBothStreams) {
    Start(2, 4, 10);
    Recorder rec;
    px_outcome o = RunToEnd(
        fake_sandbox_spec("print:aaaa", "stderr:bbbb", "print:cccc", "stderr:dd", NULL), &rec);
    EXPECT_EQ(PX_REASON_OUTPUT_LIMIT, o.reason);
    EXPECT_TRUE(o.output_truncated);
    EXPECT_EQ("aaaacc", rec.out);
    EXPECT_EQ("bbbb", rec.err);
    std::vector<std::string> want = {"running", "out:aaaa", "err:bbbb", "out:cc", "done"};
    EXPECT_EQ(want, rec.events);
}

TEST_F(ExecutorTest, PrecedenceAmongOutcomeFacts) {
    /* One chunk over the cap, then the back-end reports more facts. */
    Start(2, 4, 4);
    {
        Recorder rec; /* timeout beats the output cap */
        px_outcome o = RunToEnd(fake_sandbox_spec("print:123456", "timeout", NULL), &rec);
        EXPECT_EQ(PX_STATUS_COMPLETED, o.status);
        EXPECT_EQ(PX_REASON_TIMEOUT, o.reason);
        EXPECT_TRUE(o.output_truncated);
        EXPECT_EQ("1234", rec.out);
    }
    {
        Recorder rec; /* the output cap beats OOM */
        px_outcome o = RunToEnd(fake_sandbox_spec("print:123456", "oom", NULL), &rec);
        EXPECT_EQ(PX_REASON_OUTPUT_LIMIT, o.reason);
    }
    {
        Recorder rec; /* a back-end failure beats the output cap */
        px_outcome o = RunToEnd(fake_sandbox_spec("print:123456", "lost", NULL), &rec);
        EXPECT_EQ(PX_STATUS_FAILED, o.status);
        EXPECT_EQ(PX_REASON_LOST, o.reason);
    }
    {
        Recorder rec; /* a Kill RPC beats the output cap even when it came later */
        px_job *job = Submit(fake_sandbox_spec("print:123456", "gate:k", "exit:0", NULL), &rec);
        ASSERT_TRUE(fake_sandbox_wait_gate(fake_, "k", 1, kWaitMs));
        px_executor_kill(ex_, job, PX_KILL_RPC);
        fake_sandbox_open_gate(fake_, "k");
        ASSERT_TRUE(rec.WaitDone());
        EXPECT_EQ(PX_STATUS_KILLED, rec.outcome.status);
        EXPECT_EQ(PX_REASON_KILLED, rec.outcome.reason);
        EXPECT_TRUE(rec.outcome.output_truncated);
        px_job_unref(job);
    }
    {
        Recorder rec; /* a Kill RPC beats a back-end failure */
        px_job *job = Submit(fake_sandbox_spec("gate:f", "fail", NULL), &rec);
        ASSERT_TRUE(fake_sandbox_wait_gate(fake_, "f", 1, kWaitMs));
        px_executor_kill(ex_, job, PX_KILL_RPC);
        fake_sandbox_open_gate(fake_, "f");
        ASSERT_TRUE(rec.WaitDone());
        EXPECT_EQ(PX_STATUS_KILLED, rec.outcome.status);
        EXPECT_EQ(PX_REASON_KILLED, rec.outcome.reason);
        px_job_unref(job);
    }
}

TEST_F(ExecutorTest, AdmissionLimit) {
    Start(1, 1);
    Recorder a, b, c;
    px_job *ja = Submit(fake_sandbox_spec("gate:g", NULL), &a);
    px_job *jb = Submit(fake_sandbox_spec("gate:g", NULL), &b);
    EXPECT_EQ(2u, px_executor_active(ex_));

    px_job_events ev = c.Events();
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(nullptr, px_executor_submit(ex_, fake_sandbox_spec(NULL), &ev, &err));
    EXPECT_EQ(PX_E_EXHAUSTED, err.code);

    ASSERT_TRUE(fake_sandbox_wait_gate(fake_, "g", 1, kWaitMs));
    EXPECT_EQ(1u, fake_sandbox_runs(fake_)); /* one worker: b waits in the queue */
    fake_sandbox_open_gate(fake_, "g");
    ASSERT_TRUE(a.WaitDone());
    ASSERT_TRUE(b.WaitDone());
    EXPECT_EQ(0u, px_executor_active(ex_));

    Recorder d;
    px_outcome o = RunToEnd(fake_sandbox_spec("exit:0", NULL), &d);
    EXPECT_EQ(PX_REASON_EXITED, o.reason);
    EXPECT_EQ(0, c.Done()); /* the refused job never got an event */
    EXPECT_TRUE(c.events.empty());
    px_job_unref(ja);
    px_job_unref(jb);
}

TEST_F(ExecutorTest, SubmitFromOnDoneIsAdmitted) {
    /* on_done runs with no executor lock held and after the slot was freed. */
    Start(1, 0);
    Recorder first, second;
    px_job *next = nullptr;
    first.on_done_hook = [&](Recorder *) {
        EXPECT_EQ(0u, px_executor_active(ex_));
        next = Submit(fake_sandbox_spec("exit:5", NULL), &second);
    };
    px_job *job = Submit(fake_sandbox_spec(NULL), &first);
    ASSERT_TRUE(first.WaitDone());
    ASSERT_TRUE(second.WaitDone());
    EXPECT_EQ(5, second.outcome.exit_code);
    px_job_unref(job);
    px_job_unref(next);
}

TEST_F(ExecutorTest, KillQueuedJobEndsAtOnceAndNeverStarts) {
    Start(1, 2);
    Recorder a, b;
    px_job *ja = Submit(fake_sandbox_spec("sleep", NULL), &a);
    ASSERT_TRUE(a.WaitRunning());
    px_job *jb = Submit(fake_sandbox_spec("print:never", NULL), &b);
    px_executor_kill(ex_, jb, PX_KILL_RPC);
    EXPECT_EQ(1, b.Done()); /* delivered from px_executor_kill itself */
    EXPECT_EQ(PX_STATUS_KILLED, b.outcome.status);
    EXPECT_EQ(PX_REASON_KILLED, b.outcome.reason);
    EXPECT_FALSE(b.outcome.ran);
    EXPECT_EQ(0, b.outcome.started_at_ms);
    std::vector<std::string> want = {"done"};
    EXPECT_EQ(want, b.events);
    EXPECT_EQ(1u, px_executor_active(ex_));

    px_executor_kill(ex_, ja, PX_KILL_RPC);
    ASSERT_TRUE(a.WaitDone());
    px_executor_shutdown(ex_, 0);
    EXPECT_EQ(1u, fake_sandbox_runs(fake_));
    EXPECT_EQ(1, b.Done());
    px_job_unref(ja);
    px_job_unref(jb);
}

TEST_F(ExecutorTest, ConcurrentKillsDeliverOneDone) {
    Start(1, 8);
    Recorder running_rec;
    px_job *running = Submit(fake_sandbox_spec("sleep", NULL), &running_rec);
    ASSERT_TRUE(running_rec.WaitRunning());
    std::vector<Recorder> queued_rec(4);
    std::vector<px_job *> queued;
    for (auto &r : queued_rec)
        queued.push_back(Submit(fake_sandbox_spec("sleep", NULL), &r));

    std::vector<px_job *> all = queued;
    all.push_back(running);
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; t++) {
        threads.emplace_back([&, t] {
            for (px_job *j : all)
                px_executor_kill(ex_, j, t == 0 ? PX_KILL_RPC : PX_KILL_CANCEL);
        });
    }
    for (auto &th : threads)
        th.join();
    ASSERT_TRUE(running_rec.WaitDone());
    px_executor_shutdown(ex_, 0);
    EXPECT_EQ(1, running_rec.Done());
    EXPECT_EQ(PX_STATUS_KILLED, running_rec.outcome.status);
    for (auto &r : queued_rec) {
        EXPECT_EQ(1, r.Done());
        EXPECT_EQ(PX_STATUS_KILLED, r.outcome.status);
    }
    EXPECT_EQ(1u, fake_sandbox_runs(fake_));
    for (px_job *j : all)
        px_job_unref(j);
}

TEST_F(ExecutorTest, ShutdownKillsRunningAndQueuedAfterGrace) {
    Start(1, 2);
    Recorder a, b, c;
    px_job *ja = Submit(fake_sandbox_spec("print:x", "sleep", NULL), &a);
    ASSERT_TRUE(a.WaitRunning());
    px_job *jb = Submit(fake_sandbox_spec("sleep", NULL), &b);
    px_job *jc = Submit(fake_sandbox_spec("sleep", NULL), &c);
    px_executor_shutdown(ex_, 50);
    /* Every on_done has returned by now. */
    for (Recorder *r : {&a, &b, &c}) {
        EXPECT_EQ(1, r->Done());
        EXPECT_EQ(PX_STATUS_FAILED, r->outcome.status);
        EXPECT_EQ(PX_REASON_SANDBOX_ERROR, r->outcome.reason);
        EXPECT_NE(nullptr, strstr(r->outcome.error, "shutdown")) << r->outcome.error;
    }
    EXPECT_TRUE(a.outcome.ran);
    EXPECT_EQ(137, a.outcome.exit_code);
    EXPECT_FALSE(b.outcome.ran);
    EXPECT_FALSE(c.outcome.ran);
    EXPECT_EQ(1u, fake_sandbox_runs(fake_));
    EXPECT_EQ(0u, px_executor_active(ex_));

    Recorder d;
    px_job_events ev = d.Events();
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(nullptr, px_executor_submit(ex_, fake_sandbox_spec(NULL), &ev, &err));
    EXPECT_EQ(PX_E_UNAVAILABLE, err.code);
    px_executor_shutdown(ex_, 0); /* idempotent */
    px_job_unref(ja);
    px_job_unref(jb);
    px_job_unref(jc);
}

TEST_F(ExecutorTest, ShutdownLetsJobsFinishWithinGrace) {
    Start(1, 1);
    Recorder a, b;
    px_job *ja = Submit(fake_sandbox_spec("gate:g", "exit:7", NULL), &a);
    px_job *jb = Submit(fake_sandbox_spec("exit:8", NULL), &b);
    ASSERT_TRUE(fake_sandbox_wait_gate(fake_, "g", 1, kWaitMs));
    std::thread stopper([&] { px_executor_shutdown(ex_, 60000); });

    /* Wait until shutdown has begun: the slots are full, so submissions are
     * refused as EXHAUSTED until they are refused as UNAVAILABLE. */
    px_error err = PX_ERROR_INIT;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
    for (;;) {
        Recorder r;
        px_job_events ev = r.Events();
        ASSERT_EQ(nullptr, px_executor_submit(ex_, fake_sandbox_spec(NULL), &ev, &err));
        if (err.code != PX_E_EXHAUSTED)
            break;
        ASSERT_LT(std::chrono::steady_clock::now(), deadline);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_EQ(PX_E_UNAVAILABLE, err.code);
    fake_sandbox_open_gate(fake_, "g");
    stopper.join();
    EXPECT_EQ(PX_REASON_EXITED, a.outcome.reason);
    EXPECT_EQ(7, a.outcome.exit_code);
    EXPECT_EQ(PX_REASON_EXITED, b.outcome.reason); /* queued jobs run during the grace */
    EXPECT_EQ(8, b.outcome.exit_code);
    px_job_unref(ja);
    px_job_unref(jb);
}

TEST_F(ExecutorTest, JobHandleOutlivesExecutor) {
    Start();
    Recorder rec;
    px_job *job = Submit(fake_sandbox_spec("print:a", NULL), &rec);
    ASSERT_TRUE(rec.WaitDone());
    px_executor_free(ex_);
    ex_ = nullptr;
    px_job_unref(job);
}

TEST_F(ExecutorTest, Ping) {
    Start();
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(0, px_executor_ping(ex_, &err));
    fake_sandbox_set_down(fake_, true);
    EXPECT_EQ(-1, px_executor_ping(ex_, &err));
    EXPECT_EQ(PX_E_UNAVAILABLE, err.code);
}

TEST_F(ExecutorTest, ConfigWithoutWorkersIsInvalid) {
    px_executor_config cfg{};
    cfg.max_concurrent = 0;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(nullptr, px_executor_new(&cfg, fake_sandbox_as_sandbox(fake_), &err));
    EXPECT_EQ(PX_E_INVALID, err.code);
}

TEST_F(ExecutorTest, ManyJobsStress) {
    Start(2, 64);
    std::vector<Recorder> recs(60);
    std::vector<px_job *> jobs;
    for (size_t i = 0; i < recs.size(); i++) {
        const char *step = i % 3 == 0 ? "sleep" : "print:x";
        jobs.push_back(Submit(fake_sandbox_spec(step, NULL), &recs[i]));
    }
    for (size_t i = 0; i < jobs.size(); i += 3)
        px_executor_kill(ex_, jobs[i], PX_KILL_RPC);
    for (auto &r : recs)
        ASSERT_TRUE(r.WaitDone());
    px_executor_shutdown(ex_, 0);
    for (size_t i = 0; i < recs.size(); i++) {
        EXPECT_EQ(1, recs[i].Done());
        EXPECT_EQ(i % 3 == 0 ? PX_STATUS_KILLED : PX_STATUS_COMPLETED, recs[i].outcome.status);
    }
    for (px_job *j : jobs)
        px_job_unref(j);
}

} // namespace
