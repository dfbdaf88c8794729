/*
 * requirements_txt: the grammar check and the normalised form (see
 * requirements.h). One line at a time: cut the comment, refuse the forms
 * that are not requirements with a message saying which form it is, then
 * parse name, extras, specifiers and marker, building the line's normalised
 * form as it goes.
 */
#include "server/model/requirements.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/cleanup.h"
#include "server/base/quote.h"

static bool is_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_blank(char c) {
    return c == ' ' || c == '\t';
}

static bool is_name_char(char c) {
    return is_alnum(c) || c == '-' || c == '_' || c == '.';
}

static bool is_version_char(char c) {
    return is_alnum(c) || strchr(".*+!_-", c) != NULL;
}

static bool ends_with(const char *s, size_t len, const char *suffix) {
    size_t n = strlen(suffix);
    if (len < n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[len - n + i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != suffix[i])
            return false;
    }
    return true;
}

int px_requirement_canonical_name(const char *name, size_t len, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '-' || c == '_' || c == '.') {
            while (i + 1 < len && (name[i + 1] == '-' || name[i + 1] == '_' || name[i + 1] == '.'))
                i++;
            c = '-';
        } else if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    if (o >= cap)
        return -1;
    out[o] = '\0';
    return 0;
}

/* A growing string. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_adds(sbuf *b, const char *s) {
    sb_add(b, s, strlen(s));
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One line being parsed: its text (comment cut, trimmed), its number, and
 * where the error goes. */
typedef struct line_ctx {
    const char *s;
    size_t len;
    size_t pos;
    size_t number;
    px_error *err;
} line_ctx;

/* Sets err to "line N ('<the line, quoted>'): <why>". Returns -1. */
static int refuse(line_ctx *l, const char *why) {
    px_quoted q;
    return px_error_set(l->err, PX_E_INVALID, "line %zu ('%s'): %s", l->number,
                        px_quote(&q, l->s, l->len), why);
}

static void skip_blanks(line_ctx *l) {
    while (l->pos < l->len && is_blank(l->s[l->pos]))
        l->pos++;
}

/* A name ([A-Za-z0-9] at both ends, [A-Za-z0-9._-] between) at l->pos:
 * returns its length (l->pos moves past it), or 0 when there is none. */
static size_t take_name(line_ctx *l) {
    size_t start = l->pos;
    while (l->pos < l->len && is_name_char(l->s[l->pos]))
        l->pos++;
    size_t n = l->pos - start;
    if (n == 0 || !is_alnum(l->s[start]) || !is_alnum(l->s[l->pos - 1])) {
        l->pos = start;
        return 0;
    }
    return n;
}

/* The forms that are not requirements, named so that the user knows what
 * was wrong. Returns 0 if the line is none of them. */
static int refuse_known_forms(line_ctx *l) {
    const char *s = l->s;
    if (s[0] == '-')
        return refuse(l, "options are not allowed (the server chooses where packages come from); "
                         "name requirements only");
    if (memmem(s, l->len, "://", 3))
        return refuse(l, "URLs are not allowed; name requirements only");
    if (memchr(s, '@', l->len))
        return refuse(l, "direct references (name @ URL) are not allowed; name requirements "
                         "only");
    if (memmem(s, l->len, "${", 2))
        return refuse(l, "environment variables are not allowed");
    if (s[l->len - 1] == '\\')
        return refuse(l, "line continuations are not allowed");
    if (s[0] == '.' || s[0] == '/' || s[0] == '~' || memchr(s, '/', l->len) ||
        memchr(s, '\\', l->len))
        return refuse(l, "paths are not allowed; name requirements only");
    static const char *const archives[] = {".whl",     ".zip", ".tar",    ".tar.gz", ".tgz",
                                           ".tar.bz2", ".tbz", ".tar.xz", ".txz"};
    size_t name_end = 0;
    while (name_end < l->len && is_name_char(s[name_end]))
        name_end++;
    for (size_t i = 0; i < PX_ARRAY_SIZE(archives); i++)
        if (ends_with(s, name_end, archives[i]))
            return refuse(l, "paths are not allowed (that is a file name); name requirements "
                             "only");
    return 0;
}

