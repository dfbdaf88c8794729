/*
 * Kill: idempotent. A pending or running execution is killed (the first
 * cause wins) and the reply waits until it is terminal, i.e. until the
 * sandbox is gone; a terminal one is returned unchanged.
 */
#include "pyexec/v1/executor.pb-c.h"
#include "server/base/log.h"
#include "server/rpc/call.h"

void px_handle_kill(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload,
                    const char *tenant) {
    ProtobufCMessage *msg;
    px_waiter *w = px_waiter_open(srv, gcall, payload, "Kill", tenant,
                                  &pyexec__v1__kill_request__descriptor, &msg);
    if (!w)
        return;
    Pyexec__V1__KillRequest *req = (Pyexec__V1__KillRequest *)msg;
    px_error err = PX_ERROR_INIT;
    px_record *record = NULL;
    if (px_check_id(req->execution_id, &err) < 0 ||
        !(record = px_store_get_as(srv->store, tenant, req->execution_id, &err))) {
        protobuf_c_message_free_unpacked(&req->base, NULL);
        px_call_finish_error(&w->base, &err);
        px_call_unref(&w->base);
        return;
    }
    protobuf_c_message_free_unpacked(&req->base, NULL);
    char peer[128];
    px_call_peer(&w->base, peer, sizeof peer);
    if (px_record_kill(record, PX_KILL_RPC))
        px_info("execution %s: killing; Kill from %s", px_record_id(record), peer);
    else
        px_debug("execution %s: already ended; Kill from %s changes nothing", px_record_id(record),
                 peer);
    px_waiter_wait(w, record);
}
