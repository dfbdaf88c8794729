/*
 * Internals shared by the RPC handlers: the tag closure, the server context
 * and the per-call object.
 *
 * A tag is a closure (CONTRIBUTING.md, "Style, by example"): every pointer
 * handed to the completion queue is a px_tag embedded in a per-call object,
 * recovered with container_of when the queue delivers it.
 *
 * A px_call wraps one grpc_call. It is reference counted: the handler holds
 * one reference, and every batch in flight holds one. Batches on one call
 * are started under call->mu, so they are serialised whichever thread (a
 * completion-queue thread, or an executor thread resuming the call) starts
 * them. At most one SEND_MESSAGE is outstanding (the handlers track it).
 * Every call starts a RECV_CLOSE_ON_SERVER batch at once; its completion is
 * the cancellation signal (docs/contract.md: cancel of a sync Execute kills).
 */
#ifndef PYEXEC_RPC_CALL_H
#define PYEXEC_RPC_CALL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include "server/base/config.h"
#include "server/base/error.h"
#include "server/executor/executor.h"
#include "server/rpc/rpc.h"
#include "server/store/store.h"

/* The most output one StreamOutput message carries (less when the
 * server's queued-bytes budget gives each reader less). */
#define PX_STREAM_MESSAGE_MAX (64 * 1024)

typedef struct px_tag {
    void (*on_done)(struct px_tag *tag, bool ok);
} px_tag;

enum px_method {
    PX_M_EXECUTE,
    PX_M_GET,
    PX_M_STREAM,
    PX_M_KILL,
    PX_M_EVAL,
    PX_M_LIST,
    PX_M_HEALTH_CHECK,
    PX_M_HEALTH_WATCH,
    PX_M_REFLECTION_V1,      /* bidi streaming: requests read by the handler */
    PX_M_REFLECTION_V1ALPHA, /* the same protocol under its older name */
    PX_M_COUNT,
};

typedef struct px_health_watch px_health_watch;
typedef struct px_reflection px_reflection;
typedef struct px_tls px_tls;
typedef struct px_tokens px_tokens;

struct px_rpc_server {
    const px_config *cfg;
    px_executor *ex;  /* NULL on a --role frontend node: it runs nothing */
    bool worker_only; /* --role worker: only health is served */
    px_store *store;
    grpc_server *server;
    grpc_completion_queue *cq;
    void *methods[PX_M_COUNT];
    char address[300];

    /* Handlers block on the store: in memory briefly, on Redis for round
     * trips (each an fsync under appendfsync always), so a shared store
     * gets more threads to wait in. */
    pthread_t cq_threads[8];
    int n_cq_threads;
    pthread_t health_thread;
    bool health_thread_started;

    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cond;
    bool started;
    bool shutting_down;
    bool shutdown_done;       /* the server's shutdown tag completed */
    bool stopped;             /* px_rpc_server_shutdown finished */
    int serving;              /* a HealthCheckResponse.ServingStatus */
    char health_reason[512];  /* why not SERVING ("" when SERVING) */
    bool logged_health;       /* the first status has been logged */
    px_health_watch *watches; /* open Health/Watch calls */
    px_tag shutdown_tag;

    atomic_int live_calls;
    /* StreamOutput calls admitted and not yet freed, server-wide: at most
     * cfg->max_total_stream_readers. Each holds at most one message of at
     * most stream_message_max bytes of output, so the output queued to
     * readers never exceeds cfg->max_stream_queued_bytes. */
    atomic_int stream_readers;
    size_t stream_message_max;
    /* Bytes of final messages (unary replies: results with their output)
     * handed to gRPC and not yet sent, server-wide: at most
     * cfg->max_reply_queued_bytes; a client that never reads would
     * otherwise pin a whole result per call. */
    _Atomic int64_t reply_bytes;
    px_reflection *reflection; /* owned; immutable once built, read by any thread */
    px_metrics *metrics;       /* borrowed; RPC latency by method and code; may be NULL */
    px_tls *tls;               /* owned; NULL: plaintext */
    /* --auth-tokens (owned; NULL: none), swapped by a reload: read under
     * tokens_mu (read lock) by px_rpc_authenticate. */
    pthread_rwlock_t tokens_mu;
    px_tokens *tokens;
};

typedef struct px_call px_call;

typedef struct px_call_ops {
    /* The RECV_CLOSE_ON_SERVER batch completed; `cancelled` tells whether
     * the client cancelled (or the deadline passed) before the status was
     * sent. Completion-queue thread, no lock held. May be NULL. */
    void (*on_close)(px_call *call, bool cancelled);
    /* The final batch (status sent) completed. Completion-queue thread, no
     * lock held. May be NULL. */
    void (*on_finished)(px_call *call, bool ok);
    /* The last reference is gone: free the handler's state (not `call`
     * itself, which is freed by the caller of destroy). May be NULL. */
    void (*destroy)(px_call *call);
} px_call_ops;

