/*
 * The store interface (store.h): dispatch to the implementation's ops, and
 * the part every implementation shares: a record's reference count, id and
 * watchers (store_impl.h).
 */
#include "server/store/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/cleanup.h"
#include "server/base/clock.h"
#include "server/base/quote.h"
#include "server/store/store_impl.h"

struct px_watch {
    px_watch_fn fn;
    void *ud;
    px_watch_kind kind;
    px_watch *prev, *next;
};

/* ---- per-tenant quotas ----
 *
 * A tenant with executions in flight, or with a per-minute bucket not yet
 * full again, has an entry: references to its records that are not finished
 * yet (a NULL slot is an admission in progress) and the token bucket.
 * A record leaves its entry when px_record_finish ends it (quota_release,
 * through r->quota), so a finished execution's output is held only by the
 * store's retention; a record finished without px_record_finish here leaves
 * at its tenant's next admission. (A store shared by nodes counts the quotas
 * itself, cluster-wide: px_store_ops.set_quotas.) An entry with nothing in
 * flight and a full bucket is freed (quota_sweep_locked, at every admission
 * and release), so entries are bounded by the tenants active within the
 * last minute, and their records by the executions in flight. */

typedef struct quota_tenant {
    char *name;
    px_record **live;
    size_t n, cap;
    double tokens;     /* per-minute bucket; starts full */
    int64_t refill_ms; /* monotonic ms of the last refill */
    struct quota_tenant *next;
} quota_tenant;

struct px_quota {
    px_quota_config cfg;
    pthread_mutex_t mu;
    quota_tenant *tenants;
};

static void quota_tenant_free(quota_tenant *t) {
    free(t->live);
    free(t->name);
    free(t);
}

/* Called when the store is freed: records still referenced elsewhere forget
 * the quota. The store's jobs have ended by then (store.h), so no
 * px_record_finish races with this. */
static void quota_free(px_quota *q) {
    if (!q)
        return;
    for (quota_tenant *t = q->tenants, *next; t; t = next) {
        next = t->next;
        for (size_t i = 0; i < t->n; i++) {
            if (!t->live[i])
                continue;
            atomic_store(&t->live[i]->quota, NULL);
            px_record_unref(t->live[i]);
        }
        quota_tenant_free(t);
    }
    pthread_mutex_destroy(&q->mu);
    free(q);
}

int px_store_set_quotas(px_store *s, const px_quota_config *cfg, px_error *err) {
    if (cfg->max_concurrent <= 0 && cfg->max_queued <= 0 && cfg->max_per_minute <= 0)
        return 0;
    if (s->ops->set_quotas)
        return s->ops->set_quotas(s, cfg, err);
    px_quota *q = calloc(1, sizeof *q);
    if (!q)
        return px_error_set(err, PX_E_INTERNAL, "store: out of memory");
    q->cfg = *cfg;
    pthread_mutex_init(&q->mu, NULL);
    quota_free(s->quota);
    s->quota = q;
    return 0;
}

/* Refills `t`'s bucket up to now. Caller holds q->mu. */
static void quota_refill_locked(const px_quota *q, quota_tenant *t, int64_t now_ms) {
    int per_minute = q->cfg.max_per_minute;
    if (per_minute <= 0)
        return;
    t->tokens += (double)(now_ms - t->refill_ms) * per_minute / 60000.0;
    if (t->tokens > per_minute)
        t->tokens = per_minute;
    t->refill_ms = now_ms;
}

/* Frees the entries with nothing in flight and a full bucket: a new entry
 * would be the same. Caller holds q->mu. */
static void quota_sweep_locked(px_quota *q) {
    int64_t now = px_now_mono_ms();
    for (quota_tenant **pp = &q->tenants; *pp;) {
        quota_tenant *t = *pp;
        quota_refill_locked(q, t, now);
        if (t->n == 0 && t->tokens >= q->cfg.max_per_minute) {
            *pp = t->next;
            quota_tenant_free(t);
        } else {
            pp = &t->next;
        }
    }
}

static quota_tenant *quota_lookup_locked(px_quota *q, const char *tenant) {
    for (quota_tenant *t = q->tenants; t; t = t->next)
        if (strcmp(t->name, tenant) == 0)
            return t;
    return NULL;
}

