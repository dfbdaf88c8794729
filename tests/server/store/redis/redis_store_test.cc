// The store interface on Redis: two nodes in one process (a frontend and a
// worker with a fake runner) against a private redis-server.
#include "server/store/redis/redis_store.h"

#include <gtest/gtest.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tests/server/store/redis/redis_server.h"

namespace {

using pxtest::RedisServer;
constexpr auto kWait = std::chrono::seconds(20); // generous bound for any event

struct StoreFree {
    void operator()(px_store *s) const { px_store_free(s); }
};
using Store = std::unique_ptr<px_store, StoreFree>;

// A runner that only records jobs; the test drives their records.
struct FakeRunner {
    struct Job {
        FakeRunner *runner;
        px_record *record;
        std::string image;
        px_kill_cause killed = PX_KILL_NONE;
    };
    std::mutex mu;
    std::condition_variable cv;
    std::vector<Job *> jobs;
    // With hold_first, the first Submit waits (inside the hand-over) until
    // released; entered counts the Submits begun.
    bool hold_first = false;
    bool released = false;
    size_t entered = 0;

    ~FakeRunner() {
        for (Job *j : jobs) {
            px_record_unref(j->record);
            delete j;
        }
    }

    static void Kill(void *, void *job, px_kill_cause cause) {
        auto *j = static_cast<Job *>(job);
        std::lock_guard<std::mutex> lock(j->runner->mu);
        j->killed = cause;
        j->runner->cv.notify_all();
    }
    static void Unref(void *) {}
    static int Submit(void *ctx, px_record *record, px_job_spec *spec, const char *, px_error *) {
        auto *f = static_cast<FakeRunner *>(ctx);
        {
            std::unique_lock<std::mutex> lock(f->mu);
            bool first = ++f->entered == 1;
            f->cv.notify_all();
            if (first && f->hold_first)
                f->cv.wait(lock, [&] { return f->released; });
        }
        static const px_record_job_ops ops = {Kill, Unref};
        auto *j = new Job{f, record, spec->image, PX_KILL_NONE};
        px_job_spec_free(spec);
        px_record_ref(record);
        {
            std::lock_guard<std::mutex> lock(f->mu);
            f->jobs.push_back(j);
        }
        px_record_attach_job(record, &ops, nullptr, j);
        f->cv.notify_all();
        return 0;
    }

    Job *WaitJob(size_t n) {
        std::unique_lock<std::mutex> lock(mu);
        if (!cv.wait_for(lock, kWait, [&] { return jobs.size() >= n; }))
            return nullptr;
        return jobs[n - 1];
    }
    bool WaitKilled(Job *j) {
        std::unique_lock<std::mutex> lock(mu);
        return cv.wait_for(lock, kWait, [&] { return j->killed != PX_KILL_NONE; });
    }
};

const px_job_runner_ops kRunnerOps = {FakeRunner::Submit};

px_redis_store_config Config(const RedisServer &srv, const char *node, FakeRunner *runner) {
    px_redis_store_config c = {};
    px_redis_target_parse(srv.url().c_str(), &c.redis.target, nullptr);
    c.redis.ns = "t";
    c.redis.node = node;
    c.redis.lease_ms = 60000;
    c.redis.retention_ms = 3600000;
    c.redis.max_connections = 4;
    c.redis.connect_timeout_ms = 2000;
    c.redis.command_timeout_ms = 5000;
    c.max_readers = 4;
    c.max_queued = 100;
    if (runner) {
        c.runner = {&kRunnerOps, runner};
        c.max_running = 4;
    }
    return c;
}

Store Open(const px_redis_store_config &c) {
    px_error err = PX_ERROR_INIT;
    px_store *s = px_redis_store_new(&c, &err);
    EXPECT_NE(s, nullptr) << err.msg;
    return Store(s);
}

px_job_spec *Spec(const char *image = "img") {
    auto *spec = static_cast<px_job_spec *>(calloc(1, sizeof(px_job_spec)));
    spec->image = strdup(image);
    spec->entrypoint = strdup("main.py");
    spec->timeout_s = 5;
    return spec;
}

px_record *Admit(px_store *s, const char *request_id = "", const uint8_t *digest = nullptr,
                 bool *existed_out = nullptr, const char *image = "img") {
    px_error err = PX_ERROR_INIT;
    bool existed = false;
    px_record *r = px_store_admit(s, request_id, digest, Spec(image), "test", &existed, &err);
    EXPECT_NE(r, nullptr) << err.msg;
    if (existed_out)
        *existed_out = existed;
    return r;
}

px_record_view Snapshot(px_record *r, bool with_output = true) {
    px_record_view v;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_record_snapshot(r, with_output, &v, &err), 0) << err.msg;
    return v;
}

std::string Out(const px_record_view &v) {
    return std::string(reinterpret_cast<const char *>(v.stdout_data), v.stdout_len);
}

// Waits on a record's watcher until `done` holds.
template <typename Pred> bool WaitFor(px_record *r, px_watch_kind kind, Pred done) {
    struct Ctx {
        std::mutex mu;
        std::condition_variable cv;
        int fired = 0;
    } ctx;
    px_error err = PX_ERROR_INIT;
    px_watch *w = px_record_watch(
        r, kind,
        [](void *ud, px_record *) {
            auto *c = static_cast<Ctx *>(ud);
            std::lock_guard<std::mutex> lock(c->mu);
            c->fired++;
            c->cv.notify_all();
        },
        &ctx, &err);
    EXPECT_NE(w, nullptr) << err.msg;
    std::unique_lock<std::mutex> lock(ctx.mu);
    bool ok = ctx.cv.wait_for(lock, kWait, [&] {
        int seen = ctx.fired;
        lock.unlock();
        bool d = done();
        lock.lock();
        return d || (seen != ctx.fired && done());
    });
    lock.unlock();
    px_record_unwatch(r, w);
    return ok;
}

