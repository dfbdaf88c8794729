/*
 * The Lua scripts that make each multi-key step of the Redis store atomic
 * (internal to the module). Every script gets the key prefix as ARGV[1] and
 * derives its keys from it, so the store needs a standalone Redis (with or
 * without Sentinel), not Redis Cluster. The key layout and the meaning of
 * each script's arguments and replies are described in scripts.c.
 */
#ifndef PYEXEC_STORE_REDIS_SCRIPTS_H
#define PYEXEC_STORE_REDIS_SCRIPTS_H

#include "server/base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum px_rscript {
    PX_RSCRIPT_CREATE = 0,
    PX_RSCRIPT_CLAIM,
    PX_RSCRIPT_SET_RUNNING,
    PX_RSCRIPT_APPEND,
    PX_RSCRIPT_FINISH,
    PX_RSCRIPT_KILL,
    PX_RSCRIPT_READ,
    PX_RSCRIPT_GET,
    PX_RSCRIPT_LEASE_ACQUIRE,
    PX_RSCRIPT_LEASE_RENEW,
    PX_RSCRIPT_LEASE_RELEASE,
    PX_RSCRIPT_SWEEP,
    PX_RSCRIPT_FOLLOW_ADD,
    PX_RSCRIPT_COUNT,
} px_rscript;

/* The full source of script `s` (the shared prelude + its body), malloc'd;
 * NULL with PX_E_INTERNAL if out of memory. */
char *px_rscript_source(px_rscript s, px_error *err);

/* Its name, for error messages. */
const char *px_rscript_name(px_rscript s);

#ifdef __cplusplus
}
#endif

#endif
