/*
 * The executor as a store's job runner (server/store/runner.h): a submitted
 * job runs on the executor, its events drive the record (on_running ->
 * RUNNING, on_output -> the output log, on_done -> the terminal
 * transition), and the record can kill it (Kill, cancellation). The job
 * holds a reference to the record until on_done. One log line when a job
 * is admitted and one when it ends, naming its origin.
 */
#ifndef PYEXEC_EXECUTOR_RUNNER_H
#define PYEXEC_EXECUTOR_RUNNER_H

#include "server/executor/executor.h"
#include "server/store/runner.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A runner that submits to `ex` (borrowed: it must outlive every store
 * using the runner, and the records' jobs). */
px_job_runner px_executor_runner(px_executor *ex);

#ifdef __cplusplus
}
#endif

#endif