struct px_call {
    px_rpc_server *srv;
    grpc_call *call;
    const px_call_ops *ops;
    /* The method's name ("Execute"), set by its handler right after
     * creation: the call's end is then logged once (the access log: its
     * peer, status, duration, and the status's message if not OK). NULL:
     * not logged. */
    const char *rpc;
    /* px_now_mono_us() at px_call_init: the access log's duration and the
     * latency metric's. */
    int64_t started_us;
    /* The execution the call is about, once known (px_call_set_execution;
     * under mu): the access log's execution_id. "" when none. */
    char execution_id[48];
    /* Who called (px_call_set_tenant; under mu): the access log's tenant. */
    char tenant[PX_TENANT_MAX];
    pthread_mutex_t mu;
    atomic_int refs;
    bool initial_md_sent; /* under mu */
    bool finished;        /* final status batch started; under mu */
    px_tag close_tag;
    int cancelled; /* written by the core for RECV_CLOSE */
    px_tag final_tag;
    grpc_byte_buffer *final_buf; /* message sent with the status */
    int64_t final_reserved;      /* its bytes counted in srv->reply_bytes */
    /* What a refused reply names first, e.g. "execution 'exe_…' is KILLED";
     * set before finishing (empty: nothing). */
    char reply_note[96];
    grpc_slice final_details;
    grpc_metadata final_trailer; /* optional trailing metadata entry */
    size_t n_final_trailer;      /* 0 or 1 */
    px_tag send_tag;             /* the one outstanding SEND_MESSAGE */
    grpc_byte_buffer *send_buf;
    void (*on_sent)(px_call *call, bool ok);
};

/* Records the execution `call` is about, for its access log line. */
void px_call_set_execution(px_call *call, const char *id);

/* Records the caller's tenant, for its access log line. */
void px_call_set_tenant(px_call *call, const char *tenant);

/* Initialises `call` (embedded in a handler object), takes over `gcall`,
 * starts the RECV_CLOSE_ON_SERVER batch. The handler holds one reference.
 * Returns 0, or -1 if the batch could not start (the call is dead: the
 * caller just drops its reference). */
int px_call_init(px_call *call, px_rpc_server *srv, grpc_call *gcall, const px_call_ops *ops);

/* Allocates a zeroed handler object of `size` bytes whose first member is
 * a px_call, and initialises that call with px_call_init. On failure (out
 * of memory, or the call is already dead) releases `gcall` and *payload
 * (which may be NULL) and returns NULL; there is nothing left to answer. */
void *px_call_new(size_t size, px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer **payload,
                  const px_call_ops *ops);

void px_call_ref(px_call *call);
/* Drops a reference; at zero calls ops->destroy, unrefs the grpc_call and
 * frees `call` (which must be the first member of a malloc'd handler). */
void px_call_unref(px_call *call);

/* Sends the final message (if `msg` is non-NULL) and status. At most once:
 * later calls are ignored and return false. Any thread; takes call->mu.
 * A status other than OK is logged (info; warn for INTERNAL and UNKNOWN)
 * when call->rpc is set: "rpc: Execute from PEER: INVALID_ARGUMENT: ...". */
bool px_call_finish(px_call *call, const ProtobufCMessage *msg, grpc_status_code code,
                    const char *details);

/* A final message counts against the server's reply budget
 * (cfg->max_reply_queued_bytes) until it is sent: one that does not fit is
 * replaced by RESOURCE_EXHAUSTED ("<reply_note>: the reply (N bytes) does
 * not fit ..."), so clients that never read cannot pin unbounded memory. */

/* px_call_finish, and the status carries one trailing metadata entry
 * `key: value` (both copied). `key` is a lowercase ASCII header name; bytes
 * of `value` outside printable ASCII are sent as '?' (a text header). */
bool px_call_finish_with_trailer(px_call *call, const ProtobufCMessage *msg, grpc_status_code code,
                                 const char *details, const char *key, const char *value);

/* Sends the final status for `err` (no message). */
bool px_call_finish_error(px_call *call, const px_error *err);

/* Starts a SEND_MESSAGE of `msg` (with initial metadata the first time);
 * `on_sent` runs on a completion-queue thread when it completes. The caller
 * guarantees no other send is outstanding and holds call->mu. Returns false
 * if the batch could not start. */
bool px_call_send_locked(px_call *call, const ProtobufCMessage *msg,
                         void (*on_sent)(px_call *call, bool ok));

/* Reads a received payload into a protobuf-c message. Returns NULL with
 * `err` set (PX_E_INVALID) if it does not parse, or if a string field (at
 * any depth) holds a NUL byte (protobuf-c would silently cut it there). Takes
 * ownership of `payload`. Free the result with protobuf_c_message_free_unpacked. */
