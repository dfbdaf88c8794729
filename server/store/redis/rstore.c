/*
 * The Redis store (see rstore.h; the key layout and the scripts are in
 * scripts.c). This file turns calls into script runs on pooled connections
 * and replies back into C structs.
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
#include "server/store/redis/scripts.h"

#define MAX_UNCERTAIN 16 /* claims whose reply was lost, to resume */

typedef struct uncertain_claim {
    char id[PX_ID_LEN + 1];
    char qid[64];
    int64_t token;
} uncertain_claim;

struct px_rstore {
    px_rstore_config cfg;
    char ns[PX_RSTORE_NAME_MAX + 1];
    char node[PX_RSTORE_NAME_MAX + 1];
    char prefix[PX_RSTORE_NAME_MAX + 8]; /* "px:<ns>:" */
    char queue_key[PX_RSTORE_NAME_MAX + 16];
    char *source[PX_RSCRIPT_COUNT];
    char sha[PX_RSCRIPT_COUNT][41];

    pthread_mutex_t mu;
    pthread_cond_t cond; /* a connection was returned */
    px_redis_conn **conns;
    bool *busy;
    unsigned n_conns;
    /* Claims that may have happened without us seeing the reply (under mu). */
    uncertain_claim uncertain[MAX_UNCERTAIN];
    unsigned n_uncertain;
    bool pel_dirty; /* an XREADGROUP reply was lost */
    px_redis_conn_config conn_cfg;

    /* The follower: ids it follows, with the stream id it has seen. */
    pthread_mutex_t fmu;
    pthread_cond_t fcond; /* the follow set is no longer empty, or stop */
    struct follow_entry *follow;
    size_t n_follow, cap_follow;
    bool follow_started, follow_stop;
    pthread_t follow_thread;
    px_redis_conn *follow_conn;
    px_rstore_follow_fn follow_fn;
    void *follow_ud;
    char wake_key[PX_RSTORE_NAME_MAX * 2 + 16];
    char wake_cursor[48];
    /* The follower's connection answered once: a fresh one after that is a
     * reconnect, after which every follower is told (follower thread). */
    bool follow_answered;

    /* The listener on this node's ctl channel. */
    bool listen_started;
    _Atomic bool listen_stop;
    pthread_t listen_thread;
    px_redis_conn *listen_conn;
    px_rstore_kill_fn listen_fn;
    void *listen_ud;
    char ctl_key[PX_RSTORE_NAME_MAX * 2 + 16];
};

typedef struct follow_entry {
    char id[PX_ID_LEN + 1];
    char cursor[48]; /* the last stream id seen */
    unsigned refs;
} follow_entry;

static void conn_cfg_password_free(px_redis_conn_config *c) {
    if (c->password) {
        explicit_bzero((char *)c->password, strlen(c->password));
        free((char *)c->password);
        c->password = NULL;
    }
}

/* ---- the connection pool ---- */

static px_redis_conn *pool_take(px_rstore *rs, unsigned *slot, px_error *err) {
    pthread_mutex_lock(&rs->mu);
    for (;;) {
        /* Prefer an open connection; else any free slot. */
        int pick = -1;
        for (unsigned i = 0; i < rs->cfg.max_connections; i++) {
            if (rs->busy[i])
                continue;
            if (rs->conns[i] && px_redis_conn_connected(rs->conns[i])) {
                pick = (int)i;
                break;
            }
            if (pick < 0)
                pick = (int)i;
        }
        if (pick >= 0) {
            unsigned i = (unsigned)pick;
            if (!rs->conns[i]) {
                rs->conns[i] = px_redis_conn_new(&rs->conn_cfg, err);
                if (!rs->conns[i]) {
                    pthread_mutex_unlock(&rs->mu);
                    return NULL;
                }
            }
            rs->busy[i] = true;
            pthread_mutex_unlock(&rs->mu);
            *slot = i;
            return rs->conns[i];
        }
        pthread_cond_wait(&rs->cond, &rs->mu);
    }
}

static void pool_give(px_rstore *rs, unsigned slot) {
    pthread_mutex_lock(&rs->mu);
    rs->busy[slot] = false;
    pthread_cond_signal(&rs->cond);
    pthread_mutex_unlock(&rs->mu);
}

/* ---- running scripts ---- */

#define MAX_ARGS 20

/* Runs script `s` with ARGV = prefix, argv... on connection `c`. */
static redisReply *eval_on(px_rstore *rs, px_redis_conn *c, px_rscript s, int argc,
                           const char **argv, const size_t *len, bool retry, px_error *err) {
    const char *v[MAX_ARGS];
    size_t l[MAX_ARGS];
    v[0] = rs->prefix;
    l[0] = strlen(rs->prefix);
    for (int i = 0; i < argc; i++) {
        v[i + 1] = argv[i];
        l[i + 1] = len ? len[i] : strlen(argv[i]);
    }
    redisReply *r = px_redis_conn_eval(c, rs->sha[s], rs->source[s], argc + 1, v, l, retry, err);
    if (!r)
        px_error_wrap(err, "%s", px_rscript_name(s));
    return r;
}

static redisReply *eval(px_rstore *rs, px_rscript s, int argc, const char **argv, const size_t *len,
                        bool retry, px_error *err) {
    unsigned slot;
    px_redis_conn *c = pool_take(rs, &slot, err);
    if (!c)
        return NULL;
    redisReply *r = eval_on(rs, c, s, argc, argv, len, retry, err);
    pool_give(rs, slot);
    return r;
}

static void reply_freep(redisReply **r) {
    if (*r)
        freeReplyObject(*r);
}
#define _cleanup_reply_ __attribute__((cleanup(reply_freep)))

