// The Redis store against a real redis-server (private, on a unix socket).
#include "server/store/redis/rstore.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/server/store/redis/redis_server.h"

namespace {

using pxtest::RedisServer;

struct StoreFree {
    void operator()(px_rstore *rs) const { px_rstore_free(rs); }
};
using Store = std::unique_ptr<px_rstore, StoreFree>;

px_rstore_config Config(const RedisServer &srv, const char *node) {
    px_rstore_config c = {};
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_redis_target_parse(srv.url().c_str(), &c.target, &err), 0) << err.msg;
    c.ns = "test";
    c.node = node;
    c.lease_ms = 60000;
    c.retention_ms = 3600000;
    c.max_connections = 4;
    c.connect_timeout_ms = 2000;
    c.command_timeout_ms = 5000;
    c.backoff_min_ms = 0;
    c.backoff_max_ms = 0;
    return c;
}

Store Open(const px_rstore_config &c) {
    px_error err = PX_ERROR_INIT;
    px_rstore *rs = px_rstore_new(&c, &err);
    EXPECT_NE(rs, nullptr) << err.msg;
    return Store(rs);
}

std::string Create(px_rstore *rs, const std::string &job = "JOB", const char *rid = "",
                   const char *digest = "d1") {
    char id[PX_ID_LEN + 1];
    char dig[PX_RSTORE_DIGEST_MAX + 1];
    bool existed;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_rstore_create(rs, "", rid, digest, reinterpret_cast<const uint8_t *>(job.data()),
                               job.size(), 100, nullptr, id, &existed, dig, &err),
              0)
        << err.msg;
    return id;
}

int64_t Lease(px_rstore *rs) {
    int64_t token = 0;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_rstore_lease_acquire(rs, &token, &err), 0) << err.msg;
    return token;
}

// Claims the next job (without waiting); returns its id ("" if none).
std::string Claim(px_rstore *rs, int64_t token, std::string *job = nullptr) {
    px_rstore_job j;
    px_error err = PX_ERROR_INIT;
    int rc = px_rstore_claim(rs, token, 0, &j, &err);
    EXPECT_GE(rc, 0) << err.msg;
    if (rc != PX_RSTORE_DONE)
        return "";
    if (job)
        job->assign(reinterpret_cast<char *>(j.job), j.job_len);
    free(j.job);
    return j.id;
}

int Append(px_rstore *rs, const std::string &id, int64_t token, int64_t off,
           const std::string &data, px_stream s = PX_STREAM_STDOUT) {
    px_error err = PX_ERROR_INIT;
    int rc = px_rstore_append(rs, id.c_str(), token, off, s,
                              reinterpret_cast<const uint8_t *>(data.data()), data.size(), &err);
    EXPECT_GE(rc, 0) << err.msg;
    return rc;
}

px_outcome Exited(int code) {
    px_outcome o = {};
    o.status = PX_STATUS_COMPLETED;
    o.reason = PX_REASON_EXITED;
    o.ran = true;
    o.exit_code = code;
    o.started_at_ms = 1000;
    o.finished_at_ms = 2000;
    o.peak_memory_bytes = 123456;
    o.cpu_time_ms = 42;
    return o;
}

int Finish(px_rstore *rs, const std::string &id, int64_t token, const px_outcome &o) {
    px_error err = PX_ERROR_INIT;
    int rc = px_rstore_finish(rs, id.c_str(), token, &o, &err);
    EXPECT_GE(rc, 0) << err.msg;
    return rc;
}

struct View {
    px_rstore_view v;
    ~View() { px_record_view_release(&v.record); }
};

void Get(px_rstore *rs, const std::string &id, View *out, bool with_output = false) {
    px_error err = PX_ERROR_INIT;
    ASSERT_EQ(px_rstore_get(rs, id.c_str(), with_output, &out->v, &err), 0) << err.msg;
}

std::string Key(const std::string &rest) {
    return "px:test:" + rest;
}

class RStore : public ::testing::Test {
  protected:
    RedisServer srv_;
};

