#include "server/base/quote.h"

#include <string.h>

const char *px_quote(px_quoted *q, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    size_t shown = len < PX_QUOTE_MAX_BYTES ? len : PX_QUOTE_MAX_BYTES;
    size_t o = 0;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\') {
            q->s[o++] = '\\';
            q->s[o++] = 'x';
            q->s[o++] = hex[c >> 4];
            q->s[o++] = hex[c & 15];
        } else {
            q->s[o++] = (char)c;
        }
    }
    if (shown < len) {
        memcpy(q->s + o, "...", 3);
        o += 3;
    }
    q->s[o] = '\0';
    return q->s;
}

const char *px_quote_str(px_quoted *q, const char *s) {
    return s ? px_quote(q, s, strlen(s)) : px_quote(q, "", 0);
}
