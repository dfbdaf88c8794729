/*
 * Loading a project from local inputs into files or a tar archive. Paths
 * sent to the server are relative and '/'-separated; the server validates
 * them again (docs/contract.md, "Code in").
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/cli/cli.h"
#include "server/base/cleanup.h"

/* Reads all of `fd` into a new NUL-terminated buffer, counting against the
 * project's input budget. */
static int read_fd(cli_project *p, int fd, const char *name, uint8_t **out, size_t *out_len,
                   pyexec_error *err) {
    size_t cap = 4096, len = 0;
    _cleanup_free_ uint8_t *buf = malloc(cap);
    if (!buf)
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory");
    for (;;) {
        if (len + 1 == cap) {
            if (p->total + cap > CLI_MAX_INPUT_BYTES)
                return pyexec_error_set(err, PYEXEC_E_INVALID,
                                        "%s: the request's input is larger than %u MiB, the "
                                        "most pyexec sends",
                                        name, CLI_MAX_INPUT_BYTES >> 20);
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb)
                return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory");
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return pyexec_error_set_errno(err, PYEXEC_E_INVALID, errno, "read %s", name);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (p->total + len > CLI_MAX_INPUT_BYTES)
        return pyexec_error_set(err, PYEXEC_E_INVALID,
                                "%s: the request's input is larger than %u MiB, the most "
                                "pyexec sends",
                                name, CLI_MAX_INPUT_BYTES >> 20);
    p->total += len;
    buf[len] = '\0';
    *out = TAKE_PTR(buf);
    *out_len = len;
    return 0;
}

/* Reads the file at `path`: a regular file, or a pipe, FIFO, socket or
 * character device (`/dev/stdin`, `<(cmd)`), read to its end. */
static int read_path(cli_project *p, const char *path, uint8_t **out, size_t *out_len, mode_t *mode,
                     pyexec_error *err) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pyexec_error_set_errno(err, PYEXEC_E_INVALID, errno, "open '%s'", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return pyexec_error_set_errno(err, PYEXEC_E_INVALID, errno, "stat '%s'", path);
    if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode) &&
        !S_ISCHR(st.st_mode))
        return pyexec_error_set(err, PYEXEC_E_INVALID, "'%s' is not a file or a pipe", path);
    if (mode)
        *mode = S_ISREG(st.st_mode) ? st.st_mode & 07777 : 0644;
    return read_fd(p, fd, path, out, out_len, err);
}

/* Adds a file; takes ownership of `path` and `content`, also on failure. */
static int add_file(cli_project *p, char *path, uint8_t *content, size_t len, mode_t mode,
                    pyexec_error *err) {
    if (p->n_files == p->cap_files) {
        size_t cap = p->cap_files ? 2 * p->cap_files : 16;
        pyexec_file *nf = realloc(p->files, cap * sizeof *nf);
        if (!nf) {
            free(path);
            free(content);
            return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory");
        }
        p->files = nf;
        p->cap_files = cap;
    }
    p->files[p->n_files++] = (pyexec_file){
        .path = path, .content = content, .len = len, .mode = (uint32_t)mode};
    return 0;
}

