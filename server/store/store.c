/*
 * The store interface (store.h): dispatch to the implementation's ops, and
 * the part every implementation shares: a record's reference count, id and
 * watchers (store_impl.h).
 */
#include "server/store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/store/store_impl.h"

struct px_watch {
    px_watch_fn fn;
    void *ud;
    px_watch_kind kind;
    px_watch *prev, *next;
};

/* ---- the store ---- */

void px_store_free(px_store *s) {
    if (s)
        s->ops->free(s);
}

px_record *px_store_create(px_store *s, const char *request_id, const uint8_t *digest,
                           bool *existed, px_error *err) {
    if (existed)
        *existed = false;
    return s->ops->create(s, request_id, digest, existed, err);
}

px_record *px_store_admit(px_store *s, const char *request_id, const uint8_t *digest,
                          px_job_spec *spec, const char *origin, bool *existed, px_error *err) {
    if (existed)
        *existed = false;
    return s->ops->admit(s, request_id, digest, spec, origin, existed, err);
}

int px_store_ping(px_store *s, px_error *err) {
    return s->ops->ping ? s->ops->ping(s, err) : 0;
}

void px_store_drain(px_store *s) {
    if (s->ops->drain)
        s->ops->drain(s);
}

px_record *px_store_get(px_store *s, const char *id, px_error *err) {
    return s->ops->get(s, id, err);
}

void px_store_remove(px_store *s, px_record *r) {
    s->ops->remove(s, r);
}

size_t px_store_count(px_store *s) {
    return s->ops->count(s);
}

int px_store_list(px_store *s, px_status status, size_t page_size, const char *page_token,
                  px_store_page *page, px_error *err) {
    memset(page, 0, sizeof *page);
    if (page_size < 1 || page_size > PX_STORE_LIST_MAX)
        return px_error_set(err, PX_E_INVALID, "page_size: %zu is not in 1..%d", page_size,
                            PX_STORE_LIST_MAX);
    return s->ops->list(s, status, page_size, page_token, page, err);
}

void px_store_page_release(px_store_page *page) {
    if (!page)
        return;
    for (size_t i = 0; i < page->n; i++)
        px_record_unref(page->records[i]);
    free(page->records);
    memset(page, 0, sizeof *page);
}

/* ---- records: the common part ---- */

void px_record_init(px_record *r, const px_record_ops *ops, const char *id, size_t max_readers) {
    r->ops = ops;
    atomic_init(&r->refs, 1);
    snprintf(r->id, sizeof r->id, "%s", id);
    r->max_readers = max_readers;
    r->watchers = NULL;
    r->n_readers = 0;
    r->n_watchers = 0;
    pthread_mutex_init(&r->watch_mu, NULL);
}

void px_record_ref(px_record *r) {
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void px_record_unref(px_record *r) {
    if (!r)
        return;
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (r->n_watchers > 0 && r->ops->watching)
        r->ops->watching(r, false, NULL);
    for (px_watch *w = r->watchers, *next; w; w = next) {
        next = w->next;
        free(w);
    }
    pthread_mutex_destroy(&r->watch_mu);
    r->ops->destroy(r);
}

const char *px_record_id(const px_record *r) {
    return r->id;
}

void px_record_notify(px_record *r) {
    pthread_mutex_lock(&r->watch_mu);
    for (px_watch *w = r->watchers; w; w = w->next)
        w->fn(w->ud, r);
    pthread_mutex_unlock(&r->watch_mu);
}

/* ---- records: dispatch ---- */

void px_record_attach_job(px_record *r, const px_record_job_ops *ops, void *ctx, void *job) {
    r->ops->attach_job(r, ops, ctx, job);
}

bool px_record_kill(px_record *r, px_kill_cause cause) {
    return cause != PX_KILL_NONE && r->ops->kill(r, cause);
}

void px_record_set_running(px_record *r, int64_t started_at_ms) {
    r->ops->set_running(r, started_at_ms);
}

void px_record_append(px_record *r, px_stream stream, const uint8_t *data, size_t len) {
    if (len > 0)
        r->ops->append(r, stream, data, len);
}

bool px_record_finish(px_record *r, const px_outcome *outcome) {
    return r->ops->finish(r, outcome);
}

int px_record_snapshot(px_record *r, bool with_output, px_record_view *view, px_error *err) {
    memset(view, 0, sizeof *view);
    snprintf(view->id, sizeof view->id, "%s", r->id);
    return r->ops->snapshot(r, with_output, view, err);
}

void px_record_view_release(px_record_view *view) {
    if (!view)
        return;
    px_py_report_release(&view->outcome.py);
    free(view->stdout_data);
    free(view->stderr_data);
    view->stdout_data = view->stderr_data = NULL;
    view->stdout_len = view->stderr_len = 0;
}

int px_record_read(px_record *r, int64_t offset, size_t max_len, px_log_chunk *chunk,
                   px_error *err) {
    memset(chunk, 0, sizeof *chunk);
    if (offset < 0)
        return px_error_set(err, PX_E_INVALID, "negative offset %lld", (long long)offset);
    if (max_len == 0)
        return px_error_set(err, PX_E_INVALID, "read of 0 bytes");
    return r->ops->read(r, offset, max_len, chunk, err);
}

/* ---- watchers ---- */

px_watch *px_record_watch(px_record *r, px_watch_kind kind, px_watch_fn fn, void *ud,
                          px_error *err) {
    px_watch *w = calloc(1, sizeof *w);
    if (!w) {
        px_error_set(err, PX_E_INTERNAL, "watch: out of memory");
        return NULL;
    }
    w->fn = fn;
    w->ud = ud;
    w->kind = kind;
    pthread_mutex_lock(&r->watch_mu);
    if (kind == PX_WATCH_READER && r->n_readers >= r->max_readers) {
        size_t n = r->n_readers;
        pthread_mutex_unlock(&r->watch_mu);
        free(w);
        px_error_set(err, PX_E_EXHAUSTED, "execution '%s' has %zu readers (limit %zu)", r->id, n,
                     r->max_readers);
        return NULL;
    }
    if (r->n_watchers == 0 && r->ops->watching && r->ops->watching(r, true, err) < 0) {
        pthread_mutex_unlock(&r->watch_mu);
        free(w);
        return NULL;
    }
    w->next = r->watchers;
    if (r->watchers)
        r->watchers->prev = w;
    r->watchers = w;
    r->n_watchers++;
    if (kind == PX_WATCH_READER)
        r->n_readers++;
    pthread_mutex_unlock(&r->watch_mu);
    return w;
}

void px_record_unwatch(px_record *r, px_watch *w) {
    if (!w)
        return;
    pthread_mutex_lock(&r->watch_mu);
    if (w->prev)
        w->prev->next = w->next;
    else
        r->watchers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    if (w->kind == PX_WATCH_READER)
        r->n_readers--;
    if (--r->n_watchers == 0 && r->ops->watching)
        r->ops->watching(r, false, NULL);
    pthread_mutex_unlock(&r->watch_mu);
    free(w);
}