/* "[a, B_c]" -> "[a,b-c]" (canonical, sorted). */
static int parse_extras(line_ctx *l, sbuf *out) {
    enum { EXTRAS_MAX = 64 };
    char *extras[EXTRAS_MAX];
    size_t n = 0;
    int rc = -1;
    l->pos++; /* '[' */
    skip_blanks(l);
    if (l->pos < l->len && l->s[l->pos] == ']') {
        l->pos++;
        return 0;
    }
    for (;;) {
        skip_blanks(l);
        size_t start = l->pos;
        size_t len = take_name(l);
        if (len == 0) {
            refuse(l, "an extra must be a name");
            goto done;
        }
        if (n == EXTRAS_MAX) {
            refuse(l, "too many extras");
            goto done;
        }
        char canon[PX_REQUIREMENT_LINE_MAX + 1];
        px_requirement_canonical_name(l->s + start, len, canon, sizeof canon);
        if (!(extras[n] = strdup(canon))) {
            px_error_set(l->err, PX_E_INTERNAL, "out of memory");
            goto done;
        }
        n++;
        skip_blanks(l);
        if (l->pos < l->len && l->s[l->pos] == ',') {
            l->pos++;
            continue;
        }
        if (l->pos < l->len && l->s[l->pos] == ']') {
            l->pos++;
            break;
        }
        refuse(l, "extras must be names separated by ',' and closed by ']'");
        goto done;
    }
    qsort(extras, n, sizeof extras[0], cmp_str);
    sb_adds(out, "[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(extras[i], extras[i - 1]) == 0)
            continue;
        if (i > 0)
            sb_adds(out, ",");
        sb_adds(out, extras[i]);
    }
    sb_adds(out, "]");
    rc = 0;
done:
    for (size_t i = 0; i < n; i++)
        free(extras[i]);
    return rc;
}

/* The comparison operators of PEP 440, longest first. */
static const char *const spec_ops[] = {"===", "~=", "==", "!=", "<=", ">=", "<", ">"};

static size_t match_op(const line_ctx *l) {
    for (size_t i = 0; i < PX_ARRAY_SIZE(spec_ops); i++) {
        size_t n = strlen(spec_ops[i]);
        if (l->pos + n <= l->len && memcmp(l->s + l->pos, spec_ops[i], n) == 0)
            return n;
    }
    return 0;
}

/* ">= 1.0 , <2" or "(>=1.0)" -> "<2,>=1.0" (blanks dropped, sorted). */
static int parse_specifiers(line_ctx *l, sbuf *out) {
    enum { SPECS_MAX = 32 };
    char *specs[SPECS_MAX];
    size_t n = 0;
    int rc = -1;
    bool paren = l->s[l->pos] == '(';
    if (paren)
        l->pos++;
    for (;;) {
        skip_blanks(l);
        size_t op = match_op(l);
        if (op == 0) {
            refuse(l, "a version specifier must start with one of ~= == != <= >= < > ===");
            goto done;
        }
        size_t op_at = l->pos;
        l->pos += op;
        skip_blanks(l);
        size_t v = l->pos;
        while (l->pos < l->len && is_version_char(l->s[l->pos]))
            l->pos++;
        if (l->pos == v) {
            refuse(l, "a version specifier needs a version");
            goto done;
        }
        if (n == SPECS_MAX) {
            refuse(l, "too many version specifiers");
            goto done;
        }
        char *s = malloc(op + (l->pos - v) + 1);
        if (!s) {
            px_error_set(l->err, PX_E_INTERNAL, "out of memory");
            goto done;
        }
        memcpy(s, l->s + op_at, op);
        memcpy(s + op, l->s + v, l->pos - v);
        s[op + l->pos - v] = '\0';
        specs[n++] = s;
        skip_blanks(l);
        if (l->pos < l->len && l->s[l->pos] == ',') {
            l->pos++;
            continue;
        }
        break;
    }
    if (paren) {
        if (l->pos >= l->len || l->s[l->pos] != ')') {
            refuse(l, "'(' before the version specifiers is not closed");
            goto done;
        }
        l->pos++;
    }
    qsort(specs, n, sizeof specs[0], cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(specs[i], specs[i - 1]) == 0)
            continue;
        if (i > 0)
            sb_adds(out, ",");
        sb_adds(out, specs[i]);
    }
    rc = 0;
