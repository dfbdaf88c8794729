// One Redis connection against a real redis-server (private, on a unix
// socket): a server that is not the primary any more is left at once.
#include "server/store/redis/conn.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <string.h>

#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "tests/server/store/redis/redis_server.h"

namespace {

using pxtest::RedisServer;

struct ConnFree {
    void operator()(px_redis_conn *c) const { px_redis_conn_free(c); }
};
using Conn = std::unique_ptr<px_redis_conn, ConnFree>;

Conn Open(const RedisServer &srv, int64_t backoff_ms = 0) {
    px_redis_conn_config cfg = {};
    cfg.backoff_min_ms = backoff_ms;
    cfg.backoff_max_ms = backoff_ms;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_redis_target_parse(srv.url().c_str(), &cfg.target, &err), 0) << err.msg;
    cfg.connect_timeout_ms = 2000;
    cfg.command_timeout_ms = 5000;
    Conn c(px_redis_conn_new(&cfg, &err));
    EXPECT_NE(c, nullptr) << err.msg;
    return c;
}

// Runs `argv` on `c`: the reply's status or string, or "error: " + message.
std::string Send(px_redis_conn *c, std::initializer_list<const char *> argv, bool retry = false,
                 px_error *out = nullptr) {
    std::vector<const char *> v(argv);
    std::vector<size_t> len;
    for (const char *a : v)
        len.push_back(strlen(a));
    px_error err = PX_ERROR_INIT;
    redisReply *r = px_redis_conn_call(c, static_cast<int>(v.size()), v.data(), len.data(), 0,
                                       retry, &err);
    if (out)
        *out = err;
    if (!r)
        return std::string("error: ") + err.msg;
    std::string s = r->str ? std::string(r->str, r->len) : std::to_string(r->integer);
    freeReplyObject(r);
    return s;
}

TEST(RedisConn, LeavesAServerThatTurnedReplica) {
    RedisServer srv;
    Conn c = Open(srv);
    EXPECT_EQ(Send(c.get(), {"SET", "k", "1"}), "OK");
    // Demoted (its primary-to-be does not answer: it stays a read-only
    // replica that still serves reads).
    freeReplyObject(srv.Command({"REPLICAOF", "127.0.0.1", "1"}));
    ASSERT_TRUE(px_redis_conn_connected(c.get()));
    px_error err = PX_ERROR_INIT;
    std::string got = Send(c.get(), {"SET", "k", "2"}, false, &err);
    EXPECT_EQ(err.code, PX_E_UNAVAILABLE) << got;
    EXPECT_NE(got.find("READONLY"), std::string::npos) << got;
    EXPECT_NE(got.find("not the primary"), std::string::npos) << got;
    EXPECT_FALSE(px_redis_conn_connected(c.get())); // the next command connects anew

    // A script's write on a replica is refused the same way.
    const char *src = "return redis.call('SET', 'k', '3')";
    const char *none[1] = {nullptr};
    size_t none_len[1] = {0};
    redisReply *r = px_redis_conn_eval(c.get(), "0000000000000000000000000000000000000000", src, 0,
                                       none, none_len, false, &err);
    EXPECT_EQ(r, nullptr);
    EXPECT_EQ(err.code, PX_E_UNAVAILABLE) << err.msg;
    EXPECT_NE(std::string(err.msg).find("not the primary"), std::string::npos) << err.msg;
    EXPECT_FALSE(px_redis_conn_connected(c.get()));

    // Primary again: the next command connects and writes.
    freeReplyObject(srv.Command({"REPLICAOF", "NO", "ONE"}));
    EXPECT_EQ(Send(c.get(), {"SET", "k", "4"}), "OK");
    EXPECT_EQ(srv.Str({"GET", "k"}), "4");
}

// Connections the server accepted so far (this query's own included).
long long Accepted(RedisServer &srv) {
    std::string info = srv.Str({"INFO", "stats"});
    const std::string key = "total_connections_received:";
    size_t at = info.find(key);
    return at == std::string::npos ? -1 : atoll(info.c_str() + at + key.size());
}

// A plain target at a replica: each command fails UNAVAILABLE, and the
// connection waits its backoff (a minute here) before connecting again
// rather than connecting anew for every command.
TEST(RedisConn, APlainTargetAtAReplicaBacksOff) {
    RedisServer srv;
    freeReplyObject(srv.Command({"REPLICAOF", "127.0.0.1", "1"}));
    Conn c = Open(srv, 60000);
    px_error err = PX_ERROR_INIT;
    std::string got = Send(c.get(), {"SET", "k", "1"}, true, &err);
    EXPECT_EQ(err.code, PX_E_UNAVAILABLE) << got;
    EXPECT_NE(got.find("READONLY"), std::string::npos) << got;
    long long before = Accepted(srv);
    for (int i = 0; i < 5; i++) {
        got = Send(c.get(), {"SET", "k", "1"}, true, &err);
        EXPECT_EQ(err.code, PX_E_UNAVAILABLE) << got;
        EXPECT_NE(got.find("READONLY"), std::string::npos) << got;
        EXPECT_NE(got.find("next attempt in"), std::string::npos) << got;
    }
    EXPECT_EQ(Accepted(srv) - before, 1); // only the second count's own
}

// A connection of a pool backing off after the server went away tries
// again at once when another connection has reached the primary since:
// its own wait (a minute here) was for a server that was down.
TEST(RedisConn, ABackingOffConnectionTriesAgainOnceAnotherReachedThePrimary) {
    RedisServer srv;
    Conn a = Open(srv, 60000);
    EXPECT_EQ(Send(a.get(), {"SET", "k", "1"}), "OK");
    srv.Stop();
    px_error err = PX_ERROR_INIT;
    std::string got = Send(a.get(), {"GET", "k"}, true, &err);
    EXPECT_EQ(err.code, PX_E_UNAVAILABLE) << got;
    got = Send(a.get(), {"GET", "k"}, false, &err);
    EXPECT_NE(got.find("next attempt in"), std::string::npos) << got;
    srv.Start();
    got = Send(a.get(), {"GET", "k"}, false, &err);
    EXPECT_NE(got.find("next attempt in"), std::string::npos) << got; // nothing reached it yet
    Conn b = Open(srv, 60000);
    EXPECT_EQ(Send(b.get(), {"GET", "k"}), "1");
    EXPECT_EQ(Send(a.get(), {"GET", "k"}), "1");
}

TEST(RedisConn, OtherErrorRepliesKeepTheConnection) {
    RedisServer srv;
    Conn c = Open(srv);
    px_error err = PX_ERROR_INIT;
    std::string got = Send(c.get(), {"INCR", "k", "extra"}, false, &err);
    EXPECT_EQ(err.code, PX_E_INTERNAL) << got;
    EXPECT_TRUE(px_redis_conn_connected(c.get()));
}

} // namespace
