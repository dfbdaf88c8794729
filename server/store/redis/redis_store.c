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
 * Worker threads (with a runner): the puller claims jobs while fewer than
 * max_running claimed jobs are unfinished; the keeper renews the lease,
 * sweeps dead nodes and, if the lease was lost, kills the local runs and
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
#include "server/store/store_impl.h"

typedef struct rs_store rs_store;

/* An output chunk the owner could not write yet (Redis away). */
typedef struct rs_pending_chunk {
    struct rs_pending_chunk *next;
    px_stream stream;
    int64_t offset;
    size_t len;
    uint8_t data[];
} rs_pending_chunk;

typedef struct rs_record {
    px_record base; /* first: the interface */
    rs_store *st;
    struct rs_record *next; /* in st->live, under st->mu */

    pthread_mutex_t mu; /* everything below */
    int64_t token;      /* > 0: this node claimed it and writes it */
    int64_t out_off;    /* the owner's output length */
    bool ended;         /* the owner's finish went through (or was refused) */
    px_kill_cause kill_cause;
    bool away_killed; /* killed because Redis stayed away past the grace */
    const px_record_job_ops *job_ops;
    void *job_ctx;
    void *job;
    /* Writes waiting for Redis, in order: chunks, then the end. While any
     * wait, the store holds a reference (in st->pending). */
    rs_pending_chunk *pend_head, *pend_tail;
    px_outcome *pend_end;
    bool pending_listed;
    struct rs_record *pending_next; /* in st->pending, under st->mu */
} rs_record;

struct rs_store {
    px_store base;             /* first: the interface */
    px_redis_store_config cfg; /* its strings point to the copies below */
    char node[PX_RSTORE_NAME_MAX + 1];
    char ns[PX_RSTORE_NAME_MAX + 1];
    /* NULL once the store is freed: proxies may outlive it (store.h), and
     * then answer PX_E_UNAVAILABLE. */
    px_rstore *rs;
    /* The store handle's reference plus one per proxy: the struct goes with
     * the last. */
    atomic_uint refs;

    pthread_mutex_t mu;
    pthread_cond_t cond; /* a run ended, or stop */
    rs_record *live;
    rs_record *pending; /* proxies with writes waiting for Redis (referenced) */
    unsigned running;   /* claimed by this node, not yet finished */
    int64_t token;      /* this node's lease token; 0: none */
    bool stop;
    bool draining;    /* the puller has stopped, or is stopping */
    bool runner_down; /* the runner's back-end does not answer: claim nothing */
    bool puller_joined;
    bool worker;
    pthread_t puller, keeper;
};

static const px_record_ops rs_record_ops;
static const px_store_ops rs_store_ops;

/* A copy of `o` (its Eval report too) for a later write, or NULL. */
static px_outcome *outcome_dup(const px_outcome *o) {
    px_outcome *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    *c = *o;
    if (px_py_report_copy(&c->py, &o->py) < 0) {
        free(c);
        return NULL;
    }
    return c;
}

static void outcome_free(px_outcome *o) {
    if (o) {
        px_py_report_release(&o->py);
        free(o);
    }
}

