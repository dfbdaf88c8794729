/*
 * Unary calls that answer once an execution is terminal (sync Execute, Kill,
 * a repeated request_id). The waiter registers a store watcher; whichever
 * comes first, the registration itself or a change on an executor thread,
 * sees the terminal state and sends the one reply. A cancelled call kills the
 * execution (docs/contract.md: CLIENT_CANCELLED) when kill_on_cancel is set; the
 * reply then goes nowhere, which is fine. The watcher is removed on a
 * completion-queue thread after the final batch, never inside its own
 * callback.
 */
#include <stdlib.h>
#include <string.h>

#include "server/base/log.h"
#include "server/rpc/call.h"
#include "server/rpc/codec.h"
#include "server/rpc/status.h"

bool px_finish_with_view(px_call *call, const px_record_view *view) {
    px_result_msg msg;
    px_codec_result(&msg, view);
    pthread_mutex_lock(&call->mu);
    snprintf(call->reply_note, sizeof call->reply_note, "execution '%s' is %s", view->id,
             px_status_name(view->status));
    snprintf(call->execution_id, sizeof call->execution_id, "%s", view->id);
    pthread_mutex_unlock(&call->mu);
    return px_call_finish(call, &msg.result.base, GRPC_STATUS_OK, NULL);
}

/* Replies once the record is terminal. A wake-up (`woken`) is almost
 * always the end (control watchers are not woken by output), so it reads
 * the record with its output at once: one read instead of a check and a
 * read, which on Redis is one round trip fewer. */
static void try_reply(px_waiter *w, bool woken) {
    pthread_mutex_lock(&w->base.mu);
    bool done = w->replied;
    pthread_mutex_unlock(&w->base.mu);
    if (done)
        return;
    px_record_view view;
    px_error err = PX_ERROR_INIT;
    if (px_record_snapshot(w->record, woken, &view, &err) < 0) {
        px_call_finish_error(&w->base, &err);
        return;
    }
    bool terminal = px_status_terminal(view.status);
    if (!terminal || !woken)
        px_record_view_release(&view);
    if (!terminal)
        return;
    pthread_mutex_lock(&w->base.mu);
    done = w->replied;
    w->replied = true;
    pthread_mutex_unlock(&w->base.mu);
    if (done) {
        if (woken)
            px_record_view_release(&view);
        return;
    }
    if (!woken && px_record_snapshot(w->record, true, &view, &err) < 0) {
        px_call_finish_error(&w->base, &err);
        return;
    }
    const px_outcome *o = &view.outcome;
    if (w->map_failures && view.status == PX_STATUS_FAILED &&
        (o->error_code == PX_E_PRECONDITION || o->error_code == PX_E_UNAVAILABLE)) {
        char msg[PX_ERROR_MSG_MAX + 64];
        snprintf(msg, sizeof msg, "execution %s: %s", view.id, o->error);
        px_call_finish(&w->base, NULL, px_status_from_code(o->error_code), msg);
    } else {
        px_finish_with_view(&w->base, &view);
    }
    px_record_view_release(&view);
}

static void on_change(void *ud, px_record *r) {
    (void)r;
    try_reply(ud, true);
}

/* The watcher holds a reference to the call, so the call cannot be freed
 * while a callback may still run; this drops both. */
static void drop_watch(px_waiter *w) {
    pthread_mutex_lock(&w->base.mu);
    px_watch *watch = w->watch;
    w->watch = NULL;
    pthread_mutex_unlock(&w->base.mu);
    if (watch) {
        px_record_unwatch(w->record, watch);
        px_call_unref(&w->base);
    }
}

static void on_close(px_call *call, bool cancelled) {
    px_waiter *w = (px_waiter *)call;
    pthread_mutex_lock(&call->mu);
    bool kill = cancelled && w->kill_on_cancel && !w->replied && w->record;
    if (cancelled)
        w->replied = true; /* nobody is left to answer */
    w->closed = true;
    pthread_mutex_unlock(&call->mu);
    if (kill && px_record_kill(w->record, PX_KILL_CANCEL))
        px_info("execution %s: killing; the sync caller went away", px_record_id(w->record));
    drop_watch(w);
}

static void on_finished(px_call *call, bool ok) {
    (void)ok;
    px_waiter *w = (px_waiter *)call;
    pthread_mutex_lock(&call->mu);
    w->closed = true;
    pthread_mutex_unlock(&call->mu);
    drop_watch(w);
}

static void destroy(px_call *call) {
    px_waiter *w = (px_waiter *)call;
    px_record_unref(w->record);
}

/* A waiter for `gcall` (taken over); NULL if the call is already dead. */
static px_waiter *waiter_new(px_rpc_server *srv, grpc_call *gcall) {
    static const px_call_ops ops = {
        .on_close = on_close, .on_finished = on_finished, .destroy = destroy};
    return px_call_new(sizeof(px_waiter), srv, gcall, NULL, &ops);
}

px_waiter *px_waiter_open(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload,
                          const char *rpc, const char *tenant,
                          const ProtobufCMessageDescriptor *desc, ProtobufCMessage **req) {
    px_waiter *w = waiter_new(srv, gcall);
    if (!w) {
        if (payload)
            grpc_byte_buffer_destroy(payload);
        return NULL;
    }
    w->base.rpc = rpc;
    px_call_set_tenant(&w->base, tenant);
    px_error err = PX_ERROR_INIT;
    *req = px_call_decode(payload, desc, &err);
    if (!*req) {
        px_call_finish_error(&w->base, &err);
        px_call_unref(&w->base);
        return NULL;
    }
    return w;
}

void px_waiter_wait(px_waiter *w, px_record *record) {
    pthread_mutex_lock(&w->base.mu);
    w->record = record;
    pthread_mutex_unlock(&w->base.mu);
    px_error err = PX_ERROR_INIT;
    /* Registered before the state is checked, so no change is missed; no
     * check when the registration saw the record not ended (on Redis, a
     * round trip fewer: the end will wake the watcher). */
    px_call_ref(&w->base); /* the watcher's */
    bool live = false;
    px_watch *watch = px_record_watch_live(record, PX_WATCH_CONTROL, on_change, w, &live, &err);
    if (!watch) {
        px_call_unref(&w->base);
        px_call_finish_error(&w->base, &err);
        px_call_unref(&w->base);
        return;
    }
    pthread_mutex_lock(&w->base.mu);
    w->watch = watch;
    bool closed = w->closed;
    pthread_mutex_unlock(&w->base.mu);
    if (closed)
        drop_watch(w);
    else if (!live)
        try_reply(w, false);
    px_call_unref(&w->base);
}
