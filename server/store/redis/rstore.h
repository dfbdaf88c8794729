/*
 * The shared store on Redis: execution records, their output logs, the job
 * queue, node leases and request_id idempotency, for many pyexecd nodes at
 * once. The only module that talks to Redis (it owns hiredis).
 *
 * Every multi-key step is one Lua script, so it is atomic across nodes:
 *   create      PENDING record + queue entry (+ request_id), or the record
 *               an earlier call with the same request_id created
 *   claim       a worker takes the next queued job: the record gets its
 *               owner and fencing token, the packed job is handed over
 *   set_running / append / finish
 *               the owner's writes, refused (PX_RSTORE_FENCED) unless the
 *               record still carries the owner's token and the owner's lease
 *               still holds it: a node that lost its lease cannot write
 *   kill        a queued job ends KILLED at once; a claimed one gets its kill
 *               flag and its owner is told
 *   sweep       any node ends the executions of nodes whose lease expired
 *               FAILED/LOST and puts their unclaimed jobs back in the queue
 * A job is never handed to a second worker once claimed (at most once).
 *
 * Output: chunks are addressed by absolute offsets over stdout+stderr, the
 * same on every node; reads have the memory store's semantics
 * (px_record_read).
 *
 * Errors: PX_E_UNAVAILABLE while Redis is unreachable (the store reconnects
 * with backoff by itself), PX_E_TIMEOUT if a reply is late, PX_E_NOT_FOUND
 * for an unknown or expired id, PX_E_INTERNAL otherwise.
 *
 * Connections: at most config.max_connections per store, shared by the
 * calling threads (a call waits for a free one); a blocking claim holds one
 * for its duration.
 *
 * The process must ignore SIGPIPE (pyexecd does, in daemon.c): hiredis
 * writes to sockets that Redis may have closed.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef PYEXEC_STORE_REDIS_RSTORE_H
#define PYEXEC_STORE_REDIS_RSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/base/error.h"
#include "server/base/id.h"
#include "server/base/metrics.h"
#include "server/model/job.h"
#include "server/store/redis/target.h"
#include "server/store/store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PX_RSTORE_NAME_MAX 64   /* node names and the namespace */
#define PX_RSTORE_DIGEST_MAX 64 /* request digest */
/* A request_id key: the client's (at most 256 bytes) within its tenant
 * (store.c scopes it: "TENANT\x1fREQUEST_ID"). */
#define PX_RSTORE_REQUEST_ID_MAX (256 + PX_TENANT_MAX)

typedef struct px_rstore px_rstore;

typedef struct px_rstore_config {
    px_redis_target target;
    const char *password;       /* NULL: none; copied */
    const char *ns;             /* key namespace: keys are "px:<ns>:..."; [A-Za-z0-9_.-]{1,64} */
    const char *node;           /* this node's name, [A-Za-z0-9_.-]{1,64}, unique per cluster */
    int64_t lease_ms;           /* node lease; > 0 */
    int64_t retention_ms;       /* terminal records kept this long; > 0 */
    unsigned max_connections;   /* >= 1 */
    int64_t connect_timeout_ms; /* > 0 */
    int64_t command_timeout_ms; /* > 0 */
    int64_t backoff_min_ms;     /* reconnect backoff, >= 0 */
    int64_t backoff_max_ms;     /* >= backoff_min_ms */
    /* Where the store counts (pyexec_store_round_trip_seconds); NULL:
     * nowhere. Must outlive the store. */
    px_metrics *metrics;
    /* The Sentinels' own password (target.is_sentinel); NULL: none; copied. */
    const char *sentinel_password;
    /* Replicas that must acknowledge (Redis WAIT, on the same connection) a
     * create and a claim before they count; 0: no wait. At most
     * PX_RSTORE_MAX_REPLICAS. */
    unsigned min_replicas;
    int64_t replica_timeout_ms; /* > 0 when min_replicas > 0 */
} px_rstore_config;

#define PX_RSTORE_MAX_REPLICAS 8

/* Results of the owner's writes, besides 0 / -1 (error). */
enum {
    PX_RSTORE_DONE = 1,   /* the write happened */
    PX_RSTORE_NOOP = 2,   /* nothing to do (set_running on a non-PENDING record) */
    PX_RSTORE_ENDED = 3,  /* the record is already terminal: write ignored */
    PX_RSTORE_FENCED = 4, /* refused: the caller is not the owner with a live lease */
};

/* Checks the configuration, connects, loads the scripts and creates the
 * queue's consumer group if it does not exist. Returns NULL with `err` set:
 * PX_E_INVALID for a bad configuration, PX_E_UNAVAILABLE if Redis cannot be
 * reached or refuses the login. Does not take the node's lease. */
px_rstore *px_rstore_new(const px_rstore_config *config, px_error *err);

/* Stops the follower and the listener, closes every connection and frees.
 * No other calls may be in progress. NULL-safe. */
void px_rstore_free(px_rstore *rs);

/* PING: 0 if Redis answers, else -1. */
int px_rstore_ping(px_rstore *rs, px_error *err);

