#include "server/rpc/call.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>

#include "server/base/cleanup.h"
#include "server/base/clock.h"
#include "server/base/id.h"
#include "server/base/log.h"
#include "server/rpc/status.h"

static void on_close_done(px_tag *tag, bool ok) {
    (void)ok;
    px_call *call = container_of(tag, px_call, close_tag);
    if (call->ops->on_close)
        call->ops->on_close(call, call->cancelled != 0);
    px_call_unref(call);
}

/* Counts `len` bytes of a final message against the server's reply budget.
 * Returns false (nothing counted) if they do not fit. */
bool px_rpc_reserve_reply(px_rpc_server *srv, int64_t len) {
    int64_t max = srv->cfg->max_reply_queued_bytes;
    int64_t n = atomic_load(&srv->reply_bytes);
    do {
        if (len > max - n)
            return false;
    } while (!atomic_compare_exchange_weak(&srv->reply_bytes, &n, n + len));
    return true;
}

void px_rpc_release_reply(px_rpc_server *srv, int64_t len) {
    atomic_fetch_sub(&srv->reply_bytes, len);
}

static bool reserve_reply(px_rpc_server *srv, int64_t len) {
    return px_rpc_reserve_reply(srv, len);
}

static void release_reply(px_call *call) {
    if (call->final_reserved) {
        atomic_fetch_sub(&call->srv->reply_bytes, call->final_reserved);
        call->final_reserved = 0;
    }
}

static void on_final_done(px_tag *tag, bool ok) {
    px_call *call = container_of(tag, px_call, final_tag);
    pthread_mutex_lock(&call->mu);
    grpc_byte_buffer *buf = call->final_buf;
    call->final_buf = NULL;
    release_reply(call);
    pthread_mutex_unlock(&call->mu);
    if (buf)
        grpc_byte_buffer_destroy(buf);
    if (call->ops->on_finished)
        call->ops->on_finished(call, ok);
    px_call_unref(call);
}

static void on_send_done(px_tag *tag, bool ok) {
    px_call *call = container_of(tag, px_call, send_tag);
    pthread_mutex_lock(&call->mu);
    grpc_byte_buffer *buf = call->send_buf;
    call->send_buf = NULL;
    void (*cb)(px_call *, bool) = call->on_sent;
    call->on_sent = NULL;
    pthread_mutex_unlock(&call->mu);
    if (buf)
        grpc_byte_buffer_destroy(buf);
    if (cb)
        cb(call, ok);
    px_call_unref(call);
}

int px_call_init(px_call *call, px_rpc_server *srv, grpc_call *gcall, const px_call_ops *ops) {
    call->srv = srv;
    call->call = gcall;
    call->ops = ops;
    call->started_us = px_now_mono_us();
    pthread_mutex_init(&call->mu, NULL);
    atomic_init(&call->refs, 2); /* the handler's + the close batch's */
    call->close_tag.on_done = on_close_done;
    call->final_tag.on_done = on_final_done;
    call->send_tag.on_done = on_send_done;
    call->final_details = grpc_empty_slice();
    atomic_fetch_add(&srv->live_calls, 1);
    grpc_op op = {
        .op = GRPC_OP_RECV_CLOSE_ON_SERVER,
        .data.recv_close_on_server.cancelled = &call->cancelled,
    };
    pthread_mutex_lock(&call->mu);
    grpc_call_error e = grpc_call_start_batch(gcall, &op, 1, &call->close_tag, NULL);
    pthread_mutex_unlock(&call->mu);
    if (e != GRPC_CALL_OK) {
        px_warn("rpc: start RECV_CLOSE_ON_SERVER: grpc_call_error %d", (int)e);
        atomic_fetch_sub(&call->refs, 1);
        return -1;
    }
    return 0;
}

