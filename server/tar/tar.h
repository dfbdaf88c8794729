/*
 * The code a client sends, validated and normalised (the only libarchive user).
 *
 * Input is either an uncompressed tar archive or a list of files. Both are
 * checked against docs/contract.md's path rules and the configured limits and
 * turned into a px_project: an ordered list of regular files, directories and
 * relative symbolic links whose targets resolve inside the project root
 * (/work in the sandbox). px_project_pack() writes it back out as a clean
 * ustar/pax archive that the sandbox bootstrap unpacks.
 *
 * Rules (violations are PX_E_INVALID with a message naming the path):
 *   - paths are relative and '/'-separated; "." components (so a leading
 *     "./"), repeated '/' and a trailing '/' are dropped; empty paths,
 *     absolute paths, ".." components, NUL or control bytes (< 0x20, 0x7f)
 *     are rejected; a directory entry for the root itself ("./") is skipped;
 *   - in a tar, a pax extended-header value (other than a binary xattr) or a
 *     GNU long name or link target that holds a NUL byte is rejected (the
 *     name would otherwise be cut there), as is a malformed pax record;
 *   - symbolic links must be relative and resolve inside the root; ".." may
 *     only lead the target ("../lib/x", not "lib/../x"), which makes the
 *     lexical check also hold for the real filesystem;
 *   - hard links (even to a file inside the archive), devices, FIFOs,
 *     sockets and sparse files are rejected;
 *   - a path may appear only once (after normalisation), except that a
 *     directory may be listed again (later listings are dropped) or after
 *     files inside it; no path may lie below a file or a symbolic link;
 *   - entry count (tar headers read, including skipped ones), path length,
 *     path depth and total unpacked bytes (sum of regular file sizes, checked
 *     against each header before its data is read) are bounded by
 *     px_tar_limits.
 * Directories implied by file paths need not be listed. Modes keep the
 * permission bits (& 0777); a mode of 0 becomes 0644 for files and 0755 for
 * directories. Owners and times in the input are ignored.
 *
 * Thread safety: functions are reentrant; a px_project is owned by one
 * thread at a time.
 */
#ifndef PYEXEC_TAR_TAR_H
#define PYEXEC_TAR_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct px_tar_limits {
    size_t max_entries;       /* files + dirs + links */
    size_t max_path_len;      /* bytes of one normalised path */
    size_t max_path_depth;    /* components of one path */
    uint64_t max_total_bytes; /* sum of regular file sizes */
} px_tar_limits;

/* Defaults: 10000 entries, 1024-byte paths, depth 32, 256 MiB total. */
void px_tar_limits_default(px_tar_limits *limits);

typedef enum px_entry_type {
    PX_ENTRY_FILE = 0,
    PX_ENTRY_DIR = 1,
    PX_ENTRY_SYMLINK = 2,
} px_entry_type;

/* One input file for px_project_from_files(): borrowed for the call. */
typedef struct px_file_in {
    const char *path; /* may contain NUL bytes: path_len counts */
    size_t path_len;
    const uint8_t *data;
    size_t len;
    uint32_t mode; /* permission bits; 0 means 0644 */
} px_file_in;

/* One normalised entry of a project. All pointers are owned by the project. */
typedef struct px_entry {
    px_entry_type type;
    char *path;    /* normalised, NUL-terminated, no leading "./" */
    uint8_t *data; /* file contents (NULL for dirs/links) */
    size_t len;
    uint32_t mode;     /* permission bits only (& 0777) */
    char *link_target; /* symlinks only */
} px_entry;

typedef struct px_project {
    px_entry *entries; /* in input order */
    size_t n_entries;
    uint64_t total_bytes;
} px_project;

/* Parses and validates an uncompressed tar archive (ustar, pax or GNU).
 * `limits` NULL means px_tar_limits_default(). An archive of only the
 * end-of-archive blocks gives an empty project; zero bytes are invalid.
 * Returns a new project, or NULL with `err` set (PX_E_INVALID for bad input,
 * including a compressed, truncated or damaged archive; PX_E_INTERNAL if
 * memory runs out). Errors about one entry start with "tar entry N" (from 1). */
px_project *px_project_from_tar(const uint8_t *tar, size_t len, const px_tar_limits *limits,
                                px_error *err);

/* Validates a list of regular files (copied; `files` stays the caller's).
 * `limits` NULL means px_tar_limits_default(). Returns a new project, or
 * NULL with `err` set; errors about one file start with "file N" (from 0). */
px_project *px_project_from_files(const px_file_in *files, size_t n, const px_tar_limits *limits,
                                  px_error *err);

/* NULL-safe. */
void px_project_free(px_project *project);

/* Picks the entrypoint: `requested` if non-NULL and non-empty (after
 * normalisation it must name a regular file of the project), else "main.py",
 * else "__main__.py" (at the root), else the first regular file ending in
 * ".py" in project order. Returns a pointer borrowed from the project (valid
 * until px_project_free), or NULL with `err` set to PX_E_INVALID. */
const char *px_project_entrypoint(const px_project *project, const char *requested, px_error *err);

/* True if the project holds a regular file at normalised `path`. O(n). */
bool px_project_has_file(const px_project *project, const char *path);

/* Writes the project as a POSIX (pax) tar archive into a new malloc'd buffer
 * (*out, *out_len), owned by the caller: entries in project order, no
 * implied directories, owner uid/gid 0, mtime 0, modes as in the project,
 * paths as raw bytes. Returns 0, or -1 with `err` set (PX_E_INTERNAL). */
int px_project_pack(const px_project *project, uint8_t **out, size_t *out_len, px_error *err);

#ifdef __cplusplus
}
#endif

#endif
