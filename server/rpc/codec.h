/*
 * Between protobuf-c messages and the server's own types: ExecuteRequest ->
 * validated px_job_spec, px_record_view -> ExecutionResult / OutputChunk.
 * Pure functions; thread-safe.
 */
#ifndef PYEXEC_RPC_CODEC_H
#define PYEXEC_RPC_CODEC_H

#include "pyexec/v1/executor.pb-c.h"
#include "server/base/config.h"
#include "server/base/error.h"
#include "server/base/sha256.h"
#include "server/model/job.h"
#include "server/store/store.h"

/* Validates `req` against docs/contract.md and the limits in `cfg`, fills in the
 * defaults, validates and repacks the code (server/tar), picks the
 * entrypoint. Returns a new spec (the caller owns it; its execution_id is
 * left empty), or NULL with `err` set to PX_E_INVALID and a message that
 * names the field, e.g. "metadata.config.memory_mb: 99999 is above the
 * maximum 8192". */
px_job_spec *px_codec_job_spec(const Pyexec__V1__ExecuteRequest *req, const px_config *cfg,
                               px_error *err);

/* The SHA-256 of `req`'s content, for request_id: the canonical protobuf
 * encoding of the message as protobuf-c packs it (fields in number order,
 * proto3 defaults omitted, unknown fields kept) with `async` and
 * `request_id` cleared, so two requests differing in any other field differ.
 * Hashed while packing: no copy of the request is made. */
void px_codec_request_digest(const Pyexec__V1__ExecuteRequest *req,
                             uint8_t out[PX_SHA256_LEN]);

/* An ExecutionResult with the sub-messages it points to; all borrowed from
 * the view it was filled from, which must outlive it. */
typedef struct px_result_msg {
    Pyexec__V1__ExecutionResult result;
    Google__Protobuf__Timestamp started_at;
    Google__Protobuf__Timestamp finished_at;
    Pyexec__V1__ResourceUsage usage;
} px_result_msg;

void px_codec_result(px_result_msg *msg, const px_record_view *view);

#endif
