/*
 * The server's lifecycle and its completion-queue loop. It serves
 * pyexec.v1.ExecutorService, grpc.health.v1.Health and server reflection
 * (grpc.reflection.v1 and v1alpha, reflection.c).
 *
 * Every RPC method is registered; for each, one "acceptor" keeps a
 * grpc_server_request_registered_call outstanding and re-arms it as soon as
 * a call arrives, then hands the call to that method's handler. A catch-all
 * grpc_server_request_call answers every unregistered method with
 * UNIMPLEMENTED at once (otherwise the C core leaves such calls hanging until
 * their deadline).
 *
 * Shutdown order (px_rpc_server_shutdown), written once, here:
 *   1. grpc_server_shutdown_and_notify: no new calls (clients see UNAVAILABLE);
 *   2. health -> NOT_SERVING (open Watch calls are told);
 *   3. the executor gets the grace period, then kills what still runs; the
 *      calls waiting on those executions finish normally;
 *   4. open Health/Watch calls are finished; the other calls get up to
 *      SHUTDOWN_DRAIN_S to send their final messages; then
 *      grpc_server_cancel_all_calls;
 *   5. wait for the shutdown tag and for zero live calls;
 *   6. stop the health thread, grpc_server_destroy, shut the queue down and
 *      drain it to GRPC_QUEUE_SHUTDOWN, join the queue threads, destroy it.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>

#include "grpc/health/v1/health.pb-c.h"
#include "server/base/cleanup.h"
#include "server/base/clock.h"
#include "server/base/log.h"
#include "server/base/quote.h"
#include "server/base/tokens.h"
#include "server/rpc/call.h"
#include "server/rpc/status.h"
#include "server/rpc/tls.h"

/* Seconds the calls still open after the executor stopped get to send
 * their final messages before they are cancelled. */
#define SHUTDOWN_DRAIN_S 5

/* ---- acceptors for registered methods ---- */

typedef struct acceptor {
    px_tag tag;
    px_rpc_server *srv;
    enum px_method method;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
} acceptor;

static void acceptor_arm(acceptor *a);

/* The executor's methods act for a tenant; health and reflection are open. */
static bool needs_tenant(enum px_method m) {
    return m == PX_M_EXECUTE || m == PX_M_GET || m == PX_M_STREAM || m == PX_M_KILL ||
           m == PX_M_EVAL || m == PX_M_LIST;
}

static const char *method_name(enum px_method m) {
    switch (m) {
    case PX_M_EXECUTE: return "Execute";
    case PX_M_GET: return "GetExecution";
    case PX_M_STREAM: return "StreamOutput";
    case PX_M_KILL: return "Kill";
    case PX_M_EVAL: return "Eval";
    case PX_M_LIST: return "ListExecutions";
    default: return NULL;
    }
}

/* Answers a call whose caller could not be authenticated, or that this
 * node does not serve (--role worker). */
static void refuse(px_rpc_server *srv, grpc_call *call, grpc_byte_buffer *payload, enum px_method m,
                   const px_error *err) {
    static const px_call_ops ops = {0};
    px_call *c = px_call_new(sizeof *c, srv, call, &payload, &ops);
    if (payload)
        grpc_byte_buffer_destroy(payload);
    if (!c)
        return;
    c->rpc = method_name(m);
    px_call_finish_error(c, err);
    px_call_unref(c);
}

