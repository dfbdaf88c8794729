/*
 * Archives for the CLI's input: building a tar of a directory (files and
 * symbolic links) and decompressing a compressed tar. The only CLI file
 * that includes libarchive; the server gets plain tar either way and
 * validates it (paths, links) as it does any archive.
 */
#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli/cli.h"
#include "server/base/cleanup.h"

/* A growable buffer bounded by `max` bytes. */
typedef struct tar_buf {
    uint8_t *data;
    size_t len, cap, max;
    bool too_big;
} tar_buf;

static int tar_buf_append(tar_buf *b, const void *d, size_t n) {
    if (n > b->max - b->len) {
        b->too_big = true;
        return -1;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *nd = realloc(b->data, cap);
        if (!nd)
            return -1;
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, d, n);
    b->len += n;
    return 0;
}

static la_ssize_t write_to_buf(struct archive *a, void *ud, const void *d, size_t n) {
    (void)a;
    return tar_buf_append(ud, d, n) < 0 ? -1 : (la_ssize_t)n;
}

struct cli_tar {
    struct archive *a;
    struct archive_entry *e;
    tar_buf buf;
    size_t n_entries;
};

static const char *message(struct archive *a) {
    const char *m = archive_error_string(a);
    return m ? m : "unknown libarchive error";
}

static int tar_error(cli_tar *t, const char *what, const char *path, pyexec_error *err) {
    if (t->buf.too_big)
        return pyexec_error_set(err, PYEXEC_E_INVALID,
                                "the project's archive is larger than %zu MiB, the most pyexec "
                                "sends",
                                t->buf.max >> 20);
    return pyexec_error_set(err, PYEXEC_E_INTERNAL, "%s '%s': %s", what, path, message(t->a));
}

cli_tar *cli_tar_new(size_t max_bytes, pyexec_error *err) {
    cli_tar *t = calloc(1, sizeof *t);
    if (!t)
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory"), NULL;
    t->buf.max = max_bytes;
    t->a = archive_write_new();
    t->e = archive_entry_new();
    /* Restricted pax: ustar headers, a pax header only for long names. */
    if (!t->a || !t->e || archive_write_set_format_pax_restricted(t->a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(t->a, 1) != ARCHIVE_OK ||
        archive_write_open2(t->a, &t->buf, NULL, write_to_buf, NULL, NULL) != ARCHIVE_OK) {
        pyexec_error_set(err, PYEXEC_E_INTERNAL, "cannot start a tar archive: %s",
                         t->a ? message(t->a) : "out of memory");
        cli_tar_free(t);
        return NULL;
    }
    return t;
}

void cli_tar_free(cli_tar *t) {
    if (!t)
        return;
    if (t->a)
        archive_write_free(t->a);
    if (t->e)
        archive_entry_free(t->e);
    free(t->buf.data);
    free(t);
}

size_t cli_tar_entries(const cli_tar *t) {
    return t->n_entries;
}

int cli_tar_add_file(cli_tar *t, const char *path, const uint8_t *data, size_t len, mode_t mode,
                     pyexec_error *err) {
    archive_entry_clear(t->e);
    archive_entry_set_pathname(t->e, path);
    archive_entry_set_filetype(t->e, AE_IFREG);
    archive_entry_set_perm(t->e, mode & 07777);
    archive_entry_set_size(t->e, (la_int64_t)len);
    if (archive_write_header(t->a, t->e) != ARCHIVE_OK)
        return tar_error(t, "add", path, err);
    if (len && archive_write_data(t->a, data, len) != (la_ssize_t)len)
        return tar_error(t, "add", path, err);
    t->n_entries++;
    return 0;
}

int cli_tar_add_symlink(cli_tar *t, const char *path, const char *target, pyexec_error *err) {
    archive_entry_clear(t->e);
    archive_entry_set_pathname(t->e, path);
    archive_entry_set_filetype(t->e, AE_IFLNK);
    archive_entry_set_perm(t->e, 0777);
    archive_entry_set_symlink(t->e, target);
    if (archive_write_header(t->a, t->e) != ARCHIVE_OK)
        return tar_error(t, "add link", path, err);
    t->n_entries++;
    return 0;
}

int cli_tar_finish(cli_tar *t, uint8_t **out, size_t *out_len, pyexec_error *err) {
    if (archive_write_close(t->a) != ARCHIVE_OK)
        return tar_error(t, "finish", "archive", err);
    *out = TAKE_PTR(t->buf.data);
    *out_len = t->buf.len;
    t->buf.len = t->buf.cap = 0;
    return 0;
}

int cli_decompress(const uint8_t *in, size_t len, const char *name, size_t max_bytes, uint8_t **out,
                   size_t *out_len, pyexec_error *err) {
    struct archive *a = archive_read_new();
    if (!a)
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory");
    /* The raw format: the decompressed bytes as they are, so the server
     * validates exactly the tar inside. */
    tar_buf buf = {.max = max_bytes};
    struct archive_entry *e;
    int rc = 0;
    if (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
        archive_read_support_filter_bzip2(a) != ARCHIVE_OK ||
        archive_read_support_filter_xz(a) != ARCHIVE_OK ||
        archive_read_support_filter_zstd(a) != ARCHIVE_OK ||
        archive_read_support_format_raw(a) != ARCHIVE_OK ||
        archive_read_open_memory(a, in, len) != ARCHIVE_OK ||
        archive_read_next_header(a, &e) != ARCHIVE_OK) {
        rc = pyexec_error_set(err, PYEXEC_E_INVALID, "'%s': cannot decompress: %s", name,
                              message(a));
        goto out;
    }
    if (archive_filter_count(a) < 2) { /* only the "none" filter */
        rc = pyexec_error_set(err, PYEXEC_E_INVALID,
                              "'%s': not compressed with gzip, bzip2, xz or zstd", name);
        goto out;
    }
    for (;;) {
        char block[65536];
        la_ssize_t n = archive_read_data(a, block, sizeof block);
        if (n == 0)
            break;
        if (n < 0) {
            rc = pyexec_error_set(err, PYEXEC_E_INVALID, "'%s': cannot decompress: %s", name,
                                  message(a));
            goto out;
        }
        if (tar_buf_append(&buf, block, (size_t)n) < 0) {
            rc = buf.too_big ? pyexec_error_set(err, PYEXEC_E_INVALID,
                                                "'%s': larger than %zu MiB once decompressed, "
                                                "the most pyexec sends",
                                                name, max_bytes >> 20)
                             : pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory");
            goto out;
        }
    }
    *out = TAKE_PTR(buf.data);
    *out_len = buf.len;
out:
    free(buf.data);
    archive_read_free(a);
    return rc;
}
