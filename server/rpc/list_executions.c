/*
 * ListExecutions: one page of the retained executions, newest first, without
 * their output. The store picks the page (and makes the page token); this
 * file checks the request and encodes each record's state.
 */
#include <stdlib.h>

#include "pyexec/v1/executor.pb-c.h"
#include "server/base/cleanup.h"
#include "server/rpc/call.h"
#include "server/rpc/codec.h"

/* The encoded page: one view and message per record. */
typedef struct page_msgs {
    size_t n;
    px_record_view *views;
    px_result_msg *msgs;
    Pyexec__V1__ExecutionResult **ptrs;
} page_msgs;

static void page_msgs_release(page_msgs *m) {
    for (size_t i = 0; m->views && i < m->n; i++)
        px_record_view_release(&m->views[i]);
    free(m->views);
    free(m->msgs);
    free(m->ptrs);
}

static int list_page(px_rpc_server *srv, const char *tenant,
                     const Pyexec__V1__ListExecutionsRequest *req, px_store_page *page,
                     px_error *err) {
    size_t size;
    px_status status;
    if (px_codec_list_args(req->page_size, (int)req->status, &size, &status, err) < 0)
        return -1;
    return px_store_list(srv->store, tenant, status, size, req->page_token, page, err);
}

void px_handle_list_executions(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload,
                               const char *tenant) {
    static const px_call_ops ops = {0};
    px_call *call = px_call_new(sizeof *call, srv, gcall, &payload, &ops);
    if (!call)
        return;
    call->rpc = "ListExecutions";
    px_call_set_tenant(call, tenant);
    px_error err = PX_ERROR_INIT;
    Pyexec__V1__ListExecutionsRequest *req = (Pyexec__V1__ListExecutionsRequest *)px_call_decode(
        payload, &pyexec__v1__list_executions_request__descriptor, &err);
    px_store_page page = {0};
    page_msgs m = {0};
    if (!req || list_page(srv, tenant, req, &page, &err) < 0)
        goto fail;
    m.views = calloc(page.n + 1, sizeof *m.views);
    m.msgs = calloc(page.n + 1, sizeof *m.msgs);
    m.ptrs = calloc(page.n + 1, sizeof *m.ptrs);
    if (!m.views || !m.msgs || !m.ptrs) {
        px_error_set(&err, PX_E_INTERNAL, "list executions: out of memory");
        goto fail;
    }
    for (; m.n < page.n; m.n++) {
        if (px_record_snapshot(page.records[m.n], false, &m.views[m.n], &err) < 0)
            goto fail;
        px_codec_result(&m.msgs[m.n], &m.views[m.n]);
        m.ptrs[m.n] = &m.msgs[m.n].result;
    }
    Pyexec__V1__ListExecutionsResponse resp = PYEXEC__V1__LIST_EXECUTIONS_RESPONSE__INIT;
    resp.n_executions = m.n;
    resp.executions = m.ptrs;
    resp.next_page_token = page.next_token;
    px_call_finish(call, &resp.base, GRPC_STATUS_OK, NULL);
    goto out;
fail:
    px_call_finish_error(call, &err);
out:
    page_msgs_release(&m);
    px_store_page_release(&page);
    if (req)
        protobuf_c_message_free_unpacked(&req->base, NULL);
    px_call_unref(call);
}
