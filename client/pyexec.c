/*
 * libpyexec over the gRPC C core.
 *
 * Every call owns a private completion queue and keeps at most one batch
 * outstanding on it, so a call is a straight line of "start batch, wait for
 * its tag" steps and concurrent calls on one channel never share state.
 * Deadlines bound each call; the queue itself is waited on without one.
 */
#include "client/pyexec.h"

#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/codec.h"
#include "google/rpc/code.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "pyexec/v1/executor.pb-c.h"
#include "server/base/cleanup.h"

#define METHOD_EXECUTE "/pyexec.v1.ExecutorService/Execute"
#define METHOD_GET "/pyexec.v1.ExecutorService/GetExecution"
#define METHOD_STREAM "/pyexec.v1.ExecutorService/StreamOutput"
#define METHOD_KILL "/pyexec.v1.ExecutorService/Kill"
#define METHOD_EVAL "/pyexec.v1.ExecutorService/Eval"
#define METHOD_LIST "/pyexec.v1.ExecutorService/ListExecutions"
#define METHOD_HEALTH "/grpc.health.v1.Health/Check"
/* Trailing metadata of a Check answered NOT_SERVING: why (docs/api.md). */
#define HEALTH_REASON_KEY "pyexec-health-reason"

struct pyexec_client {
    grpc_channel *channel;
    char *target;
    /* "authorization: Bearer TOKEN", sent with every call when n_md is 1. */
    grpc_metadata auth_md;
    size_t n_md;
    int64_t call_timeout_ms; /* < 0: none */
    int64_t wait_timeout_ms; /* <= 0: none */
};

/* ---- status mapping ---------------------------------------------------- */

static pyexec_code code_from_status(grpc_status_code s) {
    switch (s) {
    case GRPC_STATUS_INVALID_ARGUMENT: return PYEXEC_E_INVALID;
    case GRPC_STATUS_NOT_FOUND: return PYEXEC_E_NOT_FOUND;
    case GRPC_STATUS_RESOURCE_EXHAUSTED: return PYEXEC_E_EXHAUSTED;
    case GRPC_STATUS_UNAVAILABLE: return PYEXEC_E_UNAVAILABLE;
    case GRPC_STATUS_FAILED_PRECONDITION: return PYEXEC_E_PRECONDITION;
    case GRPC_STATUS_OUT_OF_RANGE: return PYEXEC_E_OUT_OF_RANGE;
    case GRPC_STATUS_CANCELLED: return PYEXEC_E_CANCELLED;
    case GRPC_STATUS_DEADLINE_EXCEEDED: return PYEXEC_E_TIMEOUT;
    default: return PYEXEC_E_INTERNAL;
    }
}

/* "INVALID_ARGUMENT", ...: the names are google.rpc.Code's (the server's
 * logs read them from the same descriptor). */
static const char *status_name(grpc_status_code s) {
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
        &google__rpc__code__descriptor, (int)s);
    return v ? v->name : "UNKNOWN";
}

/* The short RPC name ("GetExecution") of a method path. */
static const char *rpc_name(const char *method) {
    const char *slash = strrchr(method, '/');
    return slash ? slash + 1 : method;
}

static int set_status_error(pyexec_error *err, const pyexec_client *c, const char *method,
                            grpc_status_code s, grpc_slice details) {
    int n = (int)GRPC_SLICE_LENGTH(details);
    const char *d = (const char *)GRPC_SLICE_START_PTR(details);
    pyexec_code code = code_from_status(s);
    /* Unreachable (or shutting down): say which server was tried. */
    if (code == PYEXEC_E_UNAVAILABLE)
        return pyexec_error_set(err, code, "%s: server %s: %.*s", rpc_name(method), c->target, n,
                                d);
    if (code == PYEXEC_E_INTERNAL)
        return pyexec_error_set(err, code, "%s: %s: %.*s", rpc_name(method), status_name(s), n, d);
    return pyexec_error_set(err, code, "%s: %.*s", rpc_name(method), n, d);
}

/* ---- time -------------------------------------------------------------- */

