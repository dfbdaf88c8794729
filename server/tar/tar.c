/*
 * Tar and file-list validation (rules in tar.h).
 *
 * Both inputs go through one builder. Each entry is checked on its own as it
 * arrives: its path is normalised (normalize_path), a symlink's target is
 * checked (check_symlink_target), a file's size is checked against the
 * running total before a byte of its data is read or allocated, and the
 * entry is appended in input order. Relations between entries (duplicates,
 * a file or symlink used as a parent directory) are checked once at the end
 * (check_tree) by sorting the paths so that each path is immediately followed
 * by its duplicates and then its descendants: O(n log n) whatever the input,
 * with no hash table for crafted paths to flood.
 *
 * libarchive is used only in this module: reading here with the tar format
 * alone and no decompression filter (so compressed input is refused), the
 * extension headers checked on the raw bytes in pax.c, writing pax in
 * pack.c.
 */
#include "server/tar/tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server/base/cleanup.h"
#include "server/base/quote.h"
#include "server/tar/tar_internal.h"

#define DEFAULT_FILE_MODE 0644u
#define DEFAULT_DIR_MODE 0755u

void px_tar_limits_default(px_tar_limits *limits) {
    *limits = (px_tar_limits){
        .max_entries = 10000,
        .max_path_len = 1024,
        .max_path_depth = 32,
        .max_total_bytes = UINT64_C(256) << 20,
    };
}

/* ---- project ----------------------------------------------------------- */

static void entry_release(px_entry *e) {
    free(e->path);
    free(e->data);
    free(e->link_target);
    *e = (px_entry){0};
}

void px_project_free(px_project *project) {
    if (!project)
        return;
    for (size_t i = 0; i < project->n_entries; i++)
        entry_release(&project->entries[i]);
    free(project->entries);
    free(project);
}

PX_DEFINE_CLEANUP(px_project, px_project_free)

typedef struct builder {
    const px_tar_limits *limits;
    px_project *project;
    size_t cap;
} builder;

/* Appends `e`, taking ownership of its pointers (released on failure too). */
static int builder_push(builder *b, px_entry *e, px_error *err) {
    px_project *p = b->project;
    if (p->n_entries == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        px_entry *grown = realloc(p->entries, cap * sizeof *grown);
        if (!grown) {
            entry_release(e);
            return set_oom(err);
        }
        p->entries = grown;
        b->cap = cap;
    }
    p->entries[p->n_entries++] = *e;
    if (e->type == PX_ENTRY_FILE)
        p->total_bytes += e->len;
    *e = (px_entry){0};
    return 0;
}

/* Fails unless a file of `size` bytes fits in what is left of the limit on
 * total unpacked bytes. The running total never exceeds the limit. */
static int check_size(const builder *b, const char *path, uint64_t size, px_error *err) {
    uint64_t left = b->limits->max_total_bytes - b->project->total_bytes;
    if (size > left) {
        px_quoted q;
        return px_error_set(err, PX_E_INVALID,
                            "'%s': %" PRIu64 " bytes exceed the limit of %" PRIu64
                            " unpacked bytes in total",
                            px_quote_str(&q, path), size, b->limits->max_total_bytes);
    }
    return 0;
}

/* ---- paths ------------------------------------------------------------- */

/* Normalises the `len` bytes at `in` into a new NUL-terminated string *out:
 * empty and "." components are dropped (so "./a//b/" is "a/b"), and the
 * root itself ("." or "./") becomes "". Fails on an empty, absolute or
 * over-limit path, a ".." component, or a NUL or control byte. */
