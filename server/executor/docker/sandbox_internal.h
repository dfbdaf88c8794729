/*
 * The Docker sandbox back-end's private header: the state one back-end
 * holds and the functions its files share. Not part of the module's API
 * (that is docker_sandbox.h); included only by the files below.
 *
 *   docker_sandbox.c  life cycle: create (config checks, threads), ping,
 *                     destroy; the ops table;
 *   engine.c          Engine API helpers, the container profile and
 *                     creation, the live set and the image cache;
 *   run.c             one run: the warm or cold path to a started
 *                     container, then the poll loop to its end;
 *   run_io.c          one run's I/O: preamble and stdin out, frames in,
 *                     output coalescing, the bootstrap's last words;
 *   pool.c            the warm pool: its threads, take and hand-over;
 *   reaper.c          the reaper: removes this instance's orphans;
 *   deps.c            the dependency cache: layers built by helper
 *                     containers into one volume every sandbox mounts;
 *   deps_helper.c     the cache's helper containers (deps_internal.h);
 *   deps_detect.c     a run's requirements, with the detected imports.
 *
 * Locks. Each mutex but deps_load_mu guards one domain and is never held
 * while taking another or while calling the engine:
 *   live_mu    the live set (live, n_live, cap_live);
 *   image_mu   the image cache (images);
 *   reaper_mu  the reaper's stop flag; reaper_cond waits on it;
 *   pool_mu    the warm pool's state and the counters in stats; pool_cond
 *              waits on it;
 *   deps_mu    the dependency cache's layers, totals and counters;
 *   deps_load_mu  serialises reading the cache's index (held around a
 *              helper container, the one lock that is; deps_mu is taken
 *              inside it, never the reverse).
 * Everything else is set before the threads start and is then read-only,
 * or is touched only by the thread that creates and destroys the back-end
 * (reaper, reaper_started, pool_threads, n_pool_threads).
 *
 * Functions named sb_* are shared between these files; each returns 0 /
 * non-NULL, or -1 / NULL with `err` set, unless its comment says otherwise.
 */
#ifndef PYEXEC_EXECUTOR_DOCKER_SANDBOX_INTERNAL_H
#define PYEXEC_EXECUTOR_DOCKER_SANDBOX_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/base/cleanup.h"
#include "server/base/error.h"
#include "server/executor/docker/docker_client.h"
#include "server/executor/docker/frames.h"
#include "server/executor/docker/docker_sandbox.h"
#include "server/executor/sandbox.h"
#include "server/model/job.h"

#define IMAGE_CACHE_SIZE 8
#define POOL_THREADS 2       /* bound on concurrent pooled creations */
#define DETECT_CACHE_SIZE 64 /* projects whose imports are remembered */

#define _cleanup_json_ __attribute__((cleanup(json_decrefp)))

typedef struct image_entry {
    char *name;
    int64_t expires_ms;
} image_entry;

/* A pooled container: created, attached and started; its bootstrap blocks
 * reading its header. Owned by the pool while ready, then by one run. */
typedef struct pooled {
    char name[64];
    char id[128];
    int fd; /* the attach socket, -1 before attach */
    /* What it was created for or last updated to. */
    char image[256];
    int memory_mb, cpu_shares, disk_mb;
    /* A namespace-mode host: the executions it ran, and its cgroup's CPU
     * counter after the last one (a timeout's usage is the delta). */
    int uses;
    int64_t cpu_base_ms;
} pooled;

/* The hold of one container-mode take (sb_pool_take_held): it holds back
 * one refill until the run releases it or until_ms, whichever comes first.
 * Owned by the run (on its stack); linked into the pool's list while held. */
typedef struct sb_pool_hold {
    int64_t until_ms; /* monotonic: the take's time + refill_hold_ms */
    struct sb_pool_hold *next;
} sb_pool_hold;

/* A dependency layer (deps.c). */
typedef struct sb_layer sb_layer;

