#include "server/http/tls.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/x509.h>

#include "server/base/cleanup.h"
#include "server/base/file.h"

#define PEM_FILE_MAX (1024 * 1024)
#define CHAIN_MAX 16

/* One generation of the files, as GnuTLS wants them. Generations are kept
 * until the door is freed: a handshake in progress may still use the one it
 * was handed (a few KiB per SIGHUP). */
typedef struct tls_set {
    gnutls_pcert_st chain[CHAIN_MAX];
    unsigned n_chain;
    gnutls_privkey_t key;
    gnutls_x509_trust_list_t clients; /* NULL without --tls-client-ca */
    char *client_ca_pem;
    struct tls_set *older;
} tls_set;

struct px_http_tls {
    const px_config *cfg;
    pthread_mutex_t mu;
    tls_set *current; /* under mu */
};

/* The door of this process (see tls.h). */
static px_http_tls *the_tls;

static void set_free(tls_set *s) {
    while (s) {
        tls_set *older = s->older;
        for (unsigned i = 0; i < s->n_chain; i++)
            gnutls_pcert_deinit(&s->chain[i]);
        if (s->key)
            gnutls_privkey_deinit(s->key);
        if (s->clients)
            gnutls_x509_trust_list_deinit(s->clients, 1);
        free(s->client_ca_pem);
        free(s);
        s = older;
    }
}

static int read_pem(const char *flag, const char *path, char **out, size_t *len, px_error *err) {
    char what[64];
    snprintf(what, sizeof what, "%s file", flag);
    return px_file_read(what, path, PEM_FILE_MAX, out, len, err);
}

