/*
 * TLS of the HTTP door (private to server/http; GnuTLS, which
 * libmicrohttpd speaks TLS with): the certificate of --tls-cert/--tls-key,
 * handed to each new handshake by libmicrohttpd's certificate callback, so
 * that a reload (SIGHUP) changes what new connections get without dropping
 * any; and, with --tls-client-ca, the check of a client's certificate and
 * its subject (the tenant, as on the gRPC port).
 *
 * libmicrohttpd's callback carries no user data: the process's one door
 * registers its px_http_tls as the current one (px_http_tls_new).
 */
#ifndef PYEXEC_HTTP_TLS_H
#define PYEXEC_HTTP_TLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <stddef.h>

#include "server/base/config.h"
#include "server/base/error.h"

typedef struct px_http_tls px_http_tls;

/* Reads and checks the files `cfg` names (PX_E_INVALID naming the file on
 * an error) and makes it the current one. Borrows `cfg`. */
px_http_tls *px_http_tls_new(const px_config *cfg, px_error *err);

/* Re-reads the files; new handshakes use them. On an error the old ones
 * stay. Any thread. */
int px_http_tls_reload(px_http_tls *t, px_error *err);

/* For MHD_OPTION_HTTPS_CERT_CALLBACK. */
int px_http_tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                         const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                         gnutls_pcert_st **pcert, unsigned int *pcert_length,
                         gnutls_privkey_t *privkey);

/* The client CA file's text, for MHD_OPTION_HTTPS_MEM_TRUST (which makes
 * libmicrohttpd ask clients for a certificate); NULL without one. */
const char *px_http_tls_client_ca_pem(const px_http_tls *t);

/* Mutual TLS: the subject of `conn`'s client certificate ("CN=alice,..."),
 * verified against the current --tls-client-ca (chain and validity), into
 * `out`. Returns 0, or -1 with `err` (PX_E_UNAUTHENTICATED: none, or not
 * valid). */
int px_http_tls_peer_subject(px_http_tls *t, struct MHD_Connection *conn, char *out, size_t n,
                             px_error *err);

void px_http_tls_free(px_http_tls *t); /* NULL-safe; after the daemon stopped */

#endif