px_outcome Exited(int code) {
    px_outcome o = {};
    o.status = PX_STATUS_COMPLETED;
    o.reason = PX_REASON_EXITED;
    o.ran = true;
    o.exit_code = code;
    o.started_at_ms = 1000;
    o.finished_at_ms = 2000;
    return o;
}

// Waits until `r` is terminal as seen through `r`'s node (Redis answering).
bool WaitTerminal(px_record *r) {
    return WaitFor(r, PX_WATCH_CONTROL, [&] {
        px_record_view v;
        px_error err = PX_ERROR_INIT;
        if (px_record_snapshot(r, false, &v, &err) < 0)
            return false;
        bool t = px_status_terminal(v.status);
        px_record_view_release(&v);
        return t;
    });
}

class RedisStore : public ::testing::Test {
  protected:
    // The usual pair: a frontend ("front", runs nothing) and a worker
    // ("worker", runs on runner_), with the default settings.
    void OpenFrontAndWorker() {
        front_ = Open(Config(srv_, "front", nullptr));
        worker_ = Open(Config(srv_, "worker", &runner_));
    }

    RedisServer srv_;
    FakeRunner runner_; // outlives the stores
    Store front_, worker_;
};

TEST_F(RedisStore, AJobAdmittedOnOneNodeRunsOnAnotherAndIsReadEverywhere) {
    OpenFrontAndWorker();
    px_record *r = Admit(front_.get(), "", nullptr, nullptr, "python:3.11");
    std::string id = px_record_id(r);
    FakeRunner::Job *job = runner_.WaitJob(1);
    ASSERT_NE(job, nullptr);
    EXPECT_EQ(job->image, "python:3.11");
    EXPECT_EQ(id, px_record_id(job->record));
    {
        px_record_view v = Snapshot(r);
        EXPECT_EQ(v.status, PX_STATUS_PENDING);
        px_record_view_release(&v);
    }
    // The worker drives the record; a reader on the front end follows it.
    px_record_set_running(job->record, 1000);
    px_record_append(job->record, PX_STREAM_STDOUT, reinterpret_cast<const uint8_t *>("hel"), 3);
    EXPECT_TRUE(WaitFor(r, PX_WATCH_READER, [&] {
        px_log_chunk c;
        int rc = px_record_read(r, 0, 100, &c, nullptr);
        free(c.data);
        return rc == PX_READ_DATA && c.len == 3;
    }));
    px_record_append(job->record, PX_STREAM_STDOUT, reinterpret_cast<const uint8_t *>("lo"), 2);
    EXPECT_TRUE(WaitFor(r, PX_WATCH_READER, [&] {
        px_log_chunk c;
        int rc = px_record_read(r, 3, 100, &c, nullptr);
        bool ok = rc == PX_READ_DATA && std::string((char *)c.data, c.len) == "lo";
        free(c.data);
        return ok;
    }));
    px_outcome done = Exited(7);
    EXPECT_TRUE(px_record_finish(job->record, &done));
    EXPECT_TRUE(WaitTerminal(r));
    px_record_view v = Snapshot(r);
    EXPECT_EQ(v.status, PX_STATUS_COMPLETED);
    EXPECT_EQ(v.outcome.exit_code, 7);
    EXPECT_EQ(Out(v), "hello");
    px_record_view_release(&v);
    px_log_chunk c;
    EXPECT_EQ(px_record_read(r, 5, 100, &c, nullptr), PX_READ_EOF);
    // Any node finds it by id.
    px_error err = PX_ERROR_INIT;
    px_record *again = px_store_get(worker_.get(), id.c_str(), &err);
    ASSERT_NE(again, nullptr) << err.msg;
    px_record_unref(again);
    px_record_unref(r);
}

TEST_F(RedisStore, ANodeClaimsTheNextJobWhileAnotherIsBeingHandedOver) {
    // A worker's claims do not queue behind one another (each claim is two
    // round trips, an fsync each under appendfsync always): while the
    // hand-over of one claimed job is held, the next queued job is claimed
    // and handed over too.
    runner_.hold_first = true;
    OpenFrontAndWorker();
    px_record *a = Admit(front_.get());
    px_record *b = Admit(front_.get());
    {
        std::unique_lock<std::mutex> lock(runner_.mu);
        EXPECT_TRUE(runner_.cv.wait_for(lock, kWait, [&] { return runner_.entered >= 2; }));
        runner_.released = true;
        runner_.cv.notify_all();
    }
    for (size_t n = 1; n <= 2; n++) {
        FakeRunner::Job *job = runner_.WaitJob(n);
        ASSERT_NE(job, nullptr);
        px_outcome done = Exited(0);
        EXPECT_TRUE(px_record_finish(job->record, &done));
    }
    EXPECT_TRUE(WaitTerminal(a));
    EXPECT_TRUE(WaitTerminal(b));
    px_record_unref(a);
    px_record_unref(b);
}

TEST_F(RedisStore, RequestIdIsIdempotentAcrossNodes) {
    Store a = Open(Config(srv_, "a", nullptr));
    Store b = Open(Config(srv_, "b", nullptr));
    uint8_t digest[PX_SHA256_LEN] = {1, 2, 3};
    bool existed;
    px_record *first = Admit(a.get(), "req-1", digest, &existed);
    EXPECT_FALSE(existed);
    px_record *second = Admit(b.get(), "req-1", digest, &existed);
    EXPECT_TRUE(existed);
    EXPECT_STREQ(px_record_id(first), px_record_id(second));
    uint8_t other[PX_SHA256_LEN] = {9};
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_store_admit(b.get(), "req-1", other, Spec(), "test", &existed, &err), nullptr);
    EXPECT_EQ(err.code, PX_E_EXISTS);
    px_record_unref(first);
    px_record_unref(second);
}

