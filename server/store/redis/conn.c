/*
 * A Redis connection that reconnects with backoff (see conn.h).
 *
 * States: closed (ctx == NULL) -> connected (ctx != NULL) on a successful
 * connect + AUTH + SELECT; connected -> closed when a command fails on the
 * socket (I/O error, EOF, timeout) or the server turns out not to be the
 * primary (READONLY, MASTERDOWN). While closed, a command first tries to
 * connect unless the backoff deadline is in the future. A failed connect,
 * and with a plain target a server that is not the primary, set that
 * deadline (doubling the wait); a reply from a primary resets the wait.
 * A connection waiting out its backoff tries at once when another
 * connection of the process has had a reply from a primary since its last
 * failure: the server is back (or found), and each connection of a pool
 * must not wait out a backoff that was for a server that was down.
 *
 * With a Sentinel target, every connect first asks the Sentinels in turn
 * (starting with the one that answered last) for the primary's address,
 * then checks with ROLE that the server there is a primary: a failover in
 * progress makes the connect fail (UNAVAILABLE), and the next one asks
 * again.
 */
#include "server/store/redis/conn.h"

#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>

#include "server/base/cleanup.h"
#include "server/base/clock.h"

struct px_redis_conn {
    px_redis_conn_config cfg;
    char *password;
    char *sentinel_password;
    char target[PX_REDIS_TARGET_TEXT_MAX]; /* the target as configured */
    /* The server, for messages: the target, or with Sentinel the master's
     * name and the address last found for it. */
    char where[PX_REDIS_TARGET_TEXT_MAX];
    redisContext *ctx;
    size_t sentinel_next;              /* the Sentinel asked first at the next connect */
    int64_t backoff_ms;                /* the wait after the next failed connect */
    int64_t retry_at_ms;               /* monotonic; no connect attempt before */
    char last_error[PX_ERROR_MSG_MAX]; /* why the last connect failed */
    bool answered;                     /* a primary replied since the connect */
    uint_fast64_t answers_seen;        /* primaries_answered at the last failure */
};

/* Connections of the process that have had a first reply from a primary
 * since they connected (see the top of the file). */
static atomic_uint_fast64_t primaries_answered;

PX_DEFINE_CLEANUP(redisContext, redisFree)
PX_DEFINE_CLEANUP(redisReply, freeReplyObject)
#define _cleanup_context_ __attribute__((cleanup(redisFreep)))
#define _cleanup_reply_ __attribute__((cleanup(freeReplyObjectp)))

