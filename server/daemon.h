/*
 * The server process's body, shared by pyexecd (with the Docker back-end)
 * and the test server (with a fake back-end): executor -> store -> gRPC
 * server, serve until one of `signals` arrives, shut down in order.
 *
 * Prints "listening on HOST:PORT" as the first line of stdout once the
 * server accepts calls, and with --http-listen "http listening on
 * HOST:PORT" as the second. SIGHUP (when in `signals`) re-reads the files
 * the flags name (px_rpc_server_reload) and the --config file's log level
 * (px_config_reread_log_level), and serving goes on. Must be called
 * from main's thread with `signals` blocked in every thread. Takes ownership
 * of `sandbox` (ops NULL: none). With --role frontend there is no executor:
 * the sandbox is freed unused, the store gets no runner and health does not
 * ask the engine; with --role worker the RPC server serves only health.
 * Returns the process exit code: 0 after a clean shutdown, 1 if the server
 * could not start (the reason is logged).
 */
#ifndef PYEXEC_DAEMON_H
#define PYEXEC_DAEMON_H

#include <signal.h>

#include "server/base/config.h"
#include "server/base/metrics.h"
#include "server/executor/sandbox.h"

int px_daemon_run(const px_config *cfg, px_sandbox sandbox, px_metrics *metrics,
                  const sigset_t *signals);

/* The start of every server main(): parses the flags and environment into
 * `cfg`, sets the log level, blocks SIGTERM, SIGINT and SIGHUP (filled into
 * `signals`, for px_daemon_run) in the calling thread so that every thread
 * started later inherits the mask, ignores SIGPIPE, and initialises gRPC.
 * Returns 0 when the caller should go on and serve (then it calls
 * px_rpc_global_cleanup() at the end); 1 when --help or --version was
 * answered on stdout, or --check-config found everything valid and said so
 * (exit 0 at once); or -1 with `err` set (PX_E_INVALID,
 * naming the flag or variable and its accepted range; main() prints it and
 * exits 2). */
int px_daemon_prepare(int argc, char **argv, px_config *cfg, sigset_t *signals, px_error *err);

#endif
