/*
 * The dependency cache of the Docker sandbox back-end (see sandbox_internal.h
 * and docs/sandbox.md, "Dependencies").
 *
 * A run whose spec names requirements gets a layer: a directory
 * /deps/<dir> of the cache's one volume (pyexec-deps-<instance>), which every
 * sandbox mounts read-only at /deps, so that a pooled container made before
 * the layer existed can use it; the bootstrap puts the directory on the
 * program's PYTHONPATH. A layer is keyed by the SHA-256 of the image and the
 * normalised requirements and is built by a short-lived helper container
 * (deps_helper.py, wheels only, from the wheelhouse and/or the index the
 * server was configured with), never inside the sandbox: deps_helper.c runs
 * those containers, deps_detect.c finds a run's requirements.
 *
 * A layer moves through
 *   BUILDING (in the list, one run builds, others wait on done_fd) ->
 *   READY (in the list; `users` runs mount it) -> evicted (out of the list)
 * or, from BUILDING, to failed (out of the list; the waiters read `error`,
 * and the last reference frees it).
 * Eviction takes READY layers that no run uses and no run waits for, least
 * recently used first, while the layers' total exceeds the cap; the layer
 * directories are deleted by a helper container after they left the list.
 * A rebuild of an evicted key gets a new directory (<key>-<random>), so a
 * deletion never races a build.
 *
 * The index lives in the volume (/deps/.index/<dir>.json, written by the
 * build); the back-end reads it once at start-up (sb_deps_load), which also
 * deletes what it does not name (leftovers of a crash), or, if the engine
 * was away then, before its first dependency run (without deleting).
 *
 * deps_mu guards the list, each layer's state, users, waiters, refs,
 * last_used, error, and the totals and counters. It is never held while
 * calling the engine.
 */
#include <errno.h>
#include <stdint.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server/base/cleanup.h"
#include "server/base/clock.h"
#include "server/base/id.h"
#include "server/base/log.h"
#include "server/base/metrics.h"
#include "server/base/sha256.h"
#include "server/executor/docker/deps_internal.h"
#include "server/executor/docker/sandbox_internal.h"

typedef enum layer_state { LAYER_BUILDING, LAYER_READY } layer_state;

struct sb_layer {
    char key[2 * PX_SHA256_LEN + 1];
    char dir[2 * PX_SHA256_LEN + 32]; /* "<key>-<random>" under /deps */
    layer_state state;
    int64_t size_bytes;
    uint64_t last_used; /* deps_tick when last acquired */
    int users;          /* runs that mount it now */
    int waiters;        /* runs waiting for its build */
    int refs;           /* the list's (while in it) + each run building or waiting */
    int done_fd;        /* eventfd, readable once the build ended; -1 when loaded */
    bool failed;
    px_error error; /* why the build failed */
    sb_layer *next;
};

static void layer_unref_locked(sb_layer *l) {
    if (--l->refs > 0)
        return;
    if (l->done_fd >= 0)
        close(l->done_fd);
    free(l);
}

static sb_layer *layer_new(const char *key, const char *dir, bool building, px_error *err) {
    sb_layer *l = calloc(1, sizeof *l);
    if (!l) {
        px_error_set(err, PX_E_INTERNAL, "out of memory");
        return NULL;
    }
    snprintf(l->key, sizeof l->key, "%s", key);
    snprintf(l->dir, sizeof l->dir, "%s", dir);
    l->state = building ? LAYER_BUILDING : LAYER_READY;
    l->refs = 1;
    l->done_fd = -1;
    if (building) {
        l->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (l->done_fd < 0) {
            px_error_set_errno(err, PX_E_INTERNAL, errno, "eventfd");
            free(l);
            return NULL;
        }
    }
    return l;
}

static void list_unlink_locked(docker_sandbox *sb, sb_layer *l) {
    for (sb_layer **p = &sb->layers; *p; p = &(*p)->next) {
        if (*p == l) {
            *p = l->next;
            l->next = NULL;
            return;
        }
    }
}

static sb_layer *list_find_locked(docker_sandbox *sb, const char *key) {
    for (sb_layer *l = sb->layers; l; l = l->next)
        if (strcmp(l->key, key) == 0)
            return l;
    return NULL;
}

/* The cache key: SHA-256 of the image, "\n" and the normalised
 * requirements, in hex. */