static gpr_timespec deadline_after(int64_t ms) {
    if (ms <= 0)
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* ---- one call: a private queue and the state shared by its batches ------ */

typedef struct call_ctx {
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_metadata_array initial_md;
    grpc_metadata_array trailing_md;
    grpc_status_code status;
    grpc_slice details;
    const char *error_string;
} call_ctx;

static int call_open(call_ctx *cx, pyexec_client *c, const char *method, gpr_timespec deadline,
                     pyexec_error *err) {
    memset(cx, 0, sizeof *cx);
    grpc_metadata_array_init(&cx->initial_md);
    grpc_metadata_array_init(&cx->trailing_md);
    cx->details = grpc_empty_slice();
    cx->cq = grpc_completion_queue_create_for_next(NULL);
    if (!cx->cq)
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "%s: cannot create a completion queue",
                                rpc_name(method));
    grpc_slice m = grpc_slice_from_static_string(method);
    cx->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cx->cq, m, NULL,
                                        deadline, NULL);
    if (!cx->call)
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "%s: cannot create the call",
                                rpc_name(method));
    return 0;
}

static void call_close(call_ctx *cx) {
    if (cx->call)
        grpc_call_unref(cx->call);
    if (cx->cq) {
        grpc_completion_queue_shutdown(cx->cq);
        while (grpc_completion_queue_next(cx->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(cx->cq);
    }
    grpc_metadata_array_destroy(&cx->initial_md);
    grpc_metadata_array_destroy(&cx->trailing_md);
    grpc_slice_unref(cx->details);
    gpr_free((void *)cx->error_string);
    memset(cx, 0, sizeof *cx);
}

/* Starts one batch and waits for it. Returns the batch's success flag, or -1
 * if the batch could not be started. */
static int call_batch(call_ctx *cx, const grpc_op *ops, size_t n, const char *method,
                      pyexec_error *err) {
    void *tag = (void *)ops;
    grpc_call_error e = grpc_call_start_batch(cx->call, ops, n, tag, NULL);
    if (e != GRPC_CALL_OK)
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "%s: start batch: grpc_call_error %d",
                                rpc_name(method), (int)e);
    grpc_event ev = grpc_completion_queue_next(cx->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE || ev.tag != tag)
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "%s: unexpected completion queue event %d",
                                rpc_name(method), (int)ev.type);
    return ev.success ? 1 : 0;
}

/* Packs `msg` into a new byte buffer (the caller destroys it). */
static grpc_byte_buffer *pack_message(const ProtobufCMessage *msg, pyexec_error *err) {
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice s = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    if (!bb)
        pyexec_error_set(err, PYEXEC_E_INTERNAL, "cannot allocate a %zu-byte message", len);
    return bb;
}

/* Unpacks and destroys `bb`. Returns NULL with PYEXEC_E_INTERNAL if the bytes
 * are not a valid message of `desc`. */
static ProtobufCMessage *unpack_message(grpc_byte_buffer *bb,
                                        const ProtobufCMessageDescriptor *desc, const char *method,
                                        pyexec_error *err) {
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, bb)) {
        grpc_byte_buffer_destroy(bb);
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "%s: cannot read the response",
                                rpc_name(method)),
               NULL;
    }
    grpc_slice s = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    grpc_byte_buffer_destroy(bb);
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(s),
                                                    GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
    if (!m)
        pyexec_error_set(err, PYEXEC_E_INTERNAL, "%s: malformed %s from the server",
                         rpc_name(method), desc->name);
    return m;
}

/* A unary call: sends `req`, returns the unpacked response of `resp_desc`
 * (free with protobuf_c_message_free_unpacked) or NULL with `err` set. */
static ProtobufCMessage *call_unary_trailer(pyexec_client *c, const char *method,
                                            const ProtobufCMessage *req,
                                            const ProtobufCMessageDescriptor *resp_desc,
                                            gpr_timespec deadline, const char *trailer_key,
                                            char **trailer_value, pyexec_error *err);

static ProtobufCMessage *call_unary(pyexec_client *c, const char *method,
                                    const ProtobufCMessage *req,
                                    const ProtobufCMessageDescriptor *resp_desc,
                                    gpr_timespec deadline, pyexec_error *err) {
    return call_unary_trailer(c, method, req, resp_desc, deadline, NULL, NULL, err);
}

/* The value of trailing metadata entry `key` as a new string, or NULL when
 * absent (or out of memory: the entry is an extra, never an error). */
static char *trailer_dup(const grpc_metadata_array *md, const char *key) {
    for (size_t i = 0; i < md->count; i++) {
        if (grpc_slice_str_cmp(md->metadata[i].key, key) == 0)
            return grpc_slice_to_c_string(md->metadata[i].value);
    }
    return NULL;
}

/* call_unary, and on success stores the value of the trailing metadata
 * entry `trailer_key` in `*trailer_value` (gpr_free'd by the caller; NULL
 * when absent). */
