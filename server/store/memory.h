/*
 * The in-memory store: the records of one process, the default. Records,
 * output logs and request_ids live in this process only and end with it.
 * See store.h for the contract and memory.c for the design.
 */
#ifndef PYEXEC_STORE_MEMORY_H
#define PYEXEC_STORE_MEMORY_H

#include "server/store/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returns a new in-memory store (free with px_store_free), or NULL with
 * PX_E_INVALID if retention_ms < 0 or max_records or max_readers is 0. */
px_store *px_memory_store_new(const px_store_config *config, px_error *err);

#ifdef __cplusplus
}
#endif

#endif