/* The dependency cache's counters (since creation). */
struct sb_deps_stats {
    uint64_t hits;      /* runs that found their layer ready */
    uint64_t builds;    /* layers built */
    uint64_t failures;  /* builds that failed or were stopped */
    uint64_t evictions; /* layers evicted */
};

typedef struct docker_sandbox {
    /* Settings, fixed at creation. */
    char *instance;
    char *runtime;
    bool pull_missing;
    int64_t api_timeout_ms;
    int pids_limit;
    int tmp_mb;
    int nofile;
    int64_t reaper_interval_ms;
    char *seccomp_opt; /* "seccomp=<the built-in profile>", for SecurityOpt */
    /* --isolation namespace (run.c, host.py): the host containers'
     * SecurityOpt seccomp entry and the programs' filter (BPF). */
    bool ns;
    int host_reuse;
    char *host_seccomp_opt;
    uint8_t *ns_filter;
    size_t ns_filter_len;
    px_docker_client *client;

    /* Metrics (config->metrics; NULL without one): Engine API latencies. */
    px_metrics *metrics;
    px_histogram *create_seconds, *start_seconds, *remove_seconds;

    /* The live set: names of the containers a run or the pool owns, which
     * the reaper leaves alone. */
    pthread_mutex_t live_mu;
    char **live; /* under live_mu */
    size_t n_live, cap_live;

    /* The image cache: images seen present recently. */
    pthread_mutex_t image_mu;
    image_entry images[IMAGE_CACHE_SIZE]; /* under image_mu */

    /* The reaper thread. */
    pthread_mutex_t reaper_mu;
    pthread_cond_t reaper_cond;
    bool reaper_stopping; /* under reaper_mu */
    pthread_t reaper;
    bool reaper_started;

    /* The warm pool (see pool.c). Settings are fixed at creation; the rest
     * is under pool_mu. */
    int pool_size;
    char *pool_image;
    int pool_memory_mb, pool_disk_mb, pool_cpu_shares;
    int64_t refill_hold_ms;
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cond;
    bool pool_stopping;
    pooled *ready[PX_DOCKER_POOL_MAX]; /* oldest first */
    int n_ready;
    int creating;
    /* The holds of container-mode runs on a taken pooled container that
     * have not ended (see sb_pool_take_held), oldest take first. */
    sb_pool_hold *holds;
    int64_t retry_at_ms;        /* monotonic; no creation before it */
    int64_t backoff_ms;         /* 0 after a success */
    bool down;                  /* the last failure was an unreachable engine */
    px_docker_pool_stats stats; /* counters only; the gauges are read live */
    pthread_t pool_threads[POOL_THREADS];
    int n_pool_threads;

    /* The dependency cache (see deps.c). Settings are fixed at creation;
     * deps_volume is NULL when the cache is off (no package source). */
    char *deps_volume;       /* "pyexec-deps-<instance>", mounted at /deps */
    char *wheelhouse;        /* absolute host directory, or NULL */
    char *pip_index_url;     /* or NULL */
    char *deps_network;      /* the builds' NetworkMode */
    char *deps_helper_image; /* runs the list and remove helpers */
    int64_t deps_cache_bytes;
    bool deps_auto;               /* --auto-requirements */
    pthread_mutex_t deps_load_mu; /* one index load at a time; taken before deps_mu */
    pthread_mutex_t deps_mu;
    sb_layer *layers;                /* under deps_mu */
    int64_t deps_total;              /* bytes of the READY layers; under deps_mu */
    uint64_t deps_tick;              /* LRU clock; under deps_mu */
    struct sb_deps_stats deps_stats; /* under deps_mu */
    /* Import detection's results: digest of image and project -> the
     * distributions detected, a ring of DETECT_CACHE_SIZE; under deps_mu. */
    struct sb_detected {
        uint8_t digest[32];
        char *requirements; /* "name\n..." or ""; NULL: an empty slot */
    } detected[DETECT_CACHE_SIZE];
    size_t detected_next; /* under deps_mu */
    bool deps_loaded;     /* the index was read; under deps_mu */
} docker_sandbox;

