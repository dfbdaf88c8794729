/*
 * The store interface: execution records and their output logs, whatever
 * keeps them. The RPC layer uses only this header and does not know which
 * implementation it runs on: the in-memory store (memory.h, one process, the
 * default) or the shared store on Redis (redis/). Implementations plug in
 * through store_impl.h; the behaviour below is the contract of both.
 *
 * A record moves PENDING -> RUNNING -> {COMPLETED, FAILED, KILLED}; the
 * terminal transition happens exactly once, under the record's lock, however
 * exit, timeout, Kill and cancellation race (px_record_finish returns true to
 * the one caller that made it). Each record has an append-only output log:
 * the stdout and stderr chunks in arrival order, addressed by absolute byte
 * offsets that count both streams together.
 *
 * Records are reference counted. The store holds one reference while a
 * record is retained; a terminal record is dropped `retention_ms` after its
 * finished_at (lazily, on the next store call; a dropped id is NOT_FOUND).
 *
 * Watchers: px_record_watch() registers a callback run after every change
 * (output appended, RUNNING, terminal). A watcher is a reader (a
 * StreamOutput call: at most max_readers per record) or a control watcher (a
 * call waiting for the end: sync Execute, Kill), which is never refused for
 * want of a slot, so readers can never lock the control calls out, and is
 * not called for output (only for the other changes; on Redis, only for
 * the end).
 * Callbacks run on the thread that made the change (or that learned of a
 * change made elsewhere), with no record data lock held but with the record's watcher
 * lock held: a callback may read the record (snapshot, read) but must not
 * call px_record_watch/unwatch on the same record, nor change it
 * (set_running, append, finish, or a kill that may finish it synchronously):
 * that would deadlock on the watcher lock. After px_record_unwatch()
 * returns, the callback is not running and never runs again. Lock order:
 * watcher lock -> caller's locks -> record data lock; so never call
 * px_record_unwatch() while holding a lock your callback takes.
 *
 * Tenants: every record belongs to the tenant of the request that made it
 * (px_job_spec.tenant; "" when the server has none). px_store_get_as and
 * px_store_list see only the caller's tenant's records, and a request_id is
 * a key within its tenant: another tenant's id or key is as unknown as one
 * that never existed. Per-tenant quotas (px_store_set_quotas) are checked by
 * px_store_admit.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef PYEXEC_STORE_STORE_H
#define PYEXEC_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/base/error.h"
#include "server/base/sha256.h"
#include "server/model/job.h"
#include "server/store/runner.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct px_store px_store;
typedef struct px_record px_record;
typedef struct px_watch px_watch;

/* Settings of a store; max_records and max_retained_bytes bound the memory
 * of the in-memory store. */
typedef struct px_store_config {
    int64_t retention_ms; /* terminal records kept this long after finished_at */
    size_t max_records;   /* retained records of any state; beyond: PX_E_EXHAUSTED */
    size_t max_readers;   /* reader watchers per record; beyond: PX_E_EXHAUSTED */
    /* Bytes of output and Eval reports the retained records may hold
     * together; 0: no budget.
     * Checked whenever a record is created: if the budget is exceeded, the
     * oldest terminal records are dropped before their retention ends until
     * it fits (running ones are never dropped: their output is bounded by
     * admission and the output cap). */
    uint64_t max_retained_bytes;
    /* Where admitted jobs go (px_store_admit). */
    px_job_runner runner;
} px_store_config;

/* Drops the store's references to all records and frees the store (made by
 * an implementation's constructor, e.g. px_memory_store_new). Records still
 * referenced elsewhere stay valid until unref'd. NULL-safe. */
void px_store_free(px_store *store);

/* Creates a PENDING record with a fresh id and returns a new reference.
 * If `request_id` is non-empty, `digest` (PX_SHA256_LEN bytes; NULL counts
 * as all zeros) identifies the request's content and is kept with the
 * record: if a retained record was created with the same request_id and the
 * same digest, returns a reference to that record instead and sets
 * *existed = true (else false); with another digest, fails with
 * PX_E_EXISTS (a reused key never hands out another request's record).
 * PX_E_EXHAUSTED at max_records. */
px_record *px_store_create(px_store *store, const char *request_id, const uint8_t *digest,
                           bool *existed, px_error *err);

/* Admits a job: creates its PENDING record, of tenant spec->tenant, as
 * px_store_create does (the same request_id and digest of the same tenant
 * find the existing record: *existed = true, and `spec` is freed) and hands
 * `spec` (ownership taken in all cases) on to be run; `origin` (e.g.
 * "Execute (sync) from ipv4:...") is for logs. Returns a new reference, or
 * NULL with `err` set: a tenant's quota (PX_E_EXHAUSTED naming it),
 * px_store_create's errors, or the runner's refusal (PX_E_EXHAUSTED,
 * PX_E_UNAVAILABLE), after which no record remains. */