static ProtobufCMessage *call_unary_trailer(pyexec_client *c, const char *method,
                                            const ProtobufCMessage *req,
                                            const ProtobufCMessageDescriptor *resp_desc,
                                            gpr_timespec deadline, const char *trailer_key,
                                            char **trailer_value, pyexec_error *err) {
    call_ctx cx;
    ProtobufCMessage *resp = NULL;
    grpc_byte_buffer *send = NULL;
    grpc_byte_buffer *recv = NULL;

    if (call_open(&cx, c, method, deadline, err) < 0)
        goto out;
    send = pack_message(req, err);
    if (!send)
        goto out;
    grpc_op ops[] = {
        {.op = GRPC_OP_SEND_INITIAL_METADATA,
         .data.send_initial_metadata = {.count = c->n_md, .metadata = &c->auth_md}},
        {.op = GRPC_OP_SEND_MESSAGE, .data.send_message.send_message = send},
        {.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT},
        {.op = GRPC_OP_RECV_INITIAL_METADATA,
         .data.recv_initial_metadata.recv_initial_metadata = &cx.initial_md},
        {.op = GRPC_OP_RECV_MESSAGE, .data.recv_message.recv_message = &recv},
        {.op = GRPC_OP_RECV_STATUS_ON_CLIENT,
         .data.recv_status_on_client = {.trailing_metadata = &cx.trailing_md,
                                        .status = &cx.status,
                                        .status_details = &cx.details,
                                        .error_string = &cx.error_string}},
    };
    if (call_batch(&cx, ops, PX_ARRAY_SIZE(ops), method, err) < 0)
        goto out;
    if (cx.status != GRPC_STATUS_OK) {
        set_status_error(err, c, method, cx.status, cx.details);
        goto out;
    }
    if (!recv) {
        pyexec_error_set(err, PYEXEC_E_INTERNAL, "%s: the server sent no response",
                         rpc_name(method));
        goto out;
    }
    resp = unpack_message(TAKE_PTR(recv), resp_desc, method, err);
    if (resp && trailer_key)
        *trailer_value = trailer_dup(&cx.trailing_md, trailer_key);

out:
    if (recv)
        grpc_byte_buffer_destroy(recv);
    if (send)
        grpc_byte_buffer_destroy(send);
    call_close(&cx);
    return resp;
}

/* ---- client ------------------------------------------------------------ */

static bool has_prefix(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Checks the port text s[0..n): a decimal number in 1..65535. */
static int check_port(const char *address, const char *s, size_t n, pyexec_error *err) {
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || (v = v * 10 + (s[i] - '0')) > 65535)
            return pyexec_error_set(err, PYEXEC_E_INVALID, "server address '%s': bad port '%.*s'",
                                    address, (int)n, s);
    }
    if (n == 0 || v == 0)
        return pyexec_error_set(err, PYEXEC_E_INVALID, "server address '%s': bad port '%.*s'",
                                address, (int)n, s);
    return 0;
}

char *pyexec_target_from_address(const char *address, pyexec_error *err) {
    static const char *const passthrough[] = {"unix:", "unix-abstract:", "ipv4:", "ipv6:", "dns:"};
    static const char *const schemes[] = {"http://", "grpc://", "https://", "grpcs://"};
    char *out = NULL;
    if (!address || !*address)
        address = PYEXEC_DEFAULT_SERVER;
    for (size_t i = 0; i < PX_ARRAY_SIZE(passthrough); i++)
        if (has_prefix(address, passthrough[i])) {
            out = strdup(address);
            if (!out)
                pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory");
            return out;
        }
    /* https:// is the web's TLS port unless one is given, as a browser reads it. */
    int default_port = has_prefix(address, "https://") ? 443 : PYEXEC_DEFAULT_PORT;
    const char *h = address;
    for (size_t i = 0; i < PX_ARRAY_SIZE(schemes); i++)
        if (has_prefix(h, schemes[i]))
            h += strlen(schemes[i]);
    if (strstr(h, "://"))
        return pyexec_error_set(err, PYEXEC_E_INVALID,
                                "server address '%s': unknown scheme (use host:port, http://, "
                                "grpc://, https:// or grpcs://)",
                                address),
               NULL;
    size_t len = strlen(h);
    while (len > 0 && h[len - 1] == '/')
        len--;
    if (memchr(h, '/', len))
        return pyexec_error_set(err, PYEXEC_E_INVALID,
                                "server address '%s': a path is not part of it", address),
               NULL;
    const char *colon = memchr(h, ':', len);
    size_t colons = 0;
    for (size_t i = 0; i < len; i++)
        colons += h[i] == ':';
    int rc;
    if (len > 0 && h[0] == '[') { /* [v6] or [v6]:port */
        const char *close = memchr(h, ']', len);
        if (!close || close == h + 1)
            return pyexec_error_set(err, PYEXEC_E_INVALID, "server address '%s': bad IPv6 address",
                                    address),
                   NULL;
        size_t hl = (size_t)(close - h) + 1;
        if (hl == len) {
            rc = asprintf(&out, "%.*s:%d", (int)hl, h, default_port);
        } else if (h[hl] != ':') {
            return pyexec_error_set(err, PYEXEC_E_INVALID,
                                    "server address '%s': expected [v6]:port", address),
                   NULL;
        } else {
            if (check_port(address, h + hl + 1, len - hl - 1, err) < 0)
                return NULL;
            rc = asprintf(&out, "%.*s", (int)len, h);
        }
    } else if (colons > 1) { /* a bare IPv6 address */
        rc = asprintf(&out, "[%.*s]:%d", (int)len, h, default_port);
    } else if (colon) { /* host:port */
        if (colon == h)
            return pyexec_error_set(err, PYEXEC_E_INVALID, "server address '%s': no host", address),
                   NULL;
        if (check_port(address, colon + 1, (size_t)(h + len - colon - 1), err) < 0)
            return NULL;
        rc = asprintf(&out, "%.*s", (int)len, h);
    } else {
        if (len == 0)
            return pyexec_error_set(err, PYEXEC_E_INVALID, "server address '%s': no host", address),
                   NULL;
        rc = asprintf(&out, "%.*s:%d", (int)len, h, default_port);
    }
    if (rc < 0)
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory"), NULL;
    return out;
}