static int bad_reply(px_rscript s, px_error *err) {
    return px_error_set(err, PX_E_INTERNAL, "%s: unexpected reply from Redis", px_rscript_name(s));
}

/* The integer at r->element[i] (integer or numeric string), or `def`. */
static long long elem_int(const redisReply *r, size_t i, long long def) {
    if (r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return def;
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type == REDIS_REPLY_STRING)
        return strtoll(e->str, NULL, 10);
    return def;
}

static const redisReply *elem_str(const redisReply *r, size_t i) {
    if (r->type != REDIS_REPLY_ARRAY || i >= r->elements ||
        r->element[i]->type != REDIS_REPLY_STRING)
        return NULL;
    return r->element[i];
}

/* Maps owned()'s codes (scripts.c) to the API's results. */
static int owner_result(long long code, const char *id, px_error *err) {
    switch (code) {
    case 1: return PX_RSTORE_DONE;
    case 0: return PX_RSTORE_NOOP;
    case -1: return PX_RSTORE_FENCED;
    case -2: return px_error_set(err, PX_E_NOT_FOUND, "execution '%s' not found", id);
    case -3: return PX_RSTORE_ENDED;
    default: return px_error_set(err, PX_E_INTERNAL, "unexpected script result %lld", code);
    }
}

/* ---- set-up ---- */

static bool valid_name(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > PX_RSTORE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static int check_config(const px_rstore_config *c, px_error *err) {
    if (!valid_name(c->ns))
        return px_error_set(err, PX_E_INVALID,
                            "store namespace: 1..%d characters of [A-Za-z0-9_.-]",
                            PX_RSTORE_NAME_MAX);
    if (!valid_name(c->node))
        return px_error_set(err, PX_E_INVALID, "node name: 1..%d characters of [A-Za-z0-9_.-]",
                            PX_RSTORE_NAME_MAX);
    if (c->lease_ms <= 0 || c->retention_ms <= 0 || c->max_connections == 0 ||
        c->connect_timeout_ms <= 0 || c->command_timeout_ms <= 0 || c->backoff_min_ms < 0 ||
        c->backoff_max_ms < c->backoff_min_ms)
        return px_error_set(err, PX_E_INVALID, "redis store: invalid limits");
    return 0;
}

/* Loads every script (SCRIPT LOAD) and creates the queue group. */
static int prepare(px_rstore *rs, px_error *err) {
    unsigned slot;
    px_redis_conn *c = pool_take(rs, &slot, err);
    if (!c)
        return -1;
    int rc = 0;
    for (int s = 0; s < PX_RSCRIPT_COUNT && rc == 0; s++) {
        const char *argv[] = {"SCRIPT", "LOAD", rs->source[s]};
        redisReply *r = px_redis_conn_call(c, 3, argv, NULL, 0, true, err);
        if (!r || r->type != REDIS_REPLY_STRING || r->len != 40) {
            if (r)
                px_error_set(err, PX_E_INTERNAL, "unexpected reply");
            rc = px_error_wrap(err, "load script %s", px_rscript_name((px_rscript)s));
        } else {
            memcpy(rs->sha[s], r->str, 40);
            rs->sha[s][40] = '\0';
        }
        if (r)
            freeReplyObject(r);
    }
    if (rc == 0) {
        const char *argv[] = {"XGROUP", "CREATE", rs->queue_key, "workers", "0", "MKSTREAM"};
        px_error e = PX_ERROR_INIT;
        redisReply *r = px_redis_conn_call(c, 6, argv, NULL, 0, true, &e);
        if (r)
            freeReplyObject(r);
        else if (!strstr(e.msg, "BUSYGROUP")) {
            if (err)
                *err = e;
            rc = px_error_wrap(err, "create the queue's consumer group");
        }
    }
    pool_give(rs, slot);
    return rc;
}

px_rstore *px_rstore_new(const px_rstore_config *config, px_error *err) {
    if (check_config(config, err) != 0)
        return NULL;
    px_rstore *rs = calloc(1, sizeof *rs);
    if (!rs) {
        px_error_set(err, PX_E_INTERNAL, "redis store: out of memory");
        return NULL;
    }
    rs->cfg = *config;
    snprintf(rs->ns, sizeof rs->ns, "%s", config->ns);
    snprintf(rs->node, sizeof rs->node, "%s", config->node);
    rs->cfg.ns = rs->ns;
    rs->cfg.node = rs->node;
    rs->cfg.password = NULL;
    snprintf(rs->prefix, sizeof rs->prefix, "px:%s:", rs->ns);
    snprintf(rs->queue_key, sizeof rs->queue_key, "%squeue", rs->prefix);
    pthread_mutex_init(&rs->mu, NULL);
    pthread_cond_init(&rs->cond, NULL);
    pthread_mutex_init(&rs->fmu, NULL);
    px_cond_init_mono(&rs->fcond);
    atomic_init(&rs->listen_stop, false);
    snprintf(rs->wake_key, sizeof rs->wake_key, "%sfw:%s", rs->prefix, rs->node);
    snprintf(rs->ctl_key, sizeof rs->ctl_key, "%sctl:%s", rs->prefix, rs->node);
    rs->conn_cfg = (px_redis_conn_config){
        .target = config->target,
        .connect_timeout_ms = config->connect_timeout_ms,
        .command_timeout_ms = config->command_timeout_ms,
        .backoff_min_ms = config->backoff_min_ms,
        .backoff_max_ms = config->backoff_max_ms,
        .round_trip = px_metrics_histogram(
            config->metrics, "pyexec_store_round_trip_seconds",
            "Redis commands of the store from sending to the answer (blocking ones excepted).",
            NULL, px_metrics_latency_bounds, px_metrics_latency_bounds_n),
    };
    rs->conns = calloc(config->max_connections, sizeof *rs->conns);
    rs->busy = calloc(config->max_connections, sizeof *rs->busy);
    if (config->password)
        rs->conn_cfg.password = strdup(config->password);
    bool oom = !rs->conns || !rs->busy || (config->password && !rs->conn_cfg.password);
    for (int s = 0; s < PX_RSCRIPT_COUNT && !oom; s++) {
        rs->source[s] = px_rscript_source((px_rscript)s, err);
        oom = !rs->source[s];
    }
    if (oom) {
        px_error_set(err, PX_E_INTERNAL, "redis store: out of memory");
        px_rstore_free(rs);
        return NULL;
    }
    if (prepare(rs, err) != 0) {
        char where[PX_REDIS_PATH_MAX + 64];
        px_redis_target_format(&config->target, where, sizeof where);
        px_error_wrap(err, "redis store %s", where);
        px_rstore_free(rs);
        return NULL;
    }
    return rs;
}

static void follow_stop(px_rstore *rs);
static void listen_stop(px_rstore *rs);

void px_rstore_free(px_rstore *rs) {
    if (!rs)
        return;
    follow_stop(rs);
    listen_stop(rs);
    free(rs->follow);
    px_redis_conn_free(rs->follow_conn);
    px_redis_conn_free(rs->listen_conn);
    pthread_cond_destroy(&rs->fcond);
    pthread_mutex_destroy(&rs->fmu);
    for (unsigned i = 0; rs->conns && i < rs->cfg.max_connections; i++)
        px_redis_conn_free(rs->conns[i]);
    free(rs->conns);
    free(rs->busy);
    for (int s = 0; s < PX_RSCRIPT_COUNT; s++)
        free(rs->source[s]);
    conn_cfg_password_free(&rs->conn_cfg);
    pthread_cond_destroy(&rs->cond);
    pthread_mutex_destroy(&rs->mu);
    free(rs);
}

int px_rstore_list_ids(px_rstore *rs, const char *tenant, int64_t below, size_t max,
                       px_rstore_listed *out, size_t *n, px_error *err) {
    *n = 0;
    if (max == 0 || max > PX_RSTORE_LIST_BATCH)
        return px_error_set(err, PX_E_INVALID, "list: batch of %zu", max);
    char key[sizeof rs->prefix + 8 + PX_TENANT_MAX], hi[32], count[24];
    snprintf(key, sizeof key, "%slist:%s", rs->prefix, tenant);
    if (below > 0)
        snprintf(hi, sizeof hi, "(%lld", (long long)below);
    else
        snprintf(hi, sizeof hi, "+inf");
    snprintf(count, sizeof count, "%zu", max);
    unsigned slot;
    px_redis_conn *c = pool_take(rs, &slot, err);
    if (!c)
        return -1;
    const char *argv[] = {"ZREVRANGEBYSCORE", key, hi, "-inf", "WITHSCORES", "LIMIT", "0", count};
    _cleanup_reply_ redisReply *r = px_redis_conn_call(c, 8, argv, NULL, 0, true, err);
    pool_give(rs, slot);
    if (!r)
        return px_error_wrap(err, "list");
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0 || r->elements / 2 > max)
        return px_error_set(err, PX_E_INTERNAL, "list: unexpected reply from Redis");
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *id = r->element[i], *score = r->element[i + 1];
        if (id->type != REDIS_REPLY_STRING || id->len != PX_ID_LEN ||
            score->type != REDIS_REPLY_STRING)
            return px_error_set(err, PX_E_INTERNAL, "list: unexpected entry in Redis");
        memcpy(out[*n].id, id->str, PX_ID_LEN);
        out[*n].id[PX_ID_LEN] = '\0';
        out[*n].score = strtoll(score->str, NULL, 10);
        (*n)++;
    }
    return 0;
}

