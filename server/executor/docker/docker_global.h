/*
 * Process-wide initialisation of the HTTP library the Docker back-end uses.
 * main() (or a test) calls px_docker_global_init() once before starting any
 * thread, and px_docker_global_cleanup() once after the last back-end is
 * destroyed; this keeps the library's name out of every other module.
 */
#ifndef PYEXEC_EXECUTOR_DOCKER_GLOBAL_H
#define PYEXEC_EXECUTOR_DOCKER_GLOBAL_H

#include "server/base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returns 0, or -1 with `err` set (PX_E_INTERNAL). Not thread-safe. */
int px_docker_global_init(px_error *err);

/* Not thread-safe. */
void px_docker_global_cleanup(void);

#ifdef __cplusplus
}
#endif

#endif