TEST_F(RStore, LifecycleThroughTheQueue) {
    Store a = Open(Config(srv_, "node-a"));
    int64_t token = Lease(a.get());
    ASSERT_GT(token, 0);
    std::string id = Create(a.get(), std::string("packed\0job", 10));
    ASSERT_EQ(id.size(), static_cast<size_t>(PX_ID_LEN));
    {
        View v;
        Get(a.get(), id, &v);
        EXPECT_EQ(v.v.record.status, PX_STATUS_PENDING);
        EXPECT_STREQ(v.v.owner, "");
    }
    std::string job;
    ASSERT_EQ(Claim(a.get(), token, &job), id);
    EXPECT_EQ(job, std::string("packed\0job", 10));
    EXPECT_EQ(Claim(a.get(), token), ""); // the queue is empty now
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_rstore_set_running(a.get(), id.c_str(), token, 1000, &err), PX_RSTORE_DONE);
    EXPECT_EQ(px_rstore_set_running(a.get(), id.c_str(), token, 1001, &err), PX_RSTORE_NOOP);
    EXPECT_EQ(Append(a.get(), id, token, 0, "hello "), PX_RSTORE_DONE);
    EXPECT_EQ(Append(a.get(), id, token, 6, "oops", PX_STREAM_STDERR), PX_RSTORE_DONE);
    EXPECT_EQ(Append(a.get(), id, token, 10, "world"), PX_RSTORE_DONE);
    {
        View v;
        Get(a.get(), id, &v, true);
        EXPECT_EQ(v.v.record.status, PX_STATUS_RUNNING);
        EXPECT_EQ(v.v.record.outcome.started_at_ms, 1000);
        EXPECT_EQ(v.v.record.log_len, 15);
        EXPECT_STREQ(v.v.owner, "node-a");
        EXPECT_EQ(v.v.token, token);
    }
    EXPECT_EQ(Finish(a.get(), id, token, Exited(3)), PX_RSTORE_DONE);
    EXPECT_EQ(Finish(a.get(), id, token, Exited(4)), PX_RSTORE_DONE); // the same owner's repeat
    View v;
    Get(a.get(), id, &v, true);
    EXPECT_EQ(v.v.record.status, PX_STATUS_COMPLETED);
    EXPECT_EQ(v.v.record.outcome.status, PX_STATUS_COMPLETED);
    EXPECT_EQ(v.v.record.outcome.reason, PX_REASON_EXITED);
    EXPECT_EQ(v.v.record.outcome.exit_code, 3);
    EXPECT_TRUE(v.v.record.outcome.ran);
    EXPECT_EQ(v.v.record.outcome.peak_memory_bytes, 123456);
    EXPECT_EQ(v.v.record.outcome.cpu_time_ms, 42);
    EXPECT_EQ(v.v.record.outcome.finished_at_ms, 2000);
    EXPECT_EQ(std::string(reinterpret_cast<char *>(v.v.record.stdout_data), v.v.record.stdout_len),
              "hello world");
    EXPECT_EQ(std::string(reinterpret_cast<char *>(v.v.record.stderr_data), v.v.record.stderr_len),
              "oops");
    // Retention: the record, its output and nothing else of it remain, with a TTL.
    EXPECT_GT(srv_.Int({"PTTL", Key("exe:" + id)}), 0);
    EXPECT_GT(srv_.Int({"PTTL", Key("out:" + id)}), 0);
    EXPECT_EQ(srv_.Int({"EXISTS", Key("req:" + id)}), 0);
    EXPECT_EQ(srv_.Int({"SCARD", Key("run:node-a")}), 0);
    EXPECT_EQ(srv_.Int({"XLEN", Key("queue")}), 0);
}

TEST_F(RStore, KeepsTheEvalReport) {
    Store a = Open(Config(srv_, "node-a"));
    int64_t token = Lease(a.get());
    std::string with_result = Create(a.get(), "job");
    ASSERT_EQ(Claim(a.get(), token), with_result);
    px_outcome o = Exited(0);
    o.py.result = const_cast<char *>("'caf\xc3\xa9'");
    EXPECT_EQ(Finish(a.get(), with_result, token, o), PX_RSTORE_DONE);
    std::string raised = Create(a.get(), "job");
    ASSERT_EQ(Claim(a.get(), token), raised);
    o = Exited(1);
    o.py.error_type = const_cast<char *>("NameError");
    o.py.error_line = 7;
    o.py.error_message = const_cast<char *>("name 'x' is not defined");
    EXPECT_EQ(Finish(a.get(), raised, token, o), PX_RSTORE_DONE);
    std::string plain = Create(a.get(), "job");
    ASSERT_EQ(Claim(a.get(), token), plain);
    EXPECT_EQ(Finish(a.get(), plain, token, Exited(0)), PX_RSTORE_DONE);

    View v1, v2, v3;
    Get(a.get(), with_result, &v1);
    const px_py_report &p1 = v1.v.record.outcome.py;
    ASSERT_NE(p1.result, nullptr);
    EXPECT_STREQ(p1.result, "'caf\xc3\xa9'");
    EXPECT_EQ(p1.error_type, nullptr);
    Get(a.get(), raised, &v2);
    const px_py_report &p2 = v2.v.record.outcome.py;
    EXPECT_EQ(p2.result, nullptr);
    EXPECT_STREQ(p2.error_type, "NameError");
    EXPECT_EQ(p2.error_line, 7);
    EXPECT_STREQ(p2.error_message, "name 'x' is not defined");
    Get(a.get(), plain, &v3);
    const px_py_report &p3 = v3.v.record.outcome.py;
    EXPECT_EQ(p3.result, nullptr);
    EXPECT_EQ(p3.error_type, nullptr);
    EXPECT_EQ(p3.error_message, nullptr);
}

