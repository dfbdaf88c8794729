/*
 * Where the shared store lives and how to log in: the `--store` URL and the
 * Redis password. Plain parsing, no connection; used by main() to check the
 * flags and by the Redis store to connect.
 *
 *   redis://HOST[:PORT][/DB]        TCP (PORT default 6379, DB default 0);
 *                                   HOST may be a name, IPv4, or [IPv6]
 *   redis+unix:///PATH[?db=N]       a unix socket (absolute PATH)
 *   redis+sentinel://HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB]
 *                                   the primary that Redis Sentinel names
 *                                   MASTER; the Sentinels at HOST:PORT
 *                                   (PORT default 26379) are asked in turn
 *                                   at every connect
 *
 * A password is never part of the URL (it would show in `ps`): it comes from
 * a file (`--store-password-file`) or the environment
 * (`PYEXEC_STORE_PASSWORD`).
 *
 * Thread safety: plain functions on caller-owned data.
 */
#ifndef PYEXEC_STORE_REDIS_TARGET_H
#define PYEXEC_STORE_REDIS_TARGET_H

#include <stdbool.h>
#include <stddef.h>

#include "server/base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PX_REDIS_HOST_MAX 255
#define PX_REDIS_PATH_MAX 107 /* sun_path minus the NUL */
#define PX_REDIS_DB_MAX 1000000
#define PX_REDIS_PASSWORD_MAX 512
#define PX_REDIS_SENTINELS_MAX 8
#define PX_REDIS_MASTER_NAME_MAX 128
/* The longest text px_redis_target_format writes, with its NUL. */
#define PX_REDIS_TARGET_TEXT_MAX                                                                   \
    (32 + PX_REDIS_SENTINELS_MAX * (PX_REDIS_HOST_MAX + 9) + PX_REDIS_MASTER_NAME_MAX)

typedef struct px_redis_endpoint {
    char host[PX_REDIS_HOST_MAX + 1]; /* name or address, without brackets */
    int port;                         /* 1..65535 */
} px_redis_endpoint;

typedef struct px_redis_target {
    bool is_unix;
    char host[PX_REDIS_HOST_MAX + 1]; /* TCP: name or address, without brackets */
    int port;                         /* TCP: 1..65535 */
    char path[PX_REDIS_PATH_MAX + 1]; /* unix: absolute socket path */
    int db;                           /* 0..PX_REDIS_DB_MAX */
    /* Sentinel: the primary is whichever address the Sentinels name for
     * `master_name` (host and port above are then unused). */
    bool is_sentinel;
    size_t sentinel_count; /* 1..PX_REDIS_SENTINELS_MAX */
    px_redis_endpoint sentinels[PX_REDIS_SENTINELS_MAX];
    char master_name[PX_REDIS_MASTER_NAME_MAX + 1]; /* [A-Za-z0-9_.-]+ */
} px_redis_target;

/* True if `url` names the Redis store (starts with "redis://",
 * "redis+unix://" or "redis+sentinel://"), whether or not it is
 * well-formed. */
bool px_redis_target_is_redis(const char *url);

/* Parses `url` into `out`. Returns 0, or -1 with `err` set (PX_E_INVALID)
 * saying what is wrong, e.g. a user or password in the URL, a port out of
 * range, a relative or too long socket path, an unknown query parameter, no
 * Sentinel or more than PX_REDIS_SENTINELS_MAX, no master name. */
int px_redis_target_parse(const char *url, px_redis_target *out, px_error *err);

/* Writes "redis://host:port/db", "redis+unix:///path?db=N" or
 * "redis+sentinel://host:port,.../master/db" (never a password) into `buf`
 * of `size` bytes (PX_REDIS_TARGET_TEXT_MAX is always enough), truncated if
 * needed. For logs and error messages. */
void px_redis_target_format(const px_redis_target *t, char *buf, size_t size);

/* The Redis password: read from `file` if it is non-NULL and non-empty (one
 * line; a trailing "\n" or "\r\n" is dropped), else `env_value` if non-NULL
 * (the value of PYEXEC_STORE_PASSWORD), else none. Stores a malloc'd copy in
 * *out (NULL when there is no password; the caller frees it). Returns 0, or
 * -1 with `err` set: PX_E_INVALID if the file cannot be read, is longer than
 * PX_REDIS_PASSWORD_MAX, is empty, or holds a NUL or a line break inside the
 * password; PX_E_INTERNAL if out of memory. */
int px_redis_password_load(const char *file, const char *env_value, char **out, px_error *err);

/* Like px_redis_password_load, for the Sentinels' own password
 * (`requirepass` in sentinel.conf): `env_value` is the value of
 * PYEXEC_STORE_SENTINEL_PASSWORD, and messages name that. */
int px_redis_sentinel_password_load(const char *file, const char *env_value, char **out,
                                    px_error *err);

#ifdef __cplusplus
}
#endif

#endif
