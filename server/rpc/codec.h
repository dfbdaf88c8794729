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
void px_codec_request_digest(const Pyexec__V1__ExecuteRequest *req, uint8_t out[PX_SHA256_LEN]);

/* The same for an Eval (an EvalRequest's digest never equals an
 * ExecuteRequest's: a request_id reused across the two RPCs is a reuse
 * with other content). */
void px_codec_eval_digest(const Pyexec__V1__EvalRequest *req, uint8_t out[PX_SHA256_LEN]);

/* The spec of an Eval: `req` is validated as the ExecuteRequest it amounts
 * to (`code` as the file main.py, or `files` with `entrypoint`; stdin,
 * config, python_version, requirements_txt and env_vars as in Metadata), by
 * px_codec_job_spec, so both RPCs share one set of rules; error messages
 * name the EvalRequest's fields. The spec has `eval` set. Returns NULL with
 * `err` (PX_E_INVALID) like px_codec_job_spec. */
px_job_spec *px_codec_eval_spec(const Pyexec__V1__EvalRequest *req, const px_config *cfg,
                                px_error *err);
/* ListExecutions' arguments, checked for both doors: `page_size` (0: the
 * default, 50; else 1..PX_STORE_LIST_MAX) into *size and `status` (an
 * ExecutionStatus value; UNSPECIFIED: any) into *out. Returns 0, or -1
 * with `err` (PX_E_INVALID naming the field). */
int px_codec_list_args(int32_t page_size, int status, size_t *size, px_status *out, px_error *err);

/* An ExecutionResult with the sub-messages it points to; all borrowed from
 * the view it was filled from, which must outlive it. */
typedef struct px_result_msg {
    Pyexec__V1__ExecutionResult result;
    Google__Protobuf__Timestamp started_at;
    Google__Protobuf__Timestamp finished_at;
    Pyexec__V1__ResourceUsage usage;
    Google__Protobuf__StringValue result_value;
} px_result_msg;

void px_codec_result(px_result_msg *msg, const px_record_view *view);

#endif