bool pyexec_address_uses_tls(const char *address) {
    return address && (has_prefix(address, "https://") || has_prefix(address, "grpcs://"));
}

/* Reads a PEM file the caller named into a new string (free()). */
static char *read_pem(const char *what, const char *path, pyexec_error *err) {
    FILE *f = fopen(path, "re");
    if (!f)
        return pyexec_error_set(err, PYEXEC_E_INVALID, "%s '%s': %s", what, path, strerror(errno)),
               NULL;
    enum { PEM_MAX = 1024 * 1024 };
    _cleanup_free_ char *buf = malloc(PEM_MAX + 1);
    size_t n = buf ? fread(buf, 1, PEM_MAX + 1, f) : 0;
    bool failed = buf && ferror(f);
    fclose(f);
    if (!buf)
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory"), NULL;
    if (failed || n > PEM_MAX || !memmem(buf, n, "-----BEGIN ", 11))
        return pyexec_error_set(err, PYEXEC_E_INVALID, "%s '%s': %s", what, path,
                                failed        ? "cannot be read"
                                : n > PEM_MAX ? "larger than 1 MiB"
                                              : "not PEM (no -----BEGIN line)"),
               NULL;
    buf[n] = '\0';
    return TAKE_PTR(buf);
}

/* TLS channel credentials from the options' files (NULL ones: the
 * system's roots, no client certificate). */
static grpc_channel_credentials *tls_credentials(const pyexec_client_options *o,
                                                 pyexec_error *err) {
    if (!o->tls_cert_file != !o->tls_key_file)
        return pyexec_error_set(err, PYEXEC_E_INVALID,
                                "%s without %s: a client certificate needs "
                                "both",
                                o->tls_cert_file ? "tls_cert_file" : "tls_key_file",
                                o->tls_cert_file ? "tls_key_file" : "tls_cert_file"),
               NULL;
    _cleanup_free_ char *ca = NULL, *cert = NULL, *key = NULL;
    if (o->tls_ca_file && !(ca = read_pem("TLS CA file", o->tls_ca_file, err)))
        return NULL;
    if (o->tls_cert_file && (!(cert = read_pem("TLS certificate file", o->tls_cert_file, err)) ||
                             !(key = read_pem("TLS key file", o->tls_key_file, err))))
        return NULL;
    grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
    grpc_channel_credentials *creds = grpc_ssl_credentials_create(ca, cert ? &pair : NULL, NULL,
                                                                  NULL);
    if (key)
        explicit_bzero(key, strlen(key));
    if (!creds)
        pyexec_error_set(err, PYEXEC_E_INTERNAL, "cannot create TLS credentials");
    return creds;
}

/* A bearer token goes into a header: visible ASCII only, bounded. */
static int check_token(const char *token, pyexec_error *err) {
    size_t n = strlen(token);
    if (n == 0 || n > 4096)
        return pyexec_error_set(err, PYEXEC_E_INVALID, "token: must be 1 to 4096 characters");
    for (size_t i = 0; i < n; i++)
        if (token[i] <= ' ' || token[i] > '~')
            return pyexec_error_set(err, PYEXEC_E_INVALID,
                                    "token: only visible ASCII characters (no spaces)");
    return 0;
}