int px_rstore_unlist(px_rstore *rs, const char *tenant, const char *id, px_error *err) {
    char key[sizeof rs->prefix + 8 + PX_TENANT_MAX];
    snprintf(key, sizeof key, "%slist:%s", rs->prefix, tenant);
    unsigned slot;
    px_redis_conn *c = pool_take(rs, &slot, err);
    if (!c)
        return -1;
    const char *argv[] = {"ZREM", key, id};
    redisReply *r = px_redis_conn_call(c, 3, argv, NULL, 0, true, err);
    pool_give(rs, slot);
    if (!r)
        return px_error_wrap(err, "list: remove '%s'", id);
    freeReplyObject(r);
    return 0;
}

int px_rstore_ping(px_rstore *rs, px_error *err) {
    unsigned slot;
    px_redis_conn *c = pool_take(rs, &slot, err);
    if (!c)
        return -1;
    const char *argv[] = {"PING"};
    redisReply *r = px_redis_conn_call(c, 1, argv, NULL, 0, true, err);
    pool_give(rs, slot);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

/* ---- node lease ---- */

#define NUM(buf, v) snprintf(buf, sizeof buf, "%lld", (long long)(v))

int px_rstore_lease_acquire(px_rstore *rs, int64_t *token, px_error *err) {
    char lease[24], now[24], ttl[24];
    NUM(lease, rs->cfg.lease_ms);
    NUM(now, px_now_unix_ms());
    NUM(ttl, rs->cfg.retention_ms);
    const char *argv[] = {rs->node, lease, now, ttl};
    _cleanup_reply_ redisReply *r = eval(rs, PX_RSCRIPT_LEASE_ACQUIRE, 4, argv, NULL, false, err);
    if (!r)
        return px_error_wrap(err, "node '%s': take the lease", rs->node);
    long long v = elem_int(r, 0, 0);
    if (v == -1)
        return px_error_set(err, PX_E_EXHAUSTED,
                            "node '%s': the name's lease is held for %lld ms more (another node "
                            "with this name, or this node's previous run)",
                            rs->node, elem_int(r, 1, 0));
    if (v <= 0)
        return bad_reply(PX_RSCRIPT_LEASE_ACQUIRE, err);
    *token = v;
    return 0;
}

int px_rstore_lease_renew(px_rstore *rs, int64_t token, px_error *err) {
    char tok[24], lease[24];
    NUM(tok, token);
    NUM(lease, rs->cfg.lease_ms);
    const char *argv[] = {rs->node, tok, lease};
    _cleanup_reply_ redisReply *r = eval(rs, PX_RSCRIPT_LEASE_RENEW, 3, argv, NULL, true, err);
    if (!r)
        return px_error_wrap(err, "node '%s': renew the lease", rs->node);
    if (r->type != REDIS_REPLY_INTEGER)
        return bad_reply(PX_RSCRIPT_LEASE_RENEW, err);
    return r->integer == 1 ? PX_RSTORE_DONE : PX_RSTORE_FENCED;
}

int px_rstore_lease_release(px_rstore *rs, int64_t token, px_error *err) {
    char tok[24], now[24], ttl[24];
    NUM(tok, token);
    NUM(now, px_now_unix_ms());
    NUM(ttl, rs->cfg.retention_ms);
    const char *argv[] = {rs->node, tok, now, ttl};
    _cleanup_reply_ redisReply *r = eval(rs, PX_RSCRIPT_LEASE_RELEASE, 4, argv, NULL, true, err);
    if (!r)
        return px_error_wrap(err, "node '%s': release the lease", rs->node);
    if (r->type != REDIS_REPLY_INTEGER)
        return bad_reply(PX_RSCRIPT_LEASE_RELEASE, err);
    return r->integer < 0 ? -PX_RSTORE_FENCED : (int)r->integer;
}

int px_rstore_sweep(px_rstore *rs, unsigned *lost, px_error *err) {
    char now[24], ttl[24];
    NUM(now, px_now_unix_ms());
    NUM(ttl, rs->cfg.retention_ms);
    const char *argv[] = {now, ttl};
    _cleanup_reply_ redisReply *r = eval(rs, PX_RSCRIPT_SWEEP, 2, argv, NULL, true, err);
    if (!r)
        return px_error_wrap(err, "sweep");
    if (r->type != REDIS_REPLY_INTEGER)
        return bad_reply(PX_RSCRIPT_SWEEP, err);
    *lost = (unsigned)r->integer;
    return 0;
}

/* ---- records and the queue ---- */

int px_rstore_create(px_rstore *rs, const char *tenant, const char *request_id, const char *digest,
                     const uint8_t *job, size_t job_len, unsigned max_queued,
                     char id_out[PX_ID_LEN + 1], bool *existed,
                     char digest_out[PX_RSTORE_DIGEST_MAX + 1], px_error *err) {
    *existed = false;
    digest_out[0] = '\0';
    if (strlen(request_id) > PX_RSTORE_REQUEST_ID_MAX)
        return px_error_set(err, PX_E_INVALID, "request_id: longer than %d bytes",
                            PX_RSTORE_REQUEST_ID_MAX);
    if (strlen(digest) > PX_RSTORE_DIGEST_MAX)
        return px_error_set(err, PX_E_INVALID, "request digest: longer than %d bytes",
                            PX_RSTORE_DIGEST_MAX);
    char id[PX_ID_LEN + 1];
    if (px_id_new(id, err) != 0)
        return px_error_wrap(err, "create");
    char maxq[24], now[24], oldest[32];
    NUM(maxq, max_queued);
    int64_t now_ms = px_now_unix_ms();
    NUM(now, now_ms);
    NUM(oldest, (now_ms - rs->cfg.retention_ms - PX_RSTORE_LIST_SLACK_MS) * 1000);
    const char *argv[] = {id, request_id, digest, (const char *)job, maxq, now, tenant, oldest};
    size_t len[] = {strlen(id),   strlen(request_id), strlen(digest), job_len,
                    strlen(maxq), strlen(now),        strlen(tenant), strlen(oldest)};
    _cleanup_reply_ redisReply *r = eval(rs, PX_RSCRIPT_CREATE, 8, argv, len, true, err);
    if (!r)
        return px_error_wrap(err, "create");
    long long kind = elem_int(r, 0, -1);
    const redisReply *rid = elem_str(r, 1);
    if (kind == 2)
        return px_error_set(err, PX_E_EXHAUSTED, "the queue is full (%lld executions waiting)",
                            elem_int(r, 1, 0));
    if ((kind != 0 && kind != 1) || !rid || rid->len != PX_ID_LEN)
        return bad_reply(PX_RSCRIPT_CREATE, err);
    memcpy(id_out, rid->str, PX_ID_LEN);
    id_out[PX_ID_LEN] = '\0';
    if (kind == 1) {
        const redisReply *d = elem_str(r, 2);
        *existed = true;
        if (d && d->len <= PX_RSTORE_DIGEST_MAX) {
            memcpy(digest_out, d->str, d->len);
            digest_out[d->len] = '\0';
        }
    }
    return 0;
}

static void uncertain_add(px_rstore *rs, const char *id, const char *qid, int64_t token) {
    pthread_mutex_lock(&rs->mu);
    if (rs->n_uncertain < MAX_UNCERTAIN) {
        uncertain_claim *u = &rs->uncertain[rs->n_uncertain++];
        snprintf(u->id, sizeof u->id, "%s", id);
        snprintf(u->qid, sizeof u->qid, "%s", qid);
        u->token = token;
    }
    pthread_mutex_unlock(&rs->mu);
}

static bool uncertain_pop(px_rstore *rs, uncertain_claim *out) {
    pthread_mutex_lock(&rs->mu);
    bool any = rs->n_uncertain > 0;
    if (any)
        *out = rs->uncertain[--rs->n_uncertain];
    pthread_mutex_unlock(&rs->mu);
    return any;
}

/* Runs the claim script for (id, qid); fills *out on success. */
static int claim_entry(px_rstore *rs, px_redis_conn *c, const char *id, const char *qid,
                       int64_t token, bool resume, px_rstore_job *out, px_error *err) {
    char tok[24];
    NUM(tok, token);
    const char *argv[] = {id, qid, rs->node, tok, resume ? "1" : "0"};
    _cleanup_reply_ redisReply *r = eval_on(rs, c, PX_RSCRIPT_CLAIM, 5, argv, NULL, false, err);
    if (!r) {
        if (err && (err->code == PX_E_UNAVAILABLE || err->code == PX_E_TIMEOUT))
            uncertain_add(rs, id, qid, token);
        return px_error_wrap(err, "claim '%s'", id);
    }
    long long kind = elem_int(r, 0, -2);
    if (kind == -1)
        return PX_RSTORE_FENCED;
    if (kind == 0)
        return 0;
    const redisReply *job = elem_str(r, 1);
    if (kind != 1 || !job)
        return bad_reply(PX_RSCRIPT_CLAIM, err);
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", id);
    out->job = malloc(job->len ? job->len : 1);
    if (!out->job)
        return px_error_set(err, PX_E_INTERNAL, "claim: out of memory");
    memcpy(out->job, job->str, job->len);
    out->job_len = job->len;
    return PX_RSTORE_DONE;
}

/* Reads one entry of the queue for this node: its own pending entries with
 * `from` "0" (no wait), new ones with ">" (waiting up to block_ms). Returns
 * 1 with qid and id set (borrowed from the reply; id NULL if the entry was
 * deleted), 0 if there was none, -1 on error. */
static int read_queue(px_rstore *rs, px_redis_conn *c, const char *from, int64_t block_ms,
                      redisReply **reply, const redisReply **qid, const redisReply **id,
                      px_error *err) {
    char block[24];
    NUM(block, block_ms);
    const char *wait[] = {"XREADGROUP", "GROUP", "workers", rs->node,      "COUNT", "1",
                          "BLOCK",      block,   "STREAMS", rs->queue_key, from};
    const char *now[] = {"XREADGROUP", "GROUP",   "workers",     rs->node, "COUNT",
                         "1",          "STREAMS", rs->queue_key, from};
    /* BLOCK 0 would wait forever: "do not wait" is no BLOCK at all. */
    bool blocking = strcmp(from, ">") == 0 && block_ms > 0;
    redisReply *r = blocking ? px_redis_conn_call(c, PX_ARRAY_SIZE(wait), wait, NULL, block_ms,
                                                  false, err)
                             : px_redis_conn_call(c, PX_ARRAY_SIZE(now), now, NULL, 0, false, err);
    if (!r)
        return px_error_wrap(err, "read the queue");
    *reply = r;
    /* [[queue, [[qid, [field, value, ...] or nil], ...]]] or nil. */
    if (r->type == REDIS_REPLY_NIL)
        return 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 ||
        r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != 2 ||
        r->element[0]->element[1]->type != REDIS_REPLY_ARRAY)
        return bad_reply(PX_RSCRIPT_CLAIM, err);
    const redisReply *entries = r->element[0]->element[1];
    if (entries->elements == 0)
        return 0;
    const redisReply *e = entries->element[0];
    *qid = elem_str(e, 0);
    if (!*qid)
        return bad_reply(PX_RSCRIPT_CLAIM, err);
    const redisReply *fields = e->elements > 1 ? e->element[1] : NULL;
    *id = fields ? elem_str(fields, 1) : NULL;
    if (*id && (*id)->len != PX_ID_LEN)
        *id = NULL;
    return 1;
}