static tls_set *set_load(const px_config *cfg, px_error *err) {
    tls_set *s = calloc(1, sizeof *s);
    if (!s) {
        px_error_set(err, PX_E_INTERNAL, "out of memory");
        return NULL;
    }
    _cleanup_free_ char *cert = NULL, *key = NULL;
    size_t cert_len = 0, key_len = 0;
    if (read_pem("--tls-cert", cfg->tls_cert, &cert, &cert_len, err) < 0 ||
        read_pem("--tls-key", cfg->tls_key, &key, &key_len, err) < 0)
        goto fail;
    gnutls_datum_t d = {(unsigned char *)cert, (unsigned)cert_len};
    s->n_chain = CHAIN_MAX;
    int rc = gnutls_pcert_list_import_x509_raw(s->chain, &s->n_chain, &d, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || s->n_chain == 0) {
        s->n_chain = 0;
        px_error_set(err, PX_E_INVALID, "--tls-cert file '%s': %s (HTTP door)", cfg->tls_cert,
                     rc < 0 ? gnutls_strerror(rc) : "no certificate");
        goto fail;
    }
    gnutls_datum_t k = {(unsigned char *)key, (unsigned)key_len};
    if ((rc = gnutls_privkey_init(&s->key)) < 0 ||
        (rc = gnutls_privkey_import_x509_raw(s->key, &k, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        explicit_bzero(key, key_len);
        px_error_set(err, PX_E_INVALID, "--tls-key file '%s': %s (HTTP door)", cfg->tls_key,
                     gnutls_strerror(rc));
        goto fail;
    }
    explicit_bzero(key, key_len);
    /* The key must be the certificate's: sign and verify a probe. */
    gnutls_datum_t probe = {(unsigned char *)"pyexec", 6}, sig = {NULL, 0};
    gnutls_pubkey_t pub = s->chain[0].pubkey;
    rc = gnutls_privkey_sign_data(s->key, GNUTLS_DIG_SHA256, 0, &probe, &sig);
    if (rc >= 0) {
        gnutls_sign_algorithm_t algo = gnutls_pk_to_sign(gnutls_pubkey_get_pk_algorithm(pub, NULL),
                                                         GNUTLS_DIG_SHA256);
        rc = gnutls_pubkey_verify_data2(pub, algo, 0, &probe, &sig);
    }
    gnutls_free(sig.data);
    if (rc < 0) {
        px_error_set(err, PX_E_INVALID,
                     "--tls-key file '%s' is not the key of --tls-cert '%s' (HTTP door)",
                     cfg->tls_key, cfg->tls_cert);
        goto fail;
    }
    if (cfg->tls_client_ca[0]) {
        size_t ca_len = 0;
        if (read_pem("--tls-client-ca", cfg->tls_client_ca, &s->client_ca_pem, &ca_len, err) < 0)
            goto fail;
        gnutls_datum_t ca = {(unsigned char *)s->client_ca_pem, (unsigned)ca_len};
        if ((rc = gnutls_x509_trust_list_init(&s->clients, 0)) < 0 ||
            (rc = gnutls_x509_trust_list_add_trust_mem(s->clients, &ca, NULL, GNUTLS_X509_FMT_PEM,
                                                       0, 0)) <= 0) {
            px_error_set(err, PX_E_INVALID, "--tls-client-ca file '%s': %s (HTTP door)",
                         cfg->tls_client_ca, rc < 0 ? gnutls_strerror(rc) : "no certificate");
            goto fail;
        }
    }
    return s;
fail:
    set_free(s);
    return NULL;
}

px_http_tls *px_http_tls_new(const px_config *cfg, px_error *err) {
    px_http_tls *t = calloc(1, sizeof *t);
    if (!t) {
        px_error_set(err, PX_E_INTERNAL, "out of memory");
        return NULL;
    }
    t->cfg = cfg;
    if (!(t->current = set_load(cfg, err))) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    the_tls = t;
    return t;
}

int px_http_tls_reload(px_http_tls *t, px_error *err) {
    tls_set *s = set_load(t->cfg, err);
    if (!s)
        return -1;
    pthread_mutex_lock(&t->mu);
    s->older = t->current;
    t->current = s;
    pthread_mutex_unlock(&t->mu);
    return 0;
}

int px_http_tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                         const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                         gnutls_pcert_st **pcert, unsigned int *pcert_length,
                         gnutls_privkey_t *privkey) {
    (void)session, (void)req_ca_rdn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
    px_http_tls *t = the_tls;
    if (!t)
        return -1;
    pthread_mutex_lock(&t->mu);
    *pcert = t->current->chain;
    *pcert_length = t->current->n_chain;
    *privkey = t->current->key;
    pthread_mutex_unlock(&t->mu);
    return 0;
}

const char *px_http_tls_client_ca_pem(const px_http_tls *t) {
    return t && t->current ? t->current->client_ca_pem : NULL;
}

int px_http_tls_peer_subject(px_http_tls *t, struct MHD_Connection *conn, char *out, size_t n,
                             px_error *err) {
    out[0] = '\0';
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(
        conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t session = info ? (gnutls_session_t)info->tls_session : NULL;
    unsigned n_peer = 0;
    const gnutls_datum_t *peer = session ? gnutls_certificate_get_peers(session, &n_peer) : NULL;
    if (!peer || n_peer == 0)
        return px_error_set(err, PX_E_UNAUTHENTICATED,
                            "a client certificate signed by --tls-client-ca is needed");
    if (n_peer > CHAIN_MAX)
        n_peer = CHAIN_MAX;
    gnutls_x509_crt_t crts[CHAIN_MAX];
    unsigned made = 0;
    int rc = 0;
    for (; made < n_peer && rc >= 0; made++) {
        if ((rc = gnutls_x509_crt_init(&crts[made])) < 0)
            break;
        rc = gnutls_x509_crt_import(crts[made], &peer[made], GNUTLS_X509_FMT_DER);
    }
    unsigned status = 0;
    if (rc >= 0) {
        pthread_mutex_lock(&t->mu);
        rc = gnutls_x509_trust_list_verify_crt(t->current->clients, crts, n_peer, 0, &status, NULL);
        pthread_mutex_unlock(&t->mu);
    }
    gnutls_datum_t dn = {NULL, 0};
    if (rc >= 0 && status == 0)
        rc = gnutls_x509_crt_get_dn3(crts[0], &dn, 0);
    for (unsigned i = 0; i < made; i++)
        gnutls_x509_crt_deinit(crts[i]);
    if (rc < 0 || status != 0) {
        gnutls_free(dn.data);
        return px_error_set(err, PX_E_UNAUTHENTICATED,
                            "the client certificate is not valid for --tls-client-ca%s%s",
                            status & GNUTLS_CERT_EXPIRED ? " (expired)" : "",
                            status & GNUTLS_CERT_SIGNER_NOT_FOUND ? " (another CA's)" : "");
    }
    bool fits = dn.size < n && !memchr(dn.data, '\0', dn.size);
    if (fits) {
        memcpy(out, dn.data, dn.size);
        out[dn.size] = '\0';
    }
    gnutls_free(dn.data);
    if (!fits)
        return px_error_set(err, PX_E_UNAUTHENTICATED,
                            "the client certificate's subject is longer than %zu bytes", n - 1);
    return 0;
}

void px_http_tls_free(px_http_tls *t) {
    if (!t)
        return;
    if (the_tls == t)
        the_tls = NULL;
    set_free(t->current);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
