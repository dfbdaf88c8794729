/*
 * The in-memory store: execution records of one process (see store.h for
 * the contract, memory.h for its constructor).
 *
 * DESIGN
 *
 * States of a record, changed only under its data lock (r->mu):
 *
 *     PENDING --set_running--> RUNNING --finish--> COMPLETED | FAILED | KILLED
 *        \-----------------------finish----------------^
 *
 * px_record_finish is the only way into a terminal state and succeeds once.
 * The terminal time is also published in r->finished_at (atomic), so the
 * store can decide expiry without taking record locks.
 *
 * A record created with a request_id keeps the digest of its request's
 * content; the same request_id with another digest is PX_E_EXISTS.
 *
 * The store (store->mu) owns the membership links: a list of all retained
 * records plus two chained hash tables, id -> record and request_id ->
 * record; it holds one reference per retained record. Expiry is lazy:
 * px_store_get checks the record it found, px_store_count sweeps every
 * record, and px_store_create sweeps when the store is full or when the
 * last sweep is older than SWEEP_INTERVAL_MS (bounding the memory held by
 * expired records without scanning on every call), or when the retained
 * output passed max_retained_bytes: then the oldest terminal records are
 * dropped early until it fits (each record publishes the bytes it holds,
 * output and Eval report, in r->held_bytes, so this needs no record lock).
 *
 * The output log is one growing buffer (offset == position) plus an index
 * of segments (offset, length, stream); consecutive chunks of the same
 * stream are merged into one segment. Reads copy from a single segment.
 *
 * Watchers are the generic ones of store.c: this file calls
 * px_record_notify() after each change, with no record lock held.
 *
 * memory_record.c holds a record's side (lifecycle, log, reads); this file
 * the store's.
 *
 * Locks: store->mu is never held while taking a record lock and record
 * functions never take store->mu. Per record: (the watcher lock) ->
 * (caller's locks) -> mu. The job's kill op is called with no record lock
 * held.
 */
#include "server/store/memory.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/clock.h"
#include "server/base/id.h"
#include "server/base/quote.h"
#include "server/store/memory_internal.h"
#include "server/store/store_impl.h"

#define SWEEP_INTERVAL_MS 1000
#define MIN_BUCKETS 64

typedef struct htab {
    mem_record **buckets;
    size_t n_buckets; /* power of two, or 0 before the first insert */
    size_t count;
} htab;

struct mem_store {
    px_store base; /* first: the interface */
    px_store_config config;
    pthread_mutex_t mu;
    mem_record *all; /* retained records, newest first */
    size_t count;
    uint64_t last_seq; /* the seq of the newest record created */
    htab by_id;
    htab by_request;
    int64_t next_sweep_mono_ms;
};

/* ---- hash tables ---- */

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

typedef enum key_kind { KEY_ID, KEY_REQUEST } key_kind;

static const char *key_of(const mem_record *r, key_kind k) {
    return k == KEY_ID ? r->base.id : r->request_id;
}

static mem_record **next_of(mem_record *r, key_kind k) {
    return k == KEY_ID ? &r->id_next : &r->req_next;
}

static mem_record *htab_find(const htab *t, key_kind k, const char *key) {
    if (t->n_buckets == 0)
        return NULL;
    for (mem_record *r = t->buckets[hash_str(key) & (t->n_buckets - 1)]; r; r = *next_of(r, k)) {
        if (strcmp(key_of(r, k), key) == 0)
            return r;
    }
    return NULL;
}