pyexec_client *pyexec_client_new(const char *target, const pyexec_client_options *opts,
                                 pyexec_error *err) {
    pyexec_client_options o = {0};
    if (opts)
        o = *opts;
    if (o.max_receive_bytes < 0)
        return pyexec_error_set(err, PYEXEC_E_INVALID, "max_receive_bytes must not be negative"),
               NULL;
    if (o.token && check_token(o.token, err) < 0)
        return NULL;
    bool tls = pyexec_address_uses_tls(target) || o.tls_ca_file || o.tls_cert_file ||
               o.tls_key_file;
    _cleanup_free_ pyexec_client *c = calloc(1, sizeof *c);
    if (!c)
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory"), NULL;
    c->target = pyexec_target_from_address(target, err);
    if (!c->target)
        return NULL;
    target = c->target;
    grpc_init();
    grpc_channel_credentials *creds = tls ? tls_credentials(&o, err)
                                          : grpc_insecure_credentials_create();
    if (!creds) {
        free(c->target);
        grpc_shutdown();
        return NULL;
    }
    if (o.token) {
        char *value = NULL;
        if (asprintf(&value, "Bearer %s", o.token) < 0) {
            grpc_channel_credentials_release(creds);
            free(c->target);
            grpc_shutdown();
            return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory"), NULL;
        }
        c->auth_md.key = grpc_slice_from_static_string("authorization");
        c->auth_md.value = grpc_slice_from_copied_string(value);
        explicit_bzero(value, strlen(value));
        free(value);
        c->n_md = 1;
    }
    c->call_timeout_ms = o.call_timeout_ms == 0 ? PYEXEC_DEFAULT_CALL_TIMEOUT_MS
                                                : o.call_timeout_ms;
    c->wait_timeout_ms = o.wait_timeout_ms;

    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER,
         .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = o.max_receive_bytes ? o.max_receive_bytes
                                              : PYEXEC_DEFAULT_MAX_RECEIVE_BYTES},
    };
    grpc_channel_args chargs = {.num_args = PX_ARRAY_SIZE(args), .args = args};
    c->channel = grpc_channel_create(c->target, creds, &chargs);
    grpc_channel_credentials_release(creds);
    if (!c->channel) {
        grpc_slice_unref(c->auth_md.value);
        free(c->target);
        grpc_shutdown();
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "cannot create a channel to '%s'", target),
               NULL;
    }
    return TAKE_PTR(c);
}

void pyexec_client_free(pyexec_client *c) {
    if (!c)
        return;
    grpc_channel_destroy(c->channel);
    grpc_slice_unref(c->auth_md.value);
    free(c->target);
    free(c);
    grpc_shutdown();
}

const char *pyexec_client_target(const pyexec_client *c) {
    return c->target;
}

int pyexec_client_connect(pyexec_client *c, int64_t timeout_ms, pyexec_error *err) {
    if (timeout_ms <= 0)
        return pyexec_error_set(err, PYEXEC_E_INVALID, "connect: timeout must be positive");
    gpr_timespec deadline = deadline_after(timeout_ms);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    int rc = 0;
    grpc_connectivity_state st = grpc_channel_check_connectivity_state(c->channel, 1);
    while (st != GRPC_CHANNEL_READY) {
        if (st == GRPC_CHANNEL_SHUTDOWN) {
            rc = pyexec_error_set(err, PYEXEC_E_UNAVAILABLE, "connect to '%s': channel shut down",
                                  c->target);
            break;
        }
        grpc_channel_watch_connectivity_state(c->channel, st, deadline, cq, cq);
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE || !ev.success) {
            rc = pyexec_error_set(err, PYEXEC_E_UNAVAILABLE,
                                  "connect to '%s': not ready within %lld ms", c->target,
                                  (long long)timeout_ms);
            break;
        }
        st = grpc_channel_check_connectivity_state(c->channel, 1);
    }
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    return rc;
}

/* ---- ExecutorService ---------------------------------------------------- */

