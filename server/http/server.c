/*
 * The libmicrohttpd daemon and a request's way to its handler (door.h):
 * routing, the method, body size, Content-Type and multipart checks, and
 * the replies. libmicrohttpd does all the HTTP parsing and enforces the
 * connection limits (all clients, per IP address), the size of the request
 * line and headers (its per-connection buffer: 414/431 beyond it) and the
 * idle timeout (a request that trickles in is closed after it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server/base/clock.h"
#include "server/base/id.h"
#include "server/base/log.h"
#include "server/base/quote.h"
#include "server/http/door.h"
#include "server/http/http.h"

/* The multipart parser's buffer (it holds one field name or a piece of
 * data at a time, not a whole part). */
#define POST_BUFFER 65536

/* At shutdown, how long requests in progress may take to send their answers. */
#define STOP_GRACE_MS 5000

unsigned px_http_status(px_code code) {
    switch (code) {
    case PX_OK: return MHD_HTTP_OK;
    case PX_E_INVALID: return MHD_HTTP_BAD_REQUEST;
    case PX_E_NOT_FOUND: return MHD_HTTP_NOT_FOUND;
    case PX_E_EXHAUSTED: return MHD_HTTP_TOO_MANY_REQUESTS;
    case PX_E_UNAVAILABLE: return MHD_HTTP_SERVICE_UNAVAILABLE;
    case PX_E_PRECONDITION: return MHD_HTTP_UNPROCESSABLE_CONTENT;
    case PX_E_OUT_OF_RANGE: return MHD_HTTP_RANGE_NOT_SATISFIABLE;
    case PX_E_EXISTS: return MHD_HTTP_CONFLICT;
    case PX_E_CANCELLED: return MHD_HTTP_BAD_REQUEST;
    case PX_E_TIMEOUT: return MHD_HTTP_GATEWAY_TIMEOUT;
    case PX_E_INTERNAL: return MHD_HTTP_INTERNAL_SERVER_ERROR;
    case PX_E_UNAUTHENTICATED: return MHD_HTTP_UNAUTHORIZED;
    }
    return MHD_HTTP_INTERNAL_SERVER_ERROR;
}

/* Queues `text` (malloc'd, taken) as the JSON answer. With `reserve` its
 * bytes count against the budget of replies being sent (shared with gRPC,
 * --max-reply-queued-bytes) until the request completes: a reply is held
 * until its client takes it. One that does not fit is refused with 429. */
static enum MHD_Result queue_json(px_http_req *req, unsigned status, char *text, bool reserve) {
    size_t len = strlen(text);
    if (reserve && !px_rpc_reserve_reply(req->srv->rpc, (int64_t)len)) {
        free(text);
        char refusal[256];
        snprintf(refusal, sizeof refusal,
                 "{\"error\":\"the reply (%zu bytes) does not fit the bytes of replies being sent "
                 "to clients (--max-reply-queued-bytes); retry later\"}",
                 len);
        char *copy = strdup(refusal);
        if (!copy)
            return MHD_NO;
        return queue_json(req, MHD_HTTP_TOO_MANY_REQUESTS, copy, false);
    }
    if (reserve)
        req->reserved += (int64_t)len;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED && req->route) {
        char allow[64] = "";
        for (const px_http_route *rt = px_http_routes; rt->method; rt++)
            if (strcmp(rt->pattern, req->route->pattern) == 0)
                snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s",
                         allow[0] ? ", " : "", rt->method);
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    }
    /* Every request's end is logged by on_completed; a server error's
     * message here too (before the response, which owns `text`, may go). */
    if (status >= 500)
        px_warn("http: %s %s from %s: %u %.300s", req->method,
                req->route ? req->route->pattern : "(no route)", req->peer, status, text);
    enum MHD_Result ret = MHD_queue_response(req->conn, status, r);
    MHD_destroy_response(r);
    px_http_count(req, status);
    return ret;
}

enum MHD_Result px_http_reply_json(px_http_req *req, unsigned status, json_t *body) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        text = strdup("{\"error\":\"out of memory\"}");
        if (!text)
            return MHD_NO;
        return queue_json(req, MHD_HTTP_INTERNAL_SERVER_ERROR, text, false);
    }
    return queue_json(req, status, text, true);
}