/* ---- engine.c ---- */

/* Calls the API and requires a 2xx answer; parses the body into *out if
 * out is non-NULL. Returns 0, or -1 with `err` set. */
int sb_api(docker_sandbox *sb, const char *method, const char *path, const char *body,
           int64_t timeout_ms, json_t **out, px_error *err);
/* Writes "/containers/<escaped id><suffix>" into buf[cap]. */
int sb_container_path(char *buf, size_t cap, const char *id, const char *suffix, px_error *err);
/* Best effort: forced removal with volumes. */
void sb_remove_container(docker_sandbox *sb, const char *id);
/* Starts container `id` (its latency is measured). Returns 0, or -1 with
 * `err` set. */
int sb_start_container(docker_sandbox *sb, const char *id, px_error *err);
/* Seconds on the monotonic clock, for latencies. */
double sb_now_s(void);
/* Best effort SIGKILL. */
void sb_kill_container(docker_sandbox *sb, const char *id);
/* Best effort usage snapshot; leaves *peak and *cpu_ms alone on failure. */
void sb_take_stats(docker_sandbox *sb, const char *id, int64_t timeout_ms, int64_t *peak,
                   int64_t *cpu_ms);
/* Adds `name` to the live set / removes it / asks whether it is there. */
int sb_live_add(docker_sandbox *sb, const char *name, px_error *err);
void sb_live_remove(docker_sandbox *sb, const char *name);
bool sb_live_has(docker_sandbox *sb, const char *name);
/* Whether `image` was seen present lately; records that it was. */
bool sb_image_cached(docker_sandbox *sb, const char *image);
void sb_image_remember(docker_sandbox *sb, const char *image);
/* Returns 1 if present, 0 if absent, -1 with `err` set on failure. */
int sb_image_present(docker_sandbox *sb, const char *image, px_error *err);
/* Makes sure `image` is present, pulling it if needed and allowed
 * (pull_missing); PX_E_PRECONDITION when it is absent and is not pulled. */
int sb_ensure_image(docker_sandbox *sb, const char *image, px_error *err);
/* Creates container `name` for the profile of `spec` (labelled as pooled
 * when `for_pool`) and writes its id into id[id_cap]. */
int sb_create_container(docker_sandbox *sb, const px_job_spec *spec, bool for_pool,
                        const char *name, char *id, size_t id_cap, px_error *err);
/* The SecurityOpt entry that applies the built-in seccomp profile
 * (seccomp.json, embedded at build time): "seccomp=<compact JSON>", or NULL
 * with `err` set if the profile does not parse. malloc'd. */
char *sb_seccomp_option(px_error *err);
/* The namespace mode's start: the host profile's SecurityOpt entry and the
 * programs' filter, built from the sandbox profile (seccomp_filter.h). */
int sb_ns_prepare(docker_sandbox *sb, px_error *err);
/* Fails (PX_E_INVALID, naming the ones there are) when the engine has no
 * runtime called sb->runtime. */
int sb_check_runtime(docker_sandbox *sb, px_error *err);

/* ---- run_io.c ---- */

/* What one run sends and scans, prepared before any container is touched. */
typedef struct run_io {
    px_sandbox_run *run;
    px_trailer_scanner scanner;     /* stderr: the usage trailer */
    px_trailer_scanner out_scanner; /* stdout: the end marker */
    char *preamble;                 /* the bootstrap preamble; owned */
    size_t preamble_len;
    const char *execution_id; /* the spec's, for the step log */
    int64_t deadline_ms;      /* monotonic; 0: the timeout counts from the drive */
    int64_t begun_ms;         /* monotonic: the run's start */
    int64_t step_ms;          /* monotonic: the last step's end */
    /* Output held for coalescing (see COALESCE_MS in run_io.c). */
    px_stream held_stream; /* of the bytes held; meaningful when held_len > 0 */
    uint8_t *held;         /* COALESCE_MAX bytes; owned */
    size_t held_len;
    int64_t held_due_ms; /* monotonic: when the bytes held go out at the latest */
} run_io;

