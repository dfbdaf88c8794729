/*
 * A minimal Docker Engine API client (API v1.41) over the engine's unix
 * socket, built on libcurl. The only curl user of the project.
 *
 * Every call is bounded by a timeout and uses a fresh curl easy handle, so a
 * client may be used from several threads at once. The client does not call
 * curl_global_init(); main (or a test) must, before any thread starts.
 *
 * Errors: transport failures (socket missing, connection refused or reset,
 * timeout) are PX_E_UNAVAILABLE: the engine cannot be used. An HTTP answer of
 * any status is a success of the transport; px_docker_response_error() turns
 * a non-2xx answer into an error that reads like a stack:
 *   "POST /containers/create: HTTP 500: <engine message>".
 */
#ifndef PYEXEC_EXECUTOR_DOCKER_CLIENT_H
#define PYEXEC_EXECUTOR_DOCKER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "server/base/error.h"
#include "server/base/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PX_DOCKER_API_VERSION "v1.41"
/* Cap on a response body held in memory (lists, inspect, pull progress). */
#define PX_DOCKER_MAX_RESPONSE (8u << 20)

typedef struct px_docker_client px_docker_client;

/* Creates a client for the engine at `socket_path` (copied). `timeout_ms`
 * (> 0) is the default bound of each call. Returns NULL with `err` set on
 * allocation failure or a timeout that is not positive; the engine is not
 * contacted. */
px_docker_client *px_docker_client_new(const char *socket_path, int64_t timeout_ms, px_error *err);

/* NULL-safe. No call may be in progress. */
void px_docker_client_free(px_docker_client *c);

/* From now on, counts each call the engine did not answer (connect,
 * timeout, transfer) into `unanswered` and each 5xx answer into
 * `server_errors` (either may be NULL). Call before the client is shared
 * between threads. */
void px_docker_client_count_errors(px_docker_client *c, px_counter *unanswered,
                                   px_counter *server_errors);

/* Borrowed until the client is freed. */
const char *px_docker_client_socket(const px_docker_client *c);

typedef struct px_docker_response {
    long status; /* HTTP status code */
    char *body;  /* NUL-terminated, owned by the response; may be empty */
    size_t len;
} px_docker_response;

/* Frees the body; NULL-safe; leaves the response empty. */
void px_docker_response_release(px_docker_response *r);

/*
 * Performs one call: `method` ("GET", "POST", "DELETE") on `path`, an API
 * path without the version prefix whose user-controlled parts the caller
 * escaped (px_docker_escape), e.g. "/containers/abc/json". `json_body` is
 * sent as application/json when non-NULL. `timeout_ms` bounds the whole call
 * (0: the client's default). On success returns 0 and fills `*resp` (owned by
 * the caller; release it), whatever the HTTP status. Returns -1 with `err`
 * set on a transport failure (PX_E_UNAVAILABLE) or an oversized response
 * (PX_E_INTERNAL); `*resp` is then empty. Any thread.
 */
int px_docker_call(const px_docker_client *c, const char *method, const char *path,
                   const char *json_body, int64_t timeout_ms, px_docker_response *resp,
                   px_error *err);

/* Sets `err` from a non-2xx response: "METHOD PATH: HTTP <status>: <message>",
 * where the message is the engine's JSON "message" (or the raw body). The code
 * is PX_E_NOT_FOUND for 404, else PX_E_INTERNAL. Always returns -1. */
int px_docker_response_error(const px_docker_response *r, const char *method, const char *path,
                             px_error *err);

/* Returns a new string with every byte outside [A-Za-z0-9._~-] percent-encoded
 * (`keep` lists extra bytes to leave alone, e.g. "/:" for an image name in a
 * path), or NULL on allocation failure. */
char *px_docker_escape(const char *s, const char *keep);

/*
 * Opens the hijacked attach connection of container `id` (stdin, stdout and
 * stderr, stream=1) on a plain AF_UNIX socket: sends the upgrade request and
 * reads the response head within the client's timeout. Expects "101" (or
 * "200"). On success returns the connected socket, set non-blocking and owned
 * by the caller, and stores in `*early` (malloc'd, owned by the caller; NULL
 * when empty) the stream bytes that arrived after the head. Returns -1 with
 * `err` set on failure (PX_E_UNAVAILABLE for transport problems, PX_E_NOT_FOUND
 * for 404, else PX_E_INTERNAL). Any thread.
 */
int px_docker_attach(const px_docker_client *c, const char *id, uint8_t **early, size_t *early_len,
                     px_error *err);

#ifdef __cplusplus
}
#endif

#endif
