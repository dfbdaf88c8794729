/*
 * The tenants' token table (--auth-tokens): which tenant a bearer token
 * names. The file holds hashes, not tokens: one line per token,
 *
 *     TENANT SHA256HEX      # the hex SHA-256 of the token
 *
 * with '#' comments and blank lines. A tenant is 1 to 64 of [A-Za-z0-9._@-]
 * and may have several tokens (rotation); a hash appears once.
 */
#ifndef PYEXEC_BASE_TOKENS_H
#define PYEXEC_BASE_TOKENS_H

#include <stddef.h>

#include "server/base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest tenant name in a token file. */
#define PX_TOKENS_TENANT_MAX 64
/* Most lines (tokens) in a token file. */
#define PX_TOKENS_MAX 100000

typedef struct px_tokens px_tokens;

/* Reads and checks `path`. Returns NULL with `err` set (PX_E_INVALID) naming
 * the file and, for a bad line, its number and what is wrong with it. */
px_tokens *px_tokens_load(const char *path, px_error *err);

/* Parses the text of a token file (`name` is what errors call it). */
px_tokens *px_tokens_parse(const char *name, const char *text, size_t len, px_error *err);

size_t px_tokens_count(const px_tokens *t);

/* The tenant whose token is the `len` bytes of `token` (borrowed from `t`),
 * or NULL. Compares hashes, in time independent of where they differ. */
const char *px_tokens_find(const px_tokens *t, const char *token, size_t len);

void px_tokens_free(px_tokens *t); /* NULL-safe */

#ifdef __cplusplus
}
#endif

#endif
