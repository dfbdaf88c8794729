/*
 * The Redis store's background readers (see rstore.h): the follower of
 * output logs and the listener on this node's kill channel.
 */
#include "server/store/redis/rstore.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/base/cleanup.h"
#include "server/base/clock.h"
#include "server/store/redis/conn.h"
#include "server/store/redis/rstore_internal.h"
#include "server/store/redis/scripts.h"

/* ---- what both readers share ---- */

/* Runs one command on a pooled connection (`retry`: as px_redis_conn_call):
 * the reply (the caller's), or NULL with *err set. */
static redisReply *pool_call(px_rstore *rs, int argc, const char **argv, bool retry,
                             px_error *err) {
    unsigned slot;
    px_redis_conn *c = rstore_pool_take(rs, &slot, err);
    if (!c)
        return NULL;
    redisReply *r = px_redis_conn_call(c, argc, argv, NULL, 0, retry, err);
    rstore_pool_give(rs, slot);
    return r;
}

/* Starts a reader: a connection of its own (*conn) and a thread running
 * `main` on `rs`. */
static int reader_start(px_rstore *rs, px_redis_conn **conn, pthread_t *thread,
                        void *(*main)(void *), const char *what, px_error *err) {
    *conn = px_redis_conn_new(&rs->conn_cfg, err);
    if (!*conn)
        return -1;
    int e = pthread_create(thread, NULL, main, rs);
    if (e != 0)
        return px_error_set_errno(err, PX_E_INTERNAL, e, "start the %s", what);
    return 0;
}

/* ---- the follower ----
 *
 * One thread runs XREAD BLOCK over the out:<id> streams of the followed
 * executions plus this node's wake stream (fw:<node>), each from the last
 * entry it has seen. Adding an id takes the log's length as the starting
 * point (every entry appended later has a larger id, see scripts.c) and
 * writes to the wake stream, so a blocked XREAD returns and the next one
 * includes the id: no change after px_rstore_follow_add goes unreported.
 */

#define FOLLOW_BLOCK_MS 1000
#define FOLLOW_COUNT "64"

static follow_entry *follow_find(px_rstore *rs, const char *id) {
    for (size_t i = 0; i < rs->n_follow; i++)
        if (strcmp(rs->follow[i].id, id) == 0)
            return &rs->follow[i];
    return NULL;
}

/* Wakes the follower's XREAD (the fw stream). */
static int follow_wake(px_rstore *rs, px_error *err) {
    const char *argv[] = {"XADD", rs->wake_key, "MAXLEN", "1", "*", "w", "1"};
    redisReply *r = pool_call(rs, PX_ARRAY_SIZE(argv), argv, true, err);
    if (!r)
        return px_error_wrap(err, "wake the follower");
    freeReplyObject(r);
    return 0;
}

int px_rstore_follow_add(px_rstore *rs, const char *id, bool *live, px_error *err) {
    if (live)
        *live = false;
    pthread_mutex_lock(&rs->fmu);
    follow_entry *e = follow_find(rs, id);
    if (e) {
        e->refs++;
        pthread_mutex_unlock(&rs->fmu);
        return 0;
    }
    pthread_mutex_unlock(&rs->fmu);
    const char *argv[] = {id, rs->node};
    _cleanup_reply_ redisReply *r = rstore_eval(rs, PX_RSCRIPT_FOLLOW_ADD, 2, argv, NULL, true,
                                                err);
    if (!r)
        return px_error_wrap(err, "execution '%s': follow", id);
    long long len = rstore_elem_int(r, 0, -2);
    if (len == -1)
        return px_error_set(err, PX_E_NOT_FOUND, "execution '%s' not found", id);
    if (len < 0)
        return rstore_bad_reply(PX_RSCRIPT_FOLLOW_ADD, err);
    bool ended = rstore_elem_int(r, 1, 1) != 0;
    pthread_mutex_lock(&rs->fmu);
    e = follow_find(rs, id);
    if (e) {
        e->refs++;
    } else {
        if (rs->n_follow == rs->cap_follow) {
            size_t cap = rs->cap_follow ? rs->cap_follow * 2 : 16;
            follow_entry *f = realloc(rs->follow, cap * sizeof *f);
            if (!f) {
                pthread_mutex_unlock(&rs->fmu);
                return px_error_set(err, PX_E_INTERNAL, "follow: out of memory");
            }
            rs->follow = f;
            rs->cap_follow = cap;
        }
        e = &rs->follow[rs->n_follow++];
        snprintf(e->id, sizeof e->id, "%s", id);
        snprintf(e->cursor, sizeof e->cursor, "%lld-0", len);
        e->refs = 1;
        pthread_cond_signal(&rs->fcond);
        /* Not ended when the cursor was taken: the end marker, written
         * later, is after the cursor and will be reported. */
        if (live)
            *live = !ended;
    }
    pthread_mutex_unlock(&rs->fmu);
    return 0;
}

