#include "server/store/store.h"

#include <string.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "server/base/clock.h"
#include "server/base/id.h"
#include "server/store/memory.h"

namespace {

constexpr int64_t kWaitMs = 10000; /* generous upper bound for any event */

struct StoreDeleter {
    void operator()(px_store *s) const { px_store_free(s); }
};
using StorePtr = std::unique_ptr<px_store, StoreDeleter>;

StorePtr NewStore(int64_t retention_ms = 300000, size_t max_records = 1000, size_t max_readers = 8,
                  uint64_t max_retained_bytes = 0) {
    px_store_config cfg{};
    cfg.retention_ms = retention_ms;
    cfg.max_records = max_records;
    cfg.max_readers = max_readers;
    cfg.max_retained_bytes = max_retained_bytes;
    px_error err = PX_ERROR_INIT;
    px_store *s = px_memory_store_new(&cfg, &err);
    EXPECT_NE(nullptr, s) << err.msg;
    return StorePtr(s);
}

px_record *Create(px_store *s, const char *request_id = "", bool *existed = nullptr,
                  const uint8_t *digest = nullptr) {
    px_error err = PX_ERROR_INIT;
    bool ex = false;
    px_record *r = px_store_create(s, request_id, digest, &ex, &err);
    EXPECT_NE(nullptr, r) << err.msg;
    if (existed)
        *existed = ex;
    return r;
}

px_outcome Outcome(px_status status, px_reason reason, int exit_code = 0) {
    px_outcome o{};
    o.status = status;
    o.reason = reason;
    o.ran = true;
    o.exit_code = exit_code;
    o.finished_at_ms = px_now_unix_ms();
    return o;
}

void Append(px_record *r, px_stream stream, const std::string &s) {
    px_record_append(r, stream, reinterpret_cast<const uint8_t *>(s.data()), s.size());
}

std::string Str(const uint8_t *p, size_t n) {
    return n ? std::string(reinterpret_cast<const char *>(p), n) : std::string();
}

TEST(Store, InvalidConfig) {
    px_store_config cfg{};
    cfg.retention_ms = 1000;
    cfg.max_records = 0;
    cfg.max_readers = 1;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(nullptr, px_memory_store_new(&cfg, &err));
    EXPECT_EQ(PX_E_INVALID, err.code);
    cfg.max_records = 1;
    cfg.retention_ms = -1;
    EXPECT_EQ(nullptr, px_memory_store_new(&cfg, &err));
}

TEST(Store, CreateGivesValidDistinctIdsAndGetFindsThem) {
    StorePtr s = NewStore();
    std::set<std::string> ids;
    std::vector<px_record *> recs;
    for (int i = 0; i < 200; i++) {
        px_record *r = Create(s.get());
        const char *id = px_record_id(r);
        EXPECT_TRUE(px_id_valid(id, strlen(id))) << id;
        ids.insert(id);
        recs.push_back(r);
    }
    EXPECT_EQ(200u, ids.size());
    EXPECT_EQ(200u, px_store_count(s.get()));
    for (px_record *r : recs) {
        px_error err = PX_ERROR_INIT;
        px_record *g = px_store_get(s.get(), px_record_id(r), &err);
        EXPECT_EQ(r, g);
        px_record_view v;
        ASSERT_EQ(0, px_record_snapshot(g, false, &v, &err));
        EXPECT_EQ(PX_STATUS_PENDING, v.status);
        EXPECT_STREQ(px_record_id(r), v.id);
        px_record_view_release(&v);
        px_record_unref(g);
        px_record_unref(r);
    }
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(nullptr, px_store_get(s.get(), "exe_00000000-0000-4000-8000-000000000000", &err));
    EXPECT_EQ(PX_E_NOT_FOUND, err.code);
}

TEST(Store, RequestIdDedupe) {
    StorePtr s = NewStore();
    bool existed = true;
    px_record *a = Create(s.get(), "req-1", &existed);
    EXPECT_FALSE(existed);
    px_record *b = Create(s.get(), "req-1", &existed);
    EXPECT_TRUE(existed);
    EXPECT_EQ(a, b);
    px_record *c = Create(s.get(), "req-2", &existed);
    EXPECT_FALSE(existed);
    EXPECT_NE(a, c);
    px_record *d = Create(s.get(), "", &existed);
    px_record *e = Create(s.get(), nullptr, &existed);
    EXPECT_FALSE(existed);
    EXPECT_NE(d, e);
    EXPECT_EQ(4u, px_store_count(s.get()));

    /* Dedupe holds in every state, for as long as the record is retained. */
    px_outcome o = Outcome(PX_STATUS_COMPLETED, PX_REASON_EXITED);
    EXPECT_TRUE(px_record_finish(a, &o));
    px_record *f = Create(s.get(), "req-1", &existed);
    EXPECT_TRUE(existed);
    EXPECT_EQ(a, f);

    /* A removed record no longer answers its request_id. */
    px_store_remove(s.get(), a);
    px_record *g = Create(s.get(), "req-1", &existed);
    EXPECT_FALSE(existed);
    EXPECT_NE(a, g);
    for (px_record *r : {a, b, c, d, e, f, g})
        px_record_unref(r);
}

/* A request_id names one request's content: the same key with another
 * digest is PX_E_EXISTS and hands out nothing; the same digest dedupes. */
TEST(Store, RequestIdWithOtherContentIsAlreadyExists) {
    StorePtr s = NewStore();
    uint8_t one[PX_SHA256_LEN], two[PX_SHA256_LEN];
    px_sha256("one", 3, one);
    px_sha256("two", 3, two);
    bool existed = true;
    px_record *a = Create(s.get(), "key", &existed, one);
    EXPECT_FALSE(existed);
    px_record *same = Create(s.get(), "key", &existed, one);
    EXPECT_TRUE(existed);
    EXPECT_EQ(a, same);

    px_error err = PX_ERROR_INIT;
    existed = true;
    EXPECT_EQ(nullptr, px_store_create(s.get(), "key", two, &existed, &err));
    EXPECT_EQ(PX_E_EXISTS, err.code);
    EXPECT_FALSE(existed);
    EXPECT_EQ(nullptr, strstr(err.msg, px_record_id(a))) << err.msg;
    err = PX_ERROR_INIT;
    EXPECT_EQ(nullptr, px_store_create(s.get(), "key", nullptr, &existed, &err));
    EXPECT_EQ(PX_E_EXISTS, err.code);
    EXPECT_EQ(1u, px_store_count(s.get()));

    /* Once the first record is gone, the key is free for other content. */
    px_store_remove(s.get(), a);
    px_record *b = Create(s.get(), "key", &existed, two);
    EXPECT_FALSE(existed);
    EXPECT_NE(a, b);
    /* Without a request_id the digest plays no part. */
    px_record *c = Create(s.get(), "", &existed, one);
    px_record *d = Create(s.get(), "", &existed, one);
    EXPECT_FALSE(existed);
    EXPECT_NE(c, d);
    for (px_record *r : {a, same, b, c, d})
        px_record_unref(r);
}

TEST(Store, ExactlyOneTerminalTransition) {
    StorePtr s = NewStore();
    for (int round = 0; round < 50; round++) {
        px_record *r = Create(s.get());
        px_record_set_running(r, 1);
        std::atomic<int> winners{0};
        std::atomic<int> winner_status{0};
        std::vector<std::thread> threads;
        const px_status statuses[] = {PX_STATUS_COMPLETED, PX_STATUS_FAILED, PX_STATUS_KILLED};
        for (int t = 0; t < 8; t++) {
            threads.emplace_back([&, t] {
                px_outcome o = Outcome(statuses[t % 3], PX_REASON_EXITED, t);
                if (px_record_finish(r, &o)) {
                    winners++;
                    winner_status = t;
                }
            });
        }
        for (auto &th : threads)
            th.join();
        EXPECT_EQ(1, winners.load());
        px_record_view v;
        ASSERT_EQ(0, px_record_snapshot(r, false, &v, nullptr));
        EXPECT_EQ(statuses[winner_status % 3], v.status);
        EXPECT_EQ(winner_status.load(), v.outcome.exit_code);
        px_record_unref(r);
    }
}

TEST(Store, StateMachine) {
    StorePtr s = NewStore();
    px_record *r = Create(s.get());
    px_record_set_running(r, 1234);
    px_record_set_running(r, 9999); /* no-op: not PENDING */
    px_record_view v;
    ASSERT_EQ(0, px_record_snapshot(r, false, &v, nullptr));
    EXPECT_EQ(PX_STATUS_RUNNING, v.status);
    EXPECT_EQ(1234, v.outcome.started_at_ms);

    px_outcome o = Outcome(PX_STATUS_KILLED, PX_REASON_KILLED, 137);
    o.started_at_ms = 0; /* the record's start time is kept */
    EXPECT_TRUE(px_record_finish(r, &o));
    Append(r, PX_STREAM_STDOUT, "late"); /* ignored once terminal */
    px_record_set_running(r, 5);
    px_outcome again = Outcome(PX_STATUS_COMPLETED, PX_REASON_EXITED);
    EXPECT_FALSE(px_record_finish(r, &again));

    ASSERT_EQ(0, px_record_snapshot(r, true, &v, nullptr));
    EXPECT_EQ(PX_STATUS_KILLED, v.status);
    EXPECT_EQ(PX_STATUS_KILLED, v.outcome.status);
    EXPECT_EQ(PX_REASON_KILLED, v.outcome.reason);
    EXPECT_EQ(137, v.outcome.exit_code);
    EXPECT_EQ(1234, v.outcome.started_at_ms);
    EXPECT_EQ(o.finished_at_ms, v.outcome.finished_at_ms);
    EXPECT_EQ(0, v.log_len);
    EXPECT_EQ(nullptr, v.stdout_data);
    px_record_view_release(&v);
    px_record_unref(r);
}

TEST(Store, FinishFromPending) {
    StorePtr s = NewStore();
    px_record *r = Create(s.get());
    px_outcome o = Outcome(PX_STATUS_FAILED, PX_REASON_SANDBOX_ERROR);
    o.ran = false;
    snprintf(o.error, sizeof o.error, "image missing");
    EXPECT_TRUE(px_record_finish(r, &o));
    px_record_view v;
    ASSERT_EQ(0, px_record_snapshot(r, false, &v, nullptr));
    EXPECT_EQ(PX_STATUS_FAILED, v.status);
    EXPECT_STREQ("image missing", v.outcome.error);
    px_record_unref(r);
}

/* The log of the interleaved-output tests:
 *   offset 0 "ab" stdout, 2 "cde" stderr, 5 "fgh" stdout (two appends merged),
 *   8 "i" stderr. */
void FillLog(px_record *r) {
    Append(r, PX_STREAM_STDOUT, "ab");
    Append(r, PX_STREAM_STDERR, "cde");
    Append(r, PX_STREAM_STDOUT, "f");
    Append(r, PX_STREAM_STDOUT, "gh");
    Append(r, PX_STREAM_STDERR, "i");
}

TEST(Store, LogOffsetsAcrossInterleavedStreams) {
    StorePtr s = NewStore();
    px_record *r = Create(s.get());
    px_record_set_running(r, 1);
    FillLog(r);
    const std::string all = "abcdefghi";
    const px_stream stream_at[] = {PX_STREAM_STDOUT, PX_STREAM_STDOUT, PX_STREAM_STDERR,
                                   PX_STREAM_STDERR, PX_STREAM_STDERR, PX_STREAM_STDOUT,
                                   PX_STREAM_STDOUT, PX_STREAM_STDOUT, PX_STREAM_STDERR};
    const int64_t seg_end_at[] = {2, 2, 5, 5, 5, 8, 8, 8, 9};
    for (int64_t off = 0; off < 9; off++) {
        SCOPED_TRACE(off);
        px_log_chunk c;
        px_error err = PX_ERROR_INIT;
        ASSERT_EQ(PX_READ_DATA, px_record_read(r, off, 1 << 20, &c, &err)) << err.msg;
        EXPECT_EQ(off, c.offset);
        EXPECT_EQ(stream_at[off], c.stream);
        EXPECT_EQ(all.substr(off, seg_end_at[off] - off), Str(c.data, c.len));
        free(c.data);

        ASSERT_EQ(PX_READ_DATA, px_record_read(r, off, 1, &c, &err));
        EXPECT_EQ(all.substr(off, 1), Str(c.data, c.len));
        free(c.data);
    }

    /* Reading chunk by chunk from 0 reproduces the whole log. */
    std::string replay;
    int64_t off = 0;
    for (;;) {
        px_log_chunk c;
        int rc = px_record_read(r, off, 2, &c, nullptr);
        if (rc != PX_READ_DATA) {
            EXPECT_EQ(PX_READ_WAIT, rc);
            break;
        }
        replay += Str(c.data, c.len);
        off += int64_t(c.len);
        free(c.data);
    }
    EXPECT_EQ(all, replay);
    px_record_unref(r);
}

TEST(Store, ReadWaitEofOutOfRangeAndNegative) {
    StorePtr s = NewStore();
    px_record *r = Create(s.get());
    px_log_chunk c;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(PX_READ_WAIT, px_record_read(r, 0, 16, &c, &err)); /* PENDING, empty */
    FillLog(r);
    EXPECT_EQ(PX_READ_WAIT, px_record_read(r, 9, 16, &c, &err));
    EXPECT_EQ(PX_READ_WAIT, px_record_read(r, 1000, 16, &c, &err)); /* may still arrive */
    EXPECT_EQ(-1, px_record_read(r, -1, 16, &c, &err));
    EXPECT_EQ(PX_E_INVALID, err.code);

    px_outcome o = Outcome(PX_STATUS_COMPLETED, PX_REASON_EXITED);
    ASSERT_TRUE(px_record_finish(r, &o));
    EXPECT_EQ(PX_READ_EOF, px_record_read(r, 9, 16, &c, &err));
    err = PX_ERROR_INIT;
    EXPECT_EQ(-1, px_record_read(r, 10, 16, &c, &err));
    EXPECT_EQ(PX_E_OUT_OF_RANGE, err.code);
    EXPECT_EQ(-1, px_record_read(r, -5, 16, &c, &err));
    EXPECT_EQ(PX_E_INVALID, err.code);
    ASSERT_EQ(PX_READ_DATA, px_record_read(r, 8, 16, &c, &err)); /* replay after the end */
    EXPECT_EQ("i", Str(c.data, c.len));
    free(c.data);

    /* A finished record with an empty log is at EOF at 0. */
    px_record *empty = Create(s.get());
    ASSERT_TRUE(px_record_finish(empty, &o));
    EXPECT_EQ(PX_READ_EOF, px_record_read(empty, 0, 16, &c, &err));
    EXPECT_EQ(-1, px_record_read(empty, 1, 16, &c, &err));
    EXPECT_EQ(PX_E_OUT_OF_RANGE, err.code);
    px_record_unref(empty);
    px_record_unref(r);
}

TEST(Store, SnapshotBodies) {
    StorePtr s = NewStore();
    px_record *r = Create(s.get());
    px_record_set_running(r, 42);
    FillLog(r);
    px_record_view v;
    px_error err = PX_ERROR_INIT;
    ASSERT_EQ(0, px_record_snapshot(r, true, &v, &err));
    EXPECT_EQ(PX_STATUS_RUNNING, v.status);
    EXPECT_EQ(42, v.outcome.started_at_ms);
    EXPECT_EQ(9, v.log_len);
    EXPECT_EQ("abfgh", Str(v.stdout_data, v.stdout_len));
    EXPECT_EQ("cdei", Str(v.stderr_data, v.stderr_len));
    px_record_view_release(&v);

    ASSERT_EQ(0, px_record_snapshot(r, false, &v, &err));
    EXPECT_EQ(nullptr, v.stdout_data);
    EXPECT_EQ(0u, v.stdout_len);
    EXPECT_EQ(nullptr, v.stderr_data);
    EXPECT_EQ(9, v.log_len);
    px_record_view_release(&v);

    /* Binary data, including NUL bytes, is kept as is. */
    px_record *b = Create(s.get());
    const uint8_t bin[] = {0, 1, 0xff, 0, 'x'};
    px_record_append(b, PX_STREAM_STDOUT, bin, sizeof bin);
    ASSERT_EQ(0, px_record_snapshot(b, true, &v, &err));
    ASSERT_EQ(sizeof bin, v.stdout_len);
    EXPECT_EQ(0, memcmp(bin, v.stdout_data, sizeof bin));
    EXPECT_EQ(nullptr, v.stderr_data);
    px_record_view_release(&v);
    px_record_unref(b);
    px_record_unref(r);
}

TEST(Store, LargeLog) {
    StorePtr s = NewStore();
    px_record *r = Create(s.get());
    std::string expect_out, expect_err;
    for (int i = 0; i < 2000; i++) {
        std::string chunk(1000 + i % 7, char('a' + i % 26));
        if (i % 3 == 0) {
            Append(r, PX_STREAM_STDERR, chunk);
            expect_err += chunk;
        } else {
            Append(r, PX_STREAM_STDOUT, chunk);
            expect_out += chunk;
        }
    }
    px_record_view v;
    ASSERT_EQ(0, px_record_snapshot(r, true, &v, nullptr));
    EXPECT_EQ(int64_t(expect_out.size() + expect_err.size()), v.log_len);
    EXPECT_EQ(expect_out, Str(v.stdout_data, v.stdout_len));
    EXPECT_EQ(expect_err, Str(v.stderr_data, v.stderr_len));
    px_record_view_release(&v);

    std::string out, err;
    int64_t off = 0;
    px_log_chunk c;
    while (px_record_read(r, off, 4096, &c, nullptr) == PX_READ_DATA) {
        EXPECT_EQ(off, c.offset);
        (c.stream == PX_STREAM_STDOUT ? out : err) += Str(c.data, c.len);
        off += int64_t(c.len);
        free(c.data);
    }
    EXPECT_EQ(expect_out, out);
    EXPECT_EQ(expect_err, err);
    px_record_unref(r);
}

/* Polls `pred` until true or the deadline passes. */
template <typename F> bool PollUntil(F pred) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

TEST(Store, RetentionExpiresTerminalRecords) {
    StorePtr s = NewStore(50);
    px_record *done = Create(s.get(), "req-done");
    px_record *running = Create(s.get());
    px_record_set_running(running, 1);
    std::string done_id = px_record_id(done);
    std::string running_id = px_record_id(running);
    px_outcome o = Outcome(PX_STATUS_COMPLETED, PX_REASON_EXITED);
    ASSERT_TRUE(px_record_finish(done, &o));

    px_error err = PX_ERROR_INIT;
    EXPECT_TRUE(PollUntil([&] {
        px_record *g = px_store_get(s.get(), done_id.c_str(), &err);
        px_record_unref(g);
        return g == nullptr;
    }));
    EXPECT_EQ(PX_E_NOT_FOUND, err.code);
    EXPECT_EQ(1u, px_store_count(s.get()));

    /* The caller's reference stays valid; a running record never expires. */
    EXPECT_STREQ(done_id.c_str(), px_record_id(done));
    px_record *g = px_store_get(s.get(), running_id.c_str(), &err);
    EXPECT_EQ(running, g);
    px_record_unref(g);

    /* Its request_id is free again. */
    bool existed = true;
    px_record *again = Create(s.get(), "req-done", &existed);
    EXPECT_FALSE(existed);
    EXPECT_NE(done, again);
    px_record_unref(again);
    px_record_unref(done);
    px_record_unref(running);
}

TEST(Store, RetentionCountedFromFinishedAt) {
    StorePtr s = NewStore(60000);
    px_record *old = Create(s.get());
    px_outcome o = Outcome(PX_STATUS_COMPLETED, PX_REASON_EXITED);
    o.finished_at_ms = px_now_unix_ms() - 61000; /* finished long ago */
    ASSERT_TRUE(px_record_finish(old, &o));
    px_record *fresh = Create(s.get());
    o.finished_at_ms = px_now_unix_ms();
    ASSERT_TRUE(px_record_finish(fresh, &o));
    EXPECT_EQ(1u, px_store_count(s.get()));
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(nullptr, px_store_get(s.get(), px_record_id(old), &err));
    EXPECT_EQ(PX_E_NOT_FOUND, err.code);
    px_record *g = px_store_get(s.get(), px_record_id(fresh), &err);
    EXPECT_EQ(fresh, g);
    px_record_unref(g);
    px_record_unref(old);
    px_record_unref(fresh);
}

TEST(Store, MaxRecords) {
    StorePtr s = NewStore(50, 3);
    std::vector<px_record *> recs;
    for (int i = 0; i < 3; i++)
        recs.push_back(Create(s.get()));
    px_error err = PX_ERROR_INIT;
    bool existed = true;
    EXPECT_EQ(nullptr, px_store_create(s.get(), "", nullptr, &existed, &err));
    EXPECT_EQ(PX_E_EXHAUSTED, err.code);
    EXPECT_FALSE(existed);

    /* A request_id that is already retained is answered even when full. */
    px_store_remove(s.get(), recs[2]);
    px_record *dedupe = Create(s.get(), "r");
    px_record *same = Create(s.get(), "r", &existed);
    EXPECT_TRUE(existed);
    EXPECT_EQ(dedupe, same);

    /* Removing frees a slot. */
    px_store_remove(s.get(), recs[0]);
    px_store_remove(s.get(), recs[0]); /* twice: no effect */
    px_record *r = Create(s.get());
    EXPECT_EQ(3u, px_store_count(s.get()));

    /* So does expiry. */
    px_outcome o = Outcome(PX_STATUS_COMPLETED, PX_REASON_EXITED);
    ASSERT_TRUE(px_record_finish(recs[1], &o));
    px_record *after = nullptr;
    EXPECT_TRUE(PollUntil([&] {
        after = px_store_create(s.get(), "", nullptr, nullptr, nullptr);
        return after != nullptr;
    }));
    px_record_unref(after);
    px_record_unref(r);
    px_record_unref(dedupe);
    px_record_unref(same);
    for (px_record *x : recs)
        px_record_unref(x);
}

TEST(Store, RecordOutlivesStore) {
    StorePtr s = NewStore();
    px_record *r = Create(s.get());
    s.reset();
    Append(r, PX_STREAM_STDOUT, "still here");
    px_record_view v;
    ASSERT_EQ(0, px_record_snapshot(r, true, &v, nullptr));
    EXPECT_EQ("still here", Str(v.stdout_data, v.stdout_len));
    px_record_view_release(&v);
    px_record_unref(r);
}

struct WatchCount {
    std::atomic<int> calls{0};
    std::atomic<int> last_status{0};
    std::atomic<int64_t> last_log_len{0};
};

void CountingWatch(void *ud, px_record *r) {
    auto *w = static_cast<WatchCount *>(ud);
    /* Reading the record from a callback is allowed. */
    px_record_view v;
    if (px_record_snapshot(r, false, &v, nullptr) == 0) {
        w->last_status = v.status;
        w->last_log_len = v.log_len;
        px_record_view_release(&v);
    }
    w->calls++;
}

TEST(Store, WatchersFireOnEveryChange) {
    StorePtr s = NewStore();
    px_record *r = Create(s.get());
    WatchCount a, b;
    px_error err = PX_ERROR_INIT;
    px_watch *wa = px_record_watch(r, PX_WATCH_READER, CountingWatch, &a, &err);
    px_watch *wb = px_record_watch(r, PX_WATCH_READER, CountingWatch, &b, &err);
    ASSERT_NE(nullptr, wa);
    ASSERT_NE(nullptr, wb);

    px_record_set_running(r, 1);
    EXPECT_EQ(1, a.calls.load());
    EXPECT_EQ(PX_STATUS_RUNNING, a.last_status.load());
    Append(r, PX_STREAM_STDOUT, "x");
    EXPECT_EQ(2, a.calls.load());
    EXPECT_EQ(1, a.last_log_len.load());
    Append(r, PX_STREAM_STDERR, "yz");
    EXPECT_EQ(3, a.calls.load());
    EXPECT_EQ(3, a.last_log_len.load());
    Append(r, PX_STREAM_STDERR, ""); /* nothing appended, no call */
    EXPECT_EQ(3, a.calls.load());

    px_record_unwatch(r, wb);
    px_outcome o = Outcome(PX_STATUS_COMPLETED, PX_REASON_EXITED);
    ASSERT_TRUE(px_record_finish(r, &o));
    EXPECT_EQ(4, a.calls.load());
    EXPECT_EQ(PX_STATUS_COMPLETED, a.last_status.load());
    EXPECT_EQ(3, b.calls.load());

    /* No change, no call. */
    EXPECT_FALSE(px_record_finish(r, &o));
    px_record_set_running(r, 2);
    Append(r, PX_STREAM_STDOUT, "late");
    EXPECT_EQ(4, a.calls.load());
    px_record_unwatch(r, wa);
    px_record_unwatch(r, nullptr);
    px_record_unref(r);
}

TEST(Store, MaxReaders) {
    StorePtr s = NewStore(1000, 10, 2);
    px_record *r = Create(s.get());
    WatchCount c;
    px_error err = PX_ERROR_INIT;
    px_watch *w1 = px_record_watch(r, PX_WATCH_READER, CountingWatch, &c, &err);
    px_watch *w2 = px_record_watch(r, PX_WATCH_READER, CountingWatch, &c, &err);
    ASSERT_NE(nullptr, w1);
    ASSERT_NE(nullptr, w2);
    EXPECT_EQ(nullptr, px_record_watch(r, PX_WATCH_READER, CountingWatch, &c, &err));
    EXPECT_EQ(PX_E_EXHAUSTED, err.code);
    EXPECT_NE(nullptr, strstr(err.msg, "2 readers (limit 2)")) << err.msg;
    px_record_unwatch(r, w1);
    px_watch *w3 = px_record_watch(r, PX_WATCH_READER, CountingWatch, &c, &err);
    ASSERT_NE(nullptr, w3);
    Append(r, PX_STREAM_STDOUT, "x");
    EXPECT_EQ(2, c.calls.load());
    px_record_unwatch(r, w2);
    px_record_unwatch(r, w3);
    px_record_unref(r);
}

/* Calls waiting for the end never compete with readers: with every reader
 * slot taken, control watchers still register (and do not take slots). */
TEST(Store, ControlWatchersAreNeverRefused) {
    StorePtr s = NewStore(1000, 10, 2);
    px_record *r = Create(s.get());
    WatchCount c;
    px_error err = PX_ERROR_INIT;
    std::vector<px_watch *> readers, controls;
    for (int i = 0; i < 2; i++)
        readers.push_back(px_record_watch(r, PX_WATCH_READER, CountingWatch, &c, &err));
    for (int i = 0; i < 100; i++) {
        controls.push_back(px_record_watch(r, PX_WATCH_CONTROL, CountingWatch, &c, &err));
        ASSERT_NE(nullptr, controls.back()) << err.msg;
    }
    EXPECT_EQ(nullptr, px_record_watch(r, PX_WATCH_READER, CountingWatch, &c, &err));
    EXPECT_EQ(PX_E_EXHAUSTED, err.code);
    /* Output wakes the readers; the other changes every watcher. */
    Append(r, PX_STREAM_STDOUT, "x");
    EXPECT_EQ(2, c.calls.load());
    px_record_set_running(r, 1000);
    EXPECT_EQ(104, c.calls.load());
    /* Control watchers leaving free no reader slot; a reader leaving does. */
    for (px_watch *w : controls)
        px_record_unwatch(r, w);
    EXPECT_EQ(nullptr, px_record_watch(r, PX_WATCH_READER, CountingWatch, &c, &err));
    px_record_unwatch(r, readers[0]);
    readers[0] = px_record_watch(r, PX_WATCH_READER, CountingWatch, &c, &err);
    EXPECT_NE(nullptr, readers[0]);
    for (px_watch *w : readers)
        px_record_unwatch(r, w);
    px_record_unref(r);
}

/* A watcher whose state is freed right after unwatch: if the callback could
 * still run (or be running) after unwatch returned, ASan reports a
 * use-after-free. */
struct Victim {
    std::atomic<int> touched{0};
    char pad[64];
};

void TouchVictim(void *ud, px_record *) {
    auto *v = static_cast<Victim *>(ud);
    v->touched++;
    memset(v->pad, 1, sizeof v->pad);
}

TEST(Store, UnwatchWhileAnotherThreadAppends) {
    StorePtr s = NewStore(1000, 10, 4);
    px_record *r = Create(s.get());
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        while (!stop)
            Append(r, PX_STREAM_STDOUT, "0123456789");
    });
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
    for (int i = 0; i < 300; i++) {
        auto *v = new Victim();
        px_watch *w = px_record_watch(r, PX_WATCH_READER, TouchVictim, v, nullptr);
        ASSERT_NE(nullptr, w);
        /* Unwatch while the writer keeps calling the callback. */
        while (v->touched == 0) {
            ASSERT_LT(std::chrono::steady_clock::now(), deadline);
            std::this_thread::yield();
        }
        px_record_unwatch(r, w);
        delete v;
    }
    stop = true;
    writer.join();
    px_record_unref(r);
}