static int execute(pyexec_client *c, const pyexec_request *req, bool async, pyexec_result **out,
                   pyexec_error *err) {
    codec_request cr;
    if (codec_request_init(&cr, req, async, err) < 0)
        return pyexec_error_wrap(err, "Execute");
    gpr_timespec deadline = deadline_after(async ? c->call_timeout_ms : c->wait_timeout_ms);
    ProtobufCMessage *m = call_unary(c, METHOD_EXECUTE, &cr.msg.base,
                                     &pyexec__v1__execution_result__descriptor, deadline, err);
    codec_request_release(&cr);
    if (!m)
        return -1;
    pyexec_result *r = codec_result_from_msg((Pyexec__V1__ExecutionResult *)m, err);
    protobuf_c_message_free_unpacked(m, NULL);
    if (!r)
        return -1;
    *out = r;
    return 0;
}

int pyexec_execute_sync(pyexec_client *c, const pyexec_request *req, pyexec_result **out,
                        pyexec_error *err) {
    return execute(c, req, false, out, err);
}

int pyexec_execute_async(pyexec_client *c, const pyexec_request *req, pyexec_result **out,
                         pyexec_error *err) {
    return execute(c, req, true, out, err);
}

static int eval_call(pyexec_client *c, const char *code, const pyexec_request *req, bool async,
                     pyexec_result **out, pyexec_error *err) {
    codec_eval ce;
    if (codec_eval_init(&ce, code, req, async, err) < 0)
        return pyexec_error_wrap(err, "Eval");
    gpr_timespec deadline = deadline_after(async ? c->call_timeout_ms : c->wait_timeout_ms);
    ProtobufCMessage *m = call_unary(c, METHOD_EVAL, &ce.msg.base,
                                     &pyexec__v1__execution_result__descriptor, deadline, err);
    codec_eval_release(&ce);
    if (!m)
        return -1;
    pyexec_result *r = codec_result_from_msg((Pyexec__V1__ExecutionResult *)m, err);
    protobuf_c_message_free_unpacked(m, NULL);
    if (!r)
        return -1;
    *out = r;
    return 0;
}

int pyexec_eval_sync(pyexec_client *c, const char *code, const pyexec_request *req,
                     pyexec_result **out, pyexec_error *err) {
    return eval_call(c, code, req, false, out, err);
}

int pyexec_eval_async(pyexec_client *c, const char *code, const pyexec_request *req,
                      pyexec_result **out, pyexec_error *err) {
    return eval_call(c, code, req, true, out, err);
}

int pyexec_list_executions(pyexec_client *c, pyexec_status status, int32_t page_size,
                           const char *page_token, pyexec_list **out, pyexec_error *err) {
    Pyexec__V1__ListExecutionsRequest req = PYEXEC__V1__LIST_EXECUTIONS_REQUEST__INIT;
    req.status = (Pyexec__V1__ExecutionStatus)status;
    req.page_size = page_size;
    if (page_token)
        req.page_token = (char *)page_token;
    ProtobufCMessage *m = call_unary(c, METHOD_LIST, &req.base,
                                     &pyexec__v1__list_executions_response__descriptor,
                                     deadline_after(c->call_timeout_ms), err);
    if (!m)
        return -1;
    Pyexec__V1__ListExecutionsResponse *resp = (Pyexec__V1__ListExecutionsResponse *)m;
    pyexec_list *l = calloc(1, sizeof *l);
    if (l) {
        l->items = calloc(resp->n_executions + 1, sizeof *l->items);
        l->next_page_token = strdup(resp->next_page_token ? resp->next_page_token : "");
    }
    int rc = 0;
    if (!l || !l->items || !l->next_page_token) {
        rc = pyexec_error_set(err, PYEXEC_E_INTERNAL, "ListExecutions: out of memory");
    } else {
        for (; l->n < resp->n_executions; l->n++) {
            if (!(l->items[l->n] = codec_result_from_msg(resp->executions[l->n], err))) {
                rc = -1;
                break;
            }
        }
    }
    protobuf_c_message_free_unpacked(m, NULL);
    if (rc < 0) {
        pyexec_list_free(l);
        return -1;
    }
    *out = l;
    return 0;
}

void pyexec_list_free(pyexec_list *l) {
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        pyexec_result_free(l->items[i]);
    free(l->items);
    free(l->next_page_token);
    free(l);
}