void px_rstore_follow_remove(px_rstore *rs, const char *id) {
    pthread_mutex_lock(&rs->fmu);
    follow_entry *e = follow_find(rs, id);
    if (e && --e->refs == 0)
        *e = rs->follow[--rs->n_follow];
    pthread_mutex_unlock(&rs->fmu);
}

/* One XREAD over the followed streams; fills `ids` (malloc'd, *n) with the
 * ids that had news. Returns 0, or -1 on error (the connection is dropped
 * when broken). */
static int follow_once(px_rstore *rs, char (**ids)[PX_ID_LEN + 1], bool **ended, size_t *n,
                       px_error *err) {
    *ids = NULL;
    *ended = NULL;
    *n = 0;
    pthread_mutex_lock(&rs->fmu);
    while (!rs->follow_stop && rs->n_follow == 0)
        pthread_cond_wait(&rs->fcond, &rs->fmu);
    if (rs->follow_stop) {
        pthread_mutex_unlock(&rs->fmu);
        return 0;
    }
    size_t k = rs->n_follow + 1;
    size_t argc = 6 + 2 * k;
    const char **argv = calloc(argc, sizeof *argv);
    char(*keys)[PX_RSTORE_NAME_MAX * 2 + 64] = calloc(k, sizeof *keys);
    char(*cursors)[48] = calloc(k, sizeof *cursors);
    if (!argv || !keys || !cursors) {
        pthread_mutex_unlock(&rs->fmu);
        free(argv);
        free(keys);
        free(cursors);
        return px_error_set(err, PX_E_INTERNAL, "follow: out of memory");
    }
    snprintf(keys[0], sizeof keys[0], "%s", rs->wake_key);
    snprintf(cursors[0], sizeof cursors[0], "%s", rs->wake_cursor);
    for (size_t i = 1; i < k; i++) {
        snprintf(keys[i], sizeof keys[i], "%sout:%s", rs->prefix, rs->follow[i - 1].id);
        snprintf(cursors[i], sizeof cursors[i], "%s", rs->follow[i - 1].cursor);
    }
    pthread_mutex_unlock(&rs->fmu);
    char block[24];
    NUM(block, FOLLOW_BLOCK_MS);
    argv[0] = "XREAD";
    argv[1] = "COUNT";
    argv[2] = FOLLOW_COUNT;
    argv[3] = "BLOCK";
    argv[4] = block;
    argv[5] = "STREAMS";
    for (size_t i = 0; i < k; i++) {
        argv[6 + i] = keys[i];
        argv[6 + k + i] = cursors[i];
    }
    /* A first connection needs no catching up: each followed id's cursor
     * was taken when it was added. */
    bool fresh = rs->follow_answered && !px_redis_conn_connected(rs->follow_conn);
    redisReply *r = px_redis_conn_call(rs->follow_conn, (int)argc, argv, NULL, FOLLOW_BLOCK_MS,
                                       false, err);
    free(argv);
    int rc = 0;
    size_t cap = k;
    *ids = calloc(cap, sizeof **ids);
    *ended = calloc(cap, sizeof **ended);
    if (!*ids || !*ended) {
        rc = px_error_set(err, PX_E_INTERNAL, "follow: out of memory");
        goto out;
    }
    if (!r) {
        rc = -1;
        goto out;
    }
    rs->follow_answered = true;
    if (fresh) {
        /* Connected anew: whatever happened meanwhile, tell every follower. */
        for (size_t i = 1; i < k; i++) {
            (*ended)[*n] = true;
            snprintf((*ids)[(*n)++], PX_ID_LEN + 1, "%s", keys[i] + strlen(rs->prefix) + 4);
        }
    }
    if (r->type != REDIS_REPLY_ARRAY)
        goto out; /* nil: nothing new within the block time */
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *st = r->element[i];
        const redisReply *key = rstore_elem_str(st, 0);
        if (!key || st->elements < 2 || st->element[1]->type != REDIS_REPLY_ARRAY ||
            st->element[1]->elements == 0)
            continue;
        const redisReply *entries = st->element[1];
        const redisReply *last = rstore_elem_str(entries->element[entries->elements - 1], 0);
        if (!last)
            continue;
        pthread_mutex_lock(&rs->fmu);
        if (strcmp(key->str, rs->wake_key) == 0) {
            snprintf(rs->wake_cursor, sizeof rs->wake_cursor, "%s", last->str);
        } else {
            const char *id = key->str + strlen(rs->prefix) + 4;
            follow_entry *e = follow_find(rs, id);
            if (e)
                snprintf(e->cursor, sizeof e->cursor, "%s", last->str);
            if (e && *n < cap) {
                /* The end marker's first field is "e" (chunks: "s"). */
                for (size_t j = 0; j < entries->elements && !(*ended)[*n]; j++) {
                    const redisReply *en = entries->element[j];
                    const redisReply *f = en->type == REDIS_REPLY_ARRAY && en->elements >= 2 &&
                                                  en->element[1]->type == REDIS_REPLY_ARRAY &&
                                                  en->element[1]->elements >= 1
                                              ? en->element[1]->element[0]
                                              : NULL;
                    (*ended)[*n] = f && f->type == REDIS_REPLY_STRING && f->len == 1 &&
                                   f->str[0] == 'e';
                }
                snprintf((*ids)[(*n)++], PX_ID_LEN + 1, "%s", id);
            }
        }
        pthread_mutex_unlock(&rs->fmu);
    }
