/*
 * The executor as a job runner (see runner.h).
 */
#include "server/executor/runner.h"

#include <stdio.h>
#include <stdlib.h>

#include "server/base/clock.h"
#include "server/base/log.h"
#include "server/store/store.h"

/* The executor events' user data: one per submitted job. */
typedef struct job_ctx {
    px_record *record; /* one reference, released in ev_done */
    int64_t admitted_mono_ms;
    char origin[160];
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
    if (o->status == PX_STATUS_FAILED)
        px_warn("execution %s: FAILED (%s)%s: %s; %s%lld ms since admitted; %s", id,
                px_reason_name(o->reason), code, o->error, ran, total, c->origin);
    else
        px_info("execution %s: %s (%s)%s%s; %s%lld ms since admitted; %s", id,
                px_status_name(o->status), px_reason_name(o->reason), code,
                o->output_truncated ? ", output truncated" : "", ran, total, c->origin);
}

static void ev_done(void *ud, const px_outcome *o) {
    job_ctx *c = ud;
    log_end(c, o);
    px_record_finish(c->record, o);
    px_record_unref(c->record);
    free(c);
}

static void job_kill(void *ctx, void *job, px_kill_cause cause) {
    px_executor_kill(ctx, job, cause);
}

static void job_unref(void *job) {
    px_job_unref(job);
}

/* Records may outlive the executor's users (a caller still holding one), so
 * the ops they point to are static. */
static const px_record_job_ops job_ops = {.kill = job_kill, .unref = job_unref};

static int submit(void *ctx, px_record *record, px_job_spec *spec, const char *origin,
                  px_error *err) {
    px_executor *ex = ctx;
    snprintf(spec->execution_id, sizeof spec->execution_id, "%s", px_record_id(record));
    job_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        px_job_spec_free(spec);
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    }
    c->record = record;
    c->admitted_mono_ms = px_now_mono_ms();
    snprintf(c->origin, sizeof c->origin, "%s", origin ? origin : "");
    px_job_events events = {
        .ud = c, .on_running = ev_running, .on_output = ev_output, .on_done = ev_done};
    px_record_ref(record); /* the job's, released in ev_done */
    px_job *job = px_executor_submit(ex, spec, &events, err);
    if (!job) {
        px_record_unref(record);
        free(c);
        return -1;
    }
    /* Not c->origin: the job may have ended, and freed `c`, by now. */
    px_info("execution %s: admitted; %s", px_record_id(record), origin ? origin : "");
    px_record_attach_job(record, &job_ops, ex, job);
    return 0;
}

static const px_job_runner_ops runner_ops = {.submit = submit};

px_job_runner px_executor_runner(px_executor *ex) {
    return (px_job_runner){.ops = &runner_ops, .ctx = ex};
}
