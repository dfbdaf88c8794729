/*
 * SHA-256 (FIPS 180-4), self-contained: the base module includes nothing
 * third-party, and the server needs only a digest to compare contents.
 *
 * Usage: px_sha256_init, any number of px_sha256_update, px_sha256_final.
 * px_sha256 does all three for one buffer.
 *
 * Thread safety: a context is plain data owned by one thread at a time.
 */
#ifndef PYEXEC_BASE_SHA256_H
#define PYEXEC_BASE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PX_SHA256_LEN 32

typedef struct px_sha256_ctx {
    uint32_t state[8];
    uint64_t total;    /* bytes hashed so far */
    uint8_t block[64]; /* a partial block of `total % 64` bytes */
} px_sha256_ctx;

void px_sha256_init(px_sha256_ctx *ctx);

/* Hashes `len` bytes at `data` (which may be NULL when len is 0). */
void px_sha256_update(px_sha256_ctx *ctx, const void *data, size_t len);

/* Writes the digest of everything hashed to `out`. The context must be
 * initialised again before reuse. */
void px_sha256_final(px_sha256_ctx *ctx, uint8_t out[PX_SHA256_LEN]);

/* The digest of one buffer. */
void px_sha256(const void *data, size_t len, uint8_t out[PX_SHA256_LEN]);

#ifdef __cplusplus
}
#endif

#endif