void *px_call_new(size_t size, px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer **payload,
                  const px_call_ops *ops) {
    px_call *call = calloc(1, size);
    if (!call) {
        grpc_call_unref(gcall);
    } else if (px_call_init(call, srv, gcall, ops) < 0) {
        px_call_unref(call);
        call = NULL;
    }
    if (!call && payload && *payload) {
        grpc_byte_buffer_destroy(*payload);
        *payload = NULL;
    }
    return call;
}

void px_call_ref(px_call *call) {
    atomic_fetch_add(&call->refs, 1);
}

void px_call_unref(px_call *call) {
    if (!call || atomic_fetch_sub(&call->refs, 1) != 1)
        return;
    px_rpc_server *srv = call->srv;
    if (call->ops->destroy)
        call->ops->destroy(call);
    grpc_slice_unref(call->final_details);
    if (call->n_final_trailer) {
        grpc_slice_unref(call->final_trailer.key);
        grpc_slice_unref(call->final_trailer.value);
    }
    grpc_call_unref(call->call);
    pthread_mutex_destroy(&call->mu);
    free(call);
    if (atomic_fetch_sub(&srv->live_calls, 1) == 1) {
        pthread_mutex_lock(&srv->mu);
        pthread_cond_broadcast(&srv->cond);
        pthread_mutex_unlock(&srv->mu);
    }
}

static grpc_byte_buffer *encode(const ProtobufCMessage *msg) {
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice slice = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    grpc_byte_buffer *buf = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return buf;
}

bool px_call_finish(px_call *call, const ProtobufCMessage *msg, grpc_status_code code,
                    const char *details) {
    return px_call_finish_with_trailer(call, msg, code, details, NULL, NULL);
}

void px_call_peer(const px_call *call, char *out, size_t n) {
    char *peer = grpc_call_get_peer(call->call);
    snprintf(out, n, "%s", peer ? peer : "?");
    gpr_free(peer);
}

void px_call_set_tenant(px_call *call, const char *tenant) {
    pthread_mutex_lock(&call->mu);
    snprintf(call->tenant, sizeof call->tenant, "%s", tenant ? tenant : "");
    pthread_mutex_unlock(&call->mu);
}

void px_call_set_execution(px_call *call, const char *id) {
    pthread_mutex_lock(&call->mu);
    snprintf(call->execution_id, sizeof call->execution_id, "%s", id ? id : "");
    pthread_mutex_unlock(&call->mu);
}

/* The access log: one line per call as it ends (its status is sent), with
 * the refusal's message for a call refused (CONTRIBUTING.md, "the boundary
 * logs them once"). Never the request's content: only the method, peer,
 * status and the server's own message (which quotes client strings).
 * Called with call->mu held. */
static void log_access(const px_call *call, grpc_status_code code, const char *details) {
    if (!call->rpc)
        return;
    char peer[128];
    px_call_peer(call, peer, sizeof peer);
    int64_t us = px_now_mono_us() - call->started_us;
    px_log_fields f = {
        .execution_id = call->execution_id[0] ? call->execution_id : NULL,
        .tenant = call->tenant,
        .rpc = call->rpc,
        .peer = peer,
        .code = px_grpc_status_name(code),
        .duration_us = us,
    };
    bool fault = code == GRPC_STATUS_INTERNAL || code == GRPC_STATUS_UNKNOWN;
    px_log_level level = fault ? PX_LOG_WARN : PX_LOG_INFO;
    if (code == GRPC_STATUS_OK)
        px_log_with(level, &f, "rpc: %s from %s: OK; %lld.%03lld ms", call->rpc, peer,
                    (long long)(us / 1000), (long long)(us % 1000));
    else
        px_log_with(level, &f, "rpc: %s from %s: %s: %s; %lld.%03lld ms", call->rpc, peer,
                    px_grpc_status_name(code), details && details[0] ? details : "(no message)",
                    (long long)(us / 1000), (long long)(us % 1000));
}

/* `value` as a text header value: printable ASCII only. */
static grpc_slice header_value(const char *value) {
    size_t n = strlen(value);
    grpc_slice s = grpc_slice_malloc(n);
    uint8_t *p = GRPC_SLICE_START_PTR(s);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        p[i] = c >= 0x20 && c < 0x7f ? c : '?';
    }
    return s;
}

