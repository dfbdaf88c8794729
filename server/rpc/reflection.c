/*
 * gRPC server reflection: grpc.reflection.v1.ServerReflection and
 * grpc.reflection.v1alpha.ServerReflection, method ServerReflectionInfo.
 *
 * What is served: the FileDescriptorSet that protoc wrote at build time for
 * the protos of every exposed service plus their imports
 * (//proto:descriptor_set_c, px_descriptor_set[]). px_reflection_new indexes
 * it once, when the server is created: each file's name, its serialized
 * bytes (borrowed from the array, never re-encoded), its dependencies, and
 * the fully qualified symbols it defines (messages including nested ones,
 * enums, services, methods as "pkg.Service.Method"). The index is immutable
 * afterwards, so every call reads it without a lock.
 *
 * The two versions have identical messages (only the package differs), so
 * both are decoded and encoded with the v1 types: the bytes on the wire are
 * the same.
 *
 * Answers, one response per request, in order:
 *   list_services                  the services in the set
 *   file_by_filename               the file, then its transitive dependencies
 *   file_containing_symbol         the defining file, then its dependencies
 *   file_containing_extension      NOT_FOUND: the served files declare no
 *                                  extensions (checked when indexing)
 *   all_extension_numbers_of_type  an empty list for a known message type,
 *                                  NOT_FOUND otherwise
 * An unknown file or symbol is an error_response (NOT_FOUND) and the stream
 * goes on. Each file appears at most once in a response, the requested one
 * first. Every response echoes `host` as valid_host and the request as
 * original_request.
 *
 * Per call, a state machine driven by completions on the queue threads:
 *
 *   RECEIVING --request--> SENDING --sent--> RECEIVING
 *   RECEIVING --half-close (NULL message)--> FINISHING (status OK) --> done
 *   any state --cancelled / batch failed--> done (the call is just released)
 *   RECEIVING --request too large or not a request--> FINISHING (error)
 *
 * Exactly one batch of RECV_MESSAGE or SEND_MESSAGE is outstanding at a
 * time, so a client can make the server hold one request and one response,
 * never a backlog. Limits on what a client controls: the request size
 * (REFLECTION_REQUEST_MAX, below the server's message limit because each
 * response echoes its request); the work per request is bounded by the size
 * of the built-in set (dependency walks are iterative and visit each file
 * once). Nothing here blocks: every answer is computed from the index on the
 * queue thread that received the request.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "proto/descriptor_set_c.h"
#include "server/base/cleanup.h"
#include "server/base/log.h"
#include "server/base/quote.h"
#include "server/rpc/call.h"
#include "server/rpc/status.h"

/* The largest request accepted (bytes); a larger one ends the call with
 * RESOURCE_EXHAUSTED. Names and hosts are far shorter. */
#define REFLECTION_REQUEST_MAX (64 * 1024)

/* Message nesting deeper than this makes the built-in set unusable. */
#define REFLECTION_NESTING_MAX 32

/* ---- the index ---- */

enum symbol_kind { SYM_MESSAGE, SYM_ENUM, SYM_SERVICE, SYM_METHOD };

typedef struct refl_symbol {
    char *name;  /* fully qualified, no leading dot; owned */
    size_t file; /* index into files */
    enum symbol_kind kind;
} refl_symbol;

typedef struct refl_file {
    const uint8_t *data; /* the serialized FileDescriptorProto; static */
    size_t len;
    Google__Protobuf__FileDescriptorProto *fdp; /* unpacked; owned */
    size_t *deps;                               /* indices into files; owned */
    size_t n_deps;
} refl_file;

struct px_reflection {
    refl_file *files;
    size_t n_files;
    refl_symbol *symbols; /* sorted by name */
    size_t n_symbols;
    size_t cap_symbols;
    const char **services; /* borrowed from symbols, in file order */
    size_t n_services;
};

void px_reflection_free(px_reflection *r) {
    if (!r)
        return;
    for (size_t i = 0; i < r->n_files; i++) {
        if (r->files[i].fdp)
            protobuf_c_message_free_unpacked(&r->files[i].fdp->base, NULL);
        free(r->files[i].deps);
    }
    for (size_t i = 0; i < r->n_symbols; i++)
        free(r->symbols[i].name);
    free(r->files);
    free(r->symbols);
    free(r->services);
    free(r);
}

PX_DEFINE_CLEANUP(px_reflection, px_reflection_free)

/* Reads a base-128 varint at *p (< end); advances *p. */
static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return -1;
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* Splits the FileDescriptorSet into its files without re-encoding them: the
 * set is `repeated FileDescriptorProto file = 1`, nothing else. */