int px_rstore_claim(px_rstore *rs, int64_t token, int64_t block_ms, px_rstore_job *out,
                    px_error *err) {
    unsigned slot;
    px_redis_conn *c = pool_take(rs, &slot, err);
    if (!c)
        return -1;
    int rc;
    uncertain_claim u;
    pthread_mutex_lock(&rs->mu);
    bool recheck = rs->pel_dirty;
    rs->pel_dirty = false;
    pthread_mutex_unlock(&rs->mu);
    if (uncertain_pop(rs, &u)) {
        /* A claim whose reply was lost: finish it first (only with the same
         * token; a new lease reaped it already). */
        rc = u.token == token ? claim_entry(rs, c, u.id, u.qid, token, true, out, err) : 0;
        pool_give(rs, slot);
        return rc;
    }
    /* After a lost XREADGROUP reply an entry may sit in this node's pending
     * list unseen: look there first ("0"), then at new entries (">"). */
    _cleanup_reply_ redisReply *r = NULL;
    const redisReply *qid = NULL, *id = NULL;
    rc = 0;
    if (recheck)
        rc = read_queue(rs, c, "0", 0, &r, &qid, &id, err);
    if (rc == 0) {
        if (r) {
            freeReplyObject(r);
            r = NULL;
        }
        rc = read_queue(rs, c, ">", block_ms, &r, &qid, &id, err);
    }
    if (rc < 0 && err && (err->code == PX_E_UNAVAILABLE || err->code == PX_E_TIMEOUT)) {
        pthread_mutex_lock(&rs->mu);
        rs->pel_dirty = true;
        pthread_mutex_unlock(&rs->mu);
    }
    if (rc == 1 && !id) {
        /* Deleted meanwhile (e.g. killed while queued): acknowledge. */
        const char *ack[] = {"XACK", rs->queue_key, "workers", qid->str};
        redisReply *a = px_redis_conn_call(c, 4, ack, NULL, 0, true, err);
        rc = a ? 0 : px_error_wrap(err, "acknowledge a deleted queue entry");
        if (a)
            freeReplyObject(a);
    } else if (rc == 1) {
        rc = claim_entry(rs, c, id->str, qid->str, token, false, out, err);
    }
    pool_give(rs, slot);
    return rc;
}

