/*
 * The store interface on Redis (see redis_store.h; the shared layout and
 * the atomic steps are in rstore.c and scripts.c).
 *
 * Watchers are woken only by the node's follower, for every entry of the
 * output stream (chunks, the end marker), whichever node wrote it: a write
 * made here does not wake them directly too.
 *
 * Proxies: the store keeps the records alive on this node in a list; a
 * proxy leaves it when its last reference goes. px_store_get finds a live
 * proxy (so the runner's job, attached on the claiming node, and the local
 * watchers are shared by every caller) or asks Redis and makes one.
 *
 * Worker threads (with a runner): the pullers (RS_PULLERS_MAX, at most
 * max_running) claim jobs while fewer than max_running claimed jobs are
 * unfinished, a slot a puller waits to fill counted as taken; the keeper
 * renews the lease, sweeps dead nodes and, if the lease was lost, kills the local runs and
 * takes a new one. Kill requests from other nodes arrive through the
 * rstore listener and reach the local job.
 *
 * Locks: st->mu (the proxy list, the running count, the token) and then
 * r->mu (a proxy's job, kill cause, token and output offset), never the
 * other way round; neither is held during a Redis call or a callback.
 */
#include "server/store/redis/redis_store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/base/cleanup.h"
#include "server/base/clock.h"
#include "server/base/log.h"
#include "server/base/quote.h"
#include "server/store/redis/jobpack.h"
#include "server/store/redis/redis_store_internal.h"
#include "server/store/store_impl.h"

static const px_store_ops rs_store_ops;

/* ---- the store ---- */

static px_record *rs_store_create(px_store *base, const char *tenant, const char *request_id,
                                  const uint8_t *digest, bool *existed, px_error *err) {
    (void)base;
    (void)tenant;
    (void)request_id;
    (void)digest;
    (void)existed;
    px_error_set(err, PX_E_INTERNAL, "the Redis store creates records only with their job");
    return NULL;
}

