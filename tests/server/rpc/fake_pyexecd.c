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
#include "server/daemon.h"
#include "server/rpc/rpc.h"
#include "tests/server/executor/fake_sandbox.h"

extern char **environ;

int main(int argc, char **argv) {
    px_config cfg;
    px_config_default(&cfg);
    px_error err = PX_ERROR_INIT;
    int action = px_config_parse(&cfg, argc, argv, environ, stdout, &err);
    if (action < 0) {
        fprintf(stderr, "fake_pyexecd: %s\n", err.msg);
        return 2;
    }
    if (action != PX_CONFIG_RUN)
        return 0;
    px_log_set_level(cfg.log_level);
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    px_rpc_global_init();
    fake_sandbox *fake = fake_sandbox_new();
    int rc = px_daemon_run(&cfg, fake_sandbox_as_sandbox(fake), &signals);
    fake_sandbox_unref(fake);
    px_rpc_global_cleanup();
    return rc;
}