int px_rstore_set_running(px_rstore *rs, const char *id, int64_t token, int64_t started_at_ms,
                          px_error *err) {
    char tok[24], sa[24];
    NUM(tok, token);
    NUM(sa, started_at_ms);
    const char *argv[] = {id, tok, sa};
    _cleanup_reply_ redisReply *r = eval(rs, PX_RSCRIPT_SET_RUNNING, 3, argv, NULL, true, err);
    if (!r)
        return px_error_wrap(err, "execution '%s': set running", id);
    if (r->type != REDIS_REPLY_INTEGER)
        return bad_reply(PX_RSCRIPT_SET_RUNNING, err);
    return owner_result(r->integer, id, err);
}

int px_rstore_append(px_rstore *rs, const char *id, int64_t token, int64_t offset, px_stream stream,
                     const uint8_t *data, size_t len, px_error *err) {
    if (len == 0 || offset < 0)
        return px_error_set(err, PX_E_INVALID, "append: empty chunk or negative offset");
    char tok[24], off[24], st[24];
    NUM(tok, token);
    NUM(off, offset);
    NUM(st, (int)stream);
    const char *argv[] = {id, tok, off, st, (const char *)data};
    size_t lens[] = {strlen(id), strlen(tok), strlen(off), strlen(st), len};
    _cleanup_reply_ redisReply *r = eval(rs, PX_RSCRIPT_APPEND, 5, argv, lens, true, err);
    if (!r)
        return px_error_wrap(err, "execution '%s': append", id);
    if (r->type != REDIS_REPLY_INTEGER)
        return bad_reply(PX_RSCRIPT_APPEND, err);
    return r->integer > 0 ? PX_RSTORE_DONE : owner_result(r->integer, id, err);
}

