/*
 * Eval: Python code run REPL-style. The request is validated as the
 * ExecuteRequest it amounts to (px_codec_eval_spec) and then goes the way
 * of an Execute (px_execute_admit): same record, job, sync/async answer and
 * request_id rules. What differs happens in the sandbox: the spec's `eval`
 * flag makes the back-end run the program under the Eval wrapper, whose
 * report (result, or the exception raised) comes back in the outcome.
 */
#include <stdio.h>

#include "pyexec/v1/executor.pb-c.h"
#include "server/rpc/call.h"
#include "server/rpc/codec.h"

void px_handle_eval(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload,
                    const char *tenant) {
    px_waiter *w = px_waiter_new(srv, gcall);
    if (!w) {
        if (payload)
            grpc_byte_buffer_destroy(payload);
        return;
    }
    w->base.rpc = "Eval";
    px_call_set_tenant(&w->base, tenant);
    px_error err = PX_ERROR_INIT;
    Pyexec__V1__EvalRequest *req = (Pyexec__V1__EvalRequest *)px_call_decode(
        payload, &pyexec__v1__eval_request__descriptor, &err);
    if (!req) {
        px_call_finish_error(&w->base, &err);
        px_call_unref(&w->base);
        return;
    }
    px_job_spec *spec = px_codec_eval_spec(req, srv->cfg, &err);
    if (spec)
        snprintf(spec->tenant, sizeof spec->tenant, "%s", tenant);
    uint8_t digest[PX_SHA256_LEN];
    px_codec_eval_digest(req, digest);
    px_execute_admit(srv, w, req->request_id, digest, req->async, spec, &err);
    protobuf_c_message_free_unpacked(&req->base, NULL);
}