/* ---- node lease ---- */

/* Takes this node's lease and returns its fencing token in *token. What a
 * previous life of this node left (executions it owned, jobs it read but
 * did not claim) is reaped first. PX_E_EXHAUSTED if the name's lease is
 * held (another node with the same name, or this node's previous run less
 * than lease_ms ago): the message says for how long. */
int px_rstore_lease_acquire(px_rstore *rs, int64_t *token, px_error *err);

/* Extends the lease; call every lease_ms/3. Returns PX_RSTORE_DONE, or
 * PX_RSTORE_FENCED if the lease was lost (expired or taken over): the node
 * must kill its runs (their records are or will be FAILED/LOST) and acquire
 * a new lease; or -1 on error. */
int px_rstore_lease_renew(px_rstore *rs, int64_t token, px_error *err);

/* Gives the lease up (graceful shutdown, after the node's runs ended);
 * executions it still owns end FAILED/LOST. Returns the number of those,
 * PX_RSTORE_FENCED's negation (-PX_RSTORE_FENCED) if the lease was not held
 * with `token`, or -1 on error. */
int px_rstore_lease_release(px_rstore *rs, int64_t token, px_error *err);

/* Ends, as FAILED/LOST, every execution owned by a node whose lease expired,
 * and requeues the jobs such nodes read but never claimed. Stores the
 * number of executions ended in *lost. Any node may call it at any time. */
int px_rstore_sweep(px_rstore *rs, unsigned *lost, px_error *err);

/* ---- records and the queue ---- */

/* Creates a PENDING execution with a fresh id (written to id_out) and
 * queues its packed job `job` (bytes the caller defines). `request_id` has
 * at most PX_RSTORE_REQUEST_ID_MAX bytes (else PX_E_INVALID); if it
 * is non-empty and a retained execution was created with it, creates
 * nothing and returns that one's id with *existed = true and its digest in
 * digest_out (the caller compares it with `digest`, a fingerprint of the
 * request of at most PX_RSTORE_DIGEST_MAX bytes). PX_E_EXHAUSTED if
 * `max_queued` jobs are already queued, cluster-wide. With `quotas` (NULL
 * or all 0: none) `tenant`'s quotas are checked and the record counted,
 * cluster-wide and in the same script: PX_E_EXHAUSTED naming the quota
 * (px_quota_refuse) if one is reached; the count is released at the
 * record's end, whichever way it ends (finish, kill while queued, sweep).
 * A request_id already known is never refused by a quota. The record keeps
 * `tenant` ("" when none; px_rstore_view.tenant). */
int px_rstore_create(px_rstore *rs, const char *tenant, const char *request_id, const char *digest,
                     const uint8_t *job, size_t job_len, unsigned max_queued,
                     const px_quota_config *quotas, char id_out[PX_ID_LEN + 1], bool *existed,
                     char digest_out[PX_RSTORE_DIGEST_MAX + 1], px_error *err);

typedef struct px_rstore_job {
    char id[PX_ID_LEN + 1];
    uint8_t *job; /* the packed job (malloc'd; the caller frees it) */
    size_t job_len;
} px_rstore_job;

/* Waits up to `block_ms` (0: do not wait) for a queued job and claims it
 * for this node with `token`. Returns PX_RSTORE_DONE with *out filled,
 * 0 if no job was claimed (none came, or the one that came was killed or
 * taken meanwhile: call again), PX_RSTORE_FENCED if the node's lease does
 * not hold `token` (nothing was claimed), or -1 on error. */
int px_rstore_claim(px_rstore *rs, int64_t token, int64_t block_ms, px_rstore_job *out,
                    px_error *err);

/* The owner's writes; `token` is its fencing token, 0 for a job that was
 * never claimed (only finish: e.g. a queued job that cannot be run). Each
 * returns PX_RSTORE_DONE, PX_RSTORE_NOOP (set_running only),
 * PX_RSTORE_ENDED, PX_RSTORE_FENCED, or -1 with `err` set (PX_E_NOT_FOUND
 * for an unknown id). */
int px_rstore_set_running(px_rstore *rs, const char *id, int64_t token, int64_t started_at_ms,
                          px_error *err);

/* Appends `len` (> 0) bytes at `offset`, which must be the log's length
 * (the caller counts); repeating an append that already happened is
 * accepted as DONE without effect (safe to retry). */
int px_rstore_append(px_rstore *rs, const char *id, int64_t token, int64_t offset, px_stream stream,
                     const uint8_t *data, size_t len, px_error *err);

/* The one terminal transition; the output log gets its end marker and the
 * record, its output and its request_id expire retention_ms later. */
int px_rstore_finish(px_rstore *rs, const char *id, int64_t token, const px_outcome *outcome,
                     px_error *err);

typedef enum px_rstore_kill_result {
    PX_RSTORE_KILL_ENDED = 0,  /* already terminal: nothing done */
    PX_RSTORE_KILL_QUEUED = 1, /* it was queued: now KILLED, never runs */
    PX_RSTORE_KILL_SENT = 2,   /* running: its owner (owner_out) was told */
} px_rstore_kill_result;

