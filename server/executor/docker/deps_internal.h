/*
 * Private to the dependency cache's files (see sandbox_internal.h):
 *   deps.c         layers: the index, acquire (hit, wait or build), release
 *                  and LRU eviction, the counters;
 *   deps_helper.c  the short-lived helper containers (deps_helper.py) that
 *                  list, build, remove layers and detect imports;
 *   deps_detect.c  the requirements of a run: its own plus the detected ones.
 */
#ifndef PYEXEC_EXECUTOR_DOCKER_DEPS_INTERNAL_H
#define PYEXEC_EXECUTOR_DOCKER_DEPS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "server/base/error.h"
#include "server/executor/docker/sandbox_internal.h"
#include "server/executor/sandbox.h"
#include "server/model/job.h"

#define HELPER_OUT_MAX (64 * 1024) /* the helper's stdout (its JSON result) */

/* How a helper run ended, beyond its exit code. */
typedef enum helper_end { HELPER_EXITED, HELPER_KILLED, HELPER_TIMED_OUT } helper_end;

typedef struct helper_io {
    px_sandbox_run *run; /* the execution whose stderr gets the helper's; or NULL */
    const uint8_t *in;   /* the helper's stdin (detect: the project); NULL: none */
    size_t in_len, in_off;
    char out[HELPER_OUT_MAX + 1];
    size_t out_len;
} helper_io;

/* ---- deps_helper.c ---- */

/* Runs the helper (`args`: its mode and the mode's arguments) in a new
 * container of `image` to its end (`deadline`: monotonic ms, 0: none).
 * Returns 0 with *end and, when it exited, *exit_code; or -1 with `err`
 * set. The container is gone either way. */
int sb_deps_run_helper(docker_sandbox *sb, const char *image, const char *const *args,
                       size_t n_args, helper_io *io, int64_t deadline, helper_end *end,
                       int *exit_code, px_error *err);

/* ---- deps.c ---- */

/* Reads the index before the first dependency run if start-up could not
 * (sb_deps_load without cleaning); logs a failure. */
void sb_deps_ensure_loaded(docker_sandbox *sb);
/* Fills `result` for a run that has no layer because of `err` (a kill or
 * timeout, by `end`, ends the run as one: exit 137; else !ran with it). */
void sb_deps_no_layer(px_sandbox_result *result, const px_error *err, helper_end end);
/* Writes `text` to the run's stderr. */
void sb_deps_say(px_sandbox_run *run, const char *text);
/* Reports the run's start and sets *deadline from its timeout, once. */
void sb_deps_start_clock(const px_job_spec *spec, px_sandbox_run *run, int64_t *deadline);

#endif
