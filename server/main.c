/*
 * pyexecd: parse the configuration, initialise the libraries before any
 * thread, create the Docker back-end, run the daemon until SIGTERM/SIGINT.
 *
 * Exit codes: 0 after a clean shutdown (or --help/--version, or a valid
 * --check-config), 1 when the server cannot start (or --check-config found
 * an error), 2 for bad flags, environment or --config file.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "server/base/config.h"
#include "server/base/log.h"
#include "server/base/metrics.h"
#include "server/daemon.h"
#include "server/rpc/rpc.h"
#include "server/executor/docker/docker_global.h"
#include "server/executor/docker/docker_sandbox.h"

int main(int argc, char **argv) {
    px_config cfg;
    sigset_t signals;
    px_error err = PX_ERROR_INIT;
    int rc = px_daemon_prepare(argc, argv, &cfg, &signals, &err);
    if (rc < 0) {
        fprintf(stderr, "pyexecd: %s\n", err.msg);
        return cfg.check_config ? 1 : 2;
    }
    if (rc > 0)
        return 0;
    if (px_docker_global_init(&err) < 0) {
        px_err("start: %s", err.msg);
        px_rpc_global_cleanup();
        return 1;
    }
    /* The back-end counts into it too: made before both, freed after both. */
    px_metrics *metrics = px_metrics_new();
    px_docker_config dc;
    px_docker_config_from(&dc, &cfg);
    dc.metrics = metrics;
    px_sandbox sandbox = {0};
    /* A frontend runs nothing: it neither needs nor contacts an engine. */
    bool frontend = strcmp(cfg.role, "frontend") == 0;
    rc = 1;
    if (!metrics)
        px_err("start: metrics: out of memory");
    else if (!frontend && px_docker_sandbox_new(&dc, &sandbox, &err) < 0)
        px_err("start: Docker back-end: %s", err.msg);
    else
        rc = px_daemon_run(&cfg, sandbox, metrics, &signals);
    px_metrics_free(metrics);
    px_docker_global_cleanup();
    px_rpc_global_cleanup();
    return rc;
}
