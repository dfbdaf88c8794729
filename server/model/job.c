#include "server/model/job.h"

#include <stdlib.h>
#include <string.h>

const char *px_status_name(px_status s) {
    switch (s) {
    case PX_STATUS_PENDING: return "PENDING";
    case PX_STATUS_RUNNING: return "RUNNING";
    case PX_STATUS_COMPLETED: return "COMPLETED";
    case PX_STATUS_FAILED: return "FAILED";
    case PX_STATUS_KILLED: return "KILLED";
    case PX_STATUS_UNSPECIFIED: break;
    }
    return "UNSPECIFIED";
}

const char *px_reason_name(px_reason r) {
    switch (r) {
    case PX_REASON_EXITED: return "EXITED";
    case PX_REASON_TIMEOUT: return "TIMEOUT";
    case PX_REASON_MEMORY_LIMIT: return "MEMORY_LIMIT";
    case PX_REASON_OUTPUT_LIMIT: return "OUTPUT_LIMIT";
    case PX_REASON_KILLED: return "KILLED";
    case PX_REASON_CLIENT_CANCELLED: return "CLIENT_CANCELLED";
    case PX_REASON_LOST: return "LOST";
    case PX_REASON_SANDBOX_ERROR: return "SANDBOX_ERROR";
    case PX_REASON_UNSPECIFIED: break;
    }
    return "UNSPECIFIED";
}

static void free_strv(char **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void px_job_spec_free(px_job_spec *spec) {
    if (!spec)
        return;
    free(spec->image);
    free(spec->entrypoint);
    free(spec->tar);
    free(spec->stdin_data);
    free_strv(spec->env, spec->n_env);
    free_strv(spec->args, spec->n_args);
    free_strv(spec->pre_commands, spec->n_pre_commands);
    free(spec->requirements_txt);
    free(spec);
}

void px_py_report_release(px_py_report *r) {
    if (!r)
        return;
    free(r->result);
    free(r->error_type);
    free(r->error_message);
    memset(r, 0, sizeof *r);
}

static bool dup_opt(char **dst, const char *src) {
    *dst = src ? strdup(src) : NULL;
    return !src || *dst;
}

int px_py_report_copy(px_py_report *dst, const px_py_report *src) {
    memset(dst, 0, sizeof *dst);
    dst->error_line = src->error_line;
    if (!dup_opt(&dst->result, src->result) || !dup_opt(&dst->error_type, src->error_type) ||
        !dup_opt(&dst->error_message, src->error_message)) {
        px_py_report_release(dst);
        return -1;
    }
    return 0;
}

size_t px_py_report_bytes(const px_py_report *r) {
    return (r->result ? strlen(r->result) : 0) + (r->error_type ? strlen(r->error_type) : 0) +
           (r->error_message ? strlen(r->error_message) : 0);
}