int px_rstore_finish(px_rstore *rs, const char *id, int64_t token, const px_outcome *o,
                     px_error *err) {
    char tok[24], ttl[24], st[24], rsn[24], ex[24], mem[24], cpu[24], sa[24], fa[24], ec[24];
    NUM(tok, token);
    NUM(ttl, rs->cfg.retention_ms);
    NUM(st, (int)o->status);
    NUM(rsn, (int)o->reason);
    NUM(ex, o->exit_code);
    NUM(mem, o->peak_memory_bytes);
    NUM(cpu, o->cpu_time_ms);
    NUM(sa, o->started_at_ms);
    NUM(fa, o->finished_at_ms);
    NUM(ec, (int)o->error_code);
    char pel[24];
    NUM(pel, o->py.error_line);
    const char *argv[] = {id,
                          tok,
                          ttl,
                          st,
                          rsn,
                          o->ran ? "1" : "0",
                          ex,
                          o->output_truncated ? "1" : "0",
                          mem,
                          cpu,
                          sa,
                          fa,
                          ec,
                          o->error,
                          o->py.result ? "1" : "0",
                          o->py.result ? o->py.result : "",
                          o->py.error_type ? o->py.error_type : "",
                          pel,
                          o->py.error_message ? o->py.error_message : ""};
    _cleanup_reply_ redisReply *r = eval(rs, PX_RSCRIPT_FINISH, 19, argv, NULL, true, err);
    if (!r)
        return px_error_wrap(err, "execution '%s': finish", id);
    if (r->type != REDIS_REPLY_INTEGER)
        return bad_reply(PX_RSCRIPT_FINISH, err);
    return owner_result(r->integer, id, err);
}

int px_rstore_kill(px_rstore *rs, const char *id, px_kill_cause cause,
                   char owner_out[PX_RSTORE_NAME_MAX + 1], px_error *err) {
    owner_out[0] = '\0';
    if (cause != PX_KILL_RPC && cause != PX_KILL_CANCEL)
        return px_error_set(err, PX_E_INVALID, "kill: cause %d is not a client's", (int)cause);
    char cs[24], ttl[24], now[24], st[24], rsn[24];
    NUM(cs, (int)cause);
    NUM(ttl, rs->cfg.retention_ms);
    NUM(now, px_now_unix_ms());
    NUM(st, (int)PX_STATUS_KILLED);
    NUM(rsn, (int)(cause == PX_KILL_RPC ? PX_REASON_KILLED : PX_REASON_CLIENT_CANCELLED));
    const char *argv[] = {id, cs, ttl, now, st, rsn};
    _cleanup_reply_ redisReply *r = eval(rs, PX_RSCRIPT_KILL, 6, argv, NULL, true, err);
    if (!r)
        return px_error_wrap(err, "execution '%s': kill", id);
    long long kind = elem_int(r, 0, -3);
    switch (kind) {
    case -2: return px_error_set(err, PX_E_NOT_FOUND, "execution '%s' not found", id);
    case 0: return PX_RSTORE_KILL_ENDED;
    case 1: return PX_RSTORE_KILL_QUEUED;
    case 2: {
        const redisReply *own = elem_str(r, 1);
        if (!own || own->len > PX_RSTORE_NAME_MAX)
            return bad_reply(PX_RSCRIPT_KILL, err);
        memcpy(owner_out, own->str, own->len);
        owner_out[own->len] = '\0';
        return PX_RSTORE_KILL_SENT;
    }
    default: return bad_reply(PX_RSCRIPT_KILL, err);
    }
}