TEST_F(RStore, ReadsByOffsetAcrossChunksAndStreams) {
    Store a = Open(Config(srv_, "node-a"));
    int64_t token = Lease(a.get());
    std::string id = Create(a.get());
    ASSERT_EQ(Claim(a.get(), token), id);
    px_log_chunk c;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_rstore_read(a.get(), id.c_str(), 0, 100, &c, &err), PX_READ_WAIT);
    Append(a.get(), id, token, 0, "abc");
    Append(a.get(), id, token, 3, "DEFG", PX_STREAM_STDERR);
    Append(a.get(), id, token, 7, "hi");
    struct Case {
        int64_t off;
        size_t max;
        const char *data;
        px_stream stream;
    } cases[] = {
        {0, 100, "abc", PX_STREAM_STDOUT},  {1, 100, "bc", PX_STREAM_STDOUT},
        {3, 100, "DEFG", PX_STREAM_STDERR}, {4, 2, "EF", PX_STREAM_STDERR},
        {6, 100, "G", PX_STREAM_STDERR},    {7, 1, "h", PX_STREAM_STDOUT},
        {8, 100, "i", PX_STREAM_STDOUT},
    };
    for (const Case &k : cases) {
        ASSERT_EQ(px_rstore_read(a.get(), id.c_str(), k.off, k.max, &c, &err), PX_READ_DATA)
            << k.off << ": " << err.msg;
        EXPECT_EQ(std::string(reinterpret_cast<char *>(c.data), c.len), k.data) << k.off;
        EXPECT_EQ(c.stream, k.stream) << k.off;
        EXPECT_EQ(c.offset, k.off);
        free(c.data);
    }
    EXPECT_EQ(px_rstore_read(a.get(), id.c_str(), 9, 100, &c, &err), PX_READ_WAIT);
    EXPECT_EQ(px_rstore_read(a.get(), id.c_str(), 50, 100, &c, &err), PX_READ_WAIT);
    Finish(a.get(), id, token, Exited(0));
    EXPECT_EQ(px_rstore_read(a.get(), id.c_str(), 9, 100, &c, &err), PX_READ_EOF);
    EXPECT_EQ(px_rstore_read(a.get(), id.c_str(), 10, 100, &c, &err), -1);
    EXPECT_EQ(err.code, PX_E_OUT_OF_RANGE);
    EXPECT_EQ(px_rstore_read(a.get(), id.c_str(), -1, 100, &c, &err), -1);
    EXPECT_EQ(err.code, PX_E_INVALID);
    EXPECT_EQ(px_rstore_read(a.get(), "exe_00000000-0000-4000-8000-000000000000", 0, 1, &c, &err),
              -1);
    EXPECT_EQ(err.code, PX_E_NOT_FOUND);
    // Appends after the end are ignored.
    EXPECT_EQ(Append(a.get(), id, token, 9, "late"), PX_RSTORE_ENDED);
}

// Like the in-memory log, a read runs on across chunks of the same stream.
TEST_F(RStore, ReadsJoinConsecutiveChunksOfOneStream) {
    Store a = Open(Config(srv_, "node-a"));
    int64_t token = Lease(a.get());
    std::string id = Create(a.get());
    ASSERT_EQ(Claim(a.get(), token), id);
    Append(a.get(), id, token, 0, "ab");
    Append(a.get(), id, token, 2, "cd");
    Append(a.get(), id, token, 4, "ef");
    Append(a.get(), id, token, 6, "XY", PX_STREAM_STDERR);
    px_log_chunk c;
    px_error err = PX_ERROR_INIT;
    ASSERT_EQ(px_rstore_read(a.get(), id.c_str(), 1, 100, &c, &err), PX_READ_DATA);
    EXPECT_EQ(std::string(reinterpret_cast<char *>(c.data), c.len), "bcdef");
    free(c.data);
    ASSERT_EQ(px_rstore_read(a.get(), id.c_str(), 1, 4, &c, &err), PX_READ_DATA);
    EXPECT_EQ(std::string(reinterpret_cast<char *>(c.data), c.len), "bcde");
    free(c.data);
}

