/*
 * Private to the in-memory store's files (see memory.c's DESIGN):
 *   memory.c         the store: membership (list, hash tables), create,
 *                    admit, get, remove, expiry and the retained-bytes
 *                    budget, listing;
 *   memory_record.c  one record: its job, its lifecycle, its output log and
 *                    reads.
 */
#ifndef PYEXEC_STORE_MEMORY_INTERNAL_H
#define PYEXEC_STORE_MEMORY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "server/base/sha256.h"
#include "server/store/store_impl.h"

typedef struct log_seg {
    int64_t offset;
    size_t len;
    px_stream stream;
} log_seg;

typedef struct mem_store mem_store;
typedef struct mem_record mem_record;

struct mem_record {
    px_record base;                /* first: the interface (refs, id, watchers) */
    char *request_id;              /* NULL when none; immutable */
    uint8_t digest[PX_SHA256_LEN]; /* the request's content, with request_id; immutable */

    /* Membership, guarded by the owning store's mu. */
    mem_store *store;
    mem_record *all_prev, *all_next;
    mem_record *id_next, *req_next;

    /* Creation order in the store, from 1: ListExecutions pages by it. */
    uint64_t seq;
    /* The status, published for listing without the record lock. */
    _Atomic int pub_status;
    /* Unix ms of the terminal transition; 0 while not terminal. */
    _Atomic int64_t finished_at;
    /* Bytes the record holds for the store's budget (max_retained_bytes):
     * its output log plus its Eval report. */
    _Atomic uint64_t held_bytes;

    pthread_mutex_t mu; /* everything below */
    px_status status;
    px_outcome outcome;
    int64_t started_at;
    uint8_t *buf;
    size_t len, cap;
    log_seg *segs;
    size_t n_segs, cap_segs;
    px_kill_cause kill_cause;
    const px_record_job_ops *job_ops;
    void *job_ctx;
    void *job;
};

/* A new PENDING record with one reference (the caller's), or NULL when
 * out of memory. `request_id` (may be NULL or "") and its `digest` are
 * copied. */
mem_record *px_mem_record_new(const char *id, const char *tenant, const char *request_id,
                              const uint8_t *digest, size_t max_readers);

#endif