/* ---- reading ---- */

static void copy_field(char *dst, size_t size, const redisReply *v) {
    size_t n = v->len < size - 1 ? v->len : size - 1;
    memcpy(dst, v->str, n);
    dst[n] = '\0';
}

static int dup_bytes(const redisReply *v, uint8_t **data, size_t *len) {
    *data = NULL;
    *len = 0;
    if (!v || v->len == 0)
        return 0;
    *data = malloc(v->len);
    if (!*data)
        return -1;
    memcpy(*data, v->str, v->len);
    *len = v->len;
    return 0;
}

int px_rstore_get(px_rstore *rs, const char *id, bool with_output, px_rstore_view *view,
                  px_error *err) {
    memset(view, 0, sizeof *view);
    const char *argv[] = {id, with_output ? "1" : "0"};
    _cleanup_reply_ redisReply *r = eval(rs, PX_RSCRIPT_GET, 2, argv, NULL, true, err);
    if (!r)
        return px_error_wrap(err, "execution '%s': get", id);
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 0)
        return px_error_set(err, PX_E_NOT_FOUND, "execution '%s' not found", id);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_ARRAY)
        return bad_reply(PX_RSCRIPT_GET, err);
    px_record_view *v = &view->record;
    snprintf(v->id, sizeof v->id, "%s", id);
    px_outcome *o = &v->outcome;
    const redisReply *h = r->element[0];
    bool has_result = false;
    bool oom = false;
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *k = h->element[i], *val = h->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
            continue;
        long long n = strtoll(val->str, NULL, 10);
        const char *f = k->str;
        if (!strcmp(f, "st"))
            v->status = (px_status)n;
        else if (!strcmp(f, "rs"))
            o->reason = (px_reason)n;
        else if (!strcmp(f, "ran"))
            o->ran = n != 0;
        else if (!strcmp(f, "ex"))
            o->exit_code = (int)n;
        else if (!strcmp(f, "tr"))
            o->output_truncated = n != 0;
        else if (!strcmp(f, "mem"))
            o->peak_memory_bytes = n;
        else if (!strcmp(f, "cpu"))
            o->cpu_time_ms = n;
        else if (!strcmp(f, "sa"))
            o->started_at_ms = n;
        else if (!strcmp(f, "fa"))
            o->finished_at_ms = n;
        else if (!strcmp(f, "ec"))
            o->error_code = (px_code)n;
        else if (!strcmp(f, "er"))
            copy_field(o->error, sizeof o->error, val);
        else if (!strcmp(f, "len"))
            v->log_len = n;
        else if (!strcmp(f, "own"))
            copy_field(view->owner, sizeof view->owner, val);
        else if (!strcmp(f, "fen"))
            view->token = n;
        else if (!strcmp(f, "kil"))
            view->kill = (px_kill_cause)n;
        else if (!strcmp(f, "ca"))
            view->created_at_ms = n;
        else if (!strcmp(f, "rid"))
            copy_field(view->request_id, sizeof view->request_id, val);
        else if (!strcmp(f, "dig"))
            copy_field(view->digest, sizeof view->digest, val);
        else if (!strcmp(f, "tn"))
            copy_field(view->tenant, sizeof view->tenant, val);
        else if (!strcmp(f, "prh"))
            has_result = n != 0;
        else if (!strcmp(f, "prs"))
            oom |= !(o->py.result = strndup(val->str, val->len));
        else if (!strcmp(f, "pet") && val->len > 0)
            oom |= !(o->py.error_type = strndup(val->str, val->len));
        else if (!strcmp(f, "pel"))
            o->py.error_line = (int32_t)n;
        else if (!strcmp(f, "pem") && val->len > 0)
            oom |= !(o->py.error_message = strndup(val->str, val->len));
    }
    if (!has_result) {
        free(o->py.result);
        o->py.result = NULL;
    }
    if (oom) {
        px_record_view_release(v);
        return px_error_set(err, PX_E_INTERNAL, "get: out of memory");
    }
    o->status = px_status_terminal(v->status) ? v->status : PX_STATUS_UNSPECIFIED;
    if (dup_bytes(elem_str(r, 1), &v->stdout_data, &v->stdout_len) != 0 ||
        dup_bytes(elem_str(r, 2), &v->stderr_data, &v->stderr_len) != 0) {
        px_record_view_release(v);
        return px_error_set(err, PX_E_INTERNAL, "get: out of memory");
    }
    return 0;
}

