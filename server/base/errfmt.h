/*
 * The message half of an error type: formatting, appending strerror() and
 * prefixing context into a fixed-size buffer. Shared by the server's
 * px_error (server/base/error.h) and the client's pyexec_error
 * (client/pyexec_error.h), which keep their own codes and names; each of
 * them is only this plus a code.
 *
 * `msg` is a buffer of `cap` bytes, 4 <= cap <= PX_ERRFMT_MSG_MAX, always
 * NUL-terminated after a call; nothing ever writes past it (long messages
 * are truncated).
 * Thread safety: none needed; the buffer is the caller's.
 */
#ifndef PYEXEC_BASE_ERRFMT_H
#define PYEXEC_BASE_ERRFMT_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The largest buffer these functions take (the context px_errfmt_vwrap
 * formats is held on the stack in one of this size). */
#define PX_ERRFMT_MSG_MAX 1024

/* Replaces the message with the printf-formatted one. */
void px_errfmt_vset(char *msg, size_t cap, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Like px_errfmt_vset, then appends ": " and strerror(errnum). */
void px_errfmt_vset_errno(char *msg, size_t cap, int errnum, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* Prefixes the message with the formatted context and ": ". */
void px_errfmt_vwrap(char *msg, size_t cap, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#ifdef __cplusplus
}
#endif

#endif
