/*
 * TLS of the gRPC port (internal to server/rpc): the server credentials,
 * built from the PEM files of --tls-cert, --tls-key and --tls-client-ca,
 * and their rotation.
 *
 * The credentials use the C core's certificate-config fetcher: the core
 * asks for the current files before each new handshake, and px_tls hands
 * it a new config only after px_tls_reload read new files. Connections
 * already open keep theirs: rotation drops nothing.
 */
#ifndef PYEXEC_RPC_TLS_H
#define PYEXEC_RPC_TLS_H

#include <grpc/grpc_security.h>

#include "server/base/config.h"
#include "server/base/error.h"

typedef struct px_tls px_tls;

/* Reads and checks the files `cfg` names. Returns NULL with `err` set
 * (PX_E_INVALID naming the flag and file) if one cannot be read or holds
 * no PEM block of the kind it should. Borrows `cfg`. */
px_tls *px_tls_new(const px_config *cfg, px_error *err);

/* New server credentials served from `t` (which must outlive every server
 * they are added to). With --tls-client-ca, clients must present a
 * certificate that CA signed; otherwise none is asked for. */
grpc_server_credentials *px_tls_server_credentials(px_tls *t);

/* Re-reads the files; new handshakes use them from now on. On an error
 * (`err` set, naming the file) the old ones stay in use. Any thread. */
int px_tls_reload(px_tls *t, px_error *err);

/* NULL-safe. Only after the server using the credentials is destroyed. */
void px_tls_free(px_tls *t);

#endif
