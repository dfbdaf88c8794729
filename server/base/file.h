/*
 * Reading a small file the operator names (certificates, token tables)
 * whole, with a bound on its size.
 */
#ifndef PYEXEC_BASE_FILE_H
#define PYEXEC_BASE_FILE_H

#include <stddef.h>

#include "server/base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads `path` into a new NUL-terminated buffer (*out, free()) of *len
 * bytes. Returns 0, or -1 with `err` set (PX_E_INVALID naming `what` and
 * the path: cannot be opened or read, not a regular file, or more than
 * `max_bytes`). */
int px_file_read(const char *what, const char *path, size_t max_bytes, char **out, size_t *len,
                 px_error *err);

#ifdef __cplusplus
}
#endif

#endif