/* Asks for execution `id` to end with `cause` (PX_KILL_RPC or
 * PX_KILL_CANCEL); the first cause is kept. Returns a px_rstore_kill_result
 * (with the owner's name in owner_out for KILL_SENT), or -1 with `err` set. */
int px_rstore_kill(px_rstore *rs, const char *id, px_kill_cause cause,
                   char owner_out[PX_RSTORE_NAME_MAX + 1], px_error *err);

/* ---- reading ---- */

/* Each tenant's records are listed, newest first, in `list:<tenant>`, a
 * sorted set scored created-at ms * 1000 + a counter mod 1000 (unique unless
 * more than 1000 records are created in one millisecond). An entry stays
 * until the record is seen expired by a lister (px_rstore_unlist) or is
 * older than the retention period plus PX_RSTORE_LIST_SLACK_MS when a record
 * is created (records that live longer than that between creation and
 * their end plus retention are not listed then). */
#define PX_RSTORE_LIST_SLACK_MS (INT64_C(2) * 86400 * 1000)
#define PX_RSTORE_LIST_BATCH 1000

typedef struct px_rstore_listed {
    char id[PX_ID_LEN + 1];
    int64_t score; /* the page position: the next batch starts below it */
} px_rstore_listed;

/* Up to `max` (1..PX_RSTORE_LIST_BATCH) of `tenant`'s listed ids, newest
 * first, scored below `below` (0: from the newest), into `out`; *n of them.
 * Returns 0, or -1 with `err`. */
int px_rstore_list_ids(px_rstore *rs, const char *tenant, int64_t below, size_t max,
                       px_rstore_listed *out, size_t *n, px_error *err);

/* Removes `id` from `tenant`'s list (its record expired). */
int px_rstore_unlist(px_rstore *rs, const char *tenant, const char *id, px_error *err);

typedef struct px_rstore_view {
    px_record_view record;              /* as the memory store fills it */
    char owner[PX_RSTORE_NAME_MAX + 1]; /* "" until claimed */
    int64_t token;                      /* the owner's fencing token; 0 until claimed */
    px_kill_cause kill;                 /* the kill asked for, PX_KILL_NONE if none */
    int64_t created_at_ms;
    char request_id[PX_RSTORE_REQUEST_ID_MAX + 1];
    char digest[PX_RSTORE_DIGEST_MAX + 1];
    char tenant[PX_TENANT_MAX]; /* "" when none */
} px_rstore_view;

/* Fills `view` (release with px_record_view_release(&view->record)); with
 * `with_output` the stdout/stderr bodies are copied. -1 with PX_E_NOT_FOUND
 * for an unknown or expired id. */
int px_rstore_get(px_rstore *rs, const char *id, bool with_output, px_rstore_view *view,
                  px_error *err);

/* px_record_read's contract on the shared log: returns a px_read_status
 * with *chunk filled for PX_READ_DATA, or -1 (PX_E_OUT_OF_RANGE past the
 * end of a terminal log, PX_E_INVALID for a negative offset or max_len 0,
 * PX_E_NOT_FOUND for an unknown id). */
int px_rstore_read(px_rstore *rs, const char *id, int64_t offset, size_t max_len,
                   px_log_chunk *chunk, px_error *err);

/* ---- following output: one thread and one connection per store ---- */

typedef void (*px_rstore_follow_fn)(void *ud, const char *id, bool ended);

/* Starts the follower: from now on `fn(ud, id, ended)` runs on the
 * follower's thread after output or the end marker is written for an
 * execution being followed, by any node (`ended`: what was read includes
 * the end marker), and once for every followed id, with `ended` true,
 * after the follower's connection was re-established. Call at most once per store.
 * 0, or -1 with `err` set. */
int px_rstore_follow_start(px_rstore *rs, px_rstore_follow_fn fn, void *ud, px_error *err);

/* Follows `id`; counted (follow as often as added, until removed as often).
 * Every change written after this returns is reported; the caller re-reads
 * the state after adding, unless *live (NULL: not asked) says this call
 * read the record, atomically with its starting point, as not terminal
 * (the end is then reported for sure). PX_E_NOT_FOUND for an unknown id. */
int px_rstore_follow_add(px_rstore *rs, const char *id, bool *live, px_error *err);
void px_rstore_follow_remove(px_rstore *rs, const char *id);

/* ---- kill requests for this node's executions ---- */

/* `id` NULL: the connection was re-established and requests may have been
 * missed: re-check the kill flags (px_rstore_view.kill) of the node's runs. */
typedef void (*px_rstore_kill_fn)(void *ud, const char *id, px_kill_cause cause);

/* Starts listening to this node's channel (one thread, one connection):
 * `fn` runs on that thread for every kill request px_rstore_kill sends to
 * this node. Call at most once per store. 0, or -1 with `err` set. */
int px_rstore_listen_start(px_rstore *rs, px_rstore_kill_fn fn, void *ud, px_error *err);

#ifdef __cplusplus
}
#endif

#endif
