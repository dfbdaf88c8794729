/*
 * The extension headers of a tar entry, read from the input bytes before
 * libarchive turns them into C strings (see tar_internal.h).
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "server/base/quote.h"
#include "server/tar/tar_internal.h"

#define TAR_BLOCK 512

/* The size field of the ustar header at `h`: octal (digits after optional
 * spaces, ending at a space or NUL) or base-256 (first byte 0x80). Returns
 * false if it is neither or does not fit in 63 bits. */
static bool header_size(const uint8_t *h, uint64_t *out) {
    const uint8_t *f = h + 124;
    uint64_t v = 0;
    if (f[0] == 0x80) {
        for (int i = 1; i < 12; i++) {
            if (v >> 55)
                return false;
            v = v << 8 | f[i];
        }
        *out = v;
        return true;
    }
    int i = 0;
    while (i < 12 && f[i] == ' ')
        i++;
    for (; i < 12 && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v >> 60)
            return false;
        v = v << 3 | (uint64_t)(f[i] - '0');
    }
    if (i < 12 && f[i] != ' ' && f[i] != '\0')
        return false;
    *out = v;
    return true;
}

static bool has_prefix(const uint8_t *s, size_t len, const char *prefix) {
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

/* Checks the records of a pax extended header ("LEN key=value\n" each):
 * well-formed, and no NUL in a value that libarchive keeps as a C string
 * (every key but the binary xattr values, which are not used). */
static int check_pax_records(const uint8_t *p, size_t len, px_error *err) {
    px_quoted q;
    for (size_t i = 0; i < len;) {
        size_t rec_len = 0, j = i;
        for (; j < len && p[j] >= '0' && p[j] <= '9' && rec_len <= len; j++)
            rec_len = rec_len * 10 + (size_t)(p[j] - '0');
        if (j == i || j >= len || p[j] != ' ' || rec_len > len - i || rec_len < j - i + 3 ||
            p[i + rec_len - 1] != '\n')
            return px_error_set(err, PX_E_INVALID, "malformed pax record");
        const uint8_t *key = p + j + 1, *end = p + i + rec_len - 1;
        const uint8_t *eq = memchr(key, '=', (size_t)(end - key));
        if (!eq || eq == key)
            return px_error_set(err, PX_E_INVALID, "malformed pax record");
        size_t key_len = (size_t)(eq - key);
        if (memchr(key, 0, key_len))
            return px_error_set(err, PX_E_INVALID, "pax record key contains a NUL byte");
        bool binary = has_prefix(key, key_len, "SCHILY.xattr.") ||
                      has_prefix(key, key_len, "LIBARCHIVE.xattr.");
        if (!binary && memchr(eq + 1, 0, (size_t)(end - eq - 1)))
            return px_error_set(err, PX_E_INVALID, "pax record '%s' contains a NUL byte",
                                px_quote(&q, (const char *)key, key_len));
        i += rec_len;
    }
    return 0;
}

/* See tar_internal.h. */
int px_tar_check_extension_headers(const uint8_t *tar, size_t len, int64_t pos, px_error *err) {
    if (pos < 0)
        return px_error_set(err, PX_E_INTERNAL, "tar: no header position");
    for (size_t at = (size_t)pos; at <= len && len - at >= TAR_BLOCK;) {
        const uint8_t *h = tar + at;
        char type = (char)h[156];
        if (type != 'x' && type != 'g' && type != 'L' && type != 'K')
            return 0;
        uint64_t size;
        if (!header_size(h, &size) || size > len - at - TAR_BLOCK)
            return px_error_set(err, PX_E_INVALID, "truncated extension header");
        const uint8_t *body = h + TAR_BLOCK;
        if (type == 'x' || type == 'g') {
            if (check_pax_records(body, (size_t)size, err) < 0)
                return -1;
        } else {
            size_t n = (size_t)size;
            while (n > 0 && body[n - 1] == 0)
                n--;
            if (memchr(body, 0, n))
                return px_error_set(err, PX_E_INVALID, "GNU long %s contains a NUL byte",
                                    type == 'L' ? "name" : "link target");
        }
        at += TAR_BLOCK + (size_t)((size + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK);
    }
    return 0;
}