done:
    for (size_t i = 0; i < n; i++)
        free(specs[i]);
    return rc;
}

/* The words an environment marker may use (PEP 508, with the operators
 * "in", "not in" and the connectives). */
static const char *const marker_words[] = {
    "python_version",
    "python_full_version",
    "os_name",
    "sys_platform",
    "platform_release",
    "platform_system",
    "platform_version",
    "platform_machine",
    "platform_python_implementation",
    "implementation_name",
    "implementation_version",
    "extra",
    "and",
    "or",
    "in",
    "not",
};

/* The marker after ';': only PEP 508's tokens, parentheses balanced.
 * Appends " ; " and the tokens separated by single blanks. pip checks the
 * expression's structure when it evaluates it. */
static int parse_marker(line_ctx *l, sbuf *out) {
    int depth = 0;
    size_t tokens = 0;
    sbuf m = {0};
    while (true) {
        skip_blanks(l);
        if (l->pos >= l->len)
            break;
        char c = l->s[l->pos];
        size_t start = l->pos;
        if (c == '(' || c == ')') {
            depth += c == '(' ? 1 : -1;
            if (depth < 0) {
                free(m.p);
                return refuse(l, "the marker has a ')' without its '('");
            }
            l->pos++;
        } else if (c == '\'' || c == '"') {
            const char *end = memchr(l->s + start + 1, c, l->len - start - 1);
            if (!end) {
                free(m.p);
                return refuse(l, "the marker has an unterminated string");
            }
            l->pos = (size_t)(end - l->s) + 1;
        } else if (match_op(l) > 0) {
            l->pos += match_op(l);
        } else if (is_alnum(c) || c == '_') {
            while (l->pos < l->len && (is_alnum(l->s[l->pos]) || l->s[l->pos] == '_'))
                l->pos++;
            bool known = false;
            for (size_t i = 0; i < PX_ARRAY_SIZE(marker_words) && !known; i++)
                known = strlen(marker_words[i]) == l->pos - start &&
                        memcmp(marker_words[i], l->s + start, l->pos - start) == 0;
            if (!known) {
                free(m.p);
                return refuse(l, "the marker uses a word that is not a PEP 508 marker variable "
                                 "or operator");
            }
        } else {
            free(m.p);
            return refuse(l, "the marker has a character PEP 508 markers do not use");
        }
        if (tokens++ > 0)
            sb_adds(&m, " ");
        sb_add(&m, l->s + start, l->pos - start);
    }
    if (depth != 0 || tokens == 0) {
        free(m.p);
        return refuse(l, tokens == 0 ? "';' is not followed by a marker"
                                     : "the marker has a '(' without its ')'");
    }
    sb_adds(out, " ; ");
    sb_add(out, m.p, m.len);
    free(m.p);
    return 0;
}

/* Parses one requirement line (comment cut, trimmed, not empty) into its
 * normalised form (a new string in *out). */
