/*
 * Quoting client-controlled strings (paths, names, ids, image references)
 * for error messages and log lines, the one way the server does it: the
 * result is printable ASCII, so it is valid UTF-8 however it was cut (gRPC
 * status messages must be), a control character cannot forge a log line,
 * and its length is bounded. Callers put it in single quotes: "'%s'".
 *
 * Thread-safe: the caller owns the buffer.
 */
#ifndef PYEXEC_BASE_QUOTE_H
#define PYEXEC_BASE_QUOTE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* At most this many bytes of a client string appear in a message; each may
 * be escaped to four characters. */
#define PX_QUOTE_MAX_BYTES 96

/* Room for one quoted string. */
typedef struct px_quoted {
    char s[PX_QUOTE_MAX_BYTES * 4 + 4];
} px_quoted;

/* Renders the `len` bytes at `s` into q: printable ASCII as is, everything
 * else (and ' and \) as \xNN, cut after PX_QUOTE_MAX_BYTES bytes with
 * "...". Returns q->s. */
const char *px_quote(px_quoted *q, const char *s, size_t len);

/* px_quote of a NUL-terminated string (NULL reads as ""). */
const char *px_quote_str(px_quoted *q, const char *s);

#ifdef __cplusplus
}
#endif

#endif
