#include "server/daemon.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/base/cleanup.h"

#include "server/base/file.h"
#include "server/base/log.h"
#include "server/base/notify.h"
#include "server/base/tokens.h"
#include "server/executor/executor.h"
#include "server/executor/runner.h"
#include "server/http/http.h"
#include "server/rpc/rpc.h"
#include "server/store/memory.h"
#include "server/store/redis/redis_store.h"

/* This node's name: --node-name, else "<host name>-<pid>" with characters
 * outside [A-Za-z0-9_.-] replaced by '-'. */
static void node_name(const px_config *cfg, char out[PX_RSTORE_NAME_MAX + 1]) {
    if (cfg->node_name[0]) {
        snprintf(out, PX_RSTORE_NAME_MAX + 1, "%s", cfg->node_name);
        return;
    }
    char host[40] = "node";
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "node");
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-';
        if (!ok)
            *p = '-';
    }
    snprintf(out, PX_RSTORE_NAME_MAX + 1, "%s-%ld", host, (long)getpid());
}

/* The in-memory store, or the Redis store for a redis URL; both hand jobs
 * to this node's executor, `ex` (NULL on a frontend: it runs nothing). */
static px_store *open_store(const px_config *cfg, px_executor *ex, px_metrics *metrics,
                            px_error *err) {
    if (strcmp(cfg->store, "memory") == 0) {
        px_store_config sc = {
            .retention_ms = cfg->retention_s * 1000,
            .max_records = (size_t)cfg->max_records,
            /* Calls waiting for the end (sync Execute, Kill) are not counted:
             * readers never lock them out. */
            .max_readers = (size_t)cfg->max_stream_readers,
            .max_retained_bytes = (uint64_t)cfg->max_retained_bytes,
            .runner = px_executor_runner(ex),
        };
        return px_memory_store_new(&sc, err);
    }
    char node[PX_RSTORE_NAME_MAX + 1];
    node_name(cfg, node);
    /* Wiped on every way out: the store keeps its own copies. */
    _cleanup_secret_ char *password = NULL;
    if (px_redis_password_load(cfg->store_password_file, getenv("PYEXEC_STORE_PASSWORD"), &password,
                               err) < 0)
        return NULL;
    _cleanup_secret_ char *sentinel_password = NULL;
    px_redis_store_config rc = {
        .redis =
            {
                .password = password,
                .ns = cfg->store_namespace,
                .node = node,
                .lease_ms = cfg->node_lease_ms,
                /* Redis needs a positive time to live. */
                .retention_ms = cfg->retention_s > 0 ? cfg->retention_s * 1000 : 1,
                /* The queue threads, every executor worker, the puller and
                 * the keeper may each use one at once. */
                .max_connections = (unsigned)cfg->max_concurrent + 4,
                .connect_timeout_ms = 2000,
                .command_timeout_ms = 5000,
                .backoff_min_ms = 100,
                .backoff_max_ms = 5000,
                .metrics = metrics,
                .min_replicas = (unsigned)cfg->store_min_replicas,
                .replica_timeout_ms = cfg->store_replica_timeout_ms,
            },
        .max_readers = (size_t)cfg->max_stream_readers,
        .max_queued = (unsigned)cfg->max_queue,
        .runner = ex ? px_executor_runner(ex) : (px_job_runner){0},
        .max_running = (unsigned)cfg->max_concurrent,
        .grace_ms = (int64_t)cfg->store_grace_s * 1000,
    };
    if (px_redis_target_parse(cfg->store, &rc.redis.target, err) < 0)
        return NULL;
    if (rc.redis.target.is_sentinel &&
        px_redis_sentinel_password_load(cfg->store_sentinel_password_file,
                                        getenv("PYEXEC_STORE_SENTINEL_PASSWORD"),
                                        &sentinel_password, err) < 0)
        return NULL;
    rc.redis.sentinel_password = sentinel_password;
    px_store *store = px_redis_store_new(&rc, err);
    if (store)
        px_info("store: Redis %s, namespace '%s', node '%s', role %s", cfg->store,
                cfg->store_namespace, node, cfg->role);
    return store;
}

