/*
 * The in-memory store's records (see memory.c's DESIGN and
 * memory_internal.h): the job behind a record, the lifecycle transitions,
 * the output log (one growing buffer plus its segment index) and reads.
 * Every function here takes only the record's own lock.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/clock.h"
#include "server/store/memory_internal.h"
#include "server/store/store_impl.h"

static const px_record_ops mem_record_ops;

/* The last reference went (px_record_unref): frees the record. */
static void mem_record_destroy(px_record *base) {
    mem_record *r = (mem_record *)base;
    if (r->job_ops && r->job_ops->unref)
        r->job_ops->unref(r->job);
    px_py_report_release(&r->outcome.py);
    free(r->request_id);
    free(r->buf);
    free(r->segs);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

mem_record *px_mem_record_new(const char *id, const char *tenant, const char *request_id,
                              const uint8_t *digest, size_t max_readers) {
    mem_record *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    if (request_id && request_id[0]) {
        r->request_id = strdup(request_id);
        if (!r->request_id) {
            free(r);
            return NULL;
        }
        if (digest)
            memcpy(r->digest, digest, PX_SHA256_LEN);
    }
    px_record_init(&r->base, &mem_record_ops, id, max_readers);
    if (px_record_set_tenant(&r->base, tenant) < 0) {
        free(r->request_id);
        free(r);
        return NULL;
    }
    atomic_init(&r->finished_at, 0);
    atomic_init(&r->held_bytes, 0);
    atomic_init(&r->pub_status, PX_STATUS_PENDING);
    r->status = PX_STATUS_PENDING;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

/* ---- the job behind a record ---- */

static void mem_record_attach_job(px_record *base, const px_record_job_ops *ops, void *ctx,
                                  void *job) {
    mem_record *r = (mem_record *)base;
    pthread_mutex_lock(&r->mu);
    const px_record_job_ops *old_ops = r->job_ops;
    void *old_job = r->job;
    r->job_ops = ops;
    r->job_ctx = ctx;
    r->job = job;
    px_kill_cause cause = px_status_terminal(r->status) ? PX_KILL_NONE : r->kill_cause;
    pthread_mutex_unlock(&r->mu);

    if (old_ops && old_ops->unref)
        old_ops->unref(old_job);
    /* The record holds a reference to `job` and the caller one to `r`. */
    if (cause != PX_KILL_NONE && ops && ops->kill)
        ops->kill(ctx, job, cause);
}

static bool mem_record_kill(px_record *base, px_kill_cause cause) {
    mem_record *r = (mem_record *)base;
    pthread_mutex_lock(&r->mu);
    if (px_status_terminal(r->status)) {
        pthread_mutex_unlock(&r->mu);
        return false;
    }
    if (r->kill_cause == PX_KILL_NONE)
        r->kill_cause = cause;
    cause = r->kill_cause;
    const px_record_job_ops *ops = r->job_ops;
    void *ctx = r->job_ctx;
    void *job = r->job;
    pthread_mutex_unlock(&r->mu);

    /* No lock held: the kill may finish the record synchronously. */
    if (ops && ops->kill)
        ops->kill(ctx, job, cause);
    return true;
}

/* ---- lifecycle ---- */

static void mem_record_set_running(px_record *base, int64_t started_at_ms) {
    mem_record *r = (mem_record *)base;
    pthread_mutex_lock(&r->mu);
    bool changed = r->status == PX_STATUS_PENDING;
    if (changed) {
        r->status = PX_STATUS_RUNNING;
        atomic_store(&r->pub_status, PX_STATUS_RUNNING);
        r->started_at = started_at_ms;
    }
    pthread_mutex_unlock(&r->mu);
    if (changed)
        px_record_notify(&r->base);
}

/* Makes room for `n` more bytes and one more segment. Caller holds r->mu. */
static int log_reserve_locked(mem_record *r, size_t n) {
    if (n > SIZE_MAX / 4 - r->len)
        return -1;
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n)
            cap *= 2;
        uint8_t *buf = realloc(r->buf, cap);
        if (!buf)
            return -1;
        r->buf = buf;
        r->cap = cap;
    }
    if (r->n_segs == r->cap_segs) {
        size_t cap = r->cap_segs ? r->cap_segs * 2 : 16;
        log_seg *segs = realloc(r->segs, cap * sizeof *segs);
        if (!segs)
            return -1;
        r->segs = segs;
        r->cap_segs = cap;
    }
    return 0;
}

static void mem_record_append(px_record *base, px_stream stream, const uint8_t *data, size_t len) {
    mem_record *r = (mem_record *)base;
    pthread_mutex_lock(&r->mu);
    /* Out of memory drops the chunk: offsets stay consistent. */
    bool appended = !px_status_terminal(r->status) && log_reserve_locked(r, len) == 0;
    if (appended) {
        memcpy(r->buf + r->len, data, len);
        log_seg *last = r->n_segs ? &r->segs[r->n_segs - 1] : NULL;
        if (last && last->stream == stream) {
            last->len += len;
        } else {
            r->segs[r->n_segs++] = (log_seg){
                .offset = (int64_t)r->len, .len = len, .stream = stream};
        }
        r->len += len;
        atomic_fetch_add(&r->held_bytes, len);
    }
    pthread_mutex_unlock(&r->mu);
    if (appended)
        px_record_notify_readers(&r->base); /* control watchers wait for the end */
}

