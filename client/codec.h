/*
 * Conversion between libpyexec's plain structs and the protobuf-c messages
 * of proto/pyexec/v1/executor.proto. Internal to client/ (not installed).
 * Thread safety: pure functions on caller-owned data.
 */
#ifndef PYEXEC_CLIENT_CODEC_H
#define PYEXEC_CLIENT_CODEC_H

#include "client/pyexec.h"
#include "client/pyexec_error.h"
#include "pyexec/v1/executor.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Storage behind a packed-ready ExecuteRequest that borrows the strings and
 * bytes of a pyexec_request. Release with codec_request_release(). */
typedef struct codec_request {
    Pyexec__V1__ExecuteRequest msg;
    Pyexec__V1__Metadata meta;
    Pyexec__V1__ExecutionConfig config;
    Google__Protobuf__BoolValue network_disabled;
    Pyexec__V1__File *file_msgs;
    Pyexec__V1__File **file_ptrs;
} codec_request;

/* Fills `out` from `req` (borrowed: `req` must outlive `out`). Returns 0, or
 * -1 with PYEXEC_E_INVALID for a request that cannot be encoded (NULL path,
 * negative limit) or PYEXEC_E_INTERNAL when out of memory. */
int codec_request_init(codec_request *out, const pyexec_request *req, bool async,
                       pyexec_error *err);

/* Frees what codec_request_init allocated. Safe on a zeroed struct. */
void codec_request_release(codec_request *r);

/* Storage behind a packed-ready EvalRequest borrowing `code` and the
 * fields of a pyexec_request (see pyexec_eval_sync). */
typedef struct codec_eval {
    codec_request base; /* config, files */
    Pyexec__V1__EvalRequest msg;
} codec_eval;

/* Fills `out` from `code` and `req` (may be NULL). Returns 0, or -1 with
 * PYEXEC_E_INVALID (a field Eval does not have is set, or as
 * codec_request_init) or PYEXEC_E_INTERNAL. */
int codec_eval_init(codec_eval *out, const char *code, const pyexec_request *req, bool async,
                    pyexec_error *err);

/* Frees what codec_eval_init allocated. Safe on a zeroed struct. */
void codec_eval_release(codec_eval *e);

/* Copies `msg` into a new caller-owned pyexec_result. NULL `msg` gives an
 * empty result. Returns NULL with PYEXEC_E_INTERNAL when out of memory. */
pyexec_result *codec_result_from_msg(const Pyexec__V1__ExecutionResult *msg, pyexec_error *err);

#ifdef __cplusplus
}
#endif

#endif