static void on_accept(px_tag *tag, bool ok) {
    acceptor *a = container_of(tag, acceptor, tag);
    if (!ok) {
        /* The server is shutting down: this acceptor is done. */
        grpc_metadata_array_destroy(&a->md);
        if (a->call)
            grpc_call_unref(a->call);
        if (a->payload)
            grpc_byte_buffer_destroy(a->payload);
        free(a);
        return;
    }
    grpc_call *call = a->call;
    grpc_byte_buffer *payload = a->payload;
    px_rpc_server *srv = a->srv;
    enum px_method method = a->method;
    char tenant[PX_TENANT_MAX] = "";
    px_error err = PX_ERROR_INIT;
    int auth = needs_tenant(method) ? px_auth_call(srv, call, &a->md, tenant, &err) : 0;
    grpc_metadata_array_destroy(&a->md);
    acceptor_arm(a);
    if (auth < 0) {
        refuse(srv, call, payload, method, &err);
        return;
    }
    if (srv->worker_only && needs_tenant(method)) {
        px_error_set(&err, PX_E_PRECONDITION,
                     "this node is --role worker: it runs jobs and serves only health; send "
                     "calls to a frontend or both node");
        refuse(srv, call, payload, method, &err);
        return;
    }
    switch (method) {
    case PX_M_EXECUTE: px_handle_execute(srv, call, payload, tenant); break;
    case PX_M_GET: px_handle_get(srv, call, payload, tenant); break;
    case PX_M_STREAM: px_handle_stream(srv, call, payload, tenant); break;
    case PX_M_KILL: px_handle_kill(srv, call, payload, tenant); break;
    case PX_M_EVAL: px_handle_eval(srv, call, payload, tenant); break;
    case PX_M_LIST: px_handle_list_executions(srv, call, payload, tenant); break;
    case PX_M_HEALTH_CHECK: px_handle_health_check(srv, call, payload); break;
    case PX_M_HEALTH_WATCH: px_handle_health_watch(srv, call, payload); break;
    case PX_M_REFLECTION_V1:
    case PX_M_REFLECTION_V1ALPHA: px_handle_reflection(srv, call, payload); break;
    case PX_M_COUNT: break;
    }
}

/* Bidi methods read their requests themselves (GRPC_SRM_PAYLOAD_NONE); the
 * others get their one request with the call. */
static bool reads_request_stream(enum px_method m) {
    return m == PX_M_REFLECTION_V1 || m == PX_M_REFLECTION_V1ALPHA;
}

static void acceptor_arm(acceptor *a) {
    a->call = NULL;
    a->payload = NULL;
    grpc_metadata_array_init(&a->md);
    grpc_call_error e = grpc_server_request_registered_call(
        a->srv->server, a->srv->methods[a->method], &a->call, &a->deadline, &a->md,
        reads_request_stream(a->method) ? NULL : &a->payload, a->srv->cq, a->srv->cq, &a->tag);
    if (e != GRPC_CALL_OK) {
        px_err("rpc: request_registered_call: grpc_call_error %d", (int)e);
        grpc_metadata_array_destroy(&a->md);
        free(a);
    }
}

static int acceptor_start(px_rpc_server *srv, enum px_method method) {
    acceptor *a = calloc(1, sizeof *a);
    if (!a)
        return -1;
    a->tag.on_done = on_accept;
    a->srv = srv;
    a->method = method;
    acceptor_arm(a);
    return 0;
}

/* ---- the catch-all for unknown methods ---- */

typedef struct unknown_call {
    px_tag request_tag;
    px_tag done_tag;
    px_rpc_server *srv;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    int cancelled;
    grpc_slice status_details;
} unknown_call;

static void unknown_arm(px_rpc_server *srv);

static void on_unknown_done(px_tag *tag, bool ok) {
    (void)ok;
    unknown_call *u = container_of(tag, unknown_call, done_tag);
    grpc_slice_unref(u->status_details);
    grpc_call_unref(u->call);
    grpc_call_details_destroy(&u->details);
    grpc_metadata_array_destroy(&u->md);
    free(u);
}

static void on_unknown_request(px_tag *tag, bool ok) {
    unknown_call *u = container_of(tag, unknown_call, request_tag);
    if (!ok) {
        grpc_call_details_destroy(&u->details);
        grpc_metadata_array_destroy(&u->md);
        free(u);
        return;
    }
    unknown_arm(u->srv);
    char *method = grpc_slice_to_c_string(u->details.method);
    char msg[512];
    px_quoted q;
    snprintf(msg, sizeof msg, "unknown method '%s'", px_quote_str(&q, method));
    gpr_free(method);
    u->status_details = grpc_slice_from_copied_string(msg);
    grpc_op ops[] = {
        {.op = GRPC_OP_SEND_INITIAL_METADATA},
        {.op = GRPC_OP_RECV_CLOSE_ON_SERVER, .data.recv_close_on_server.cancelled = &u->cancelled},
        {.op = GRPC_OP_SEND_STATUS_FROM_SERVER,
         .data.send_status_from_server = {.status = GRPC_STATUS_UNIMPLEMENTED,
                                          .status_details = &u->status_details}},
    };
    u->done_tag.on_done = on_unknown_done;
    if (grpc_call_start_batch(u->call, ops, PX_ARRAY_SIZE(ops), &u->done_tag, NULL) != GRPC_CALL_OK)
        on_unknown_done(&u->done_tag, false);
}