/* ---- the job behind a record ---- */

struct FakeJob {
    std::vector<px_kill_cause> kills;
    int unrefs = 0;
    px_record *finish_on_kill = nullptr; /* like a queued executor job */
};

void FakeKill(void *ctx, void *job, px_kill_cause cause) {
    EXPECT_EQ(reinterpret_cast<void *>(0x1234), ctx);
    auto *j = static_cast<FakeJob *>(job);
    j->kills.push_back(cause);
    if (j->finish_on_kill) {
        /* Re-entering the record from the kill op must not deadlock. */
        px_outcome o = Outcome(PX_STATUS_KILLED, PX_REASON_KILLED);
        EXPECT_TRUE(px_record_finish(j->finish_on_kill, &o));
    }
}

void FakeUnref(void *job) {
    static_cast<FakeJob *>(job)->unrefs++;
}

const px_record_job_ops kFakeOps = {FakeKill, FakeUnref};
void *const kCtx = reinterpret_cast<void *>(0x1234);

TEST(Store, KillBeforeAttachIsForwardedOnAttach) {
    StorePtr s = NewStore();
    px_record *r = Create(s.get());
    FakeJob job;
    px_record_kill(r, PX_KILL_CANCEL);
    px_record_kill(r, PX_KILL_RPC); /* the first cause is kept */
    EXPECT_TRUE(job.kills.empty());
    px_record_attach_job(r, &kFakeOps, kCtx, &job);
    ASSERT_EQ(1u, job.kills.size());
    EXPECT_EQ(PX_KILL_CANCEL, job.kills[0]);
    px_store_remove(s.get(), r);
    px_record_unref(r);
    EXPECT_EQ(1, job.unrefs);
}