/* Tells the service manager (systemd, Type=notify) `state`; a failure is
 * logged, never fatal: the server serves whether or not anyone listens. */
static void notify(const char *state) {
    px_error err = PX_ERROR_INIT;
    if (px_notify(state, &err) < 0)
        px_warn("notify: %s", err.msg);
}

/* Waits for one of `signals`, sending "WATCHDOG=1" every `period_us` (0:
 * no watchdog) meanwhile. The pings prove that this loop, the one that
 * handles signals and shutdown, is alive; an unhealthy engine is Health's
 * business, not a reason for the service manager to restart the server. */
static int wait_signal(const sigset_t *signals, int64_t period_us) {
    for (;;) {
        if (period_us <= 0) {
            int sig = 0;
            if (sigwait(signals, &sig) == 0)
                return sig;
            continue;
        }
        struct timespec ts = {.tv_sec = period_us / 1000000,
                              .tv_nsec = (long)(period_us % 1000000) * 1000};
        int sig = sigtimedwait(signals, NULL, &ts);
        if (sig > 0)
            return sig;
        if (errno == EAGAIN)
            notify("WATCHDOG=1");
    }
}

/* SIGHUP: the --config file's log-level takes effect (unless a flag or the
 * environment set it); a file that no longer parses changes nothing. */
static void reload_log_level(const px_config *cfg) {
    if (!cfg->config_file[0])
        return;
    px_error err = PX_ERROR_INIT;
    px_log_level level;
    if (px_config_reread_log_level(cfg, &level, &err) < 0) {
        px_err("SIGHUP: %s; keeping log level %s", err.msg, px_log_level_name(px_log_get_level()));
        return;
    }
    if (level == px_log_get_level())
        return;
    /* Logged at the lower of the two levels, where it is seen. */
    px_log_level old = px_log_get_level();
    px_log_level at = level < old ? level : old;
    if (level < old)
        px_log_set_level(level);
    px_log(at, "SIGHUP: log level %s (was %s)", px_log_level_name(level), px_log_level_name(old));
    px_log_set_level(level);
}

/* Stops and frees what px_daemon_run started, in the one safe order, at
 * shutdown and on every start-up failure (any part may be NULL, `srv`
 * started or not): the HTTP door stops accepting first; its requests in
 * progress are answered as the executor's shutdown ends their executions,
 * then its threads are joined, before the gRPC server (whose health it
 * reads) goes. No more jobs from the cluster's queue (Redis) before the
 * executor shuts down: they stay there for other nodes while this one's
 * running jobs get their grace period. Records release their jobs when
 * freed: the store goes before the executor. */
static void stop_all(px_http_server *http, px_rpc_server *srv, px_store *store, px_executor *ex) {
    px_http_server_quiesce(http);
    if (store)
        px_store_drain(store);
    if (srv)
        px_rpc_server_shutdown(srv);
    px_http_server_free(http);
    px_rpc_server_free(srv);
    px_store_free(store);
    px_executor_free(ex);
}

