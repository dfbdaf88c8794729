/*
 * A scripted, deterministic sandbox back-end for tests (px_sandbox_ops).
 *
 * The behaviour of each run is read from the job spec itself, so tests need
 * no side channel: every element of `spec->args` (the script arguments) is
 * one step, executed in order, followed by the value of every environment
 * variable FAKE_STEP=<step> (so that an Eval, which has no arguments, can
 * be scripted too). No steps: the run starts, prints nothing
 * and exits 0. Steps:
 *
 *   print:<text>    write <text> to stdout (one chunk)
 *   stderr:<text>   write <text> to stderr (one chunk)
 *   stdin           write the spec's stdin bytes to stdout (one chunk, if any)
 *   flood:<n>       write <n> bytes to stdout in chunks of at most 4096; byte i
 *                   of the flood is 'a' + i % 26. Before each chunk, a
 *                   requested kill ends the run as killed (exit 137).
 *   result:<text>   set the Eval report's result to <text>
 *   raised:<type>:<line>:<message>
 *                   set the Eval report's error fields
 *   mode            write "eval\n" or "execute\n" (spec->eval) to stdout
 *   image           write spec->image to stdout
 *   exit:<n>        end now with exit code <n>; later steps are ignored
 *   ended:<n>       report the result early (px_sandbox_run_ended: ran, exit
 *                   code <n>, cpu_time_ms 2), then go on with the next steps,
 *                   which model the back-end's cleanup (no output after it)
 *   sleep           block until a kill is requested (poll() on the wake fd,
 *                   no timeout), then end as killed (exit 137)
 *   gate:<name>     block until fake_sandbox_open_gate(fake, "<name>") was
 *                   called (a latch: once open, it stays open), IGNORING kill
 *                   requests; then go on with the next step. `gate` alone is
 *                   the gate named "". Use it to hold a run at a known point
 *                   and create races deterministically.
 *   timeout         end as the back-end's wall-clock timeout: timed_out,
 *                   exit 137
 *   oom             end as an OOM kill: oom_killed, exit 137
 *   fail            end with ran=false, error PX_E_INTERNAL
 *   noimage         end with ran=false, error PX_E_PRECONDITION
 *   unavailable     end with ran=false, error PX_E_UNAVAILABLE
 *   lost            end with ran=false, lost=true, error PX_E_INTERNAL
 *   (anything else) end with ran=false, error PX_E_INVALID naming the step
 *
 * The run reports px_sandbox_run_started() before its first step unless that
 * step is fail, noimage or unavailable (a failure before the program
 * started). After the last step the run ends with exit 0. A run that ends
 * normally ignores kill requests that came too late to stop it, like a real
 * back-end whose program already exited: the executor classifies.
 *
 * Example: args {"print:hi", "stderr:oops", "exit:3"}.
 *
 * Thread safety: all functions may be called from any thread. The fake is
 * reference counted: fake_sandbox_new() returns one reference, and each
 * px_sandbox from fake_sandbox_as_sandbox() holds another that the
 * executor's destroy() releases, so a test can inspect the fake after the
 * executor is gone.
 */
#ifndef PYEXEC_TESTS_EXECUTOR_FAKE_SANDBOX_H
#define PYEXEC_TESTS_EXECUTOR_FAKE_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "server/executor/sandbox.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fake_sandbox fake_sandbox;

/* Returns a new fake with one reference; aborts if out of memory. */
fake_sandbox *fake_sandbox_new(void);

/* Drops one reference. NULL-safe. */
void fake_sandbox_unref(fake_sandbox *f);

/* A back-end handle for px_executor_new(); takes a new reference, released
 * by the ops' destroy(). */
px_sandbox fake_sandbox_as_sandbox(fake_sandbox *f);

/* Opens gate `name` for every current and future run waiting on it. */
void fake_sandbox_open_gate(fake_sandbox *f, const char *name);

/* Waits until at least `n` runs have reached gate `name` in total (counting
 * ones that have passed it already). Returns false if `timeout_ms` passed. */
bool fake_sandbox_wait_gate(fake_sandbox *f, const char *name, unsigned n, int64_t timeout_ms);

/* Waits until at least `n` runs have started (run() entered) in total.
 * Returns false if `timeout_ms` passed. */
bool fake_sandbox_wait_runs(fake_sandbox *f, unsigned n, int64_t timeout_ms);

/* Number of run() calls entered so far, and currently inside run(). */
unsigned fake_sandbox_runs(fake_sandbox *f);
unsigned fake_sandbox_running(fake_sandbox *f);

/* A job spec whose script arguments are the given steps (a NULL-terminated
 * list), with image "fake:image", entrypoint "main.py", timeout 30 s and
 * memory 64 MB; the caller owns it (px_job_spec_free). Aborts if out of
 * memory. */
px_job_spec *fake_sandbox_spec(const char *step, ...);

/* Makes ping() fail with PX_E_UNAVAILABLE (down) or succeed. */
void fake_sandbox_set_down(fake_sandbox *f, bool down);

#ifdef __cplusplus
}
#endif

#endif
