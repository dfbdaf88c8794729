/*
 * Private to the Redis store interface (redis_store.c, redis_record.c,
 * redis_store_workers.c): the store's and the proxies' layout and the
 * helpers those files share. Not for other modules.
 */
#ifndef PYEXEC_STORE_REDIS_REDIS_STORE_INTERNAL_H
#define PYEXEC_STORE_REDIS_REDIS_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/store/redis/redis_store.h"
#include "server/store/redis/rstore.h"
#include "server/store/store_impl.h"

typedef struct rs_store rs_store;

/* Claiming threads per worker node (at most max_running): a claim is two
 * round trips (the queue read, the claim script), each of which waits for
 * Redis's fsync under `appendfsync always`; several pullers let a node's
 * claims share those waits instead of queueing behind one another. */
#define RS_PULLERS_MAX 4

/* An output chunk the owner could not write yet (Redis away). */
typedef struct rs_pending_chunk {
    struct rs_pending_chunk *next;
    px_stream stream;
    int64_t offset;
    size_t len;
    uint8_t data[];
} rs_pending_chunk;

typedef struct rs_record {
    px_record base; /* first: the interface */
    rs_store *st;
    struct rs_record *next; /* in st->live, under st->mu */

    pthread_mutex_t mu; /* everything below */
    int64_t token;      /* > 0: this node claimed it and writes it */
    int64_t out_off;    /* the owner's output length */
    bool ended;         /* the owner's finish went through (or was refused) */
    px_kill_cause kill_cause;
    bool away_killed; /* killed because Redis stayed away past the grace */
    const px_record_job_ops *job_ops;
    void *job_ctx;
    void *job;
    /* Writes waiting for Redis, in order: chunks, then the end. While any
     * wait, the store holds a reference (in st->pending). */
    rs_pending_chunk *pend_head, *pend_tail;
    px_outcome *pend_end;
    bool pending_listed;
    struct rs_record *pending_next; /* in st->pending, under st->mu */
} rs_record;

struct rs_store {
    px_store base;             /* first: the interface */
    px_redis_store_config cfg; /* its strings point to the copies below */
    /* The tenants' quotas, checked and counted in Redis (set before use,
     * then read-only); all 0: none. */
    px_quota_config quotas;
    char node[PX_RSTORE_NAME_MAX + 1];
    char ns[PX_RSTORE_NAME_MAX + 1];
    /* NULL once the store is freed: proxies may outlive it (store.h), and
     * then answer PX_E_UNAVAILABLE. */
    px_rstore *rs;
    /* The store handle's reference plus one per proxy: the struct goes with
     * the last. */
    atomic_uint refs;

    pthread_mutex_t mu;
    pthread_cond_t cond; /* a run ended, a write was left waiting, or stop */
    rs_record *live;
    rs_record *pending; /* proxies with writes waiting for Redis (referenced) */
    bool pending_new;   /* a proxy joined `pending`: the keeper retries now */
    unsigned running;   /* claimed by this node, not yet finished */
    int64_t token;      /* this node's lease token; 0: none */
    bool stop;
    bool draining;    /* the pullers have stopped, or are stopping */
    bool runner_down; /* the runner's back-end does not answer: claim nothing */
    bool puller_joined;
    bool worker;
    pthread_t pullers[RS_PULLERS_MAX];
    unsigned n_pullers;
    pthread_t keeper;
};

/* ---- the records (redis_record.c) ---- */

void rs_outcome_free(px_outcome *o);
void rs_store_unref(rs_store *st);
/* The store's connections, or NULL with PX_E_UNAVAILABLE once it is freed. */
px_rstore *rs_of(rs_store *st, px_error *err);
/* Returns a new reference to the live proxy of `id`, or NULL. */
rs_record *rs_live_find(rs_store *st, const char *id);
/* The proxy of `id`: the live one, or a new one (with `token`, of
 * `tenant`, the record's). */
rs_record *rs_proxy(rs_store *st, const char *id, int64_t token, const char *tenant, px_error *err);
/* The follower saw news for `id`: wake its local watchers; the control
 * watchers (sync Execute, Kill: waiting for the end) only with the end. */
void rs_on_follow(void *ud, const char *id, bool ended);
/* Kills the local job (this node runs it). Returns false if there is none. */
bool rs_kill_local(rs_record *r, px_kill_cause cause);
int64_t rs_token_of(rs_record *r);
/* Fills `view` from what px_rstore_get read (taking its allocations). */
void rs_view_of(px_rstore_view *v, px_record_view *view);
/* One of this node's claimed runs ended: a slot is free for a puller. */
void rs_run_ended(rs_store *st);
/* ---- the worker threads (redis_store_workers.c) ---- */

/* A kill request from another node (or, id NULL, a reconnect). */
void rs_on_kill(void *ud, const char *id, px_kill_cause cause);
void *rs_puller_main(void *arg);
/* Writes what waited for Redis; stops at the first proxy Redis still
 * refuses. Keeper thread (and free). */
void rs_flush_pending(rs_store *st);
void *rs_keeper_main(void *arg);

#endif