enum MHD_Result px_http_reply_error(px_http_req *req, unsigned status, const char *fmt, ...) {
    char msg[PX_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    px_http_buf text = {0};
    json_t *body = NULL;
    /* The message may quote the client's bytes: keep it valid UTF-8. */
    if (px_http_utf8_append(&text, (const uint8_t *)msg, strlen(msg)) == 0)
        body = json_pack("{s:s%}", "error", text.data, text.len);
    px_http_buf_release(&text);
    return px_http_reply_json(req, status, body);
}

enum MHD_Result px_http_reply_px_error(px_http_req *req, const px_error *err) {
    return px_http_reply_error(req, px_http_status(err->code), "%s", err->msg);
}

void px_http_count(px_http_req *req, unsigned status) {
    req->status = status;
    if (!req->srv->metrics)
        return;
    char labels[160];
    snprintf(labels, sizeof labels, "route=\"%s\",code=\"%u\"",
             req->route ? req->route->pattern : "none", status);
    px_counter_add(px_metrics_counter(req->srv->metrics, "pyexec_http_requests_total",
                                      "HTTP requests answered, by route and status code.", labels),
                   1);
}

int px_http_client_fd(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(
        conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info ? info->connect_fd : -1;
}

/* Matches `url` against `pattern`; a "{...}" segment ("{id}", "{name}")
 * matches one non-empty segment, copied into `id`. */
static bool match(const char *pattern, const char *url, char *id, size_t id_size) {
    while (*pattern && *url) {
        if (*pattern == '{') {
            size_t n = strcspn(url, "/");
            if (n == 0)
                return false;
            size_t k = n < id_size ? n : id_size - 1; /* too long: malformed either way */
            memcpy(id, url, k);
            id[k] = '\0';
            url += n;
            pattern += strcspn(pattern, "}");
            if (*pattern)
                pattern++;
            continue;
        }
        if (*pattern != *url)
            return false;
        pattern++;
        url++;
    }
    return *pattern == '\0' && *url == '\0';
}

/* The route for `url` and `method`: sets req->route to a route of the path
 * (NULL if none) and returns true if one also has the method. */
static bool route(px_http_req *req, const char *url, const char *method) {
    req->route = NULL;
    for (const px_http_route *rt = px_http_routes; rt->method; rt++) {
        char id[sizeof req->id] = "";
        if (!match(rt->pattern, url, id, sizeof id))
            continue;
        if (!req->route || strcmp(rt->method, method) == 0) {
            req->route = rt;
            memcpy(req->id, id, sizeof id);
        }
        if (strcmp(rt->method, method) == 0)
            return true;
    }
    return false;
}

static enum MHD_Result on_post_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *filename, const char *content_type,
                                     const char *transfer_encoding, const char *data, uint64_t off,
                                     size_t size) {
    (void)kind, (void)filename, (void)content_type, (void)transfer_encoding, (void)off;
    px_http_req *req = cls;
    px_http_buf *into = NULL;
    if (strcmp(key, "tar") == 0) {
        into = &req->tar;
        req->has_tar = true;
    } else if (strcmp(key, "metadata") == 0) {
        into = &req->metadata;
        req->has_metadata = true;
    } else {
        return MHD_YES; /* other fields are ignored, as the original did */
    }
    if (size > 0 && px_http_buf_append(into, data, size) < 0)
        return MHD_NO;
    if (size == 0 && !into->data && px_http_buf_append(into, "", 0) < 0)
        return MHD_NO;
    return MHD_YES;
}

/* The first call: route, method, body headers. Returns MHD_YES to go on
 * (the body follows), or the result of a queued refusal (req->answered). */
static enum MHD_Result start(px_http_req *req, const char *url, const char *method) {
    const px_config *cfg = req->srv->cfg;
    char subject[PX_TENANT_MAX + 1] = "";
    if (cfg->tls_client_ca[0]) {
        /* Mutual TLS, as on the gRPC port: nothing without a valid client
         * certificate (the handshake asked for one). */
        px_error err = PX_ERROR_INIT;
        if (px_http_tls_peer_subject(req->srv->tls, req->conn, subject, sizeof subject, &err) < 0) {
            req->answered = true;
            return px_http_reply_px_error(req, &err);
        }
    }
    bool allowed = route(req, url, method);
    if (!req->route) {
        req->answered = true;
        return px_http_reply_error(req, MHD_HTTP_NOT_FOUND, "no route for %s %.200s", method, url);
    }
    if (!allowed) {
        req->answered = true;
        return px_http_reply_error(req, MHD_HTTP_METHOD_NOT_ALLOWED, "%s is not allowed on %s",
                                   method, req->route->pattern);
    }
    /* /metrics is open unless --metrics-tenant names who may scrape it. */
    bool metrics_guarded = cfg->metrics_tenant[0] && strcmp(req->route->pattern, "/metrics") == 0;
    if (!req->route->open || metrics_guarded) {
        /* Before the body is read: an unknown caller sends nothing big. */
        const char *auth = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_AUTHORIZATION);
        px_error err = PX_ERROR_INIT;
        if (px_rpc_authenticate(req->srv->rpc, auth, auth ? strlen(auth) : 0, subject, req->tenant,
                                &err) < 0) {
            req->answered = true;
            return px_http_reply_px_error(req, &err);
        }
        if (metrics_guarded && strcmp(req->tenant, cfg->metrics_tenant) != 0) {
            req->answered = true;
            return px_http_reply_error(
                req, MHD_HTTP_UNAUTHORIZED,
                "/metrics: only tenant '%s' may scrape it (--metrics-tenant)", cfg->metrics_tenant);
        }
    }
    const char *length = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length) {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(length, &end, 10);
        if (errno == 0 && end != length && (int64_t)n > cfg->http_max_body_bytes) {
            req->answered = true;
            return px_http_reply_error(req, MHD_HTTP_CONTENT_TOO_LARGE,
                                       "body: %llu bytes, the maximum is %" PRId64
                                       " (--http-max-body-bytes)",
                                       n, cfg->http_max_body_bytes);
        }
    }
    if (req->route->body == PX_BODY_NONE)
        return MHD_YES;
    const char *type = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_CONTENT_TYPE);
    if (req->route->body == PX_BODY_JSON) {
        /* curl -d sends application/x-www-form-urlencoded by default: a
         * JSON body is taken whatever it is labelled, except multipart. */
        if (type && strncasecmp(type, "multipart/", 10) == 0) {
            req->answered = true;
            px_quoted q;
            return px_http_reply_error(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                       "Content-Type: '%s': %s takes a JSON body "
                                       "(application/json)",
                                       px_quote_str(&q, type), req->route->pattern);
        }
        return MHD_YES;
    }
    if (!type || strncasecmp(type, MHD_HTTP_POST_ENCODING_MULTIPART_FORMDATA,
                             strlen(MHD_HTTP_POST_ENCODING_MULTIPART_FORMDATA)) != 0) {
        req->answered = true;
        px_quoted q;
        return px_http_reply_error(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                   "Content-Type: '%s': %s takes multipart/form-data with "
                                   "the fields 'tar' (the code, a tar file) and 'metadata' "
                                   "(JSON)",
                                   type ? px_quote_str(&q, type) : "(none)", req->route->pattern);
    }
    req->pp = MHD_create_post_processor(req->conn, POST_BUFFER, on_post_field, req);
    if (!req->pp) {
        req->answered = true;
        px_quoted q;
        return px_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                   "Content-Type: '%s': multipart/form-data without a "
                                   "usable boundary",
                                   px_quote_str(&q, type));
    }
    return MHD_YES;
}

