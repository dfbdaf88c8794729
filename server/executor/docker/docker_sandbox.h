/*
 * The Docker sandbox back-end: implements px_sandbox (server/executor/
 * sandbox.h) on the Docker Engine API v1.41 over the engine's unix socket.
 *
 * Each run() gets one hardened, single-use container (profile and protocol:
 * docs/sandbox.md): either one it creates, attaches to and starts for the
 * run, or, when the spec fits the warm pool's profile, an idle one from the
 * pool, which the run renames and whose memory and CPU limits it updates to
 * the spec's. Either way the container is named "pyexec-<execution id>"
 * while the run uses it. run() sends the project, environment and stdin
 * through the bootstrap protocol (bootstrap.h), streams stdout/stderr to the
 * executor, enforces spec->timeout_s from the start (creation or hand-over),
 * obeys kill requests, collects exit code, OOM flag and usage, and always
 * removes the container before returning.
 *
 * The warm pool (config.warm_pool > 0): background threads keep that many
 * containers of the pool's profile created, attached and started, their
 * bootstraps blocked on reading the header; each serves at most one run.
 * They are named "pyexec-pool-<random>" until taken. A failed creation is
 * retried after an exponential backoff (a successful ping() cuts a backoff
 * caused by an unreachable engine short). destroy() removes them all.
 *
 * Every container carries the labels pyexec.service=pyexecd and
 * pyexec.instance=<config.instance>, plus pyexec.execution=<id> when made
 * for a run or pyexec.pool=1 when made for the pool. A reaper runs
 * once when the back-end is created and then every reaper_interval_ms: it
 * force-removes containers labelled with this instance that no live run of
 * this back-end owns (leftovers of a crash; never its pooled containers).
 * Use one instance name per server process that shares an engine.
 *
 * Environment: the sandbox sets PATH, HOME (/tmp), PYTHONUNBUFFERED=1,
 * PYTHONDONTWRITEBYTECODE=1, PIP_DISABLE_PIP_VERSION_CHECK=1 and
 * PIP_NO_CACHE_DIR=1. A spec->env entry that sets a name px_env_reserved()
 * (server/executor/reserved_env.h) reserves, these among them, is dropped
 * (the sandbox's value wins); callers should reject them up front.
 * PYTHONPATH may be set; when requirements are installed their directory
 * is prepended to it.
 *
 * Result errors (px_sandbox_result.error when ran is false):
 *   PX_E_CANCELLED     a kill was requested before a container was created
 *                      or taken from the pool;
 *   PX_E_PRECONDITION  image absent, and not pulled (pull_missing false) or
 *                      not pullable;
 *   PX_E_UNAVAILABLE   the engine cannot be reached or does not answer in time;
 *   PX_E_INVALID       the spec cannot be encoded (a string that is not UTF-8);
 *   PX_E_INTERNAL      any other failure, message like a stack, e.g.
 *     "create container: POST /containers/create: HTTP 500: ...";
 *   lost=true          the container vanished while running.
 *
 * Thread safety: run() and ping() may be called concurrently from any
 * threads; destroy() once, after every run() has returned. destroy() waits
 * for pooled creations in flight (each bounded by api_timeout_ms, normally
 * ~0.1 s).
 */
#ifndef PYEXEC_EXECUTOR_DOCKER_SANDBOX_H
#define PYEXEC_EXECUTOR_DOCKER_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/base/config.h"
#include "server/base/error.h"
#include "server/base/metrics.h"
#include "server/executor/sandbox.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The back-end's settings. Their defaults are the server's
 * (px_config_default, server/base/config_flags.c): px_docker_config_from() is the
 * one place that maps those to these. */