ProtobufCMessage *px_call_decode(grpc_byte_buffer *payload, const ProtobufCMessageDescriptor *desc,
                                 px_error *err);

/* Handlers, one per RPC (one file each). Each takes over `gcall` and
 * `payload` (NULL for streaming requests read later). The executor's
 * handlers act for `tenant` (authenticated by px_auth_call; "" when the
 * server has no tenants): its records only. */
void px_handle_execute(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload,
                       const char *tenant);
void px_handle_eval(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload,
                    const char *tenant);
void px_handle_get(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload,
                   const char *tenant);
void px_handle_stream(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload,
                      const char *tenant);
void px_handle_kill(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload,
                    const char *tenant);
void px_handle_list_executions(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload,
                               const char *tenant);
void px_handle_health_check(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload);
void px_handle_health_watch(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload);
/* grpc.reflection.v1 and v1alpha ServerReflectionInfo (reflection.c). */
void px_handle_reflection(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload);

/* Reflection: indexes the descriptors built into the binary (the protos of
 * every service served, with their imports). Returns NULL with `err` set
 * (PX_E_INTERNAL) if they cannot be indexed, a build error. The result is
 * immutable: any thread may read it. px_reflection_free is NULL-safe. */
px_reflection *px_reflection_new(px_error *err);
void px_reflection_free(px_reflection *r);

/* The trailing metadata key of a Health/Check response that is not SERVING:
 * why, in words (docs/api.md). */
#define PX_HEALTH_REASON_KEY "pyexec-health-reason"

/* Health: set the status and why it is not SERVING (`reason`, copied; NULL
 * or "" when SERVING), log a change, and notify watchers (any thread). */
void px_health_set(px_rpc_server *srv, int serving, const char *reason);
/* Cancels nothing; finishes every open Watch call (shutdown). */
void px_health_close_all(px_rpc_server *srv);

/* ---- waiting for a record to turn terminal (sync Execute, Kill) ---- */

/* A unary call that may have to wait for an execution to end. */
typedef struct px_waiter {
    px_call base;      /* first: px_call_unref frees the waiter */
    px_record *record; /* set by px_waiter_wait */
    px_watch *watch;
    bool kill_on_cancel; /* a cancelled call kills with PX_KILL_CANCEL */
    bool map_failures;   /* FAILED before any container: reply with its status code */
    bool replied;        /* under base.mu */
    bool closed;         /* the call is over (on_close/on_finished ran); under base.mu */
} px_waiter;

/* The opening of the waiter's handlers (Execute, Eval, Kill): allocates the
 * waiter for `gcall` (taken over), names its RPC (`rpc`: a static string)
 * and caller, and decodes `payload` (taken over) as `desc`. Returns the
 * waiter, holding the caller's reference, with *req set (free it with
 * protobuf_c_message_free_unpacked); or NULL when there is nothing left to
 * do: the call was dead, or the request did not decode and has been
 * answered with the reason. */
px_waiter *px_waiter_open(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload,
                          const char *rpc, const char *tenant,
                          const ProtobufCMessageDescriptor *desc, ProtobufCMessage **req);

/* Replies with the record's result (with output) once it is terminal, now
 * or from the executor thread that ends it. Takes over one reference to
 * `record` and the caller's reference to the waiter. */
void px_waiter_wait(px_waiter *w, px_record *record);

/* The part Execute and Eval share (execute.c), after the request became a
 * spec: makes it `tenant`'s, checks request_id, makes the record or finds
 * the one with the same request_id and content `digest` (px_store_create),
 * admits the job, and answers (async: at once; sync: when the execution is
 * terminal). Takes over the caller's reference to `w` and `spec`; with
 * `spec` NULL, answers with `err` (the reason there is none). */
void px_execute_admit(px_rpc_server *srv, px_waiter *w, const char *tenant, const char *request_id,
                      const uint8_t *digest, bool async, px_job_spec *spec, px_error *err);

/* Encodes a record view as an ExecutionResult and finishes `call` with it. */
bool px_finish_with_view(px_call *call, const px_record_view *view);

/* The client's address as gRPC names it ("ipv4:127.0.0.1:40312"), into
 * `out` ("?" if unknown). */
void px_call_peer(const px_call *call, char *out, size_t n);

/* ---- authentication (auth.c) ---- */

/* Who is calling `gcall` (whose initial metadata is `md`): the tenant named
 * by its bearer token, else the subject of its client certificate (mutual
 * TLS), else "" when the server has no tenants; into `tenant`
 * (PX_TENANT_MAX). Returns 0, or -1 with `err` (PX_E_UNAUTHENTICATED). */
int px_auth_call(px_rpc_server *srv, grpc_call *gcall, const grpc_metadata_array *md, char *tenant,
                 px_error *err);

/* Validates an execution id field: PX_E_INVALID if malformed. */
int px_check_id(const char *id, px_error *err);

#endif