bool px_call_finish_with_trailer(px_call *call, const ProtobufCMessage *msg, grpc_status_code code,
                                 const char *details, const char *key, const char *value) {
    pthread_mutex_lock(&call->mu);
    if (call->finished) {
        pthread_mutex_unlock(&call->mu);
        return false;
    }
    call->finished = true;
    char refusal[PX_ERROR_MSG_MAX];
    if (msg && code == GRPC_STATUS_OK) {
        int64_t len = (int64_t)protobuf_c_message_get_packed_size(msg);
        if (reserve_reply(call->srv, len)) {
            call->final_reserved = len;
        } else {
            snprintf(refusal, sizeof refusal,
                     "%s%sthe reply (%" PRId64 " bytes) does not fit: %" PRId64
                     " bytes of replies are being sent to clients (limit %" PRId64
                     ", --max-reply-queued-bytes); retry later",
                     call->reply_note, call->reply_note[0] ? ": " : "", len,
                     (int64_t)atomic_load(&call->srv->reply_bytes),
                     call->srv->cfg->max_reply_queued_bytes);
            msg = NULL;
            code = GRPC_STATUS_RESOURCE_EXHAUSTED;
            details = refusal;
        }
    }
    log_access(call, code, details);
    if (call->rpc && call->srv->metrics) {
        char labels[96];
        snprintf(labels, sizeof labels, "method=\"%s\",code=\"%s\"", call->rpc,
                 px_grpc_status_name(code));
        px_histogram_observe(
            px_metrics_histogram(call->srv->metrics, "pyexec_rpc_duration_seconds",
                                 "gRPC calls from their start to their final status, by method "
                                 "and status code.",
                                 labels, px_metrics_latency_bounds, px_metrics_latency_bounds_n),
            (double)(px_now_mono_us() - call->started_us) / 1e6);
    }
    if (key && value) {
        /* Released with the call: the batch borrows them until it completes. */
        call->final_trailer.key = grpc_slice_from_copied_string(key);
        call->final_trailer.value = header_value(value);
        call->n_final_trailer = 1;
    }
    grpc_op ops[3];
    size_t n = 0;
    if (!call->initial_md_sent) {
        call->initial_md_sent = true;
        ops[n++] = (grpc_op){.op = GRPC_OP_SEND_INITIAL_METADATA};
    }
    if (msg && code == GRPC_STATUS_OK) {
        call->final_buf = encode(msg);
        ops[n++] = (grpc_op){.op = GRPC_OP_SEND_MESSAGE,
                             .data.send_message.send_message = call->final_buf};
    }
    grpc_slice_unref(call->final_details);
    call->final_details = grpc_slice_from_copied_string(details ? details : "");
    ops[n++] = (grpc_op){
        .op = GRPC_OP_SEND_STATUS_FROM_SERVER,
        .data.send_status_from_server = {.status = code,
                                         .status_details = &call->final_details,
                                         .trailing_metadata_count = call->n_final_trailer,
                                         .trailing_metadata = &call->final_trailer},
    };
    px_call_ref(call);
    grpc_call_error e = grpc_call_start_batch(call->call, ops, n, &call->final_tag, NULL);
    grpc_byte_buffer *buf = NULL;
    if (e != GRPC_CALL_OK) {
        buf = call->final_buf;
        call->final_buf = NULL;
        release_reply(call);
    }
    pthread_mutex_unlock(&call->mu);
    if (e != GRPC_CALL_OK) {
        px_warn("rpc: start final batch: grpc_call_error %d", (int)e);
        if (buf)
            grpc_byte_buffer_destroy(buf);
        px_call_unref(call);
        return false;
    }
    return true;
}

bool px_call_finish_error(px_call *call, const px_error *err) {
    return px_call_finish(call, NULL, px_status_from_code(err->code), err->msg);
}

