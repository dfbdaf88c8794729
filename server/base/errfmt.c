#include "server/base/errfmt.h"

#include <stdio.h>
#include <string.h>

void px_errfmt_vset(char *msg, size_t cap, const char *fmt, va_list ap) {
    vsnprintf(msg, cap, fmt, ap);
}

void px_errfmt_vset_errno(char *msg, size_t cap, int errnum, const char *fmt, va_list ap) {
    vsnprintf(msg, cap, fmt, ap);
    size_t len = strlen(msg);
    snprintf(msg + len, cap - len, ": %s", strerror(errnum));
}

void px_errfmt_vwrap(char *msg, size_t cap, const char *fmt, va_list ap) {
    if (cap > PX_ERRFMT_MSG_MAX)
        cap = PX_ERRFMT_MSG_MAX;
    char ctx[PX_ERRFMT_MSG_MAX];
    vsnprintf(ctx, cap, fmt, ap);
    size_t n = strlen(ctx);
    if (n > cap - 3)
        n = cap - 3;
    /* The old message moves right behind "ctx: ", losing its tail if the
     * whole no longer fits. */
    size_t head = n + 2;
    size_t rest = strnlen(msg, cap);
    if (rest > cap - 1 - head)
        rest = cap - 1 - head;
    memmove(msg + head, msg, rest);
    memcpy(msg, ctx, n);
    msg[n] = ':';
    msg[n + 1] = ' ';
    msg[head + rest] = '\0';
}