static int normalize_path(const char *in, size_t len, const px_tar_limits *limits, char **out,
                          px_error *err) {
    px_quoted q;
    if (len == 0)
        return px_error_set(err, PX_E_INVALID, "empty path");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == 0)
            return px_error_set(err, PX_E_INVALID, "'%s': path contains a NUL byte",
                                px_quote(&q, in, len));
        if (c < 0x20 || c == 0x7f)
            return px_error_set(err, PX_E_INVALID, "'%s': path contains a control character",
                                px_quote(&q, in, len));
    }
    if (in[0] == '/')
        return px_error_set(err, PX_E_INVALID, "'%s': absolute path", px_quote(&q, in, len));

    _cleanup_free_ char *buf = malloc(len + 1);
    if (!buf)
        return set_oom(err);
    size_t o = 0;
    size_t depth = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && in[j] != '/')
            j++;
        size_t n = j - i;
        if (n == 2 && in[i] == '.' && in[i + 1] == '.')
            return px_error_set(err, PX_E_INVALID, "'%s': path has a '..' component",
                                px_quote(&q, in, len));
        if (n > 0 && !(n == 1 && in[i] == '.')) {
            if (o > 0)
                buf[o++] = '/';
            memcpy(buf + o, in + i, n);
            o += n;
            depth++;
        }
        i = j + 1;
    }
    buf[o] = '\0';
    if (o > limits->max_path_len)
        return px_error_set(err, PX_E_INVALID, "'%s': path longer than %zu bytes",
                            px_quote(&q, buf, o), limits->max_path_len);
    if (depth > limits->max_path_depth)
        return px_error_set(err, PX_E_INVALID, "'%s': path deeper than %zu components",
                            px_quote(&q, buf, o), limits->max_path_depth);
    *out = TAKE_PTR(buf);
    return 0;
}

/* Checks the target of the symlink at normalised `path`. It must be
 * relative, and ".." may appear only as a leading run ("../../a/b", not
 * "a/../b") that climbs no higher than the root. With that rule the lexical
 * resolution is also the real one: the link's parent directories are real
 * directories (check_tree refuses paths through symlinks), and every other
 * symlink met on the way down obeys the same rule, so no chain of links can
 * leave the root. */
static int check_symlink_target(const char *path, const char *target, const px_tar_limits *limits,
                                px_error *err) {
    px_quoted qp, qt;
    size_t len = strlen(target);
    if (len == 0)
        return px_error_set(err, PX_E_INVALID, "'%s': symbolic link with an empty target",
                            px_quote_str(&qp, path));
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)target[i];
        if (c < 0x20 || c == 0x7f)
            return px_error_set(err, PX_E_INVALID,
                                "'%s': symbolic link target '%s' contains a control character",
                                px_quote_str(&qp, path), px_quote(&qt, target, len));
    }
    if (target[0] == '/')
        return px_error_set(err, PX_E_INVALID, "'%s': symbolic link target '%s' is absolute",
                            px_quote_str(&qp, path), px_quote(&qt, target, len));
    if (len > limits->max_path_len)
        return px_error_set(err, PX_E_INVALID, "'%s': symbolic link target longer than %zu bytes",
                            px_quote_str(&qp, path), limits->max_path_len);

    size_t parent_depth = 0; /* components of the directory holding the link */
    for (const char *s = path; *s; s++)
        parent_depth += *s == '/';
    size_t ups = 0;
    bool named = false;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && target[j] != '/')
            j++;
        size_t n = j - i;
        if (n == 2 && target[i] == '.' && target[i + 1] == '.') {
            if (named)
                return px_error_set(err, PX_E_INVALID,
                                    "'%s': symbolic link target '%s' has '..' after a name "
                                    "(only leading '..' components are allowed)",
                                    px_quote_str(&qp, path), px_quote(&qt, target, len));
            if (++ups > parent_depth)
                return px_error_set(err, PX_E_INVALID,
                                    "'%s': symbolic link target '%s' escapes the root",
                                    px_quote_str(&qp, path), px_quote(&qt, target, len));
        } else if (n > 0 && !(n == 1 && target[i] == '.')) {
            named = true;
        }
        i = j + 1;
    }
    return 0;
}

/* ---- relations between entries ----------------------------------------- */

typedef struct path_ref {
    const char *path;
    size_t index; /* in the project */
} path_ref;

/* Orders paths component by component ('/' sorts before every other byte),
 * then by input position. A path is thus followed first by its duplicates,
 * then by all of its descendants, contiguously. */