static struct timeval to_timeval(int64_t ms) {
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

px_redis_conn *px_redis_conn_new(const px_redis_conn_config *config, px_error *err) {
    px_redis_conn *c = calloc(1, sizeof *c);
    if (!c) {
        px_error_set(err, PX_E_INTERNAL, "redis: out of memory");
        return NULL;
    }
    c->cfg = *config;
    c->cfg.password = NULL;
    c->cfg.sentinel_password = NULL;
    if ((config->password && !(c->password = strdup(config->password))) ||
        (config->sentinel_password &&
         !(c->sentinel_password = strdup(config->sentinel_password)))) {
        px_redis_conn_free(c);
        px_error_set(err, PX_E_INTERNAL, "redis: out of memory");
        return NULL;
    }
    px_redis_target_format(&config->target, c->target, sizeof c->target);
    if (config->target.is_sentinel)
        snprintf(c->where, sizeof c->where, "master '%s'", config->target.master_name);
    else
        snprintf(c->where, sizeof c->where, "%s", c->target);
    c->backoff_ms = config->backoff_min_ms;
    return c;
}

static void drop(px_redis_conn *c) {
    if (c->ctx) {
        redisFree(c->ctx);
        c->ctx = NULL;
    }
}

/* Closes the connection and waits the backoff before the next connect, as
 * after a failed connect; `why` is what commands say meanwhile. */
static void drop_backing_off(px_redis_conn *c, const char *why) {
    drop(c);
    snprintf(c->last_error, sizeof c->last_error, "%s", why);
    c->retry_at_ms = px_now_mono_ms() + c->backoff_ms;
    c->answers_seen = atomic_load(&primaries_answered);
    c->backoff_ms *= 2;
    if (c->backoff_ms > c->cfg.backoff_max_ms)
        c->backoff_ms = c->cfg.backoff_max_ms;
}

void px_redis_conn_free(px_redis_conn *c) {
    if (!c)
        return;
    drop(c);
    px_secret_free(c->password);
    px_secret_free(c->sentinel_password);
    free(c);
}

bool px_redis_conn_connected(const px_redis_conn *c) {
    return c->ctx != NULL;
}

/* The class of an error reply: Redis says it will be back for some. */
static px_code error_reply_code(const char *msg) {
    static const char *const transient[] = {"LOADING",  "BUSY",   "MASTERDOWN",
                                            "TRYAGAIN", "NOAUTH", "WRONGPASS"};
    for (size_t i = 0; i < PX_ARRAY_SIZE(transient); i++) {
        size_t n = strlen(transient[i]);
        if (strncmp(msg, transient[i], n) == 0 && (msg[n] == ' ' || msg[n] == '\0'))
            return PX_E_UNAVAILABLE;
    }
    return PX_E_INTERNAL;
}

/* True for the error replies of a server that is not (or no longer) the
 * primary: the connection is dropped, so the next command connects anew
 * (with Sentinel: to whichever server is the primary now). A script's
 * write on a replica fails with READONLY too. */
static bool not_the_primary(const char *msg) {
    return strncmp(msg, "READONLY", 8) == 0 || strncmp(msg, "MASTERDOWN", 10) == 0 ||
           strstr(msg, "READONLY You can't write") != NULL;
}

/* One command on the open context, no reconnect. On a socket failure drops
 * the context and sets *io_failed. */
static redisReply *call_once(px_redis_conn *c, int argc, const char **argv, const size_t *argv_len,
                             int64_t extra_timeout_ms, bool *io_failed, px_error *err) {
    *io_failed = false;
    if (extra_timeout_ms > 0)
        redisSetTimeout(c->ctx, to_timeval(c->cfg.command_timeout_ms + extra_timeout_ms));
    int64_t t0_us = px_now_mono_us();
    redisReply *reply = redisCommandArgv(c->ctx, argc, argv, argv_len);
    if (reply && extra_timeout_ms <= 0)
        px_histogram_observe(c->cfg.round_trip, (double)(px_now_mono_us() - t0_us) / 1e6);
    if (!reply) {
        bool timed_out = c->ctx->err == REDIS_ERR_IO &&
                         (strstr(c->ctx->errstr, "temporarily unavailable") ||
                          strstr(c->ctx->errstr, "timed out"));
        px_error_set(err, timed_out ? PX_E_TIMEOUT : PX_E_UNAVAILABLE, "redis %s: %s: %s", c->where,
                     argv[0], timed_out ? "no reply in time" : c->ctx->errstr);
        drop(c);
        *io_failed = !timed_out;
        return NULL;
    }
    if (extra_timeout_ms > 0)
        redisSetTimeout(c->ctx, to_timeval(c->cfg.command_timeout_ms));
    if (reply->type == REDIS_REPLY_ERROR) {
        bool moved = not_the_primary(reply->str);
        px_error_set(err, moved ? PX_E_UNAVAILABLE : error_reply_code(reply->str),
                     "redis %s: %s: %s%s", c->where, argv[0], reply->str,
                     moved ? " (not the primary: reconnecting)" : "");
        freeReplyObject(reply);
        if (moved) {
            /* Nothing was written: safe to send again to the primary. With
             * Sentinel the next connect asks where it is now (a failover:
             * at once; the ROLE check backs off while none is primary). A
             * plain target connects to the same server: that waits the
             * backoff, or every command would connect to the replica anew. */
            if (c->cfg.target.is_sentinel)
                drop(c);
            else
                drop_backing_off(c, err->msg);
            *io_failed = true;
        }
        return NULL;
    }
    return reply;
}

/* Asks one Sentinel for the address of the target's master. 0 with
 * `primary` set, or -1 with `err` set to why not. */
static int ask_sentinel(const px_redis_conn *c, const px_redis_endpoint *sentinel,
                        px_redis_endpoint *primary, px_error *err) {
    const px_redis_target *t = &c->cfg.target;
    const char *fmt = strchr(sentinel->host, ':') ? "Sentinel [%s]:%d" : "Sentinel %s:%d";
    char who[PX_REDIS_HOST_MAX + 32];
    snprintf(who, sizeof who, fmt, sentinel->host, sentinel->port);
    _cleanup_context_ redisContext *ctx = redisConnectWithTimeout(
        sentinel->host, sentinel->port, to_timeval(c->cfg.connect_timeout_ms));
    if (!ctx)
        return px_error_set(err, PX_E_INTERNAL, "%s: out of memory", who);
    if (ctx->err)
        return px_error_set(err, PX_E_UNAVAILABLE, "%s: connect: %s", who, ctx->errstr);
    redisSetTimeout(ctx, to_timeval(c->cfg.command_timeout_ms));
    if (c->sentinel_password) {
        const char *auth[] = {"AUTH", c->sentinel_password};
        size_t auth_len[] = {4, strlen(c->sentinel_password)};
        _cleanup_reply_ redisReply *a = redisCommandArgv(ctx, 2, auth, auth_len);
        if (!a)
            return px_error_set(err, PX_E_UNAVAILABLE, "%s: AUTH: %s", who, ctx->errstr);
        if (a->type == REDIS_REPLY_ERROR)
            return px_error_set(err, PX_E_UNAVAILABLE, "%s: AUTH: %s", who, a->str);
    }
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", t->master_name};
    size_t len[] = {8, 23, strlen(t->master_name)};
    _cleanup_reply_ redisReply *r = redisCommandArgv(ctx, 3, argv, len);
    if (!r)
        return px_error_set(err, PX_E_UNAVAILABLE, "%s: %s", who, ctx->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        return px_error_set(err, PX_E_UNAVAILABLE, "%s: %s", who, r->str);
    if (r->type == REDIS_REPLY_NIL)
        return px_error_set(err, PX_E_UNAVAILABLE, "%s: no master named '%s'", who, t->master_name);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[0]->len == 0 || r->element[0]->len > PX_REDIS_HOST_MAX)
        return px_error_set(err, PX_E_UNAVAILABLE,
                            "%s: unexpected reply to SENTINEL "
                            "get-master-addr-by-name",
                            who);
    char *endp;
    long port = strtol(r->element[1]->str, &endp, 10);
    if (*endp != '\0' || port < 1 || port > 65535)
        return px_error_set(err, PX_E_UNAVAILABLE, "%s: port '%s' of master '%s' out of range", who,
                            r->element[1]->str, t->master_name);
    memcpy(primary->host, r->element[0]->str, r->element[0]->len);
    primary->host[r->element[0]->len] = '\0';
    primary->port = (int)port;
    return 0;
}

/* Asks the Sentinels in turn, from the one that answered last, for the
 * primary's address. 0, or -1 with `err` naming the last failure. */
static int discover(px_redis_conn *c, px_redis_endpoint *primary, px_error *err) {
    const px_redis_target *t = &c->cfg.target;
    px_error e = PX_ERROR_INIT;
    for (size_t k = 0; k < t->sentinel_count; k++) {
        size_t i = (c->sentinel_next + k) % t->sentinel_count;
        if (ask_sentinel(c, &t->sentinels[i], primary, &e) == 0) {
            c->sentinel_next = i;
            return 0;
        }
    }
    return px_error_set(err, PX_E_UNAVAILABLE,
                        "redis %s: no Sentinel named the primary of '%s' "
                        "(%zu asked; last: %s)",
                        c->target, t->master_name, t->sentinel_count, e.msg);
}

/* With Sentinel: fails unless the server just connected to says it is a
 * primary (a replica being promoted still says "slave"). */
static int check_role(px_redis_conn *c, px_error *err) {
    bool io_failed;
    const char *argv[] = {"ROLE"};
    size_t len[] = {4};
    _cleanup_reply_ redisReply *r = call_once(c, 1, argv, len, 0, &io_failed, err);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return px_error_set(err, PX_E_UNAVAILABLE, "redis %s: unexpected reply to ROLE", c->where);
    if (strcmp(r->element[0]->str, "master") != 0)
        return px_error_set(err, PX_E_UNAVAILABLE,
                            "redis %s: the server is a %s, not the primary (a failover in "
                            "progress?)",
                            c->where, r->element[0]->str);
    return 0;
}

static int connect_now(px_redis_conn *c, px_error *err) {
    struct timeval tv = to_timeval(c->cfg.connect_timeout_ms);
    const px_redis_target *t = &c->cfg.target;
    px_redis_endpoint primary = {0};
    if (t->is_sentinel) {
        if (discover(c, &primary, err) != 0)
            return -1;
        snprintf(c->where, sizeof c->where,
                 strchr(primary.host, ':') ? "master '%s' at [%s]:%d" : "master '%s' at %s:%d",
                 t->master_name, primary.host, primary.port);
    } else if (!t->is_unix) {
        memcpy(primary.host, t->host, sizeof primary.host);
        primary.port = t->port;
    }
    redisContext *ctx = t->is_unix ? redisConnectUnixWithTimeout(t->path, tv)
                                   : redisConnectWithTimeout(primary.host, primary.port, tv);
    if (!ctx)
        return px_error_set(err, PX_E_INTERNAL, "redis %s: connect: out of memory", c->where);
    if (ctx->err) {
        px_error_set(err, PX_E_UNAVAILABLE, "redis %s: connect: %s", c->where, ctx->errstr);
        redisFree(ctx);
        return -1;
    }
    redisSetTimeout(ctx, to_timeval(c->cfg.command_timeout_ms));
    if (!t->is_unix && redisEnableKeepAlive(ctx) != REDIS_OK) {
        px_error_set(err, PX_E_UNAVAILABLE, "redis %s: keep-alive: %s", c->where, ctx->errstr);
        redisFree(ctx);
        return -1;
    }
    c->ctx = ctx;
    bool io_failed;
    if (c->password) {
        const char *argv[] = {"AUTH", c->password};
        size_t len[] = {4, strlen(c->password)};
        redisReply *r = call_once(c, 2, argv, len, 0, &io_failed, err);
        if (!r) {
            drop(c);
            /* A refused login is a configuration problem that needs an operator,
             * but the node keeps retrying (the password may be rotated). */
            err->code = PX_E_UNAVAILABLE;
            return -1;
        }
        freeReplyObject(r);
    }
    if (t->is_sentinel && check_role(c, err) != 0) {
        drop(c);
        return -1;
    }
    if (t->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", t->db);
        const char *argv[] = {"SELECT", db};
        size_t len[] = {6, strlen(db)};
        redisReply *r = call_once(c, 2, argv, len, 0, &io_failed, err);
        if (!r) {
            drop(c);
            return -1;
        }
        freeReplyObject(r);
    }
    return 0;
}

int px_redis_conn_ensure(px_redis_conn *c, px_error *err) {
    if (c->ctx)
        return 0;
    int64_t now = px_now_mono_ms();
    if (now < c->retry_at_ms && atomic_load(&primaries_answered) == c->answers_seen)
        return px_error_set(err, PX_E_UNAVAILABLE, "%s (next attempt in %lld ms)", c->last_error,
                            (long long)(c->retry_at_ms - now));
    px_error e = PX_ERROR_INIT;
    if (connect_now(c, &e) != 0) {
        drop_backing_off(c, e.msg);
        if (err)
            *err = e;
        return -1;
    }
    c->retry_at_ms = 0;
    c->answered = false;
    return 0;
}

redisReply *px_redis_conn_call(px_redis_conn *c, int argc, const char **argv,
                               const size_t *argv_len, int64_t extra_timeout_ms, bool retry,
                               px_error *err) {
    /* A connection that broke while idle (e.g. Redis restarted) fails on
     * first use; commands marked `retry` then run once more. */
    bool was_connected = c->ctx != NULL;
    if (px_redis_conn_ensure(c, err) != 0)
        return NULL;
    bool io_failed;
    px_error e = PX_ERROR_INIT;
    redisReply *r = call_once(c, argc, argv, argv_len, extra_timeout_ms, &io_failed, &e);
    if (!r && io_failed && retry && was_connected) {
        if (px_redis_conn_ensure(c, err) != 0)
            return NULL;
        r = call_once(c, argc, argv, argv_len, extra_timeout_ms, &io_failed, &e);
    }
    if (r || c->ctx) {
        c->backoff_ms = c->cfg.backoff_min_ms; /* the server answered as a primary */
        if (!c->answered) {
            c->answered = true;
            atomic_fetch_add(&primaries_answered, 1);
        }
    }
    if (!r && err)
        *err = e;
    return r;
}

redisReply *px_redis_conn_eval(px_redis_conn *c, const char *sha, const char *source, int argc,
                               const char **argv, const size_t *argv_len, bool retry,
                               px_error *err) {
    enum { MAX_ARGS = 32 };
    if (argc + 3 > MAX_ARGS) {
        px_error_set(err, PX_E_INTERNAL, "redis: script with %d arguments", argc);
        return NULL;
    }
    const char *v[MAX_ARGS];
    size_t l[MAX_ARGS];
    v[0] = "EVALSHA";
    l[0] = 7;
    v[1] = sha;
    l[1] = strlen(sha);
    v[2] = "0";
    l[2] = 1;
    memcpy(v + 3, argv, (size_t)argc * sizeof *v);
    memcpy(l + 3, argv_len, (size_t)argc * sizeof *l);
    px_error e = PX_ERROR_INIT;
    redisReply *r = px_redis_conn_call(c, argc + 3, v, l, 0, retry, &e);
    if (!r && strstr(e.msg, ": NOSCRIPT")) {
        v[0] = "EVAL";
        l[0] = 4;
        v[1] = source;
        l[1] = strlen(source);
        r = px_redis_conn_call(c, argc + 3, v, l, 0, retry, &e);
    }
    if (!r && err)
        *err = e;
    return r;
}

redisReply *px_redis_conn_read(px_redis_conn *c, int64_t timeout_ms, px_error *err) {
    if (!c->ctx) {
        px_error_set(err, PX_E_UNAVAILABLE, "redis %s: not connected", c->where);
        return NULL;
    }
    /* A reply may already sit in hiredis's buffer; else wait for the socket
     * (a read timeout inside hiredis would ruin the connection). */
    void *reply = NULL;
    if (redisGetReplyFromReader(c->ctx, &reply) != REDIS_OK)
        goto broken;
    if (reply) {
        c->backoff_ms = c->cfg.backoff_min_ms;
        return reply;
    }
    struct pollfd p = {.fd = c->ctx->fd, .events = POLLIN};
    int n = poll(&p, 1, (int)timeout_ms);
    if (n == 0) {
        px_error_set(err, PX_E_TIMEOUT, "redis %s: no message in %lld ms", c->where,
                     (long long)timeout_ms);
        return NULL;
    }
    if (n < 0 || redisGetReply(c->ctx, &reply) != REDIS_OK || !reply)
        goto broken;
    c->backoff_ms = c->cfg.backoff_min_ms;
    return reply;
broken:
    px_error_set(err, PX_E_UNAVAILABLE, "redis %s: %s", c->where,
                 c->ctx->err ? c->ctx->errstr : "connection lost");
    drop(c);
    return NULL;
}
