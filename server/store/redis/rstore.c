/*
 * The Redis store (see rstore.h; the key layout and the scripts are in
 * scripts.c). This file holds the connection pool, running scripts and
 * reading replies (shared by rstore_exec.c and rstore_follow.c through
 * rstore_internal.h), the set-up, leases, listing and creation.
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
#include "server/store/store_impl.h"

/* ---- the connection pool ---- */

px_redis_conn *rstore_pool_take(px_rstore *rs, unsigned *slot, px_error *err) {
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

void rstore_pool_give(px_rstore *rs, unsigned slot) {
    pthread_mutex_lock(&rs->mu);
    rs->busy[slot] = false;
    pthread_cond_signal(&rs->cond);
    pthread_mutex_unlock(&rs->mu);
}

/* ---- running scripts ---- */

#define MAX_ARGS 20

/* Runs script `s` with ARGV = prefix, argv... on connection `c`. */
redisReply *rstore_eval_on(px_rstore *rs, px_redis_conn *c, px_rscript s, int argc,
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

redisReply *rstore_eval(px_rstore *rs, px_rscript s, int argc, const char **argv, const size_t *len,
                        bool retry, px_error *err) {
    unsigned slot;
    px_redis_conn *c = rstore_pool_take(rs, &slot, err);
    if (!c)
        return NULL;
    redisReply *r = rstore_eval_on(rs, c, s, argc, argv, len, retry, err);
    rstore_pool_give(rs, slot);
    return r;
}

int rstore_wait_replicas(px_rstore *rs, px_redis_conn *c, px_error *err) {
    if (rs->cfg.min_replicas == 0)
        return 0;
    char n[24], ms[24];
    NUM(n, rs->cfg.min_replicas);
    NUM(ms, rs->cfg.replica_timeout_ms);
    const char *argv[] = {"WAIT", n, ms};
    /* Not retried: on a new connection WAIT would cover nothing. */
    _cleanup_reply_ redisReply *r = px_redis_conn_call(c, 3, argv, NULL, rs->cfg.replica_timeout_ms,
                                                       false, err);
    if (!r)
        return px_error_wrap(err, "wait for %u replica(s)", rs->cfg.min_replicas);
    if (r->type != REDIS_REPLY_INTEGER)
        return px_error_set(err, PX_E_INTERNAL, "WAIT: unexpected reply from Redis");
    if (r->integer < (long long)rs->cfg.min_replicas)
        return px_error_set(err, PX_E_UNAVAILABLE,
                            "only %lld of the %u Redis replica(s) --store-min-replicas asks for "
                            "acknowledged the write within %lld ms (replica wait)",
                            r->integer, rs->cfg.min_replicas,
                            (long long)rs->cfg.replica_timeout_ms);
    return 0;
}

void rstore_reply_freep(redisReply **r) {
    if (*r)
        freeReplyObject(*r);
}

int rstore_bad_reply(px_rscript s, px_error *err) {
    return px_error_set(err, PX_E_INTERNAL, "%s: unexpected reply from Redis", px_rscript_name(s));
}

/* The integer at r->element[i] (integer or numeric string), or `def`. */
long long rstore_elem_int(const redisReply *r, size_t i, long long def) {
    if (r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return def;
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type == REDIS_REPLY_STRING)
        return strtoll(e->str, NULL, 10);
    return def;
}

const redisReply *rstore_elem_str(const redisReply *r, size_t i) {
    if (r->type != REDIS_REPLY_ARRAY || i >= r->elements ||
        r->element[i]->type != REDIS_REPLY_STRING)
        return NULL;
    return r->element[i];
}

/* Maps owned()'s codes (scripts.c) to the API's results. */
int rstore_owner_result(long long code, const char *id, px_error *err) {
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
    if (c->min_replicas > PX_RSTORE_MAX_REPLICAS)
        return px_error_set(err, PX_E_INVALID, "redis store: min replicas %u is more than %d",
                            c->min_replicas, PX_RSTORE_MAX_REPLICAS);
    if (c->min_replicas > 0 && c->replica_timeout_ms <= 0)
        return px_error_set(err, PX_E_INVALID, "redis store: replica timeout must be > 0");
    return 0;
}

/* Loads every script (SCRIPT LOAD) and creates the queue group. */
static int prepare(px_rstore *rs, px_error *err) {
    unsigned slot;
    px_redis_conn *c = rstore_pool_take(rs, &slot, err);
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
    rstore_pool_give(rs, slot);
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
    rs->cfg.sentinel_password = NULL;
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
    if (config->sentinel_password)
        rs->conn_cfg.sentinel_password = strdup(config->sentinel_password);
    bool oom = !rs->conns || !rs->busy || (config->password && !rs->conn_cfg.password) ||
               (config->sentinel_password && !rs->conn_cfg.sentinel_password);
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
        char where[PX_REDIS_TARGET_TEXT_MAX];
        px_redis_target_format(&config->target, where, sizeof where);
        px_error_wrap(err, "redis store %s", where);
        px_rstore_free(rs);
        return NULL;
    }
    return rs;
}

void px_rstore_free(px_rstore *rs) {
    if (!rs)
        return;
    rstore_follow_stop(rs);
    rstore_listen_stop(rs);
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
    px_secret_free((char *)rs->conn_cfg.password);
    px_secret_free((char *)rs->conn_cfg.sentinel_password);
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
    px_redis_conn *c = rstore_pool_take(rs, &slot, err);
    if (!c)
        return -1;
    const char *argv[] = {"ZREVRANGEBYSCORE", key, hi, "-inf", "WITHSCORES", "LIMIT", "0", count};
    _cleanup_reply_ redisReply *r = px_redis_conn_call(c, 8, argv, NULL, 0, true, err);
    rstore_pool_give(rs, slot);
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
    px_redis_conn *c = rstore_pool_take(rs, &slot, err);
    if (!c)
        return -1;
    const char *argv[] = {"ZREM", key, id};
    redisReply *r = px_redis_conn_call(c, 3, argv, NULL, 0, true, err);
    rstore_pool_give(rs, slot);
    if (!r)
        return px_error_wrap(err, "list: remove '%s'", id);
    freeReplyObject(r);
    return 0;
}

int px_rstore_ping(px_rstore *rs, px_error *err) {
    unsigned slot;
    px_redis_conn *c = rstore_pool_take(rs, &slot, err);
    if (!c)
        return -1;
    const char *argv[] = {"PING"};
    redisReply *r = px_redis_conn_call(c, 1, argv, NULL, 0, true, err);
    rstore_pool_give(rs, slot);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

/* ---- node lease ---- */

int px_rstore_lease_acquire(px_rstore *rs, int64_t *token, px_error *err) {
    char lease[24], now[24], ttl[24];
    NUM(lease, rs->cfg.lease_ms);
    NUM(now, px_now_unix_ms());
    NUM(ttl, rs->cfg.retention_ms);
    const char *argv[] = {rs->node, lease, now, ttl};
    _cleanup_reply_ redisReply *r = rstore_eval(rs, PX_RSCRIPT_LEASE_ACQUIRE, 4, argv, NULL, false,
                                                err);
    if (!r)
        return px_error_wrap(err, "node '%s': take the lease", rs->node);
    long long v = rstore_elem_int(r, 0, 0);
    if (v == -1)
        return px_error_set(err, PX_E_EXHAUSTED,
                            "node '%s': the name's lease is held for %lld ms more (another node "
                            "with this name, or this node's previous run)",
                            rs->node, rstore_elem_int(r, 1, 0));
    if (v <= 0)
        return rstore_bad_reply(PX_RSCRIPT_LEASE_ACQUIRE, err);
    *token = v;
    return 0;
}

int px_rstore_lease_renew(px_rstore *rs, int64_t token, px_error *err) {
    char tok[24], lease[24];
    NUM(tok, token);
    NUM(lease, rs->cfg.lease_ms);
    const char *argv[] = {rs->node, tok, lease};
    _cleanup_reply_ redisReply *r = rstore_eval(rs, PX_RSCRIPT_LEASE_RENEW, 3, argv, NULL, true,
                                                err);
    if (!r)
        return px_error_wrap(err, "node '%s': renew the lease", rs->node);
    if (r->type != REDIS_REPLY_INTEGER)
        return rstore_bad_reply(PX_RSCRIPT_LEASE_RENEW, err);
    return r->integer == 1 ? PX_RSTORE_DONE : PX_RSTORE_FENCED;
}

int px_rstore_lease_release(px_rstore *rs, int64_t token, px_error *err) {
    char tok[24], now[24], ttl[24];
    NUM(tok, token);
    NUM(now, px_now_unix_ms());
    NUM(ttl, rs->cfg.retention_ms);
    const char *argv[] = {rs->node, tok, now, ttl};
    _cleanup_reply_ redisReply *r = rstore_eval(rs, PX_RSCRIPT_LEASE_RELEASE, 4, argv, NULL, true,
                                                err);
    if (!r)
        return px_error_wrap(err, "node '%s': release the lease", rs->node);
    if (r->type != REDIS_REPLY_INTEGER)
        return rstore_bad_reply(PX_RSCRIPT_LEASE_RELEASE, err);
    return r->integer < 0 ? -PX_RSTORE_FENCED : (int)r->integer;
}

int px_rstore_sweep(px_rstore *rs, unsigned *lost, px_error *err) {
    char now[24], ttl[24];
    NUM(now, px_now_unix_ms());
    NUM(ttl, rs->cfg.retention_ms);
    const char *argv[] = {now, ttl};
    _cleanup_reply_ redisReply *r = rstore_eval(rs, PX_RSCRIPT_SWEEP, 2, argv, NULL, true, err);
    if (!r)
        return px_error_wrap(err, "sweep");
    if (r->type != REDIS_REPLY_INTEGER)
        return rstore_bad_reply(PX_RSCRIPT_SWEEP, err);
    *lost = (unsigned)r->integer;
    return 0;
}

/* ---- records and the queue ---- */

int px_rstore_create(px_rstore *rs, const char *tenant, const char *request_id, const char *digest,
                     const uint8_t *job, size_t job_len, unsigned max_queued,
                     const px_quota_config *quotas, char id_out[PX_ID_LEN + 1], bool *existed,
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
    static const px_quota_config none = {0};
    const px_quota_config *qc = quotas ? quotas : &none;
    char mc[24], mq[24], mm[24];
    NUM(mc, qc->max_concurrent > 0 ? qc->max_concurrent : 0);
    NUM(mq, qc->max_queued > 0 ? qc->max_queued : 0);
    NUM(mm, qc->max_per_minute > 0 ? qc->max_per_minute : 0);
    const char *argv[] = {id, request_id, digest, (const char *)job, maxq, now, tenant, oldest,
                          mc, mq,         mm};
    size_t len[] = {strlen(id),   strlen(request_id), strlen(digest), job_len,
                    strlen(maxq), strlen(now),        strlen(tenant), strlen(oldest),
                    strlen(mc),   strlen(mq),         strlen(mm)};
    unsigned slot;
    px_redis_conn *c = rstore_pool_take(rs, &slot, err);
    if (!c)
        return px_error_wrap(err, "create");
    _cleanup_reply_ redisReply *r = rstore_eval_on(rs, c, PX_RSCRIPT_CREATE, PX_ARRAY_SIZE(argv),
                                                   argv, len, true, err);
    /* The record (new, or found by request_id) is acknowledged only once
     * enough replicas have it: a failover before that could lose it. */
    long long k = r ? rstore_elem_int(r, 0, -1) : -1;
    int wrc = k == 0 || k == 1 ? rstore_wait_replicas(rs, c, err) : 0;
    rstore_pool_give(rs, slot);
    if (!r)
        return px_error_wrap(err, "create");
    if (wrc < 0)
        return px_error_wrap(err, "create: the execution may exist; a retry with the same "
                                  "request_id finds it");
    long long kind = rstore_elem_int(r, 0, -1);
    const redisReply *rid = rstore_elem_str(r, 1);
    if (kind == 2)
        return px_error_set(err, PX_E_EXHAUSTED, "the queue is full (%lld executions waiting)",
                            rstore_elem_int(r, 1, 0));
    if (kind == 3) {
        long long which = rstore_elem_int(r, 1, 0);
        if (which < PX_QUOTA_CONCURRENT || which > PX_QUOTA_PER_MINUTE)
            return rstore_bad_reply(PX_RSCRIPT_CREATE, err);
        return px_quota_refuse(err, qc, (px_quota_kind)which, tenant, rstore_elem_int(r, 2, 0));
    }
    if ((kind != 0 && kind != 1) || !rid || rid->len != PX_ID_LEN)
        return rstore_bad_reply(PX_RSCRIPT_CREATE, err);
    memcpy(id_out, rid->str, PX_ID_LEN);
    id_out[PX_ID_LEN] = '\0';
    if (kind == 1) {
        const redisReply *d = rstore_elem_str(r, 2);
        *existed = true;
        if (d && d->len <= PX_RSTORE_DIGEST_MAX) {
            memcpy(digest_out, d->str, d->len);
            digest_out[d->len] = '\0';
        }
    }
    return 0;
}
