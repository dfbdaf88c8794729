/*
 * The Docker sandbox back-end: implements px_sandbox (server/executor/
 * sandbox.h) on the Docker Engine API v1.41 over the engine's unix socket.
 *
 * Each run() creates one hardened container named "pyexec-<execution id>"
 * (profile and protocol: docs/sandbox.md), attaches to it, starts it, sends
 * the project and stdin through the bootstrap protocol (bootstrap.h), streams
 * stdout/stderr to the executor, enforces spec->timeout_s from the start,
 * obeys kill requests, collects exit code, OOM flag and usage, and always
 * removes the container before returning.
 *
 * Every container carries the labels pyexec.service=pyexecd,
 * pyexec.instance=<config.instance> and pyexec.execution=<id>. A reaper runs
 * once when the back-end is created and then every reaper_interval_ms: it
 * force-removes containers labelled with this instance that no live run of
 * this back-end owns (leftovers of a crash). Use one instance name per server
 * process that shares an engine.
 *
 * Environment: the sandbox sets PATH, HOME (/tmp), PYTHONUNBUFFERED=1,
 * PYTHONDONTWRITEBYTECODE=1, PIP_DISABLE_PIP_VERSION_CHECK=1 and
 * PIP_NO_CACHE_DIR=1. These names are reserved: a spec->env entry that sets
 * one of them is dropped (the sandbox's value wins); callers should reject
 * them up front with px_docker_env_reserved(). PYTHONPATH may be set; when
 * requirements are installed their directory is prepended to it.
 *
 * Result errors (px_sandbox_result.error when ran is false):
 *   PX_E_CANCELLED     a kill was requested before the container was created;
 *   PX_E_PRECONDITION  image absent and not pullable;
 *   PX_E_UNAVAILABLE   the engine cannot be reached or does not answer in time;
 *   PX_E_INVALID       the spec cannot be encoded (a string that is not UTF-8);
 *   PX_E_INTERNAL      any other failure, message like a stack, e.g.
 *     "create container: POST /containers/create: HTTP 500: ...";
 *   lost=true          the container vanished while running.
 *
 * Thread safety: run() and ping() may be called concurrently from any
 * threads; destroy() once, after every run() has returned.
 */
#ifndef PYEXEC_EXECUTOR_DOCKER_SANDBOX_H
#define PYEXEC_EXECUTOR_DOCKER_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/base/error.h"
#include "server/executor/sandbox.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct px_docker_config {
    const char *socket_path;    /* "/var/run/docker.sock" */
    const char *instance;       /* label value naming this server instance, e.g. "default" */
    int64_t api_timeout_ms;     /* bound on every Engine API call (not attach/wait), e.g. 30000 */
    int pids_limit;             /* e.g. 256 */
    int tmp_mb;                 /* size of the /tmp tmpfs (and /dev/shm), e.g. 64 */
    int nofile;                 /* RLIMIT_NOFILE, e.g. 1024 */
    int64_t reaper_interval_ms; /* 0 disables the periodic reaper (start-up reap still runs) */
    const char *runtime;        /* NULL = engine default */
} px_docker_config;

/* Fills `c` with the defaults above (reaper every 60 s, runtime NULL). */
void px_docker_config_default(px_docker_config *c);

/* Creates the back-end (strings of `config` are copied); runs the reaper once
 * at start (if the engine answers; an unreachable engine is not an error
 * here) and starts the reaper thread when reaper_interval_ms > 0. Returns 0
 * and fills *out, or -1 with `err` set (bad config, out of resources). */
int px_docker_sandbox_new(const px_docker_config *config, px_sandbox *out, px_error *err);

/* True if `name` (of `len` bytes) is an environment variable the sandbox
 * reserves (see above). */
bool px_docker_env_reserved(const char *name, size_t len);

#ifdef __cplusplus
}
#endif

#endif