TEST(Store, KillAfterAttachIsForwardedAtOnce) {
    StorePtr s = NewStore();
    px_record *r = Create(s.get());
    FakeJob job;
    px_record_attach_job(r, &kFakeOps, kCtx, &job);
    EXPECT_TRUE(job.kills.empty());
    px_record_kill(r, PX_KILL_RPC);
    px_record_kill(r, PX_KILL_CANCEL); /* forwarded again with the first cause */
    ASSERT_EQ(2u, job.kills.size());
    EXPECT_EQ(PX_KILL_RPC, job.kills[0]);
    EXPECT_EQ(PX_KILL_RPC, job.kills[1]);

    px_outcome o = Outcome(PX_STATUS_KILLED, PX_REASON_KILLED);
    ASSERT_TRUE(px_record_finish(r, &o));
    px_record_kill(r, PX_KILL_RPC); /* terminal: no effect */
    EXPECT_EQ(2u, job.kills.size());
    s.reset();
    EXPECT_EQ(0, job.unrefs); /* our reference keeps the record */
    px_record_unref(r);
    EXPECT_EQ(1, job.unrefs);
}

TEST(Store, KillOnTerminalRecordIsNotForwardedOnAttach) {
    StorePtr s = NewStore();
    px_record *r = Create(s.get());
    px_record_kill(r, PX_KILL_RPC);
    px_outcome o = Outcome(PX_STATUS_COMPLETED, PX_REASON_EXITED);
    ASSERT_TRUE(px_record_finish(r, &o));
    FakeJob job;
    px_record_attach_job(r, &kFakeOps, kCtx, &job);
    EXPECT_TRUE(job.kills.empty());
    px_record_unref(r);
    s.reset();
    EXPECT_EQ(1, job.unrefs);
}

