#include "server/rpc/tls.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/cleanup.h"
#include "server/base/file.h"
#include "server/base/log.h"

/* Certificate files are small: a chain of a few certificates, a key, a
 * bundle of CAs. */
#define PEM_FILE_MAX (1024 * 1024)

typedef struct pem_set {
    char *cert; /* chain, leaf first */
    char *key;
    char *client_ca; /* NULL: no client certificates */
} pem_set;

struct px_tls {
    const px_config *cfg;
    pthread_mutex_t mu;
    pem_set pem; /* under mu: the files last read */
    bool fresh;  /* under mu: pem has not been handed to the core yet */
};

static void pem_set_clear(pem_set *p) {
    if (p->key)
        explicit_bzero(p->key, strlen(p->key));
    free(p->cert);
    free(p->key);
    free(p->client_ca);
    memset(p, 0, sizeof *p);
}

static int read_pem(const char *flag, const char *path, const char *must_hold, char **out,
                    px_error *err) {
    char what[64];
    snprintf(what, sizeof what, "%s file", flag);
    size_t len = 0;
    if (px_file_read(what, path, PEM_FILE_MAX, out, &len, err) < 0)
        return -1;
    if (!strstr(*out, "-----BEGIN ") || !strstr(*out, must_hold)) {
        free(*out);
        *out = NULL;
        return px_error_set(err, PX_E_INVALID, "%s '%s': no PEM block with '%s'", what, path,
                            must_hold);
    }
    return 0;
}

static int read_files(const px_config *cfg, pem_set *p, px_error *err) {
    memset(p, 0, sizeof *p);
    if (read_pem("--tls-cert", cfg->tls_cert, "CERTIFICATE-----", &p->cert, err) < 0 ||
        read_pem("--tls-key", cfg->tls_key, "PRIVATE KEY-----", &p->key, err) < 0 ||
        (cfg->tls_client_ca[0] && read_pem("--tls-client-ca", cfg->tls_client_ca,
                                           "CERTIFICATE-----", &p->client_ca, err) < 0)) {
        pem_set_clear(p);
        return -1;
    }
    return 0;
}

px_tls *px_tls_new(const px_config *cfg, px_error *err) {
    px_tls *t = calloc(1, sizeof *t);
    if (!t) {
        px_error_set(err, PX_E_INTERNAL, "out of memory");
        return NULL;
    }
    t->cfg = cfg;
    if (read_files(cfg, &t->pem, err) < 0) {
        free(t);
        return NULL;
    }
    t->fresh = true;
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

/* The core's fetcher: called before every new handshake (and once when
 * the port is added). Hands over a config only when the files were read
 * since the last time; the core then builds a new handshaker factory from
 * it and, if that fails (say a key that does not match its certificate),
 * logs it and keeps the old one. */
static grpc_ssl_certificate_config_reload_status
fetch_config(void *user_data, grpc_ssl_server_certificate_config **config) {
    px_tls *t = user_data;
    pthread_mutex_lock(&t->mu);
    if (!t->fresh) {
        pthread_mutex_unlock(&t->mu);
        return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    }
    grpc_ssl_pem_key_cert_pair pair = {.private_key = t->pem.key, .cert_chain = t->pem.cert};
    /* The core copies the strings. It asserts that a fetched config has
     * root certificates even when it asks clients for none: without
     * --tls-client-ca the server's own chain stands in, never used then. */
    *config = grpc_ssl_server_certificate_config_create(
        t->pem.client_ca ? t->pem.client_ca : t->pem.cert, &pair, 1);
    t->fresh = false;
    pthread_mutex_unlock(&t->mu);
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
}

grpc_server_credentials *px_tls_server_credentials(px_tls *t) {
    grpc_ssl_client_certificate_request_type request =
        t->cfg->tls_client_ca[0] ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                 : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
    grpc_ssl_server_credentials_options *opts =
        grpc_ssl_server_credentials_create_options_using_config_fetcher(request, fetch_config, t);
    return grpc_ssl_server_credentials_create_with_options(opts);
}

int px_tls_reload(px_tls *t, px_error *err) {
    pem_set fresh;
    if (read_files(t->cfg, &fresh, err) < 0)
        return -1;
    pthread_mutex_lock(&t->mu);
    pem_set old = t->pem;
    t->pem = fresh;
    t->fresh = true;
    pthread_mutex_unlock(&t->mu);
    pem_set_clear(&old);
    return 0;
}

void px_tls_free(px_tls *t) {
    if (!t)
        return;
    pem_set_clear(&t->pem);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