static bool mem_record_finish(px_record *base, const px_outcome *outcome) {
    mem_record *r = (mem_record *)base;
    pthread_mutex_lock(&r->mu);
    if (px_status_terminal(r->status)) {
        pthread_mutex_unlock(&r->mu);
        return false;
    }
    r->outcome = *outcome;
    /* Out of memory leaves the copy empty: the execution ends without its
     * Eval report rather than not at all. */
    (void)px_py_report_copy(&r->outcome.py, &outcome->py);
    atomic_fetch_add(&r->held_bytes, px_py_report_bytes(&r->outcome.py));
    if (!px_status_terminal(r->outcome.status)) {
        /* A caller bug; still end the record exactly once. */
        r->outcome.status = PX_STATUS_FAILED;
        r->outcome.reason = PX_REASON_SANDBOX_ERROR;
        r->outcome.error_code = PX_E_INTERNAL;
        snprintf(r->outcome.error, sizeof r->outcome.error, "finished without a terminal status");
    }
    if (r->outcome.started_at_ms == 0)
        r->outcome.started_at_ms = r->started_at;
    if (r->outcome.finished_at_ms == 0)
        r->outcome.finished_at_ms = px_now_unix_ms();
    r->status = r->outcome.status;
    atomic_store(&r->pub_status, (int)r->status);
    atomic_store(&r->finished_at, r->outcome.finished_at_ms);
    pthread_mutex_unlock(&r->mu);
    px_record_notify(&r->base);
    return true;
}

/* ---- reading ---- */

static int mem_record_snapshot(px_record *base, bool with_output, px_record_view *view,
                               px_error *err) {
    mem_record *r = (mem_record *)base;
    pthread_mutex_lock(&r->mu);
    view->status = r->status;
    if (px_status_terminal(r->status)) {
        view->outcome = r->outcome;
        if (px_py_report_copy(&view->outcome.py, &r->outcome.py) < 0) {
            pthread_mutex_unlock(&r->mu);
            return px_error_set(err, PX_E_INTERNAL, "snapshot '%s': out of memory", r->base.id);
        }
    } else {
        view->outcome.status = r->status;
        view->outcome.started_at_ms = r->started_at;
    }
    view->log_len = (int64_t)r->len;
    if (with_output) {
        size_t n_out = 0, n_err = 0;
        for (size_t i = 0; i < r->n_segs; i++)
            *(r->segs[i].stream == PX_STREAM_STDOUT ? &n_out : &n_err) += r->segs[i].len;
        view->stdout_data = n_out ? malloc(n_out) : NULL;
        view->stderr_data = n_err ? malloc(n_err) : NULL;
        if ((n_out && !view->stdout_data) || (n_err && !view->stderr_data)) {
            pthread_mutex_unlock(&r->mu);
            px_record_view_release(view);
            return px_error_set(err, PX_E_INTERNAL, "snapshot '%s': out of memory", r->base.id);
        }
        for (size_t i = 0; i < r->n_segs; i++) {
            const log_seg *g = &r->segs[i];
            if (g->stream == PX_STREAM_STDOUT) {
                memcpy(view->stdout_data + view->stdout_len, r->buf + g->offset, g->len);
                view->stdout_len += g->len;
            } else {
                memcpy(view->stderr_data + view->stderr_len, r->buf + g->offset, g->len);
                view->stderr_len += g->len;
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
    return 0;
}

/* The segment holding byte `offset` (< r->len). Caller holds r->mu. */
static const log_seg *seg_at_locked(const mem_record *r, int64_t offset) {
    size_t lo = 0, hi = r->n_segs; /* the answer is in [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->segs[mid].offset <= offset)
            lo = mid;
        else
            hi = mid;
    }
    return &r->segs[lo];
}

static int mem_record_read(px_record *base, int64_t offset, size_t max_len, px_log_chunk *chunk,
                           px_error *err) {
    mem_record *r = (mem_record *)base;
    pthread_mutex_lock(&r->mu);
    int64_t end = (int64_t)r->len;
    bool terminal = px_status_terminal(r->status);
    if (offset >= end) {
        pthread_mutex_unlock(&r->mu);
        if (!terminal)
            return PX_READ_WAIT;
        if (offset == end)
            return PX_READ_EOF;
        return px_error_set(err, PX_E_OUT_OF_RANGE,
                            "offset %lld is past the end of the output (%lld bytes)",
                            (long long)offset, (long long)end);
    }
    const log_seg *g = seg_at_locked(r, offset);
    size_t avail = (size_t)(g->offset + (int64_t)g->len - offset);
    size_t n = avail < max_len ? avail : max_len;
    uint8_t *data = malloc(n);
    if (!data) {
        pthread_mutex_unlock(&r->mu);
        return px_error_set(err, PX_E_INTERNAL, "read: out of memory");
    }
    memcpy(data, r->buf + offset, n);
    chunk->stream = g->stream;
    pthread_mutex_unlock(&r->mu);
    chunk->offset = offset;
    chunk->data = data;
    chunk->len = n;
    return PX_READ_DATA;
}

/* ---- the interface ---- */

static const px_record_ops mem_record_ops = {
    .destroy = mem_record_destroy,
    .attach_job = mem_record_attach_job,
    .kill = mem_record_kill,
    .set_running = mem_record_set_running,
    .append = mem_record_append,
    .finish = mem_record_finish,
    .snapshot = mem_record_snapshot,
    .read = mem_record_read,
};
