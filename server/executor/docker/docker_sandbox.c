/*
 * The Docker sandbox back-end; see docker_sandbox.h and docs/sandbox.md.
 * This file holds its life cycle (create, ping, destroy); the rest lives
 * along the seams sandbox_internal.h names: engine.c (Engine API helpers,
 * live set, image cache), run.c (one run), pool.c (the warm pool) and
 * reaper.c (the reaper).
 */
#include "server/executor/docker/docker_sandbox.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server/base/clock.h"
#include "server/base/log.h"
#include "server/executor/docker/docker_client.h"
#include "server/executor/docker/sandbox_internal.h"

#define PING_TIMEOUT_MS 2000

static int sandbox_ping(void *self, px_error *err) {
    docker_sandbox *sb = self;
    int64_t t = sb->api_timeout_ms < PING_TIMEOUT_MS ? sb->api_timeout_ms : PING_TIMEOUT_MS;
    px_error e = PX_ERROR_INIT;
    if (sb_api(sb, "GET", "/_ping", NULL, t, NULL, &e) < 0) {
        if (err) {
            *err = e;
            err->code = PX_E_UNAVAILABLE;
        }
        return -1;
    }
    sb_pool_engine_back(sb);
    return 0;
}

/* ---- life cycle ---- */

static void collect(void *ud, px_metrics_writer *w) {
    docker_sandbox *sb = ud;
    pthread_mutex_lock(&sb->pool_mu);
    px_docker_pool_stats st = sb->stats;
    int ready = sb->n_ready, creating = sb->creating;
    pthread_mutex_unlock(&sb->pool_mu);
    px_metrics_write_gauge(w, "pyexec_warm_pool_size",
                           "Containers the warm pool keeps ready (--warm-pool).", NULL,
                           sb->pool_size);
    px_metrics_write_gauge(w, "pyexec_warm_pool_ready", "Pooled containers ready for a run.", NULL,
                           ready);
    px_metrics_write_gauge(w, "pyexec_warm_pool_creating", "Pooled containers being created.", NULL,
                           creating);
    px_metrics_write_counter(w, "pyexec_warm_pool_handovers_total",
                             "Runs that took a pooled container.", NULL, st.taken);
    px_metrics_write_counter(w, "pyexec_warm_pool_cold_runs_total",
                             "Runs that created their own container.", NULL, st.cold);
    px_metrics_write_counter(w, "pyexec_warm_pool_discarded_total",
                             "Pooled containers removed unused.", NULL, st.discarded);
    px_metrics_write_counter(w, "pyexec_warm_pool_failures_total",
                             "Failed creations of pooled containers.", NULL, st.failures);
    if (sb_deps_enabled(sb))
        sb_deps_collect(sb, w);
}

/* Looks the back-end's metrics up once; the collector is added last, by
 * px_docker_sandbox_new. */
static void init_metrics(docker_sandbox *sb, px_metrics *m) {
    sb->metrics = m;
    if (!m)
        return;
    static const char help[] =
        "Docker Engine API calls on sandbox containers that succeeded, by operation.";
    sb->create_seconds = px_metrics_histogram(m, "pyexec_container_op_seconds", help,
                                              "op=\"create\"", px_metrics_latency_bounds,
                                              px_metrics_latency_bounds_n);
    sb->start_seconds = px_metrics_histogram(m, "pyexec_container_op_seconds", help, "op=\"start\"",
                                             px_metrics_latency_bounds,
                                             px_metrics_latency_bounds_n);
    sb->remove_seconds = px_metrics_histogram(m, "pyexec_container_op_seconds", help,
                                              "op=\"remove\"", px_metrics_latency_bounds,
                                              px_metrics_latency_bounds_n);
    static const char ehelp[] = "Docker Engine API calls that failed, by how.";
    px_docker_client_count_errors(
        sb->client,
        px_metrics_counter(m, "pyexec_docker_errors_total", ehelp, "kind=\"unanswered\""),
        px_metrics_counter(m, "pyexec_docker_errors_total", ehelp, "kind=\"server_error\""));
}