static void store_unref(rs_store *st) {
    if (atomic_fetch_sub(&st->refs, 1) != 1)
        return;
    pthread_cond_destroy(&st->cond);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* The store's connections, or NULL with PX_E_UNAVAILABLE once it is freed. */
static px_rstore *rs_of(rs_store *st, px_error *err) {
    if (!st->rs)
        px_error_set(err, PX_E_UNAVAILABLE, "the store is closed");
    return st->rs;
}

/* ---- proxies ---- */

/* Returns a new reference to the live proxy of `id`, or NULL. */
static rs_record *live_find(rs_store *st, const char *id) {
    pthread_mutex_lock(&st->mu);
    rs_record *found = NULL;
    for (rs_record *r = st->live; r; r = r->next) {
        if (strcmp(r->base.id, id) != 0)
            continue;
        /* A proxy whose count reached 0 is on its way out: not found. */
        unsigned refs = atomic_load(&r->base.refs);
        while (refs > 0 && !atomic_compare_exchange_weak(&r->base.refs, &refs, refs + 1))
            ;
        if (refs > 0)
            found = r;
        break;
    }
    pthread_mutex_unlock(&st->mu);
    return found;
}

/* The proxy of `id`: the live one, or a new one (with `token`, of
 * `tenant`, the record's). */
static rs_record *proxy(rs_store *st, const char *id, int64_t token, const char *tenant,
                        px_error *err) {
    rs_record *r = live_find(st, id);
    if (r) {
        if (token > 0) {
            pthread_mutex_lock(&r->mu);
            r->token = token;
            pthread_mutex_unlock(&r->mu);
        }
        return r;
    }
    r = calloc(1, sizeof *r);
    if (!r) {
        px_error_set(err, PX_E_INTERNAL, "redis store: out of memory");
        return NULL;
    }
    px_record_init(&r->base, &rs_record_ops, id, st->cfg.max_readers);
    if (px_record_set_tenant(&r->base, tenant) < 0) {
        free(r);
        px_error_set(err, PX_E_INTERNAL, "redis store: out of memory");
        return NULL;
    }
    r->st = st;
    atomic_fetch_add(&st->refs, 1);
    r->token = token;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_lock(&st->mu);
    r->next = st->live;
    st->live = r;
    pthread_mutex_unlock(&st->mu);
    return r;
}

static void rs_record_destroy(px_record *base) {
    rs_record *r = (rs_record *)base;
    rs_store *st = r->st;
    pthread_mutex_lock(&st->mu);
    for (rs_record **p = &st->live; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    pthread_mutex_unlock(&st->mu);
    if (r->job_ops && r->job_ops->unref)
        r->job_ops->unref(r->job);
    for (rs_pending_chunk *c = r->pend_head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    outcome_free(r->pend_end);
    pthread_mutex_destroy(&r->mu);
    free(r);
    store_unref(st);
}

/* The follower saw news for `id`: wake its local watchers; the control
 * watchers (sync Execute, Kill: waiting for the end) only with the end. */
static void on_follow(void *ud, const char *id, bool ended) {
    rs_record *r = live_find(ud, id);
    if (r) {
        if (ended)
            px_record_notify(&r->base);
        else
            px_record_notify_readers(&r->base);
        px_record_unref(&r->base);
    }
}

static int rs_record_watching(px_record *base, bool on, px_error *err) {
    rs_record *r = (rs_record *)base;
    px_rstore *rs = rs_of(r->st, err);
    if (!rs)
        return on ? -1 : 0;
    if (!on) {
        px_rstore_follow_remove(rs, base->id);
        return 0;
    }
    return px_rstore_follow_add(rs, base->id, err);
}

/* ---- the job behind a proxy ---- */

static void rs_record_attach_job(px_record *base, const px_record_job_ops *ops, void *ctx,
                                 void *job) {
    rs_record *r = (rs_record *)base;
    pthread_mutex_lock(&r->mu);
    const px_record_job_ops *old_ops = r->job_ops;
    void *old_job = r->job;
    r->job_ops = ops;
    r->job_ctx = ctx;
    r->job = job;
    px_kill_cause cause = r->ended ? PX_KILL_NONE : r->kill_cause;
    pthread_mutex_unlock(&r->mu);
    if (old_ops && old_ops->unref)
        old_ops->unref(old_job);
    if (cause != PX_KILL_NONE && ops && ops->kill)
        ops->kill(ctx, job, cause);
}

/* Kills the local job (this node runs it). Returns false if there is none. */
static bool kill_local(rs_record *r, px_kill_cause cause) {
    pthread_mutex_lock(&r->mu);
    if (r->token == 0) {
        pthread_mutex_unlock(&r->mu);
        return false;
    }
    if (r->kill_cause == PX_KILL_NONE)
        r->kill_cause = cause;
    cause = r->kill_cause;
    const px_record_job_ops *ops = r->job_ops;
    void *ctx = r->job_ctx, *job = r->job;
    bool ended = r->ended;
    pthread_mutex_unlock(&r->mu);
    if (!ended && ops && ops->kill)
        ops->kill(ctx, job, cause);
    return true;
}

static bool rs_record_kill(px_record *base, px_kill_cause cause) {
    rs_record *r = (rs_record *)base;
    char owner[PX_RSTORE_NAME_MAX + 1];
    px_error err = PX_ERROR_INIT;
    /* The owner's kill flag in Redis is the durable request; the owner
     * (maybe this node, through its listener) carries it out. */
    px_rstore *rs = rs_of(r->st, &err);
    int rc = rs ? px_rstore_kill(rs, base->id, cause, owner, &err) : -1;
    if (rc < 0) {
        px_warn("execution %s: kill: %s", base->id, err.msg);
        /* Unreachable Redis: at least a local run can still be killed. */
        return kill_local(r, cause);
    }
    /* A queued job ended now: its end marker wakes the watchers through the
     * follower, as every change does. */
    return rc != PX_RSTORE_KILL_ENDED;
}

/* ---- the owner's writes ---- */

static int64_t token_of(rs_record *r) {
    pthread_mutex_lock(&r->mu);
    int64_t t = r->token;
    pthread_mutex_unlock(&r->mu);
    return t;
}

static void rs_record_set_running(px_record *base, int64_t started_at_ms) {
    rs_record *r = (rs_record *)base;
    px_error err = PX_ERROR_INIT;
    px_rstore *rs = rs_of(r->st, &err);
    int rc = rs ? px_rstore_set_running(rs, base->id, token_of(r), started_at_ms, &err) : -1;
    if (rc < 0)
        px_warn("execution %s: set running: %s", base->id, err.msg);
    else if (rc == PX_RSTORE_FENCED)
        px_warn("execution %s: RUNNING refused: this node lost its lease", base->id);
    /* No wake-up: RUNNING is not in the output stream, and no watcher waits
     * for it (readers wait for output, control calls for the end). */
}

/* Puts `r` on the store's list of proxies with waiting writes (once; the
 * list holds a reference). */
static void pending_list(rs_record *r) {
    rs_store *st = r->st;
    pthread_mutex_lock(&st->mu);
    pthread_mutex_lock(&r->mu);
    bool add = !r->pending_listed;
    r->pending_listed = true;
    pthread_mutex_unlock(&r->mu);
    if (add) {
        px_record_ref(&r->base);
        r->pending_next = st->pending;
        st->pending = r;
    }
    pthread_mutex_unlock(&st->mu);
}

/* Keeps a chunk for later, at `off`. Returns false out of memory. */
static bool pending_chunk_locked(rs_record *r, px_stream stream, int64_t off, const uint8_t *data,
                                 size_t len) {
    rs_pending_chunk *c = malloc(sizeof *c + len);
    if (!c)
        return false;
    c->next = NULL;
    c->stream = stream;
    c->offset = off;
    c->len = len;
    memcpy(c->data, data, len);
    if (r->pend_tail)
        r->pend_tail->next = c;
    else
        r->pend_head = c;
    r->pend_tail = c;
    return true;
}

static void rs_record_append(px_record *base, px_stream stream, const uint8_t *data, size_t len) {
    rs_record *r = (rs_record *)base;
    pthread_mutex_lock(&r->mu);
    int64_t token = r->token, off = r->out_off;
    bool queued = r->pend_head != NULL;
    if (queued) {
        /* Earlier chunks wait for Redis: this one goes after them. */
        if (pending_chunk_locked(r, stream, off, data, len))
            r->out_off = off + (int64_t)len;
        else
            px_warn("execution %s: output chunk of %zu bytes lost: out of memory", base->id, len);
    }
    pthread_mutex_unlock(&r->mu);
    if (queued)
        return;
    px_error err = PX_ERROR_INIT;
    px_rstore *rs = rs_of(r->st, &err);
    int rc = rs ? px_rstore_append(rs, base->id, token, off, stream, data, len, &err) : -1;
    if (rc == PX_RSTORE_DONE) {
        pthread_mutex_lock(&r->mu);
        r->out_off = off + (int64_t)len;
        pthread_mutex_unlock(&r->mu);
    } else if (rc < 0 && rs && token > 0) {
        /* Redis away: kept in memory (the executor caps a run's output) and
         * written by the keeper when Redis answers. */
        pthread_mutex_lock(&r->mu);
        bool kept = pending_chunk_locked(r, stream, off, data, len);
        if (kept)
            r->out_off = off + (int64_t)len;
        pthread_mutex_unlock(&r->mu);
        if (kept)
            pending_list(r);
        else
            px_warn("execution %s: output chunk of %zu bytes lost: %s", base->id, len, err.msg);
    } else if (rc < 0) {
        px_warn("execution %s: output chunk of %zu bytes lost: %s", base->id, len, err.msg);
    }
}

/* One of this node's claimed runs ended: a slot is free for the puller. */
static void run_ended(rs_store *st) {
    pthread_mutex_lock(&st->mu);
    if (st->running > 0)
        st->running--;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->mu);
}

/* The end of a run this node killed because Redis stayed away. */
static void away_outcome(px_outcome *o, int64_t grace_ms) {
    o->status = PX_STATUS_FAILED;
    o->reason = PX_REASON_LOST;
    o->error_code = PX_E_UNAVAILABLE;
    snprintf(o->error, sizeof o->error,
             "killed: the store (Redis) was unreachable for longer than --store-grace-s (%lld s)",
             (long long)(grace_ms / 1000));
}

static bool rs_record_finish(px_record *base, const px_outcome *outcome) {
    rs_record *r = (rs_record *)base;
    px_outcome away;
    pthread_mutex_lock(&r->mu);
    int64_t token = r->token;
    bool was_ended = r->ended;
    r->ended = true;
    if (r->away_killed && !was_ended) {
        away = *outcome;
        memset(&away.py, 0, sizeof away.py);
        away_outcome(&away, r->st->cfg.grace_ms);
        outcome = &away;
    }
    /* Output waiting for Redis: the end goes after it. */
    bool queued = !was_ended && r->pend_head != NULL;
    if (queued && !(r->pend_end = outcome_dup(outcome)))
        px_warn("execution %s: terminal state not kept: out of memory", base->id);
    pthread_mutex_unlock(&r->mu);
    if (queued) {
        if (token > 0)
            run_ended(r->st);
        return true;
    }
    px_error err = PX_ERROR_INIT;
    px_rstore *rs = rs_of(r->st, &err);
    int rc = rs ? px_rstore_finish(rs, base->id, token, outcome, &err) : -1;
    if (rc < 0 && rs && token > 0 && !was_ended) {
        px_outcome *kept = outcome_dup(outcome);
        pthread_mutex_lock(&r->mu);
        r->pend_end = kept;
        pthread_mutex_unlock(&r->mu);
        if (kept) {
            px_warn("execution %s: terminal state kept until Redis answers: %s", base->id, err.msg);
            pending_list(r);
            run_ended(r->st);
            return true;
        }
    }
    if (rc < 0)
        px_warn("execution %s: terminal state not written: %s", base->id, err.msg);
    else if (rc == PX_RSTORE_FENCED)
        px_warn("execution %s: terminal state refused: this node lost its lease", base->id);
    if (token > 0 && !was_ended)
        run_ended(r->st);
    /* The watchers, here and on other nodes, are woken by the end marker
     * through the follower. */
    return rc == PX_RSTORE_DONE;
}

/* ---- reading ---- */

static int rs_record_snapshot(px_record *base, bool with_output, px_record_view *view,
                              px_error *err) {
    rs_record *r = (rs_record *)base;
    px_rstore_view v;
    px_rstore *rs = rs_of(r->st, err);
    if (!rs || px_rstore_get(rs, base->id, with_output, &v, err) < 0)
        return -1;
    *view = v.record;
    if (!px_status_terminal(view->status)) {
        int64_t started = view->outcome.started_at_ms;
        memset(&view->outcome, 0, sizeof view->outcome);
        view->outcome.status = view->status;
        view->outcome.started_at_ms = started;
    }
    return 0;
}

static int rs_record_read(px_record *base, int64_t offset, size_t max_len, px_log_chunk *chunk,
                          px_error *err) {
    rs_record *r = (rs_record *)base;
    px_rstore *rs = rs_of(r->st, err);
    return rs ? px_rstore_read(rs, base->id, offset, max_len, chunk, err) : -1;
}

static const px_record_ops rs_record_ops = {
    .destroy = rs_record_destroy,
    .attach_job = rs_record_attach_job,
    .kill = rs_record_kill,
    .set_running = rs_record_set_running,
    .append = rs_record_append,
    .finish = rs_record_finish,
    .snapshot = rs_record_snapshot,
    .read = rs_record_read,
    .watching = rs_record_watching,
};

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
                          st->cfg.max_queued, id, existed, old_dig, err);
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
    rs_record *r = proxy(st, id, 0, tenant, err);
    return r ? &r->base : NULL;
}

