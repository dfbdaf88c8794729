/*
 * The gRPC server: the only gRPC user on the server side.
 *
 * It serves pyexec.v1.ExecutorService (Execute, GetExecution, StreamOutput,
 * Kill, Eval, ListExecutions), grpc.health.v1.Health (Check, Watch) and server reflection
 * (grpc.reflection.v1 and v1alpha) on one completion queue,
 * answers any other method with UNIMPLEMENTED at once, and shuts down in the
 * order docs/contract.md gives.
 *
 * Threads: px_rpc_server_new/start/shutdown/free are called by main() (or a
 * test) from one thread. The server runs its own completion-queue threads and
 * a health-probe thread; the executor's worker threads resume calls when
 * records change.
 */
#ifndef PYEXEC_RPC_RPC_H
#define PYEXEC_RPC_RPC_H

#include <stdbool.h>
#include <stddef.h>

#include "server/base/config.h"
#include "server/base/error.h"
#include "server/base/metrics.h"
#include "server/executor/executor.h"
#include "server/store/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct px_rpc_server px_rpc_server;

/* Initialises / releases the gRPC library for the process: main() calls
 * them once, before any thread starts and after the last server is freed,
 * so that no other module includes gRPC. */
void px_rpc_global_init(void);
void px_rpc_global_cleanup(void);

/* Creates the server and binds cfg->listen. `ex` is NULL on a --role
 * frontend node (health then asks only the store); with --role worker the
 * ExecutorService's calls are refused (FAILED_PRECONDITION) and only health
 * and reflection are served. Borrows `cfg`, `ex`, `store`
 * and `metrics` (may be NULL: not counted), which must outlive the server. Returns NULL with `err` set
 * (PX_E_UNAVAILABLE if the address cannot be bound, PX_E_INVALID if it
 * is malformed). */
px_rpc_server *px_rpc_server_new(const px_config *cfg, px_executor *ex, px_store *store,
                                 px_metrics *metrics, px_error *err);

/* The bound address as HOST:PORT (the real port when cfg->listen asked for
 * port 0). Borrowed until px_rpc_server_free. */
const char *px_rpc_server_address(const px_rpc_server *srv);

/* SIGHUP: re-reads the files the server was started with (the TLS
 * certificate, key and client CA; the token file). New connections use the
 * certificates, open ones keep theirs; the next call is checked against the
 * new tokens. On an error (`err` set, naming the file and line) the old
 * ones stay in use: each file on its own. Returns 0 or -1. */
int px_rpc_server_reload(px_rpc_server *srv, px_error *err);

/* The tenant of a request that came in another door (the HTTP door), by
 * the rules of the gRPC port: its "Authorization" header (the `len` bytes
 * of `authorization`, NULL: none) and the subject of its client certificate
 * (NULL or "": none), into `tenant` (PX_TENANT_MAX bytes). Returns 0, or -1
 * with `err` (PX_E_UNAUTHENTICATED). Any thread. */
int px_rpc_authenticate(px_rpc_server *srv, const char *authorization, size_t len,
                        const char *cert_subject, char *tenant, px_error *err);

/* Probes the engine once, then starts serving. Returns 0, or -1 with `err`. */
int px_rpc_server_start(px_rpc_server *srv, px_error *err);

/* Whether the server is SERVING (its health, as Health/Check reports it:
 * the engine answers and no shutdown has begun); when not, why, into
 * `reason` ("" when serving). Never blocks on the engine; any thread. */
bool px_rpc_server_serving(px_rpc_server *srv, char *reason, size_t n);

/* The budget of replies being sent to clients, --max-reply-queued-bytes,
 * shared by both doors: a reply is held until its client takes it, so
 * clients that never read could otherwise pin a whole result each.
 * px_rpc_reserve_reply reserves `len` bytes and returns true, or false
 * (nothing reserved) when they do not fit; px_rpc_release_reply gives them
 * back once the reply is sent or dropped. Any thread. */
bool px_rpc_reserve_reply(px_rpc_server *srv, int64_t len);
void px_rpc_release_reply(px_rpc_server *srv, int64_t len);

/* Graceful shutdown, blocking until done: health turns NOT_SERVING, new
 * calls are refused (UNAVAILABLE), running executions get
 * cfg->shutdown_grace_s and are then killed (FAILED, SANDBOX_ERROR), open
 * calls are finished or cancelled, the threads stop. Idempotent. */
void px_rpc_server_shutdown(px_rpc_server *srv);

/* Shuts down if needed and frees. NULL-safe. */
void px_rpc_server_free(px_rpc_server *srv);

#ifdef __cplusplus
}
#endif

#endif