static void sandbox_free(docker_sandbox *sb) {
    if (!sb)
        return;
    px_metrics_remove_collector(sb->metrics, collect, sb);
    for (int i = 0; i < sb->n_ready; i++)
        free(sb->ready[i]);
    for (size_t i = 0; i < sb->n_live; i++)
        free(sb->live[i]);
    free(sb->live);
    for (size_t i = 0; i < IMAGE_CACHE_SIZE; i++)
        free(sb->images[i].name);
    px_docker_client_free(sb->client);
    sb_deps_free(sb);
    pthread_mutex_destroy(&sb->deps_mu);
    pthread_mutex_destroy(&sb->deps_load_mu);
    free(sb->deps_volume);
    free(sb->wheelhouse);
    free(sb->pip_index_url);
    free(sb->deps_network);
    free(sb->deps_helper_image);
    pthread_cond_destroy(&sb->pool_cond);
    pthread_cond_destroy(&sb->reaper_cond);
    pthread_mutex_destroy(&sb->pool_mu);
    pthread_mutex_destroy(&sb->reaper_mu);
    pthread_mutex_destroy(&sb->image_mu);
    pthread_mutex_destroy(&sb->live_mu);
    free(sb->pool_image);
    free(sb->instance);
    free(sb->runtime);
    free(sb->seccomp_opt);
    free(sb->host_seccomp_opt);
    free(sb->ns_filter);
    free(sb);
}

/* Stops and joins the reaper and pool threads. */
static void stop_threads(docker_sandbox *sb) {
    pthread_mutex_lock(&sb->reaper_mu);
    sb->reaper_stopping = true;
    pthread_cond_broadcast(&sb->reaper_cond);
    pthread_mutex_unlock(&sb->reaper_mu);
    pthread_mutex_lock(&sb->pool_mu);
    sb->pool_stopping = true;
    pthread_cond_broadcast(&sb->pool_cond);
    pthread_mutex_unlock(&sb->pool_mu);
    if (sb->reaper_started)
        pthread_join(sb->reaper, NULL);
    for (int i = 0; i < sb->n_pool_threads; i++)
        pthread_join(sb->pool_threads[i], NULL);
    sb->reaper_started = false;
    sb->n_pool_threads = 0;
}

static void sandbox_destroy(void *self) {
    docker_sandbox *sb = self;
    if (!sb)
        return;
    stop_threads(sb);
    sb_pool_drain(sb);
    sandbox_free(sb);
}

static const px_sandbox_ops docker_ops = {
    .run = sb_run,
    .ping = sandbox_ping,
    .destroy = sandbox_destroy,
};

/* Checks the dependency settings of `c`. Returns 0, or -1 with `err` set
 * (PX_E_INVALID). */
static int check_deps_config(const px_docker_config *c, px_error *err) {
    const char *bad = "docker sandbox: invalid configuration";
    if (!c->wheelhouse && !c->pip_index_url) {
        if (c->auto_requirements)
            return px_error_set(err, PX_E_INVALID,
                                "%s: auto requirements need a package source (a wheelhouse or "
                                "a pip index URL)",
                                bad);
        return 0;
    }
    const char *net = c->deps_network ? c->deps_network : "";
    if (strcmp(net, "none") != 0 && strcmp(net, "host") != 0 && strcmp(net, "bridge") != 0)
        return px_error_set(err, PX_E_INVALID,
                            "%s: deps network '%s' is not one of none, host, bridge", bad, net);
    if (c->pip_index_url && strcmp(net, "none") == 0)
        return px_error_set(err, PX_E_INVALID,
                            "%s: a pip index URL needs a deps network (host or bridge), not "
                            "none",
                            bad);
    if (c->pip_index_url && strncmp(c->pip_index_url, "http://", 7) != 0 &&
        strncmp(c->pip_index_url, "https://", 8) != 0)
        return px_error_set(err, PX_E_INVALID, "%s: pip index URL '%s' is not http(s)://", bad,
                            c->pip_index_url);
    if (c->wheelhouse) {
        struct stat st;
        if (stat(c->wheelhouse, &st) < 0)
            return px_error_set_errno(err, PX_E_INVALID, errno, "%s: wheelhouse '%s'", bad,
                                      c->wheelhouse);
        if (!S_ISDIR(st.st_mode))
            return px_error_set(err, PX_E_INVALID, "%s: wheelhouse '%s' is not a directory", bad,
                                c->wheelhouse);
    }
    if (c->deps_cache_mb <= 0)
        return px_error_set(err, PX_E_INVALID, "%s: deps cache %lld MiB is not positive", bad,
                            (long long)c->deps_cache_mb);
    if (!c->helper_image || !c->helper_image[0])
        return px_error_set(err, PX_E_INVALID, "%s: the deps cache has no helper image", bad);
    return 0;
}

/* Checks `c`, naming the first field that is wrong. Returns 0, or -1 with
 * `err` set (PX_E_INVALID). */