TEST_F(RedisStore, EveryNodeKnowsARecordsTenant) {
    OpenFrontAndWorker();
    Store other = Open(Config(srv_, "other", nullptr));
    px_job_spec *spec = Spec();
    snprintf(spec->tenant, sizeof spec->tenant, "%s", "alice");
    px_error err = PX_ERROR_INIT;
    bool existed = false;
    px_record *r = px_store_admit(front_.get(), "k", nullptr, spec, "test", &existed, &err);
    ASSERT_NE(r, nullptr) << err.msg;
    EXPECT_STREQ(px_record_tenant(r), "alice");
    std::string id = px_record_id(r);
    // The node that claims the job knows whose it is (the packed job)...
    FakeRunner::Job *job = runner_.WaitJob(1);
    ASSERT_NE(job, nullptr);
    EXPECT_STREQ(px_record_tenant(job->record), "alice");
    // ...and so does a node that only reads it (the record in Redis).
    px_record *seen = px_store_get_as(other.get(), "alice", id.c_str(), &err);
    ASSERT_NE(seen, nullptr) << err.msg;
    px_record_unref(seen);
    EXPECT_EQ(px_store_get_as(other.get(), "bob", id.c_str(), &err), nullptr);
    EXPECT_EQ(err.code, PX_E_NOT_FOUND);
    // A request_id is a key within its tenant, cluster-wide.
    px_job_spec *bobs = Spec();
    snprintf(bobs->tenant, sizeof bobs->tenant, "%s", "bob");
    px_record *b = px_store_admit(other.get(), "k", nullptr, bobs, "test", &existed, &err);
    ASSERT_NE(b, nullptr) << err.msg;
    EXPECT_FALSE(existed);
    EXPECT_STRNE(px_record_id(b), id.c_str());
    px_outcome done = Exited(0);
    EXPECT_TRUE(px_record_finish(job->record, &done));
    px_record_unref(b);
    px_record_unref(r);
}

TEST_F(RedisStore, KillWhileQueuedEndsItEverywhere) {
    Store a = Open(Config(srv_, "a", nullptr));
    Store b = Open(Config(srv_, "b", nullptr));
    px_record *r = Admit(a.get());
    px_error err = PX_ERROR_INIT;
    px_record *other = px_store_get(b.get(), px_record_id(r), &err);
    ASSERT_NE(other, nullptr) << err.msg;
    EXPECT_TRUE(px_record_kill(other, PX_KILL_RPC));
    EXPECT_FALSE(px_record_kill(other, PX_KILL_RPC)); // already terminal
    px_record_view v = Snapshot(r);
    EXPECT_EQ(v.status, PX_STATUS_KILLED);
    EXPECT_EQ(v.outcome.reason, PX_REASON_KILLED);
    px_record_view_release(&v);
    px_record_unref(other);
    px_record_unref(r);
}

TEST_F(RedisStore, KillOnAnotherNodeReachesTheRunningJob) {
    OpenFrontAndWorker();
    px_record *r = Admit(front_.get());
    FakeRunner::Job *job = runner_.WaitJob(1);
    ASSERT_NE(job, nullptr);
    EXPECT_TRUE(px_record_kill(r, PX_KILL_RPC));
    ASSERT_TRUE(runner_.WaitKilled(job));
    EXPECT_EQ(job->killed, PX_KILL_RPC);
    px_outcome o = {};
    o.status = PX_STATUS_KILLED;
    o.reason = PX_REASON_KILLED;
    EXPECT_TRUE(px_record_finish(job->record, &o));
    px_record_view v = Snapshot(r);
    EXPECT_EQ(v.status, PX_STATUS_KILLED);
    px_record_view_release(&v);
    px_record_unref(r);
}

TEST_F(RedisStore, QueueLimitAndUnknownIds) {
    px_redis_store_config c = Config(srv_, "a", nullptr);
    c.max_queued = 1;
    Store a = Open(c);
    px_record *r = Admit(a.get());
    px_error err = PX_ERROR_INIT;
    bool existed;
    EXPECT_EQ(px_store_admit(a.get(), "", nullptr, Spec(), "test", &existed, &err), nullptr);
    EXPECT_EQ(err.code, PX_E_EXHAUSTED);
    EXPECT_EQ(px_store_get(a.get(), "exe_00000000-0000-4000-8000-000000000000", &err), nullptr);
    EXPECT_EQ(err.code, PX_E_NOT_FOUND);
    px_record_unref(r);
}

// A worker whose lease is gone kills its runs at once and comes back with a
// new lease; the sweep on another node ends the lost run FAILED/LOST.
TEST_F(RedisStore, AWorkerThatLostItsLeaseKillsItsRuns) {
    FakeRunner runner;
    px_redis_store_config wc = Config(srv_, "worker", &runner);
    wc.redis.lease_ms = 300; // renewed every 100 ms
    Store front = Open(Config(srv_, "front", nullptr));
    Store worker = Open(wc);
    px_record *r = Admit(front.get());
    FakeRunner::Job *job = runner.WaitJob(1);
    ASSERT_NE(job, nullptr);
    px_record_set_running(job->record, 1000);
    ASSERT_EQ(srv_.Int({"DEL", "px:t:node:worker"}), 1);
    ASSERT_TRUE(runner.WaitKilled(job));
    EXPECT_EQ(job->killed, PX_KILL_SHUTDOWN);
    // Its late end is refused, and the node's new lease reaps what its old
    // one owned: FAILED/LOST.
    px_outcome late = Exited(0);
    EXPECT_FALSE(px_record_finish(job->record, &late));
    EXPECT_TRUE(WaitTerminal(r));
    px_record_view v = Snapshot(r);
    EXPECT_EQ(v.status, PX_STATUS_FAILED);
    EXPECT_EQ(v.outcome.reason, PX_REASON_LOST);
    px_record_view_release(&v);
    px_record_unref(r);
}