static int compare_refs(const void *a, const void *b) {
    const path_ref *x = a;
    const path_ref *y = b;
    const unsigned char *p = (const unsigned char *)x->path;
    const unsigned char *q = (const unsigned char *)y->path;
    for (;; p++, q++) {
        unsigned cp = *p == '/' ? 1u : *p;
        unsigned cq = *q == '/' ? 1u : *q;
        if (cp != cq)
            return cp < cq ? -1 : 1;
        if (cp == 0)
            break;
    }
    return x->index < y->index ? -1 : x->index > y->index;
}

static const char *type_name(px_entry_type type) {
    switch (type) {
    case PX_ENTRY_FILE: return "file";
    case PX_ENTRY_DIR: return "directory";
    case PX_ENTRY_SYMLINK: return "symbolic link";
    }
    return "entry";
}

/* Refuses duplicate paths (except a directory listed more than once, whose
 * later listings are dropped) and paths below a file or symlink. */
static int check_tree(px_project *p, px_error *err) {
    size_t n = p->n_entries;
    if (n < 2)
        return 0;
    _cleanup_free_ path_ref *refs = malloc(n * sizeof *refs);
    _cleanup_free_ bool *drop = calloc(n, sizeof *drop);
    if (!refs || !drop)
        return set_oom(err);
    for (size_t i = 0; i < n; i++)
        refs[i] = (path_ref){p->entries[i].path, i};
    qsort(refs, n, sizeof *refs, compare_refs);

    px_quoted q1, q2;
    size_t n_dropped = 0;
    for (size_t i = 0; i < n;) {
        const px_entry *first = &p->entries[refs[i].index];
        size_t j = i + 1;
        for (; j < n && strcmp(refs[j].path, first->path) == 0; j++) {
            const px_entry *dup = &p->entries[refs[j].index];
            if (first->type != PX_ENTRY_DIR || dup->type != PX_ENTRY_DIR) {
                if (first->type == dup->type)
                    return px_error_set(err, PX_E_INVALID, "'%s': duplicate path",
                                        px_quote_str(&q1, first->path));
                return px_error_set(err, PX_E_INVALID, "'%s': both a %s and a %s",
                                    px_quote_str(&q1, first->path), type_name(first->type),
                                    type_name(dup->type));
            }
            drop[refs[j].index] = true;
            n_dropped++;
        }
        if (first->type != PX_ENTRY_DIR && j < n) {
            size_t len = strlen(first->path);
            const char *next = refs[j].path;
            if (strncmp(next, first->path, len) == 0 && next[len] == '/')
                return px_error_set(err, PX_E_INVALID, "'%s': parent '%s' is a %s",
                                    px_quote_str(&q1, next), px_quote_str(&q2, first->path),
                                    type_name(first->type));
        }
        i = j;
    }

    if (n_dropped > 0) {
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            if (drop[i])
                entry_release(&p->entries[i]);
            else
                p->entries[o++] = p->entries[i];
        }
        p->n_entries = o;
    }
    return 0;
}

/* ---- tar input --------------------------------------------------------- */

static void archive_read_closep(struct archive **a) {
    if (*a)
        archive_read_free(*a);
}

/* Names the compression of `data` if it starts with a known magic number;
 * for the error message of input that is not a tar archive. */
static const char *compression_name(const uint8_t *data, size_t len) {
    static const struct {
        const char *name;
        const char *magic;
        size_t len;
    } magics[] = {
        {"gzip", "\x1f\x8b", 2},
        {"bzip2", "BZh", 3},
        {"xz",
         "\xfd"
         "7zXZ\0",
         6},
        {"zstd", "\x28\xb5\x2f\xfd", 4},
        {"lz4", "\x04\x22\x4d\x18", 4},
        {"compress", "\x1f\x9d", 2},
        {"lzip", "LZIP", 4},
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(magics); i++)
        if (len >= magics[i].len && memcmp(data, magics[i].magic, magics[i].len) == 0)
            return magics[i].name;
    return NULL;
}