int px_rstore_read(px_rstore *rs, const char *id, int64_t offset, size_t max_len,
                   px_log_chunk *chunk, px_error *err) {
    memset(chunk, 0, sizeof *chunk);
    if (offset < 0)
        return px_error_set(err, PX_E_INVALID, "negative offset %lld", (long long)offset);
    if (max_len == 0)
        return px_error_set(err, PX_E_INVALID, "read of 0 bytes");
    char off[24], max[24];
    NUM(off, offset);
    NUM(max, max_len);
    const char *argv[] = {id, off, max};
    _cleanup_reply_ redisReply *r = eval(rs, PX_RSCRIPT_READ, 3, argv, NULL, true, err);
    if (!r)
        return px_error_wrap(err, "execution '%s': read", id);
    long long kind = elem_int(r, 0, -3);
    if (kind == -2)
        return px_error_set(err, PX_E_NOT_FOUND, "execution '%s' not found", id);
    bool terminal = px_status_terminal((px_status)elem_int(r, 1, 0));
    long long end = elem_int(r, 2, 0);
    if (kind == 0) {
        if (!terminal)
            return PX_READ_WAIT;
        if (offset == end)
            return PX_READ_EOF;
        return px_error_set(err, PX_E_OUT_OF_RANGE,
                            "offset %lld is past the end of the output (%lld bytes)",
                            (long long)offset, end);
    }
    const redisReply *data = elem_str(r, 4);
    if (kind != 1 || !data || data->len == 0)
        return bad_reply(PX_RSCRIPT_READ, err);
    if (dup_bytes(data, &chunk->data, &chunk->len) != 0)
        return px_error_set(err, PX_E_INTERNAL, "read: out of memory");
    chunk->stream = (px_stream)elem_int(r, 3, PX_STREAM_STDOUT);
    chunk->offset = offset;
    return PX_READ_DATA;
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
    unsigned slot;
    px_redis_conn *c = pool_take(rs, &slot, err);
    if (!c)
        return -1;
    redisReply *r = px_redis_conn_call(c, PX_ARRAY_SIZE(argv), argv, NULL, 0, true, err);
    pool_give(rs, slot);
    if (!r)
        return px_error_wrap(err, "wake the follower");
    freeReplyObject(r);
    return 0;
}

int px_rstore_follow_add(px_rstore *rs, const char *id, px_error *err) {
    pthread_mutex_lock(&rs->fmu);
    follow_entry *e = follow_find(rs, id);
    if (e) {
        e->refs++;
        pthread_mutex_unlock(&rs->fmu);
        return 0;
    }
    pthread_mutex_unlock(&rs->fmu);
    const char *argv[] = {id, rs->node};
    _cleanup_reply_ redisReply *r = eval(rs, PX_RSCRIPT_FOLLOW_ADD, 2, argv, NULL, true, err);
    if (!r)
        return px_error_wrap(err, "execution '%s': follow", id);
    if (r->type != REDIS_REPLY_INTEGER)
        return bad_reply(PX_RSCRIPT_FOLLOW_ADD, err);
    if (r->integer < 0)
        return px_error_set(err, PX_E_NOT_FOUND, "execution '%s' not found", id);
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
        snprintf(e->cursor, sizeof e->cursor, "%lld-0", r->integer);
        e->refs = 1;
        pthread_cond_signal(&rs->fcond);
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
        const redisReply *key = elem_str(st, 0);
        if (!key || st->elements < 2 || st->element[1]->type != REDIS_REPLY_ARRAY ||
            st->element[1]->elements == 0)
            continue;
        const redisReply *entries = st->element[1];
        const redisReply *last = elem_str(entries->element[entries->elements - 1], 0);
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
    unsigned slot;
    px_redis_conn *c = pool_take(rs, &slot, err);
    if (!c)
        return -1;
    redisReply *r = px_redis_conn_call(c, PX_ARRAY_SIZE(argv), argv, NULL, 0, true, err);
    pool_give(rs, slot);
    if (!r)
        return px_error_wrap(err, "start the output follower");
    const redisReply *last = r->type == REDIS_REPLY_ARRAY && r->elements > 0
                                 ? elem_str(r->element[0], 0)
                                 : NULL;
    snprintf(rs->wake_cursor, sizeof rs->wake_cursor, "%s", last ? last->str : "0-0");
    freeReplyObject(r);
    rs->follow_conn = px_redis_conn_new(&rs->conn_cfg, err);
    if (!rs->follow_conn)
        return -1;
    rs->follow_fn = fn;
    rs->follow_ud = ud;
    int e = pthread_create(&rs->follow_thread, NULL, follow_main, rs);
    if (e != 0)
        return px_error_set_errno(err, PX_E_INTERNAL, e, "start the output follower");
    rs->follow_started = true;
    return 0;
}

static void follow_stop(px_rstore *rs) {
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
        const redisReply *kind = elem_str(r, 0), *msg = elem_str(r, 2);
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
    rs->listen_conn = px_redis_conn_new(&rs->conn_cfg, err);
    if (!rs->listen_conn)
        return -1;
    rs->listen_fn = fn;
    rs->listen_ud = ud;
    int e = pthread_create(&rs->listen_thread, NULL, listen_main, rs);
    if (e != 0)
        return px_error_set_errno(err, PX_E_INTERNAL, e, "start the kill listener");
    rs->listen_started = true;
    return 0;
}

static void listen_stop(px_rstore *rs) {
    if (!rs->listen_started)
        return;
    atomic_store(&rs->listen_stop, true);
    /* Any message wakes the listener at once; it then sees the flag. */
    const char *argv[] = {"PUBLISH", rs->ctl_key, "stop"};
    unsigned slot;
    px_redis_conn *c = pool_take(rs, &slot, NULL);
    if (c) {
        redisReply *r = px_redis_conn_call(c, 3, argv, NULL, 0, false, NULL);
        if (r)
            freeReplyObject(r);
        pool_give(rs, slot);
    }
    pthread_join(rs->listen_thread, NULL);
    rs->listen_started = false;
}