static int split_set(px_reflection *r, const uint8_t *set, size_t len, px_error *err) {
    for (int pass = 0; pass < 2; pass++) {
        const uint8_t *p = set, *end = set + len;
        size_t n = 0;
        while (p < end) {
            uint64_t key, flen;
            if (read_varint(&p, end, &key) < 0 || key != ((1u << 3) | 2u) ||
                read_varint(&p, end, &flen) < 0 || flen > (uint64_t)(end - p))
                return px_error_set(err, PX_E_INTERNAL, "malformed descriptor set at byte %zu",
                                    (size_t)(p - set));
            if (pass == 1) {
                r->files[n].data = p;
                r->files[n].len = (size_t)flen;
            }
            p += flen;
            n++;
        }
        if (pass == 0) {
            r->files = calloc(n ? n : 1, sizeof *r->files);
            if (!r->files)
                return px_error_set(err, PX_E_INTERNAL, "out of memory");
            r->n_files = n;
        }
    }
    return 0;
}

static int add_symbol(px_reflection *r, const char *scope, const char *name, size_t file,
                      enum symbol_kind kind, px_error *err) {
    if (!name || !name[0])
        return px_error_set(err, PX_E_INTERNAL, "an unnamed element in scope '%s'", scope);
    if (r->n_symbols == r->cap_symbols) {
        size_t cap = r->cap_symbols ? 2 * r->cap_symbols : 64;
        refl_symbol *grown = realloc(r->symbols, cap * sizeof *grown);
        if (!grown)
            return px_error_set(err, PX_E_INTERNAL, "out of memory");
        r->symbols = grown;
        r->cap_symbols = cap;
    }
    char *full = NULL;
    if (scope[0] == '\0')
        full = strdup(name);
    else if (asprintf(&full, "%s.%s", scope, name) < 0)
        full = NULL;
    if (!full)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    r->symbols[r->n_symbols++] = (refl_symbol){.name = full, .file = file, .kind = kind};
    return 0;
}

static int add_enums(px_reflection *r, const char *scope, Google__Protobuf__EnumDescriptorProto **e,
                     size_t n, size_t file, px_error *err) {
    for (size_t i = 0; i < n; i++)
        if (add_symbol(r, scope, e[i]->name, file, SYM_ENUM, err) < 0)
            return -1;
    return 0;
}

/* Adds messages and, recursively, their nested messages and enums. The
 * depth is that of the built-in protos, capped all the same. */
static int add_messages(px_reflection *r, const char *scope, Google__Protobuf__DescriptorProto **m,
                        size_t n, size_t file, int depth, px_error *err) {
    if (depth > REFLECTION_NESTING_MAX)
        return px_error_set(err, PX_E_INTERNAL, "messages nested deeper than %d in '%s'",
                            REFLECTION_NESTING_MAX, scope);
    for (size_t i = 0; i < n; i++) {
        if (m[i]->n_extension > 0)
            return px_error_set(err, PX_E_INTERNAL, "'%s.%s' declares extensions", scope,
                                m[i]->name ? m[i]->name : "");
        if (add_symbol(r, scope, m[i]->name, file, SYM_MESSAGE, err) < 0)
            return -1;
        const char *self = r->symbols[r->n_symbols - 1].name;
        if (add_enums(r, self, m[i]->enum_type, m[i]->n_enum_type, file, err) < 0 ||
            add_messages(r, self, m[i]->nested_type, m[i]->n_nested_type, file, depth + 1, err) < 0)
            return -1;
    }
    return 0;
}

static int add_services(px_reflection *r, const char *scope,
                        Google__Protobuf__ServiceDescriptorProto **s, size_t n, size_t file,
                        px_error *err) {
    for (size_t i = 0; i < n; i++) {
        if (add_symbol(r, scope, s[i]->name, file, SYM_SERVICE, err) < 0)
            return -1;
        const char *self = r->symbols[r->n_symbols - 1].name;
        for (size_t k = 0; k < s[i]->n_method; k++)
            if (add_symbol(r, self, s[i]->method[k]->name, file, SYM_METHOD, err) < 0)
                return -1;
    }
    return 0;
}

static int find_file_index(const px_reflection *r, const char *name, size_t *out) {
    for (size_t i = 0; i < r->n_files; i++) {
        if (strcmp(r->files[i].fdp->name, name) == 0) {
            *out = i;
            return 0;
        }
    }
    return -1;
}

static int compare_symbols(const void *a, const void *b) {
    return strcmp(((const refl_symbol *)a)->name, ((const refl_symbol *)b)->name);
}

