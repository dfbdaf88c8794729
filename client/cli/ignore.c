/*
 * Which files of a directory argument stay home: the default rules (VCS and
 * cache directories) and the directory's .pyexecignore, in a subset of
 * gitignore syntax (docs/cli.md "Ignored files"):
 *
 *   blank lines and lines starting with '#' are skipped; "\#" and "\!"
 *   start a pattern with '#' or '!'; trailing spaces are dropped;
 *   '!' negates: a later match re-includes what an earlier one excluded;
 *   a trailing '/' matches directories only;
 *   a pattern with a '/' before its end is anchored at the directory
 *   argument (a leading '/' only anchors); one without matches the name at
 *   any depth;
 *   '*', '?' and '[...]' match within one path segment; a "**" segment
 *   matches any number of segments ("**" + "/x", "a/" + "**", "a/" + "**" + "/b").
 *
 * The last rule that matches decides. An excluded directory is not walked,
 * so nothing below it can be re-included (as in git). Only the top-level
 * .pyexecignore is read.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/cli/cli.h"
#include "server/base/cleanup.h"

#define IGNORE_FILE ".pyexecignore"
#define IGNORE_MAX_BYTES (1u << 20)
#define IGNORE_MAX_RULES 10000
#define IGNORE_MAX_SEGMENTS 64
#define IGNORE_MAX_STARSTAR 4 /* "**" segments per pattern: bounds the backtracking */

/* Applied before the file's rules, so a '!' line can undo them. */
static const char *const default_rules[] = {
    ".git",  ".hg",          ".svn",           "__pycache__/",
    "*.pyc", ".mypy_cache/", ".pytest_cache/", ".ruff_cache/",
};

typedef struct rule {
    char *pattern; /* without '!', the leading '/' and the trailing '/' */
    bool negate, dir_only, anchored;
} rule;

struct cli_ignore {
    rule *rules;
    size_t n, cap;
};

void cli_ignore_free(cli_ignore *ig) {
    if (!ig)
        return;
    for (size_t i = 0; i < ig->n; i++)
        free(ig->rules[i].pattern);
    free(ig->rules);
    free(ig);
}

/* Adds the rule on line `line` (a NUL-terminated copy); blank and comment
 * lines add nothing. */
static int add_rule(cli_ignore *ig, char *line, const char *source, size_t lineno,
                    pyexec_error *err) {
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\r'))
        line[--len] = '\0';
    if (len == 0 || line[0] == '#')
        return 0;
    rule r = {0};
    char *p = line;
    if (p[0] == '!') {
        r.negate = true;
        p++;
    } else if (p[0] == '\\' && (p[1] == '#' || p[1] == '!')) {
        p++;
    }
    len = strlen(p);
    if (len > 0 && p[len - 1] == '/') {
        r.dir_only = true;
        p[--len] = '\0';
    }
    if (p[0] == '/') {
        r.anchored = true;
        p++;
    }
    if (strchr(p, '/'))
        r.anchored = true;
    if (!*p)
        return pyexec_error_set(err, PYEXEC_E_INVALID, "%s:%zu: empty pattern", source, lineno);
    size_t segments = 1, starstar = 0;
    for (const char *s = p; *s; s++)
        segments += *s == '/';
    for (const char *s = p; (s = strstr(s, "**")); s += 2)
        starstar++;
    if (segments > IGNORE_MAX_SEGMENTS || starstar > IGNORE_MAX_STARSTAR)
        return pyexec_error_set(err, PYEXEC_E_INVALID,
                                "%s:%zu: pattern has more than %d segments or %d '**'", source,
                                lineno, IGNORE_MAX_SEGMENTS, IGNORE_MAX_STARSTAR);
    if (ig->n == IGNORE_MAX_RULES)
        return pyexec_error_set(err, PYEXEC_E_INVALID, "%s: more than %d rules", source,
                                IGNORE_MAX_RULES);
    if (ig->n == ig->cap) {
        size_t cap = ig->cap ? 2 * ig->cap : 16;
        rule *nr = realloc(ig->rules, cap * sizeof *nr);
        if (!nr)
            return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory");
        ig->rules = nr;
        ig->cap = cap;
    }
    r.pattern = strdup(p);
    if (!r.pattern)
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory");
    ig->rules[ig->n++] = r;
    return 0;
}