TEST_F(RStore, AppendIsSafeToRepeatAndRefusesGaps) {
    Store a = Open(Config(srv_, "node-a"));
    int64_t token = Lease(a.get());
    std::string id = Create(a.get());
    ASSERT_EQ(Claim(a.get(), token), id);
    EXPECT_EQ(Append(a.get(), id, token, 0, "abc"), PX_RSTORE_DONE);
    EXPECT_EQ(Append(a.get(), id, token, 0, "abc"), PX_RSTORE_DONE); // a retry
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_rstore_append(a.get(), id.c_str(), token, 5, PX_STREAM_STDOUT,
                               reinterpret_cast<const uint8_t *>("x"), 1, &err),
              -1);
    EXPECT_NE(std::string(err.msg).find("log holds 3 bytes"), std::string::npos) << err.msg;
    View v;
    Get(a.get(), id, &v);
    EXPECT_EQ(v.v.record.log_len, 3);
}

TEST_F(RStore, RequestIdIsIdempotentAcrossNodes) {
    Store a = Open(Config(srv_, "node-a"));
    Store b = Open(Config(srv_, "node-b"));
    std::string first = Create(a.get(), "J", "req-1", "digest-1");
    char id[PX_ID_LEN + 1], dig[PX_RSTORE_DIGEST_MAX + 1];
    bool existed = false;
    px_error err = PX_ERROR_INIT;
    ASSERT_EQ(px_rstore_create(b.get(), "", "req-1", "digest-2",
                               reinterpret_cast<const uint8_t *>("J"), 1, 100, nullptr, id,
                               &existed, dig, &err),
              0);
    EXPECT_TRUE(existed);
    EXPECT_EQ(first, id);
    EXPECT_STREQ(dig, "digest-1");
    EXPECT_EQ(srv_.Int({"XLEN", Key("queue")}), 1);
    // The request_id expires with its record.
    int64_t token = Lease(b.get());
    ASSERT_EQ(Claim(b.get(), token), first);
    Finish(b.get(), first, token, Exited(0));
    EXPECT_GT(srv_.Int({"PTTL", Key("rid:req-1")}), 0);
}

TEST_F(RStore, QueueLimitIsClusterWide) {
    Store a = Open(Config(srv_, "node-a"));
    Store b = Open(Config(srv_, "node-b"));
    char id[PX_ID_LEN + 1], dig[PX_RSTORE_DIGEST_MAX + 1];
    bool existed;
    px_error err = PX_ERROR_INIT;
    const uint8_t job[] = "J";
    ASSERT_EQ(px_rstore_create(a.get(), "", "", "", job, 1, 2, nullptr, id, &existed, dig, &err),
              0);
    ASSERT_EQ(px_rstore_create(b.get(), "", "", "", job, 1, 2, nullptr, id, &existed, dig, &err),
              0);
    EXPECT_EQ(px_rstore_create(a.get(), "", "", "", job, 1, 2, nullptr, id, &existed, dig, &err),
              -1);
    EXPECT_EQ(err.code, PX_E_EXHAUSTED);
    EXPECT_NE(std::string(err.msg).find("queue is full"), std::string::npos) << err.msg;
    // A claimed job leaves the queue.
    int64_t token = Lease(b.get());
    ASSERT_NE(Claim(b.get(), token), "");
    EXPECT_EQ(px_rstore_create(a.get(), "", "", "", job, 1, 2, nullptr, id, &existed, dig, &err), 0)
        << err.msg;
}

TEST_F(RStore, KillWhileQueuedEndsItAndItNeverRuns) {
    Store a = Open(Config(srv_, "node-a"));
    Store b = Open(Config(srv_, "node-b"));
    std::string id = Create(a.get());
    char owner[PX_RSTORE_NAME_MAX + 1];
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_rstore_kill(b.get(), id.c_str(), PX_KILL_RPC, owner, &err), PX_RSTORE_KILL_QUEUED);
    View v;
    Get(a.get(), id, &v);
    EXPECT_EQ(v.v.record.status, PX_STATUS_KILLED);
    EXPECT_EQ(v.v.record.outcome.reason, PX_REASON_KILLED);
    EXPECT_FALSE(v.v.record.outcome.ran);
    int64_t token = Lease(a.get());
    EXPECT_EQ(Claim(a.get(), token), "");
    EXPECT_EQ(srv_.Int({"XLEN", Key("queue")}), 0);
    EXPECT_EQ(px_rstore_kill(b.get(), id.c_str(), PX_KILL_RPC, owner, &err), PX_RSTORE_KILL_ENDED);
    px_log_chunk c;
    EXPECT_EQ(px_rstore_read(b.get(), id.c_str(), 0, 10, &c, &err), PX_READ_EOF);
}

