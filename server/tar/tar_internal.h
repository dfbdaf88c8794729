/*
 * What the files of the tar module share (not part of tar.h's API):
 *   tar.c   the builder, path and tree checks, tar and file-list input,
 *           queries;
 *   pax.c   the extension headers of a tar entry, checked on the raw bytes;
 *   pack.c  repacking a project as a pax archive.
 */
#ifndef PYEXEC_TAR_INTERNAL_H
#define PYEXEC_TAR_INTERNAL_H

#include <archive.h>
#include <stddef.h>
#include <stdint.h>

#include "server/base/error.h"

#define SYMLINK_MODE 0777u

static inline int set_oom(px_error *err) {
    return px_error_set(err, PX_E_INTERNAL, "out of memory");
}

/* libarchive's message for the last failure on `a`, never NULL. */
static inline const char *archive_message(struct archive *a) {
    const char *msg = archive_error_string(a);
    return msg ? msg : "damaged or truncated archive";
}

/* libarchive hands pax values and GNU long names over as C strings, so a
 * NUL inside one would silently cut the name ("a\0b" becomes "a"). This
 * reads the extension headers of the entry whose first header starts at
 * `pos` of the `len` input bytes at `tar` (libarchive's own position, so
 * entry boundaries are libarchive's) and refuses such values, as every
 * other string with a NUL is refused. Returns 0, or -1 with `err` set. */
int px_tar_check_extension_headers(const uint8_t *tar, size_t len, int64_t pos, px_error *err);

#endif