static void digest_hex(const uint8_t *digest, char out[PX_SHA256_LEN * 2 + 1]) {
    static const char hex[] = "0123456789abcdef";
    static const uint8_t zero[PX_SHA256_LEN];
    const uint8_t *d = digest ? digest : zero;
    for (int i = 0; i < PX_SHA256_LEN; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[PX_SHA256_LEN * 2] = '\0';
}

static px_record *rs_store_admit(px_store *base, const char *request_id, const uint8_t *digest,
                                 px_job_spec *spec, const char *origin, bool *existed,
                                 px_error *err) {
    rs_store *st = (rs_store *)base;
    uint8_t *job = NULL;
    size_t job_len = 0;
    char tenant[PX_TENANT_MAX];
    snprintf(tenant, sizeof tenant, "%s", spec->tenant);
    int rc = px_jobpack_pack(spec, &job, &job_len, err);
    px_job_spec_free(spec);
    if (rc < 0)
        return NULL;
    char dig[PX_SHA256_LEN * 2 + 1], old_dig[PX_RSTORE_DIGEST_MAX + 1], id[PX_ID_LEN + 1];
    digest_hex(request_id && request_id[0] ? digest : NULL, dig);
    rc = px_rstore_create(st->rs, tenant, request_id ? request_id : "", dig, job, job_len,
                          st->cfg.max_queued, &st->quotas, id, existed, old_dig, err);
    free(job);
    if (rc < 0)
        return NULL;
    if (*existed && strcmp(old_dig, dig) != 0) {
        px_error_set(err, PX_E_EXISTS,
                     "request_id: already used by a different request (the content differs)");
        return NULL;
    }
    if (!*existed)
        px_info("execution %s: queued; %s", id, origin ? origin : "");
    rs_record *r = rs_proxy(st, id, 0, tenant, err);
    return r ? &r->base : NULL;
}

/* The quotas hold cluster-wide: the create script checks and counts them
 * in Redis, and every end releases them there. */
static int rs_store_set_quotas(px_store *base, const px_quota_config *quotas, px_error *err) {
    (void)err;
    ((rs_store *)base)->quotas = *quotas;
    return 0;
}

static px_record *rs_store_get(px_store *base, const char *id, px_error *err) {
    rs_store *st = (rs_store *)base;
    rs_record *r = rs_live_find(st, id);
    if (r)
        return &r->base;
    /* Known to Redis? (One round trip; the snapshot that usually follows
     * is another.) */
    px_rstore_view v;
    if (px_rstore_get(st->rs, id, false, &v, err) < 0)
        return NULL;
    px_record_view_release(&v.record);
    r = rs_proxy(st, id, 0, v.tenant, err);
    return r ? &r->base : NULL;
}

/* One read, the record with the view: no proxy is made (or looked up), so
 * the tenant is checked on what Redis holds. */
static int rs_store_view(px_store *base, const char *tenant, const char *id, bool with_output,
                         px_record_view *view, px_error *err) {
    rs_store *st = (rs_store *)base;
    px_rstore_view v;
    if (px_rstore_get(st->rs, id, with_output, &v, err) < 0)
        return -1;
    if (strcmp(v.tenant, tenant) != 0) {
        px_record_view_release(&v.record);
        /* The same words as for an id nobody has: nothing leaks. */
        return px_error_set(err, PX_E_NOT_FOUND, "execution '%s' not found", id);
    }
    rs_view_of(&v, view);
    return 0;
}

static int rs_store_ping(px_store *base, px_error *err) {
    rs_store *st = (rs_store *)base;
    if (px_rstore_ping(st->rs, err) < 0)
        return px_error_wrap(err, "store");
    return 0;
}

static void rs_store_remove(px_store *base, px_record *r) {
    (void)base;
    (void)r;
}

static size_t rs_store_count(px_store *base) {
    (void)base;
    return 0;
}

/* Page tokens are "r" and the decimal list score of the page's last
 * record; the next page starts below it. */
static int list_token(const char *token, int64_t *below, px_error *err) {
    *below = 0;
    if (!token || !token[0])
        return 0;
    char *end = NULL;
    long long v = token[0] == 'r' && token[1] >= '0' && token[1] <= '9' && strlen(token) <= 20
                      ? strtoll(token + 1, &end, 10)
                      : 0;
    if (v <= 0 || !end || *end) {
        px_quoted q;
        return px_error_set(err, PX_E_INVALID, "page_token: '%s' is not a token of this server",
                            px_quote_str(&q, token));
    }
    *below = v;
    return 0;
}

static int rs_store_list(px_store *base, const char *tenant, px_status status, size_t page_size,
                         const char *page_token, px_store_page *page, px_error *err) {
    rs_store *st = (rs_store *)base;
    int64_t below;
    if (page_size == 0 || page_size > PX_STORE_LIST_MAX)
        return px_error_set(err, PX_E_INVALID, "page_size: %zu is not in 1..%d", page_size,
                            PX_STORE_LIST_MAX);
    if (list_token(page_token, &below, err) < 0)
        return -1;
    px_rstore *rs = rs_of(st, err);
    if (!rs)
        return -1;
    page->records = calloc(page_size, sizeof *page->records);
    _cleanup_free_ px_rstore_listed *batch = calloc(PX_RSTORE_LIST_BATCH, sizeof *batch);
    if (!page->records || !batch) {
        free(page->records);
        page->records = NULL;
        return px_error_set(err, PX_E_INTERNAL, "store: list: out of memory");
    }
    int64_t last = 0;
    bool more = false;
    for (;;) {
        size_t n;
        if (px_rstore_list_ids(rs, tenant, below, PX_RSTORE_LIST_BATCH, batch, &n, err) < 0)
            goto fail;
        size_t i = 0;
        for (; i < n && page->n < page_size; i++) {
            below = batch[i].score;
            px_rstore_view v;
            px_error gerr = PX_ERROR_INIT;
            if (px_rstore_get(rs, batch[i].id, false, &v, &gerr) < 0) {
                if (gerr.code != PX_E_NOT_FOUND) {
                    *err = gerr;
                    goto fail;
                }
                /* Expired: its list entry goes too (best effort). */
                px_error uerr = PX_ERROR_INIT;
                px_rstore_unlist(rs, tenant, batch[i].id, &uerr);
                continue;
            }
            bool match = (status == PX_STATUS_UNSPECIFIED || v.record.status == status) &&
                         strcmp(v.tenant, tenant) == 0;
            rs_record *r = match ? rs_proxy(st, batch[i].id, 0, v.tenant, err) : NULL;
            px_record_view_release(&v.record);
            if (match && !r)
                goto fail;
            if (r) {
                page->records[page->n++] = &r->base;
                last = batch[i].score;
            }
        }
        if (page->n == page_size) {
            more = i < n || n == PX_RSTORE_LIST_BATCH;
            break;
        }
        if (n < PX_RSTORE_LIST_BATCH)
            break;
    }
    if (more && page->n > 0)
        snprintf(page->next_token, sizeof page->next_token, "r%lld", (long long)last);
    return 0;
fail:
    px_store_page_release(page);
    return -1;
}

/* ---- life ---- */

static void rs_store_runner_ready(px_store *base, bool ready) {
    rs_store *st = (rs_store *)base;
    pthread_mutex_lock(&st->mu);
    bool changed = st->worker && st->runner_down == ready;
    st->runner_down = !ready;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->mu);
    if (changed && ready)
        px_info("node '%s': the back-end answers again; claiming jobs", st->cfg.redis.node);
    else if (changed)
        px_warn("node '%s': the back-end does not answer; claiming no jobs (other nodes take "
                "them)",
                st->cfg.redis.node);
}

static void rs_store_drain(px_store *base) {
    rs_store *st = (rs_store *)base;
    pthread_mutex_lock(&st->mu);
    bool join = st->worker && !st->puller_joined;
    st->draining = true;
    st->puller_joined = true;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->mu);
    for (unsigned i = 0; join && i < st->n_pullers; i++)
        pthread_join(st->pullers[i], NULL);
}