static int read_file_data(struct archive *a, const char *path, px_entry *e, px_error *err) {
    px_quoted q;
    if (e->len == 0)
        return 0;
    e->data = malloc(e->len);
    if (!e->data)
        return set_oom(err);
    size_t got = 0;
    while (got < e->len) {
        la_ssize_t n = archive_read_data(a, e->data + got, e->len - got);
        if (n < 0)
            return px_error_set(err, PX_E_INVALID, "'%s': %s", px_quote_str(&q, path),
                                archive_message(a));
        if (n == 0)
            return px_error_set(err, PX_E_INVALID, "'%s': truncated data", px_quote_str(&q, path));
        got += (size_t)n;
    }
    return 0;
}

/* A regular file entry at `path` (normalised from `raw`): its size checked
 * against the running total and the input before its data is read into
 * *e. */
static int read_regular(struct archive *a, struct archive_entry *ae, const char *path,
                        const char *raw, size_t input_len, builder *b, px_entry *e, px_error *err) {
    px_quoted q1;
    if (path[0] == '\0')
        return px_error_set(err, PX_E_INVALID, "'%s': not a file path", px_quote_str(&q1, raw));
    if (archive_entry_sparse_count(ae) > 0)
        return px_error_set(err, PX_E_INVALID, "'%s': sparse file not allowed",
                            px_quote_str(&q1, path));
    la_int64_t size = archive_entry_size(ae);
    if (size < 0)
        return px_error_set(err, PX_E_INVALID, "'%s': negative size", px_quote_str(&q1, path));
    if (check_size(b, path, (uint64_t)size, err) < 0)
        return -1;
    /* The data follows the header in the same buffer: a claim larger than
     * the whole input is a truncated (or hostile) archive. */
    if ((uint64_t)size > input_len)
        return px_error_set(err, PX_E_INVALID,
                            "'%s': truncated archive (entry claims %" PRId64 " bytes)",
                            px_quote_str(&q1, path), (int64_t)size);
    unsigned perm = (unsigned)archive_entry_perm(ae) & 0777u;
    e->type = PX_ENTRY_FILE;
    e->len = (size_t)size;
    e->mode = perm ? perm : DEFAULT_FILE_MODE;
    if (read_file_data(a, path, e, err) < 0) {
        entry_release(e);
        return -1;
    }
    return 0;
}

/* A symbolic link entry at `path` (normalised from `raw`): its target
 * checked and copied into *e. */
static int read_symlink(struct archive_entry *ae, const char *path, const char *raw,
                        const builder *b, px_entry *e, px_error *err) {
    px_quoted q1;
    if (path[0] == '\0')
        return px_error_set(err, PX_E_INVALID, "'%s': the root cannot be a symbolic link",
                            px_quote_str(&q1, raw));
    const char *target = archive_entry_symlink(ae);
    if (!target)
        target = archive_entry_symlink_utf8(ae);
    if (!target)
        target = "";
    if (check_symlink_target(path, target, b->limits, err) < 0)
        return -1;
    e->type = PX_ENTRY_SYMLINK;
    e->mode = SYMLINK_MODE;
    e->link_target = strdup(target);
    if (!e->link_target)
        return set_oom(err);
    return 0;
}

/* Refuses an entry of a type a project may not hold (devices, FIFOs,
 * sockets, anything unknown), naming it. Returns -1. */
static int refuse_type(unsigned filetype, const char *path, px_error *err) {
    px_quoted q1;
    switch (filetype) {
    case AE_IFCHR:
        return px_error_set(err, PX_E_INVALID, "'%s': character device not allowed",
                            px_quote_str(&q1, path));
    case AE_IFBLK:
        return px_error_set(err, PX_E_INVALID, "'%s': block device not allowed",
                            px_quote_str(&q1, path));
    case AE_IFIFO:
        return px_error_set(err, PX_E_INVALID, "'%s': FIFO not allowed", px_quote_str(&q1, path));
    case AE_IFSOCK:
        return px_error_set(err, PX_E_INVALID, "'%s': socket not allowed", px_quote_str(&q1, path));
    default:
        return px_error_set(err, PX_E_INVALID, "'%s': unsupported entry type",
                            px_quote_str(&q1, path));
    }
}