/* The bytes sent to the container's stdin, in order, without copies. */
typedef struct stdin_feed {
    struct {
        const uint8_t *p;
        size_t len;
    } seg[3];
    size_t i, off;
    bool done;
    bool keep_open; /* a host's stdin: no shutdown after the last byte */
} stdin_feed;

/* Chooses the nonce, arms the trailer scanners and builds the preamble
 * (with the run's dependency layer directory `deps`, or NULL): a host's
 * job (px_host_preamble) when sb_ns_runs(sb, spec). */
run_io *sb_run_io_new(const docker_sandbox *sb, const px_job_spec *spec, px_sandbox_run *run,
                      const char *deps, px_error *err);
/* Whether `spec` runs in a namespace-mode host: the namespace mode, network
 * off (an execution's network namespace has loopback only; a run with the
 * network on gets a container of its own). */
bool sb_ns_runs(const docker_sandbox *sb, const px_job_spec *spec);
/* NULL-safe. */
void sb_run_io_free(run_io *io);
PX_DEFINE_CLEANUP(run_io, sb_run_io_free)
/* --log-level debug: one line for a lifecycle step that just ended. */
void sb_step_done(run_io *io, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* px_frame_sink for the attach stream (ud: the run_io): through the
 * trailer scanners into the held output. */
void sb_deliver_frame(void *ud, px_stream stream, const uint8_t *data, size_t len);
/* px_trailer_sink for what a scanner releases at the end (ud: the run_io). */
void sb_deliver_stdout(void *ud, const uint8_t *data, size_t len);
void sb_deliver_stderr(void *ud, const uint8_t *data, size_t len);
/* Delivers the output held as one chunk / only when it is a whole line or
 * due at `now`. */
void sb_flush_held(run_io *io);
void sb_flush_held_if_ready(run_io *io, int64_t now);
/* Both of the bootstrap's last words arrived. */
bool sb_bootstrap_done(const run_io *io);
/* Writes what the socket `fd` takes now; shuts its write side after the
 * last byte. */
void sb_feed_stdin(stdin_feed *f, int fd);
/* The trailer's usage and OOM count / the end marker's Eval report, into
 * `result`; junk is ignored. */
void sb_apply_trailer(const px_trailer_scanner *s, px_sandbox_result *result);
void sb_apply_report(const px_trailer_scanner *s, px_sandbox_result *result);
/* The bootstrap's exit code from its trailer, or -1 if it has none. */
int sb_trailer_exit_code(const px_trailer_scanner *s);

/* ---- run.c ---- */

/* px_sandbox_ops.run. */
void sb_run(void *self, const px_job_spec *spec, px_sandbox_run *run, px_sandbox_result *result);

/* ---- pool.c ---- */

/* Increments a counter of sb->stats under pool_mu. */
void sb_pool_count(docker_sandbox *sb, uint64_t *counter);
/* Ends a pooled container: closes its stdin, removes it, drops its name
 * from the live set. NULL-safe. */
void sb_pooled_discard(docker_sandbox *sb, pooled *p);
/* Whether a spec can run in a pooled container. */
bool sb_pool_fits(const docker_sandbox *sb, const px_job_spec *spec);
/* Takes the oldest ready container of `image` with /work of `disk_mb` MiB
 * (the caller owns it), or NULL. */
pooled *sb_pool_take(docker_sandbox *sb, const char *image, int disk_mb);
/* As sb_pool_take, for a container-mode run: the refill it causes waits
 * until the run calls sb_pool_release_hold (at its very end) or
 * refill_hold_ms after this take, independent of later takes (`hold`, the
 * caller's, is linked in until released), so that creating and starting the
 * replacement does not compete with the run's end. */
pooled *sb_pool_take_held(docker_sandbox *sb, const char *image, int disk_mb, sb_pool_hold *hold);
/* Ends `hold`, of one sb_pool_take_held that returned a container. */
void sb_pool_release_hold(docker_sandbox *sb, sb_pool_hold *hold);
/* Puts a namespace-mode host back after a clean execution (or removes it
 * when the ready list is full or the back-end stops). */
void sb_pool_return(docker_sandbox *sb, pooled *p);
/* Makes one pooled container (a host in the namespace mode) for the
 * profile's image and limits: created, attached, started. */
pooled *sb_pooled_create(docker_sandbox *sb, const px_job_spec *profile, px_error *err);
/* True while the pooled container's bootstrap still waits, unspoken. */
bool sb_pooled_idle(const pooled *p);
/* Gives pooled container `id` the spec's memory, CPU weight and process
 * limit. */
int sb_pooled_set_limits(docker_sandbox *sb, pooled *p, const px_job_spec *spec, px_error *err);
/* Renames pooled container `p` to `name`, keeping it live throughout. */
int sb_pooled_rename(docker_sandbox *sb, pooled *p, const char *name, px_error *err);
/* The engine answered a ping: ends a backoff caused by its absence. */
void sb_pool_engine_back(docker_sandbox *sb);
/* A pool thread's body (arg: the docker_sandbox). */
void *sb_pool_main(void *arg);
/* Removes every ready pooled container; only after the pool threads were
 * joined. */
void sb_pool_drain(docker_sandbox *sb);

/* ---- reaper.c ---- */

/* Removes this instance's containers that no live run owns. Returns the
 * number removed, or -1 with `err` set if the list failed. */
int sb_reap(docker_sandbox *sb, px_error *err);
/* The reaper thread's body (arg: the docker_sandbox). */
void *sb_reaper_main(void *arg);

/* ---- deps.c, deps_detect.c ---- */

/* Whether the dependency cache is on (a wheelhouse or an index is set). */
bool sb_deps_enabled(const docker_sandbox *sb);
/* Reads the cache's index from its volume (a helper container) and adds
 * its layers; with `clean` (only before any build can run: at creation)
 * first deletes what the index does not list. Sets deps_loaded. */
int sb_deps_load(docker_sandbox *sb, bool clean, px_error *err);
/* The requirements of one run (a new string, normalised; "" for none):
 * spec's own, plus, with --auto-requirements and unless spec's are "-",
 * the distributions its .py files import, found by a helper container of
 * spec's image (remembered per image and project). A detection reports the
 * start and sets *deadline as sb_deps_acquire does. Returns NULL with
 * `result` filled when the detection failed, was killed or timed out. */
char *sb_deps_requirements(docker_sandbox *sb, const px_job_spec *spec, px_sandbox_run *run,
                           int64_t *deadline, px_sandbox_result *result);
/* The layer of spec's image and `requirements` (normalised) for one run: a
 * cached one at once, else after this run's build or another run's build
 * of the same key. A build or wait reports the start (the timeout counts
 * from there) and sets *deadline (monotonic ms); the build's output goes
 * to the run's stderr. Returns the layer, in use until sb_deps_release; or
 * NULL with `result` filled (the build failed: !ran with error; the run
 * was killed or timed out meanwhile: ran, exit 137). Any worker thread. */
sb_layer *sb_deps_acquire(docker_sandbox *sb, const px_job_spec *spec, const char *requirements,
                          px_sandbox_run *run, int64_t *deadline, px_sandbox_result *result);
/* Ends the run's use of `layer` (NULL-safe); then evicts least recently
 * used layers no run uses while the cache is over its size. */
void sb_deps_release(docker_sandbox *sb, sb_layer *layer);
/* The layer's directory name under /deps; borrowed while it is in use. */
const char *sb_layer_dir(const sb_layer *layer);
/* Writes the cache's gauges and counters (a metrics collector's part). */
void sb_deps_collect(docker_sandbox *sb, px_metrics_writer *w);
/* Frees the layer list (not the volume); only at destroy. */
void sb_deps_free(docker_sandbox *sb);

#endif