/* GetExecution and Kill: same request shape, same response. */
static int call_by_id(pyexec_client *c, const char *method, const char *id, pyexec_result **out,
                      pyexec_error *err) {
    if (!id)
        return pyexec_error_set(err, PYEXEC_E_INVALID, "%s: no execution id", rpc_name(method));
    ProtobufCMessage *m;
    if (strcmp(method, METHOD_GET) == 0) {
        Pyexec__V1__GetExecutionRequest req = PYEXEC__V1__GET_EXECUTION_REQUEST__INIT;
        req.execution_id = (char *)id;
        m = call_unary(c, method, &req.base, &pyexec__v1__execution_result__descriptor,
                       deadline_after(c->call_timeout_ms), err);
    } else {
        Pyexec__V1__KillRequest req = PYEXEC__V1__KILL_REQUEST__INIT;
        req.execution_id = (char *)id;
        m = call_unary(c, method, &req.base, &pyexec__v1__execution_result__descriptor,
                       deadline_after(c->call_timeout_ms), err);
    }
    if (!m)
        return -1;
    pyexec_result *r = codec_result_from_msg((Pyexec__V1__ExecutionResult *)m, err);
    protobuf_c_message_free_unpacked(m, NULL);
    if (!r)
        return -1;
    *out = r;
    return 0;
}

int pyexec_get_execution(pyexec_client *c, const char *id, pyexec_result **out, pyexec_error *err) {
    return call_by_id(c, METHOD_GET, id, out, err);
}

int pyexec_kill(pyexec_client *c, const char *id, pyexec_result **out, pyexec_error *err) {
    return call_by_id(c, METHOD_KILL, id, out, err);
}

/* Handles one OutputChunk message of a StreamOutput call (takes `recv`):
 * hands its data to `fn` (a non-zero return sets *stopped) and, unless
 * stopped, keeps its result in *last. Returns 0, or -1 with `err` set and
 * the call cancelled. */
static int stream_take_chunk(call_ctx *cx, const char *method, grpc_byte_buffer *recv,
                             pyexec_chunk_fn fn, void *userdata, pyexec_result **last,
                             bool *stopped, pyexec_error *err) {
    Pyexec__V1__OutputChunk *chunk = (Pyexec__V1__OutputChunk *)unpack_message(
        recv, &pyexec__v1__output_chunk__descriptor, method, err);
    if (!chunk) {
        grpc_call_cancel(cx->call, NULL);
        return -1;
    }
    if (chunk->data.len && fn) {
        pyexec_chunk pc = {
            .stream = (pyexec_stream)chunk->stream,
            .data = chunk->data.data,
            .len = chunk->data.len,
            .offset = chunk->offset,
        };
        if (fn(&pc, userdata) != 0)
            *stopped = true;
    }
    if (chunk->result && !*stopped) {
        pyexec_result_free(*last);
        *last = codec_result_from_msg(chunk->result, err);
        if (!*last) {
            protobuf_c_message_free_unpacked(&chunk->base, NULL);
            grpc_call_cancel(cx->call, NULL);
            return -1;
        }
    }
    protobuf_c_message_free_unpacked(&chunk->base, NULL);
    return 0;
}

int pyexec_stream_output(pyexec_client *c, const char *id, int64_t offset, pyexec_chunk_fn fn,
                         void *userdata, pyexec_result **final, pyexec_error *err) {
    const char *method = METHOD_STREAM;
    if (!id)
        return pyexec_error_set(err, PYEXEC_E_INVALID, "StreamOutput: no execution id");
    Pyexec__V1__StreamOutputRequest req = PYEXEC__V1__STREAM_OUTPUT_REQUEST__INIT;
    req.execution_id = (char *)id;
    req.offset = offset;

    call_ctx cx;
    int rc = -1;
    bool stopped = false;
    grpc_byte_buffer *send = NULL;
    pyexec_result *last = NULL;

    if (call_open(&cx, c, method, deadline_after(c->wait_timeout_ms), err) < 0)
        goto out;
    send = pack_message(&req.base, err);
    if (!send)
        goto out;
    grpc_op start[] = {
        {.op = GRPC_OP_SEND_INITIAL_METADATA,
         .data.send_initial_metadata = {.count = c->n_md, .metadata = &c->auth_md}},
        {.op = GRPC_OP_SEND_MESSAGE, .data.send_message.send_message = send},
        {.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT},
        {.op = GRPC_OP_RECV_INITIAL_METADATA,
         .data.recv_initial_metadata.recv_initial_metadata = &cx.initial_md},
    };
    if (call_batch(&cx, start, PX_ARRAY_SIZE(start), method, err) < 0)
        goto out;

    for (;;) {
        grpc_byte_buffer *recv = NULL;
        grpc_op op[] = {{.op = GRPC_OP_RECV_MESSAGE, .data.recv_message.recv_message = &recv}};
        int ok = call_batch(&cx, op, 1, method, err);
        if (ok < 0)
            goto out;
        if (!ok || !recv) {
            if (recv)
                grpc_byte_buffer_destroy(recv);
            break;
        }
        if (stream_take_chunk(&cx, method, recv, fn, userdata, &last, &stopped, err) < 0)
            goto out;
        if (stopped) {
            grpc_call_cancel(cx.call, NULL);
            break;
        }
    }

    grpc_op fin[] = {
        {.op = GRPC_OP_RECV_STATUS_ON_CLIENT,
         .data.recv_status_on_client = {.trailing_metadata = &cx.trailing_md,
                                        .status = &cx.status,
                                        .status_details = &cx.details,
                                        .error_string = &cx.error_string}},
    };
    if (call_batch(&cx, fin, 1, method, err) < 0)
        goto out;
    if (stopped) {
        pyexec_error_set(err, PYEXEC_E_CANCELLED, "StreamOutput: stopped by the caller");
        goto out;
    }
    if (cx.status != GRPC_STATUS_OK) {
        set_status_error(err, c, method, cx.status, cx.details);
        goto out;
    }
    if (!last) {
        pyexec_error_set(err, PYEXEC_E_INTERNAL, "StreamOutput: the stream ended without a result");
        goto out;
    }
    if (final)
        *final = TAKE_PTR(last);
    rc = 0;

out:
    pyexec_result_free(last);
    if (send)
        grpc_byte_buffer_destroy(send);
    call_close(&cx);
    return rc;
}

