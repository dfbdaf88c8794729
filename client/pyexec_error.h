/*
 * The error type of libpyexec and the `pyexec` CLI. The client owns it: it
 * is independent of the server's error type, so the public headers of
 * libpyexec include nothing from server/.
 *
 * Convention: a function that can fail takes a trailing `pyexec_error *err`,
 * returns 0 (or a non-NULL pointer) on success and leaves `*err` untouched,
 * or returns -1 (or NULL) with `*err` set. Code that passes an error up
 * prefixes one phrase of context with pyexec_error_wrap(), so the message
 * reads like a stack: "run: Execute: execution 'exe_…' not found".
 *
 * `err` may be NULL everywhere: the error is then discarded.
 * Thread safety: a pyexec_error is plain data owned by the caller.
 */
#ifndef PYEXEC_CLIENT_PYEXEC_ERROR_H
#define PYEXEC_CLIENT_PYEXEC_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* The class of a failure. A gRPC status other than OK maps to one code; see
 * pyexec.h for the table. */
typedef enum pyexec_code {
    PYEXEC_OK = 0,
    PYEXEC_E_INVALID,      /* bad input: INVALID_ARGUMENT */
    PYEXEC_E_NOT_FOUND,    /* unknown execution id: NOT_FOUND */
    PYEXEC_E_EXHAUSTED,    /* the server is at a limit: RESOURCE_EXHAUSTED */
    PYEXEC_E_UNAVAILABLE,  /* the server is unreachable or shutting down: UNAVAILABLE */
    PYEXEC_E_PRECONDITION, /* e.g. the image is missing: FAILED_PRECONDITION */
    PYEXEC_E_OUT_OF_RANGE, /* offset past the end of a finished log: OUT_OF_RANGE */
    PYEXEC_E_CANCELLED,    /* the call was cancelled: CANCELLED */
    PYEXEC_E_TIMEOUT,      /* the call's deadline passed: DEADLINE_EXCEEDED */
    PYEXEC_E_INTERNAL,     /* anything else: a bug, out of memory, UNIMPLEMENTED, ... */
} pyexec_code;

#define PYEXEC_ERROR_MSG_MAX 1024

typedef struct pyexec_error {
    pyexec_code code;
    char msg[PYEXEC_ERROR_MSG_MAX];
} pyexec_error;

#define PYEXEC_ERROR_INIT                                                                          \
    {                                                                                              \
        PYEXEC_OK, {                                                                               \
            0                                                                                      \
        }                                                                                          \
    }

/* Sets `err` to `code` and the printf-formatted message. Always returns -1,
 * so callers can write `return pyexec_error_set(err, ...);`. */
int pyexec_error_set(pyexec_error *err, pyexec_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like pyexec_error_set, then appends ": " and strerror(errnum). Returns -1. */
int pyexec_error_set_errno(pyexec_error *err, pyexec_code code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prefixes the existing message with the formatted context and ": ". The
 * code is unchanged. Truncates (never overflows) if the message grows past
 * PYEXEC_ERROR_MSG_MAX. Returns -1. */
int pyexec_error_wrap(pyexec_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Resets `err` to PYEXEC_OK with an empty message. */
void pyexec_error_clear(pyexec_error *err);

/* The gRPC status name a code stands for, e.g. "INVALID_ARGUMENT" ("OK" for
 * PYEXEC_OK, "UNKNOWN" outside the enum). Never NULL. */
const char *pyexec_code_name(pyexec_code code);

#ifdef __cplusplus
}
#endif

#endif