TEST_F(RStore, KillOfAClaimedJobTellsItsOwner) {
    Store a = Open(Config(srv_, "node-a"));
    Store b = Open(Config(srv_, "node-b"));
    int64_t token = Lease(a.get());
    std::string id = Create(b.get());
    ASSERT_EQ(Claim(a.get(), token), id);
    char owner[PX_RSTORE_NAME_MAX + 1];
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_rstore_kill(b.get(), id.c_str(), PX_KILL_CANCEL, owner, &err),
              PX_RSTORE_KILL_SENT);
    EXPECT_STREQ(owner, "node-a");
    EXPECT_EQ(px_rstore_kill(b.get(), id.c_str(), PX_KILL_RPC, owner, &err), PX_RSTORE_KILL_SENT);
    View v;
    Get(b.get(), id, &v);
    EXPECT_EQ(v.v.kill, PX_KILL_CANCEL);             // the first cause is kept
    EXPECT_EQ(v.v.record.status, PX_STATUS_PENDING); // the owner ends it
}

TEST_F(RStore, NodeNamesAreExclusiveWhileLeased) {
    Store a = Open(Config(srv_, "node-a"));
    Store a2 = Open(Config(srv_, "node-a"));
    int64_t token = Lease(a.get());
    int64_t t2;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_rstore_lease_acquire(a2.get(), &t2, &err), -1);
    EXPECT_EQ(err.code, PX_E_EXHAUSTED);
    EXPECT_EQ(px_rstore_lease_renew(a.get(), token, &err), PX_RSTORE_DONE);
    EXPECT_EQ(px_rstore_lease_release(a.get(), token, &err), 0);
    EXPECT_GT(Lease(a2.get()), token);
}

// A node whose lease expired (paused past it) cannot write, the sweep ends
// its executions FAILED/LOST, and its next lease does not revive old tokens.
TEST_F(RStore, AStaleOwnerIsFenced) {
    Store a = Open(Config(srv_, "node-a"));
    Store b = Open(Config(srv_, "node-b"));
    int64_t token = Lease(a.get());
    std::string running = Create(b.get());
    std::string claimed = Create(b.get());
    ASSERT_EQ(Claim(a.get(), token), running);
    ASSERT_EQ(Claim(a.get(), token), claimed);
    px_error err = PX_ERROR_INIT;
    ASSERT_EQ(px_rstore_set_running(a.get(), running.c_str(), token, 1000, &err), PX_RSTORE_DONE);
    ASSERT_EQ(Append(a.get(), running, token, 0, "before"), PX_RSTORE_DONE);

    ASSERT_EQ(srv_.Int({"DEL", Key("node:node-a")}), 1); // the lease expires

    // Before any sweep: every write of the stale owner is refused.
    EXPECT_EQ(Append(a.get(), running, token, 6, "after"), PX_RSTORE_FENCED);
    EXPECT_EQ(Finish(a.get(), running, token, Exited(0)), PX_RSTORE_FENCED);
    EXPECT_EQ(px_rstore_set_running(a.get(), claimed.c_str(), token, 1, &err), PX_RSTORE_FENCED);
    EXPECT_EQ(px_rstore_lease_renew(a.get(), token, &err), PX_RSTORE_FENCED);
    std::string queued = Create(b.get());
    px_rstore_job j;
    EXPECT_EQ(px_rstore_claim(a.get(), token, 0, &j, &err), PX_RSTORE_FENCED);

    unsigned lost = 0;
    ASSERT_EQ(px_rstore_sweep(b.get(), &lost, &err), 0) << err.msg;
    EXPECT_EQ(lost, 2u);
    for (const std::string &id : {running, claimed}) {
        View v;
        Get(b.get(), id, &v, true);
        EXPECT_EQ(v.v.record.status, PX_STATUS_FAILED) << id;
        EXPECT_EQ(v.v.record.outcome.reason, PX_REASON_LOST) << id;
        EXPECT_NE(std::string(v.v.record.outcome.error).find("node 'node-a'"), std::string::npos)
            << v.v.record.outcome.error;
    }
    {
        View v;
        Get(b.get(), running, &v, true);
        EXPECT_EQ(
            std::string(reinterpret_cast<char *>(v.v.record.stdout_data), v.v.record.stdout_len),
            "before");
        EXPECT_EQ(v.v.record.outcome.started_at_ms, 1000);
    }
    // The job node-a read but never claimed goes to another node.
    int64_t tb = Lease(b.get());
    EXPECT_EQ(Claim(b.get(), tb), queued);

    // node-a comes back with a new lease: its old token stays dead.
    int64_t token2 = Lease(a.get());
    EXPECT_GT(token2, token);
    EXPECT_EQ(Finish(a.get(), running, token, Exited(0)), PX_RSTORE_ENDED);
    EXPECT_EQ(Append(a.get(), running, token2, 6, "after"), PX_RSTORE_ENDED);
}

