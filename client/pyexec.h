/*
 * libpyexec: the C client of the pyexec service (proto/pyexec/v1/executor.proto;
 * docs/contract.md is the normative text). This header and
 * client/pyexec_error.h are the whole public interface: neither includes
 * anything from server/.
 *
 *   pyexec_error err = PYEXEC_ERROR_INIT;
 *   pyexec_client *c = pyexec_client_new("127.0.0.1:50051", NULL, &err);
 *   if (!c || pyexec_client_connect(c, 5000, &err) < 0) { ... err.msg ... }
 *   pyexec_file f = {.path = "main.py", .content = (const uint8_t *)"print(1)\n", .len = 9};
 *   pyexec_request req = {.files = &f, .n_files = 1};
 *   pyexec_result *r = NULL;
 *   if (pyexec_execute_sync(c, &req, &r, &err) == 0) { ... r->stdout_buf ... }
 *   pyexec_result_free(r);
 *   pyexec_client_free(c);
 *
 * Errors are the client's own pyexec_error (client/pyexec_error.h): every
 * call that can fail returns 0 (or non-NULL) and leaves `*err` untouched, or
 * returns -1 (or NULL) with `*err` set. A gRPC status other than OK maps to one pyexec_code:
 *   INVALID_ARGUMENT -> PYEXEC_E_INVALID        NOT_FOUND           -> PYEXEC_E_NOT_FOUND
 *   RESOURCE_EXHAUSTED -> PYEXEC_E_EXHAUSTED    UNAVAILABLE         -> PYEXEC_E_UNAVAILABLE
 *   FAILED_PRECONDITION -> PYEXEC_E_PRECONDITION OUT_OF_RANGE       -> PYEXEC_E_OUT_OF_RANGE
 *   CANCELLED -> PYEXEC_E_CANCELLED             DEADLINE_EXCEEDED   -> PYEXEC_E_TIMEOUT
 *   anything else (UNIMPLEMENTED, INTERNAL, UNKNOWN, ...) -> PYEXEC_E_INTERNAL
 * and the message is "<Rpc>: <server's status message>", e.g.
 *   "GetExecution: execution 'exe_…' not found"
 * (for PYEXEC_E_INTERNAL the gRPC status name is inserted before the server's
 * message, so UNIMPLEMENTED stays recognisable). A program that fails is not
 * an error: the call succeeds and the result says so.
 *
 * Ownership: every pointer parameter is borrowed for the duration of the
 * call. Results returned through `pyexec_result **` belong to the caller,
 * who releases them with pyexec_result_free().
 *
 * Threads: a pyexec_client may be used by any number of threads at once
 * (each call has its own completion queue on the shared channel).
 * pyexec_client_free() must not run concurrently with a call on the same
 * client. Stream callbacks run on the thread that called
 * pyexec_stream_output().
 */
