/*
 * The sandbox back-end interface: how the executor runs one job in some
 * isolated environment. Production uses the Docker back-end
 * (server/executor/docker); tests use fakes through the same vtable.
 *
 * The executor calls ops->run() on one of its worker threads for each job.
 * run() blocks until the job is over and its sandbox is gone, and meanwhile
 * talks back through the px_sandbox_run control object:
 *   - px_sandbox_run_started() once the program's container has started
 *     (the wall-clock timeout counts from there);
 *   - px_sandbox_run_output() for each chunk of stdout/stderr, in order;
 *   - px_sandbox_run_kill_requested() / px_sandbox_run_wake_fd(): when the
 *     executor wants the job ended (Kill RPC, cancellation, output cap,
 *     shutdown), the wake fd becomes readable; run() must then SIGKILL and
 *     remove the sandbox promptly (well under a second) and return;
 *   - px_sandbox_run_ended(), optionally, once the result is final but the
 *     sandbox still has to be cleaned up: the executor reports the result at
 *     once, and run() removes the sandbox and returns (the worker stays
 *     busy until then).
 */
#ifndef PYEXEC_EXECUTOR_SANDBOX_H
#define PYEXEC_EXECUTOR_SANDBOX_H

#include "server/model/job.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct px_sandbox_run px_sandbox_run;

/* Raw facts a back-end reports; the executor classifies them (docs/contract.md). */
typedef struct px_sandbox_result {
    /* The sandbox started and the run reached an end (exit, kill, timeout).
     * false: it failed before or while starting, or was lost; see `error`. */
    bool ran;
    int exit_code;   /* as the container reported it: 128+N for signal N */
    bool timed_out;  /* the back-end hit spec->timeout_s and killed it */
    bool oom_killed; /* the memory cgroup killed a process */
    bool lost;       /* the sandbox vanished behind our back (reason LOST) */
    int64_t peak_memory_bytes;
    int64_t cpu_time_ms;
    px_error error;  /* when !ran or lost: code + message */
    px_py_report py; /* Eval's report; owned by the result (run_job frees it) */
} px_sandbox_result;

typedef struct px_sandbox_ops {
    /* Runs `spec` to completion; see the file comment. Fills *result
     * (zeroed by the caller). Called concurrently from several workers. */
    void (*run)(void *self, const px_job_spec *spec, px_sandbox_run *run,
                px_sandbox_result *result);
    /* Returns 0 if the back-end is usable (the engine answers), or -1 with
     * `err` set. Must return within a few seconds. Any thread. */
    int (*ping)(void *self, px_error *err);
    /* Stops background work (reaper) and frees the back-end. Called once,
     * after every run() has returned. */
    void (*destroy)(void *self);
} px_sandbox_ops;

typedef struct px_sandbox {
    const px_sandbox_ops *ops;
    void *self;
} px_sandbox;

/* ---- for back-ends, during run() ---- */

/* Reports that the program started. Thread: the run() thread. */
void px_sandbox_run_started(px_sandbox_run *run);

/* Delivers one output chunk (borrowed for the call). The executor applies
 * the output cap: past it, it keeps the prefix and requests a kill.
 * Thread: the run() thread. */
void px_sandbox_run_output(px_sandbox_run *run, px_stream stream, const uint8_t *data, size_t len);

/* Nonzero if the executor asked for the job to end: the cause, or a value
 * outside px_kill_cause when the executor's output cap asked (back-ends
 * treat every nonzero value alike). Any thread. */
px_kill_cause px_sandbox_run_kill_requested(const px_sandbox_run *run);

/* A file descriptor that becomes readable once a kill is requested; for
 * poll(). Owned by the executor; never read from or close it. -1 after
 * px_sandbox_run_ended(). */
int px_sandbox_run_wake_fd(const px_sandbox_run *run);

/* Reports the final result before run() returns (for a back-end whose
 * cleanup takes a while after the program's end is known). After this call
 * the back-end must not report output or the start again, kill requests
 * have no effect, and the `result` run() fills is ignored.
 * Thread: the run() thread. */
void px_sandbox_run_ended(px_sandbox_run *run, const px_sandbox_result *result);

#ifdef __cplusplus
}
#endif

#endif
