/*
 * One connection to Redis, internal to the Redis store module (the only
 * place that includes hiredis).
 *
 * A px_redis_conn connects lazily and reconnects by itself: a command on a
 * broken connection fails with PX_E_UNAVAILABLE and drops it; the next
 * command connects again at once, and each failed connect doubles the wait
 * before the next attempt (backoff_min_ms .. backoff_max_ms; during the wait
 * commands fail at once with PX_E_UNAVAILABLE, without touching the
 * network). A reply from the server resets the backoff. On connect it sends
 * AUTH (if a password is configured) and SELECT (if db != 0). An answer
 * READONLY or MASTERDOWN (the server is a replica now) drops the
 * connection: with a plain target, as a failed connect (the next attempt
 * waits the backoff: the same server is still a replica). With a Sentinel
 * target each connect first asks the Sentinels in turn for the primary's
 * address and, after AUTH, checks with ROLE that the server there is a
 * primary; there the next command asks again at once.
 *
 * Errors: PX_E_UNAVAILABLE when Redis cannot be reached, refuses the login,
 * answers LOADING/BUSY/MASTERDOWN/READONLY (it will be back, or another
 * server will be the primary), or, with Sentinel, no Sentinel names a
 * primary or the one named is not (yet) a primary; PX_E_TIMEOUT when a
 * reply does not come within the command timeout (the connection is dropped:
 * whether the command ran is unknown); PX_E_INTERNAL for other error replies.
 *
 * Thread safety: a connection is used by one thread at a time (the store
 * keeps a pool).
 */
#ifndef PYEXEC_STORE_REDIS_CONN_H
#define PYEXEC_STORE_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/base/error.h"
#include "server/base/metrics.h"
#include "server/store/redis/target.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct px_redis_conn px_redis_conn;

typedef struct px_redis_conn_config {
    px_redis_target target;
    const char *password;       /* NULL: no AUTH; copied */
    int64_t connect_timeout_ms; /* > 0 */
    int64_t command_timeout_ms; /* > 0: bound on each reply */
    int64_t backoff_min_ms;     /* first wait after a failed connect; >= 0 */
    int64_t backoff_max_ms;     /* >= backoff_min_ms */
    /* Where each answered command's round trip is observed, in seconds
     * (blocking commands, which wait on purpose, excepted); NULL: nowhere. */
    px_histogram *round_trip;
    /* The Sentinels' own password (target.is_sentinel); NULL: no AUTH;
     * copied. */
    const char *sentinel_password;
} px_redis_conn_config;

/* Returns a new, not yet connected connection, or NULL with PX_E_INTERNAL
 * if out of memory. Never touches the network. */
px_redis_conn *px_redis_conn_new(const px_redis_conn_config *config, px_error *err);

/* Closes and frees. NULL-safe. */
void px_redis_conn_free(px_redis_conn *c);

/* Connects now unless connected (subject to the backoff). 0, or -1. */
int px_redis_conn_ensure(px_redis_conn *c, px_error *err);

/* True while a connection is open (it may still turn out broken). */
bool px_redis_conn_connected(const px_redis_conn *c);

/* Runs one command given as binary-safe arguments and returns its reply
 * (free with freeReplyObject), or NULL with `err` set. An error reply
 * becomes an error (see the file comment; its text is in the message).
 * `extra_timeout_ms` is added to the command timeout for this call (for
 * blocking commands). With `retry`, a command that failed because the
 * connection broke is sent once more on a new connection: only for
 * commands that are safe to run twice. */
redisReply *px_redis_conn_call(px_redis_conn *c, int argc, const char **argv,
                               const size_t *argv_len, int64_t extra_timeout_ms, bool retry,
                               px_error *err);

/* Like px_redis_conn_call for `EVALSHA sha 0 argv...` (the store's scripts
 * take no KEYS: they derive their keys from a prefix in ARGV); on NOSCRIPT
 * (the script cache was flushed, e.g. by a restart) sends EVAL with `source`
 * instead, which caches it again. */
redisReply *px_redis_conn_eval(px_redis_conn *c, const char *sha, const char *source, int argc,
                               const char **argv, const size_t *argv_len, bool retry,
                               px_error *err);

/* Waits up to `timeout_ms` for the next reply the server pushes on this
 * connection (a subscription's messages) and returns it, or NULL with
 * `err` set: PX_E_TIMEOUT if none came (the connection stays open),
 * PX_E_UNAVAILABLE if the connection broke or is closed (it is dropped). */
redisReply *px_redis_conn_read(px_redis_conn *c, int64_t timeout_ms, px_error *err);

#ifdef __cplusplus
}
#endif

#endif
