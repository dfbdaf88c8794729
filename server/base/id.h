/*
 * Execution ids: "exe_" followed by a lowercase RFC 4122 version-4 UUID,
 * e.g. "exe_1b4e28ba-2fa1-4d2e-8c9f-0e02b2c3d479" (40 characters).
 * Thread-safe.
 */
#ifndef PYEXEC_BASE_ID_H
#define PYEXEC_BASE_ID_H

#include <stdbool.h>
#include <stddef.h>

#include "server/base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PX_ID_LEN 40 /* without the terminating NUL */

/* Writes a fresh id (PX_ID_LEN chars + NUL) into `out`. Returns 0, or -1
 * with `err` set (PX_E_INTERNAL) if the kernel's random source fails. */
int px_id_new(char out[PX_ID_LEN + 1], px_error *err);

/* Writes `n` random bytes as 2n lowercase hex characters + NUL into `out`. */
int px_random_hex(char *out, size_t n, px_error *err);

/* True if `s` (of `len` bytes, not necessarily NUL-terminated) has the exact
 * shape of an execution id. */
bool px_id_valid(const char *s, size_t len);

/* Checks a client's execution id: returns 0 if px_id_valid, else -1 with
 * `err` set (PX_E_INVALID) naming the field "execution_id" and quoting the
 * printable part of a short id. */
int px_id_check(const char *id, px_error *err);

#ifdef __cplusplus
}
#endif

#endif