int px_daemon_run(const px_config *cfg, px_sandbox sandbox, px_metrics *metrics,
                  const sigset_t *signals) {
    px_error err = PX_ERROR_INIT;
    px_executor *ex = NULL;
    if (strcmp(cfg->role, "frontend") == 0) {
        /* Serves calls, runs nothing: no executor, no back-end. */
        if (sandbox.ops)
            sandbox.ops->destroy(sandbox.self);
    } else {
        px_executor_config ec = {
            .max_concurrent = (unsigned)cfg->max_concurrent,
            .max_queue = (unsigned)cfg->max_queue,
            .output_limit_bytes = (uint64_t)cfg->output_limit_bytes,
            .metrics = metrics,
        };
        ex = px_executor_new(&ec, sandbox, &err);
        if (!ex) {
            px_err("start: executor: %s", err.msg);
            return 1;
        }
    }
    px_store *store = open_store(cfg, ex, metrics, &err);
    px_quota_config quotas = {
        .max_concurrent = cfg->tenant_max_concurrent,
        .max_queued = cfg->tenant_max_queued,
        .max_per_minute = cfg->tenant_max_per_minute,
    };
    if (!store || px_store_set_quotas(store, &quotas, &err) < 0) {
        px_err("start: store: %s", err.msg);
        stop_all(NULL, NULL, store, ex);
        return 1;
    }
    px_rpc_server *srv = px_rpc_server_new(cfg, ex, store, metrics, &err);
    if (!srv || px_rpc_server_start(srv, &err) < 0) {
        px_err("start: %s", err.msg);
        stop_all(NULL, srv, store, ex);
        return 1;
    }
    px_http_server *http = NULL;
    if (cfg->http_listen[0] && !(http = px_http_server_new(cfg, srv, store, metrics, &err))) {
        px_err("start: %s", err.msg);
        stop_all(NULL, srv, store, ex);
        return 1;
    }
    printf("listening on %s\n", px_rpc_server_address(srv));
    if (http)
        printf("http listening on %s\n", px_http_server_address(http));
    fflush(stdout);
    if (http)
        px_info("HTTP door listening on %s", px_http_server_address(http));
    if (ex)
        px_info("pyexecd %s listening on %s (default image '%s', engine '%s', instance '%s')",
                PYEXEC_VERSION, px_rpc_server_address(srv), cfg->default_image, cfg->docker_socket,
                cfg->instance);
    else
        px_info("pyexecd %s listening on %s (frontend: runs nothing, no Docker engine)",
                PYEXEC_VERSION, px_rpc_server_address(srv));

    char ready[400];
    snprintf(ready, sizeof ready, "READY=1\nSTATUS=serving on %s", px_rpc_server_address(srv));
    notify(ready);
    /* Half the interval the service manager allows, as sd_watchdog_enabled(3) advises. */
    int64_t watchdog_us = px_notify_watchdog_usec() / 2;
    int sig = 0;
    for (;;) {
        sig = wait_signal(signals, watchdog_us);
        if (sig != SIGHUP)
            break;
        notify("RELOADING=1");
        px_error rerr = PX_ERROR_INIT;
        if (px_rpc_server_reload(srv, &rerr) < 0)
            px_err("SIGHUP: %s; keeping the files in use", rerr.msg);
        px_error herr = PX_ERROR_INIT;
        if (px_http_server_reload(http, &herr) < 0)
            px_err("SIGHUP: %s; keeping the files in use", herr.msg);
        reload_log_level(cfg);
        notify(ready);
    }
    notify("STOPPING=1");
    px_info("received %s; shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    stop_all(http, srv, store, ex);
    return 0;
}

extern char **environ;

/* The store flags, before anything starts: a typo exits 2. */
static int check_store(const px_config *cfg, px_error *err) {
    if (strcmp(cfg->role, "both") != 0 && strcmp(cfg->role, "frontend") != 0 &&
        strcmp(cfg->role, "worker") != 0)
        return px_error_set(err, PX_E_INVALID, "--role: '%s' is not both, frontend or worker",
                            cfg->role);
    if (strcmp(cfg->store, "memory") == 0) {
        if (strcmp(cfg->role, "both") != 0)
            return px_error_set(err, PX_E_INVALID,
                                "--role %s: needs a Redis --store (with memory, the one node "
                                "serves calls and runs jobs: --role both)",
                                cfg->role);
        if (cfg->store_min_replicas > 0)
            return px_error_set(err, PX_E_INVALID,
                                "--store-min-replicas: needs a Redis --store (the memory store "
                                "has no replicas)");
        return 0;
    }
    px_redis_target t;
    if (!px_redis_target_is_redis(cfg->store))
        return px_error_set(err, PX_E_INVALID,
                            "--store: '%s' is not memory, redis://HOST:PORT[/DB], "
                            "redis+unix:///PATH[?db=N] or "
                            "redis+sentinel://HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB]",
                            cfg->store);
    if (px_redis_target_parse(cfg->store, &t, err) < 0)
        return px_error_wrap(err, "--store");
    if (cfg->store_sentinel_password_file[0] && !t.is_sentinel)
        return px_error_set(err, PX_E_INVALID,
                            "--store-sentinel-password-file: needs a redis+sentinel:// --store");
    if (cfg->max_queue < 1)
        return px_error_set(err, PX_E_INVALID,
                            "--max-queue: the Redis store needs at least 1 (jobs wait in the "
                            "cluster's queue until a worker claims them)");
    static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";
    if (strspn(cfg->store_namespace, ok) != strlen(cfg->store_namespace))
        return px_error_set(err, PX_E_INVALID, "--store-namespace: only [A-Za-z0-9_.-]");
    if (strspn(cfg->node_name, ok) != strlen(cfg->node_name))
        return px_error_set(err, PX_E_INVALID, "--node-name: only [A-Za-z0-9_.-]");
    return 0;
}

/* --check-config reads the files the flags name as the start would: the
 * token file line by line, the TLS files as PEM. (Whether a key is its
 * certificate's is found at start.) */
static int check_files(const px_config *cfg, px_error *err) {
    if (cfg->auth_tokens[0]) {
        px_tokens *t = px_tokens_load(cfg->auth_tokens, err);
        if (!t)
            return -1;
        px_tokens_free(t);
    }
    const struct {
        const char *flag, *path;
    } pem[] = {{"--tls-cert", cfg->tls_cert},
               {"--tls-key", cfg->tls_key},
               {"--tls-client-ca", cfg->tls_client_ca}};
    for (size_t i = 0; i < sizeof pem / sizeof pem[0]; i++) {
        if (!pem[i].path[0])
            continue;
        char what[64];
        snprintf(what, sizeof what, "%s file", pem[i].flag);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        if (px_file_read(what, pem[i].path, 1024 * 1024, &text, &len, err) < 0)
            return -1;
        if (!strstr(text, "-----BEGIN "))
            return px_error_set(err, PX_E_INVALID, "%s '%s': not PEM (no -----BEGIN line)", what,
                                pem[i].path);
    }
    return 0;
}

int px_daemon_prepare(int argc, char **argv, px_config *cfg, sigset_t *signals, px_error *err) {
    px_config_default(cfg);
    int action = px_config_parse(cfg, argc, argv, environ, stdout, err);
    if (action < 0)
        return -1;
    if (action != PX_CONFIG_RUN && action != PX_CONFIG_CHECKED)
        return 1;
    if (check_store(cfg, err) < 0)
        return -1;
    if (action == PX_CONFIG_CHECKED && check_files(cfg, err) < 0)
        return -1;
    if (action == PX_CONFIG_CHECKED) {
        printf("pyexecd: configuration OK (%s)\n",
               cfg->config_file[0] ? cfg->config_file : "no --config file");
        return 1;
    }
    px_log_set_level(cfg->log_level);
    px_log_set_format(cfg->log_format);
    char node[PX_RSTORE_NAME_MAX + 1];
    node_name(cfg, node);
    px_log_set_node(node);
    /* Signals are taken synchronously by px_daemon_run's sigwait. */
    sigemptyset(signals);
    sigaddset(signals, SIGTERM);
    sigaddset(signals, SIGINT);
    sigaddset(signals, SIGHUP); /* re-read the files named by flags */
    pthread_sigmask(SIG_BLOCK, signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    px_rpc_global_init();
    return 0;
}