#ifndef PYEXEC_CLIENT_PYEXEC_H
#define PYEXEC_CLIENT_PYEXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/pyexec_error.h"
#include "pyexec_version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PYEXEC_VERSION, the version of libpyexec and of the `pyexec` CLI, comes
 * from pyexec_version.h (the project's one version). */

/* The server a client talks to when none is given. */
#define PYEXEC_DEFAULT_SERVER "127.0.0.1:50051"

/* The port of an address that names none. */
#define PYEXEC_DEFAULT_PORT 50051

/* Largest message the client accepts by default: a sync result carries up to
 * the server's output cap (16 MiB by default) plus the envelope. */
#define PYEXEC_DEFAULT_MAX_RECEIVE_BYTES (128 * 1024 * 1024)

/* Deadline of calls that return at once (async Execute, GetExecution, Kill,
 * health Check) when pyexec_client_options leaves it 0. */
#define PYEXEC_DEFAULT_CALL_TIMEOUT_MS 30000

typedef struct pyexec_client pyexec_client;

typedef struct pyexec_client_options {
    /* Deadline in ms for calls that return at once; 0: the default above,
     * negative: none. */
    int64_t call_timeout_ms;
    /* Deadline in ms for calls that wait for the program (sync Execute,
     * StreamOutput); 0 or negative: none. When a sync Execute's deadline
     * passes, the server kills the execution (CLIENT_CANCELLED). */
    int64_t wait_timeout_ms;
    /* Largest message accepted from the server; 0: the default above. */
    int32_t max_receive_bytes;
    /* TLS, PEM files (NULL: unset). The channel is TLS when the address is
     * "https://" or "grpcs://" or when any of these is set. tls_ca_file:
     * the CAs the server's certificate must chain to (NULL: the system's
     * roots); tls_cert_file and tls_key_file, together: the client's
     * certificate, for a server that asks for one (mutual TLS). */
    const char *tls_ca_file;
    const char *tls_cert_file;
    const char *tls_key_file;
    /* Sent with every call as "authorization: Bearer TOKEN" (a server with
     * tenants needs it); visible ASCII, at most 4096 characters. NULL: none. */
    const char *token;
} pyexec_client_options;

/* The lifecycle of an execution; values equal the proto's. */
typedef enum pyexec_status {
    PYEXEC_STATUS_UNSPECIFIED = 0,
    PYEXEC_STATUS_PENDING = 1,
    PYEXEC_STATUS_RUNNING = 2,
    PYEXEC_STATUS_COMPLETED = 3,
    PYEXEC_STATUS_FAILED = 4,
    PYEXEC_STATUS_KILLED = 5,
} pyexec_status;

/* Why a terminal execution ended; values equal the proto's. */
typedef enum pyexec_reason {
    PYEXEC_REASON_UNSPECIFIED = 0,
    PYEXEC_REASON_EXITED = 1,
    PYEXEC_REASON_TIMEOUT = 2,
    PYEXEC_REASON_MEMORY_LIMIT = 3,
    PYEXEC_REASON_OUTPUT_LIMIT = 4,
    PYEXEC_REASON_KILLED = 5,
    PYEXEC_REASON_CLIENT_CANCELLED = 6,
    PYEXEC_REASON_LOST = 7,
    PYEXEC_REASON_SANDBOX_ERROR = 8,
} pyexec_reason;

/* Which output stream a chunk came from; values equal the proto's. */
typedef enum pyexec_stream {
    PYEXEC_STREAM_UNSPECIFIED = 0,
    PYEXEC_STREAM_STDOUT = 1,
    PYEXEC_STREAM_STDERR = 2,
} pyexec_stream;

/* Network setting of a request: the server's default (disabled), or explicit. */
typedef enum pyexec_network {
    PYEXEC_NETWORK_DEFAULT = 0,
    PYEXEC_NETWORK_DISABLED = 1,
    PYEXEC_NETWORK_ENABLED = 2,
} pyexec_network;

/* Health of the server as reported by grpc.health.v1.Health/Check. */
typedef enum pyexec_health {
    PYEXEC_HEALTH_UNKNOWN = 0,
    PYEXEC_HEALTH_SERVING = 1,
    PYEXEC_HEALTH_NOT_SERVING = 2,
    PYEXEC_HEALTH_SERVICE_UNKNOWN = 3,
} pyexec_health;

/* One file of a project. Plain data; everything borrowed. */
typedef struct pyexec_file {
    const char *path;       /* relative, '/'-separated */
    const uint8_t *content; /* may be NULL when len is 0 */
    size_t len;
    uint32_t mode; /* permission bits; 0 means 0644 */
} pyexec_file;

/* A request to run a project. Plain data; every pointer is borrowed, NULL
 * strings and zero counts mean "not set", zero limits mean the server's
 * default. Exactly one of `tar` (tar_len > 0) and `files` (n_files > 0)
 * carries the code; the server rejects anything else with INVALID_ARGUMENT. */
typedef struct pyexec_request {
    const char *entrypoint;
    const char *docker_image;
    const char *requirements_txt;
    const char *const *pre_commands;
    size_t n_pre_commands;
    const uint8_t *stdin_data;
    size_t stdin_len;
    const char *const *env_vars; /* "KEY=value" */
    size_t n_env_vars;
    const char *const *script_args;
    size_t n_script_args;

    int32_t timeout_seconds;
    pyexec_network network;
    int32_t memory_mb;
    int32_t disk_mb;
    int32_t cpu_shares;

    const uint8_t *tar;
    size_t tar_len;
    const pyexec_file *files;
    size_t n_files;

    const char *request_id;     /* idempotency key, optional */
    const char *python_version; /* e.g. "3.13": picks the server's image; optional */
} pyexec_request;

/* The state of an execution, owned by the caller (pyexec_result_free).
 * stdout_buf/stderr_buf are NUL-terminated for convenience but may contain
 * NUL bytes and invalid UTF-8: use the lengths. */
typedef struct pyexec_result {
    char *execution_id; /* never NULL ("" if the server sent none) */
    pyexec_status status;
    uint8_t *stdout_buf; /* never NULL */
    size_t stdout_len;
    uint8_t *stderr_buf; /* never NULL */
    size_t stderr_len;
    int32_t exit_code; /* meaningful once terminal and the program ran */
    char *error;       /* never NULL; "" unless FAILED */
    bool has_started_at;
    int64_t started_at_sec; /* Unix time */
    int32_t started_at_nsec;
    bool has_finished_at;
    int64_t finished_at_sec;
    int32_t finished_at_nsec;
    int64_t duration_ms;
    pyexec_reason reason;
    bool output_truncated;
    int64_t peak_memory_bytes;
    int64_t cpu_time_ms;
    /* Eval: repr() of the last expression's value; NULL when there is none
     * (not an Eval, no final expression, None, or the code raised). */
    char *result;
    char *error_type;    /* never NULL; the uncaught exception's type, "" if none */
    int32_t error_line;  /* its line in the entrypoint; 0 if unknown */
    char *error_message; /* never NULL; str() of that exception */
} pyexec_result;

/* One page of ListExecutions, owned by the caller (pyexec_list_free). */
typedef struct pyexec_list {
    pyexec_result **items; /* newest first, without stdout/stderr */
    size_t n;
    char *next_page_token; /* never NULL; "" on the last page */
} pyexec_list;

/* One piece of output from StreamOutput; borrowed for the callback only. */
typedef struct pyexec_chunk {
    pyexec_stream stream;
    const uint8_t *data;
    size_t len;
    int64_t offset; /* absolute offset of data[0] in the combined log */
} pyexec_chunk;

/* Called for every output chunk, in order. Return 0 to go on, non-zero to
 * stop: the call is then cancelled and pyexec_stream_output() returns -1
 * with PYEXEC_E_CANCELLED. */
typedef int (*pyexec_chunk_fn)(const pyexec_chunk *chunk, void *userdata);

/* The gRPC target for a server address as people write it:
 *   "host:port", "[v6addr]:port"          as given
 *   "host", "[v6addr]", "v6addr"          the port PYEXEC_DEFAULT_PORT added
 *   "http://ADDR", "grpc://ADDR"          the scheme (and a trailing '/') dropped
 *   "unix:", "unix-abstract:", "ipv4:", "ipv6:", "dns:" targets: as given
 *   "https://ADDR", "grpcs://ADDR"        likewise (the channel is then TLS:
 *                                        pyexec_address_uses_tls); after
 *                                        "https://" the default port is 443
 * An unknown scheme fails with PYEXEC_E_INVALID. So do an empty host, a port
 * that is not a number in 1..65535, and a path after the address. Returns a new string (free()) or NULL with `err`
 * set. */
char *pyexec_target_from_address(const char *address, pyexec_error *err);

/* Whether `address` asks for TLS ("https://" or "grpcs://"). */
bool pyexec_address_uses_tls(const char *address);

/* Creates a client for `target` (an address as pyexec_target_from_address()
 * reads it; NULL: PYEXEC_DEFAULT_SERVER) over a plaintext channel, or a TLS
 * one (pyexec_address_uses_tls, or opts' TLS files). A call
 * that cannot reach the server fails with PYEXEC_E_UNAVAILABLE and a message
 * naming the target tried. `opts` may be NULL.
 * Does not connect: the channel connects lazily, or at
 * pyexec_client_connect(). Initialises the gRPC library (reference counted,
 * released by pyexec_client_free). Returns NULL with `err` set (PYEXEC_E_INVALID
 * for bad options, PYEXEC_E_INTERNAL if gRPC fails). */
pyexec_client *pyexec_client_new(const char *target, const pyexec_client_options *opts,
                                 pyexec_error *err);

/* Closes the channel and releases the client. NULL-safe. No call on `c` may
 * be in progress. */
void pyexec_client_free(pyexec_client *c);

/* The gRPC target the client talks to (pyexec_target_from_address() of the
 * address it was created with); borrowed until pyexec_client_free. */
const char *pyexec_client_target(const pyexec_client *c);

/* Waits until the channel is connected, at most `timeout_ms` (> 0).
 * Returns 0, or -1 with PYEXEC_E_UNAVAILABLE if it is not ready in time. */
int pyexec_client_connect(pyexec_client *c, int64_t timeout_ms, pyexec_error *err);

/* Runs a project and waits for its terminal result (stdout and stderr in
 * full, up to the server's output cap). On success `*out` is the caller's. */
int pyexec_execute_sync(pyexec_client *c, const pyexec_request *req, pyexec_result **out,
                        pyexec_error *err);

/* Submits a project and returns at once: `*out` carries the execution id and
 * status PENDING or RUNNING. */
int pyexec_execute_async(pyexec_client *c, const pyexec_request *req, pyexec_result **out,
                         pyexec_error *err);

/* Eval: runs Python `code` (as main.py) REPL-style, or, with `code` NULL,
 * req->files from req->entrypoint; the terminal result carries `result` or
 * the error fields. `req` (may be NULL) supplies stdin, env_vars, limits,
 * network, python_version, requirements_txt and request_id; its tar,
 * docker_image, pre_commands and script_args must be unset
 * (PYEXEC_E_INVALID). The _async form returns at once, like
 * pyexec_execute_async. */
int pyexec_eval_sync(pyexec_client *c, const char *code, const pyexec_request *req,
                     pyexec_result **out, pyexec_error *err);
int pyexec_eval_async(pyexec_client *c, const char *code, const pyexec_request *req,
                      pyexec_result **out, pyexec_error *err);

/* One page of the server's retained executions, newest first: at most
 * `page_size` (0: the server's 50; at most 1000), after `page_token` (NULL
 * or "": the first page), only those in `status` (PYEXEC_STATUS_UNSPECIFIED:
 * any). */
int pyexec_list_executions(pyexec_client *c, pyexec_status status, int32_t page_size,
                           const char *page_token, pyexec_list **out, pyexec_error *err);

/* Releases a page. NULL-safe. */
void pyexec_list_free(pyexec_list *l);

/* The current state of execution `id`, with the output so far. Unknown id:
 * PYEXEC_E_NOT_FOUND; malformed id: PYEXEC_E_INVALID. */
int pyexec_get_execution(pyexec_client *c, const char *id, pyexec_result **out, pyexec_error *err);

/* Kills execution `id` (idempotent) and returns its terminal result. */
int pyexec_kill(pyexec_client *c, const char *id, pyexec_result **out, pyexec_error *err);

/* Streams the combined output log of `id` from byte `offset`: calls `fn`
 * for every chunk while the execution runs, then returns 0 once the server
 * sends the terminal result, which is stored in `*final` if `final` is not
 * NULL (its stdout/stderr are empty: the chunks carried them). Offset past
 * the end of a finished log: PYEXEC_E_OUT_OF_RANGE; negative: PYEXEC_E_INVALID;
 * `fn` asked to stop: PYEXEC_E_CANCELLED. `fn` may be NULL (wait only). */
int pyexec_stream_output(pyexec_client *c, const char *id, int64_t offset, pyexec_chunk_fn fn,
                         void *userdata, pyexec_result **final, pyexec_error *err);

/* grpc.health.v1.Health/Check for `service` ("" or NULL: the server as a
 * whole). Stores the status in `*out`. */
int pyexec_health_check(pyexec_client *c, const char *service, pyexec_health *out,
                        pyexec_error *err);

/* pyexec_health_check, and stores in `*reason` why the server is not
 * SERVING, as it said (the `pyexec-health-reason` trailing metadata of the
 * response), or NULL when it said nothing (always when SERVING). `*reason`
 * is the caller's: free() it. */
int pyexec_health_check_reason(pyexec_client *c, const char *service, pyexec_health *out,
                               char **reason, pyexec_error *err);

/* Releases a result. NULL-safe. */
void pyexec_result_free(pyexec_result *r);

/* True for COMPLETED, FAILED and KILLED. */
bool pyexec_status_is_terminal(pyexec_status s);

/* Lowercase names as the Python client spells them ("pending", "running",
 * "completed", "failed", "killed"; "unspecified" otherwise). Never NULL. */
const char *pyexec_status_name(pyexec_status s);

/* Lowercase reason names ("exited", "timeout", "memory_limit",
 * "output_limit", "killed", "client_cancelled", "lost", "sandbox_error",
 * "unspecified"). Never NULL. */
const char *pyexec_reason_name(pyexec_reason r);

/* "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN" or "UNKNOWN". Never NULL. */
const char *pyexec_health_name(pyexec_health h);

#ifdef __cplusplus
}
#endif

#endif
