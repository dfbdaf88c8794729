/*
 * Process-wide set-up of the third-party libraries this module owns
 * (libcurl). main() calls px_docker_global_init() once before it starts any
 * thread and px_docker_global_cleanup() once after every Docker back-end was
 * destroyed; the rest of the module never initialises libraries itself.
 * Not thread-safe by design: call them only from main's single thread.
 */
#ifndef PYEXEC_EXECUTOR_DOCKER_GLOBAL_H
#define PYEXEC_EXECUTOR_DOCKER_GLOBAL_H

#include "server/base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Initialises libcurl. Returns 0, or -1 with `err` set (PX_E_INTERNAL). */
int px_docker_global_init(px_error *err);

/* Releases what px_docker_global_init() set up. */
void px_docker_global_cleanup(void);

#ifdef __cplusplus
}
#endif

#endif