px_record *px_store_admit(px_store *store, const char *request_id, const uint8_t *digest,
                          px_job_spec *spec, const char *origin, bool *existed, px_error *err);

/* Stops handing new jobs to the runner (shutdown): jobs already handed on
 * run to their end; jobs not yet taken stay queued for other nodes (Redis)
 * or are refused at admission by the runner itself (in memory). Returns
 * when no more will be handed on. Idempotent. */
void px_store_drain(px_store *store);

/* Whether this node's runner can run jobs now (its back-end answers; the
 * health probe tells). While not, a shared store hands it no new jobs, so
 * other nodes take them, and resumes when told it is ready again; the
 * in-memory store ignores it (its executor fails what it cannot run).
 * Ready until told otherwise. */
void px_store_runner_ready(px_store *store, bool ready);

/* Whether the store can serve: 0, or -1 with `err` set (e.g. the Redis
 * store's PX_E_UNAVAILABLE naming the server). The in-memory store always
 * can. May block up to a command timeout. */
int px_store_ping(px_store *store, px_error *err);

/* Returns a new reference to the retained record `id`, or NULL with
 * PX_E_NOT_FOUND. (Id syntax is the caller's to check.) Any tenant's. */
px_record *px_store_get(px_store *store, const char *id, px_error *err);

/* px_store_get for `tenant`: another tenant's record is PX_E_NOT_FOUND with
 * the very message of an unknown id. */
px_record *px_store_get_as(px_store *store, const char *tenant, const char *id, px_error *err);

/* Per-tenant quotas, checked when a job is admitted; 0: no limit. */
typedef struct px_quota_config {
    int max_concurrent; /* a tenant's executions admitted and not finished */
    int max_queued;     /* of those, PENDING (waiting for a slot) */
    int max_per_minute; /* admissions: bursts of this many, then this many a minute */
} px_quota_config;

/* Turns the quotas on (all zero: off). Call once, before the store is
 * used. The memory store counts them in this process; the Redis store in
 * Redis, for the whole cluster (every node refuses the same way). Returns
 * 0, or -1 with `err` (PX_E_INTERNAL out of memory). */
int px_store_set_quotas(px_store *store, const px_quota_config *quotas, px_error *err);

/* Removes a record from the store at once (e.g. its job was never admitted).
 * The caller's reference stays valid. */
void px_store_remove(px_store *store, px_record *record);

/* Number of retained records (after expiring old ones). */
size_t px_store_count(px_store *store);

/* Most records one px_store_list call returns. */
#define PX_STORE_LIST_MAX 1000

/* One page of retained records, newest first. */
typedef struct px_store_page {
    px_record **records; /* new references; release with px_store_page_release */
    size_t n;
    /* Where the next page starts, for px_store_list's `page_token`; empty
     * when this page reached the oldest record. Opaque to callers. */
    char next_token[32];
} px_store_page;

/* Lists `tenant`'s retained records newest first (in creation order): up to
 * `page_size` (1..PX_STORE_LIST_MAX) of them, starting after the record the
 * `page_token` of an earlier page points to ("" or NULL: the newest), and
 * only those whose status is `status` (PX_STATUS_UNSPECIFIED: any). A page
 * token stays valid when records come and go: a record created after the
 * first page never appears in later ones. Returns 0 with `page` filled, or
 * -1 with `err`: PX_E_INVALID for a page_size out of range or a token this
 * store did not make, PX_E_INTERNAL out of memory. */
int px_store_list(px_store *store, const char *tenant, px_status status, size_t page_size,
                  const char *page_token, px_store_page *page, px_error *err);

/* Drops the page's references. NULL-safe; the page may be reused. */
void px_store_page_release(px_store_page *page);

void px_record_ref(px_record *r);
void px_record_unref(px_record *r); /* NULL-safe */

/* Borrowed; valid while the caller holds a reference. */
const char *px_record_id(const px_record *r);

/* The record's tenant ("" when none). Borrowed, like the id. */
const char *px_record_tenant(const px_record *r);

/* ---- the job behind a record, for Kill and cancellation ---- */

typedef struct px_record_job_ops {
    void (*kill)(void *ctx, void *job, px_kill_cause cause);
    void (*unref)(void *job);
} px_record_job_ops;

/* Attaches the running job (the record takes over one reference, released
 * with ops->unref when the record is freed). `ops` must outlive the record.
 * If px_record_kill() was called before, the kill is forwarded now. */
