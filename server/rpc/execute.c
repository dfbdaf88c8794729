/*
 * Execute: decode, validate (INVALID_ARGUMENT before anything exists), make
 * or find the record (request_id: the same content finds it, other content
 * is ALREADY_EXISTS), admit the job (RESOURCE_EXHAUSTED /
 * UNAVAILABLE before any container), then answer at once (async) or when
 * the execution is terminal (sync). Nothing here blocks the queue thread:
 * the work is parsing and a hand-off to the executor.
 *
 * The executor's events drive the record: on_running -> RUNNING,
 * on_output -> the output log, on_done -> the terminal transition. The job
 * holds a reference to the record until on_done, and what the end's log
 * line says about the request (its peer, sync or async, when it came).
 */
#include <stdlib.h>
#include <string.h>

#include "pyexec/v1/executor.pb-c.h"
#include "server/base/clock.h"
#include "server/base/log.h"
#include "server/rpc/call.h"
#include "server/rpc/codec.h"

/* The executor events' user data: one per admitted job. */
typedef struct job_ctx {
    px_record *record;        /* one reference, released in ev_done */
    bool async;
    int64_t admitted_mono_ms;
    char peer[128];
} job_ctx;

static void ev_running(void *ud, int64_t started_at_ms) {
    job_ctx *c = ud;
    px_record_set_running(c->record, started_at_ms);
}

static void ev_output(void *ud, px_stream stream, const uint8_t *data, size_t len) {
    job_ctx *c = ud;
    px_record_append(c->record, stream, data, len);
}

/* One line per execution's end, e.g. "execution exe_..: COMPLETED (EXITED),
 * exit code 0; ran 1210 ms, 1302 ms since admitted; Execute (sync) from
 * ipv4:127.0.0.1:40312". */
static void log_end(const job_ctx *c, const px_outcome *o) {
    char ran[48] = "";
    if (o->started_at_ms > 0 && o->finished_at_ms >= o->started_at_ms)
        snprintf(ran, sizeof ran, "ran %lld ms, ",
                 (long long)(o->finished_at_ms - o->started_at_ms));
    char code[32] = "";
    if (o->ran)
        snprintf(code, sizeof code, ", exit code %d", o->exit_code);
    long long total = (long long)(px_now_mono_ms() - c->admitted_mono_ms);
    const char *id = px_record_id(c->record);
    const char *how = c->async ? "async" : "sync";
    if (o->status == PX_STATUS_FAILED)
        px_warn("execution %s: FAILED (%s)%s: %s; %s%lld ms since admitted; Execute (%s) from %s",
                id, px_reason_name(o->reason), code, o->error, ran, total, how, c->peer);
    else
        px_info("execution %s: %s (%s)%s%s; %s%lld ms since admitted; Execute (%s) from %s", id,
                px_status_name(o->status), px_reason_name(o->reason), code,
                o->output_truncated ? ", output truncated" : "", ran, total, how, c->peer);
}

static void ev_done(void *ud, const px_outcome *o) {
    job_ctx *c = ud;
    log_end(c, o);
    px_record_finish(c->record, o);
    px_record_unref(c->record);
    free(c);
}

static int start_job(px_rpc_server *srv, px_waiter *w, bool async, px_record *record,
                     px_job_spec *spec, px_error *err) {
    snprintf(spec->execution_id, sizeof spec->execution_id, "%s", px_record_id(record));
    job_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    c->record = record;
    c->async = async;
    c->admitted_mono_ms = px_now_mono_ms();
    px_call_peer(&w->base, c->peer, sizeof c->peer);
    /* The job may end, and free `c`, before submit returns. */
    char peer[sizeof c->peer];
    memcpy(peer, c->peer, sizeof peer);
    px_job_events events = {
        .ud = c, .on_running = ev_running, .on_output = ev_output, .on_done = ev_done};
    px_record_ref(record); /* the job's, released in ev_done */
    px_job *job = px_executor_submit(srv->ex, spec, &events, err);
    if (!job) {
        px_record_unref(record);
        free(c);
        return -1;
    }
    px_info("execution %s: admitted; Execute (%s) from %s", px_record_id(record),
            async ? "async" : "sync", peer);
    px_record_attach_job(record, srv->job_ops, srv->ex, job);
    return 0;
}

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

void px_handle_execute(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload) {
    px_waiter *w = px_waiter_new(srv, gcall);
    if (!w) {
        if (payload)
            grpc_byte_buffer_destroy(payload);
        return;
    }
    w->base.rpc = "Execute";
    px_error err = PX_ERROR_INIT;
    Pyexec__V1__ExecuteRequest *req = (Pyexec__V1__ExecuteRequest *)px_call_decode(
        payload, &pyexec__v1__execute_request__descriptor, &err);
    if (!req) {
        px_call_finish_error(&w->base, &err);
        px_call_unref(&w->base);
        return;
    }
    bool async = req->async;
    if (strlen(req->request_id) > 256) {
        px_error_set(&err, PX_E_INVALID, "request_id: longer than 256 bytes");
        goto fail;
    }
    px_job_spec *spec = px_codec_job_spec(req, srv->cfg, &err);
    if (!spec)
        goto fail;
    uint8_t digest[PX_SHA256_LEN];
    px_codec_request_digest(req, digest);
    bool existed = false;
    px_record *record = px_store_create(srv->store, req->request_id, digest, &existed, &err);
    if (!record) {
        px_job_spec_free(spec);
        goto fail;
    }
    if (existed) {
        px_job_spec_free(spec);
        px_debug("execution %s: request_id repeated; not running again", px_record_id(record));
    } else if (start_job(srv, w, async, record, spec, &err) < 0) {
        px_store_remove(srv->store, record);
        px_record_unref(record);
        px_error_wrap(&err, "execute");
        goto fail;
    }
    protobuf_c_message_free_unpacked(&req->base, NULL);
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
    protobuf_c_message_free_unpacked(&req->base, NULL);
    px_call_finish_error(&w->base, &err);
    px_call_unref(&w->base);
}
