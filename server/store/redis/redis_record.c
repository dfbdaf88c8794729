/*
 * The Redis store's records (see redis_store.h and redis_store.c): the
 * proxies this node keeps alive, the job attached behind one, the owner's
 * writes (kept while Redis is away) and reading.
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

static const px_record_ops rs_record_ops;

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

void rs_outcome_free(px_outcome *o) {
    if (o) {
        px_py_report_release(&o->py);
        free(o);
    }
}

void rs_store_unref(rs_store *st) {
    if (atomic_fetch_sub(&st->refs, 1) != 1)
        return;
    pthread_cond_destroy(&st->cond);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* The store's connections, or NULL with PX_E_UNAVAILABLE once it is freed. */
px_rstore *rs_of(rs_store *st, px_error *err) {
    if (!st->rs)
        px_error_set(err, PX_E_UNAVAILABLE, "the store is closed");
    return st->rs;
}

/* ---- proxies ---- */

/* Returns a new reference to the live proxy of `id`, or NULL. */
/* rs_live_find with st->mu held. */
static rs_record *live_find_locked(rs_store *st, const char *id) {
    for (rs_record *r = st->live; r; r = r->next) {
        if (strcmp(r->base.id, id) != 0)
            continue;
        /* A proxy whose count reached 0 is on its way out: not found. */
        unsigned refs = atomic_load(&r->base.refs);
        while (refs > 0 && !atomic_compare_exchange_weak(&r->base.refs, &refs, refs + 1))
            ;
        if (refs > 0)
            return r;
    }
    return NULL;
}

rs_record *rs_live_find(rs_store *st, const char *id) {
    pthread_mutex_lock(&st->mu);
    rs_record *found = live_find_locked(st, id);
    pthread_mutex_unlock(&st->mu);
    return found;
}

/* Gives `r` the owner's token (token > 0) and returns it. */
static rs_record *with_token(rs_record *r, int64_t token) {
    if (token > 0) {
        pthread_mutex_lock(&r->mu);
        r->token = token;
        pthread_mutex_unlock(&r->mu);
    }
    return r;
}

/* The proxy of `id`: the live one, or a new one (with `token`, of
 * `tenant`, the record's). One per id and node: watchers, kill requests
 * and the follower's news reach a proxy by its id, so a second one would
 * have watchers nobody wakes (a sync call waiting forever) or a job no kill
 * reaches. Two threads may both find none (the puller claiming a job while
 * the call that admitted it makes its proxy): the one that inserts second
 * takes the first one's instead. */
rs_record *rs_proxy(rs_store *st, const char *id, int64_t token, const char *tenant,
                    px_error *err) {
    rs_record *r = rs_live_find(st, id);
    if (r)
        return with_token(r, token);
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
    rs_record *first = live_find_locked(st, id);
    if (!first) {
        r->next = st->live;
        st->live = r;
    }
    pthread_mutex_unlock(&st->mu);
    if (!first)
        return r;
    px_record_unref(&r->base); /* never published: destroyed here */
    return with_token(first, token);
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
    rs_outcome_free(r->pend_end);
    pthread_mutex_destroy(&r->mu);
    free(r);
    rs_store_unref(st);
}

/* The follower saw news for `id`: wake its local watchers; the control
 * watchers (sync Execute, Kill: waiting for the end) only with the end. */
void rs_on_follow(void *ud, const char *id, bool ended) {
    rs_record *r = rs_live_find(ud, id);
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
    bool live = false;
    if (px_rstore_follow_add(rs, base->id, &live, err) < 0)
        return -1;
    return live ? 1 : 0;
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
bool rs_kill_local(rs_record *r, px_kill_cause cause) {
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
        return rs_kill_local(r, cause);
    }
    /* A queued job ended now: its end marker wakes the watchers through the
     * follower, as every change does. */
    return rc != PX_RSTORE_KILL_ENDED;
}

/* ---- the owner's writes ---- */

int64_t rs_token_of(rs_record *r) {
    pthread_mutex_lock(&r->mu);
    int64_t t = r->token;
    pthread_mutex_unlock(&r->mu);
    return t;
}

static void rs_record_set_running(px_record *base, int64_t started_at_ms) {
    rs_record *r = (rs_record *)base;
    px_error err = PX_ERROR_INIT;
    px_rstore *rs = rs_of(r->st, &err);
    int rc = rs ? px_rstore_set_running(rs, base->id, rs_token_of(r), started_at_ms, &err) : -1;
    if (rc < 0)
        px_warn("execution %s: set running: %s", base->id, err.msg);
    else if (rc == PX_RSTORE_FENCED)
        px_warn("execution %s: RUNNING refused: this node lost its lease", base->id);
    /* No wake-up: RUNNING is not in the output stream, and no watcher waits
     * for it (readers wait for output, control calls for the end). */
}

/* Puts `r` on the store's list of proxies with waiting writes (once; the
 * list holds a reference) and wakes the keeper, which retries them: it
 * would otherwise sleep out its period (a third of the lease). */
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
        st->pending_new = true;
        pthread_cond_broadcast(&st->cond);
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

/* One of this node's claimed runs ended: a slot is free for a puller. */
void rs_run_ended(rs_store *st) {
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
            rs_run_ended(r->st);
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
            rs_run_ended(r->st);
            return true;
        }
    }
    if (rc < 0)
        px_warn("execution %s: terminal state not written: %s", base->id, err.msg);
    else if (rc == PX_RSTORE_FENCED)
        px_warn("execution %s: terminal state refused: this node lost its lease", base->id);
    if (token > 0 && !was_ended)
        rs_run_ended(r->st);
    /* The watchers, here and on other nodes, are woken by the end marker
     * through the follower. */
    return rc == PX_RSTORE_DONE;
}

/* ---- reading ---- */

/* The record view of what Redis holds: a non-terminal record's outcome is
 * only its status and start, as in the memory store. */
void rs_view_of(px_rstore_view *v, px_record_view *view) {
    *view = v->record;
    if (!px_status_terminal(view->status)) {
        int64_t started = view->outcome.started_at_ms;
        px_py_report_release(&view->outcome.py);
        memset(&view->outcome, 0, sizeof view->outcome);
        view->outcome.status = view->status;
        view->outcome.started_at_ms = started;
    }
}

static int rs_record_snapshot(px_record *base, bool with_output, px_record_view *view,
                              px_error *err) {
    rs_record *r = (rs_record *)base;
    px_rstore_view v;
    px_rstore *rs = rs_of(r->st, err);
    if (!rs || px_rstore_get(rs, base->id, with_output, &v, err) < 0)
        return -1;
    rs_view_of(&v, view);
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