// A draining worker (SIGTERM) claims nothing more: new jobs stay queued
// for other nodes.
TEST_F(RedisStore, ADrainedWorkerLeavesNewJobsInTheQueue) {
    OpenFrontAndWorker();
    px_store_drain(worker_.get());
    px_store_drain(worker_.get()); // idempotent
    px_record *r = Admit(front_.get());
    EXPECT_EQ(srv_.Int({"XLEN", "px:t:queue"}), 1);
    {
        std::lock_guard<std::mutex> lock(runner_.mu);
        EXPECT_TRUE(runner_.jobs.empty());
    }
    px_record_view v = Snapshot(r, false);
    EXPECT_EQ(v.status, PX_STATUS_PENDING);
    px_record_view_release(&v);
    // Another worker takes it.
    FakeRunner other_runner;
    Store other = Open(Config(srv_, "other", &other_runner));
    ASSERT_NE(other_runner.WaitJob(1), nullptr);
    px_record_unref(r);
}

// The first watcher of a record on a node reads, with its registration,
// whether the record has ended: "live" (not ended) spares the caller its
// check, and the end still reaches it. Later watchers, and an ended record,
// are not "live": the caller checks.
TEST_F(RedisStore, AWatchKnowsWhetherItsRegistrationSawTheRecordLive) {
    OpenFrontAndWorker();
    px_record *r = Admit(front_.get());
    FakeRunner::Job *job = runner_.WaitJob(1);
    ASSERT_NE(job, nullptr);
    struct Count {
        std::mutex mu;
        std::condition_variable cv;
        int fired = 0;
    } first, second;
    auto fn = [](void *ud, px_record *) {
        auto *c = static_cast<Count *>(ud);
        std::lock_guard<std::mutex> lock(c->mu);
        c->fired++;
        c->cv.notify_all();
    };
    px_error err = PX_ERROR_INIT;
    bool live = false;
    px_watch *w1 = px_record_watch_live(r, PX_WATCH_CONTROL, fn, &first, &live, &err);
    ASSERT_NE(w1, nullptr) << err.msg;
    EXPECT_TRUE(live);
    px_watch *w2 = px_record_watch_live(r, PX_WATCH_CONTROL, fn, &second, &live, &err);
    ASSERT_NE(w2, nullptr) << err.msg;
    EXPECT_FALSE(live) << "only the registration that read the record knows";
    px_outcome end = Exited(0);
    EXPECT_TRUE(px_record_finish(job->record, &end));
    {
        std::unique_lock<std::mutex> lock(first.mu);
        EXPECT_TRUE(first.cv.wait_for(lock, kWait, [&] { return first.fired > 0; }));
    }
    px_record_unwatch(r, w2);
    px_record_unwatch(r, w1);
    // Ended: a new first watcher is told to check.
    px_watch *w3 = px_record_watch_live(r, PX_WATCH_CONTROL, fn, &second, &live, &err);
    ASSERT_NE(w3, nullptr) << err.msg;
    EXPECT_FALSE(live);
    px_record_unwatch(r, w3);
    px_record_unref(r);
}

// Output wakes the readers only; a control watcher (a call waiting for the
// end) is woken by the end, so it makes no read per output chunk.
TEST_F(RedisStore, ControlWatchersAreWokenByTheEndNotByOutput) {
    OpenFrontAndWorker();
    px_record *r = Admit(front_.get());
    FakeRunner::Job *job = runner_.WaitJob(1);
    ASSERT_NE(job, nullptr);
    struct Count {
        std::mutex mu;
        std::condition_variable cv;
        int fired = 0;
    } reader, control;
    auto fn = [](void *ud, px_record *) {
        auto *c = static_cast<Count *>(ud);
        std::lock_guard<std::mutex> lock(c->mu);
        c->fired++;
        c->cv.notify_all();
    };
    px_error err = PX_ERROR_INIT;
    px_watch *rw = px_record_watch(r, PX_WATCH_READER, fn, &reader, &err);
    px_watch *cw = px_record_watch(r, PX_WATCH_CONTROL, fn, &control, &err);
    ASSERT_TRUE(rw && cw) << err.msg;
    px_record_set_running(job->record, 1000);
    px_record_append(job->record, PX_STREAM_STDOUT, (const uint8_t *)"out", 3);
    {
        std::unique_lock<std::mutex> lock(reader.mu);
        ASSERT_TRUE(reader.cv.wait_for(lock, kWait, [&] { return reader.fired > 0; }));
    }
    {
        // The reader was woken for the chunk: a control watcher woken by it
        // would have been woken in the same pass, before.
        std::lock_guard<std::mutex> lock(control.mu);
        EXPECT_EQ(control.fired, 0);
    }
    px_outcome end = Exited(0);
    EXPECT_TRUE(px_record_finish(job->record, &end));
    {
        std::unique_lock<std::mutex> lock(control.mu);
        EXPECT_TRUE(control.cv.wait_for(lock, kWait, [&] { return control.fired > 0; }));
    }
    px_record_unwatch(r, cw);
    px_record_unwatch(r, rw);
    px_record_unref(r);
}