// A job a node read from the queue but never claimed (it died between the
// two steps) runs elsewhere; a claimed one is never handed out again.
TEST_F(RStore, UnclaimedJobsOfADeadNodeRunElsewhereClaimedOnesNever) {
    Store a = Open(Config(srv_, "node-a"));
    Store b = Open(Config(srv_, "node-b"));
    int64_t ta = Lease(a.get());
    std::string claimed = Create(b.get());
    ASSERT_EQ(Claim(a.get(), ta), claimed);
    std::string read_only = Create(b.get());
    // node-a reads the entry and dies before its claim script runs.
    redisReply *r = srv_.Command(
        {"XREADGROUP", "GROUP", "workers", "node-a", "COUNT", "1", "STREAMS", Key("queue"), ">"});
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    ASSERT_EQ(srv_.Int({"DEL", Key("node:node-a")}), 1);
    unsigned lost = 0;
    px_error err = PX_ERROR_INIT;
    ASSERT_EQ(px_rstore_sweep(b.get(), &lost, &err), 0) << err.msg;
    EXPECT_EQ(lost, 1u);
    int64_t tb = Lease(b.get());
    EXPECT_EQ(Claim(b.get(), tb), read_only);
    EXPECT_EQ(Claim(b.get(), tb), "");
    View v;
    Get(b.get(), claimed, &v);
    EXPECT_EQ(v.v.record.outcome.reason, PX_REASON_LOST);
}

// The owner finishing races with the lease expiring and another node's
// sweep: exactly one terminal transition wins, the loser learns it, and no
// output is accepted after the verdict.
TEST_F(RStore, FinishRacesTheSweepOneWinner) {
    Store a = Open(Config(srv_, "node-a"));
    Store b = Open(Config(srv_, "node-b"));
    int finished = 0, lost_total = 0;
    for (int round = 0; round < 40; round++) {
        int64_t token = Lease(a.get());
        std::string id = Create(b.get());
        ASSERT_EQ(Claim(a.get(), token), id);
        std::atomic<int> appended{0};
        int finish_rc = 0;
        std::thread owner([&] {
            int64_t off = 0;
            for (int i = 0; i < 20; i++) {
                if (Append(a.get(), id, token, off, "x") != PX_RSTORE_DONE)
                    break;
                off++;
                appended++;
            }
            finish_rc = Finish(a.get(), id, token, Exited(0));
        });
        std::thread other([&] {
            srv_.Int({"DEL", Key("node:node-a")});
            unsigned lost = 0;
            px_error err = PX_ERROR_INIT;
            EXPECT_EQ(px_rstore_sweep(b.get(), &lost, &err), 0) << err.msg;
            lost_total += static_cast<int>(lost);
        });
        owner.join();
        other.join();
        View v;
        Get(b.get(), id, &v);
        if (v.v.record.status == PX_STATUS_COMPLETED) {
            EXPECT_EQ(finish_rc, PX_RSTORE_DONE);
            finished++;
        } else {
            EXPECT_EQ(v.v.record.status, PX_STATUS_FAILED);
            EXPECT_EQ(v.v.record.outcome.reason, PX_REASON_LOST);
            // Fenced (after the lease went) or ended (after the verdict).
            EXPECT_TRUE(finish_rc == PX_RSTORE_FENCED || finish_rc == PX_RSTORE_ENDED) << finish_rc;
        }
        EXPECT_EQ(v.v.record.log_len, appended.load());
        // The next round's lease for node-a (released if still held).
        px_error err = PX_ERROR_INIT;
        px_rstore_lease_release(a.get(), token, &err);
    }
    EXPECT_EQ(finished + lost_total, 40);
}