out:
    if (r)
        freeReplyObject(r);
    free(keys);
    free(cursors);
    return rc;
}

static void *follow_main(void *arg) {
    px_rstore *rs = arg;
    for (;;) {
        pthread_mutex_lock(&rs->fmu);
        bool stop = rs->follow_stop;
        pthread_mutex_unlock(&rs->fmu);
        if (stop)
            break;
        char(*ids)[PX_ID_LEN + 1] = NULL;
        bool *ended = NULL;
        size_t n = 0;
        px_error err = PX_ERROR_INIT;
        if (follow_once(rs, &ids, &ended, &n, &err) < 0 &&
            !px_redis_conn_connected(rs->follow_conn)) {
            /* Redis is away: wait a little before the next attempt (the
             * connection's own backoff makes attempts fail fast). */
            pthread_mutex_lock(&rs->fmu);
            if (!rs->follow_stop) {
                px_cond_wait_until(&rs->fcond, &rs->fmu, px_now_mono_ms() + 100);
            }
            pthread_mutex_unlock(&rs->fmu);
        }
        for (size_t i = 0; i < n; i++)
            rs->follow_fn(rs->follow_ud, ids[i], ended[i]);
        free(ids);
        free(ended);
    }
    return NULL;
}

int px_rstore_follow_start(px_rstore *rs, px_rstore_follow_fn fn, void *ud, px_error *err) {
    /* The wake stream's cursor starts at its last entry: an explicit id, so
     * that no wake written later is missed (unlike "$", which means "after
     * whatever is last when the XREAD arrives"). */
    const char *argv[] = {"XREVRANGE", rs->wake_key, "+", "-", "COUNT", "1"};
    redisReply *r = pool_call(rs, PX_ARRAY_SIZE(argv), argv, true, err);
    if (!r)
        return px_error_wrap(err, "start the output follower");
    const redisReply *last = r->type == REDIS_REPLY_ARRAY && r->elements > 0
                                 ? rstore_elem_str(r->element[0], 0)
                                 : NULL;
    snprintf(rs->wake_cursor, sizeof rs->wake_cursor, "%s", last ? last->str : "0-0");
    freeReplyObject(r);
    rs->follow_fn = fn;
    rs->follow_ud = ud;
    if (reader_start(rs, &rs->follow_conn, &rs->follow_thread, follow_main, "output follower",
                     err) < 0)
        return -1;
    rs->follow_started = true;
    return 0;
}