static px_record *rs_store_get(px_store *base, const char *id, px_error *err) {
    rs_store *st = (rs_store *)base;
    rs_record *r = live_find(st, id);
    if (r)
        return &r->base;
    /* Known to Redis? (One round trip; the snapshot that usually follows
     * is another.) */
    px_rstore_view v;
    if (px_rstore_get(st->rs, id, false, &v, err) < 0)
        return NULL;
    px_record_view_release(&v.record);
    r = proxy(st, id, 0, v.tenant, err);
    return r ? &r->base : NULL;
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
            rs_record *r = match ? proxy(st, batch[i].id, 0, v.tenant, err) : NULL;
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

/* ---- worker threads ---- */

/* Kills every local run with `cause` (lease lost, or shutdown); with
 * `away`, because Redis stayed unreachable past the grace (their end says
 * so). */
static void kill_local_runs(rs_store *st, px_kill_cause cause, bool away) {
    for (;;) {
        /* One at a time: a kill may end the run and drop the proxy. */
        rs_record *victim = NULL;
        pthread_mutex_lock(&st->mu);
        for (rs_record *r = st->live; r && !victim; r = r->next) {
            pthread_mutex_lock(&r->mu);
            bool candidate = r->token > 0 && !r->ended && r->kill_cause == PX_KILL_NONE;
            pthread_mutex_unlock(&r->mu);
            unsigned refs = candidate ? atomic_load(&r->base.refs) : 0;
            while (refs > 0 && !atomic_compare_exchange_weak(&r->base.refs, &refs, refs + 1))
                ;
            if (refs > 0)
                victim = r;
        }
        pthread_mutex_unlock(&st->mu);
        if (!victim)
            return;
        if (away) {
            pthread_mutex_lock(&victim->mu);
            victim->away_killed = true;
            pthread_mutex_unlock(&victim->mu);
        }
        kill_local(victim, cause);
        px_record_unref(&victim->base);
    }
}

/* A kill request from another node (or, id NULL, a reconnect). */
static void on_kill(void *ud, const char *id, px_kill_cause cause) {
    rs_store *st = ud;
    if (!id) {
        /* Requests may have been missed: the kill flags are durable. This
         * node's runs are at most max_running. */
        enum { MAX_CHECK = 256 };
        char(*ids)[48] = calloc(MAX_CHECK, sizeof *ids);
        size_t n = 0;
        pthread_mutex_lock(&st->mu);
        for (rs_record *r = st->live; ids && r && n < MAX_CHECK; r = r->next)
            if (token_of(r) > 0)
                snprintf(ids[n++], sizeof ids[0], "%s", r->base.id);
        pthread_mutex_unlock(&st->mu);
        for (size_t i = 0; i < n; i++) {
            px_rstore_view v;
            px_error err = PX_ERROR_INIT;
            if (px_rstore_get(st->rs, ids[i], false, &v, &err) == 0) {
                px_record_view_release(&v.record);
                if (v.kill != PX_KILL_NONE)
                    on_kill(st, ids[i], v.kill);
            }
        }
        free(ids);
        return;
    }
    rs_record *r = live_find(st, id);
    if (!r)
        return;
    if (kill_local(r, cause))
        px_info("execution %s: killed at another node's request", id);
    px_record_unref(&r->base);
}

static void fail_claimed(rs_store *st, const char *id, int64_t token, const char *why) {
    px_outcome o = {0};
    o.status = PX_STATUS_FAILED;
    o.reason = PX_REASON_SANDBOX_ERROR;
    o.error_code = PX_E_INTERNAL;
    o.finished_at_ms = px_now_unix_ms();
    snprintf(o.error, sizeof o.error, "%s", why);
    px_error err = PX_ERROR_INIT;
    if (px_rstore_finish(st->rs, id, token, &o, &err) < 0)
        px_warn("execution %s: %s; and its end was not written: %s", id, why, err.msg);
}

static void *puller_main(void *arg) {
    rs_store *st = arg;
    int64_t pause_until = 0;
    for (;;) {
        pthread_mutex_lock(&st->mu);
        while (!st->stop && !st->draining &&
               (st->running >= st->cfg.max_running || st->token == 0 || st->runner_down ||
                px_now_mono_ms() < pause_until)) {
            px_cond_wait_until(&st->cond, &st->mu, px_now_mono_ms() + 100);
        }
        bool stop = st->stop || st->draining;
        int64_t token = st->token;
        if (!stop)
            st->running++; /* the slot this claim may fill */
        pthread_mutex_unlock(&st->mu);
        if (stop)
            break;
        px_rstore_job job;
        px_error err = PX_ERROR_INIT;
        int rc = px_rstore_claim(st->rs, token, 1000, &job, &err);
        if (rc != PX_RSTORE_DONE) {
            run_ended(st); /* the slot stays free */
            if (rc < 0) {
                px_warn("node '%s': claim: %s", st->cfg.redis.node, err.msg);
                pause_until = px_now_mono_ms() + 200;
            }
            continue;
        }
        /* A claim that was waiting for a job when the back-end went down:
         * the job waits here, unstarted, until the back-end answers (or the
         * node stops, and the runner refuses it). */
        pthread_mutex_lock(&st->mu);
        while (st->runner_down && !st->stop && !st->draining)
            px_cond_wait_until(&st->cond, &st->mu, px_now_mono_ms() + 1000);
        pthread_mutex_unlock(&st->mu);
        px_job_spec *spec = px_jobpack_unpack(job.job, job.job_len, job.id, &err);
        free(job.job);
        rs_record *r = spec ? proxy(st, job.id, token, spec->tenant, &err) : NULL;
        if (!r) {
            px_job_spec_free(spec);
            fail_claimed(st, job.id, token, err.msg);
            run_ended(st);
            continue;
        }
        char origin[PX_RSTORE_NAME_MAX + 64];
        snprintf(origin, sizeof origin, "claimed by node '%s'", st->cfg.redis.node);
        const px_job_runner *run = &st->cfg.runner;
        if (run->ops->submit(run->ctx, &r->base, spec, origin, &err) < 0) {
            /* finish() through the proxy frees the slot. */
            px_outcome o = {0};
            o.status = PX_STATUS_FAILED;
            o.reason = PX_REASON_SANDBOX_ERROR;
            o.error_code = err.code;
            o.finished_at_ms = px_now_unix_ms();
            snprintf(o.error, sizeof o.error, "%s", err.msg);
            px_record_finish(&r->base, &o);
        }
        px_record_unref(&r->base);
    }
    return NULL;
}

/* Writes `r`'s waiting chunks and end, in order. Returns false if Redis
 * still does not answer (the rest waits), true when nothing waits. */
static bool flush_one(rs_store *st, rs_record *r) {
    for (;;) {
        pthread_mutex_lock(&r->mu);
        rs_pending_chunk *c = r->pend_head;
        px_outcome *end = c ? NULL : r->pend_end;
        int64_t token = r->token;
        pthread_mutex_unlock(&r->mu);
        if (!c && !end)
            return true;
        px_error err = PX_ERROR_INIT;
        int rc = c ? px_rstore_append(st->rs, r->base.id, token, c->offset, c->stream, c->data,
                                      c->len, &err)
                   : px_rstore_finish(st->rs, r->base.id, token, end, &err);
        if (rc < 0)
            return false;
        pthread_mutex_lock(&r->mu);
        if (c && rc == PX_RSTORE_DONE) {
            r->pend_head = c->next;
            if (!r->pend_head)
                r->pend_tail = NULL;
            c->next = NULL;
        } else if (c) {
            /* Ended elsewhere, or fenced (this node lost its lease while
             * Redis was away): the verdict written there stands. */
            c = r->pend_head;
            r->pend_head = r->pend_tail = NULL;
            end = r->pend_end;
            r->pend_end = NULL;
        } else {
            r->pend_end = NULL;
        }
        pthread_mutex_unlock(&r->mu);
        if (rc == PX_RSTORE_DONE && !c)
            px_info("execution %s: terminal state written after Redis came back", r->base.id);
        else if (rc != PX_RSTORE_DONE)
            px_warn("execution %s: writes kept while Redis was away dropped: %s", r->base.id,
                    rc == PX_RSTORE_FENCED ? "this node lost its lease meanwhile"
                                           : "the execution ended meanwhile");
        for (rs_pending_chunk *next; c; c = next) {
            next = c->next;
            free(c);
        }
        outcome_free(end);
    }
}

/* Writes what waited for Redis; stops at the first proxy Redis still
 * refuses. Keeper thread (and free). */
static void flush_pending(rs_store *st) {
    for (;;) {
        pthread_mutex_lock(&st->mu);
        rs_record *r = st->pending;
        pthread_mutex_unlock(&st->mu);
        if (!r || !flush_one(st, r))
            return;
        /* Unlisted only if nothing was added meanwhile (the writer lists
         * under the same locks). */
        bool done = false;
        pthread_mutex_lock(&st->mu);
        pthread_mutex_lock(&r->mu);
        if (!r->pend_head && !r->pend_end) {
            for (rs_record **p = &st->pending; *p; p = &(*p)->pending_next) {
                if (*p == r) {
                    *p = r->pending_next;
                    break;
                }
            }
            r->pending_listed = false;
            done = true;
        }
        pthread_mutex_unlock(&r->mu);
        pthread_mutex_unlock(&st->mu);
        if (done)
            px_record_unref(&r->base);
    }
}

static int64_t sweep_interval(const rs_store *st) {
    return st->cfg.sweep_interval_ms > 0 ? st->cfg.sweep_interval_ms : st->cfg.redis.lease_ms / 2;
}

static void *keeper_main(void *arg) {
    rs_store *st = arg;
    int64_t next_sweep = px_now_mono_ms() + sweep_interval(st);
    int64_t period = st->cfg.redis.lease_ms / 3 > 0 ? st->cfg.redis.lease_ms / 3 : 1;
    if (st->cfg.grace_ms > 0 && st->cfg.grace_ms / 2 < period)
        period = st->cfg.grace_ms / 2 > 0 ? st->cfg.grace_ms / 2 : 1;
    /* While Redis is away or writes wait for it, look sooner (the
     * connection's backoff bounds the attempts). */
    enum { RETRY_MS = 250 };
    int64_t last_ok = px_now_mono_ms(); /* Redis last answered */
    bool away = false, away_killed = false;
    for (;;) {
        pthread_mutex_lock(&st->mu);
        int64_t wait = (away || st->pending) && period > RETRY_MS ? RETRY_MS : period;
        if (!st->stop)
            px_cond_wait_until(&st->cond, &st->mu, px_now_mono_ms() + wait);
        bool stop = st->stop;
        int64_t token = st->token;
        pthread_mutex_unlock(&st->mu);
        if (stop)
            break;
        px_error err = PX_ERROR_INIT;
        int rc = token ? px_rstore_lease_renew(st->rs, token, &err) : PX_RSTORE_FENCED;
        away = rc < 0;
        if (rc < 0) {
            px_warn("node '%s': renew the lease: %s", st->cfg.redis.node, err.msg);
            int64_t away_ms = px_now_mono_ms() - last_ok;
            if (st->cfg.grace_ms > 0 && !away_killed && away_ms >= st->cfg.grace_ms) {
                px_err("node '%s': Redis unreachable for %lld ms (--store-grace-s): killing its "
                       "runs; their end is written when Redis answers",
                       st->cfg.redis.node, (long long)away_ms);
                kill_local_runs(st, PX_KILL_SHUTDOWN, true);
                away_killed = true;
            }
            continue; /* no sweep either: it would fail too */
        }
        last_ok = px_now_mono_ms();
        away_killed = false;
        if (rc == PX_RSTORE_FENCED) {
            if (token)
                px_err("node '%s': lost its lease; killing its runs (they end FAILED/LOST)",
                       st->cfg.redis.node);
            pthread_mutex_lock(&st->mu);
            st->token = 0;
            pthread_mutex_unlock(&st->mu);
            kill_local_runs(st, PX_KILL_SHUTDOWN, false);
            int64_t fresh;
            if (px_rstore_lease_acquire(st->rs, &fresh, &err) == 0) {
                pthread_mutex_lock(&st->mu);
                st->token = fresh;
                pthread_cond_broadcast(&st->cond);
                pthread_mutex_unlock(&st->mu);
                px_info("node '%s': took a new lease", st->cfg.redis.node);
            } else {
                px_warn("node '%s': take a new lease: %s", st->cfg.redis.node, err.msg);
            }
        }
        flush_pending(st);
        if (px_now_mono_ms() >= next_sweep) {
            unsigned lost = 0;
            if (px_rstore_sweep(st->rs, &lost, &err) < 0)
                px_warn("node '%s': sweep: %s", st->cfg.redis.node, err.msg);
            else if (lost > 0)
                px_warn("node '%s': %u executions of nodes without a lease ended FAILED/LOST",
                        st->cfg.redis.node, lost);
            next_sweep = px_now_mono_ms() + sweep_interval(st);
        }
    }
    return NULL;
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
    if (join)
        pthread_join(st->puller, NULL);
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
        flush_pending(st);
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
    store_unref(st);
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
    atomic_init(&st->refs, 1);
    pthread_mutex_init(&st->mu, NULL);
    px_cond_init_mono(&st->cond);
    st->rs = px_rstore_new(&config->redis, err); /* with the password */
    if (!st->rs || px_rstore_follow_start(st->rs, on_follow, st, err) < 0)
        goto fail;
    if (config->runner.ops) {
        if (px_rstore_lease_acquire(st->rs, &st->token, err) < 0 ||
            px_rstore_listen_start(st->rs, on_kill, st, err) < 0)
            goto fail;
        if (pthread_create(&st->puller, NULL, puller_main, st) != 0) {
            px_error_set(err, PX_E_INTERNAL, "redis store: start the puller");
            goto fail;
        }
        if (pthread_create(&st->keeper, NULL, keeper_main, st) != 0) {
            pthread_mutex_lock(&st->mu);
            st->stop = true;
            pthread_cond_broadcast(&st->cond);
            pthread_mutex_unlock(&st->mu);
            pthread_join(st->puller, NULL);
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
    .drain = rs_store_drain,
    .ping = rs_store_ping,
    .runner_ready = rs_store_runner_ready,
    .remove = rs_store_remove,
    .count = rs_store_count,
    .list = rs_store_list,
};