// ---- tenant quotas, cluster-wide ----

Store OpenWithQuotas(const px_redis_store_config &c, int concurrent, int queued, int per_minute) {
    Store s = Open(c);
    px_quota_config q = {concurrent, queued, per_minute};
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_store_set_quotas(s.get(), &q, &err), 0) << err.msg;
    return s;
}

// Admits a job of `tenant` on `s`: the record, or NULL with *err set.
px_record *AdmitAs(px_store *s, const char *tenant, px_error *err, const char *request_id = "") {
    px_job_spec *spec = Spec();
    snprintf(spec->tenant, sizeof spec->tenant, "%s", tenant);
    bool existed = false;
    uint8_t digest[PX_SHA256_LEN] = {7};
    return px_store_admit(s, request_id, request_id[0] ? digest : nullptr, spec, "test", &existed,
                          err);
}

bool Mentions(const px_error &err, const char *words) {
    return std::string(err.msg).find(words) != std::string::npos;
}

// A tenant's executions in flight are counted once for the cluster: what
// one node admitted counts on the other, and a finish on a third (the
// worker) gives the slot back at once, on every node.
TEST_F(RedisStore, ConcurrentQuotaHoldsAcrossNodesAndEndsGiveItBack) {
    FakeRunner runner;
    Store a = OpenWithQuotas(Config(srv_, "a", nullptr), 2, 0, 0);
    Store b = OpenWithQuotas(Config(srv_, "b", nullptr), 2, 0, 0);
    px_error err = PX_ERROR_INIT;
    px_record *r1 = AdmitAs(a.get(), "alice", &err);
    ASSERT_NE(r1, nullptr) << err.msg;
    px_record *r2 = AdmitAs(b.get(), "alice", &err);
    ASSERT_NE(r2, nullptr) << err.msg;
    EXPECT_EQ(AdmitAs(a.get(), "alice", &err), nullptr);
    EXPECT_EQ(err.code, PX_E_EXHAUSTED);
    EXPECT_TRUE(Mentions(err, "tenant 'alice': quota of 2 concurrent executions reached "
                              "(--tenant-max-concurrent; 2 pending or running)"))
        << err.msg;
    EXPECT_EQ(AdmitAs(b.get(), "alice", &err), nullptr);
    EXPECT_EQ(err.code, PX_E_EXHAUSTED);
    // Another tenant has its own count; a repeat of an admitted request is
    // found, not refused.
    px_record *bob = AdmitAs(b.get(), "bob", &err, "bob-1");
    ASSERT_NE(bob, nullptr) << err.msg;
    px_record *again = AdmitAs(a.get(), "bob", &err, "bob-1");
    ASSERT_NE(again, nullptr) << err.msg;
    EXPECT_STREQ(px_record_id(again), px_record_id(bob));
    px_record_unref(again);
    // A worker runs alice's first job to its end: b admits at once, with
    // no admission on a in between.
    Store w = OpenWithQuotas(Config(srv_, "w", &runner), 2, 0, 0);
    FakeRunner::Job *job = nullptr;
    for (size_t n = 1; n <= 3; n++) {
        FakeRunner::Job *j = runner.WaitJob(n);
        ASSERT_NE(j, nullptr);
        if (strcmp(px_record_id(j->record), px_record_id(r1)) == 0)
            job = j;
    }
    ASSERT_NE(job, nullptr);
    px_record_set_running(job->record, 1000);
    px_outcome end = Exited(0);
    EXPECT_TRUE(px_record_finish(job->record, &end));
    px_record *r3 = AdmitAs(b.get(), "alice", &err);
    ASSERT_NE(r3, nullptr) << err.msg;
    EXPECT_EQ(AdmitAs(a.get(), "alice", &err), nullptr);
    EXPECT_EQ(err.code, PX_E_EXHAUSTED);
    // Kills of r2 and r3 (both with the worker: it has free slots) end
    // them: both slots come back.
    ASSERT_NE(runner.WaitJob(4), nullptr);
    for (px_record *r : {r2, r3}) {
        FakeRunner::Job *j = nullptr;
        {
            std::lock_guard<std::mutex> lock(runner.mu);
            for (FakeRunner::Job *k : runner.jobs)
                if (strcmp(px_record_id(k->record), px_record_id(r)) == 0)
                    j = k;
        }
        ASSERT_NE(j, nullptr);
        EXPECT_TRUE(px_record_kill(r, PX_KILL_RPC));
        ASSERT_TRUE(runner.WaitKilled(j));
        px_outcome o = {};
        o.status = PX_STATUS_KILLED;
        o.reason = PX_REASON_KILLED;
        EXPECT_TRUE(px_record_finish(j->record, &o));
    }
    EXPECT_EQ(srv_.Int({"EXISTS", "px:t:tq:alice"}), 0); // nothing in flight: no count kept
    px_record *r4 = AdmitAs(a.get(), "alice", &err);
    ASSERT_NE(r4, nullptr) << err.msg;
    px_record *r5 = AdmitAs(b.get(), "alice", &err);
    ASSERT_NE(r5, nullptr) << err.msg;
    for (px_record *r : {r1, r2, r3, r4, r5, bob})
        px_record_unref(r);
}

// A job killed while still queued (no worker took it) ends at once, and so
// does its count.
TEST_F(RedisStore, AKillWhileQueuedGivesTheQuotaSlotBack) {
    Store a = OpenWithQuotas(Config(srv_, "a", nullptr), 1, 0, 0);
    Store b = OpenWithQuotas(Config(srv_, "b", nullptr), 1, 0, 0);
    px_error err = PX_ERROR_INIT;
    px_record *r = AdmitAs(a.get(), "alice", &err);
    ASSERT_NE(r, nullptr) << err.msg;
    EXPECT_EQ(AdmitAs(b.get(), "alice", &err), nullptr);
    EXPECT_EQ(err.code, PX_E_EXHAUSTED);
    EXPECT_TRUE(px_record_kill(r, PX_KILL_RPC));
    px_record *next = AdmitAs(b.get(), "alice", &err);
    ASSERT_NE(next, nullptr) << err.msg;
    px_record_unref(next);
    px_record_unref(r);
}