/* Stops and joins the pullers started so far (start-up failed). */
static void stop_pullers(rs_store *st) {
    pthread_mutex_lock(&st->mu);
    st->stop = true;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->mu);
    for (unsigned i = 0; i < st->n_pullers; i++)
        pthread_join(st->pullers[i], NULL);
    st->n_pullers = 0;
}

static void rs_store_free(px_store *base) {
    rs_store *st = (rs_store *)base;
    pthread_mutex_lock(&st->mu);
    st->stop = true;
    pthread_cond_broadcast(&st->cond);
    int64_t token = st->token;
    pthread_mutex_unlock(&st->mu);
    if (st->worker) {
        rs_store_drain(base);
        pthread_join(st->keeper, NULL);
        /* A last chance for what waited for Redis; then it is lost. */
        rs_flush_pending(st);
        for (;;) {
            pthread_mutex_lock(&st->mu);
            rs_record *r = st->pending;
            if (r)
                st->pending = r->pending_next;
            pthread_mutex_unlock(&st->mu);
            if (!r)
                break;
            px_warn("execution %s: writes kept while Redis was away are lost: the node stops",
                    r->base.id);
            px_record_unref(&r->base);
        }
        px_error err = PX_ERROR_INIT;
        if (token && px_rstore_lease_release(st->rs, token, &err) < 0)
            px_warn("node '%s': release the lease: %s", st->cfg.redis.node, err.msg);
    }
    /* Stops the follower and the listener first: no callback runs after. */
    px_rstore_free(st->rs);
    st->rs = NULL;
    rs_store_unref(st);
}

px_store *px_redis_store_new(const px_redis_store_config *config, px_error *err) {
    if (config->max_readers == 0 || (config->runner.ops && config->max_running == 0))
        return px_error_set(err, PX_E_INVALID, "redis store: max_readers and max_running >= 1"),
               NULL;
    rs_store *st = calloc(1, sizeof *st);
    if (!st) {
        px_error_set(err, PX_E_INTERNAL, "redis store: out of memory");
        return NULL;
    }
    st->base.ops = &rs_store_ops;
    st->cfg = *config;
    snprintf(st->node, sizeof st->node, "%s", config->redis.node ? config->redis.node : "");
    snprintf(st->ns, sizeof st->ns, "%s", config->redis.ns ? config->redis.ns : "");
    st->cfg.redis.node = st->node;
    st->cfg.redis.ns = st->ns;
    st->cfg.redis.password = NULL; /* copied by px_rstore_new; not kept here */
    st->cfg.redis.sentinel_password = NULL;
    atomic_init(&st->refs, 1);
    pthread_mutex_init(&st->mu, NULL);
    px_cond_init_mono(&st->cond);
    unsigned pullers = config->runner.ops ? config->max_running : 0;
    if (pullers > RS_PULLERS_MAX)
        pullers = RS_PULLERS_MAX;
    px_rstore_config redis = config->redis;
    if (pullers > 1)
        redis.max_connections += pullers - 1; /* each puller may hold one, blocked */
    st->rs = px_rstore_new(&redis, err);      /* with the password */
    if (!st->rs || px_rstore_follow_start(st->rs, rs_on_follow, st, err) < 0)
        goto fail;
    if (config->runner.ops) {
        if (px_rstore_lease_acquire(st->rs, &st->token, err) < 0 ||
            px_rstore_listen_start(st->rs, rs_on_kill, st, err) < 0)
            goto fail;
        for (; st->n_pullers < pullers; st->n_pullers++) {
            if (pthread_create(&st->pullers[st->n_pullers], NULL, rs_puller_main, st) != 0) {
                stop_pullers(st);
                px_error_set(err, PX_E_INTERNAL, "redis store: start the pullers");
                goto fail;
            }
        }
        if (pthread_create(&st->keeper, NULL, rs_keeper_main, st) != 0) {
            stop_pullers(st);
            px_error_set(err, PX_E_INTERNAL, "redis store: start the keeper");
            goto fail;
        }
        st->worker = true;
    }
    return &st->base;
fail:
    if (st->token)
        px_rstore_lease_release(st->rs, st->token, NULL);
    px_rstore_free(st->rs);
    pthread_cond_destroy(&st->cond);
    pthread_mutex_destroy(&st->mu);
    free(st);
    return NULL;
}

static const px_store_ops rs_store_ops = {
    .free = rs_store_free,
    .create = rs_store_create,
    .admit = rs_store_admit,
    .get = rs_store_get,
    .view = rs_store_view,
    .drain = rs_store_drain,
    .ping = rs_store_ping,
    .runner_ready = rs_store_runner_ready,
    .remove = rs_store_remove,
    .count = rs_store_count,
    .list = rs_store_list,
    .set_quotas = rs_store_set_quotas,
};