/* Validates the entry whose header was just read and appends it to `b`. */
static int read_tar_entry(struct archive *a, struct archive_entry *ae, size_t input_len, builder *b,
                          px_error *err) {
    px_quoted q1, q2;
    /* A pax path in UTF-8 that the C locale cannot represent comes back from
     * archive_entry_pathname() as the raw bytes, with a warning; either way
     * the bytes are what the sandbox will create. */
    const char *raw = archive_entry_pathname(ae);
    if (!raw)
        raw = archive_entry_pathname_utf8(ae);
    if (!raw)
        return px_error_set(err, PX_E_INVALID, "entry without a readable path");
    _cleanup_free_ char *path = NULL;
    if (normalize_path(raw, strlen(raw), b->limits, &path, err) < 0)
        return -1;

    const char *hardlink = archive_entry_hardlink(ae);
    if (hardlink)
        return px_error_set(err, PX_E_INVALID, "'%s': hard link (to '%s') not allowed",
                            px_quote_str(&q1, path), px_quote_str(&q2, hardlink));

    px_entry e = {0};
    unsigned perm = (unsigned)archive_entry_perm(ae) & 0777u;
    switch (archive_entry_filetype(ae)) {
    case AE_IFREG:
        if (read_regular(a, ae, path, raw, input_len, b, &e, err) < 0)
            return -1;
        break;
    case AE_IFDIR:
        if (path[0] == '\0')
            return 0; /* "./": the root itself */
        e.type = PX_ENTRY_DIR;
        e.mode = perm ? perm : DEFAULT_DIR_MODE;
        break;
    case AE_IFLNK:
        if (read_symlink(ae, path, raw, b, &e, err) < 0)
            return -1;
        break;
    default: return refuse_type(archive_entry_filetype(ae), path, err);
    }
    e.path = TAKE_PTR(path);
    return builder_push(b, &e, err);
}

px_project *px_project_from_tar(const uint8_t *tar, size_t len, const px_tar_limits *limits,
                                px_error *err) {
    px_tar_limits defaults;
    if (!limits) {
        px_tar_limits_default(&defaults);
        limits = &defaults;
    }
    static const uint8_t empty[1] = {0};
    if (!tar) {
        tar = empty;
        len = 0;
    }

    __attribute__((cleanup(px_project_freep))) px_project *project = calloc(1, sizeof *project);
    __attribute__((cleanup(archive_read_closep))) struct archive *a = archive_read_new();
    if (!project || !a) {
        set_oom(err);
        return NULL;
    }
    /* The tar format alone: no compression filter is enabled, so anything
     * else is an "Unrecognized archive format". */
    if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
        archive_read_open_memory(a, tar, len) != ARCHIVE_OK) {
        /* Only now, as a tar header may well start with "BZh" too. */
        const char *compression = compression_name(tar, len);
        if (compression)
            px_error_set(err, PX_E_INVALID,
                         "%s-compressed archive: only uncompressed tar is accepted", compression);
        else
            px_error_set(err, PX_E_INVALID, "not a tar archive: %s", archive_message(a));
        return NULL;
    }

    builder b = {.limits = limits, .project = project};
    for (size_t ordinal = 1;; ordinal++) {
        struct archive_entry *ae = NULL;
        int r = archive_read_next_header(a, &ae);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            px_error_set(err, PX_E_INVALID, "tar entry %zu: %s", ordinal, archive_message(a));
            return NULL;
        }
        if (ordinal > limits->max_entries) {
            px_error_set(err, PX_E_INVALID, "more than %zu entries", limits->max_entries);
            return NULL;
        }
        if (px_tar_check_extension_headers(tar, len, archive_read_header_position(a), err) < 0) {
            px_error_wrap(err, "tar entry %zu", ordinal);
            return NULL;
        }
        if (read_tar_entry(a, ae, len, &b, err) < 0) {
            px_error_wrap(err, "tar entry %zu", ordinal);
            return NULL;
        }
    }
    if (check_tree(project, err) < 0)
        return NULL;
    return TAKE_PTR(project);
}

/* ---- file-list input --------------------------------------------------- */

