/*
 * The byte form of a job spec that travels through Redis from the node that
 * admitted it to the node that runs it (the `req:<id>` key).
 *
 * Format: "PXJ2", then the fields of px_job_spec in declaration order
 * (without execution_id, which is the key, and tenant, which comes last):
 * strings and byte strings as a u32 length + bytes, string lists as a u32
 * count + strings, ints as i32, network and eval as one byte each; integers
 * little-endian. requirements_txt NULL and "" both pack as "". (PXJ1, the
 * form without the tenant, is refused: drain the queue before mixing
 * versions.)
 *
 * Thread safety: plain functions on caller-owned data.
 */
#ifndef PYEXEC_STORE_REDIS_JOBPACK_H
#define PYEXEC_STORE_REDIS_JOBPACK_H

#include <stddef.h>
#include <stdint.h>

#include "server/base/error.h"
#include "server/model/job.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most strings in one list, a bound checked when unpacking. */
#define PX_JOBPACK_MAX_LIST 100000

/* Packs `spec` (borrowed) into a malloc'd buffer (*out, *out_len; the
 * caller frees it). Returns 0, or -1 with PX_E_INTERNAL if out of memory or
 * a field is longer than 4 GiB. */
int px_jobpack_pack(const px_job_spec *spec, uint8_t **out, size_t *out_len, px_error *err);

/* Unpacks `len` bytes into a new spec (free with px_job_spec_free) whose
 * execution_id is `id`. Returns NULL with `err` set: PX_E_INTERNAL if the
 * bytes are not a packed spec (wrong magic, truncated, trailing bytes, a
 * NUL inside a string, a list longer than PX_JOBPACK_MAX_LIST) or out of
 * memory. */
px_job_spec *px_jobpack_unpack(const uint8_t *data, size_t len, const char *id, px_error *err);

#ifdef __cplusplus
}
#endif

#endif