static int add_text(cli_ignore *ig, const char *text, size_t len, const char *source,
                    pyexec_error *err) {
    size_t lineno = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (text + i)) : len - i;
        _cleanup_free_ char *line = strndup(text + i, n);
        if (!line)
            return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory");
        if (strlen(line) != n)
            return pyexec_error_set(err, PYEXEC_E_INVALID, "%s:%zu: NUL byte", source, lineno + 1);
        if (add_rule(ig, line, source, ++lineno, err) < 0)
            return -1;
        i += n + 1;
    }
    return 0;
}

cli_ignore *cli_ignore_load(const char *dir, pyexec_error *err) {
    cli_ignore *ig = calloc(1, sizeof *ig);
    if (!ig)
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory"), NULL;
    for (size_t i = 0; i < PX_ARRAY_SIZE(default_rules); i++) {
        _cleanup_free_ char *line = strdup(default_rules[i]);
        if (!line || add_rule(ig, line, "default rules", i + 1, err) < 0) {
            if (!line)
                pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory");
            cli_ignore_free(ig);
            return NULL;
        }
    }
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/" IGNORE_FILE, dir) < 0) {
        cli_ignore_free(ig);
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory"), NULL;
    }
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return ig;
        pyexec_error_set_errno(err, PYEXEC_E_INVALID, errno, "open '%s'", path);
        cli_ignore_free(ig);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > IGNORE_MAX_BYTES) {
        pyexec_error_set(err, PYEXEC_E_INVALID, "'%s': not a regular file of at most %u bytes",
                         path, IGNORE_MAX_BYTES);
        cli_ignore_free(ig);
        return NULL;
    }
    _cleanup_free_ char *text = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (text && got < (size_t)st.st_size) {
        ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (!text || add_text(ig, text, got, path, err) < 0) {
        if (!text)
            pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory");
        cli_ignore_free(ig);
        return NULL;
    }
    return ig;
}

/* Matches pattern segments p[0..np) against path segments s[0..ns). */
static bool match_segments(char **p, size_t np, char **s, size_t ns) {
    if (np == 0)
        return ns == 0;
    if (strcmp(p[0], "**") == 0) {
        /* A trailing "**" matches one or more segments: "a/" + "**" is what is inside a. */
        for (size_t k = np == 1 ? 1 : 0; k <= ns; k++)
            if (match_segments(p + 1, np - 1, s + k, ns - k))
                return true;
        return false;
    }
    return ns > 0 && fnmatch(p[0], s[0], 0) == 0 && match_segments(p + 1, np - 1, s + 1, ns - 1);
}

/* Splits a copy of `path` at '/' into at most IGNORE_MAX_SEGMENTS segments;
 * returns their count, or 0 if there are more. */
static size_t split(char *copy, char **seg) {
    size_t n = 0;
    for (char *s = copy;; s++) {
        if (n == IGNORE_MAX_SEGMENTS)
            return 0;
        seg[n++] = s;
        s = strchr(s, '/');
        if (!s)
            return n;
        *s = '\0';
    }
}

static bool rule_matches(const rule *r, const char *rel, const char *name, bool is_dir) {
    if (r->dir_only && !is_dir)
        return false;
    if (!r->anchored)
        return fnmatch(r->pattern, name, 0) == 0;
    char pbuf[PATH_MAX], sbuf[PATH_MAX];
    char *pseg[IGNORE_MAX_SEGMENTS], *sseg[IGNORE_MAX_SEGMENTS];
    size_t pl = strlen(r->pattern), sl = strlen(rel);
    if (pl >= sizeof pbuf || sl >= sizeof sbuf)
        return false;
    memcpy(pbuf, r->pattern, pl + 1);
    memcpy(sbuf, rel, sl + 1);
    size_t np = split(pbuf, pseg), ns = split(sbuf, sseg);
    return np && ns && match_segments(pseg, np, sseg, ns);
}

bool cli_ignore_match(const cli_ignore *ig, const char *rel, bool is_dir) {
    const char *slash = strrchr(rel, '/');
    const char *name = slash ? slash + 1 : rel;
    bool ignored = false;
    for (size_t i = 0; i < ig->n; i++)
        if (rule_matches(&ig->rules[i], rel, name, is_dir))
            ignored = !ig->rules[i].negate;
    return ignored;
}
