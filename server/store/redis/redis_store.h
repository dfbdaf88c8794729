/*
 * The store interface (store.h) on Redis: many pyexecd nodes share the
 * records, output logs, the job queue and request_ids (scaling.md).
 *
 * Records are local proxies of the shared records, one per id and node
 * while referenced. Reads go to Redis; local watchers are woken by the
 * node's one output follower (px_rstore_follow_*), whichever node wrote.
 *
 * Admission (px_store_admit) puts the packed job in the cluster's queue,
 * bounded by max_queued cluster-wide. A node with a runner (a worker) holds
 * a lease and puller threads (up to 4): while fewer than max_running of
 * its claimed jobs are unfinished they claim the next queued jobs and hand
 * them to the runner; the runner's events become the owner's fenced writes. A keeper
 * thread renews the lease every lease_ms/3 and sweeps nodes whose lease
 * expired every sweep_interval_ms; if this node's own lease was lost it
 * kills its runs (their records are declared lost elsewhere) and takes a
 * new lease. Kill requests for the node's runs arrive on its channel.
 *
 * Redis away: an owner's output chunk or terminal state that cannot be
 * written is kept in memory (output: what the executor hands on, at most its
 * output cap per run) and written in order by the keeper once Redis answers
 * again, unless the node lost its lease meanwhile (then the sweep's verdict
 * stands). If Redis stays unreachable for grace_ms, the worker kills its
 * runs: they end FAILED/LOST, written when Redis is back.
 *
 * px_store_list reads the tenant's list in Redis (rstore.h), newest first,
 * and each candidate's status (one round trip each); an expired record's
 * entry is removed as it is met. A page that is full carries a next token
 * whenever older entries exist, so the last page may be empty.
 *
 * Not supported on Redis: px_store_create without a job (PX_E_INTERNAL),
 * px_store_remove (records end by retention), px_store_count (0); the
 * store config's max_records and max_retained_bytes do not apply (Redis's
 * memory is bounded by retention: EXPIRE on each terminal record).
 */
#ifndef PYEXEC_STORE_REDIS_REDIS_STORE_H
#define PYEXEC_STORE_REDIS_REDIS_STORE_H

#include "server/store/redis/rstore.h"
#include "server/store/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct px_redis_store_config {
    px_rstore_config redis;    /* connection, namespace, node name, lease, retention */
    size_t max_readers;        /* StreamOutput readers per record on this node; >= 1 */
    unsigned max_queued;       /* jobs queued cluster-wide; beyond: PX_E_EXHAUSTED */
    px_job_runner runner;      /* ops NULL: this node runs nothing (a frontend) */
    unsigned max_running;      /* claimed, unfinished jobs on this node; >= 1 with a runner */
    int64_t sweep_interval_ms; /* sweeps of dead nodes; 0: lease_ms / 2 */
    /* A worker that cannot reach Redis this long kills its runs (they end
     * FAILED/LOST, written when Redis answers again); 0: never. */
    int64_t grace_ms;
} px_redis_store_config;

/* Connects (PX_E_UNAVAILABLE if Redis cannot be reached), starts the
 * follower, and with a runner takes the node's lease (PX_E_EXHAUSTED if the
 * name is held) and starts the worker threads. Free with px_store_free,
 * after the runner has finished every job (its records are written until
 * then). */
px_store *px_redis_store_new(const px_redis_store_config *config, px_error *err);

#ifdef __cplusplus
}
#endif

#endif
