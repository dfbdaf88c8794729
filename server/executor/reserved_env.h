/*
 * The environment names a request may not set, for every sandbox back-end:
 * the ones a sandbox sets itself (PATH, HOME, PYTHONUNBUFFERED, ...), the
 * ones that would change how the interpreter or the dynamic loader starts
 * (PYTHONSTARTUP, PYTHONHOME, LD_PRELOAD, ...), and the bootstrap's own
 * (PYEXEC_NONCE). The RPC layer refuses a request that sets one; a back-end
 * keeps them out of the program's environment whatever its caller sent.
 * docs/api.md lists them for clients.
 *
 * Header only; thread-safe.
 */
#ifndef PYEXEC_EXECUTOR_RESERVED_ENV_H
#define PYEXEC_EXECUTOR_RESERVED_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the reserved name equal to the `len` bytes at `name` (which need
 * not be NUL-terminated there, e.g. the KEY of "KEY=value"), or NULL when
 * that name is not reserved. */
static inline const char *px_env_reserved(const char *name, size_t len) {
    static const char *const reserved[] = {
        "PATH",
        "HOME",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "PIP_DISABLE_PIP_VERSION_CHECK",
        "PIP_NO_CACHE_DIR",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "PYTHONSAFEPATH",
        "PYTHONNOUSERSITE",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "PYEXEC_NONCE",
    };
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strlen(reserved[i]) == len && memcmp(reserved[i], name, len) == 0)
            return reserved[i];
    return NULL;
}

#ifdef __cplusplus
}
#endif

#endif