void px_record_attach_job(px_record *r, const px_record_job_ops *ops, void *ctx, void *job);

/* Forwards a kill to the attached job, or remembers it until a job is
 * attached. No effect on a terminal record; the first cause is kept.
 * Returns false if the record was already terminal (nothing to kill). */
bool px_record_kill(px_record *r, px_kill_cause cause);

/* ---- lifecycle, driven by the executor's events ---- */

/* PENDING -> RUNNING with the program's start time. No-op if not PENDING. */
void px_record_set_running(px_record *r, int64_t started_at_ms);

/* Appends one chunk to the output log (copied). Ignored once terminal. */
void px_record_append(px_record *r, px_stream stream, const uint8_t *data, size_t len);

/* The one terminal transition. Returns true if this call made it, false if
 * the record was already terminal (the outcome is then ignored). The record
 * keeps a copy of outcome->py. */
bool px_record_finish(px_record *r, const px_outcome *outcome);

/* ---- reading ---- */

/* A copy of a record's state. `stdout_data`/`stderr_data` are malloc'd
 * (possibly NULL when empty) and owned by the view, as are the strings of
 * outcome.py; release with px_record_view_release. */
typedef struct px_record_view {
    char id[48];
    px_status status;
    px_outcome outcome; /* meaningful when status is terminal; started_at_ms
                                also set while RUNNING */
    int64_t log_len;    /* bytes in the output log */
    uint8_t *stdout_data;
    size_t stdout_len;
    uint8_t *stderr_data;
    size_t stderr_len;
} px_record_view;

/* Fills `view`; with `with_output` the stdout/stderr bodies are copied out
 * of the log, else left NULL/0. Returns 0, or -1 (PX_E_INTERNAL) if out of
 * memory. */
int px_record_snapshot(px_record *r, bool with_output, px_record_view *view, px_error *err);

/* The current state of `tenant`'s execution `id` (px_store_get_as, then
 * px_record_snapshot) in one step: on Redis one read instead of two.
 * Returns 0 with `view` filled (release
 * with px_record_view_release), or -1 with `err` (PX_E_NOT_FOUND as
 * px_store_get_as says it). */
int px_store_view_as(px_store *store, const char *tenant, const char *id, bool with_output,
                     px_record_view *view, px_error *err);

void px_record_view_release(px_record_view *view);

typedef enum px_read_status {
    PX_READ_DATA = 0, /* *chunk filled */
    PX_READ_WAIT = 1, /* nothing at offset yet; the record is not terminal */
    PX_READ_EOF = 2,  /* offset == log end and the record is terminal */
} px_read_status;

typedef struct px_log_chunk {
    px_stream stream;
    int64_t offset; /* absolute offset of data[0] */
    uint8_t *data;  /* malloc'd copy, owned by the caller */
    size_t len;
} px_log_chunk;

/* Reads up to `max_len` bytes at absolute `offset`, from a single chunk of
 * a single stream. Returns a px_read_status, or -1 with `err` set:
 * PX_E_OUT_OF_RANGE if the record is terminal and offset > log end,
 * PX_E_INVALID if offset < 0 or max_len == 0. */
int px_record_read(px_record *r, int64_t offset, size_t max_len, px_log_chunk *chunk,
                   px_error *err);

/* ---- watchers ---- */

typedef void (*px_watch_fn)(void *ud, px_record *r);

typedef enum px_watch_kind {
    PX_WATCH_READER = 0,  /* follows the output: counts against max_readers */
    PX_WATCH_CONTROL = 1, /* waits for the end: never counted, never refused */
} px_watch_kind;

/* Registers `fn`. Returns a handle, or NULL with `err` set: PX_E_EXHAUSTED
 * for a reader when the record has max_readers, PX_E_INTERNAL if out of
 * memory. The callback may fire before this returns on another thread;
 * callers re-check state after registering. */
px_watch *px_record_watch(px_record *r, px_watch_kind kind, px_watch_fn fn, void *ud,
                          px_error *err);

/* px_record_watch, and *live: true when the registration itself read the
 * record as not terminal (on Redis, the first watcher of a record on this
 * node), so its end will reach `fn` and the caller need not re-check the
 * state; false when the caller must re-check, as after px_record_watch. */
px_watch *px_record_watch_live(px_record *r, px_watch_kind kind, px_watch_fn fn, void *ud,
                               bool *live, px_error *err);

/* Unregisters and frees `w`; see the file comment. NULL-safe. */
void px_record_unwatch(px_record *r, px_watch *w);

#ifdef __cplusplus
}
#endif

#endif