static quota_tenant *quota_find_locked(px_quota *q, const char *tenant, px_error *err) {
    quota_tenant *t = quota_lookup_locked(q, tenant);
    if (t)
        return t;
    t = calloc(1, sizeof *t);
    if (!t || !(t->name = strdup(tenant))) {
        free(t);
        px_error_set(err, PX_E_INTERNAL, "store: out of memory");
        return NULL;
    }
    t->tokens = q->cfg.max_per_minute;
    t->refill_ms = px_now_mono_ms();
    t->next = q->tenants;
    q->tenants = t;
    return t;
}

static px_status record_status(px_record *r) {
    px_record_view v;
    px_error ignored = PX_ERROR_INIT;
    if (px_record_snapshot(r, false, &v, &ignored) < 0)
        return PX_STATUS_PENDING; /* out of memory: counted, to be safe */
    px_status st = v.status;
    px_record_view_release(&v);
    return st;
}

/* Takes `r` out of `t`'s slots if it holds one; returns whether it did.
 * Caller holds q->mu and still has its own reference to `r`. */
static bool quota_drop_locked(quota_tenant *t, px_record *r) {
    for (size_t i = 0; i < t->n; i++) {
        if (t->live[i] != r)
            continue;
        t->live[i] = t->live[--t->n];
        atomic_store(&r->quota, NULL);
        px_record_unref(r); /* never the last reference: the caller has one */
        return true;
    }
    return false;
}

/* `r` finished (px_record_finish): it leaves its tenant's entry. */
static void quota_release(px_quota *q, px_record *r) {
    pthread_mutex_lock(&q->mu);
    quota_tenant *t = quota_lookup_locked(q, px_record_tenant(r));
    if (t)
        quota_drop_locked(t, r);
    quota_sweep_locked(q);
    pthread_mutex_unlock(&q->mu);
}

int px_quota_refuse(px_error *err, const px_quota_config *c, px_quota_kind kind, const char *tenant,
                    int64_t n) {
    px_quoted qt;
    switch (kind) {
    case PX_QUOTA_CONCURRENT:
        return px_error_set(err, PX_E_EXHAUSTED,
                            "tenant '%s': quota of %d concurrent executions reached "
                            "(--tenant-max-concurrent; %lld pending or running)",
                            px_quote_str(&qt, tenant), c->max_concurrent, (long long)n);
    case PX_QUOTA_QUEUED:
        return px_error_set(err, PX_E_EXHAUSTED,
                            "tenant '%s': quota of %d queued executions reached "
                            "(--tenant-max-queued; %lld waiting for a slot)",
                            px_quote_str(&qt, tenant), c->max_queued, (long long)n);
    case PX_QUOTA_PER_MINUTE: break;
    }
    return px_error_set(err, PX_E_EXHAUSTED,
                        "tenant '%s': quota of %d executions per minute reached "
                        "(--tenant-max-per-minute; the next one fits in %.1f s)",
                        px_quote_str(&qt, tenant), c->max_per_minute, (double)n / 1000.0);
}

/* Checks `tenant`'s quotas for one more job and, if it fits, takes a slot
 * (and a token). Records finished without px_record_finish here (another
 * node's) leave the entry first (lock order quota -> record -> job). */