TEST(Store, KillThatFinishesSynchronously) {
    StorePtr s = NewStore();
    px_record *r = Create(s.get());
    WatchCount wc;
    px_watch *w = px_record_watch(r, PX_WATCH_READER, CountingWatch, &wc, nullptr);
    FakeJob job;
    job.finish_on_kill = r;
    px_record_attach_job(r, &kFakeOps, kCtx, &job);
    px_record_kill(r, PX_KILL_RPC);
    EXPECT_EQ(1u, job.kills.size());
    EXPECT_EQ(1, wc.calls.load());
    EXPECT_EQ(PX_STATUS_KILLED, wc.last_status.load());
    px_record_unwatch(r, w);
    px_record_unref(r);
}

TEST(Store, ConcurrentCreateGetAndFinish) {
    StorePtr s = NewStore(20, 100000);
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < 4; t++) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 500; i++) {
                std::string req = "req-" + std::to_string(i % 50);
                px_record *r = px_store_create(s.get(), t % 2 ? req.c_str() : "", nullptr, nullptr,
                                               nullptr);
                if (!r) {
                    failures++;
                    continue;
                }
                px_record_set_running(r, 1);
                Append(r, PX_STREAM_STDOUT, "x");
                px_outcome o = Outcome(PX_STATUS_COMPLETED, PX_REASON_EXITED);
                px_record_finish(r, &o);
                px_record *g = px_store_get(s.get(), px_record_id(r), nullptr);
                px_record_unref(g);
                px_store_count(s.get());
                px_record_unref(r);
            }
        });
    }
    for (auto &th : threads)
        th.join();
    EXPECT_EQ(0, failures.load());
    EXPECT_TRUE(PollUntil([&] { return px_store_count(s.get()) == 0; }));
}

} // namespace