bool px_call_send_locked(px_call *call, const ProtobufCMessage *msg,
                         void (*on_sent)(px_call *call, bool ok)) {
    grpc_op ops[2];
    size_t n = 0;
    if (!call->initial_md_sent) {
        call->initial_md_sent = true;
        ops[n++] = (grpc_op){.op = GRPC_OP_SEND_INITIAL_METADATA};
    }
    call->send_buf = encode(msg);
    call->on_sent = on_sent;
    ops[n++] = (grpc_op){.op = GRPC_OP_SEND_MESSAGE,
                         .data.send_message.send_message = call->send_buf};
    px_call_ref(call);
    grpc_call_error e = grpc_call_start_batch(call->call, ops, n, &call->send_tag, NULL);
    if (e != GRPC_CALL_OK) {
        grpc_byte_buffer_destroy(call->send_buf);
        call->send_buf = NULL;
        call->on_sent = NULL;
        atomic_fetch_sub(&call->refs, 1);
        return false;
    }
    return true;
}

/* Reads a varint at p[*i] (len bytes in all). Returns false if malformed. */
static bool read_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *i < len; shift += 7) {
        uint8_t b = p[(*i)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* True if a string field of `desc`, at any depth of nested messages, holds
 * a NUL byte in the encoded message p[0..len). protobuf-c keeps strings
 * NUL-terminated, so such a string would silently lose its tail: the raw
 * bytes are the only place to see it. Malformed input returns true. */
static bool string_has_nul(const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t len,
                           int depth) {
    if (depth > 16)
        return true;
    size_t i = 0;
    while (i < len) {
        uint64_t key, n;
        if (!read_varint(p, len, &i, &key))
            return true;
        switch (key & 7) {
        case 0:
            if (!read_varint(p, len, &i, &n))
                return true;
            break;
        case 1:
            if (len - i < 8)
                return true;
            i += 8;
            break;
        case 5:
            if (len - i < 4)
                return true;
            i += 4;
            break;
        case 2: {
            if (!read_varint(p, len, &i, &n) || n > len - i)
                return true;
            const ProtobufCFieldDescriptor *f = key >> 3 <= UINT32_MAX
                                                    ? protobuf_c_message_descriptor_get_field(
                                                          desc, (unsigned)(key >> 3))
                                                    : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(p + i, 0, (size_t)n))
                return true;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                string_has_nul(f->descriptor, p + i, (size_t)n, depth + 1))
                return true;
            i += (size_t)n;
            break;
        }
        default: return true; /* groups are not used by proto3 */
        }
    }
    return false;
}

ProtobufCMessage *px_call_decode(grpc_byte_buffer *payload, const ProtobufCMessageDescriptor *desc,
                                 px_error *err) {
    if (!payload) {
        px_error_set(err, PX_E_INVALID, "request: no message");
        return NULL;
    }
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, payload)) {
        grpc_byte_buffer_destroy(payload);
        px_error_set(err, PX_E_INVALID, "request: cannot read message");
        return NULL;
    }
    grpc_slice slice = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    grpc_byte_buffer_destroy(payload);
    size_t len = GRPC_SLICE_LENGTH(slice);
    const uint8_t *bytes = GRPC_SLICE_START_PTR(slice);
    ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, len, bytes);
    if (!msg) {
        grpc_slice_unref(slice);
        px_error_set(err, PX_E_INVALID, "request: not a valid %s message", desc->name);
        return NULL;
    }
    /* Refuse a string with a NUL byte rather than run something other than
     * what was sent (protobuf-c would cut the string there). */
    bool nul = string_has_nul(desc, bytes, len, 0);
    grpc_slice_unref(slice);
    if (nul) {
        protobuf_c_message_free_unpacked(msg, NULL);
        px_error_set(err, PX_E_INVALID, "request: a string field contains a NUL byte");
        return NULL;
    }
    return msg;
}

int px_check_id(const char *id, px_error *err) {
    return px_id_check(id, err);
}
