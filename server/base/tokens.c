#include "server/base/tokens.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/cleanup.h"
#include "server/base/file.h"
#include "server/base/sha256.h"

/* A token file of PX_TOKENS_MAX lines of ~130 bytes. */
#define TOKENS_FILE_MAX (16 * 1024 * 1024)

typedef struct token_entry {
    uint8_t hash[PX_SHA256_LEN];
    char tenant[PX_TOKENS_TENANT_MAX + 1];
    size_t line; /* where it was read, for errors */
} token_entry;

struct px_tokens {
    token_entry *entries;
    size_t n;
};

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool tenant_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '@' || c == '-';
}

/* The next whitespace-separated field of line[*i..n), or len 0. */
static void next_field(const char *line, size_t n, size_t *i, const char **f, size_t *len) {
    while (*i < n && (line[*i] == ' ' || line[*i] == '\t'))
        (*i)++;
    *f = line + *i;
    while (*i < n && line[*i] != ' ' && line[*i] != '\t')
        (*i)++;
    *len = (size_t)(line + *i - *f);
}

/* One line (without its '\n' and comment): appended to `t`, or an error. */
static int parse_line(px_tokens *t, const char *name, size_t lineno, const char *line, size_t n,
                      size_t cap, px_error *err) {
    size_t i = 0, tlen, hlen, xlen;
    const char *tenant, *hash, *extra;
    next_field(line, n, &i, &tenant, &tlen);
    if (tlen == 0)
        return 0; /* blank */
    next_field(line, n, &i, &hash, &hlen);
    next_field(line, n, &i, &extra, &xlen);
    if (hlen == 0 || xlen != 0)
        return px_error_set(err, PX_E_INVALID,
                            "%s line %zu: expected 'TENANT SHA256HEX' (two fields), got %s", name,
                            lineno, hlen == 0 ? "one" : "more");
    if (tlen > PX_TOKENS_TENANT_MAX)
        return px_error_set(err, PX_E_INVALID, "%s line %zu: tenant longer than %d characters",
                            name, lineno, PX_TOKENS_TENANT_MAX);
    for (size_t k = 0; k < tlen; k++)
        if (!tenant_char(tenant[k]))
            return px_error_set(err, PX_E_INVALID,
                                "%s line %zu: tenant '%.*s' has a character other than letters, "
                                "digits and . _ @ -",
                                name, lineno, (int)tlen, tenant);
    token_entry e;
    bool hex = hlen == 2 * PX_SHA256_LEN;
    for (size_t k = 0; hex && k < PX_SHA256_LEN; k++) {
        int hi = hex_value(hash[2 * k]), lo = hex_value(hash[2 * k + 1]);
        hex = hi >= 0 && lo >= 0;
        e.hash[k] = (uint8_t)(hi << 4 | lo);
    }
    if (!hex)
        return px_error_set(err, PX_E_INVALID,
                            "%s line %zu: the hash is not 64 hex digits (the SHA-256 of the "
                            "token, e.g. from 'printf %%s TOKEN | sha256sum')",
                            name, lineno);
    if (t->n >= cap)
        return px_error_set(err, PX_E_INVALID, "%s: more than %d tokens", name, PX_TOKENS_MAX);
    memcpy(e.tenant, tenant, tlen);
    e.tenant[tlen] = '\0';
    e.line = lineno;
    t->entries[t->n++] = e;
    return 0;
}

static int hash_cmp(const void *a, const void *b) {
    return memcmp(((const token_entry *)a)->hash, ((const token_entry *)b)->hash, PX_SHA256_LEN);
}

/* By hash, then by line: duplicates end up next to each other, in order. */
static int by_hash(const void *a, const void *b) {
    const token_entry *x = a, *y = b;
    int c = memcmp(x->hash, y->hash, PX_SHA256_LEN);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

px_tokens *px_tokens_parse(const char *name, const char *text, size_t len, px_error *err) {
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    size_t cap = lines < PX_TOKENS_MAX ? lines : PX_TOKENS_MAX;
    px_tokens *t = calloc(1, sizeof *t);
    if (!t || !(t->entries = calloc(cap, sizeof *t->entries))) {
        free(t);
        px_error_set(err, PX_E_INTERNAL, "%s: out of memory", name);
        return NULL;
    }
    size_t lineno = 0;
    for (size_t start = 0; start < len;) {
        const char *nl = memchr(text + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t n = end - start;
        const char *hash_mark = memchr(text + start, '#', n);
        if (hash_mark)
            n = (size_t)(hash_mark - (text + start));
        while (n > 0 && text[start + n - 1] == '\r')
            n--;
        lineno++;
        if (memchr(text + start, '\0', n)) {
            px_error_set(err, PX_E_INVALID, "%s line %zu: a NUL byte", name, lineno);
            px_tokens_free(t);
            return NULL;
        }
        if (parse_line(t, name, lineno, text + start, n, cap, err) < 0) {
            px_tokens_free(t);
            return NULL;
        }
        start = end + 1;
    }
    qsort(t->entries, t->n, sizeof *t->entries, by_hash);
    for (size_t k = 1; k < t->n; k++) {
        const token_entry *a = &t->entries[k - 1], *b = &t->entries[k];
        if (memcmp(a->hash, b->hash, PX_SHA256_LEN) == 0) {
            px_error_set(err, PX_E_INVALID,
                         "%s line %zu: the same hash as line %zu (tenant '%s'): one token names "
                         "one tenant",
                         name, b->line, a->line, a->tenant);
            px_tokens_free(t);
            return NULL;
        }
    }
    return t;
}

px_tokens *px_tokens_load(const char *path, px_error *err) {
    char name[1100];
    snprintf(name, sizeof name, "--auth-tokens '%s'", path);
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    if (px_file_read("--auth-tokens file", path, TOKENS_FILE_MAX, &text, &len, err) < 0)
        return NULL;
    return px_tokens_parse(name, text, len, err);
}

size_t px_tokens_count(const px_tokens *t) {
    return t ? t->n : 0;
}

const char *px_tokens_find(const px_tokens *t, const char *token, size_t len) {
    if (!t)
        return NULL;
    token_entry key;
    px_sha256(token, len, key.hash);
    /* A search by hash: its timing tells about the SHA-256 of the token
     * presented, which the caller knows already, not about a token. */
    const token_entry *e = bsearch(&key, t->entries, t->n, sizeof *t->entries, hash_cmp);
    return e ? e->tenant : NULL;
}

void px_tokens_free(px_tokens *t) {
    if (!t)
        return;
    free(t->entries);
    free(t);
}
