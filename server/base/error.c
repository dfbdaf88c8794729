#include "server/base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void vset(px_error *err, px_code code, const char *fmt, va_list ap) {
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

int px_error_set(px_error *err, px_code code, const char *fmt, ...) {
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vset(err, code, fmt, ap);
    va_end(ap);
    return -1;
}

int px_error_set_errno(px_error *err, px_code code, int errnum, const char *fmt, ...) {
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vset(err, code, fmt, ap);
    va_end(ap);
    size_t len = strlen(err->msg);
    snprintf(err->msg + len, sizeof err->msg - len, ": %s", strerror(errnum));
    return -1;
}

int px_error_wrap(px_error *err, const char *fmt, ...) {
    if (!err)
        return -1;
    char ctx[PX_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    char old[PX_ERROR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(ctx);
    if (n > sizeof err->msg - 3)
        n = sizeof err->msg - 3;
    memcpy(err->msg, ctx, n);
    err->msg[n++] = ':';
    err->msg[n++] = ' ';
    size_t rest = strnlen(old, sizeof old);
    if (rest > sizeof err->msg - 1 - n)
        rest = sizeof err->msg - 1 - n;
    memcpy(err->msg + n, old, rest);
    err->msg[n + rest] = '\0';
    return -1;
}

void px_error_clear(px_error *err) {
    if (!err)
        return;
    err->code = PX_OK;
    err->msg[0] = '\0';
}

const char *px_code_name(px_code code) {
    switch (code) {
    case PX_OK: return "OK";
    case PX_E_INVALID: return "INVALID_ARGUMENT";
    case PX_E_NOT_FOUND: return "NOT_FOUND";
    case PX_E_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case PX_E_UNAVAILABLE: return "UNAVAILABLE";
    case PX_E_PRECONDITION: return "FAILED_PRECONDITION";
    case PX_E_OUT_OF_RANGE: return "OUT_OF_RANGE";
    case PX_E_EXISTS: return "ALREADY_EXISTS";
    case PX_E_CANCELLED: return "CANCELLED";
    case PX_E_TIMEOUT: return "DEADLINE_EXCEEDED";
    case PX_E_INTERNAL: return "INTERNAL";
    case PX_E_UNAUTHENTICATED: return "UNAUTHENTICATED";
    }
    return "UNKNOWN";
}