TEST(Store, RetainedOutputBudgetDropsTheOldestFinishedRecordsFirst) {
    StorePtr s = NewStore(300000, 1000, 8, 2500);
    ASSERT_NE(nullptr, s);
    px_error err = PX_ERROR_INIT;
    const std::string kilo(1000, 'x');
    // Three finished records of 1000 bytes each, then a running one.
    std::vector<std::string> ids;
    for (int i = 0; i < 3; i++) {
        px_record *r = Create(s.get());
        Append(r, PX_STREAM_STDOUT, kilo);
        px_outcome o = Outcome(PX_STATUS_COMPLETED, PX_REASON_EXITED);
        EXPECT_TRUE(px_record_finish(r, &o));
        ids.push_back(px_record_id(r));
        px_record_unref(r);
    }
    px_record *running = Create(s.get()); // 3000 > 2500: the oldest went
    Append(running, PX_STREAM_STDOUT, kilo);
    Append(running, PX_STREAM_STDOUT, kilo);
    px_record *probe = px_store_get(s.get(), ids[0].c_str(), &err);
    EXPECT_EQ(nullptr, probe);
    EXPECT_EQ(PX_E_NOT_FOUND, err.code);
    // Next create: 2000 (finished) + 2000 (running) > 2500; the finished
    // ones go oldest first, the running one stays however large it is.
    px_record *another = Create(s.get());
    for (int i = 1; i < 3; i++) {
        px_error e2 = PX_ERROR_INIT;
        px_record *gone = px_store_get(s.get(), ids[i].c_str(), &e2);
        EXPECT_EQ(nullptr, gone) << ids[i];
        px_record_unref(gone);
    }
    px_record *still = px_store_get(s.get(), px_record_id(running), &err);
    EXPECT_NE(nullptr, still);
    px_record_unref(still);
    px_record_unref(another);
    px_record_unref(running);
}

TEST(Store, RetainedBudgetCountsEvalReports) {
    StorePtr s = NewStore(300000, 1000, 8, 2500);
    ASSERT_NE(nullptr, s);
    px_error err = PX_ERROR_INIT;
    // Three finished Evals without output, each reporting 1000 bytes (a
    // 600-byte result; a 400-byte exception type and message).
    std::string result(600, 'r'), type(100, 't'), message(300, 'm');
    std::vector<std::string> ids;
    for (int i = 0; i < 3; i++) {
        px_record *r = Create(s.get());
        px_outcome o = Outcome(PX_STATUS_COMPLETED, PX_REASON_EXITED);
        o.py.result = result.data();
        o.py.error_type = type.data();
        o.py.error_message = message.data();
        EXPECT_TRUE(px_record_finish(r, &o));
        ids.push_back(px_record_id(r));
        px_record_unref(r);
    }
    px_record *next = Create(s.get()); // 3000 > 2500: the oldest went
    px_record *probe = px_store_get(s.get(), ids[0].c_str(), &err);
    EXPECT_EQ(nullptr, probe) << "the reports count against --max-retained-bytes";
    EXPECT_EQ(PX_E_NOT_FOUND, err.code);
    px_record_unref(probe);
    for (int i = 1; i < 3; i++) {
        px_error e2 = PX_ERROR_INIT;
        px_record *kept = px_store_get(s.get(), ids[i].c_str(), &e2);
        EXPECT_NE(nullptr, kept) << ids[i] << ": 2000 bytes fit";
        px_record_unref(kept);
    }
    px_record_unref(next);
}

