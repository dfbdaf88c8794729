#include "client/codec.h"

#include <stdlib.h>
#include <string.h>

#include "server/base/cleanup.h"

/* protobuf-c wants `char *` for fields it only reads while packing. */
static char *unconst(const char *s) {
    return (char *)s;
}

static char **unconst_array(const char *const *a) {
    return (char **)a;
}

static int check_limit(const char *name, int32_t v, pyexec_error *err) {
    if (v < 0)
        return pyexec_error_set(err, PYEXEC_E_INVALID, "%s must not be negative (got %d)", name,
                                (int)v);
    return 0;
}

int codec_request_init(codec_request *out, const pyexec_request *req, bool async,
                       pyexec_error *err) {
    memset(out, 0, sizeof *out);
    if (!req)
        return pyexec_error_set(err, PYEXEC_E_INVALID, "no request");
    if (check_limit("timeout_seconds", req->timeout_seconds, err) < 0 ||
        check_limit("memory_mb", req->memory_mb, err) < 0 ||
        check_limit("disk_mb", req->disk_mb, err) < 0 ||
        check_limit("cpu_shares", req->cpu_shares, err) < 0)
        return -1;
    if ((req->n_pre_commands && !req->pre_commands) || (req->n_env_vars && !req->env_vars) ||
        (req->n_script_args && !req->script_args) || (req->n_files && !req->files) ||
        (req->tar_len && !req->tar) || (req->stdin_len && !req->stdin_data))
        return pyexec_error_set(err, PYEXEC_E_INVALID, "a count is set but its array is NULL");

    Pyexec__V1__ExecuteRequest msg = PYEXEC__V1__EXECUTE_REQUEST__INIT;
    Pyexec__V1__Metadata meta = PYEXEC__V1__METADATA__INIT;
    Pyexec__V1__ExecutionConfig config = PYEXEC__V1__EXECUTION_CONFIG__INIT;
    Google__Protobuf__BoolValue net = GOOGLE__PROTOBUF__BOOL_VALUE__INIT;
    out->msg = msg;
    out->meta = meta;
    out->config = config;
    out->network_disabled = net;

    if (req->entrypoint)
        out->meta.entrypoint = unconst(req->entrypoint);
    if (req->docker_image)
        out->meta.docker_image = unconst(req->docker_image);
    if (req->requirements_txt)
        out->meta.requirements_txt = unconst(req->requirements_txt);
    out->meta.n_pre_commands = req->n_pre_commands;
    out->meta.pre_commands = unconst_array(req->pre_commands);
    out->meta.stdin.len = req->stdin_len;
    out->meta.stdin.data = (uint8_t *)req->stdin_data;
    out->meta.n_env_vars = req->n_env_vars;
    out->meta.env_vars = unconst_array(req->env_vars);
    out->meta.n_script_args = req->n_script_args;
    out->meta.script_args = unconst_array(req->script_args);

    out->config.timeout_seconds = req->timeout_seconds;
    out->config.memory_mb = req->memory_mb;
    out->config.disk_mb = req->disk_mb;
    out->config.cpu_shares = req->cpu_shares;
    switch (req->network) {
    case PYEXEC_NETWORK_DEFAULT: break;
    case PYEXEC_NETWORK_DISABLED:
        out->network_disabled.value = 1;
        out->config.network_disabled = &out->network_disabled;
        break;
    case PYEXEC_NETWORK_ENABLED:
        out->network_disabled.value = 0;
        out->config.network_disabled = &out->network_disabled;
        break;
    default:
        return pyexec_error_set(err, PYEXEC_E_INVALID, "unknown network setting %d",
                                (int)req->network);
    }
    out->meta.config = &out->config;
    out->msg.metadata = &out->meta;

    out->msg.tar.len = req->tar_len;
    out->msg.tar.data = (uint8_t *)req->tar;
    if (req->n_files) {
        out->file_msgs = calloc(req->n_files, sizeof *out->file_msgs);
        out->file_ptrs = calloc(req->n_files, sizeof *out->file_ptrs);
        if (!out->file_msgs || !out->file_ptrs) {
            codec_request_release(out);
            return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory for %zu files",
                                    req->n_files);
        }
        for (size_t i = 0; i < req->n_files; i++) {
            const pyexec_file *f = &req->files[i];
            if (!f->path || (f->len && !f->content)) {
                codec_request_release(out);
                return pyexec_error_set(err, PYEXEC_E_INVALID, "file %zu has no path or no content",
                                        i);
            }
            Pyexec__V1__File fm = PYEXEC__V1__FILE__INIT;
            fm.path = unconst(f->path);
            fm.content.len = f->len;
            fm.content.data = (uint8_t *)f->content;
            fm.mode = f->mode;
            out->file_msgs[i] = fm;
            out->file_ptrs[i] = &out->file_msgs[i];
        }
        out->msg.n_files = req->n_files;
        out->msg.files = out->file_ptrs;
    }
    out->msg.async = async;
    if (req->request_id)
        out->msg.request_id = unconst(req->request_id);
    if (req->python_version)
        out->meta.python_version = unconst(req->python_version);
    return 0;
}