void rstore_follow_stop(px_rstore *rs) {
    if (!rs->follow_started)
        return;
    pthread_mutex_lock(&rs->fmu);
    rs->follow_stop = true;
    pthread_cond_broadcast(&rs->fcond);
    pthread_mutex_unlock(&rs->fmu);
    /* A blocked XREAD returns at once on the wake stream (or within its
     * block time if Redis is away). */
    follow_wake(rs, NULL);
    pthread_join(rs->follow_thread, NULL);
    rs->follow_started = false;
}

/* ---- the listener ---- */

#define LISTEN_POLL_MS 1000

static void *listen_main(void *arg) {
    px_rstore *rs = arg;
    bool subscribed = false;
    while (!atomic_load(&rs->listen_stop)) {
        px_error err = PX_ERROR_INIT;
        if (!subscribed) {
            const char *argv[] = {"SUBSCRIBE", rs->ctl_key};
            redisReply *r = px_redis_conn_call(rs->listen_conn, 2, argv, NULL, 0, false, &err);
            if (!r) {
                struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000000L};
                nanosleep(&ts, NULL); /* Redis is away; the backoff paces connects */
                continue;
            }
            freeReplyObject(r);
            subscribed = true;
            rs->listen_fn(rs->listen_ud, NULL, PX_KILL_NONE);
            continue;
        }
        redisReply *r = px_redis_conn_read(rs->listen_conn, LISTEN_POLL_MS, &err);
        if (!r) {
            if (err.code != PX_E_TIMEOUT)
                subscribed = false;
            continue;
        }
        /* ["message", channel, "<id> <cause>"] */
        const redisReply *kind = rstore_elem_str(r, 0), *msg = rstore_elem_str(r, 2);
        if (kind && msg && strcmp(kind->str, "message") == 0 && msg->len > PX_ID_LEN + 1 &&
            msg->str[PX_ID_LEN] == ' ') {
            char id[PX_ID_LEN + 1];
            memcpy(id, msg->str, PX_ID_LEN);
            id[PX_ID_LEN] = '\0';
            px_kill_cause cause = (px_kill_cause)strtol(msg->str + PX_ID_LEN + 1, NULL, 10);
            if (cause == PX_KILL_RPC || cause == PX_KILL_CANCEL)
                rs->listen_fn(rs->listen_ud, id, cause);
        }
        freeReplyObject(r);
    }
    return NULL;
}

int px_rstore_listen_start(px_rstore *rs, px_rstore_kill_fn fn, void *ud, px_error *err) {
    rs->listen_fn = fn;
    rs->listen_ud = ud;
    if (reader_start(rs, &rs->listen_conn, &rs->listen_thread, listen_main, "kill listener", err) <
        0)
        return -1;
    rs->listen_started = true;
    return 0;
}

void rstore_listen_stop(px_rstore *rs) {
    if (!rs->listen_started)
        return;
    atomic_store(&rs->listen_stop, true);
    /* Any message wakes the listener at once; it then sees the flag. */
    const char *argv[] = {"PUBLISH", rs->ctl_key, "stop"};
    redisReply *r = pool_call(rs, PX_ARRAY_SIZE(argv), argv, false, NULL);
    if (r)
        freeReplyObject(r);
    pthread_join(rs->listen_thread, NULL);
    rs->listen_started = false;
}