static int check_config(const px_docker_config *c, px_error *err) {
    const char *bad = "docker sandbox: invalid configuration";
    if (!c->socket_path)
        return px_error_set(err, PX_E_INVALID, "%s: no engine socket path", bad);
    if (!c->instance || !c->instance[0])
        return px_error_set(err, PX_E_INVALID, "%s: no instance name", bad);
    if (c->api_timeout_ms <= 0)
        return px_error_set(err, PX_E_INVALID, "%s: API timeout %lld ms is not positive", bad,
                            (long long)c->api_timeout_ms);
    if (c->pids_limit <= 0)
        return px_error_set(err, PX_E_INVALID, "%s: process limit %d is not positive", bad,
                            c->pids_limit);
    if (c->tmp_mb <= 0)
        return px_error_set(err, PX_E_INVALID, "%s: /tmp size %d MiB is not positive", bad,
                            c->tmp_mb);
    if (c->nofile <= 0)
        return px_error_set(err, PX_E_INVALID, "%s: open-file limit %d is not positive", bad,
                            c->nofile);
    if (c->reaper_interval_ms < 0)
        return px_error_set(err, PX_E_INVALID, "%s: reaper interval %lld ms is negative", bad,
                            (long long)c->reaper_interval_ms);
    if (c->warm_pool < 0 || c->warm_pool > PX_DOCKER_POOL_MAX)
        return px_error_set(err, PX_E_INVALID, "%s: warm pool size %d is not in 0..%d", bad,
                            c->warm_pool, PX_DOCKER_POOL_MAX);
    if (c->pool_refill_hold_ms < 0)
        return px_error_set(err, PX_E_INVALID, "%s: refill hold %lld ms is negative", bad,
                            (long long)c->pool_refill_hold_ms);
    if (check_deps_config(c, err) < 0)
        return -1;
    if (c->isolation && strcmp(c->isolation, "container") != 0 &&
        strcmp(c->isolation, "namespace") != 0)
        return px_error_set(err, PX_E_INVALID,
                            "%s: isolation '%s' is not one of: container, namespace", bad,
                            c->isolation);
    if (c->isolation && strcmp(c->isolation, "namespace") == 0 && c->host_reuse <= 0)
        return px_error_set(err, PX_E_INVALID, "%s: host reuse %d is not positive", bad,
                            c->host_reuse);
    if (c->warm_pool == 0)
        return 0;
    if (!c->pool_image || !c->pool_image[0])
        return px_error_set(err, PX_E_INVALID, "%s: the warm pool has no image", bad);
    if (c->pool_memory_mb <= 0)
        return px_error_set(err, PX_E_INVALID, "%s: warm pool memory %d MiB is not positive", bad,
                            c->pool_memory_mb);
    if (c->pool_disk_mb <= 0)
        return px_error_set(err, PX_E_INVALID, "%s: warm pool disk %d MiB is not positive", bad,
                            c->pool_disk_mb);
    if (c->pool_cpu_shares <= 0)
        return px_error_set(err, PX_E_INVALID, "%s: warm pool CPU shares %d is not positive", bad,
                            c->pool_cpu_shares);
    return 0;
}

/* Allocates the back-end and copies the settings of `config` (checked).
 * Returns it, or NULL with `err` set. */
