/* The one place that maps px_code to a gRPC status code (CONTRIBUTING.md,
 * "Style, by example"). */
#ifndef PYEXEC_RPC_STATUS_H
#define PYEXEC_RPC_STATUS_H

#include <grpc/status.h>

#include "server/base/error.h"

grpc_status_code px_status_from_code(px_code code);

/* "INVALID_ARGUMENT", ...: the code's name as gRPC spells it (for logs).
 * Never NULL. */
const char *px_grpc_status_name(grpc_status_code code);

#endif