TEST(Store, NoBudgetKeepsEverythingUntilRetention) {
    StorePtr s = NewStore();
    const std::string big(100000, 'y');
    std::vector<std::string> ids;
    for (int i = 0; i < 5; i++) {
        px_record *r = Create(s.get());
        Append(r, PX_STREAM_STDOUT, big);
        px_outcome o = Outcome(PX_STATUS_COMPLETED, PX_REASON_EXITED);
        px_record_finish(r, &o);
        ids.push_back(px_record_id(r));
        px_record_unref(r);
    }
    px_record_unref(Create(s.get()));
    for (const auto &id : ids) {
        px_error err = PX_ERROR_INIT;
        px_record *r = px_store_get(s.get(), id.c_str(), &err);
        EXPECT_NE(nullptr, r) << id;
        px_record_unref(r);
    }
}

namespace {

std::vector<std::string> PageIds(const px_store_page &page) {
    std::vector<std::string> ids;
    for (size_t i = 0; i < page.n; i++)
        ids.push_back(px_record_id(page.records[i]));
    return ids;
}

TEST(Store, ListPagesNewestFirstWithTokens) {
    StorePtr s = NewStore();
    std::vector<std::string> ids; /* oldest first */
    for (int i = 0; i < 5; i++) {
        px_record *r = Create(s.get());
        ids.push_back(px_record_id(r));
        px_record_unref(r);
    }
    px_error err = PX_ERROR_INIT;
    px_store_page page;
    ASSERT_EQ(0, px_store_list(s.get(), "", PX_STATUS_UNSPECIFIED, 2, "", &page, &err)) << err.msg;
    EXPECT_EQ((std::vector<std::string>{ids[4], ids[3]}), PageIds(page));
    std::string token = page.next_token;
    EXPECT_FALSE(token.empty());
    px_store_page_release(&page);

    /* A record created meanwhile does not shift the pages after the first. */
    px_record_unref(Create(s.get()));
    ASSERT_EQ(0, px_store_list(s.get(), "", PX_STATUS_UNSPECIFIED, 2, token.c_str(), &page, &err));
    EXPECT_EQ((std::vector<std::string>{ids[2], ids[1]}), PageIds(page));
    token = page.next_token;
    px_store_page_release(&page);
    ASSERT_EQ(0, px_store_list(s.get(), "", PX_STATUS_UNSPECIFIED, 2, token.c_str(), &page, &err));
    EXPECT_EQ((std::vector<std::string>{ids[0]}), PageIds(page));
    EXPECT_STREQ("", page.next_token);
    px_store_page_release(&page);
}

TEST(Store, ListTokenSurvivesTheDropOfItsRecord) {
    StorePtr s = NewStore();
    std::vector<px_record *> recs;
    for (int i = 0; i < 3; i++)
        recs.push_back(Create(s.get()));
    px_error err = PX_ERROR_INIT;
    px_store_page page;
    ASSERT_EQ(0, px_store_list(s.get(), "", PX_STATUS_UNSPECIFIED, 1, NULL, &page, &err));
    std::string token = page.next_token;
    px_store_page_release(&page);
    px_store_remove(s.get(), recs[2]);
    ASSERT_EQ(0, px_store_list(s.get(), "", PX_STATUS_UNSPECIFIED, 5, token.c_str(), &page, &err));
    EXPECT_EQ((std::vector<std::string>{px_record_id(recs[1]), px_record_id(recs[0])}),
              PageIds(page));
    px_store_page_release(&page);
    for (px_record *r : recs)
        px_record_unref(r);
}

TEST(Store, ListFiltersByStatus) {
    StorePtr s = NewStore();
    px_record *pending = Create(s.get());
    px_record *running = Create(s.get());
    px_record *done = Create(s.get());
    px_record *killed = Create(s.get());
    px_record_set_running(running, 1);
    px_outcome o = Outcome(PX_STATUS_COMPLETED, PX_REASON_EXITED);
    px_record_finish(done, &o);
    o = Outcome(PX_STATUS_KILLED, PX_REASON_KILLED);
    px_record_finish(killed, &o);
    px_error err = PX_ERROR_INIT;
    px_store_page page;
    const struct {
        px_status status;
        px_record *want;
    } cases[] = {{PX_STATUS_PENDING, pending},
                 {PX_STATUS_RUNNING, running},
                 {PX_STATUS_COMPLETED, done},
                 {PX_STATUS_KILLED, killed}};
    for (const auto &c : cases) {
        ASSERT_EQ(0, px_store_list(s.get(), "", c.status, 10, "", &page, &err));
        EXPECT_EQ((std::vector<std::string>{px_record_id(c.want)}), PageIds(page)) << c.status;
        EXPECT_STREQ("", page.next_token);
        px_store_page_release(&page);
    }
    ASSERT_EQ(0, px_store_list(s.get(), "", PX_STATUS_FAILED, 10, "", &page, &err));
    EXPECT_EQ(0u, page.n);
    px_store_page_release(&page);

    /* A full filtered page announces a next page only if a match follows. */
    ASSERT_EQ(0, px_store_list(s.get(), "", PX_STATUS_COMPLETED, 1, "", &page, &err));
    EXPECT_STREQ("", page.next_token);
    px_store_page_release(&page);
    ASSERT_EQ(0, px_store_list(s.get(), "", PX_STATUS_UNSPECIFIED, 4, "", &page, &err));
    EXPECT_STREQ("", page.next_token);
    px_store_page_release(&page);
    for (px_record *r : {pending, running, done, killed})
        px_record_unref(r);
}

TEST(Store, ListRejectsBadPageSizesAndForeignTokens) {
    StorePtr s = NewStore();
    px_store_page page;
    for (size_t size : {size_t{0}, size_t{PX_STORE_LIST_MAX + 1}}) {
        px_error err = PX_ERROR_INIT;
        EXPECT_EQ(-1, px_store_list(s.get(), "", PX_STATUS_UNSPECIFIED, size, "", &page, &err));
        EXPECT_EQ(PX_E_INVALID, err.code);
    }
    for (const char *token : {"x1", "s", "s12a", "s-1", "s99999999999999999999999"}) {
        px_error err = PX_ERROR_INIT;
        EXPECT_EQ(-1, px_store_list(s.get(), "", PX_STATUS_UNSPECIFIED, 5, token, &page, &err))
            << token;
        EXPECT_EQ(PX_E_INVALID, err.code) << token;
    }
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(
        0, px_store_list(s.get(), "", PX_STATUS_UNSPECIFIED, PX_STORE_LIST_MAX, "", &page, &err));
    px_store_page_release(&page);
}

// ---- admission: the store hands the job to its runner ----

struct FakeRunner {
    int submitted = 0;
    std::string last_id, last_image, last_origin;
    bool refuse = false;

