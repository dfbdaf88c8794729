/*
 * Repacking a validated project as a restricted pax archive
 * (px_project_pack, rules in tar.h): the project's entries in its order,
 * owner 0:0 and mtime 0.
 */
#include "server/tar/tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/cleanup.h"
#include "server/base/quote.h"
#include "server/tar/tar_internal.h"

static void archive_write_closep(struct archive **a) {
    if (*a)
        archive_write_free(*a);
}

typedef struct out_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} out_buf;

static la_ssize_t write_to_buf(struct archive *a, void *ctx, const void *buf, size_t n) {
    out_buf *out = ctx;
    if (n > out->cap - out->len) {
        size_t cap = out->cap ? out->cap : 16384;
        while (cap - out->len < n) {
            if (cap > SIZE_MAX / 2) {
                archive_set_error(a, ENOMEM, "archive too large");
                return -1;
            }
            cap *= 2;
        }
        uint8_t *grown = realloc(out->data, cap);
        if (!grown) {
            archive_set_error(a, ENOMEM, "out of memory");
            return -1;
        }
        out->data = grown;
        out->cap = cap;
    }
    memcpy(out->data + out->len, buf, n);
    out->len += n;
    return (la_ssize_t)n;
}

static void out_buf_releasep(out_buf *b) {
    free(b->data);
}

static void archive_entry_freep(struct archive_entry **e) {
    if (*e)
        archive_entry_free(*e);
}

static int pack_entry(struct archive *a, struct archive_entry *ae, const px_entry *e,
                      px_error *err) {
    px_quoted q;
    archive_entry_clear(ae);
    archive_entry_copy_pathname(ae, e->path);
    archive_entry_set_uid(ae, 0);
    archive_entry_set_gid(ae, 0);
    archive_entry_set_mtime(ae, 0, 0);
    switch (e->type) {
    case PX_ENTRY_FILE:
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_perm(ae, e->mode & 0777u);
        archive_entry_set_size(ae, (la_int64_t)e->len);
        break;
    case PX_ENTRY_DIR:
        archive_entry_set_filetype(ae, AE_IFDIR);
        archive_entry_set_perm(ae, e->mode & 0777u);
        archive_entry_set_size(ae, 0);
        break;
    case PX_ENTRY_SYMLINK:
        archive_entry_set_filetype(ae, AE_IFLNK);
        archive_entry_set_perm(ae, SYMLINK_MODE);
        archive_entry_set_size(ae, 0);
        archive_entry_copy_symlink(ae, e->link_target);
        break;
    }
    /* A warning here is the pax writer failing to convert a non-ASCII path
     * from the process locale to UTF-8; it then writes the bytes unchanged
     * under hdrcharset=BINARY, which is what the sandbox should create. */
    int r = archive_write_header(a, ae);
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
        return px_error_set(err, PX_E_INTERNAL, "pack '%s': %s", px_quote_str(&q, e->path),
                            archive_message(a));
    if (e->type == PX_ENTRY_FILE && e->len > 0) {
        la_ssize_t n = archive_write_data(a, e->data, e->len);
        if (n < 0 || (size_t)n != e->len)
            return px_error_set(err, PX_E_INTERNAL, "pack '%s': %s", px_quote_str(&q, e->path),
                                archive_message(a));
    }
    return 0;
}

int px_project_pack(const px_project *project, uint8_t **out, size_t *out_len, px_error *err) {
    __attribute__((cleanup(archive_write_closep))) struct archive *a = archive_write_new();
    __attribute__((cleanup(archive_entry_freep))) struct archive_entry *ae = archive_entry_new();
    __attribute__((cleanup(out_buf_releasep))) out_buf buf = {0};
    if (!a || !ae)
        return set_oom(err);
    /* Restricted pax: plain ustar headers, plus a pax extended header only
     * for what ustar cannot hold (long names, non-ASCII bytes). */
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open2(a, &buf, NULL, write_to_buf, NULL, NULL) != ARCHIVE_OK)
        return px_error_set(err, PX_E_INTERNAL, "pack: %s", archive_message(a));
    for (size_t i = 0; i < project->n_entries; i++)
        if (pack_entry(a, ae, &project->entries[i], err) < 0)
            return -1;
    if (archive_write_close(a) != ARCHIVE_OK)
        return px_error_set(err, PX_E_INTERNAL, "pack: %s", archive_message(a));
    *out_len = buf.len;
    *out = TAKE_PTR(buf.data);
    return 0;
}
