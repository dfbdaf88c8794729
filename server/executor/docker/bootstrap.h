/*
 * The in-container bootstrap and the preamble the server sends it.
 *
 * The container's command is `python3 -I -c <px_bootstrap_script()>`. The
 * server attaches to the container's stdin before starting it and writes:
 *   1. the preamble from px_bootstrap_preamble(): "PYX1 %010zu\n" (the
 *      header length) then one JSON object
 *      {"tar_len", "entrypoint", "args", "env", "pre_commands",
 *       "deps", "network", "nonce"}, where "deps" is the directory of the
 *      run's dependency layer (prepended to PYTHONPATH) or null, "env" is
 *      spec->env minus
 *      the names px_env_reserved() reserves
 *      (server/executor/reserved_env.h), plus for an Eval (spec->eval)
 *      "eval": the source of the Eval wrapper (eval_wrapper.py), which the
 *      bootstrap runs the entrypoint under;
 *   2. exactly tar_len bytes of the project archive (spec->tar);
 *   3. the user's stdin, then EOF (shutdown of the write side).
 * The bootstrap reads 1 and 2 with unbuffered reads and leaves 3 for the
 * program, which inherits fd 0. docs/sandbox.md describes the steps it runs
 * and the usage trailer it writes to stderr (see frames.h). The end marker
 * it writes to stdout carries the Eval wrapper's report, a JSON object with
 * "result", "error_type", "error_line", "error_message" (each when set),
 * or {} (Execute, or no report).
 *
 * Thread safety: all functions are reentrant.
 */
#ifndef PYEXEC_EXECUTOR_DOCKER_BOOTSTRAP_H
#define PYEXEC_EXECUTOR_DOCKER_BOOTSTRAP_H

#include <stddef.h>
#include <stdint.h>

#include "server/base/error.h"
#include "server/model/job.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Length of the framing line that precedes the JSON header. */
#define PX_BOOTSTRAP_LINE_LEN 16

/* The bootstrap's Python source: static, NUL-terminated. */
const char *px_bootstrap_script(void);

/* The Eval wrapper's Python source: static, NUL-terminated. */
const char *px_bootstrap_eval_wrapper(void);

/* Builds the preamble for `spec` with the per-run `nonce` and the run's
 * dependency layer directory `deps` (NULL: none) into a new buffer
 * (*out, *out_len; malloc'd, owned by the caller). Returns 0, or -1 with
 * `err` set: PX_E_INVALID if a string of the spec is not valid UTF-8 (JSON
 * cannot carry it), PX_E_INTERNAL on allocation failure. */
int px_bootstrap_preamble(const px_job_spec *spec, const char *nonce, const char *deps, char **out,
                          size_t *out_len, px_error *err);

/* The namespace mode's host supervisor (host.py): static, NUL-terminated.
 * A host container's command is `python3 -I -S -c <px_host_script()>
 * <px_bootstrap_script()>`. */
const char *px_host_script(void);

/* Builds one job for a host container (--isolation namespace) into a new
 * buffer (*out, *out_len; malloc'd, owned by the caller): "PYXH %010zu\n",
 * the host header {"nonce", "filter_len", "job_len", "work_mb" (spec's
 * disk_mb), "tmp_mb"}, the program's seccomp filter (`filter`, BPF), then
 * the bootstrap's own preamble as px_bootstrap_preamble() builds it, without
 * a nonce. job_len counts that preamble, the project and the user's stdin,
 * which follow on the stream. Returns 0, or -1 with `err` set, as
 * px_bootstrap_preamble(). */
int px_host_preamble(const px_job_spec *spec, const char *nonce, const char *deps,
                     const uint8_t *filter, size_t filter_len, int tmp_mb, char **out,
                     size_t *out_len, px_error *err);

/* Builds the message that has a new host container start the sandbox for
 * its first job before that job exists, into a new buffer (*out, *out_len;
 * malloc'd, owned by the caller): "PYXH %010zu\n", the host header
 * {"prime": true, "filter_len", "work_mb", "tmp_mb"}, then `filter`. The
 * host answers nothing; a job with the same parameters runs in that
 * sandbox. Returns 0, or -1 with `err` set. */
int px_host_prime(const uint8_t *filter, size_t filter_len, int work_mb, int tmp_mb, char **out,
                  size_t *out_len, px_error *err);

#ifdef __cplusplus
}
#endif

#endif
