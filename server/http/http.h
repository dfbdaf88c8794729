/*
 * The HTTP door: the original service's REST/JSON API, path for path, served
 * by the same process over the same store and executor as gRPC (the only
 * libmicrohttpd user). docs/api.md ("The HTTP door") lists the routes.
 *
 * Requests are transcoded into the RPC layer's request messages and checked
 * by its codec (server/rpc/codec.h), so both doors share one set of
 * validation rules, limits and admission.
 *
 * Threads: libmicrohttpd runs one listening thread and one thread per open
 * connection (at most cfg->http_max_connections). A connection's thread may
 * block: a sync execution waits for the end of its execution, an output
 * stream for output; each such wait also watches the client's socket (a
 * client that hangs up ends it) and the server's stop signal. The
 * functions below are called by the daemon from one thread.
 */
#ifndef PYEXEC_HTTP_HTTP_H
#define PYEXEC_HTTP_HTTP_H

#include "server/base/config.h"
#include "server/base/error.h"
#include "server/base/metrics.h"
#include "server/rpc/rpc.h"
#include "server/store/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct px_http_server px_http_server;

/* Binds cfg->http_listen and starts serving. Borrows `cfg`, `rpc` (for its
 * health), `store` and `metrics` (served on /metrics, and counted into;
 * may be NULL), which must outlive the server. Returns NULL with
 * `err` set: PX_E_INVALID for a malformed address, PX_E_UNAVAILABLE if it
 * cannot be bound. */
px_http_server *px_http_server_new(const px_config *cfg, px_rpc_server *rpc, px_store *store,
                                   px_metrics *metrics, px_error *err);

/* The bound address as HOST:PORT (the real port when port 0 was asked
 * for). Borrowed until px_http_server_free. */
const char *px_http_server_address(const px_http_server *srv);

/* SIGHUP: re-reads the TLS files (--tls-cert, --tls-key, --tls-client-ca)
 * when the door speaks TLS; new connections use them, open ones keep
 * theirs. On an error (`err` naming the file) the old ones stay. NULL-safe. */
int px_http_server_reload(px_http_server *srv, px_error *err);

/* The first step of the shutdown: stops accepting connections and turns
 * /health to 503. Requests in progress go on (their executions end when
 * the executor shuts down). Idempotent. */
void px_http_server_quiesce(px_http_server *srv);

/* Ends every open request (waits and streams are woken and closed), joins
 * the threads and frees. Call after the executor has shut down, so that the
 * answers in progress carry their executions' ends. NULL-safe. */
void px_http_server_free(px_http_server *srv);

#ifdef __cplusplus
}
#endif

#endif