static void deps_key(const char *image, const char *requirements, char out[2 * PX_SHA256_LEN + 1]) {
    px_sha256_ctx c;
    uint8_t d[PX_SHA256_LEN];
    px_sha256_init(&c);
    px_sha256_update(&c, image, strlen(image));
    px_sha256_update(&c, "\n", 1);
    px_sha256_update(&c, requirements, strlen(requirements));
    px_sha256_final(&c, d);
    for (size_t i = 0; i < PX_SHA256_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

bool sb_deps_enabled(const docker_sandbox *sb) {
    return sb->deps_volume != NULL;
}

/* ---- start-up: the index ---- */

/* Adds the layer one line of the helper's listing describes. */
static void load_line_locked(docker_sandbox *sb, const char *line, size_t len) {
    _cleanup_json_ json_t *j = json_loadb(line, len, 0, NULL);
    const char *key = json_string_value(json_object_get(j, "key"));
    const char *dir = json_string_value(json_object_get(j, "dir"));
    json_int_t size = json_integer_value(json_object_get(j, "size"));
    json_int_t built = json_integer_value(json_object_get(j, "built_at"));
    if (!key || !dir || strlen(key) != 2 * PX_SHA256_LEN || strlen(dir) >= sizeof sb->layers->dir)
        return;
    for (sb_layer *o = sb->layers; o; o = o->next)
        if (strcmp(o->dir, dir) == 0)
            return; /* built by this server before a late load */
    px_error e = PX_ERROR_INIT;
    sb_layer *l = layer_new(key, dir, false, &e);
    if (!l)
        return;
    l->size_bytes = size > 0 ? size : 0;
    /* Least recently built first: the best guess of use after a restart. */
    l->last_used = (uint64_t)(built > 0 ? built : 0);
    if (l->last_used > sb->deps_tick)
        sb->deps_tick = l->last_used;
    l->next = sb->layers;
    sb->layers = l;
    sb->deps_total += l->size_bytes;
}

int sb_deps_load(docker_sandbox *sb, bool clean, px_error *err) {
    const char *args[] = {"list", clean ? "clean" : "keep"};
    _cleanup_free_ helper_io *io = calloc(1, sizeof *io);
    helper_end end = HELPER_EXITED;
    int code = -1;
    if (!io)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    if (sb_ensure_image(sb, sb->deps_helper_image, err) < 0 ||
        sb_deps_run_helper(sb, sb->deps_helper_image, args, 2, io, 0, &end, &code, err) < 0)
        return px_error_wrap(err, "list the dependency layers in volume '%s'", sb->deps_volume);
    if (code != 0)
        return px_error_set(err, PX_E_INTERNAL,
                            "list the dependency layers in volume '%s': the helper exited %d",
                            sb->deps_volume, code);
    pthread_mutex_lock(&sb->deps_mu);
    for (char *line = io->out; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        load_line_locked(sb, line, len);
        line = nl ? nl + 1 : NULL;
    }
    int n = 0;
    for (sb_layer *l = sb->layers; l; l = l->next)
        n++;
    int64_t total = sb->deps_total;
    sb->deps_loaded = true;
    pthread_mutex_unlock(&sb->deps_mu);
    px_info("docker: deps: %d cached layer(s), %lld bytes, in volume '%s'", n, (long long)total,
            sb->deps_volume);
    return 0;
}

/* A server that could not read the index at start-up (the engine was
 * away) reads it before its first dependency run, without cleaning: a build
 * may be under way by then. Serialised by deps_load_mu. */
void sb_deps_ensure_loaded(docker_sandbox *sb) {
    pthread_mutex_lock(&sb->deps_load_mu);
    pthread_mutex_lock(&sb->deps_mu);
    bool loaded = sb->deps_loaded;
    pthread_mutex_unlock(&sb->deps_mu);
    px_error err = PX_ERROR_INIT;
    if (!loaded && sb_deps_load(sb, false, &err) < 0)
        px_warn("docker: deps: %s (cached layers are unknown until it works)", err.msg);
    pthread_mutex_unlock(&sb->deps_load_mu);
}

/* ---- acquire: hit, wait or build ---- */

/* The pip arguments of a build: the sources the server was configured with
 * (the request never chooses them), then "--". Returns how many. */
static size_t pip_sources(const docker_sandbox *sb, const char **args) {
    size_t n = 0;
    if (sb->wheelhouse) {
        args[n++] = "--find-links";
        args[n++] = "/wheelhouse";
    }
    if (sb->pip_index_url) {
        args[n++] = "--index-url";
        args[n++] = sb->pip_index_url;
    } else {
        args[n++] = "--no-index";
    }
    args[n++] = "--";
    return n;
}

/* Runs the build of layer `l` of `requirements` for `spec`, its helper's
 * stderr going to the run's. Returns 0 with *size set; or -1 with `err` set: PX_E_INVALID when
 * pip failed (its message in `err`), PX_E_CANCELLED when the run was killed
 * or timed out (*end says which), else the helper's failure. */
static int build(docker_sandbox *sb, const sb_layer *l, const px_job_spec *spec,
                 const char *requirements, px_sandbox_run *run, int64_t deadline, helper_end *end,
                 int64_t *size, px_error *err) {
    enum { FIXED_ARGS = 16 };
    size_t n_lines = 0;
    for (const char *p = requirements; *p; p++)
        n_lines += *p == '\n';
    _cleanup_free_ char *reqs = strdup(requirements);
    _cleanup_free_ const char **args = calloc(FIXED_ARGS + n_lines + 1, sizeof *args);
    _cleanup_free_ helper_io *io = calloc(1, sizeof *io);
    if (!reqs || !args || !io)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    size_t n = 0;
    args[n++] = "build";
    args[n++] = l->dir;
    args[n++] = l->key;
    n += pip_sources(sb, args + n);
    for (char *save = NULL, *line = strtok_r(reqs, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save))
        args[n++] = line;
    io->run = run;
    int code = -1;
    if (sb_ensure_image(sb, spec->image, err) < 0 ||
        sb_deps_run_helper(sb, spec->image, args, n, io, deadline, end, &code, err) < 0)
        return -1;
    if (*end != HELPER_EXITED)
        return px_error_set(err, PX_E_CANCELLED, "the build was stopped: execution %s %s",
                            spec->execution_id,
                            *end == HELPER_TIMED_OUT ? "reached its timeout" : "was killed");
    _cleanup_json_ json_t *j = json_loads(io->out, 0, NULL);
    if (code == 0 && json_is_true(json_object_get(j, "ok"))) {
        *size = json_integer_value(json_object_get(j, "size"));
        return 0;
    }
    const char *pip = json_string_value(json_object_get(j, "error"));
    if (!pip)
        return px_error_set(err, PX_E_INTERNAL, "the build helper exited %d", code);
    return px_error_set(err, PX_E_INVALID, "pip exited %d: %s",
                        (int)json_integer_value(json_object_get(j, "exit_code")), pip);
}

/* Fills `result` for a run that has no layer because of `err`: a kill or
 * timeout ends the run as one (the program never ran: exit 137); anything
 * else fails it with the message. */
void sb_deps_no_layer(px_sandbox_result *result, const px_error *err, helper_end end) {
    if (err->code == PX_E_CANCELLED && end != HELPER_EXITED) {
        result->ran = true;
        result->exit_code = 128 + 9;
        result->timed_out = end == HELPER_TIMED_OUT;
        return;
    }
    result->ran = false;
    result->error = *err;
    px_error_wrap(&result->error, "install requirements");
}

/* Waits for the build of `l` (its waiter, holding a ref) to end, the run's
 * kill or the deadline. Returns HELPER_EXITED when the build ended. */
static helper_end await_build(const sb_layer *l, px_sandbox_run *run, int64_t deadline) {
    int wake = px_sandbox_run_wake_fd(run);
    for (;;) {
        if (px_sandbox_run_kill_requested(run))
            return HELPER_KILLED;
        int64_t left = deadline - px_now_mono_ms();
        if (left <= 0)
            return HELPER_TIMED_OUT;
        struct pollfd p[2] = {{.fd = l->done_fd, .events = POLLIN}, {.fd = wake, .events = POLLIN}};
        int r = poll(p, wake >= 0 ? 2 : 1, (int)(left > 60000 ? 60000 : left));
        if (r > 0 && (p[0].revents & POLLIN))
            return HELPER_EXITED;
    }
}

void sb_deps_say(px_sandbox_run *run, const char *text) {
    px_sandbox_run_output(run, PX_STREAM_STDERR, (const uint8_t *)text, strlen(text));
}

/* Work before the program (a detection, a build, a wait) counts against the
 * run's timeout: reports the start and sets the deadline, once. */
void sb_deps_start_clock(const px_job_spec *spec, px_sandbox_run *run, int64_t *deadline) {
    if (*deadline)
        return;
    px_sandbox_run_started(run);
    *deadline = px_now_mono_ms() + (int64_t)spec->timeout_s * 1000;
}

sb_layer *sb_deps_acquire(docker_sandbox *sb, const px_job_spec *spec, const char *requirements,
                          px_sandbox_run *run, int64_t *deadline, px_sandbox_result *result) {
    char key[2 * PX_SHA256_LEN + 1];
    deps_key(spec->image, requirements, key);
    px_error err = PX_ERROR_INIT;
    pthread_mutex_lock(&sb->deps_mu);
    sb_layer *l = list_find_locked(sb, key);
    if (l && l->state == LAYER_READY) {
        l->users++;
        l->last_used = ++sb->deps_tick;
        uint64_t hits = ++sb->deps_stats.hits, builds = sb->deps_stats.builds;
        pthread_mutex_unlock(&sb->deps_mu);
        px_info("docker: deps: execution %s: cached layer %.12s (hits %llu, builds %llu)",
                spec->execution_id, key, (unsigned long long)hits, (unsigned long long)builds);
        return l;
    }
    /* A build, this run's or another's: it counts against the run's timeout. */
    bool builder = l == NULL;
    if (builder) {
        char hex[9], dir[sizeof l->dir];
        if (px_random_hex(hex, 4, &err) < 0 ||
            !(l = layer_new(key, (snprintf(dir, sizeof dir, "%s-%s", key, hex), dir), true,
                            &err))) {
            pthread_mutex_unlock(&sb->deps_mu);
            sb_deps_no_layer(result, &err, HELPER_EXITED);
            return NULL;
        }
        l->next = sb->layers;
        sb->layers = l;
    } else {
        l->waiters++;
    }
    l->refs++; /* this run's, while it builds or waits */
    pthread_mutex_unlock(&sb->deps_mu);

    sb_deps_start_clock(spec, run, deadline);
    helper_end end = HELPER_EXITED;
    int64_t size = 0, begun = px_now_mono_ms();
    int rc;
    if (builder) {
        rc = build(sb, l, spec, requirements, run, *deadline, &end, &size, &err);
    } else {
        sb_deps_say(run, "pyexec: install: waiting for another execution's build of the same "
                         "requirements\n");
        end = await_build(l, run, *deadline);
        rc = end == HELPER_EXITED ? 0 : -1;
        if (rc < 0)
            px_error_set(&err, PX_E_CANCELLED, "stopped waiting for the build");
    }

    pthread_mutex_lock(&sb->deps_mu);
    if (builder) {
        if (rc == 0) {
            l->state = LAYER_READY;
            l->size_bytes = size;
            sb->deps_total += size;
            sb->deps_stats.builds++;
        } else {
            l->failed = true;
            l->error = err;
            list_unlink_locked(sb, l);
            layer_unref_locked(l); /* the list's */
            sb->deps_stats.failures++;
        }
        uint64_t one = 1;
        if (write(l->done_fd, &one, sizeof one) < 0)
            px_warn("docker: deps: wake the waiters of layer %.12s: %s", key, strerror(errno));
    } else {
        l->waiters--;
        if (rc == 0 && l->failed) {
            err = l->error;
            rc = -1;
        }
    }
    if (rc == 0) {
        l->users++;
        l->last_used = ++sb->deps_tick;
    }
    struct sb_deps_stats stats = sb->deps_stats;
    layer_unref_locked(l); /* this run's; the list still holds a READY layer */
    pthread_mutex_unlock(&sb->deps_mu);

    if (builder && rc == 0)
        px_info("docker: deps: execution %s: built layer %.12s (%lld bytes) in %lld ms "
                "(hits %llu, builds %llu)",
                spec->execution_id, key, (long long)size, (long long)(px_now_mono_ms() - begun),
                (unsigned long long)stats.hits, (unsigned long long)stats.builds);
    else if (builder)
        px_info("docker: deps: execution %s: build of layer %.12s failed after %lld ms: %s",
                spec->execution_id, key, (long long)(px_now_mono_ms() - begun), err.msg);
    if (rc == 0)
        return l;
    if (end == HELPER_EXITED) { /* this run was not stopped itself: say why it fails */
        char line[PX_ERROR_MSG_MAX + 64];
        snprintf(line, sizeof line, "pyexec: install: failed: %s\n", err.msg);
        sb_deps_say(run, line);
    }
    sb_deps_no_layer(result, &err, end);
    return NULL;
}

/* ---- release and eviction ---- */

void sb_deps_release(docker_sandbox *sb, sb_layer *layer) {
    if (!layer)
        return;
    enum { VICTIMS_MAX = 64 };
    const char *args[VICTIMS_MAX + 1];
    char dirs[VICTIMS_MAX][sizeof layer->dir];
    size_t n = 0;
    int64_t freed = 0, total;
    pthread_mutex_lock(&sb->deps_mu);
    layer->users--;
    while (sb->deps_total > sb->deps_cache_bytes && n < VICTIMS_MAX) {
        sb_layer *lru = NULL;
        for (sb_layer *l = sb->layers; l; l = l->next)
            if (l->state == LAYER_READY && l->users == 0 && l->waiters == 0 &&
                (!lru || l->last_used < lru->last_used))
                lru = l;
        if (!lru)
            break; /* every layer is in use: over the cap until they end */
        list_unlink_locked(sb, lru);
        sb->deps_total -= lru->size_bytes;
        freed += lru->size_bytes;
        sb->deps_stats.evictions++;
        memcpy(dirs[n], lru->dir, sizeof dirs[n]);
        n++;
        layer_unref_locked(lru);
    }
    total = sb->deps_total;
    pthread_mutex_unlock(&sb->deps_mu);
    if (n == 0)
        return;
    args[0] = "remove";
    for (size_t i = 0; i < n; i++)
        args[i + 1] = dirs[i];
    _cleanup_free_ helper_io *io = calloc(1, sizeof *io);
    helper_end end = HELPER_EXITED;
    int code = -1;
    px_error err = PX_ERROR_INIT;
    if (!io ||
        sb_deps_run_helper(sb, sb->deps_helper_image, args, n + 1, io, 0, &end, &code, &err) < 0 ||
        code != 0)
        px_warn("docker: deps: remove %zu evicted layer(s) from volume '%s': %s (they are "
                "removed at the next start)",
                n, sb->deps_volume, io && err.msg[0] ? err.msg : "the helper failed");
    else
        px_info("docker: deps: evicted %zu layer(s), %lld bytes, least recently used first; "
                "%lld bytes cached (cap %lld)",
                n, (long long)freed, (long long)total, (long long)sb->deps_cache_bytes);
}

void sb_deps_collect(docker_sandbox *sb, px_metrics_writer *w) {
    pthread_mutex_lock(&sb->deps_mu);
    struct sb_deps_stats st = sb->deps_stats;
    int64_t bytes = sb->deps_total;
    int layers = 0;
    for (sb_layer *l = sb->layers; l; l = l->next)
        layers += l->state == LAYER_READY;
    pthread_mutex_unlock(&sb->deps_mu);
    px_metrics_write_gauge(w, "pyexec_deps_layers", "Dependency layers cached.", NULL, layers);
    px_metrics_write_gauge(w, "pyexec_deps_bytes",
                           "Bytes the cached dependency layers take (--deps-cache-mb).", NULL,
                           (double)bytes);
    px_metrics_write_counter(w, "pyexec_deps_hits_total",
                             "Runs that found their dependency layer cached.", NULL, st.hits);
    px_metrics_write_counter(w, "pyexec_deps_builds_total", "Dependency layers built.", NULL,
                             st.builds);
    px_metrics_write_counter(w, "pyexec_deps_build_failures_total",
                             "Dependency builds that failed or were stopped.", NULL, st.failures);
    px_metrics_write_counter(w, "pyexec_deps_evictions_total", "Dependency layers evicted.", NULL,
                             st.evictions);
}

void sb_deps_free(docker_sandbox *sb) {
    for (size_t i = 0; i < DETECT_CACHE_SIZE; i++)
        free(sb->detected[i].requirements);
    while (sb->layers) {
        sb_layer *l = sb->layers;
        sb->layers = l->next;
        layer_unref_locked(l);
    }
}

const char *sb_layer_dir(const sb_layer *l) {
    return l->dir;
}