// Queued: the tenant's PENDING executions, cluster-wide; one that starts
// (RUNNING) leaves the count.
TEST_F(RedisStore, QueuedQuotaCountsPendingExecutionsOfEveryNode) {
    Store a = OpenWithQuotas(Config(srv_, "a", nullptr), 0, 1, 0);
    Store b = OpenWithQuotas(Config(srv_, "b", nullptr), 0, 1, 0);
    px_error err = PX_ERROR_INIT;
    px_record *r1 = AdmitAs(a.get(), "alice", &err);
    ASSERT_NE(r1, nullptr) << err.msg;
    EXPECT_EQ(AdmitAs(b.get(), "alice", &err), nullptr);
    EXPECT_EQ(err.code, PX_E_EXHAUSTED);
    EXPECT_TRUE(Mentions(err, "tenant 'alice': quota of 1 queued executions reached "
                              "(--tenant-max-queued; 1 waiting for a slot)"))
        << err.msg;
    FakeRunner runner;
    Store w = OpenWithQuotas(Config(srv_, "w", &runner), 0, 1, 0);
    FakeRunner::Job *job = runner.WaitJob(1);
    ASSERT_NE(job, nullptr);
    // Claimed but not started: still waiting for its slot.
    EXPECT_EQ(AdmitAs(b.get(), "alice", &err), nullptr);
    EXPECT_EQ(err.code, PX_E_EXHAUSTED);
    px_record_set_running(job->record, 1000);
    px_record *r2 = AdmitAs(b.get(), "alice", &err);
    ASSERT_NE(r2, nullptr) << err.msg;
    px_outcome end = Exited(0);
    EXPECT_TRUE(px_record_finish(job->record, &end));
    px_record_unref(r2);
    px_record_unref(r1);
}

// Per minute: one bucket per tenant for the cluster.
TEST_F(RedisStore, PerMinuteQuotaIsOneBucketForTheCluster) {
    Store a = OpenWithQuotas(Config(srv_, "a", nullptr), 0, 0, 2);
    Store b = OpenWithQuotas(Config(srv_, "b", nullptr), 0, 0, 2);
    px_error err = PX_ERROR_INIT;
    px_record *r1 = AdmitAs(a.get(), "alice", &err);
    ASSERT_NE(r1, nullptr) << err.msg;
    px_record *r2 = AdmitAs(b.get(), "alice", &err);
    ASSERT_NE(r2, nullptr) << err.msg;
    EXPECT_EQ(AdmitAs(a.get(), "alice", &err), nullptr);
    EXPECT_EQ(err.code, PX_E_EXHAUSTED);
    EXPECT_TRUE(Mentions(err, "tenant 'alice': quota of 2 executions per minute reached "
                              "(--tenant-max-per-minute; the next one fits in "))
        << err.msg;
    px_record *other = AdmitAs(b.get(), "bob", &err);
    ASSERT_NE(other, nullptr) << err.msg;
    for (px_record *r : {r1, r2, other})
        px_record_unref(r);
}

// A worker that lost its lease: its run ends FAILED/LOST through the reap,
// which gives the tenant's slot back too.
TEST_F(RedisStore, ALostRunGivesItsQuotaSlotBack) {
    FakeRunner runner;
    px_redis_store_config wc = Config(srv_, "worker", &runner);
    wc.redis.lease_ms = 300;
    Store front = OpenWithQuotas(Config(srv_, "front", nullptr), 1, 0, 0);
    Store worker = OpenWithQuotas(wc, 1, 0, 0);
    px_error err = PX_ERROR_INIT;
    px_record *r = AdmitAs(front.get(), "alice", &err);
    ASSERT_NE(r, nullptr) << err.msg;
    FakeRunner::Job *job = runner.WaitJob(1);
    ASSERT_NE(job, nullptr);
    px_record_set_running(job->record, 1000);
    EXPECT_EQ(AdmitAs(front.get(), "alice", &err), nullptr);
    EXPECT_EQ(err.code, PX_E_EXHAUSTED);
    ASSERT_EQ(srv_.Int({"DEL", "px:t:node:worker"}), 1);
    ASSERT_TRUE(runner.WaitKilled(job));
    ASSERT_TRUE(WaitTerminal(r));
    px_outcome late = Exited(0);
    EXPECT_FALSE(px_record_finish(job->record, &late)); // fenced
    px_record_view v = Snapshot(r, false);
    EXPECT_EQ(v.outcome.reason, PX_REASON_LOST);
    px_record_view_release(&v);
    px_record *next = AdmitAs(front.get(), "alice", &err);
    ASSERT_NE(next, nullptr) << err.msg;
    px_record_unref(next);
    px_record_unref(r);
}

// How often Redis ran `command` (its INFO commandstats calls), inside
// scripts or not.
long long CommandCalls(RedisServer &srv, const std::string &command) {
    std::string info = srv.Str({"INFO", "commandstats"});
    std::string key = "cmdstat_" + command + ":calls=";
    size_t at = info.find(key);
    return at == std::string::npos ? 0 : atoll(info.c_str() + at + key.size());
}