int codec_eval_init(codec_eval *out, const char *code, const pyexec_request *req, bool async,
                    pyexec_error *err) {
    memset(out, 0, sizeof *out);
    static const pyexec_request none = {0};
    if (!req)
        req = &none;
    if (req->tar_len || req->docker_image || req->n_pre_commands || req->n_script_args)
        return pyexec_error_set(err, PYEXEC_E_INVALID,
                                "Eval takes no tar, docker_image, pre_commands or script_args");
    if (code && req->n_files)
        return pyexec_error_set(err, PYEXEC_E_INVALID, "Eval: code or files, not both");
    if (codec_request_init(&out->base, req, async, err) < 0)
        return -1;
    const Pyexec__V1__Metadata *m = &out->base.meta;
    Pyexec__V1__EvalRequest msg = PYEXEC__V1__EVAL_REQUEST__INIT;
    out->msg = msg;
    if (code)
        out->msg.code = unconst(code);
    out->msg.n_files = out->base.msg.n_files;
    out->msg.files = out->base.msg.files;
    out->msg.entrypoint = m->entrypoint;
    out->msg.stdin = m->stdin;
    out->msg.config = m->config;
    out->msg.python_version = m->python_version;
    out->msg.requirements_txt = m->requirements_txt;
    out->msg.n_env_vars = m->n_env_vars;
    out->msg.env_vars = m->env_vars;
    out->msg.async = async;
    out->msg.request_id = out->base.msg.request_id;
    return 0;
}

void codec_eval_release(codec_eval *e) {
    if (e)
        codec_request_release(&e->base);
}

void codec_request_release(codec_request *r) {
    if (!r)
        return;
    free(r->file_msgs);
    free(r->file_ptrs);
    r->file_msgs = NULL;
    r->file_ptrs = NULL;
}

static char *dup_str(const char *s) {
    return strdup(s ? s : "");
}

/* Copies `len` bytes and adds a NUL; never returns a NULL buffer on success. */
static uint8_t *dup_bytes(const uint8_t *data, size_t len) {
    uint8_t *p = malloc(len + 1);
    if (!p)
        return NULL;
    if (len)
        memcpy(p, data, len);
    p[len] = '\0';
    return p;
}

pyexec_result *codec_result_from_msg(const Pyexec__V1__ExecutionResult *msg, pyexec_error *err) {
    _cleanup_free_ pyexec_result *r = calloc(1, sizeof *r);
    if (!r)
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory"), NULL;
    Pyexec__V1__ExecutionResult empty = PYEXEC__V1__EXECUTION_RESULT__INIT;
    if (!msg)
        msg = &empty;
    r->execution_id = dup_str(msg->execution_id);
    r->error = dup_str(msg->error);
    r->stdout_buf = dup_bytes(msg->stdout.data, msg->stdout.len);
    r->stderr_buf = dup_bytes(msg->stderr.data, msg->stderr.len);
    if (!r->execution_id || !r->error || !r->stdout_buf || !r->stderr_buf) {
        pyexec_result_free(TAKE_PTR(r));
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory copying a result"), NULL;
    }
    r->stdout_len = msg->stdout.len;
    r->stderr_len = msg->stderr.len;
    r->status = (pyexec_status)msg->status;
    r->exit_code = msg->exit_code;
    if (msg->started_at) {
        r->has_started_at = true;
        r->started_at_sec = msg->started_at->seconds;
        r->started_at_nsec = msg->started_at->nanos;
    }
    if (msg->finished_at) {
        r->has_finished_at = true;
        r->finished_at_sec = msg->finished_at->seconds;
        r->finished_at_nsec = msg->finished_at->nanos;
    }
    r->duration_ms = msg->duration_ms;
    r->reason = (pyexec_reason)msg->reason;
    r->output_truncated = msg->output_truncated;
    if (msg->usage) {
        r->peak_memory_bytes = msg->usage->peak_memory_bytes;
        r->cpu_time_ms = msg->usage->cpu_time_ms;
    }
    r->error_type = dup_str(msg->error_type);
    r->error_message = dup_str(msg->error_message);
    r->error_line = msg->error_line;
    if (msg->result)
        r->result = dup_str(msg->result->value);
    if (!r->error_type || !r->error_message || (msg->result && !r->result)) {
        pyexec_result_free(TAKE_PTR(r));
        return pyexec_error_set(err, PYEXEC_E_INTERNAL, "out of memory copying a result"), NULL;
    }
    return TAKE_PTR(r);
}
