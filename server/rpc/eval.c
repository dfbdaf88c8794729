/*
 * Eval: Python code run REPL-style. The request is validated as the
 * ExecuteRequest it amounts to (px_codec_eval_spec) and then goes the way
 * of an Execute (px_execute_admit): same record, job, sync/async answer and
 * request_id rules. What differs happens in the sandbox: the spec's `eval`
 * flag makes the back-end run the program under the Eval wrapper, whose
 * report (result, or the exception raised) comes back in the outcome.
 */
#include "pyexec/v1/executor.pb-c.h"
#include "server/rpc/call.h"
#include "server/rpc/codec.h"

void px_handle_eval(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload,
                    const char *tenant) {
    ProtobufCMessage *msg;
    px_waiter *w = px_waiter_open(srv, gcall, payload, "Eval", tenant,
                                  &pyexec__v1__eval_request__descriptor, &msg);
    if (!w)
        return;
    Pyexec__V1__EvalRequest *req = (Pyexec__V1__EvalRequest *)msg;
    px_error err = PX_ERROR_INIT;
    px_job_spec *spec = px_codec_eval_spec(req, srv->cfg, &err);
    uint8_t digest[PX_SHA256_LEN];
    px_codec_eval_digest(req, digest);
    px_execute_admit(srv, w, tenant, req->request_id, digest, req->async, spec, &err);
    protobuf_c_message_free_unpacked(msg, NULL);
}
