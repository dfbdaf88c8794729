#include "server/base/error.h"

#include <stdarg.h>

#include "server/base/errfmt.h"

_Static_assert(PX_ERROR_MSG_MAX <= PX_ERRFMT_MSG_MAX, "the message fits server/base/errfmt.h");

int px_error_set(px_error *err, px_code code, const char *fmt, ...) {
    if (!err)
        return -1;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    px_errfmt_vset(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int px_error_set_errno(px_error *err, px_code code, int errnum, const char *fmt, ...) {
    if (!err)
        return -1;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    px_errfmt_vset_errno(err->msg, sizeof err->msg, errnum, fmt, ap);
    va_end(ap);
    return -1;
}

int px_error_wrap(px_error *err, const char *fmt, ...) {
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    px_errfmt_vwrap(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
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
