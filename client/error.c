#include "client/pyexec_error.h"

#include <stdarg.h>

#include "server/base/errfmt.h"

_Static_assert(PYEXEC_ERROR_MSG_MAX <= PX_ERRFMT_MSG_MAX, "the message fits server/base/errfmt.h");

int pyexec_error_set(pyexec_error *err, pyexec_code code, const char *fmt, ...) {
    if (!err)
        return -1;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    px_errfmt_vset(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int pyexec_error_set_errno(pyexec_error *err, pyexec_code code, int errnum, const char *fmt, ...) {
    if (!err)
        return -1;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    px_errfmt_vset_errno(err->msg, sizeof err->msg, errnum, fmt, ap);
    va_end(ap);
    return -1;
}

int pyexec_error_wrap(pyexec_error *err, const char *fmt, ...) {
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    px_errfmt_vwrap(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

void pyexec_error_clear(pyexec_error *err) {
    if (!err)
        return;
    err->code = PYEXEC_OK;
    err->msg[0] = '\0';
}

const char *pyexec_code_name(pyexec_code code) {
    switch (code) {
    case PYEXEC_OK: return "OK";
    case PYEXEC_E_INVALID: return "INVALID_ARGUMENT";
    case PYEXEC_E_NOT_FOUND: return "NOT_FOUND";
    case PYEXEC_E_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case PYEXEC_E_UNAVAILABLE: return "UNAVAILABLE";
    case PYEXEC_E_PRECONDITION: return "FAILED_PRECONDITION";
    case PYEXEC_E_OUT_OF_RANGE: return "OUT_OF_RANGE";
    case PYEXEC_E_CANCELLED: return "CANCELLED";
    case PYEXEC_E_TIMEOUT: return "DEADLINE_EXCEEDED";
    case PYEXEC_E_INTERNAL: return "INTERNAL";
    }
    return "UNKNOWN";
}
