/*
 * The Redis store's worker threads (see redis_store.c): the puller claims
 * jobs for the runner; the keeper renews the lease, sweeps dead nodes and
 * flushes writes kept while Redis was away. Kill requests from other
 * nodes arrive here too.
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
        rs_kill_local(victim, cause);
        px_record_unref(&victim->base);
    }
}

/* A kill request from another node (or, id NULL, a reconnect). */
void rs_on_kill(void *ud, const char *id, px_kill_cause cause) {
    rs_store *st = ud;
    if (!id) {
        /* Requests may have been missed: the kill flags are durable. This
         * node's runs are at most max_running. */
        enum { MAX_CHECK = 256 };
        char(*ids)[48] = calloc(MAX_CHECK, sizeof *ids);
        size_t n = 0;
        pthread_mutex_lock(&st->mu);
        for (rs_record *r = st->live; ids && r && n < MAX_CHECK; r = r->next)
            if (rs_token_of(r) > 0)
                snprintf(ids[n++], sizeof ids[0], "%s", r->base.id);
        pthread_mutex_unlock(&st->mu);
        for (size_t i = 0; i < n; i++) {
            px_rstore_view v;
            px_error err = PX_ERROR_INIT;
            if (px_rstore_get(st->rs, ids[i], false, &v, &err) == 0) {
                px_record_view_release(&v.record);
                if (v.kill != PX_KILL_NONE)
                    rs_on_kill(st, ids[i], v.kill);
            }
        }
        free(ids);
        return;
    }
    rs_record *r = rs_live_find(st, id);
    if (!r)
        return;
    if (rs_kill_local(r, cause))
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

void *rs_puller_main(void *arg) {
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
            rs_run_ended(st); /* the slot stays free */
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
        rs_record *r = spec ? rs_proxy(st, job.id, token, spec->tenant, &err) : NULL;
        if (!r) {
            px_job_spec_free(spec);
            fail_claimed(st, job.id, token, err.msg);
            rs_run_ended(st);
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
        rs_outcome_free(end);
    }
}

/* Writes what waited for Redis; stops at the first proxy Redis still
 * refuses. Keeper thread (and free). */
void rs_flush_pending(rs_store *st) {
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

void *rs_keeper_main(void *arg) {
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
        /* The condition is broadcast at every run's end too: only stop or a
         * write newly left waiting for Redis cuts the wait short, or the
         * lease would be renewed once per execution (a round trip each). */
        int64_t until = px_now_mono_ms() + wait;
        while (!st->stop && !st->pending_new && px_now_mono_ms() < until)
            px_cond_wait_until(&st->cond, &st->mu, until);
        st->pending_new = false;
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
        rs_flush_pending(st);
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