static int add_file(builder *b, const px_file_in *f, px_error *err) {
    px_quoted q;
    _cleanup_free_ char *path = NULL;
    if (normalize_path(f->path, f->path_len, b->limits, &path, err) < 0)
        return -1;
    if (path[0] == '\0')
        return px_error_set(err, PX_E_INVALID, "'%s': not a file path",
                            px_quote(&q, f->path, f->path_len));
    if (check_size(b, path, f->len, err) < 0)
        return -1;
    px_entry e = {
        .type = PX_ENTRY_FILE,
        .len = f->len,
        .mode = (f->mode & 0777u) ? (f->mode & 0777u) : DEFAULT_FILE_MODE,
    };
    if (f->len > 0) {
        e.data = malloc(f->len);
        if (!e.data)
            return set_oom(err);
        memcpy(e.data, f->data, f->len);
    }
    e.path = TAKE_PTR(path);
    return builder_push(b, &e, err);
}

px_project *px_project_from_files(const px_file_in *files, size_t n, const px_tar_limits *limits,
                                  px_error *err) {
    px_tar_limits defaults;
    if (!limits) {
        px_tar_limits_default(&defaults);
        limits = &defaults;
    }
    if (n > limits->max_entries) {
        px_error_set(err, PX_E_INVALID, "%zu files: more than %zu entries", n, limits->max_entries);
        return NULL;
    }
    __attribute__((cleanup(px_project_freep))) px_project *project = calloc(1, sizeof *project);
    if (!project) {
        set_oom(err);
        return NULL;
    }
    builder b = {.limits = limits, .project = project};
    for (size_t i = 0; i < n; i++) {
        if (add_file(&b, &files[i], err) < 0) {
            px_error_wrap(err, "file %zu", i);
            return NULL;
        }
    }
    if (check_tree(project, err) < 0)
        return NULL;
    return TAKE_PTR(project);
}

/* ---- queries ----------------------------------------------------------- */

static const px_entry *find_entry(const px_project *project, const char *path) {
    for (size_t i = 0; i < project->n_entries; i++)
        if (strcmp(project->entries[i].path, path) == 0)
            return &project->entries[i];
    return NULL;
}

bool px_project_has_file(const px_project *project, const char *path) {
    const px_entry *e = find_entry(project, path);
    return e && e->type == PX_ENTRY_FILE;
}

static bool ends_with_py(const char *path) {
    size_t len = strlen(path);
    return len >= 3 && memcmp(path + len - 3, ".py", 3) == 0;
}

const char *px_project_entrypoint(const px_project *project, const char *requested, px_error *err) {
    px_quoted q;
    if (requested && requested[0]) {
        /* Only the syntax rules apply: the project already bounds what can
         * match. */
        const px_tar_limits unbounded = {SIZE_MAX, SIZE_MAX, SIZE_MAX, UINT64_MAX};
        _cleanup_free_ char *path = NULL;
        if (normalize_path(requested, strlen(requested), &unbounded, &path, err) < 0) {
            px_error_wrap(err, "entrypoint");
            return NULL;
        }
        const px_entry *e = find_entry(project, path);
        if (!e) {
            px_error_set(err, PX_E_INVALID, "entrypoint '%s' is not among the files",
                         px_quote_str(&q, requested));
            return NULL;
        }
        if (e->type != PX_ENTRY_FILE) {
            px_error_set(err, PX_E_INVALID, "entrypoint '%s' is a %s, not a regular file",
                         px_quote_str(&q, requested), type_name(e->type));
            return NULL;
        }
        return e->path;
    }
    static const char *const defaults[] = {"main.py", "__main__.py"};
    for (size_t i = 0; i < PX_ARRAY_SIZE(defaults); i++) {
        const px_entry *e = find_entry(project, defaults[i]);
        if (e && e->type == PX_ENTRY_FILE)
            return e->path;
    }
    for (size_t i = 0; i < project->n_entries; i++) {
        const px_entry *e = &project->entries[i];
        if (e->type == PX_ENTRY_FILE && ends_with_py(e->path))
            return e->path;
    }
    px_error_set(err, PX_E_INVALID,
                 "no entrypoint: no main.py, __main__.py or other .py file among the files");
    return NULL;
}
