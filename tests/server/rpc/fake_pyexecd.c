/*
 * pyexecd with the scripted fake back-end (tests/server/executor/
 * fake_sandbox.h) instead of Docker: the real RPC layer, executor and store,
 * driven by real gRPC clients in the RPC-layer tests. What each execution
 * does is read from its script_args (see fake_sandbox.h), e.g.
 * ["print:hi", "sleep"]. Same flags as pyexecd.
 */
#include <signal.h>
#include <stdio.h>

#include "server/base/config.h"
#include "server/base/metrics.h"
#include "server/daemon.h"
#include "server/rpc/rpc.h"
#include "tests/server/executor/fake_sandbox.h"

int main(int argc, char **argv) {
    px_config cfg;
    sigset_t signals;
    px_error err = PX_ERROR_INIT;
    int rc = px_daemon_prepare(argc, argv, &cfg, &signals, &err);
    if (rc < 0) {
        fprintf(stderr, "fake_pyexecd: %s\n", err.msg);
        return 2;
    }
    if (rc > 0)
        return 0;
    fake_sandbox *fake = fake_sandbox_new();
    px_metrics *metrics = px_metrics_new();
    rc = px_daemon_run(&cfg, fake_sandbox_as_sandbox(fake), metrics, &signals);
    px_metrics_free(metrics);
    fake_sandbox_unref(fake);
    px_rpc_global_cleanup();
    return rc;
}