static int load_one(cli_project *p, const char *local, const char *remote, pyexec_error *err) {
    uint8_t *content = NULL;
    size_t len = 0;
    mode_t mode = 0;
    if (read_path(p, local, &content, &len, &mode, err) < 0)
        return -1;
    char *path = strdup(remote);
    if (!path) {
        free(content);
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory");
    }
    return add_file(p, path, content, len, mode, err);
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The path a --file is sent under: as given, without leading "./"; an
 * absolute path or one that climbs with ".." is sent under its base name. */
static const char *remote_path_of(const char *given) {
    while (given[0] == '.' && given[1] == '/')
        given += 2;
    if (given[0] == '/')
        return base_name(given);
    for (const char *s = given; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return base_name(given);
        s += n;
        while (*s == '/')
            s++;
    }
    return given;
}

/* The walk of a directory argument into a tar archive. */
typedef struct dir_walk {
    cli_project *p;
    cli_tar *tar;
    const cli_ignore *ignore;
} dir_walk;

/* Adds what is below `local` (sent as `rel`) to the archive: regular files
 * with their permission bits, symbolic links as links (whatever they point
 * to: the server refuses links that leave the project), and directories
 * walked in name order. Ignored entries and other file types are skipped. */
static int walk_dir(dir_walk *w, const char *local, const char *rel, int depth, pyexec_error *err) {
    if (depth > CLI_MAX_DIR_DEPTH)
        return pyexec_error_set(err, PYEXEC_E_INVALID, "'%s': nested deeper than %d directories",
                                local, CLI_MAX_DIR_DEPTH);
    struct dirent **names = NULL;
    int n = scandir(local, &names, NULL, alphasort);
    if (n < 0)
        return pyexec_error_set_errno(err, PYEXEC_E_INVALID, errno, "read directory '%s'", local);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        if (rc == 0 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
            _cleanup_free_ char *lp = NULL;
            _cleanup_free_ char *rp = NULL;
            struct stat st;
            if (asprintf(&lp, "%s/%s", local, name) < 0 ||
                asprintf(&rp, "%s%s%s", rel, *rel ? "/" : "", name) < 0) {
                rc = pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory");
            } else if (lstat(lp, &st) < 0) {
                rc = pyexec_error_set_errno(err, PYEXEC_E_INVALID, errno, "stat '%s'", lp);
            } else if (cli_ignore_match(w->ignore, rp, S_ISDIR(st.st_mode))) {
                /* stays home */
            } else if (S_ISDIR(st.st_mode)) {
                rc = walk_dir(w, lp, rp, depth + 1, err);
            } else if (S_ISLNK(st.st_mode)) {
                char target[PATH_MAX];
                ssize_t len = readlink(lp, target, sizeof target - 1);
                if (len < 0) {
                    rc = pyexec_error_set_errno(err, PYEXEC_E_INVALID, errno, "readlink '%s'", lp);
                } else {
                    target[len] = '\0';
                    rc = cli_tar_add_symlink(w->tar, rp, target, err);
                }
            } else if (S_ISREG(st.st_mode)) {
                _cleanup_free_ uint8_t *content = NULL;
                size_t len = 0;
                mode_t mode = 0;
                rc = read_path(w->p, lp, &content, &len, &mode, err);
                if (rc == 0)
                    rc = cli_tar_add_file(w->tar, rp, content, len, mode, err);
            }
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

/* Sends directory `dir` as a tar archive built here. */
static int load_dir(cli_project *p, const char *dir, pyexec_error *err) {
    cli_ignore *ig = cli_ignore_load(dir, err);
    if (!ig)
        return -1;
    dir_walk w = {.p = p, .tar = cli_tar_new(CLI_MAX_INPUT_BYTES, err), .ignore = ig};
    int rc = -1;
    if (!w.tar)
        goto out;
    if (walk_dir(&w, dir, "", 0, err) < 0)
        goto out;
    if (cli_tar_entries(w.tar) == 0) {
        pyexec_error_set(err, PYEXEC_E_INVALID, "directory '%s' has no files to send", dir);
        goto out;
    }
    rc = cli_tar_finish(w.tar, &p->tar, &p->tar_len, err);
out:
    cli_tar_free(w.tar);
    cli_ignore_free(ig);
    return rc;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Compressed tar archives, by name; the client decompresses them. */
static bool is_compressed_tar_name(const char *name) {
    static const char *const suffixes[] = {".tar.gz", ".tgz", ".tar.bz2", ".tbz2",
                                           ".tar.xz", ".txz", ".tar.zst", ".tzst"};
    for (size_t i = 0; i < PX_ARRAY_SIZE(suffixes); i++)
        if (ends_with(name, suffixes[i]))
            return true;
    return false;
}

/* What a single-file argument is if its first bytes say it is compressed
 * (never Python source), else NULL. */
static const char *compressed_kind(const pyexec_file *f) {
    static const struct {
        const char *magic;
        size_t len;
        const char *kind;
    } kinds[] = {
        {"\x1f\x8b", 2, "gzip file"},
        {"\xfd"
         "7zXZ\0",
         6, "xz file"},
        {"\x28\xb5\x2f\xfd", 4, "zstd file"},
        {"PK\x03\x04", 4, "zip archive (not supported)"},
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(kinds); i++)
        if (f->len >= kinds[i].len && memcmp(f->content, kinds[i].magic, kinds[i].len) == 0)
            return kinds[i].kind;
    return NULL;
}

/* Reads a compressed tar and sends the tar inside (the server takes plain
 * tar). The decompressed size counts against the input budget. */
static int load_compressed_tar(cli_project *p, const char *path, pyexec_error *err) {
    _cleanup_free_ uint8_t *raw = NULL;
    size_t len = 0;
    mode_t mode;
    if (read_path(p, path, &raw, &len, &mode, err) < 0)
        return -1;
    size_t room = CLI_MAX_INPUT_BYTES - p->total;
    if (cli_decompress(raw, len, path, room, &p->tar, &p->tar_len, err) < 0)
        return -1;
    p->total += p->tar_len;
    return 0;
}

static int load_code(cli_project *p, const cli_opts *o, pyexec_error *err) {
    if (o->code) { /* eval CODE: the argument is main.py */
        size_t len = strlen(o->code);
        char *path = strdup("main.py");
        uint8_t *content = malloc(len + 1);
        p->entrypoint = strdup("main.py");
        if (!path || !content || !p->entrypoint) {
            free(path);
            free(content);
            return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory");
        }
        memcpy(content, o->code, len + 1);
        p->total += len;
        return add_file(p, path, content, len, 0644, err);
    }
    if (o->files.n) {
        if (o->operands.n && !o->quiet)
            fprintf(stderr, "pyexec: --file given: ignoring the argument '%s'\n", o->operands.v[0]);
        for (size_t i = 0; i < o->files.n; i++)
            if (load_one(p, o->files.v[i], remote_path_of(o->files.v[i]), err) < 0)
                return -1;
        return 0;
    }
    if (o->operands.n > 1)
        return pyexec_error_set(err, PYEXEC_E_INVALID,
                                "expected one file, directory or .tar, got %zu arguments "
                                "(script arguments go after --)",
                                o->operands.n);
    if (o->operands.n == 1) {
        const char *arg = o->operands.v[0];
        if (ends_with(arg, ".tar")) {
            mode_t mode;
            return read_path(p, arg, &p->tar, &p->tar_len, &mode, err);
        }
        if (is_compressed_tar_name(arg))
            return load_compressed_tar(p, arg, err);
        struct stat st;
        if (stat(arg, &st) < 0)
            return pyexec_error_set_errno(err, PYEXEC_E_INVALID, errno, "'%s'", arg);
        if (S_ISDIR(st.st_mode))
            return load_dir(p, arg, err);
        const char *name = base_name(arg);
        if (load_one(p, arg, name, err) < 0)
            return -1;
        const char *kind = compressed_kind(&p->files[p->n_files - 1]);
        if (kind)
            return pyexec_error_set(err, PYEXEC_E_INVALID,
                                    "'%s' is a %s, not Python code: pass a directory, a .tar, or "
                                    "a .tar.gz/.tgz (also .tar.bz2, .tar.xz, .tar.zst)",
                                    arg, kind);
        p->entrypoint = strdup(name);
        return p->entrypoint ? 0 : pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory");
    }
    if (isatty(STDIN_FILENO))
        return pyexec_error_set(err, PYEXEC_E_INVALID,
                                "no code given: pass a file, a directory, a .tar, --file PATH, "
                                "or pipe code on standard input");
    uint8_t *code = NULL;
    size_t len = 0;
    if (read_fd(p, STDIN_FILENO, "standard input", &code, &len, err) < 0)
        return -1;
    if (len == 0) {
        free(code);
        return pyexec_error_set(err, PYEXEC_E_INVALID, "no code on standard input");
    }
    char *path = strdup("main.py");
    p->entrypoint = strdup("main.py");
    if (!path || !p->entrypoint) {
        free(path);
        free(code);
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory");
    }
    return add_file(p, path, code, len, 0644, err);
}

/* True when the code comes from standard input (no --file, no argument). */
static bool code_from_stdin(const cli_opts *o) {
    return !o->code && o->files.n == 0 && o->operands.n == 0;
}

/* The program's standard input: --stdin-file FILE (`-` is standard input),
 * else standard input itself when the code does not come from it and it is
 * not a terminal (`echo bob | pyexec run ask.py`). */
static int load_stdin(cli_project *p, const cli_opts *o, pyexec_error *err) {
    bool dash = o->stdin_file && strcmp(o->stdin_file, "-") == 0;
    if (o->stdin_file && !dash) {
        if (read_path(p, o->stdin_file, &p->stdin_data, &p->stdin_len, NULL, err) < 0)
            return pyexec_error_wrap(err, "--stdin-file");
        return 0;
    }
    if (code_from_stdin(o)) /* `--stdin-file -` was refused before */
        return 0;
    if (!dash && isatty(STDIN_FILENO))
        return 0;
    if (read_fd(p, STDIN_FILENO, "standard input", &p->stdin_data, &p->stdin_len, err) < 0)
        return pyexec_error_wrap(err, "the program's input");
    return 0;
}

int cli_project_load(cli_project *p, const cli_opts *o, pyexec_error *err) {
    memset(p, 0, sizeof *p);
    if (o->stdin_file && strcmp(o->stdin_file, "-") == 0 && code_from_stdin(o))
        return pyexec_error_set(err, PYEXEC_E_INVALID,
                                "--stdin-file -: standard input already carries the code");
    if (load_code(p, o, err) < 0)
        return -1;
    if (o->requirements_file) {
        uint8_t *req = NULL;
        size_t len = 0;
        if (read_path(p, o->requirements_file, &req, &len, NULL, err) < 0)
            return pyexec_error_wrap(err, "--requirements");
        if (memchr(req, '\0', len)) {
            free(req);
            return pyexec_error_set(err, PYEXEC_E_INVALID,
                                    "--requirements: '%s' contains a NUL byte",
                                    o->requirements_file);
        }
        p->requirements = (char *)req;
    }
    return load_stdin(p, o, err);
}

void cli_project_release(cli_project *p) {
    for (size_t i = 0; i < p->n_files; i++) {
        free((char *)p->files[i].path);
        free((uint8_t *)p->files[i].content);
    }
    free(p->files);
    free(p->tar);
    free(p->entrypoint);
    free(p->stdin_data);
    free(p->requirements);
    memset(p, 0, sizeof *p);
}

void cli_request_fill(pyexec_request *req, const cli_opts *o, const cli_project *p) {
    memset(req, 0, sizeof *req);
    req->entrypoint = o->entrypoint ? o->entrypoint : p->entrypoint;
    req->docker_image = o->image;
    req->requirements_txt = p->requirements;
    req->pre_commands = o->pre.v;
    req->n_pre_commands = o->pre.n;
    req->stdin_data = p->stdin_data;
    req->stdin_len = p->stdin_len;
    req->env_vars = o->env.v;
    req->n_env_vars = o->env.n;
    req->script_args = o->args.v;
    req->n_script_args = o->args.n;
    req->timeout_seconds = o->timeout_seconds;
    req->network = o->network ? PYEXEC_NETWORK_ENABLED : PYEXEC_NETWORK_DEFAULT;
    req->memory_mb = o->memory_mb;
    req->disk_mb = o->disk_mb;
    req->cpu_shares = o->cpu_shares;
    req->tar = p->tar;
    req->tar_len = p->tar_len;
    req->files = p->files;
    req->n_files = p->n_files;
    req->request_id = o->request_id;
    req->python_version = o->python;
}