static void unknown_arm(px_rpc_server *srv) {
    unknown_call *u = calloc(1, sizeof *u);
    if (!u)
        return;
    u->srv = srv;
    u->request_tag.on_done = on_unknown_request;
    grpc_call_details_init(&u->details);
    grpc_metadata_array_init(&u->md);
    if (grpc_server_request_call(srv->server, &u->call, &u->details, &u->md, srv->cq, srv->cq,
                                 &u->request_tag) != GRPC_CALL_OK) {
        grpc_call_details_destroy(&u->details);
        grpc_metadata_array_destroy(&u->md);
        free(u);
    }
}

/* ---- the loop ---- */

static void *cq_loop(void *arg) {
    px_rpc_server *srv = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
                                                   NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            return NULL;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        px_tag *tag = ev.tag;
        tag->on_done(tag, ev.success != 0);
    }
}

static void on_shutdown_done(px_tag *tag, bool ok) {
    (void)ok;
    px_rpc_server *srv = container_of(tag, px_rpc_server, shutdown_tag);
    pthread_mutex_lock(&srv->mu);
    srv->shutdown_done = true;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->mu);
}

/* ---- health probing ---- */

/* Pings the back-end and the store (Redis, when shared): SERVING, or
 * NOT_SERVING with why in `reason`. */
static int probe(px_rpc_server *srv, char *reason, size_t n) {
    px_error err = PX_ERROR_INIT;
    reason[0] = '\0';
    /* A frontend has no executor, and needs no engine. */
    if (srv->ex) {
        /* A worker whose engine does not answer takes no jobs from a shared
         * queue until it does. */
        bool ready = px_executor_ping(srv->ex, &err) == 0;
        px_store_runner_ready(srv->store, ready);
        if (!ready) {
            snprintf(reason, n, "%s", err.msg[0] ? err.msg : "the back-end does not answer");
            return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
        }
    }
    if (px_store_ping(srv->store, &err) < 0) {
        snprintf(reason, n, "%s", err.msg[0] ? err.msg : "the store does not answer");
        return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    }
    return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
}

static void *health_loop(void *arg) {
    px_rpc_server *srv = arg;
    pthread_mutex_lock(&srv->mu);
    while (!srv->shutting_down) {
        int64_t until = px_now_mono_ms() + srv->cfg->health_interval_ms;
        while (!srv->shutting_down &&
               px_cond_wait_until(&srv->cond, &srv->mu, until) != ETIMEDOUT) {
        }
        if (srv->shutting_down)
            break;
        pthread_mutex_unlock(&srv->mu);
        char reason[sizeof srv->health_reason];
        int status = probe(srv, reason, sizeof reason);
        pthread_mutex_lock(&srv->mu);
        /* A reason that changes while NOT_SERVING (the engine went from
         * absent to hanging) is kept for Check, without a new log line. */
        if (!srv->shutting_down &&
            (status != srv->serving || strcmp(reason, srv->health_reason) != 0)) {
            pthread_mutex_unlock(&srv->mu);
            px_health_set(srv, status, reason);
            pthread_mutex_lock(&srv->mu);
        }
    }
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

/* ---- public API ---- */

/* The gRPC core's own log lines (errors only, unless GRPC_VERBOSITY asks
 * for more) go to the server's log at debug level: the server reports what
 * failed itself, in its own words (e.g. "--listen: cannot bind ...: Address
 * already in use"), and the core's structured dumps are only for those who
 * look. A failed internal assertion, which aborts the process, stays an
 * error. */
static void grpc_log_to_px(gpr_log_func_args *args) {
    bool fatal = strncmp(args->message, "assertion failed", 16) == 0;
    px_log(fatal ? PX_LOG_ERROR : PX_LOG_DEBUG, "grpc: %s (%s:%d)", args->message, args->file,
           args->line);
}

void px_rpc_global_init(void) {
    gpr_set_log_function(grpc_log_to_px);
    grpc_init();
}

void px_rpc_global_cleanup(void) {
    grpc_shutdown();
}

/* Why `listen` cannot be bound, in the words of bind(2) (the gRPC core
 * only says that it could not): binds a throw-away socket the way the core
 * does. Writes "" when that succeeds (the address was freed meanwhile) or
 * the address does not resolve to an IP socket. */
static void bind_error(const char *listen, char *out, size_t n) {
    out[0] = '\0';
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen)
        return;
    char host[256];
    size_t len = (size_t)(colon - listen);
    if (listen[0] == '[' && len >= 2 && listen[len - 1] == ']') {
        listen++;
        len -= 2;
    }
    if (len >= sizeof host)
        return;
    memcpy(host, listen, len);
    host[len] = '\0';
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
    if (rc != 0) {
        snprintf(out, n, "%s", gai_strerror(rc));
        return;
    }
    for (struct addrinfo *a = ai; a && !out[0]; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) < 0)
            snprintf(out, n, "%s", strerror(errno));
        close(fd);
    }
    freeaddrinfo(ai);
}

