/*
 * One error type for the whole server (the C client has its own of the same
 * shape, client/pyexec_error.h).
 *
 * Convention (CONTRIBUTING.md, "Style, by example"): a function that can
 * fail takes a trailing `px_error *err`, returns 0 (or a non-NULL pointer) on
 * success and leaves `*err` untouched, or returns -1 (or NULL) with `*err`
 * set.  Each layer that passes an error up prefixes one phrase of context
 * with px_error_wrap(), so the final message reads like a stack:
 *   "execute: start container 'ab12cd34ef56': POST /containers/.../start: HTTP 500: ..."
 * Only server/rpc/status.c turns a px_code into a gRPC status code.
 *
 * `err` may be NULL everywhere: the error is then discarded.
 * Thread safety: a px_error is plain data owned by the caller.
 */
#ifndef PYEXEC_BASE_ERROR_H
#define PYEXEC_BASE_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The class of a failure; each maps to exactly one gRPC status code. */
typedef enum px_code {
    PX_OK = 0,
    PX_E_INVALID,         /* bad input from the client: INVALID_ARGUMENT */
    PX_E_NOT_FOUND,       /* unknown id: NOT_FOUND */
    PX_E_EXHAUSTED,       /* a limit or queue is full: RESOURCE_EXHAUSTED */
    PX_E_UNAVAILABLE,     /* Docker unreachable, shutting down: UNAVAILABLE */
    PX_E_PRECONDITION,    /* image missing and not pullable: FAILED_PRECONDITION */
    PX_E_OUT_OF_RANGE,    /* offset past the end of a finished log: OUT_OF_RANGE */
    PX_E_EXISTS,          /* a key already names something different: ALREADY_EXISTS */
    PX_E_CANCELLED,       /* the operation was cancelled: CANCELLED */
    PX_E_TIMEOUT,         /* a call to a dependency timed out: DEADLINE_EXCEEDED */
    PX_E_INTERNAL,        /* a bug or an unexpected system failure: INTERNAL */
    PX_E_UNAUTHENTICATED, /* no valid credentials (token, certificate): UNAUTHENTICATED */
} px_code;

#define PX_ERROR_MSG_MAX 1024

typedef struct px_error {
    px_code code;
    char msg[PX_ERROR_MSG_MAX];
} px_error;

/* clang-format 14 spreads a braced initializer in a macro over six lines. */
/* clang-format off */
#define PX_ERROR_INIT {PX_OK, {0}}
/* clang-format on */

/* Sets `err` to `code` and the printf-formatted message. Always returns -1,
 * so callers can write `return px_error_set(err, ...);`. */
int px_error_set(px_error *err, px_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like px_error_set, then appends ": " and strerror(errnum). Returns -1. */
int px_error_set_errno(px_error *err, px_code code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prefixes the existing message with the formatted context and ": ".
 * The code is unchanged. Truncates (never overflows) if the message grows
 * past PX_ERROR_MSG_MAX. Returns -1. */
int px_error_wrap(px_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Resets `err` to PX_OK with an empty message. */
void px_error_clear(px_error *err);

/* The symbolic name of a code, e.g. "INVALID_ARGUMENT". Never NULL. */
const char *px_code_name(px_code code);

#ifdef __cplusplus
}
#endif

#endif