// A view by id is one read (the record with its output) and sees only the
// caller's tenant's records, as px_store_get_as does.
TEST_F(RedisStore, AViewByIdIsOneReadAndKeepsTenantsApart) {
    OpenFrontAndWorker();
    Store other = Open(Config(srv_, "other", nullptr));
    px_job_spec *spec = Spec();
    snprintf(spec->tenant, sizeof spec->tenant, "%s", "alice");
    px_error err = PX_ERROR_INIT;
    bool existed = false;
    px_record *r = px_store_admit(front_.get(), "", nullptr, spec, "test", &existed, &err);
    ASSERT_NE(r, nullptr) << err.msg;
    std::string id = px_record_id(r);
    FakeRunner::Job *job = runner_.WaitJob(1);
    ASSERT_NE(job, nullptr);
    px_record_set_running(job->record, 1000);
    px_record_append(job->record, PX_STREAM_STDOUT, (const uint8_t *)"out", 3);
    px_record_view v;
    // The counter is Redis-wide: the worker's keeper and claimers may run a
    // script in the same window. A view that needed two scripts could never
    // show one, so the fewest calls seen over a few views is the view's own.
    long long fewest = LLONG_MAX;
    for (int attempt = 0; attempt < 5 && fewest != 1; attempt++) {
        long long before = CommandCalls(srv_, "evalsha");
        ASSERT_EQ(px_store_view_as(other.get(), "alice", id.c_str(), true, &v, &err), 0) << err.msg;
        fewest = std::min(fewest, CommandCalls(srv_, "evalsha") - before);
        px_record_view_release(&v);
    }
    EXPECT_EQ(fewest, 1);
    ASSERT_EQ(px_store_view_as(other.get(), "alice", id.c_str(), true, &v, &err), 0) << err.msg;
    EXPECT_EQ(v.status, PX_STATUS_RUNNING);
    EXPECT_EQ(v.outcome.status, PX_STATUS_RUNNING);
    EXPECT_EQ(v.outcome.started_at_ms, 1000);
    EXPECT_EQ(Out(v), "out");
    EXPECT_STREQ(v.id, id.c_str());
    px_record_view_release(&v);
    EXPECT_EQ(px_store_view_as(other.get(), "bob", id.c_str(), true, &v, &err), -1);
    EXPECT_EQ(err.code, PX_E_NOT_FOUND);
    EXPECT_EQ(std::string(err.msg), "execution '" + id + "' not found");
    EXPECT_EQ(px_store_view_as(other.get(), "alice", "exe_00000000-0000-4000-8000-000000000000",
                               false, &v, &err),
              -1);
    EXPECT_EQ(err.code, PX_E_NOT_FOUND);
    px_outcome end = Exited(4);
    EXPECT_TRUE(px_record_finish(job->record, &end));
    ASSERT_EQ(px_store_view_as(other.get(), "alice", id.c_str(), false, &v, &err), 0) << err.msg;
    EXPECT_EQ(v.status, PX_STATUS_COMPLETED);
    EXPECT_EQ(v.outcome.exit_code, 4);
    EXPECT_EQ(v.stdout_len, 0u); // without output
    px_record_view_release(&v);
    px_record_unref(r);
}

// Counts the expirations set on keys matching `pattern` (keyspace
// notifications, subscribed before the events): Expires() returns those
// Redis made before it answered.
class ExpireCounter {
  public:
    ExpireCounter(RedisServer &srv, const std::string &pattern) {
        freeReplyObject(srv.Command({"CONFIG", "SET", "notify-keyspace-events", "Kg"}));
        c_ = redisConnectUnix(srv.socket_path().c_str());
        EXPECT_TRUE(c_ && !c_->err);
        auto *r = static_cast<redisReply *>(
            redisCommand(c_, "PSUBSCRIBE __keyspace@*__:%s", pattern.c_str()));
        EXPECT_NE(r, nullptr);
        freeReplyObject(r);
    }
    ~ExpireCounter() { redisFree(c_); }

    // A PING on the subscription is answered after every notification of
    // the commands Redis ran before it.
    long long Expires() {
        EXPECT_EQ(redisAppendCommand(c_, "PING"), REDIS_OK);
        for (;;) {
            void *v = nullptr;
            if (redisGetReply(c_, &v) != REDIS_OK || !v) {
                ADD_FAILURE() << "subscription: " << c_->errstr;
                return -1;
            }
            auto *r = static_cast<redisReply *>(v);
            bool pong = r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
                        std::string(r->element[0]->str, r->element[0]->len) == "pong";
            if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
                std::string(r->element[3]->str, r->element[3]->len) == "expire")
                expires_++;
            freeReplyObject(r);
            if (pong)
                return expires_;
        }
    }

  private:
    redisContext *c_ = nullptr;
    long long expires_ = 0;
};

// The worker's lease is renewed on its period (a third of the lease), not
// at every run's end: a renewal is a round trip, as many as executions.
// Counted on the worker's lease key only (other nodes' renewals and the
// records' expirations are not renewals of it).
TEST_F(RedisStore, RunsEndingDoNotRenewTheLease) {
    FakeRunner runner;
    px_redis_store_config wc = Config(srv_, "worker", &runner);
    wc.redis.lease_ms = 3600000; // renewed every 20 minutes
    Store front = Open(Config(srv_, "front", nullptr));
    Store worker = Open(wc);
    ExpireCounter lease(srv_, "*node:worker");
    constexpr int kRuns = 5;
    for (int i = 1; i <= kRuns; i++) {
        px_record *r = Admit(front.get());
        FakeRunner::Job *job = runner.WaitJob(i);
        ASSERT_NE(job, nullptr);
        px_outcome end = Exited(0);
        EXPECT_TRUE(px_record_finish(job->record, &end));
        px_record_unref(r);
    }
    // The next claim shows the last end was seen by the worker's threads.
    px_record *last = Admit(front.get());
    ASSERT_NE(runner.WaitJob(kRuns + 1), nullptr);
    EXPECT_EQ(lease.Expires(), 0);
    // What a renewal does, counted: the counter sees it.
    std::string key = srv_.Str(
        {"EVAL", "return redis.call('KEYS', ARGV[1])[1]", "0", "*node:worker"});
    ASSERT_FALSE(key.empty());
    EXPECT_EQ(srv_.Int({"PEXPIRE", key, "3600000"}), 1);
    EXPECT_EQ(lease.Expires(), 1);
    px_record_unref(last);
}