static int split_host(const char *listen, char *host, size_t n) {
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || (size_t)(colon - listen) >= n)
        return -1;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    return 0;
}

/* Creates the gRPC server with its channel arguments (message and
 * metadata limits, keepalive enforcement) and its completion queue. */
static void create_grpc_server(px_rpc_server *srv, const px_config *cfg) {
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = (int)cfg->max_message_bytes},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .value.integer = -1},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_CONCURRENT_STREAMS,
         .value.integer = cfg->max_concurrent_streams},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_METADATA_SIZE, .value.integer = 16 * 1024},
        /* Keepalive enforcement: clients may ping every 10 s at most, and
         * only with calls open; abusers are disconnected. */
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
         .value.integer = 10000},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_MAX_PING_STRIKES, .value.integer = 2},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIME_MS, .value.integer = 120000},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS, .value.integer = 20000},
    };
    grpc_channel_args chargs = {.num_args = PX_ARRAY_SIZE(args), .args = args};
    srv->server = grpc_server_create(&chargs, NULL);
    srv->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
}

/* Registers every method the server serves in srv->methods. */
static void register_methods(px_rpc_server *srv) {
    static const struct {
        enum px_method m;
        const char *path;
    } methods[] = {
        {PX_M_EXECUTE, "/pyexec.v1.ExecutorService/Execute"},
        {PX_M_GET, "/pyexec.v1.ExecutorService/GetExecution"},
        {PX_M_STREAM, "/pyexec.v1.ExecutorService/StreamOutput"},
        {PX_M_KILL, "/pyexec.v1.ExecutorService/Kill"},
        {PX_M_EVAL, "/pyexec.v1.ExecutorService/Eval"},
        {PX_M_LIST, "/pyexec.v1.ExecutorService/ListExecutions"},
        {PX_M_HEALTH_CHECK, "/grpc.health.v1.Health/Check"},
        {PX_M_HEALTH_WATCH, "/grpc.health.v1.Health/Watch"},
        {PX_M_REFLECTION_V1, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"},
        {PX_M_REFLECTION_V1ALPHA, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"},
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(methods); i++)
        srv->methods[methods[i].m] = grpc_server_register_method(
            srv->server, methods[i].path, NULL,
            reads_request_stream(methods[i].m) ? GRPC_SRM_PAYLOAD_NONE
                                               : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER,
            0);
}

/* Shuts `cq` down, drains it to GRPC_QUEUE_SHUTDOWN and destroys it. Only
 * when no thread takes events from it. */
static void cq_drain_destroy(grpc_completion_queue *cq) {
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
}

/* Frees what px_rpc_server_new allocated besides the gRPC server and its
 * queue, which are gone by now. */
static void server_release(px_rpc_server *srv) {
    pthread_mutex_destroy(&srv->mu);
    pthread_cond_destroy(&srv->cond);
    px_reflection_free(srv->reflection);
    px_tls_free(srv->tls);
    px_tokens_free(srv->tokens);
    pthread_rwlock_destroy(&srv->tokens_mu);
    free(srv);
}

px_rpc_server *px_rpc_server_new(const px_config *cfg, px_executor *ex, px_store *store,
                                 px_metrics *metrics, px_error *err) {
    char host[256];
    if (split_host(cfg->listen, host, sizeof host) < 0) {
        px_error_set(err, PX_E_INVALID, "--listen: '%s' is not HOST:PORT", cfg->listen);
        return NULL;
    }
    px_reflection *reflection = px_reflection_new(err);
    if (!reflection)
        return NULL;
    px_rpc_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        px_reflection_free(reflection);
        px_error_set(err, PX_E_INTERNAL, "out of memory");
        return NULL;
    }
    srv->reflection = reflection;
    srv->cfg = cfg;
    srv->ex = ex;
    srv->worker_only = strcmp(cfg->role, "worker") == 0;
    srv->store = store;
    srv->metrics = metrics;
    srv->serving = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    srv->shutdown_tag.on_done = on_shutdown_done;
    atomic_init(&srv->live_calls, 0);
    atomic_init(&srv->stream_readers, 0);
    atomic_init(&srv->reply_bytes, 0);
    int64_t share = cfg->max_stream_queued_bytes / cfg->max_total_stream_readers;
    srv->stream_message_max = share < PX_STREAM_MESSAGE_MAX ? (size_t)share : PX_STREAM_MESSAGE_MAX;
    pthread_mutex_init(&srv->mu, NULL);
    px_cond_init_mono(&srv->cond);
    pthread_rwlock_init(&srv->tokens_mu, NULL);

    if (cfg->auth_tokens[0]) {
        srv->tokens = px_tokens_load(cfg->auth_tokens, err);
        if (!srv->tokens) {
            server_release(srv);
            return NULL;
        }
        px_info("auth: %zu tokens from '%s'", px_tokens_count(srv->tokens), cfg->auth_tokens);
    }
    if (cfg->tls_cert[0]) {
        srv->tls = px_tls_new(cfg, err);
        if (!srv->tls) {
            server_release(srv);
            return NULL;
        }
    }

    create_grpc_server(srv, cfg);
    register_methods(srv);
    grpc_server_credentials *creds = srv->tls ? px_tls_server_credentials(srv->tls)
                                              : grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(srv->server, cfg->listen, creds);
    grpc_server_credentials_release(creds);
    if (port <= 0) {
        char why[256];
        bind_error(cfg->listen, why, sizeof why);
        if (!why[0] && srv->tls)
            /* The address binds: the core refused the certificate or key. */
            px_error_set(err, PX_E_INVALID,
                         "--tls-cert '%s' and --tls-key '%s' cannot serve TLS (a certificate "
                         "and the private key of that certificate, PEM)",
                         cfg->tls_cert, cfg->tls_key);
        else
            px_error_set(err, PX_E_UNAVAILABLE, "--listen: cannot bind '%s'%s%s", cfg->listen,
                         why[0] ? ": " : "", why);
        grpc_server_destroy(srv->server);
        cq_drain_destroy(srv->cq);
        server_release(srv);
        return NULL;
    }
    snprintf(srv->address, sizeof srv->address, "%s:%d", host, port);
    return srv;
}

int px_rpc_server_reload(px_rpc_server *srv, px_error *err) {
    int rc = 0;
    if (srv->tls) {
        if (px_tls_reload(srv->tls, err) < 0)
            rc = -1;
        else
            px_info("tls: certificate files re-read; new connections use them (--tls-cert '%s')",
                    srv->cfg->tls_cert);
    }
    if (srv->cfg->auth_tokens[0]) {
        px_error terr = PX_ERROR_INIT;
        px_tokens *fresh = px_tokens_load(srv->cfg->auth_tokens, &terr);
        if (!fresh) {
            if (rc == 0)
                *err = terr;
            else
                px_err("SIGHUP: %s; keeping the tokens in use", terr.msg);
            return -1;
        }
        pthread_rwlock_wrlock(&srv->tokens_mu);
        px_tokens *old = srv->tokens;
        srv->tokens = fresh;
        pthread_rwlock_unlock(&srv->tokens_mu);
        px_tokens_free(old);
        px_info("auth: %zu tokens re-read from '%s'", px_tokens_count(fresh),
                srv->cfg->auth_tokens);
    }
    return rc;
}

const char *px_rpc_server_address(const px_rpc_server *srv) {
    return srv->address;
}

int px_rpc_server_start(px_rpc_server *srv, px_error *err) {
    char reason[sizeof srv->health_reason];
    int status = probe(srv, reason, sizeof reason);
    px_health_set(srv, status, reason);
    grpc_server_start(srv->server);
    for (int m = 0; m < PX_M_COUNT; m++) {
        if (acceptor_start(srv, (enum px_method)m) < 0)
            return px_error_set(err, PX_E_INTERNAL, "out of memory");
    }
    unknown_arm(srv);
    srv->n_cq_threads = strcmp(srv->cfg->store, "memory") == 0
                            ? 2
                            : (int)PX_ARRAY_SIZE(srv->cq_threads);
    for (int i = 0; i < srv->n_cq_threads; i++) {
        int rc = pthread_create(&srv->cq_threads[i], NULL, cq_loop, srv);
        if (rc != 0) {
            srv->n_cq_threads = i;
            return px_error_set_errno(err, PX_E_INTERNAL, rc, "start queue thread");
        }
    }
    int rc = pthread_create(&srv->health_thread, NULL, health_loop, srv);
    if (rc != 0)
        return px_error_set_errno(err, PX_E_INTERNAL, rc, "start health thread");
    srv->health_thread_started = true;
    pthread_mutex_lock(&srv->mu);
    srv->started = true;
    pthread_mutex_unlock(&srv->mu);
    return 0;
}

void px_rpc_server_shutdown(px_rpc_server *srv) {
    pthread_mutex_lock(&srv->mu);
    if (srv->stopped || !srv->started) {
        bool was_started = srv->started;
        pthread_mutex_unlock(&srv->mu);
        if (!was_started)
            px_executor_shutdown(srv->ex, 0);
        return;
    }
    srv->shutting_down = true;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->mu);

    px_info("shutdown: refusing new calls; running executions get %lld s",
            (long long)srv->cfg->shutdown_grace_s);
    /* Refuse new calls first, so that nobody who has seen NOT_SERVING can
     * still get a new call in. */
    grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);
    px_health_set(srv, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING,
                  "the server is shutting down");

    px_executor_shutdown(srv->ex, srv->cfg->shutdown_grace_s * 1000);

    px_health_close_all(srv);
    /* Every execution is terminal now: the calls waiting on them are
     * sending their last messages. Give them a bounded moment to finish
     * (a reader that stopped reading would otherwise hold us forever),
     * then cancel whatever is left. */
    pthread_mutex_lock(&srv->mu);
    int64_t until = px_now_mono_ms() + SHUTDOWN_DRAIN_S * 1000;
    while (atomic_load(&srv->live_calls) > 0 &&
           px_cond_wait_until(&srv->cond, &srv->mu, until) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&srv->mu);
    grpc_server_cancel_all_calls(srv->server);

    pthread_mutex_lock(&srv->mu);
    while (!srv->shutdown_done || atomic_load(&srv->live_calls) > 0)
        pthread_cond_wait(&srv->cond, &srv->mu);
    pthread_mutex_unlock(&srv->mu);

    if (srv->health_thread_started)
        pthread_join(srv->health_thread, NULL);
    grpc_server_destroy(srv->server);
    srv->server = NULL;
    grpc_completion_queue_shutdown(srv->cq);
    for (int i = 0; i < srv->n_cq_threads; i++)
        pthread_join(srv->cq_threads[i], NULL);
    grpc_completion_queue_destroy(srv->cq);
    srv->cq = NULL;

    pthread_mutex_lock(&srv->mu);
    srv->stopped = true;
    pthread_mutex_unlock(&srv->mu);
    px_info("shutdown: done");
}

void px_rpc_server_free(px_rpc_server *srv) {
    if (!srv)
        return;
    px_rpc_server_shutdown(srv);
    if (srv->server) {
        /* Never started: nothing is in flight. */
        grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);
        grpc_server_cancel_all_calls(srv->server);
        grpc_event ev;
        do {
            ev = grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        } while (ev.type == GRPC_OP_COMPLETE && ev.tag != &srv->shutdown_tag);
        grpc_server_destroy(srv->server);
        cq_drain_destroy(srv->cq);
    }
    server_release(srv);
}
