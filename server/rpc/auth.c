/*
 * Who is calling: the tenant of a call (gRPC) or request (the HTTP door).
 *
 *   - An "authorization: Bearer TOKEN" header names the tenant whose hash
 *     --auth-tokens lists; any other token is UNAUTHENTICATED. (A server
 *     without --auth-tokens ignores the header.)
 *   - Without one, under mutual TLS, the client certificate's subject (as
 *     the gRPC core prints it, e.g. "CN=alice,O=Example") is the tenant.
 *   - Otherwise a server with --auth-tokens answers UNAUTHENTICATED, and
 *     one without has a single, nameless tenant ("").
 *
 * Health and reflection never ask (server.c calls this for the executor's
 * methods only).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <grpc/grpc_security.h>
#include <grpc/slice.h>

#include "server/base/tokens.h"
#include "server/rpc/call.h"

#define BEARER "Bearer "

int px_rpc_authenticate(px_rpc_server *srv, const char *authorization, size_t len,
                        const char *cert_subject, char *tenant, px_error *err) {
    tenant[0] = '\0';
    pthread_rwlock_rdlock(&srv->tokens_mu);
    px_tokens *tokens = srv->tokens;
    int rc = 0;
    if (tokens && authorization) {
        size_t skip = strlen(BEARER);
        const char *name = NULL;
        if (len > skip && strncasecmp(authorization, BEARER, skip) == 0)
            name = px_tokens_find(tokens, authorization + skip, len - skip);
        if (name)
            snprintf(tenant, PX_TENANT_MAX, "%s", name);
        else
            rc = px_error_set(err, PX_E_UNAUTHENTICATED,
                              len > skip && strncasecmp(authorization, BEARER, skip) == 0
                                  ? "the bearer token is not one this server knows"
                                  : "the authorization header is not 'Bearer TOKEN'");
    } else if (cert_subject && cert_subject[0]) {
        if (strlen(cert_subject) >= PX_TENANT_MAX)
            rc = px_error_set(err, PX_E_UNAUTHENTICATED,
                              "the client certificate's subject is longer than %d bytes",
                              PX_TENANT_MAX - 1);
        else
            snprintf(tenant, PX_TENANT_MAX, "%s", cert_subject);
    } else if (tokens) {
        rc = px_error_set(err, PX_E_UNAUTHENTICATED,
                          "this server needs a token: send 'authorization: Bearer TOKEN'");
    }
    pthread_rwlock_unlock(&srv->tokens_mu);
    return rc;
}

/* The subject of the client's certificate, when the connection is mutual
 * TLS, into `out` ("" otherwise). */
static void cert_subject(px_rpc_server *srv, grpc_call *gcall, char *out, size_t n) {
    out[0] = '\0';
    if (!srv->cfg->tls_client_ca[0])
        return;
    grpc_auth_context *ctx = grpc_call_auth_context(gcall);
    if (!ctx)
        return;
    grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(
        ctx, GRPC_X509_SUBJECT_PROPERTY_NAME);
    const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
    if (p && p->value_length < n && !memchr(p->value, '\0', p->value_length)) {
        memcpy(out, p->value, p->value_length);
        out[p->value_length] = '\0';
    }
    grpc_auth_context_release(ctx);
}

int px_auth_call(px_rpc_server *srv, grpc_call *gcall, const grpc_metadata_array *md, char *tenant,
                 px_error *err) {
    const char *authorization = NULL;
    size_t len = 0;
    for (size_t i = 0; i < md->count; i++) {
        if (grpc_slice_str_cmp(md->metadata[i].key, "authorization") == 0) {
            authorization = (const char *)GRPC_SLICE_START_PTR(md->metadata[i].value);
            len = GRPC_SLICE_LENGTH(md->metadata[i].value);
            break;
        }
    }
    char subject[PX_TENANT_MAX + 1];
    cert_subject(srv, gcall, subject, sizeof subject);
    return px_rpc_authenticate(srv, authorization, len, subject, tenant, err);
}
