/*
 * The execution lifecycle, independent of Docker.
 *
 * An executor owns a bounded queue and a fixed set of worker threads. Each
 * submitted job waits in the queue (PENDING), then runs on a worker through
 * the sandbox back-end (RUNNING once the program starts), then ends exactly
 * once with a px_outcome classified in docs/contract.md's order:
 *   kill by RPC -> KILLED/KILLED; client cancel -> KILLED/CLIENT_CANCELLED;
 *   shutdown -> FAILED/SANDBOX_ERROR; back-end failure -> FAILED/SANDBOX_ERROR
 *   or LOST; timeout -> COMPLETED/TIMEOUT; output cap -> COMPLETED/OUTPUT_LIMIT;
 *   OOM -> COMPLETED/MEMORY_LIMIT; else COMPLETED/EXITED.
 * The executor enforces the output cap (config.output_limit_bytes over
 * stdout+stderr): it passes on the prefix, marks output_truncated and kills.
 * A kill cause counts only if it was requested before the back-end's run()
 * returned. A job ended by shutdown gets error "killed by server shutdown"
 * and error_code PX_E_INTERNAL; a job killed while queued never runs
 * (ran = false, started_at_ms = 0).
 *
 * Events are delivered on worker threads (or, for a job killed while still
 * queued, on the thread calling px_executor_kill / px_executor_shutdown):
 * on_running at most once, then on_output zero or more times, then on_done
 * exactly once. No executor lock is held during a callback; callbacks may call
 * px_executor_kill() but must not block for long.
 */
#ifndef PYEXEC_EXECUTOR_EXECUTOR_H
#define PYEXEC_EXECUTOR_EXECUTOR_H

#include "server/base/metrics.h"
#include "server/executor/sandbox.h"
#include "server/model/job.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct px_executor px_executor;
typedef struct px_job px_job;

typedef struct px_executor_config {
    unsigned max_concurrent;     /* worker threads; >= 1 */
    unsigned max_queue;          /* jobs waiting beyond the running ones */
    uint64_t output_limit_bytes; /* stdout+stderr cap per job; 0: no cap */
    /* Where the executor counts (executions by status and reason, output
     * bytes, refusals; queue depth and running on demand); NULL: nowhere.
     * Must outlive the executor. */
    px_metrics *metrics;
} px_executor_config;

typedef struct px_job_events {
    void *ud;
    void (*on_running)(void *ud, int64_t started_at_ms);
    void (*on_output)(void *ud, px_stream stream, const uint8_t *data, size_t len);
    void (*on_done)(void *ud, const px_outcome *outcome);
} px_job_events;

/* Creates an executor that takes ownership of `sandbox` and starts its
 * workers. Returns NULL with `err` set on failure (the sandbox is then
 * destroyed). */
px_executor *px_executor_new(const px_executor_config *config, px_sandbox sandbox, px_error *err);

/* Queues a job. Takes ownership of `spec` in all cases. `events` is copied;
 * its `ud` must stay valid until on_done returns. On success returns a job
 * handle (a reference the caller releases with px_job_unref) and the job is
 * PENDING. Fails with PX_E_EXHAUSTED when max_concurrent + max_queue jobs are
 * already admitted, PX_E_UNAVAILABLE after shutdown began; then no event is
 * ever delivered. Any thread. */
px_job *px_executor_submit(px_executor *ex, px_job_spec *spec, const px_job_events *events,
                           px_error *err);

/* Asks for `job` to end with `cause`. Idempotent; the first cause wins.
 * Returns at once; on_done follows (synchronously, from this call, if the
 * job was still queued). No effect on a finished job. Any thread. */
void px_executor_kill(px_executor *ex, px_job *job, px_kill_cause cause);

void px_job_ref(px_job *job);
/* NULL-safe. */
void px_job_unref(px_job *job);

/* The back-end's health: 0, or -1 with `err` set. Any thread; may block a
 * few seconds. */
int px_executor_ping(px_executor *ex, px_error *err);

/* Number of jobs admitted and not yet done (queued + running). */
unsigned px_executor_active(px_executor *ex);

/* Graceful stop: refuses new jobs, waits up to `grace_ms` for admitted jobs
 * to end on their own, then kills the rest with PX_KILL_SHUTDOWN and waits
 * until every on_done has returned and the workers have exited. Idempotent.
 * Must not be called from an executor callback. */
void px_executor_shutdown(px_executor *ex, int64_t grace_ms);

/* Shuts down with grace 0 if needed, destroys the back-end, frees. NULL-safe. */
void px_executor_free(px_executor *ex);

#ifdef __cplusplus
}
#endif

#endif