/* Refuses the request once its body is in: libmicrohttpd takes no response
 * while it hands over body data. Until then the rest of the body is read
 * and dropped, up to another http_max_body_bytes; a client that sends more
 * is cut off (the connection closed without an answer). */
static enum MHD_Result refuse_later(px_http_req *req, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum MHD_Result refuse_later(px_http_req *req, unsigned status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(req->late_msg, sizeof req->late_msg, fmt, ap);
    va_end(ap);
    req->late_status = status;
    return MHD_YES;
}

static enum MHD_Result take_body(px_http_req *req, const char *data, size_t size) {
    const px_config *cfg = req->srv->cfg;
    req->body_len += size;
    if (req->late_status)
        return (int64_t)req->body_len > 2 * cfg->http_max_body_bytes ? MHD_NO : MHD_YES;
    if ((int64_t)req->body_len > cfg->http_max_body_bytes)
        return refuse_later(req, MHD_HTTP_CONTENT_TOO_LARGE,
                            "body: more than %" PRId64 " bytes (--http-max-body-bytes)",
                            cfg->http_max_body_bytes);
    switch (req->route->body) {
    case PX_BODY_NONE:
        return refuse_later(req, MHD_HTTP_BAD_REQUEST, "%s %s takes no body", req->method,
                            req->route->pattern);
    case PX_BODY_JSON:
        if (px_http_buf_append(&req->json, data, size) < 0)
            return refuse_later(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return MHD_YES;
    case PX_BODY_MULTIPART:
        if (MHD_post_process(req->pp, data, size) != MHD_YES)
            return refuse_later(req, MHD_HTTP_BAD_REQUEST, "body: malformed multipart/form-data");
        return MHD_YES;
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    px_http_req *req = *con_cls;
    if (!req) {
        req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        req->srv = cls;
        req->conn = conn;
        req->started_us = px_now_mono_us();
        snprintf(req->method, sizeof req->method, "%s", method);
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(
            conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        char host[INET6_ADDRSTRLEN] = "?", port[8] = "";
        if (info && info->client_addr)
            getnameinfo(info->client_addr,
                        info->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                 : sizeof(struct sockaddr_in),
                        host, sizeof host, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV);
        snprintf(req->peer, sizeof req->peer, "%s:%s", host, port);
        *con_cls = req;
        pthread_mutex_lock(&req->srv->mu);
        req->srv->active++;
        pthread_mutex_unlock(&req->srv->mu);
        return start(req, url, method);
    }
    if (*upload_data_size > 0) {
        size_t size = *upload_data_size;
        *upload_data_size = 0;
        if (req->answered)
            return MHD_YES; /* a refusal is queued; the rest of the body is dropped */
        return take_body(req, upload_data, size);
    }
    if (req->answered)
        return MHD_YES;
    if (req->late_status) {
        req->answered = true;
        return px_http_reply_error(req, req->late_status, "%s", req->late_msg);
    }
    if (req->pp) {
        enum MHD_Result complete = MHD_destroy_post_processor(req->pp);
        req->pp = NULL;
        if (complete != MHD_YES) {
            req->answered = true;
            return px_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                       "body: malformed multipart/form-data (it ends early)");
        }
    }
    req->answered = true; /* the handler answers */
    if (strcmp(req->srv->cfg->role, "worker") == 0 && strncmp(req->route->pattern, "/api/", 5) == 0)
        return px_http_reply_error(req, MHD_HTTP_MISDIRECTED_REQUEST,
                                   "this node is --role worker: it runs jobs and serves only "
                                   "health and metrics; send calls to a frontend or both node");
    return req->route->handler(req);
}

/* The access log: one line per request, naming the route's pattern (never
 * the URL: its query could hold a secret), the status and the duration. */
static void log_access(const px_http_req *req, enum MHD_RequestTerminationCode toe) {
    int64_t us = px_now_mono_us() - req->started_us;
    char rpc[96], code[16];
    snprintf(rpc, sizeof rpc, "%s %s", req->method,
             req->route ? req->route->pattern : "(no route)");
    snprintf(code, sizeof code, "%u", req->status);
    px_log_fields f = {
        .execution_id = px_id_valid(req->id, strlen(req->id)) ? req->id : NULL,
        .tenant = req->tenant,
        .rpc = rpc,
        .peer = req->peer,
        .code = req->status ? code : "",
        .duration_us = us,
    };
    px_log_with(req->status >= 500 ? PX_LOG_WARN : PX_LOG_INFO, &f,
                "http: %s from %s: %s%s; %lld.%03lld ms", rpc, req->peer,
                req->status ? code : "no response",
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)",
                (long long)(us / 1000), (long long)(us % 1000));
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)conn;
    px_http_req *req = *con_cls;
    if (!req)
        return;
    log_access(req, toe);
    if (req->pp)
        MHD_destroy_post_processor(req->pp);
    px_http_buf_release(&req->json);
    px_http_buf_release(&req->tar);
    px_http_buf_release(&req->metadata);
    px_http_server *srv = req->srv;
    if (req->reserved)
        px_rpc_release_reply(srv->rpc, req->reserved);
    free(req);
    *con_cls = NULL;
    pthread_mutex_lock(&srv->mu);
    srv->active--;
    pthread_cond_broadcast(&srv->idle);
    pthread_mutex_unlock(&srv->mu);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    px_debug("http: libmicrohttpd: %s", line);
}

/* "HOST:PORT", "[V6]:PORT" -> a socket address. */
static int parse_address(const char *addr, struct sockaddr_storage *ss, px_error *err) {
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1])
        return px_error_set(err, PX_E_INVALID, "--http-listen: '%s' is not HOST:PORT", addr);
    size_t hlen = (size_t)(colon - addr);
    const char *h = addr;
    if (addr[0] == '[' && hlen >= 2 && addr[hlen - 1] == ']')
        h++, hlen -= 2;
    snprintf(host, sizeof host, "%.*s", (int)hlen, h);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0)
        return px_error_set(err, PX_E_INVALID, "--http-listen: '%s': %s", addr, gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static void server_release(px_http_server *srv) {
    px_http_docs_release(srv);
    if (srv->stop_fd >= 0)
        close(srv->stop_fd);
    pthread_cond_destroy(&srv->idle);
    pthread_mutex_destroy(&srv->mu);
    px_http_tls_free(srv->tls);
    free(srv);
}

px_http_server *px_http_server_new(const px_config *cfg, px_rpc_server *rpc, px_store *store,
                                   px_metrics *metrics, px_error *err) {
    struct sockaddr_storage ss;
    if (parse_address(cfg->http_listen, &ss, err) < 0)
        return NULL;
    px_http_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        px_error_set(err, PX_E_INTERNAL, "out of memory");
        return NULL;
    }
    srv->cfg = cfg;
    srv->rpc = rpc;
    srv->store = store;
    srv->metrics = metrics;
    pthread_mutex_init(&srv->mu, NULL);
    px_cond_init_mono(&srv->idle);
    srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv->stop_fd < 0) {
        px_error_set_errno(err, PX_E_INTERNAL, errno, "eventfd");
        server_release(srv);
        return NULL;
    }
    if (px_http_docs_load(srv, cfg->http_docs_dir, err) < 0) {
        server_release(srv);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* TLS with the gRPC port's files: the certificate comes from the
     * callback at each handshake (rotation); with a client CA, clients are
     * asked for a certificate, checked by start(). */
    struct MHD_OptionItem tls_opts[3];
    size_t n_tls = 0;
    if (cfg->tls_cert[0]) {
        if (!(srv->tls = px_http_tls_new(cfg, err))) {
            server_release(srv);
            return NULL;
        }
        flags |= MHD_USE_TLS;
        tls_opts[n_tls++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0,
                                                    (void *)px_http_tls_retrieve};
        const char *ca = px_http_tls_client_ca_pem(srv->tls);
        if (ca)
            tls_opts[n_tls++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, (void *)ca};
    }
    tls_opts[n_tls] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    srv->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections_per_client,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->http_max_header_bytes,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->http_read_timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
        MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
    if (!srv->mhd) {
        px_error_set(err, PX_E_UNAVAILABLE, "HTTP door: cannot listen on '%s'", cfg->http_listen);
        server_release(srv);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
    else
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
    snprintf(srv->address, sizeof srv->address, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
             host, info ? (unsigned)info->port : 0u);
    return srv;
}

int px_http_server_reload(px_http_server *srv, px_error *err) {
    if (!srv || !srv->tls)
        return 0;
    if (px_http_tls_reload(srv->tls, err) < 0)
        return -1;
    px_info("http: certificate files re-read; new connections use them");
    return 0;
}

const char *px_http_server_address(const px_http_server *srv) {
    return srv->address;
}

void px_http_server_quiesce(px_http_server *srv) {
    if (!srv || atomic_exchange(&srv->quiescing, true))
        return;
    MHD_socket fd = MHD_quiesce_daemon(srv->mhd);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

void px_http_server_free(px_http_server *srv) {
    if (!srv)
        return;
    px_http_server_quiesce(srv);
    /* Every wait and stream ends now; the requests in progress get up to
     * STOP_GRACE_MS to send their answers before the connections close. */
    uint64_t one = 1;
    if (write(srv->stop_fd, &one, sizeof one) < 0)
        px_warn("http: cannot signal the stop: %s", strerror(errno));
    int64_t until = px_now_mono_ms() + STOP_GRACE_MS;
    pthread_mutex_lock(&srv->mu);
    while (srv->active > 0 && px_cond_wait_until(&srv->idle, &srv->mu, until) == 0)
        ;
    int left = srv->active;
    pthread_mutex_unlock(&srv->mu);
    if (left > 0)
        px_warn("http: closing %d request(s) still in progress", left);
    MHD_stop_daemon(srv->mhd);
    server_release(srv);
}
