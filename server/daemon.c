#include "server/daemon.h"

#include <pthread.h>
#include <stdio.h>

#include "server/base/log.h"
#include "server/executor/executor.h"
#include "server/executor/runner.h"
#include "server/http/http.h"
#include "server/rpc/rpc.h"
#include "server/store/memory.h"

int px_daemon_run(const px_config *cfg, px_sandbox sandbox, const sigset_t *signals) {
    px_error err = PX_ERROR_INIT;
    px_executor_config ec = {
        .max_concurrent = (unsigned)cfg->max_concurrent,
        .max_queue = (unsigned)cfg->max_queue,
        .output_limit_bytes = (uint64_t)cfg->output_limit_bytes,
    };
    px_executor *ex = px_executor_new(&ec, sandbox, &err);
    if (!ex) {
        px_err("start: executor: %s", err.msg);
        return 1;
    }
    px_store_config sc = {
        .retention_ms = cfg->retention_s * 1000,
        .max_records = (size_t)cfg->max_records,
        /* Calls waiting for the end (sync Execute, Kill) are not counted:
         * readers never lock them out. */
        .max_readers = (size_t)cfg->max_stream_readers,
        .max_retained_bytes = (uint64_t)cfg->max_retained_bytes,
        .runner = px_executor_runner(ex),
    };
    px_store *store = px_memory_store_new(&sc, &err);
    if (!store) {
        px_err("start: store: %s", err.msg);
        px_executor_free(ex);
        return 1;
    }
    px_rpc_server *srv = px_rpc_server_new(cfg, ex, store, &err);
    if (!srv || px_rpc_server_start(srv, &err) < 0) {
        px_err("start: %s", err.msg);
        px_rpc_server_free(srv);
        px_executor_free(ex);
        px_store_free(store);
        return 1;
    }
    px_http_server *http = NULL;
    if (cfg->http_listen[0] && !(http = px_http_server_new(cfg, srv, store, &err))) {
        px_err("start: %s", err.msg);
        px_rpc_server_free(srv);
        px_executor_free(ex);
        px_store_free(store);
        return 1;
    }
    printf("listening on %s\n", px_rpc_server_address(srv));
    if (http)
        printf("http listening on %s\n", px_http_server_address(http));
    fflush(stdout);
    if (http)
        px_info("HTTP door listening on %s", px_http_server_address(http));
    px_info("pyexecd %s listening on %s (default image '%s', engine '%s', instance '%s')",
            PYEXEC_VERSION, px_rpc_server_address(srv), cfg->default_image, cfg->docker_socket,
            cfg->instance);

    int sig = 0;
    for (;;) {
        sigwait(signals, &sig);
        if (sig != SIGHUP)
            break;
        px_error rerr = PX_ERROR_INIT;
        if (px_rpc_server_reload(srv, &rerr) < 0)
            px_err("SIGHUP: %s; keeping the files in use", rerr.msg);
    }
    px_info("received %s; shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    /* The HTTP door stops accepting first; its requests in progress are
     * answered as the executor's shutdown ends their executions, then its
     * threads are joined, before the gRPC server (whose health it reads)
     * goes. */
    px_http_server_quiesce(http);
    px_rpc_server_shutdown(srv);
    px_http_server_free(http);
    px_rpc_server_free(srv);
    /* Records release their jobs when freed: the store goes first. */
    px_store_free(store);
    px_executor_free(ex);
    return 0;
}

extern char **environ;

int px_daemon_prepare(int argc, char **argv, px_config *cfg, sigset_t *signals, px_error *err) {
    px_config_default(cfg);
    int action = px_config_parse(cfg, argc, argv, environ, stdout, err);
    if (action < 0)
        return -1;
    if (action != PX_CONFIG_RUN)
        return 1;
    px_log_set_level(cfg->log_level);
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
