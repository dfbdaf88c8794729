/*
 * StreamOutput: replay the output log from `offset`, follow it live, then
 * send one final message carrying the terminal result, then status OK.
 *
 * Each reader keeps its own offset and has at most one SEND_MESSAGE in
 * flight. It never copies more than one message (at most
 * srv->stream_message_max bytes) out of the log, so a slow or stalled
 * reader costs one message of memory plus its call and never slows the
 * program or other readers: the log itself is bounded by the output cap.
 * Readers are bounded per execution (--max-stream-readers, the store's
 * count) and server-wide (--max-total-stream-readers, srv->stream_readers),
 * and the message size is the queued-bytes budget's share of one reader, so
 * all readers together never hold more than --max-stream-queued-bytes of
 * output: a reader past either bound is refused RESOURCE_EXHAUSTED.
 *
 * pump() is the only place that decides what to send next. It runs on the
 * thread of whoever made progress possible: the store watcher (an executor
 * thread, after an append or a state change) or the completion of the
 * previous send (a queue thread).
 *
 * States: streaming (sending || waiting for data) -> final message sent
 * (finished) -> call released. A cancelled call stops at once: its watcher
 * is removed on the queue thread that sees the cancellation.
 */
#include <stdlib.h>
#include <string.h>

#include "pyexec/v1/executor.pb-c.h"
#include "server/base/log.h"
#include "server/rpc/call.h"
#include "server/rpc/codec.h"

typedef struct stream_call {
    px_call base; /* first: freed by px_call_unref */
    px_record *record;
    px_watch *watch; /* under base.mu */
    bool admitted;   /* counted in srv->stream_readers */
    int64_t offset;  /* next byte to send; under base.mu */
    bool sending;    /* under base.mu */
    bool closed;     /* cancelled or finished; under base.mu */
} stream_call;

static void pump(stream_call *s);

static void on_sent(px_call *call, bool ok) {
    stream_call *s = (stream_call *)call;
    pthread_mutex_lock(&call->mu);
    s->sending = false;
    if (!ok)
        s->closed = true;
    pthread_mutex_unlock(&call->mu);
    if (ok)
        pump(s);
}

static void finish_with_result(stream_call *s, int64_t log_end) {
    px_record_view view;
    px_error err = PX_ERROR_INIT;
    if (px_record_snapshot(s->record, false, &view, &err) < 0) {
        px_call_finish_error(&s->base, &err);
        return;
    }
    px_result_msg result;
    px_codec_result(&result, &view);
    Pyexec__V1__OutputChunk chunk = PYEXEC__V1__OUTPUT_CHUNK__INIT;
    chunk.offset = log_end;
    chunk.result = &result.result;
    px_call_finish(&s->base, &chunk.base, GRPC_STATUS_OK, NULL);
    px_record_view_release(&view);
}

static void pump(stream_call *s) {
    pthread_mutex_lock(&s->base.mu);
    if (s->sending || s->closed || s->base.finished) {
        pthread_mutex_unlock(&s->base.mu);
        return;
    }
    px_log_chunk piece;
    px_error err = PX_ERROR_INIT;
    int rc = px_record_read(s->record, s->offset, s->base.srv->stream_message_max, &piece, &err);
    if (rc == PX_READ_DATA) {
        Pyexec__V1__OutputChunk chunk = PYEXEC__V1__OUTPUT_CHUNK__INIT;
        chunk.stream = (Pyexec__V1__Stream)piece.stream;
        chunk.data.data = piece.data;
        chunk.data.len = piece.len;
        chunk.offset = piece.offset;
        if (px_call_send_locked(&s->base, &chunk.base, on_sent)) {
            s->sending = true;
            s->offset = piece.offset + (int64_t)piece.len;
        } else {
            s->closed = true;
        }
        free(piece.data);
        pthread_mutex_unlock(&s->base.mu);
        return;
    }
    if (rc == PX_READ_WAIT) {
        pthread_mutex_unlock(&s->base.mu);
        return;
    }
    int64_t end = s->offset;
    s->closed = true;
    pthread_mutex_unlock(&s->base.mu);
    if (rc == PX_READ_EOF)
        finish_with_result(s, end);
    else
        px_call_finish_error(&s->base, &err);
}