// A job is claimed by exactly one of many competing workers.
TEST_F(RStore, ConcurrentClaimsHandOutEachJobOnce) {
    const int kJobs = 60, kNodes = 3;
    Store creator = Open(Config(srv_, "creator"));
    std::vector<std::string> ids;
    for (int i = 0; i < kJobs; i++)
        ids.push_back(Create(creator.get()));
    std::vector<std::vector<std::string>> got(kNodes);
    std::vector<std::thread> threads;
    for (int n = 0; n < kNodes; n++) {
        threads.emplace_back([&, n] {
            std::string name = "worker-" + std::to_string(n);
            Store s = Open(Config(srv_, name.c_str()));
            int64_t token = Lease(s.get());
            for (;;) {
                std::string id = Claim(s.get(), token);
                if (id.empty())
                    break;
                got[n].push_back(id);
            }
        });
    }
    for (auto &t : threads)
        t.join();
    std::vector<std::string> all;
    for (auto &g : got)
        all.insert(all.end(), g.begin(), g.end());
    std::sort(all.begin(), all.end());
    std::sort(ids.begin(), ids.end());
    EXPECT_EQ(all, ids);
}

TEST_F(RStore, ClaimWaitsForAJob) {
    Store a = Open(Config(srv_, "node-a"));
    Store b = Open(Config(srv_, "node-b"));
    int64_t token = Lease(a.get());
    std::string claimed;
    std::thread worker([&] {
        px_rstore_job j;
        px_error err = PX_ERROR_INIT;
        // Blocks until the job below is queued (bounded by 60 s).
        int rc = px_rstore_claim(a.get(), token, 60000, &j, &err);
        ASSERT_EQ(rc, PX_RSTORE_DONE) << err.msg;
        claimed = j.id;
        free(j.job);
    });
    std::string id = Create(b.get());
    worker.join();
    EXPECT_EQ(claimed, id);
}

TEST_F(RStore, SurvivesARestartWithItsAppendOnlyFile) {
    Store a = Open(Config(srv_, "node-a"));
    int64_t token = Lease(a.get());
    std::string id = Create(a.get());
    ASSERT_EQ(Claim(a.get(), token), id);
    Append(a.get(), id, token, 0, "kept");
    srv_.Kill(); // a crash: only the AOF (fsync always) remains
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_rstore_ping(a.get(), &err), -1);
    EXPECT_EQ(err.code, PX_E_UNAVAILABLE);
    View gone;
    EXPECT_EQ(px_rstore_get(a.get(), id.c_str(), false, &gone.v, &err), -1);
    EXPECT_EQ(err.code, PX_E_UNAVAILABLE);
    srv_.Start();
    // The script cache is empty after the restart: EVALSHA falls back to EVAL.
    EXPECT_EQ(Append(a.get(), id, token, 4, "!"), PX_RSTORE_DONE);
    View v;
    Get(a.get(), id, &v, true);
    EXPECT_EQ(std::string(reinterpret_cast<char *>(v.v.record.stdout_data), v.v.record.stdout_len),
              "kept!");
}

TEST_F(RStore, BacksOffAfterAFailedConnect) {
    px_rstore_config c = Config(srv_, "node-a");
    c.backoff_min_ms = 3600000;
    c.backoff_max_ms = 3600000;
    c.max_connections = 1;
    Store a = Open(c);
    srv_.Stop();
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_rstore_ping(a.get(), &err), -1); // the broken connection
    EXPECT_EQ(px_rstore_ping(a.get(), &err), -1); // a failed connect starts the backoff
    srv_.Start();
    EXPECT_EQ(px_rstore_ping(a.get(), &err), -1); // no attempt before the backoff ends
    EXPECT_EQ(err.code, PX_E_UNAVAILABLE);
    EXPECT_NE(std::string(err.msg).find("next attempt in"), std::string::npos) << err.msg;
}

TEST(RStoreAuth, LogsInWithThePasswordAndNamesARefusal) {
    RedisServer srv({"--requirepass", "s3cret"});
    px_rstore_config c = Config(srv, "node-a");
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_rstore_new(&c, &err), nullptr);
    EXPECT_EQ(err.code, PX_E_UNAVAILABLE);
    EXPECT_NE(std::string(err.msg).find("NOAUTH"), std::string::npos) << err.msg;
    c.password = "wrong";
    EXPECT_EQ(px_rstore_new(&c, &err), nullptr);
    EXPECT_NE(std::string(err.msg).find("WRONGPASS"), std::string::npos) << err.msg;
    EXPECT_EQ(std::string(err.msg).find("wrong"), std::string::npos)
        << "the password must not appear in messages: " << err.msg;
    c.password = "s3cret";
    Store a = Open(c);
    EXPECT_EQ(px_rstore_ping(a.get(), &err), 0) << err.msg;
}