/* ---- health ------------------------------------------------------------- */

int pyexec_health_check(pyexec_client *c, const char *service, pyexec_health *out,
                        pyexec_error *err) {
    return pyexec_health_check_reason(c, service, out, NULL, err);
}

int pyexec_health_check_reason(pyexec_client *c, const char *service, pyexec_health *out,
                               char **reason, pyexec_error *err) {
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    if (service)
        req.service = (char *)service;
    char *why = NULL;
    ProtobufCMessage *m = call_unary_trailer(
        c, METHOD_HEALTH, &req.base, &grpc__health__v1__health_check_response__descriptor,
        deadline_after(c->call_timeout_ms), HEALTH_REASON_KEY, &why, err);
    if (!m)
        return -1;
    *out = (pyexec_health)((Grpc__Health__V1__HealthCheckResponse *)m)->status;
    protobuf_c_message_free_unpacked(m, NULL);
    if (reason)
        *reason = why && why[0] ? strdup(why) : NULL;
    gpr_free(why);
    return 0;
}

/* ---- results and names --------------------------------------------------- */

void pyexec_result_free(pyexec_result *r) {
    if (!r)
        return;
    free(r->execution_id);
    free(r->error);
    free(r->stdout_buf);
    free(r->stderr_buf);
    free(r->result);
    free(r->error_type);
    free(r->error_message);
    free(r);
}

bool pyexec_status_is_terminal(pyexec_status s) {
    return s == PYEXEC_STATUS_COMPLETED || s == PYEXEC_STATUS_FAILED || s == PYEXEC_STATUS_KILLED;
}

const char *pyexec_status_name(pyexec_status s) {
    switch (s) {
    case PYEXEC_STATUS_PENDING: return "pending";
    case PYEXEC_STATUS_RUNNING: return "running";
    case PYEXEC_STATUS_COMPLETED: return "completed";
    case PYEXEC_STATUS_FAILED: return "failed";
    case PYEXEC_STATUS_KILLED: return "killed";
    case PYEXEC_STATUS_UNSPECIFIED: break;
    }
    return "unspecified";
}

const char *pyexec_reason_name(pyexec_reason r) {
    switch (r) {
    case PYEXEC_REASON_EXITED: return "exited";
    case PYEXEC_REASON_TIMEOUT: return "timeout";
    case PYEXEC_REASON_MEMORY_LIMIT: return "memory_limit";
    case PYEXEC_REASON_OUTPUT_LIMIT: return "output_limit";
    case PYEXEC_REASON_KILLED: return "killed";
    case PYEXEC_REASON_CLIENT_CANCELLED: return "client_cancelled";
    case PYEXEC_REASON_LOST: return "lost";
    case PYEXEC_REASON_SANDBOX_ERROR: return "sandbox_error";
    case PYEXEC_REASON_UNSPECIFIED: break;
    }
    return "unspecified";
}

const char *pyexec_health_name(pyexec_health h) {
    switch (h) {
    case PYEXEC_HEALTH_SERVING: return "SERVING";
    case PYEXEC_HEALTH_NOT_SERVING: return "NOT_SERVING";
    case PYEXEC_HEALTH_SERVICE_UNKNOWN: return "SERVICE_UNKNOWN";
    case PYEXEC_HEALTH_UNKNOWN: break;
    }
    return "UNKNOWN";
}
