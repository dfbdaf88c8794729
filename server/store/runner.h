/*
 * What a store hands admitted jobs to: the runner interface. The executor
 * implements it (px_executor_runner, server/executor/runner.h); the store
 * decides when a job reaches it: the in-memory store at once, when the job
 * is admitted; the Redis store when this node claims the job from the
 * cluster's queue.
 *
 * Thread safety: the ops may be called from any thread.
 */
#ifndef PYEXEC_STORE_RUNNER_H
#define PYEXEC_STORE_RUNNER_H

#include "server/base/error.h"
#include "server/model/job.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct px_record px_record;

typedef struct px_job_runner_ops {
    /* Starts running `spec` (ownership taken in all cases) for `record`
     * (borrowed; the runner takes its own reference): the runner drives the
     * record (px_record_set_running, _append, _finish) and attaches the job
     * for kills. `origin` says where the request came from, for logs.
     * Returns 0, or -1 with `err` set (PX_E_EXHAUSTED when full,
     * PX_E_UNAVAILABLE while shutting down); then the record is untouched. */
    int (*submit)(void *ctx, px_record *record, px_job_spec *spec, const char *origin,
                  px_error *err);
} px_job_runner_ops;

typedef struct px_job_runner {
    const px_job_runner_ops *ops; /* NULL: no runner (the store can admit nothing) */
    void *ctx;
} px_job_runner;

#ifdef __cplusplus
}
#endif

#endif