static docker_sandbox *sandbox_alloc(const px_docker_config *config, px_error *err) {
    docker_sandbox *sb = calloc(1, sizeof *sb);
    if (!sb) {
        px_error_set(err, PX_E_INTERNAL, "docker sandbox: out of memory");
        return NULL;
    }
    px_cond_init_mono(&sb->reaper_cond);
    px_cond_init_mono(&sb->pool_cond);
    pthread_mutex_init(&sb->live_mu, NULL);
    pthread_mutex_init(&sb->image_mu, NULL);
    pthread_mutex_init(&sb->reaper_mu, NULL);
    pthread_mutex_init(&sb->pool_mu, NULL);
    pthread_mutex_init(&sb->deps_mu, NULL);
    pthread_mutex_init(&sb->deps_load_mu, NULL);
    sb->instance = strdup(config->instance);
    sb->runtime = config->runtime ? strdup(config->runtime) : NULL;
    sb->pull_missing = config->pull_missing;
    sb->api_timeout_ms = config->api_timeout_ms;
    sb->pids_limit = config->pids_limit;
    sb->tmp_mb = config->tmp_mb;
    sb->nofile = config->nofile;
    sb->reaper_interval_ms = config->reaper_interval_ms;
    sb->pool_size = config->warm_pool;
    sb->pool_image = config->warm_pool > 0 ? strdup(config->pool_image) : NULL;
    sb->pool_memory_mb = config->pool_memory_mb;
    sb->pool_disk_mb = config->pool_disk_mb;
    sb->pool_cpu_shares = config->pool_cpu_shares;
    sb->refill_hold_ms = config->pool_refill_hold_ms;
    bool deps = config->wheelhouse || config->pip_index_url;
    bool deps_oom = false;
    if (deps) {
        sb->wheelhouse = config->wheelhouse ? realpath(config->wheelhouse, NULL) : NULL;
        sb->pip_index_url = config->pip_index_url ? strdup(config->pip_index_url) : NULL;
        sb->deps_network = strdup(config->deps_network);
        sb->deps_helper_image = strdup(config->helper_image);
        sb->deps_cache_bytes = config->deps_cache_mb * 1024 * 1024;
        sb->deps_auto = config->auto_requirements;
        if (asprintf(&sb->deps_volume, "pyexec-deps-%s", config->instance) < 0)
            sb->deps_volume = NULL;
        deps_oom = (config->wheelhouse && !sb->wheelhouse) ||
                   (config->pip_index_url && !sb->pip_index_url) || !sb->deps_network ||
                   !sb->deps_helper_image || !sb->deps_volume;
    }
    sb->client = px_docker_client_new(config->socket_path, config->api_timeout_ms, err);
    if (!sb->client || !sb->instance || (config->runtime && !sb->runtime) ||
        (sb->pool_size > 0 && !sb->pool_image) || deps_oom) {
        sandbox_free(sb);
        px_error_set(err, PX_E_INTERNAL, "docker sandbox: out of memory");
        return NULL;
    }
    init_metrics(sb, config->metrics);
    sb->seccomp_opt = sb_seccomp_option(err);
    if (!sb->seccomp_opt) {
        sandbox_free(sb);
        return NULL;
    }
    sb->ns = config->isolation && strcmp(config->isolation, "namespace") == 0;
    sb->host_reuse = config->host_reuse;
    if (sb->ns && sb_ns_prepare(sb, err) < 0) {
        sandbox_free(sb);
        return NULL;
    }
    return sb;
}

/* Starts the reaper thread (when it has an interval) and the pool threads.
 * Returns 0, or -1 with `err` set and every thread it started stopped. */
static int start_threads(docker_sandbox *sb, px_error *err) {
    if (sb->reaper_interval_ms > 0) {
        int rc = pthread_create(&sb->reaper, NULL, sb_reaper_main, sb);
        if (rc != 0)
            return px_error_set_errno(err, PX_E_INTERNAL, rc, "docker sandbox: reaper thread");
        sb->reaper_started = true;
    }
    int threads = sb->pool_size < POOL_THREADS ? sb->pool_size : POOL_THREADS;
    for (int i = 0; i < threads; i++) {
        int rc = pthread_create(&sb->pool_threads[i], NULL, sb_pool_main, sb);
        if (rc != 0) {
            stop_threads(sb);
            sb_pool_drain(sb);
            return px_error_set_errno(err, PX_E_INTERNAL, rc, "docker sandbox: pool thread");
        }
        sb->n_pool_threads++;
    }
    return 0;
}

int px_docker_sandbox_new(const px_docker_config *config, px_sandbox *out, px_error *err) {
    if (check_config(config, err) < 0)
        return -1;
    docker_sandbox *sb = sandbox_alloc(config, err);
    if (!sb)
        return -1;
    px_error e = PX_ERROR_INIT;
    if (sandbox_ping(sb, &e) == 0) {
        if (sb->runtime && sb_check_runtime(sb, err) < 0) {
            sandbox_free(sb);
            return -1;
        }
        if (sb_reap(sb, &e) < 0)
            px_warn("docker: start-up reap: %s", e.msg);
        e = (px_error)PX_ERROR_INIT;
        if (sb_deps_enabled(sb) && sb_deps_load(sb, true, &e) < 0)
            px_warn("docker: deps: %s (starting with an empty cache)", e.msg);
    }
    /* After the start-up reap, which would otherwise race the first pooled
     * containers' creation. */
    if (start_threads(sb, err) < 0) {
        sandbox_free(sb);
        return -1;
    }
    if (px_metrics_add_collector(sb->metrics, collect, sb) < 0)
        px_warn("docker: metrics: out of memory; the warm pool is not reported");
    out->ops = &docker_ops;
    out->self = sb;
    return 0;
}