    static int Submit(void *ctx, px_record *record, px_job_spec *spec, const char *origin,
                      px_error *err) {
        auto *f = static_cast<FakeRunner *>(ctx);
        f->last_image = spec->image ? spec->image : "";
        px_job_spec_free(spec);
        if (f->refuse)
            return px_error_set(err, PX_E_EXHAUSTED, "runner full");
        f->submitted++;
        f->last_id = px_record_id(record);
        f->last_origin = origin;
        return 0;
    }
};

const px_job_runner_ops kFakeRunnerOps = {FakeRunner::Submit};

StorePtr StoreWithRunner(FakeRunner *f, int64_t retention_ms = 300000) {
    px_store_config cfg{};
    cfg.retention_ms = retention_ms;
    cfg.max_records = 10;
    cfg.max_readers = 8;
    cfg.runner = {&kFakeRunnerOps, f};
    px_error err = PX_ERROR_INIT;
    return StorePtr(px_memory_store_new(&cfg, &err));
}

px_job_spec *NewSpec(const char *image = "img") {
    auto *spec = static_cast<px_job_spec *>(calloc(1, sizeof(px_job_spec)));
    spec->image = strdup(image);
    return spec;
}

TEST(StoreAdmit, HandsTheJobToTheRunnerWithTheRecord) {
    FakeRunner f;
    StorePtr s = StoreWithRunner(&f);
    px_error err = PX_ERROR_INIT;
    bool existed = true;
    px_record *r = px_store_admit(s.get(), "", nullptr, NewSpec("python"), "Execute (sync) from x",
                                  &existed, &err);
    ASSERT_NE(r, nullptr) << err.msg;
    EXPECT_FALSE(existed);
    EXPECT_EQ(f.submitted, 1);
    EXPECT_EQ(f.last_id, px_record_id(r));
    EXPECT_EQ(f.last_image, "python");
    EXPECT_EQ(f.last_origin, "Execute (sync) from x");
    px_record_unref(r);
}

TEST(StoreAdmit, ARepeatedRequestIdRunsNothing) {
    FakeRunner f;
    StorePtr s = StoreWithRunner(&f);
    px_error err = PX_ERROR_INIT;
    bool existed;
    px_record *a = px_store_admit(s.get(), "req", nullptr, NewSpec(), "o", &existed, &err);
    px_record *b = px_store_admit(s.get(), "req", nullptr, NewSpec(), "o", &existed, &err);
    ASSERT_NE(b, nullptr) << err.msg;
    EXPECT_TRUE(existed);
    EXPECT_EQ(a, b);
    EXPECT_EQ(f.submitted, 1);
    px_record_unref(a);
    px_record_unref(b);
}

TEST(StoreAdmit, ARefusalLeavesNoRecord) {
    FakeRunner f;
    f.refuse = true;
    StorePtr s = StoreWithRunner(&f);
    px_error err = PX_ERROR_INIT;
    bool existed;
    EXPECT_EQ(px_store_admit(s.get(), "req", nullptr, NewSpec(), "o", &existed, &err), nullptr);
    EXPECT_EQ(err.code, PX_E_EXHAUSTED);
    EXPECT_EQ(px_store_count(s.get()), 0u);
    // The request_id is free again.
    f.refuse = false;
    px_record *r = px_store_admit(s.get(), "req", nullptr, NewSpec(), "o", &existed, &err);
    ASSERT_NE(r, nullptr) << err.msg;
    EXPECT_FALSE(existed);
    px_record_unref(r);
}

px_job_spec *TenantSpec(const char *tenant) {
    px_job_spec *spec = NewSpec();
    snprintf(spec->tenant, sizeof spec->tenant, "%s", tenant);
    return spec;
}

px_record *AdmitAs(px_store *s, const char *tenant, const char *request_id = "",
                   bool *existed = nullptr, px_error *err = nullptr) {
    bool e = false;
    px_error local = PX_ERROR_INIT;
    return px_store_admit(s, request_id, nullptr, TenantSpec(tenant), "o", existed ? existed : &e,
                          err ? err : &local);
}

TEST(StoreTenants, ARecordIsSeenByItsTenantOnly) {
    FakeRunner f;
    StorePtr s = StoreWithRunner(&f);
    px_record *a = AdmitAs(s.get(), "alice");
    ASSERT_NE(a, nullptr);
    EXPECT_STREQ(px_record_tenant(a), "alice");
    px_error err = PX_ERROR_INIT;
    px_record *got = px_store_get_as(s.get(), "alice", px_record_id(a), &err);
    EXPECT_EQ(got, a);
    px_record_unref(got);
    EXPECT_EQ(px_store_get_as(s.get(), "bob", px_record_id(a), &err), nullptr);
    EXPECT_EQ(err.code, PX_E_NOT_FOUND);
    /* The very words of an id nobody has. */
    std::string theirs = err.msg;
    px_store_get_as(s.get(), "bob", "exe_00000000-0000-4000-8000-000000000000", &err);
    EXPECT_EQ(theirs, std::string(err.msg).replace(
                          theirs.find("exe_"), strlen("exe_00000000-0000-4000-8000-000000000000"),
                          px_record_id(a)));
    EXPECT_EQ(px_store_get_as(s.get(), "", px_record_id(a), &err), nullptr);
    // A view by id sees the same.
    px_record_view v;
    ASSERT_EQ(px_store_view_as(s.get(), "alice", px_record_id(a), true, &v, &err), 0) << err.msg;
    EXPECT_STREQ(v.id, px_record_id(a));
    EXPECT_EQ(v.status, PX_STATUS_PENDING);
    px_record_view_release(&v);
    EXPECT_EQ(px_store_view_as(s.get(), "bob", px_record_id(a), true, &v, &err), -1);
    EXPECT_EQ(err.code, PX_E_NOT_FOUND);

    px_store_page page;
    ASSERT_EQ(0, px_store_list(s.get(), "bob", PX_STATUS_UNSPECIFIED, 10, "", &page, &err));
    EXPECT_EQ(page.n, 0u);
    px_store_page_release(&page);
    px_record *b = AdmitAs(s.get(), "bob");
    ASSERT_EQ(0, px_store_list(s.get(), "alice", PX_STATUS_UNSPECIFIED, 10, "", &page, &err));
    ASSERT_EQ(page.n, 1u);
    EXPECT_EQ(page.records[0], a);
    px_store_page_release(&page);
    px_record_unref(a);
    px_record_unref(b);
}

TEST(StoreTenants, ARequestIdIsAKeyWithinItsTenant) {
    FakeRunner f;
    StorePtr s = StoreWithRunner(&f);
    bool existed = true;
    px_record *a = AdmitAs(s.get(), "alice", "job-1", &existed);
    EXPECT_FALSE(existed);
    px_record *b = AdmitAs(s.get(), "bob", "job-1", &existed);
    ASSERT_NE(b, nullptr);
    EXPECT_FALSE(existed) << "bob's key must not find alice's execution";
    EXPECT_NE(a, b);
    px_record *a2 = AdmitAs(s.get(), "alice", "job-1", &existed);
    EXPECT_TRUE(existed);
    EXPECT_EQ(a2, a);
    EXPECT_EQ(f.submitted, 2);
    px_record_unref(a);
    px_record_unref(a2);
    px_record_unref(b);
}

StorePtr QuotaStore(FakeRunner *f, int concurrent, int queued, int per_minute,
                    int64_t retention_ms = 300000) {
    StorePtr s = StoreWithRunner(f, retention_ms);
    px_quota_config q = {concurrent, queued, per_minute};
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(0, px_store_set_quotas(s.get(), &q, &err)) << err.msg;
    return s;
}

std::string Refusal(px_store *s, const char *tenant) {
    px_error err = PX_ERROR_INIT;
    px_record *r = AdmitAs(s, tenant, "", nullptr, &err);
    if (r) {
        px_record_unref(r);
        return "admitted";
    }
    return std::string(px_code_name(err.code)) + ": " + err.msg;
}

TEST(StoreTenants, ConcurrentQuotaCountsUnfinishedExecutions) {
    FakeRunner f;
    StorePtr s = QuotaStore(&f, 2, 0, 0);
    px_record *a = AdmitAs(s.get(), "alice");
    px_record *b = AdmitAs(s.get(), "alice");
    std::string no = Refusal(s.get(), "alice");
    EXPECT_NE(no.find("RESOURCE_EXHAUSTED: tenant 'alice': quota of 2 concurrent executions "
                      "reached (--tenant-max-concurrent"),
              std::string::npos)
        << no;
    EXPECT_EQ(Refusal(s.get(), "bob"), "admitted"); /* another tenant's quota */
    px_record_set_running(a, 1);
    EXPECT_NE(Refusal(s.get(), "alice").find("--tenant-max-concurrent"), std::string::npos);
    px_outcome o{};
    o.status = PX_STATUS_COMPLETED;
    ASSERT_TRUE(px_record_finish(a, &o));
    EXPECT_EQ(Refusal(s.get(), "alice"), "admitted"); /* a finished one frees its slot */
    px_record_unref(a);
    px_record_unref(b);
}

TEST(StoreTenants, AFinishedExecutionIsFreedAtRetentionThoughItsTenantNeverReturns) {
    FakeRunner f;
    StorePtr s = QuotaStore(&f, 2, 1, 5, /*retention_ms=*/0);
    px_record *a = AdmitAs(s.get(), "alice");
    ASSERT_NE(a, nullptr);
    FakeJob job; /* its unref tells when the record (and its output) is freed */
    px_record_attach_job(a, &kFakeOps, kCtx, &job);
    px_record_set_running(a, 1);
    px_record_append(a, PX_STREAM_STDOUT, reinterpret_cast<const uint8_t *>("out"), 3);
    px_outcome o{};
    o.status = PX_STATUS_COMPLETED;
    o.finished_at_ms = 1;
    ASSERT_TRUE(px_record_finish(a, &o));
    px_record_unref(a);
    EXPECT_EQ(px_store_count(s.get()), 0u); /* retention 0: expired */
    EXPECT_EQ(job.unrefs, 1) << "the quota still holds alice's finished record";
}

TEST(StoreTenants, AnExecutionFinishedBeforeItsAdmissionEndsHoldsNoSlot) {
    /* The job may finish before px_store_admit returns (a fast executor). */
    struct FinishingRunner {
        static int Submit(void *, px_record *record, px_job_spec *spec, const char *, px_error *) {
            px_job_spec_free(spec);
            px_outcome o{};
            o.status = PX_STATUS_COMPLETED;
            o.finished_at_ms = 1;
            EXPECT_TRUE(px_record_finish(record, &o));
            return 0;
        }
    };
    static const px_job_runner_ops ops = {FinishingRunner::Submit};
    px_store_config cfg{};
    cfg.retention_ms = 0;
    cfg.max_records = 10;
    cfg.max_readers = 8;
    cfg.runner = {&ops, nullptr};
    px_error err = PX_ERROR_INIT;
    StorePtr s(px_memory_store_new(&cfg, &err));
    px_quota_config q = {1, 0, 0};
    ASSERT_EQ(0, px_store_set_quotas(s.get(), &q, &err)) << err.msg;
    px_record *a = AdmitAs(s.get(), "alice");
    ASSERT_NE(a, nullptr);
    FakeJob job;
    px_record_attach_job(a, &kFakeOps, kCtx, &job);
    px_record_unref(a);
    EXPECT_EQ(px_store_count(s.get()), 0u);
    EXPECT_EQ(job.unrefs, 1) << "the quota kept a record that finished during its admission";
    EXPECT_EQ(Refusal(s.get(), "alice"), "admitted");
}

TEST(StoreTenants, QueuedQuotaCountsPendingExecutions) {
    FakeRunner f;
    StorePtr s = QuotaStore(&f, 0, 1, 0);
    px_record *a = AdmitAs(s.get(), "alice");
    std::string no = Refusal(s.get(), "alice");
    EXPECT_NE(no.find("tenant 'alice': quota of 1 queued executions reached "
                      "(--tenant-max-queued; 1 waiting for a slot)"),
              std::string::npos)
        << no;
    px_record_set_running(a, 1); /* it got a slot: nothing waits */
    px_record *b = AdmitAs(s.get(), "alice");
    EXPECT_NE(b, nullptr);
    px_record_unref(a);
    px_record_unref(b);
}

TEST(StoreTenants, PerMinuteQuotaIsABucket) {
    FakeRunner f;
    StorePtr s = QuotaStore(&f, 0, 0, 3);
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(Refusal(s.get(), "alice"), "admitted") << i;
    std::string no = Refusal(s.get(), "alice");
    EXPECT_NE(no.find("RESOURCE_EXHAUSTED: tenant 'alice': quota of 3 executions per minute "
                      "reached (--tenant-max-per-minute; the next one fits in"),
              std::string::npos)
        << no;
    EXPECT_EQ(Refusal(s.get(), "bob"), "admitted");
}

TEST(StoreTenants, ARefusedOrRepeatedAdmissionCostsNoQuota) {
    FakeRunner f;
    StorePtr s = QuotaStore(&f, 0, 0, 2);
    f.refuse = true;
    EXPECT_NE(Refusal(s.get(), "alice").find("runner full"), std::string::npos);
    f.refuse = false;
    bool existed = false;
    px_record *a = AdmitAs(s.get(), "alice", "k", &existed);
    ASSERT_NE(a, nullptr);
    px_record *again = AdmitAs(s.get(), "alice", "k", &existed);
    EXPECT_TRUE(existed);
    EXPECT_EQ(again, a);
    /* One token was spent (a); the refusal and the repeat gave theirs back. */
    EXPECT_EQ(Refusal(s.get(), "alice"), "admitted");
    EXPECT_NE(Refusal(s.get(), "alice").find("per minute"), std::string::npos);
    px_record_unref(a);
    px_record_unref(again);
}

TEST(StoreTenants, ARepeatedRequestIdFindsItsExecutionEvenAtTheQuota) {
    FakeRunner f;
    StorePtr s = QuotaStore(&f, 1, 0, 0);
    bool existed = false;
    px_record *a = AdmitAs(s.get(), "alice", "k", &existed);
    ASSERT_NE(a, nullptr);
    px_record *again = AdmitAs(s.get(), "alice", "k", &existed);
    EXPECT_TRUE(existed);
    EXPECT_EQ(again, a);
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(AdmitAs(s.get(), "alice", "other", &existed, &err), nullptr);
    EXPECT_EQ(err.code, PX_E_EXHAUSTED);
    EXPECT_EQ(px_store_count(s.get()), 1u) << "the refused key left no record";
    px_record_unref(a);
    px_record_unref(again);
}

TEST(StoreAdmit, WithoutARunnerNothingIsAdmitted) {
    StorePtr s = NewStore();
    px_error err = PX_ERROR_INIT;
    bool existed;
    EXPECT_EQ(px_store_admit(s.get(), "", nullptr, NewSpec(), "o", &existed, &err), nullptr);
    EXPECT_EQ(err.code, PX_E_UNAVAILABLE);
    EXPECT_EQ(px_store_count(s.get()), 0u);
}

} // namespace

