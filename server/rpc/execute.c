/*
 * Execute: decode, validate (INVALID_ARGUMENT before anything exists), make
 * or find the record (request_id: the same content finds it, other content
 * is ALREADY_EXISTS), admit the job (RESOURCE_EXHAUSTED /
 * UNAVAILABLE before any container), then answer at once (async) or when
 * the execution is terminal (sync). Nothing here blocks the queue thread:
 * the work is parsing and a hand-off to the store, which passes the job on
 * to run (px_store_admit: to this node's executor, or to the cluster's
 * queue); the runner's log lines name the request's origin (its RPC,
 * peer, sync or async). Everything after the request became a spec
 * (px_execute_admit) is shared with Eval.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyexec/v1/executor.pb-c.h"
#include "server/base/cleanup.h"
#include "server/base/log.h"
#include "server/base/quote.h"
#include "server/rpc/call.h"
#include "server/rpc/codec.h"

static void reply_now(px_waiter *w, px_record *record) {
    px_record_view view;
    px_error err = PX_ERROR_INIT;
    if (px_record_snapshot(record, true, &view, &err) < 0) {
        px_call_finish_error(&w->base, &err);
        return;
    }
    px_finish_with_view(&w->base, &view);
    px_record_view_release(&view);
}

void px_execute_admit(px_rpc_server *srv, px_waiter *w, const char *tenant, const char *request_id,
                      const uint8_t *digest, bool async, px_job_spec *spec, px_error *err) {
    if (!spec)
        goto fail;
    snprintf(spec->tenant, sizeof spec->tenant, "%s", tenant);
    if (strlen(request_id) > 256) {
        px_error_set(err, PX_E_INVALID, "request_id: longer than 256 bytes");
        goto fail;
    }
    bool eval = spec->eval;
    const char *rpc = eval ? "Eval" : "Execute";
    char peer[128], origin[160 + PX_TENANT_MAX];
    px_call_peer(&w->base, peer, sizeof peer);
    px_quoted qt;
    snprintf(origin, sizeof origin, "%s (%s) from %s%s%s%s", rpc, async ? "async" : "sync", peer,
             spec->tenant[0] ? " (tenant '" : "", px_quote_str(&qt, spec->tenant),
             spec->tenant[0] ? "')" : "");
    bool existed = false;
    px_record *record = px_store_admit(srv->store, request_id, digest, TAKE_PTR(spec), origin,
                                       &existed, err);
    if (!record) {
        if (err->code != PX_E_EXISTS)
            px_error_wrap(err, "%s", eval ? "eval" : "execute");
        goto fail;
    }
    if (existed)
        px_debug("execution %s: request_id repeated; not running again", px_record_id(record));
    if (async) {
        reply_now(w, record);
        px_record_unref(record);
        px_call_unref(&w->base);
        return;
    }
    w->kill_on_cancel = !existed;
    w->map_failures = true;
    px_waiter_wait(w, record);
    return;

fail:
    px_job_spec_free(spec);
    px_call_finish_error(&w->base, err);
    px_call_unref(&w->base);
}

void px_handle_execute(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload,
                       const char *tenant) {
    ProtobufCMessage *msg;
    px_waiter *w = px_waiter_open(srv, gcall, payload, "Execute", tenant,
                                  &pyexec__v1__execute_request__descriptor, &msg);
    if (!w)
        return;
    Pyexec__V1__ExecuteRequest *req = (Pyexec__V1__ExecuteRequest *)msg;
    px_error err = PX_ERROR_INIT;
    px_job_spec *spec = px_codec_job_spec(req, srv->cfg, &err);
    uint8_t digest[PX_SHA256_LEN];
    px_codec_request_digest(req, digest);
    px_execute_admit(srv, w, tenant, req->request_id, digest, req->async, spec, &err);
    protobuf_c_message_free_unpacked(msg, NULL);
}
