/* GetExecution: the current state of a retained execution, with its output. */
#include <stdlib.h>

#include "pyexec/v1/executor.pb-c.h"
#include "server/rpc/call.h"

void px_handle_get(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload,
                   const char *tenant) {
    static const px_call_ops ops = {0};
    px_call *call = px_call_new(sizeof *call, srv, gcall, &payload, &ops);
    if (!call)
        return;
    call->rpc = "GetExecution";
    px_call_set_tenant(call, tenant);
    px_error err = PX_ERROR_INIT;
    Pyexec__V1__GetExecutionRequest *req = (Pyexec__V1__GetExecutionRequest *)px_call_decode(
        payload, &pyexec__v1__get_execution_request__descriptor, &err);
    px_record_view view;
    if (req && px_check_id(req->execution_id, &err) == 0 &&
        px_store_view_as(srv->store, tenant, req->execution_id, true, &view, &err) == 0) {
        px_finish_with_view(call, &view);
        px_record_view_release(&view);
    } else {
        px_call_finish_error(call, &err);
    }
    if (req)
        protobuf_c_message_free_unpacked(&req->base, NULL);
    px_call_unref(call);
}