static void on_change(void *ud, px_record *r) {
    (void)r;
    pump(ud);
}

/* The watcher holds a reference to the call (so no callback can outlive
 * it); this drops both and stops the stream. */
static void drop_watch(stream_call *s) {
    pthread_mutex_lock(&s->base.mu);
    px_watch *watch = s->watch;
    s->watch = NULL;
    s->closed = true;
    pthread_mutex_unlock(&s->base.mu);
    if (watch) {
        px_record_unwatch(s->record, watch);
        px_call_unref(&s->base);
    }
}

static void on_close(px_call *call, bool cancelled) {
    (void)cancelled;
    drop_watch((stream_call *)call);
}

static void on_finished(px_call *call, bool ok) {
    (void)ok;
    drop_watch((stream_call *)call);
}

static void destroy(px_call *call) {
    stream_call *s = (stream_call *)call;
    if (s->admitted)
        atomic_fetch_sub(&call->srv->stream_readers, 1);
    px_record_unref(s->record);
}

/* Takes one of the server-wide reader slots, or fails with PX_E_EXHAUSTED. */
static int admit_reader(px_rpc_server *srv, px_error *err) {
    int max = srv->cfg->max_total_stream_readers;
    int n = atomic_load(&srv->stream_readers);
    do {
        if (n >= max)
            return px_error_set(err, PX_E_EXHAUSTED,
                                "server has %d StreamOutput readers (limit %d, "
                                "--max-total-stream-readers)",
                                n, max);
    } while (!atomic_compare_exchange_weak(&srv->stream_readers, &n, n + 1));
    return 0;
}

void px_handle_stream(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload,
                      const char *tenant) {
    static const px_call_ops ops = {
        .on_close = on_close, .on_finished = on_finished, .destroy = destroy};
    stream_call *s = px_call_new(sizeof *s, srv, gcall, &payload, &ops);
    if (!s)
        return;
    s->base.rpc = "StreamOutput";
    px_call_set_tenant(&s->base, tenant);
    px_error err = PX_ERROR_INIT;
    Pyexec__V1__StreamOutputRequest *req = (Pyexec__V1__StreamOutputRequest *)px_call_decode(
        payload, &pyexec__v1__stream_output_request__descriptor, &err);
    px_record *record = NULL;
    if (!req || px_check_id(req->execution_id, &err) < 0)
        goto fail;
    if (req->offset < 0) {
        px_error_set(&err, PX_E_INVALID, "offset: %lld is negative", (long long)req->offset);
        goto fail;
    }
    if (!(record = px_store_get_as(srv->store, tenant, req->execution_id, &err)))
        goto fail;
    px_call_set_execution(&s->base, req->execution_id);
    /* An offset past the end of a finished log is OUT_OF_RANGE at once.
     * Offset 0 never is (no read: on Redis a round trip fewer). */
    if (req->offset > 0) {
        px_log_chunk probe;
        int rc = px_record_read(record, req->offset, 1, &probe, &err);
        if (rc < 0)
            goto fail;
        if (rc == PX_READ_DATA)
            free(probe.data);
    }
    if (admit_reader(srv, &err) < 0)
        goto fail;
    s->admitted = true;
    s->record = record;
    s->offset = req->offset;
    record = NULL;
    protobuf_c_message_free_unpacked(&req->base, NULL);
    req = NULL;

    px_call_ref(&s->base); /* the watcher's */
    px_watch *watch = px_record_watch(s->record, PX_WATCH_READER, on_change, s, &err);
    if (!watch) {
        px_call_unref(&s->base);
        goto fail;
    }
    pthread_mutex_lock(&s->base.mu);
    s->watch = watch;
    bool closed = s->closed;
    pthread_mutex_unlock(&s->base.mu);
    if (closed)
        drop_watch(s);
    else
        pump(s);
    px_call_unref(&s->base);
    return;

fail:
    px_record_unref(record);
    if (req)
        protobuf_c_message_free_unpacked(&req->base, NULL);
    px_call_finish_error(&s->base, &err);
    px_call_unref(&s->base);
}