TEST(RStoreConfig, RefusesBadNamesAndLimits) {
    px_rstore_config c = {};
    c.ns = "ok";
    c.node = "bad name";
    c.lease_ms = c.retention_ms = 1000;
    c.max_connections = 1;
    c.connect_timeout_ms = c.command_timeout_ms = 1000;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_rstore_new(&c, &err), nullptr);
    EXPECT_EQ(err.code, PX_E_INVALID);
    EXPECT_NE(std::string(err.msg).find("node name"), std::string::npos);
    c.node = "n";
    c.ns = "";
    EXPECT_EQ(px_rstore_new(&c, &err), nullptr);
    EXPECT_NE(std::string(err.msg).find("namespace"), std::string::npos);
}

TEST(RStoreConfig, RefusesBadReplicaWaits) {
    RedisServer srv;
    px_rstore_config c = Config(srv, "n");
    c.min_replicas = PX_RSTORE_MAX_REPLICAS + 1;
    c.replica_timeout_ms = 100;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_rstore_new(&c, &err), nullptr);
    EXPECT_EQ(err.code, PX_E_INVALID);
    EXPECT_NE(std::string(err.msg).find("min replicas"), std::string::npos) << err.msg;
    c.min_replicas = 1;
    c.replica_timeout_ms = 0;
    EXPECT_EQ(px_rstore_new(&c, &err), nullptr);
    EXPECT_NE(std::string(err.msg).find("replica timeout"), std::string::npos) << err.msg;
}

// With min_replicas and a server without replicas, a create fails
// UNAVAILABLE naming the replica wait (its record exists: a retry with the
// request_id finds it), and a claim fails the same way without handing the
// job out; the next claim resumes that one, and no other node gets it.
TEST_F(RStore, MinReplicasRefusesWhatNoReplicaAcknowledged) {
    px_rstore_config c = Config(srv_, "waits");
    c.min_replicas = 1;
    c.replica_timeout_ms = 20;
    Store w = Open(c);
    Store plain = Open(Config(srv_, "plain"));
    char id[PX_ID_LEN + 1], dig[PX_RSTORE_DIGEST_MAX + 1];
    bool existed;
    px_error err = PX_ERROR_INIT;
    const uint8_t job[] = "J";
    EXPECT_EQ(
        px_rstore_create(w.get(), "", "rid-1", "d", job, 1, 100, nullptr, id, &existed, dig, &err),
        -1);
    EXPECT_EQ(err.code, PX_E_UNAVAILABLE);
    EXPECT_NE(std::string(err.msg).find("replica wait"), std::string::npos) << err.msg;
    EXPECT_NE(std::string(err.msg).find("same request_id"), std::string::npos) << err.msg;
    std::string first = Create(plain.get(), "J", "rid-1", "d");
    EXPECT_EQ(
        px_rstore_create(w.get(), "", "rid-1", "d", job, 1, 100, nullptr, id, &existed, dig, &err),
        -1); // found, but not acknowledged by a replica either
    EXPECT_EQ(err.code, PX_E_UNAVAILABLE);

    int64_t tw = Lease(w.get()), tp = Lease(plain.get());
    for (int i = 0; i < 2; i++) { // the claim, then its resumption
        px_rstore_job j;
        err = PX_ERROR_INIT;
        EXPECT_EQ(px_rstore_claim(w.get(), tw, 0, &j, &err), -1);
        EXPECT_EQ(err.code, PX_E_UNAVAILABLE);
        EXPECT_NE(std::string(err.msg).find("claim '" + first + "'"), std::string::npos) << err.msg;
        EXPECT_NE(std::string(err.msg).find("replica wait"), std::string::npos) << err.msg;
    }
    EXPECT_EQ(Claim(plain.get(), tp), "");
    View v;
    Get(plain.get(), first, &v);
    EXPECT_EQ(v.v.record.status, PX_STATUS_PENDING);
    EXPECT_STREQ(v.v.owner, "waits");
}

TEST(RStoreNamespace, KeepsClustersApart) {
    RedisServer srv;
    px_rstore_config c1 = Config(srv, "node-a"), c2 = Config(srv, "node-a");
    c2.ns = "other";
    Store a = Open(c1), b = Open(c2);
    std::string id = Create(a.get());
    View v;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_rstore_get(b.get(), id.c_str(), false, &v.v, &err), -1);
    EXPECT_EQ(err.code, PX_E_NOT_FOUND);
    int64_t t1 = Lease(a.get()), t2 = Lease(b.get()); // the same node name in two namespaces
    EXPECT_EQ(Claim(b.get(), t2), "");
    EXPECT_EQ(Claim(a.get(), t1), id);
}

} // namespace