px_reflection *px_reflection_new(px_error *err) {
    __attribute__((cleanup(px_reflection_freep))) px_reflection *r = calloc(1, sizeof *r);
    if (!r) {
        px_error_set(err, PX_E_INTERNAL, "reflection: out of memory");
        return NULL;
    }
    if (split_set(r, px_descriptor_set, px_descriptor_set_len, err) < 0) {
        px_error_wrap(err, "reflection");
        return NULL;
    }
    for (size_t i = 0; i < r->n_files; i++) {
        refl_file *f = &r->files[i];
        f->fdp = google__protobuf__file_descriptor_proto__unpack(NULL, f->len, f->data);
        if (!f->fdp || !f->fdp->name || !f->fdp->name[0]) {
            px_error_set(err, PX_E_INTERNAL, "reflection: file %zu of the descriptor set: %s", i,
                         f->fdp ? "no name" : "does not parse");
            return NULL;
        }
        if (f->fdp->n_extension > 0) {
            px_error_set(err, PX_E_INTERNAL, "reflection: '%s' declares extensions", f->fdp->name);
            return NULL;
        }
    }
    for (size_t i = 0; i < r->n_files; i++) {
        Google__Protobuf__FileDescriptorProto *fdp = r->files[i].fdp;
        const char *pkg = fdp->package ? fdp->package : "";
        if (add_messages(r, pkg, fdp->message_type, fdp->n_message_type, i, 0, err) < 0 ||
            add_enums(r, pkg, fdp->enum_type, fdp->n_enum_type, i, err) < 0 ||
            add_services(r, pkg, fdp->service, fdp->n_service, i, err) < 0) {
            px_error_wrap(err, "reflection: '%s'", fdp->name);
            return NULL;
        }
        r->files[i].deps = calloc(fdp->n_dependency ? fdp->n_dependency : 1, sizeof(size_t));
        if (!r->files[i].deps) {
            px_error_set(err, PX_E_INTERNAL, "reflection: out of memory");
            return NULL;
        }
        for (size_t k = 0; k < fdp->n_dependency; k++) {
            if (find_file_index(r, fdp->dependency[k], &r->files[i].deps[k]) < 0) {
                px_error_set(err, PX_E_INTERNAL,
                             "reflection: '%s' imports '%s', which is not in the set", fdp->name,
                             fdp->dependency[k]);
                return NULL;
            }
        }
        r->files[i].n_deps = fdp->n_dependency;
    }

    /* The service list keeps the set's order; it is taken before sorting
     * moves the symbols, so it holds the names, which do not move. */
    r->services = calloc(r->n_symbols ? r->n_symbols : 1, sizeof *r->services);
    if (!r->services) {
        px_error_set(err, PX_E_INTERNAL, "reflection: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < r->n_symbols; i++)
        if (r->symbols[i].kind == SYM_SERVICE)
            r->services[r->n_services++] = r->symbols[i].name;
    qsort(r->symbols, r->n_symbols, sizeof *r->symbols, compare_symbols);
    for (size_t i = 1; i < r->n_symbols; i++) {
        if (strcmp(r->symbols[i - 1].name, r->symbols[i].name) == 0) {
            px_error_set(err, PX_E_INTERNAL, "reflection: '%s' is defined twice",
                         r->symbols[i].name);
            return NULL;
        }
    }
    return TAKE_PTR(r);
}

static const refl_symbol *find_symbol(const px_reflection *r, const char *name) {
    refl_symbol key = {.name = (char *)name};
    return bsearch(&key, r->symbols, r->n_symbols, sizeof *r->symbols, compare_symbols);
}

/* ---- answers ---- */

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_request;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_response;

#define REQUEST_CASE(x) GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_##x
#define RESPONSE_CASE(x) GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_##x

/* What one response points to; released by answer_release. */
typedef struct answer {
    refl_response resp;
    Grpc__Reflection__V1__FileDescriptorResponse files;
    Grpc__Reflection__V1__ListServiceResponse list;
    Grpc__Reflection__V1__ExtensionNumberResponse ext;
    Grpc__Reflection__V1__ErrorResponse error;
    px_error err;
    ProtobufCBinaryData *blobs;
    Grpc__Reflection__V1__ServiceResponse *service_msgs;
    Grpc__Reflection__V1__ServiceResponse **service_ptrs;
} answer;

static void answer_release(answer *a) {
    free(a->blobs);
    free(a->service_msgs);
    free(a->service_ptrs);
}

static void answer_error(answer *a) {
    a->error = (Grpc__Reflection__V1__ErrorResponse)GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
    a->error.error_code = (int32_t)px_status_from_code(a->err.code);
    a->error.error_message = a->err.msg;
    a->resp.message_response_case = RESPONSE_CASE(ERROR_RESPONSE);
    a->resp.error_response = &a->error;
}

/* The file `root` followed by every file it depends on, transitively, each
 * once: an iterative walk over at most n_files files. */
static int answer_files(answer *a, const px_reflection *r, size_t root) {
    _cleanup_free_ bool *seen = calloc(r->n_files, sizeof *seen);
    _cleanup_free_ size_t *stack = calloc(r->n_files, sizeof *stack);
    a->blobs = calloc(r->n_files, sizeof *a->blobs);
    if (!seen || !stack || !a->blobs)
        return px_error_set(&a->err, PX_E_INTERNAL, "out of memory");
    size_t n = 0, top = 0;
    stack[top++] = root;
    seen[root] = true;
    while (top > 0) {
        const refl_file *f = &r->files[stack[--top]];
        a->blobs[n++] = (ProtobufCBinaryData){.len = f->len, .data = (uint8_t *)f->data};
        for (size_t k = f->n_deps; k-- > 0;) {
            if (!seen[f->deps[k]]) {
                seen[f->deps[k]] = true;
                stack[top++] = f->deps[k];
            }
        }
    }
    a->files = (Grpc__Reflection__V1__FileDescriptorResponse)
        GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
    a->files.n_file_descriptor_proto = n;
    a->files.file_descriptor_proto = a->blobs;
    a->resp.message_response_case = RESPONSE_CASE(FILE_DESCRIPTOR_RESPONSE);
    a->resp.file_descriptor_response = &a->files;
    return 0;
}

static int answer_services(answer *a, const px_reflection *r) {
    size_t n = r->n_services;
    a->service_msgs = calloc(n ? n : 1, sizeof *a->service_msgs);
    a->service_ptrs = calloc(n ? n : 1, sizeof *a->service_ptrs);
    if (!a->service_msgs || !a->service_ptrs)
        return px_error_set(&a->err, PX_E_INTERNAL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        a->service_msgs[i] = (Grpc__Reflection__V1__ServiceResponse)
            GRPC__REFLECTION__V1__SERVICE_RESPONSE__INIT;
        a->service_msgs[i].name = (char *)r->services[i];
        a->service_ptrs[i] = &a->service_msgs[i];
    }
    a->list = (Grpc__Reflection__V1__ListServiceResponse)
        GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
    a->list.n_service = n;
    a->list.service = a->service_ptrs;
    a->resp.message_response_case = RESPONSE_CASE(LIST_SERVICES_RESPONSE);
    a->resp.list_services_response = &a->list;
    return 0;
}

/* Strips the optional leading dot of a fully qualified name. */
static const char *unqualified(const char *name) {
    return name[0] == '.' ? name + 1 : name;
}

static int answer_request(answer *a, const px_reflection *r, const refl_request *req) {
    size_t file;
    const refl_symbol *sym;
    px_quoted q;
    switch (req->message_request_case) {
    case REQUEST_CASE(LIST_SERVICES): return answer_services(a, r);
    case REQUEST_CASE(FILE_BY_FILENAME):
        if (find_file_index(r, req->file_by_filename, &file) < 0)
            return px_error_set(&a->err, PX_E_NOT_FOUND, "unknown file '%s'",
                                px_quote_str(&q, req->file_by_filename));
        return answer_files(a, r, file);
    case REQUEST_CASE(FILE_CONTAINING_SYMBOL):
        if (!(sym = find_symbol(r, unqualified(req->file_containing_symbol))))
            return px_error_set(&a->err, PX_E_NOT_FOUND, "unknown symbol '%s'",
                                px_quote_str(&q, req->file_containing_symbol));
        return answer_files(a, r, sym->file);
    case REQUEST_CASE(FILE_CONTAINING_EXTENSION): {
        const Grpc__Reflection__V1__ExtensionRequest *ext = req->file_containing_extension;
        return px_error_set(&a->err, PX_E_NOT_FOUND, "no extension %d of '%s'",
                            ext ? (int)ext->extension_number : 0,
                            px_quote_str(&q, ext ? ext->containing_type : ""));
    }
    case REQUEST_CASE(ALL_EXTENSION_NUMBERS_OF_TYPE):
        sym = find_symbol(r, unqualified(req->all_extension_numbers_of_type));
        if (!sym || sym->kind != SYM_MESSAGE)
            return px_error_set(&a->err, PX_E_NOT_FOUND, "unknown message type '%s'",
                                px_quote_str(&q, req->all_extension_numbers_of_type));
        /* The served files declare no extensions (px_reflection_new). */
        a->ext = (Grpc__Reflection__V1__ExtensionNumberResponse)
            GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
        a->ext.base_type_name = sym->name;
        a->resp.message_response_case = RESPONSE_CASE(ALL_EXTENSION_NUMBERS_RESPONSE);
        a->resp.all_extension_numbers_response = &a->ext;
        return 0;
    default:
        return px_error_set(&a->err, PX_E_INVALID,
                            "request: none of the known message_request fields is set");
    }
}

/* ---- the call ---- */

typedef struct refl_call {
    px_call base; /* first: freed by px_call_unref */
    px_tag recv_tag;
    grpc_byte_buffer *recv_buf; /* written by the core for RECV_MESSAGE */
} refl_call;

static void on_recv(px_tag *tag, bool ok);

/* Asks for the next request. The caller holds a reference. */
static void start_recv(refl_call *c) {
    pthread_mutex_lock(&c->base.mu);
    if (c->base.finished) {
        pthread_mutex_unlock(&c->base.mu);
        return;
    }
    grpc_op op = {
        .op = GRPC_OP_RECV_MESSAGE,
        .data.recv_message.recv_message = &c->recv_buf,
    };
    px_call_ref(&c->base);
    grpc_call_error e = grpc_call_start_batch(c->base.call, &op, 1, &c->recv_tag, NULL);
    pthread_mutex_unlock(&c->base.mu);
    if (e != GRPC_CALL_OK) {
        px_warn("reflection: start RECV_MESSAGE: grpc_call_error %d", (int)e);
        px_call_unref(&c->base);
        px_error err = PX_ERROR_INIT;
        px_error_set(&err, PX_E_INTERNAL, "reflection: cannot read the next request");
        px_call_finish_error(&c->base, &err);
    }
}

static void on_sent(px_call *call, bool ok) {
    /* Not ok: the call is over (cancelled); the last batch releases it. */
    if (ok)
        start_recv((refl_call *)call);
}

/* Answers one request (takes ownership of `buf`): sends the response, or
 * finishes the call if the request is unacceptable. */
static void answer_one(refl_call *c, grpc_byte_buffer *buf) {
    px_error err = PX_ERROR_INIT;
    size_t len = grpc_byte_buffer_length(buf);
    if (len > REFLECTION_REQUEST_MAX) {
        grpc_byte_buffer_destroy(buf);
        px_error_set(&err, PX_E_EXHAUSTED, "reflection request: %zu bytes is above the limit %d",
                     len, REFLECTION_REQUEST_MAX);
        px_call_finish_error(&c->base, &err);
        return;
    }
    refl_request *req = (refl_request *)px_call_decode(
        buf, &grpc__reflection__v1__server_reflection_request__descriptor, &err);
    if (!req) {
        px_error_wrap(&err, "reflection");
        px_call_finish_error(&c->base, &err);
        return;
    }
    answer a = {
        .resp = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT,
        .err = PX_ERROR_INIT,
    };
    a.resp.valid_host = req->host;
    a.resp.original_request = req;
    if (answer_request(&a, c->base.srv->reflection, req) < 0)
        answer_error(&a);

    pthread_mutex_lock(&c->base.mu);
    bool sent = c->base.finished || px_call_send_locked(&c->base, &a.resp.base, on_sent);
    pthread_mutex_unlock(&c->base.mu);
    answer_release(&a);
    protobuf_c_message_free_unpacked(&req->base, NULL);
    if (!sent) {
        px_error_set(&err, PX_E_INTERNAL, "reflection: cannot send the response");
        px_call_finish_error(&c->base, &err);
    }
}

static void on_recv(px_tag *tag, bool ok) {
    refl_call *c = container_of(tag, refl_call, recv_tag);
    grpc_byte_buffer *buf = TAKE_PTR(c->recv_buf);
    if (!ok) {
        /* The call is cancelled or broken: nothing more to say. */
        if (buf)
            grpc_byte_buffer_destroy(buf);
    } else if (!buf) {
        /* The client half-closed: every request is answered. */
        px_call_finish(&c->base, NULL, GRPC_STATUS_OK, NULL);
    } else {
        answer_one(c, buf);
    }
    px_call_unref(&c->base);
}

void px_handle_reflection(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload) {
    static const px_call_ops ops = {0};
    if (payload)
        grpc_byte_buffer_destroy(payload);
    refl_call *c = px_call_new(sizeof *c, srv, gcall, NULL, &ops);
    if (!c)
        return;
    c->recv_tag.on_done = on_recv;
    start_recv(c);
    px_call_unref(&c->base);
}