typedef struct px_docker_config {
    const char *socket_path; /* the engine's unix socket */
    const char *instance;    /* label value naming this server instance */
    int64_t api_timeout_ms;  /* bound on every Engine API call (not attach/wait) */
    int pids_limit;
    int tmp_mb;                 /* size of the /tmp tmpfs (and /dev/shm) */
    int nofile;                 /* RLIMIT_NOFILE (not a server flag: always 1024) */
    int64_t reaper_interval_ms; /* 0 disables the periodic reaper (start-up reap still runs) */
    const char *runtime;        /* NULL = engine default */
    bool pull_missing;          /* pull an absent image (false: fail, no registry contacted) */

    /* The warm pool (see below): how many pre-started containers to keep
     * ready (0 disables it, at most PX_DOCKER_POOL_MAX), and the profile
     * they are made for: the server's default image, memory, /work size and
     * CPU weight. A run uses a pooled container when its spec has that image
     * and disk_mb and the network off; memory and CPU are set at hand-over. */
    int warm_pool;
    const char *pool_image; /* required when warm_pool > 0 */
    int pool_memory_mb;
    int pool_disk_mb;
    int pool_cpu_shares;
    /* How long the refill after a take may wait for the run that took the
     * container to end (PX_DOCKER_REFILL_HOLD_MS; 0: it starts at once).
     * Creating and starting a container competes with the run's end for
     * the engine and the CPU; docs/sandbox.md, "The warm pool". Not a
     * server flag. */
    int64_t pool_refill_hold_ms;

    /* "container" (NULL too): a fresh container per execution. "namespace":
     * each execution in fresh namespaces made by bubblewrap inside a host
     * container, which runs one execution at a time and at most host_reuse
     * in all; the warm pool then keeps hosts ready. docs/sandbox.md. */
    const char *isolation;
    int host_reuse;

    /* Dependency layers (docs/sandbox.md, "Dependencies"): on when a
     * wheelhouse or an index URL is set. Layers live in the volume
     * "pyexec-deps-<instance>", which every sandbox mounts read-only at
     * /deps; they are built by helper containers of the request's image. */
    const char *wheelhouse;    /* wheels for the builds (read-only); NULL: none */
    const char *pip_index_url; /* the builds' package index; NULL: none */
    const char *deps_network;  /* the builds' network: "none", "host" or "bridge" */
    int64_t deps_cache_mb;     /* size the layers may take together (LRU eviction) */
    const char *helper_image;  /* runs the cache's list/remove helpers (the default image) */
    bool auto_requirements;    /* add the distributions the project's .py files import */

    /* Where the back-end counts (container create/start/remove latency,
     * engine errors, the warm pool's size and hand-overs); NULL: nowhere.
     * Must outlive the back-end. */
    px_metrics *metrics;
} px_docker_config;

#define PX_DOCKER_POOL_MAX 64
#define PX_DOCKER_REFILL_HOLD_MS 1000

/* Fills `dc` from the server's configuration: socket, instance, runtime
 * ("" = NULL), API timeout, process limit, /tmp size, reaper interval,
 * warm pool size, and the pool's profile from the default image, memory,
 * disk and CPU shares. Strings are borrowed from `cfg`, which must stay
 * until px_docker_sandbox_new (which copies them) returns. */
void px_docker_config_from(px_docker_config *dc, const px_config *cfg);

/* Creates the back-end (strings of `config` are copied); runs the reaper once
 * at start (if the engine answers; an unreachable engine is not an error
 * here) and starts the reaper thread when reaper_interval_ms > 0. Returns 0
 * and fills *out, or -1 with `err` set (bad config, out of resources). */
int px_docker_sandbox_new(const px_docker_config *config, px_sandbox *out, px_error *err);

/* A snapshot of the warm pool's state and counters (since creation). */
typedef struct px_docker_pool_stats {
    int size;           /* configured pool size */
    int ready;          /* started containers waiting for a run */
    int creating;       /* creations in flight */
    uint64_t created;   /* containers that became ready */
    uint64_t taken;     /* runs that used a pooled container */
    uint64_t cold;      /* runs that created their own container */
    uint64_t discarded; /* pooled containers removed unused (died idle, update failed) */
    uint64_t failures;  /* failed creations; each one delays the next attempt */
} px_docker_pool_stats;

/* Fills *out for the Docker back-end `sb` (from px_docker_sandbox_new).
 * Any thread, while the back-end exists. */
void px_docker_sandbox_pool_stats(const px_sandbox *sb, px_docker_pool_stats *out);

/* Blocks until at least `ready` pooled containers are ready or `timeout_ms`
 * passed (a condition wait, no polling). Returns 0 when reached, -1 on
 * timeout or when the pool is smaller than `ready`. For tests and for
 * warming up before serving. Any thread, while the back-end exists (not
 * concurrently with destroy()). */
int px_docker_sandbox_pool_wait(const px_sandbox *sb, int ready, int64_t timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