/* Grows to keep the load factor at most 1. Returns -1 if out of memory. */
static int htab_reserve(htab *t, key_kind k) {
    if (t->count < t->n_buckets)
        return 0;
    size_t n = t->n_buckets ? t->n_buckets * 2 : MIN_BUCKETS;
    mem_record **b = calloc(n, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < t->n_buckets; i++) {
        for (mem_record *r = t->buckets[i], *next; r; r = next) {
            next = *next_of(r, k);
            mem_record **head = &b[hash_str(key_of(r, k)) & (n - 1)];
            *next_of(r, k) = *head;
            *head = r;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->n_buckets = n;
    return 0;
}

/* Call htab_reserve first. */
static void htab_insert(htab *t, key_kind k, mem_record *r) {
    mem_record **head = &t->buckets[hash_str(key_of(r, k)) & (t->n_buckets - 1)];
    *next_of(r, k) = *head;
    *head = r;
    t->count++;
}

static void htab_remove(htab *t, key_kind k, mem_record *r) {
    if (t->n_buckets == 0)
        return;
    for (mem_record **p = &t->buckets[hash_str(key_of(r, k)) & (t->n_buckets - 1)]; *p;
         p = next_of(*p, k)) {
        if (*p == r) {
            *p = *next_of(r, k);
            *next_of(r, k) = NULL;
            t->count--;
            return;
        }
    }
}

/* ---- the store ---- */

static const px_store_ops mem_store_ops;

px_store *px_memory_store_new(const px_store_config *config, px_error *err) {
    if (!config || config->retention_ms < 0 || config->max_records == 0 ||
        config->max_readers == 0) {
        px_error_set(err, PX_E_INVALID,
                     "store: retention must be >= 0 and max_records, max_readers >= 1");
        return NULL;
    }
    mem_store *s = calloc(1, sizeof *s);
    if (!s) {
        px_error_set(err, PX_E_INTERNAL, "store: out of memory");
        return NULL;
    }
    s->base.ops = &mem_store_ops;
    s->config = *config;
    pthread_mutex_init(&s->mu, NULL);
    return &s->base;
}

/* Takes `r` out of the store; the store's reference moves to *dropped (a
 * list through all_next) for the caller to release after unlocking.
 * Caller holds s->mu. */
static void detach_locked(mem_store *s, mem_record *r, mem_record **dropped) {
    if (r->all_prev)
        r->all_prev->all_next = r->all_next;
    else
        s->all = r->all_next;
    if (r->all_next)
        r->all_next->all_prev = r->all_prev;
    htab_remove(&s->by_id, KEY_ID, r);
    if (r->request_id)
        htab_remove(&s->by_request, KEY_REQUEST, r);
    s->count--;
    r->store = NULL;
    r->all_prev = NULL;
    r->all_next = *dropped;
    *dropped = r;
}

static void release_dropped(mem_record *dropped) {
    while (dropped) {
        mem_record *r = dropped;
        dropped = r->all_next;
        r->all_next = NULL;
        px_record_unref(&r->base);
    }
}

/* The bytes (output and Eval reports) the retained records hold. Caller
 * holds s->mu. */
static uint64_t retained_bytes(mem_store *s) {
    uint64_t total = 0;
    for (mem_record *r = s->all; r; r = r->all_next)
        total += atomic_load(&r->held_bytes);
    return total;
}

static bool expired(const mem_store *s, mem_record *r, int64_t now_unix_ms) {
    int64_t fin = atomic_load(&r->finished_at);
    return fin != 0 && now_unix_ms - fin >= s->config.retention_ms;
}

/* Drops every expired record. Caller holds s->mu. */
static void sweep_locked(mem_store *s, mem_record **dropped) {
    int64_t now = px_now_unix_ms();
    for (mem_record *r = s->all, *next; r; r = next) {
        next = r->all_next;
        if (expired(s, r, now))
            detach_locked(s, r, dropped);
    }
    int64_t interval = s->config.retention_ms < SWEEP_INTERVAL_MS ? s->config.retention_ms
                                                                  : SWEEP_INTERVAL_MS;
    s->next_sweep_mono_ms = px_now_mono_ms() + interval;
}

/* Drops the oldest terminal records until the retained output fits the
 * budget (or only running records are left). Caller holds s->mu. */
static void trim_locked(mem_store *s, mem_record **dropped) {
    uint64_t total = retained_bytes(s);
    if (total <= s->config.max_retained_bytes)
        return;
    mem_record *tail = s->all;
    while (tail && tail->all_next)
        tail = tail->all_next;
    for (mem_record *r = tail, *prev; r && total > s->config.max_retained_bytes; r = prev) {
        prev = r->all_prev;
        if (atomic_load(&r->finished_at) != 0) {
            total -= atomic_load(&r->held_bytes);
            detach_locked(s, r, dropped);
        }
    }
}

static void mem_store_free(px_store *base) {
    mem_store *s = (mem_store *)base;
    mem_record *dropped = NULL;
    pthread_mutex_lock(&s->mu);
    while (s->all)
        detach_locked(s, s->all, &dropped);
    pthread_mutex_unlock(&s->mu);
    release_dropped(dropped);
    free(s->by_id.buckets);
    free(s->by_request.buckets);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Whether `r` was created by a request with this content digest. */
static bool same_digest(const mem_record *r, const uint8_t *digest) {
    static const uint8_t zero[PX_SHA256_LEN];
    return memcmp(r->digest, digest ? digest : zero, PX_SHA256_LEN) == 0;
}

static px_record *mem_store_create(px_store *base, const char *tenant, const char *request_id,
                                   const uint8_t *digest, bool *existed, px_error *err) {
    mem_store *s = (mem_store *)base;
    if (existed)
        *existed = false;
    bool with_request = request_id && request_id[0];
    mem_record *dropped = NULL;
    mem_record *r = NULL;

    pthread_mutex_lock(&s->mu);
    if (s->count >= s->config.max_records || px_now_mono_ms() >= s->next_sweep_mono_ms)
        sweep_locked(s, &dropped);
    if (s->config.max_retained_bytes > 0)
        trim_locked(s, &dropped);

    if (with_request) {
        mem_record *old = htab_find(&s->by_request, KEY_REQUEST, request_id);
        if (old && expired(s, old, px_now_unix_ms())) {
            detach_locked(s, old, &dropped);
            old = NULL;
        }
        if (old && !same_digest(old, digest)) {
            /* Not even the existence of the other execution's id leaks. */
            px_error_set(err, PX_E_EXISTS,
                         "request_id: already used by a different request (the content differs)");
            goto out;
        }
        if (old) {
            px_record_ref(&old->base);
            if (existed)
                *existed = true;
            r = old;
            goto out;
        }
    }

    if (s->count >= s->config.max_records) {
        px_error_set(err, PX_E_EXHAUSTED, "store: %zu executions retained (limit %zu)", s->count,
                     s->config.max_records);
        goto out;
    }
    if (htab_reserve(&s->by_id, KEY_ID) < 0 ||
        (with_request && htab_reserve(&s->by_request, KEY_REQUEST) < 0)) {
        px_error_set(err, PX_E_INTERNAL, "store: out of memory");
        goto out;
    }
    char id[PX_ID_LEN + 1];
    do {
        if (px_id_new(id, err) < 0) {
            px_error_wrap(err, "store: new execution id");
            goto out;
        }
    } while (htab_find(&s->by_id, KEY_ID, id));

    r = px_mem_record_new(id, tenant, with_request ? request_id : NULL, digest,
                          s->config.max_readers);
    if (!r) {
        px_error_set(err, PX_E_INTERNAL, "store: out of memory");
        goto out;
    }
    r->store = s;
    r->seq = ++s->last_seq;
    r->all_next = s->all;
    if (s->all)
        s->all->all_prev = r;
    s->all = r;
    s->count++;
    htab_insert(&s->by_id, KEY_ID, r);
    if (with_request)
        htab_insert(&s->by_request, KEY_REQUEST, r);
    px_record_ref(&r->base); /* the store's reference */

out:
    pthread_mutex_unlock(&s->mu);
    release_dropped(dropped);
    return r ? &r->base : NULL;
}

static void mem_store_remove(px_store *base, px_record *rec);

/* The job goes to the runner at once; a refusal takes the record back. */
static px_record *mem_store_admit(px_store *base, const char *request_id, const uint8_t *digest,
                                  px_job_spec *spec, const char *origin, bool *existed,
                                  px_error *err) {
    mem_store *s = (mem_store *)base;
    px_record *r = mem_store_create(base, spec->tenant, request_id, digest, existed, err);
    if (!r || *existed) {
        px_job_spec_free(spec);
        return r;
    }
    const px_job_runner *run = &s->config.runner;
    if (!run->ops) {
        px_job_spec_free(spec);
        px_error_set(err, PX_E_UNAVAILABLE, "this store runs no jobs");
    } else if (run->ops->submit(run->ctx, r, spec, origin, err) == 0) {
        return r;
    }
    mem_store_remove(base, r);
    px_record_unref(r);
    return NULL;
}

static px_record *mem_store_get(px_store *base, const char *id, px_error *err) {
    mem_store *s = (mem_store *)base;
    mem_record *dropped = NULL;
    pthread_mutex_lock(&s->mu);
    mem_record *r = htab_find(&s->by_id, KEY_ID, id);
    if (r && expired(s, r, px_now_unix_ms())) {
        detach_locked(s, r, &dropped);
        r = NULL;
    }
    if (r)
        px_record_ref(&r->base);
    pthread_mutex_unlock(&s->mu);
    release_dropped(dropped);
    if (!r)
        px_error_set(err, PX_E_NOT_FOUND, "execution '%s' not found", id);
    return r ? &r->base : NULL;
}

static void mem_store_remove(px_store *base, px_record *rec) {
    mem_store *s = (mem_store *)base;
    mem_record *r = (mem_record *)rec;
    mem_record *dropped = NULL;
    pthread_mutex_lock(&s->mu);
    if (r->store == s)
        detach_locked(s, r, &dropped);
    pthread_mutex_unlock(&s->mu);
    release_dropped(dropped);
}

/* Page tokens are "s" followed by the decimal seq of the last record of
 * the page before; the next page starts below it. */
static int parse_token(const char *token, uint64_t *below, px_error *err) {
    *below = UINT64_MAX;
    if (!token || !token[0])
        return 0;
    const char *p = token + 1;
    uint64_t v = 0;
    px_quoted q;
    if (token[0] != 's' || !*p || strlen(p) > 20)
        goto bad;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            goto bad;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *below = v;
    return 0;
bad:
    return px_error_set(err, PX_E_INVALID, "page_token: '%s' is not a token of this server",
                        px_quote_str(&q, token));
}

/* Whether `r` is one `mem_store_list` shows. */
static bool listed(const mem_record *r, const char *tenant, px_status status) {
    return (status == PX_STATUS_UNSPECIFIED || atomic_load(&r->pub_status) == (int)status) &&
           strcmp(px_record_tenant(&r->base), tenant) == 0;
}

static int mem_store_list(px_store *base, const char *tenant, px_status status, size_t page_size,
                          const char *page_token, px_store_page *page, px_error *err) {
    mem_store *s = (mem_store *)base;
    uint64_t below;
    if (parse_token(page_token, &below, err) < 0)
        return -1;
    page->records = calloc(page_size, sizeof *page->records);
    if (!page->records)
        return px_error_set(err, PX_E_INTERNAL, "store: list: out of memory");

    mem_record *dropped = NULL;
    pthread_mutex_lock(&s->mu);
    sweep_locked(s, &dropped);
    mem_record *r = s->all;
    while (r && r->seq >= below)
        r = r->all_next;
    for (; r && page->n < page_size; r = r->all_next) {
        if (listed(r, tenant, status)) {
            px_record_ref(&r->base);
            page->records[page->n++] = &r->base;
        }
    }
    /* A next page exists if another matching record follows. */
    while (r && !listed(r, tenant, status))
        r = r->all_next;
    if (r && page->n > 0)
        snprintf(page->next_token, sizeof page->next_token, "s%" PRIu64,
                 ((mem_record *)page->records[page->n - 1])->seq);
    pthread_mutex_unlock(&s->mu);
    release_dropped(dropped);
    return 0;
}

static size_t mem_store_count(px_store *base) {
    mem_store *s = (mem_store *)base;
    mem_record *dropped = NULL;
    pthread_mutex_lock(&s->mu);
    sweep_locked(s, &dropped);
    size_t n = s->count;
    pthread_mutex_unlock(&s->mu);
    release_dropped(dropped);
    return n;
}

/* ---- the interface ---- */

static const px_store_ops mem_store_ops = {
    .free = mem_store_free,
    .create = mem_store_create,
    .admit = mem_store_admit,
    .get = mem_store_get,
    .remove = mem_store_remove,
    .count = mem_store_count,
    .list = mem_store_list,
};