namespace {

TEST(Store, RecordKeepsACopyOfTheEvalReport) {
    StorePtr s = NewStore();
    px_record *r = Create(s.get());
    px_outcome o = Outcome(PX_STATUS_COMPLETED, PX_REASON_EXITED, 1);
    std::string type = "NameError", message = "name 'x' is not defined";
    o.py.error_type = &type[0];
    o.py.error_line = 3;
    o.py.error_message = &message[0];
    ASSERT_TRUE(px_record_finish(r, &o));
    type.assign("clobbered"); /* the caller's strings were only borrowed */
    message.assign("clobbered");
    px_error err = PX_ERROR_INIT;
    px_record_view v1, v2;
    ASSERT_EQ(0, px_record_snapshot(r, false, &v1, &err)) << err.msg;
    ASSERT_EQ(0, px_record_snapshot(r, false, &v2, &err)) << err.msg;
    EXPECT_STREQ("NameError", v1.outcome.py.error_type);
    EXPECT_EQ(3, v1.outcome.py.error_line);
    EXPECT_STREQ("name 'x' is not defined", v1.outcome.py.error_message);
    EXPECT_EQ(nullptr, v1.outcome.py.result);
    EXPECT_NE(v1.outcome.py.error_type, v2.outcome.py.error_type) << "each view owns its copy";
    px_record_view_release(&v1);
    EXPECT_EQ(nullptr, v1.outcome.py.error_type);
    EXPECT_STREQ("NameError", v2.outcome.py.error_type);
    px_record_view_release(&v2);
    px_record_unref(r);
}

} // namespace
