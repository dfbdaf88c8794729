/*
 * For implementations of the store interface (store.h) only: the vtables
 * and the common part of stores and records. The RPC layer never includes
 * this header.
 *
 * An implementation embeds `px_store` / `px_record` as the FIRST member of
 * its own structs and casts back in its ops. The common part owns a record's
 * reference count, id and watchers: an implementation calls
 * px_record_notify() after every change it makes or learns of (output,
 * RUNNING, terminal), with none of its own locks held.
 */
#ifndef PYEXEC_STORE_STORE_IMPL_H
#define PYEXEC_STORE_STORE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "server/store/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Each op implements the store.h function of the same name, after the
 * checks store.c makes for every implementation (NULL store, page_size and
 * offset ranges, PX_KILL_NONE, empty chunks). */
typedef struct px_store_ops {
    void (*free)(px_store *s);
    /* `tenant` ("" or a name) is the new record's (px_record_set_tenant);
     * the request_id key is already scoped to it (store.c). */
    px_record *(*create)(px_store *s, const char *tenant, const char *request_id,
                         const uint8_t *digest, bool *existed, px_error *err);
    /* The new record's tenant is spec->tenant. */
    px_record *(*admit)(px_store *s, const char *request_id, const uint8_t *digest,
                        px_job_spec *spec, const char *origin, bool *existed, px_error *err);
    px_record *(*get)(px_store *s, const char *id, px_error *err);
    /* Optional: px_store_view_as without a record; `view` is zeroed and its
     * id filled before the call; `tenant` is never NULL. Absent: get, then
     * snapshot. */
    int (*view)(px_store *s, const char *tenant, const char *id, bool with_output,
                px_record_view *view, px_error *err);
    void (*drain)(px_store *s);                    /* optional */
    int (*ping)(px_store *s, px_error *err);       /* optional: absent means always 0 */
    void (*runner_ready)(px_store *s, bool ready); /* optional */
    void (*remove)(px_store *s, px_record *r);
    size_t (*count)(px_store *s);
    /* Only the records of `tenant` (px_record_tenant). */
    int (*list)(px_store *s, const char *tenant, px_status status, size_t page_size,
                const char *page_token, px_store_page *page, px_error *err);
    /* Optional: the implementation enforces the tenants' quotas itself (in
     * its admit, e.g. cluster-wide, refusing with px_quota_refuse); store.c
     * then counts nothing. Absent: store.c counts them in this process. */
    int (*set_quotas)(px_store *s, const px_quota_config *quotas, px_error *err);
} px_store_ops;

typedef enum px_quota_kind {
    PX_QUOTA_CONCURRENT = 1, /* `n`: the tenant's executions pending or running */
    PX_QUOTA_QUEUED = 2,     /* `n`: those waiting for a slot */
    PX_QUOTA_PER_MINUTE = 3, /* `n`: ms until the next admission fits */
} px_quota_kind;

/* Sets `err` to the refusal of `tenant`'s quota `kind` (PX_E_EXHAUSTED,
 * naming the quota and its flag): the same words from every
 * implementation. Returns -1. */
int px_quota_refuse(px_error *err, const px_quota_config *quotas, px_quota_kind kind,
                    const char *tenant, int64_t n);

typedef struct px_record_ops {
    /* The last reference is gone and the watchers are freed: free the rest. */
    void (*destroy)(px_record *r);
    void (*attach_job)(px_record *r, const px_record_job_ops *ops, void *ctx, void *job);
    bool (*kill)(px_record *r, px_kill_cause cause);
    void (*set_running)(px_record *r, int64_t started_at_ms);
    void (*append)(px_record *r, px_stream stream, const uint8_t *data, size_t len);
    bool (*finish)(px_record *r, const px_outcome *outcome);
    /* `view` is zeroed and its id filled before the call. */
    int (*snapshot)(px_record *r, bool with_output, px_record_view *view, px_error *err);
    /* `chunk` is zeroed before the call. */
    int (*read)(px_record *r, int64_t offset, size_t max_len, px_log_chunk *chunk, px_error *err);
    /* Optional: the record got its first watcher (`on`; a failure refuses
     * the watcher) or lost its last one. Called under the watcher lock.
     * With `on`, returns 1 if it read, at the registration itself, that
     * the record is not terminal (its end will reach the watchers), else 0;
     * -1 on failure. */
    int (*watching)(px_record *r, bool on, px_error *err);
} px_record_ops;

typedef struct px_quota px_quota;

struct px_store {
    const px_store_ops *ops;
    px_quota *quota; /* per-tenant quotas (store.c); NULL: none */
};

typedef struct px_watch px_watch;

struct px_record {
    const px_record_ops *ops;
    atomic_uint refs;
    char id[48];
    size_t max_readers;
    pthread_mutex_t watch_mu; /* the watcher list; held while callbacks run */
    px_watch *watchers;
    size_t n_readers;  /* watchers of kind PX_WATCH_READER */
    size_t n_watchers; /* all watchers */
    char *tenant;      /* immutable once published; NULL: "" */
    /* The quota that counts this record until it finishes (store.c);
     * NULL: none, or released. */
    _Atomic(px_quota *) quota;
};

/* Initialises the common part: one reference, `id`, no watchers. */
void px_record_init(px_record *r, const px_record_ops *ops, const char *id, size_t max_readers);

/* Sets the record's tenant (copied; "" or NULL: none), before the record
 * is visible to any other thread. Returns 0, or -1 out of memory. */
int px_record_set_tenant(px_record *r, const char *tenant);

/* Runs every watcher of `r` (see store.h for what callbacks may do). Call
 * with none of the implementation's record locks held. */
void px_record_notify(px_record *r);

/* Like px_record_notify, for the readers only: after a change no control
 * watcher waits for (output), so waiting calls are not woken for nothing. */
void px_record_notify_readers(px_record *r);

#ifdef __cplusplus
}
#endif

#endif