static int quota_reserve(px_quota *q, const char *tenant, px_error *err) {
    pthread_mutex_lock(&q->mu);
    quota_sweep_locked(q);
    quota_tenant *t = quota_find_locked(q, tenant, err);
    if (!t) {
        pthread_mutex_unlock(&q->mu);
        return -1;
    }
    size_t pending = 0;
    for (size_t i = 0; i < t->n;) {
        px_record *r = t->live[i];
        px_status st = r ? record_status(r) : PX_STATUS_PENDING;
        if (r && px_status_terminal(st)) {
            px_record_ref(r);
            quota_drop_locked(t, r); /* moves the last slot into i */
            px_record_unref(r);
            continue;
        }
        pending += st == PX_STATUS_PENDING;
        i++;
    }
    const px_quota_config *c = &q->cfg;
    int rc = 0;
    if (c->max_concurrent > 0 && t->n >= (size_t)c->max_concurrent) {
        rc = px_quota_refuse(err, c, PX_QUOTA_CONCURRENT, tenant, (int64_t)t->n);
    } else if (c->max_queued > 0 && pending >= (size_t)c->max_queued) {
        rc = px_quota_refuse(err, c, PX_QUOTA_QUEUED, tenant, (int64_t)pending);
    } else if (c->max_per_minute > 0) {
        quota_refill_locked(q, t, px_now_mono_ms());
        if (t->tokens < 1.0)
            rc = px_quota_refuse(err, c, PX_QUOTA_PER_MINUTE, tenant,
                                 (int64_t)((1.0 - t->tokens) * 60000.0 / c->max_per_minute));
        else
            t->tokens -= 1.0;
    }
    if (rc == 0 && t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 8;
        px_record **live = realloc(t->live, cap * sizeof *live);
        if (!live) {
            rc = px_error_set(err, PX_E_INTERNAL, "store: out of memory");
        } else {
            t->live = live;
            t->cap = cap;
        }
    }
    if (rc == 0)
        t->live[t->n++] = NULL; /* the slot of this admission */
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* Ends an admission quota_reserve let through: its slot holds `r` (a new
 * reference) from now on, until `r` finishes, or, with `r` NULL (refused,
 * or an existing record found by its request_id), is given back with its
 * token. */
static void quota_commit(px_quota *q, const char *tenant, px_record *r) {
    pthread_mutex_lock(&q->mu);
    quota_tenant *t = quota_lookup_locked(q, tenant);
    for (size_t i = 0; t && i < t->n; i++) {
        if (t->live[i])
            continue;
        if (r) {
            px_record_ref(r);
            t->live[i] = r;
            atomic_store(&r->quota, q);
            /* It may have finished already (before r->quota was set, so its
             * px_record_finish released nothing): whoever takes r->quota
             * back drops the slot, this call or that finish's release. */
            if (px_status_terminal(record_status(r)) && atomic_exchange(&r->quota, NULL) == q)
                quota_drop_locked(t, r);
        } else {
            t->live[i] = t->live[--t->n];
            if (q->cfg.max_per_minute > 0 && t->tokens + 1.0 <= q->cfg.max_per_minute)
                t->tokens += 1.0;
        }
        break;
    }
    pthread_mutex_unlock(&q->mu);
}

/* ---- the store ---- */

void px_store_free(px_store *s) {
    if (!s)
        return;
    quota_free(s->quota);
    s->quota = NULL;
    s->ops->free(s);
}

/* The request_id key within `tenant`: tenants never share keys. NULL (with
 * `err`) out of memory; "" stays "". */
static char *scoped_key(const char *tenant, const char *request_id, px_error *err) {
    char *key = NULL;
    int rc = tenant && tenant[0] && request_id && request_id[0]
                 ? asprintf(&key, "%s\x1f%s", tenant, request_id)
                 : asprintf(&key, "%s", request_id ? request_id : "");
    if (rc < 0) {
        px_error_set(err, PX_E_INTERNAL, "store: out of memory");
        return NULL;
    }
    return key;
}

/* The record an earlier request with `key` and `digest` made, when quota
 * refused this one: the store's create finds it; a record it makes instead
 * (there was none) is taken back at once and `err` (the quota's) stays.
 * Another digest is PX_E_EXISTS, as without quotas. */
static px_record *repeated(px_store *s, const char *tenant, const char *key, const uint8_t *digest,
                           px_error *err) {
    bool found = false;
    px_error cerr = PX_ERROR_INIT;
    px_record *r = s->ops->create(s, tenant, key, digest, &found, &cerr);
    if (!r && cerr.code == PX_E_EXISTS)
        *err = cerr;
    if (!r || found)
        return r;
    s->ops->remove(s, r);
    px_record_unref(r);
    return NULL;
}

px_record *px_store_create(px_store *s, const char *request_id, const uint8_t *digest,
                           bool *existed, px_error *err) {
    if (existed)
        *existed = false;
    return s->ops->create(s, "", request_id, digest, existed, err);
}

px_record *px_store_admit(px_store *s, const char *request_id, const uint8_t *digest,
                          px_job_spec *spec, const char *origin, bool *existed, px_error *err) {
    bool found = false;
    char tenant[PX_TENANT_MAX];
    snprintf(tenant, sizeof tenant, "%s", spec->tenant);
    _cleanup_free_ char *key = scoped_key(tenant, request_id, err);
    if (!key) {
        px_job_spec_free(spec);
        return NULL;
    }
    if (s->quota && quota_reserve(s->quota, tenant, err) < 0) {
        px_job_spec_free(spec);
        /* A retry of an admitted request still finds its execution. */
        px_record *r = key[0] ? repeated(s, tenant, key, digest, err) : NULL;
        if (r && existed)
            *existed = true;
        return r;
    }
    px_record *r = s->ops->admit(s, key, digest, spec, origin, &found, err);
    if (s->quota)
        quota_commit(s->quota, tenant, found ? NULL : r);
    if (existed)
        *existed = found;
    return r;
}

int px_store_ping(px_store *s, px_error *err) {
    return s->ops->ping ? s->ops->ping(s, err) : 0;
}

void px_store_runner_ready(px_store *s, bool ready) {
    if (s->ops->runner_ready)
        s->ops->runner_ready(s, ready);
}

void px_store_drain(px_store *s) {
    if (s->ops->drain)
        s->ops->drain(s);
}

px_record *px_store_get(px_store *s, const char *id, px_error *err) {
    return s->ops->get(s, id, err);
}

px_record *px_store_get_as(px_store *s, const char *tenant, const char *id, px_error *err) {
    px_record *r = s->ops->get(s, id, err);
    if (r && strcmp(px_record_tenant(r), tenant ? tenant : "") != 0) {
        px_record_unref(r);
        /* The same words as for an id nobody has: nothing leaks. */
        px_error_set(err, PX_E_NOT_FOUND, "execution '%s' not found", id);
        return NULL;
    }
    return r;
}

int px_store_view_as(px_store *s, const char *tenant, const char *id, bool with_output,
                     px_record_view *view, px_error *err) {
    memset(view, 0, sizeof *view);
    if (s->ops->view) {
        snprintf(view->id, sizeof view->id, "%s", id);
        return s->ops->view(s, tenant ? tenant : "", id, with_output, view, err);
    }
    px_record *r = px_store_get_as(s, tenant, id, err);
    if (!r)
        return -1;
    int rc = px_record_snapshot(r, with_output, view, err);
    px_record_unref(r);
    return rc;
}

void px_store_remove(px_store *s, px_record *r) {
    s->ops->remove(s, r);
}

size_t px_store_count(px_store *s) {
    return s->ops->count(s);
}

int px_store_list(px_store *s, const char *tenant, px_status status, size_t page_size,
                  const char *page_token, px_store_page *page, px_error *err) {
    memset(page, 0, sizeof *page);
    if (page_size < 1 || page_size > PX_STORE_LIST_MAX)
        return px_error_set(err, PX_E_INVALID, "page_size: %zu is not in 1..%d", page_size,
                            PX_STORE_LIST_MAX);
    return s->ops->list(s, tenant ? tenant : "", status, page_size, page_token, page, err);
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
    r->tenant = NULL;
    atomic_init(&r->quota, NULL);
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
    free(r->tenant);
    r->tenant = NULL;
    r->ops->destroy(r);
}

const char *px_record_id(const px_record *r) {
    return r->id;
}

const char *px_record_tenant(const px_record *r) {
    return r->tenant ? r->tenant : "";
}

int px_record_set_tenant(px_record *r, const char *tenant) {
    free(r->tenant);
    r->tenant = NULL;
    if (tenant && tenant[0] && !(r->tenant = strdup(tenant)))
        return -1;
    return 0;
}

void px_record_notify(px_record *r) {
    pthread_mutex_lock(&r->watch_mu);
    for (px_watch *w = r->watchers; w; w = w->next)
        w->fn(w->ud, r);
    pthread_mutex_unlock(&r->watch_mu);
}

void px_record_notify_readers(px_record *r) {
    pthread_mutex_lock(&r->watch_mu);
    for (px_watch *w = r->watchers; w; w = w->next)
        if (w->kind == PX_WATCH_READER)
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
    if (!r->ops->finish(r, outcome))
        return false;
    px_quota *q = atomic_exchange(&r->quota, NULL);
    if (q)
        quota_release(q, r);
    return true;
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
    return px_record_watch_live(r, kind, fn, ud, NULL, err);
}

px_watch *px_record_watch_live(px_record *r, px_watch_kind kind, px_watch_fn fn, void *ud,
                               bool *live, px_error *err) {
    if (live)
        *live = false;
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
    int seen = r->n_watchers == 0 && r->ops->watching ? r->ops->watching(r, true, err) : 0;
    if (seen < 0) {
        pthread_mutex_unlock(&r->watch_mu);
        free(w);
        return NULL;
    }
    if (live)
        *live = seen == 1;
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
