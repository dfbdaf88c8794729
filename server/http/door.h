/*
 * Inside the HTTP door: the server, one request's state, the route table,
 * the reply helpers and the JSON codec. Private to server/http.
 *
 * A request's life (server.c): libmicrohttpd calls the access handler
 * first with the headers (the route is matched, the method, Content-Length
 * and Content-Type are checked, a multipart parser is made), then with each
 * piece of the body (fed to the parser or kept as JSON, bounded by
 * http_max_body_bytes), then once more with none: the route's handler runs
 * and queues exactly one response. All of it on the connection's thread.
 */
#ifndef PYEXEC_HTTP_DOOR_H
#define PYEXEC_HTTP_DOOR_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/base/config.h"
#include "server/base/error.h"
#include "server/http/http.h"
#include "server/http/tls.h"
#include "server/rpc/rpc.h"
#include "server/store/store.h"

/* A growable byte buffer; `data` is NUL-terminated when not NULL. */
typedef struct px_http_buf {
    char *data;
    size_t len, cap;
} px_http_buf;

/* Appends; returns 0, or -1 out of memory. */
/* The Swagger UI files /docs serves (docs.c). */
#define PX_HTTP_DOCS_ASSETS 2

struct px_http_server {
    const px_config *cfg;
    px_rpc_server *rpc;
    px_store *store;
    px_metrics *metrics;                     /* may be NULL */
    px_http_buf assets[PX_HTTP_DOCS_ASSETS]; /* --http-docs-dir's files; read-only once loaded */
    bool has_assets;
    struct MHD_Daemon *mhd;
    px_http_tls *tls; /* --tls-cert: the door speaks TLS (tls.h); NULL: plaintext */
    char address[128];
    int stop_fd;           /* eventfd, readable once px_http_server_free began */
    atomic_bool quiescing; /* /health answers 503 */
    pthread_mutex_t mu;    /* guards `active` */
    pthread_cond_t idle;   /* signalled when `active` drops (monotonic clock) */
    int active;            /* requests between their first call and their completion */
};

int px_http_buf_append(px_http_buf *b, const char *data, size_t len);
void px_http_buf_release(px_http_buf *b);

typedef struct px_http_req px_http_req;

/* A route's handler: queues the one response. Runs on the connection's
 * thread once the body is in. */
typedef enum MHD_Result (*px_http_handler)(px_http_req *req);

typedef enum px_http_body {
    PX_BODY_NONE = 0,      /* a body is refused (400) */
    PX_BODY_MULTIPART = 1, /* multipart/form-data (or urlencoded): fields and files */
    PX_BODY_JSON = 2,      /* application/json */
} px_http_body;

typedef struct px_http_route {
    const char *method;  /* "GET", "POST", "DELETE" */
    const char *pattern; /* "/api/v1/executions/{id}/output": "{id}" is one segment */
    px_http_body body;
    px_http_handler handler;
    bool open; /* served without authentication (health) */
} px_http_route;

/* The route table (routes.c), terminated by a NULL method. */
extern const px_http_route px_http_routes[];

struct px_http_req {
    px_http_server *srv;
    struct MHD_Connection *conn;
    const px_http_route *route;
    char method[8];
    char id[80];          /* the {id} segment, if the pattern has one */
    uint64_t body_len;    /* bytes received so far */
    bool answered;        /* a response is queued (or the handler ran) */
    unsigned late_status; /* non-zero: refuse with this once the body is in */
    char late_msg[256];
    struct MHD_PostProcessor *pp;
    px_http_buf json;     /* PX_BODY_JSON: the body */
    px_http_buf tar;      /* multipart field "tar" */
    px_http_buf metadata; /* multipart field "metadata" */
    bool has_tar, has_metadata;
    char peer[64]; /* "127.0.0.1:40312" */
    /* For the access log line logged when the request ends (server.c). */
    int64_t started_us; /* px_now_mono_us() when the request line arrived */
    unsigned status;    /* the status queued; 0: none yet */
    int64_t reserved;   /* bytes of the reply budget its answer holds (px_rpc_reserve_reply) */
    /* Who is asking (px_rpc_authenticate; "" on open routes and on a
     * server without tenants): the routes act on its executions only. */
    char tenant[PX_TENANT_MAX];
};

/* ---- replies (server.c); each queues one response and returns its result ---- */

/* `body` is taken (decref'd). */
enum MHD_Result px_http_reply_json(px_http_req *req, unsigned status, json_t *body);
/* {"error": message}. */
enum MHD_Result px_http_reply_error(px_http_req *req, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* {"error": err->msg} with the status err->code maps to (px_http_status). */
enum MHD_Result px_http_reply_px_error(px_http_req *req, const px_error *err);

/* Counts an answer in pyexec_http_requests_total{route,code}, and keeps
 * its status for the request's access log line. */
void px_http_count(px_http_req *req, unsigned status);

/* The HTTP status of an error class: 400, 404, 409, 413, 416, 429, 503, ... */
unsigned px_http_status(px_code code);

/* ---- waiting (wait.c) ---- */

typedef enum px_http_wait_end {
    PX_WAIT_TERMINAL = 0, /* the record is terminal */
    PX_WAIT_HUNG_UP = 1,  /* the client closed its connection */
    PX_WAIT_STOPPING = 2, /* the server is stopping */
} px_http_wait_end;

/* Blocks the connection's thread until `record` is terminal, the client
 * hangs up or the server stops. Returns a px_http_wait_end, or -1 with
 * `err` (out of resources). */
int px_http_wait_terminal(px_http_req *req, px_record *record, px_error *err);

/* The connection's socket, for poll(); -1 if unknown. */
int px_http_client_fd(struct MHD_Connection *conn);

/* ---- output as Server-Sent Events (output.c) ---- */

/* GET /api/v1/executions/{id}/output: the route's handler. */
enum MHD_Result px_http_stream_output(px_http_req *req);

/* ---- /docs (docs.c) ---- */

/* Reads the Swagger UI files from `dir` ("" or NULL: none). Returns 0, or
 * -1 with `err` (PX_E_INVALID naming the file). */
int px_http_docs_load(px_http_server *srv, const char *dir, px_error *err);
void px_http_docs_release(px_http_server *srv);

/* The routes' handlers: the page, the description, one Swagger UI file
 * (named by the {name} segment). */
enum MHD_Result px_http_docs_page(px_http_req *req);
enum MHD_Result px_http_docs_openapi(px_http_req *req);
enum MHD_Result px_http_docs_asset(px_http_req *req);

/* ---- JSON (json.c) ---- */

/* An ExecutionResult as the original service's JSON (docs/api.md): status
 * and reason in lower case, times in RFC 3339 (UTC, milliseconds),
 * stdout/stderr as text with invalid UTF-8 replaced by U+FFFD (null unless
 * the view carries output, `with_output`). Returns a new object, or NULL
 * out of memory. */
json_t *px_http_result_json(const px_record_view *view, bool with_output);

/* `len` bytes as valid UTF-8: each maximal ill-formed subpart becomes one
 * U+FFFD (as Python's and the browsers' decoders do). Appends to `out`; returns 0, or -1 out of
 * memory. */
int px_http_utf8_append(px_http_buf *out, const uint8_t *data, size_t len);

/* The lower-case name of a status ("completed") or reason ("exited"),
 * NULL for UNSPECIFIED. */
const char *px_http_status_name(px_status s);
const char *px_http_reason_name(px_reason r);

/* Parses a lower-case status name; returns 0 with *out, or -1. */
int px_http_status_parse(const char *name, px_status *out);

#endif