static int parse_line(line_ctx *l, char **out) {
    if (refuse_known_forms(l) < 0)
        return -1;
    sbuf b = {0};
    size_t len = take_name(l);
    if (len == 0)
        return refuse(l, "a requirement starts with a distribution name ([A-Za-z0-9], with "
                         "'.', '-', '_' inside)");
    char canon[PX_REQUIREMENT_LINE_MAX + 1];
    px_requirement_canonical_name(l->s, len, canon, sizeof canon);
    sb_adds(&b, canon);
    skip_blanks(l);
    int rc = 0;
    if (l->pos < l->len && l->s[l->pos] == '[')
        rc = parse_extras(l, &b);
    if (rc == 0) {
        skip_blanks(l);
        if (l->pos < l->len && strchr("(<>=!~", l->s[l->pos]))
            rc = parse_specifiers(l, &b);
    }
    if (rc == 0) {
        skip_blanks(l);
        if (l->pos < l->len && l->s[l->pos] == ';') {
            l->pos++;
            rc = parse_marker(l, &b);
        } else if (l->pos < l->len) {
            rc = refuse(l, "unexpected text after the requirement (expected extras, version "
                           "specifiers or '; marker')");
        }
    }
    if (rc == 0 && b.oom)
        rc = px_error_set(l->err, PX_E_INTERNAL, "out of memory");
    /* Normalising can lengthen a line (a blank between marker tokens): the
     * normalised form must itself be a line this parser accepts. */
    if (rc == 0 && b.len > PX_REQUIREMENT_LINE_MAX)
        rc = refuse(l, "the line normalised (a blank between marker tokens) would be over the "
                       "maximum line length");
    if (rc < 0) {
        free(b.p);
        return -1;
    }
    *out = b.p;
    return 0;
}

void px_requirements_release(px_requirements *r) {
    if (!r)
        return;
    free(r->normalised);
    memset(r, 0, sizeof *r);
}

int px_requirements_parse(const char *text, size_t max_lines, px_requirements *out, px_error *err) {
    memset(out, 0, sizeof *out);
    char **lines = NULL;
    size_t n = 0, cap = 0, number = 0;
    bool dash = false;
    int rc = -1;
    for (const char *p = text ? text : ""; *p;) {
        const char *nl = strchr(p, '\n');
        size_t raw = nl ? (size_t)(nl - p) : strlen(p);
        line_ctx l = {.s = p, .len = raw, .number = ++number, .err = err};
        p = nl ? nl + 1 : p + raw;
        if (raw > PX_REQUIREMENT_LINE_MAX) {
            px_error_set(err, PX_E_INVALID, "line %zu: %zu bytes, the maximum is %d", l.number, raw,
                         PX_REQUIREMENT_LINE_MAX);
            goto done;
        }
        for (size_t i = 0; i < l.len; i++) {
            if (l.s[i] == '#' && (i == 0 || is_blank(l.s[i - 1]))) {
                l.len = i;
                break;
            }
        }
        while (l.len > 0 && (is_blank(l.s[l.len - 1]) || l.s[l.len - 1] == '\r'))
            l.len--;
        while (l.len > 0 && is_blank(l.s[0])) {
            l.s++;
            l.len--;
        }
        if (l.len == 0)
            continue;
        if (l.len == 1 && l.s[0] == '-') {
            dash = true;
            continue;
        }
        if (n == max_lines) {
            px_error_set(err, PX_E_INVALID, "line %zu: more than %zu requirements", l.number,
                         max_lines);
            goto done;
        }
        if (n == cap) {
            size_t c = cap ? 2 * cap : 16;
            char **v = realloc(lines, c * sizeof *v);
            if (!v) {
                px_error_set(err, PX_E_INTERNAL, "out of memory");
                goto done;
            }
            lines = v;
            cap = c;
        }
        if (parse_line(&l, &lines[n]) < 0)
            goto done;
        n++;
    }
    if (dash && n > 0) {
        px_error_set(err, PX_E_INVALID,
                     "'-' (detect no requirements) cannot be combined with requirements");
        goto done;
    }
    if (n > 0)
        qsort(lines, n, sizeof lines[0], cmp_str);
    sbuf b = {0};
    sb_adds(&b, dash ? "-\n" : "");
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(lines[i], lines[i - 1]) == 0)
            continue;
        sb_adds(&b, lines[i]);
        sb_adds(&b, "\n");
        count++;
    }
    if (b.oom) {
        free(b.p);
        px_error_set(err, PX_E_INTERNAL, "out of memory");
        goto done;
    }
    out->normalised = b.p;
    out->count = count;
    out->no_detect = dash;
    rc = 0;
done:
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    return rc;
}