// Redis away mid-run: the owner's output and end are kept in memory and
// written, in order and once, when Redis is back.
TEST_F(RedisStore, OutputAndEndWrittenWhileRedisWasAwayArriveWhenItReturns) {
    FakeRunner runner;
    px_redis_store_config wc = Config(srv_, "worker", &runner);
    wc.redis.backoff_min_ms = 10;
    wc.redis.backoff_max_ms = 50;
    Store front = Open(Config(srv_, "front", nullptr));
    Store worker = Open(wc);
    px_record *r = Admit(front.get());
    FakeRunner::Job *job = runner.WaitJob(1);
    ASSERT_NE(job, nullptr);
    px_record_set_running(job->record, 1000);
    px_record_append(job->record, PX_STREAM_STDOUT, (const uint8_t *)"a", 1);
    srv_.Stop();
    px_record_append(job->record, PX_STREAM_STDOUT, (const uint8_t *)"bc", 2);
    px_record_append(job->record, PX_STREAM_STDERR, (const uint8_t *)"e", 1);
    px_record_append(job->record, PX_STREAM_STDOUT, (const uint8_t *)"d", 1);
    px_outcome end = Exited(7);
    EXPECT_TRUE(px_record_finish(job->record, &end));
    srv_.Start();
    ASSERT_TRUE(WaitTerminal(r));
    px_record_view v = Snapshot(r);
    EXPECT_EQ(v.status, PX_STATUS_COMPLETED);
    EXPECT_EQ(v.outcome.exit_code, 7);
    EXPECT_EQ(Out(v), "abcd");
    EXPECT_EQ(std::string(reinterpret_cast<const char *>(v.stderr_data), v.stderr_len), "e");
    EXPECT_EQ(v.log_len, 5);
    px_record_view_release(&v);
    px_record_unref(r);
}

// An end that Redis refused during a blip wakes the keeper, which writes it
// as soon as Redis answers: not at the end of its period (20 minutes here,
// far past the wait).
TEST_F(RedisStore, AnEndLeftWaitingIsWrittenWithoutWaitingForTheKeepersPeriod) {
    FakeRunner runner;
    px_redis_store_config wc = Config(srv_, "worker", &runner);
    wc.redis.lease_ms = 3600000;
    wc.redis.backoff_min_ms = 10;
    wc.redis.backoff_max_ms = 50;
    Store front = Open(Config(srv_, "front", nullptr));
    Store worker = Open(wc);
    px_record *r = Admit(front.get());
    FakeRunner::Job *job = runner.WaitJob(1);
    ASSERT_NE(job, nullptr);
    px_record_set_running(job->record, 1000);
    srv_.Stop();
    px_outcome end = Exited(3);
    EXPECT_TRUE(px_record_finish(job->record, &end));
    srv_.Start();
    ASSERT_TRUE(WaitTerminal(r));
    px_record_view v = Snapshot(r);
    EXPECT_EQ(v.status, PX_STATUS_COMPLETED);
    EXPECT_EQ(v.outcome.exit_code, 3);
    px_record_view_release(&v);
    px_record_unref(r);
}

// Redis away past the grace: the worker kills its runs; their end (FAILED,
// LOST, naming --store-grace-s) is written when Redis answers again.
TEST_F(RedisStore, RedisAwayPastTheGraceKillsTheRunsAndTheirEndIsWrittenLater) {
    FakeRunner runner;
    px_redis_store_config wc = Config(srv_, "worker", &runner);
    wc.grace_ms = 300; // the lease (60 s) holds meanwhile
    wc.redis.backoff_min_ms = 10;
    wc.redis.backoff_max_ms = 50;
    Store front = Open(Config(srv_, "front", nullptr));
    Store worker = Open(wc);
    px_record *r = Admit(front.get());
    FakeRunner::Job *job = runner.WaitJob(1);
    ASSERT_NE(job, nullptr);
    px_record_set_running(job->record, 1000);
    px_record_append(job->record, PX_STREAM_STDOUT, (const uint8_t *)"x", 1);
    srv_.Stop();
    ASSERT_TRUE(runner.WaitKilled(job));
    EXPECT_EQ(job->killed, PX_KILL_SHUTDOWN);
    // The runner ends the killed run as the executor does.
    px_outcome end = Exited(137);
    end.status = PX_STATUS_FAILED;
    end.reason = PX_REASON_SANDBOX_ERROR;
    EXPECT_TRUE(px_record_finish(job->record, &end));
    srv_.Start();
    ASSERT_TRUE(WaitTerminal(r));
    px_record_view v = Snapshot(r);
    EXPECT_EQ(v.status, PX_STATUS_FAILED);
    EXPECT_EQ(v.outcome.reason, PX_REASON_LOST);
    EXPECT_NE(std::string(v.outcome.error).find("--store-grace-s"), std::string::npos)
        << v.outcome.error;
    EXPECT_EQ(Out(v), "x");
    px_record_view_release(&v);
    px_record_unref(r);
}

} // namespace
