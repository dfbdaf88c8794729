#include "server/rpc/codec.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/cleanup.h"
#include "server/base/quote.h"
#include "server/executor/reserved_env.h"
#include "server/model/requirements.h"
#include "server/tar/tar.h"

static int check_limit(const char *field, int32_t value, int def, int max, int *out,
                       px_error *err) {
    if (value < 0)
        return px_error_set(err, PX_E_INVALID, "metadata.config.%s: %d is negative", field, value);
    if (value > max)
        return px_error_set(err, PX_E_INVALID, "metadata.config.%s: %d is above the maximum %d",
                            field, value, max);
    *out = value == 0 ? def : value;
    return 0;
}

static int check_env(const char *kv, px_error *err) {
    const char *eq = strchr(kv, '=');
    px_quoted q;
    if (!eq)
        return px_error_set(err, PX_E_INVALID, "metadata.env_vars: '%s' is not KEY=value",
                            px_quote_str(&q, kv));
    size_t klen = (size_t)(eq - kv);
    if (klen == 0)
        return px_error_set(err, PX_E_INVALID, "metadata.env_vars: empty variable name");
    for (size_t i = 0; i < klen; i++) {
        char c = kv[i];
        bool ok = c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return px_error_set(err, PX_E_INVALID,
                                "metadata.env_vars: '%s' is not a valid variable name",
                                px_quote(&q, kv, klen));
    }
    const char *reserved = px_env_reserved(kv, klen);
    if (reserved)
        return px_error_set(err, PX_E_INVALID,
                            "metadata.env_vars: '%s' is set by the sandbox and cannot be "
                            "overridden",
                            reserved);
    return 0;
}

static char **copy_strv(char **v, size_t n, const char *field, int max_n, int64_t max_len,
                        int (*check)(const char *, px_error *), px_error *err) {
    if (n > (size_t)max_n) {
        px_error_set(err, PX_E_INVALID, "metadata.%s: %zu entries, the maximum is %d", field, n,
                     max_n);
        return NULL;
    }
    char **out = calloc(n + 1, sizeof *out);
    if (!out) {
        px_error_set(err, PX_E_INTERNAL, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(v[i]);
        if ((int64_t)len > max_len) {
            px_error_set(err, PX_E_INVALID, "metadata.%s[%zu]: %zu bytes, the maximum is %" PRId64,
                         field, i, len, max_len);
            goto fail;
        }
        if (check && check(v[i], err) < 0)
            goto fail;
        out[i] = strdup(v[i]);
        if (!out[i]) {
            px_error_set(err, PX_E_INTERNAL, "out of memory");
            goto fail;
        }
    }
    return out;
fail:
    for (size_t i = 0; i < n; i++)
        free(out[i]);
    free(out);
    return NULL;
}

static px_project *read_project(const Pyexec__V1__ExecuteRequest *req, const px_config *cfg,
                                px_error *err) {
    px_tar_limits limits;
    px_tar_limits_default(&limits);
    limits.max_entries = (size_t)cfg->max_files;
    limits.max_path_len = (size_t)cfg->max_path_len;
    limits.max_total_bytes = (uint64_t)cfg->max_project_bytes;
    bool has_tar = req->tar.len > 0;
    bool has_files = req->n_files > 0;
    if (has_tar && has_files) {
        px_error_set(err, PX_E_INVALID, "tar and files: send exactly one of them, not both");
        return NULL;
    }
    if (!has_tar && !has_files) {
        px_error_set(err, PX_E_INVALID, "tar/files: no code was sent");
        return NULL;
    }
    if (has_tar) {
        px_project *p = px_project_from_tar(req->tar.data, req->tar.len, &limits, err);
        if (!p)
            px_error_wrap(err, "tar");
        return p;
    }
    if (req->n_files > (size_t)cfg->max_files) {
        px_error_set(err, PX_E_INVALID, "files: %zu entries, the maximum is %d", req->n_files,
                     cfg->max_files);
        return NULL;
    }
    _cleanup_free_ px_file_in *in = calloc(req->n_files, sizeof *in);
    if (!in) {
        px_error_set(err, PX_E_INTERNAL, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < req->n_files; i++) {
        const Pyexec__V1__File *f = req->files[i];
        in[i] = (px_file_in){
            .path = f->path,
            .path_len = strlen(f->path),
            .data = f->content.data,
            .len = f->content.len,
            .mode = f->mode,
        };
    }
    px_project *p = px_project_from_files(in, req->n_files, &limits, err);
    if (!p)
        px_error_wrap(err, "files");
    return p;
}

PX_DEFINE_CLEANUP(px_project, px_project_free)
PX_DEFINE_CLEANUP(px_job_spec, px_job_spec_free)

/* The run's resources from metadata.config: each limit checked against its
 * maximum (0 takes the default), the minimums, the network switch. */
static int set_resources(px_job_spec *spec, const Pyexec__V1__ExecutionConfig *conf,
                         const px_config *cfg, px_error *err) {
    if (check_limit("timeout_seconds", conf->timeout_seconds, cfg->default_timeout_s,
                    cfg->max_timeout_s, &spec->timeout_s, err) < 0 ||
        check_limit("memory_mb", conf->memory_mb, cfg->default_memory_mb, cfg->max_memory_mb,
                    &spec->memory_mb, err) < 0 ||
        check_limit("disk_mb", conf->disk_mb, cfg->default_disk_mb, cfg->max_disk_mb,
                    &spec->disk_mb, err) < 0 ||
        check_limit("cpu_shares", conf->cpu_shares, cfg->default_cpu_shares, cfg->max_cpu_shares,
                    &spec->cpu_shares, err) < 0)
        return -1;
    if (spec->memory_mb < 16)
        return px_error_set(err, PX_E_INVALID,
                            "metadata.config.memory_mb: %d is below the minimum 16",
                            spec->memory_mb);
    if (spec->cpu_shares < 2)
        return px_error_set(err, PX_E_INVALID,
                            "metadata.config.cpu_shares: %d is below the minimum 2",
                            spec->cpu_shares);
    spec->network = conf->network_disabled ? !conf->network_disabled->value : false;
    return 0;
}

/* The image the run uses: metadata.docker_image, or the one
 * metadata.python_version maps to, or the default; a valid reference of an
 * image this server runs. Returns it (borrowed from `meta` or `cfg`), or
 * NULL with `err` set. */
static const char *choose_image(const Pyexec__V1__Metadata *meta, const px_config *cfg,
                                px_error *err) {
    const char *image = meta->docker_image[0] ? meta->docker_image : cfg->default_image;
    px_quoted q;
    if (meta->python_version[0]) {
        if (meta->docker_image[0])
            return px_error_set(err, PX_E_INVALID,
                                "metadata.python_version and metadata.docker_image: set one of "
                                "them, not both"),
                   NULL;
        image = px_config_python_image(cfg, meta->python_version);
        if (!image) {
            char known[512];
            px_config_python_versions(cfg, known, sizeof known);
            return px_error_set(err, PX_E_INVALID,
                                "metadata.python_version: '%s' is not available here (known: "
                                "%s)",
                                px_quote_str(&q, meta->python_version), known),
                   NULL;
        }
    }
    if (strlen(image) > 255 || strspn(image, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                             "0123456789._-/:@") != strlen(image))
        return px_error_set(err, PX_E_INVALID,
                            "metadata.docker_image: '%s' is not a valid image "
                            "reference",
                            px_quote_str(&q, image)),
               NULL;
    /* Before the engine is asked anything: an image name with a registry
     * host would have the engine connect to that host. */
    if (!px_config_image_allowed(cfg, image)) {
        char allowed[512];
        px_config_allowed_images(cfg, allowed, sizeof allowed);
        return px_error_set(err, PX_E_INVALID,
                            "metadata.docker_image: '%s' is not an image this server runs "
                            "(allowed: %s)",
                            px_quote_str(&q, image), allowed),
               NULL;
    }
    return image;
}

/* The environment, script arguments and pre-commands, each list bounded in
 * count and string length. */
static int copy_lists(px_job_spec *spec, const Pyexec__V1__Metadata *meta, const px_config *cfg,
                      px_error *err) {
    if (!(spec->env = copy_strv(meta->env_vars, meta->n_env_vars, "env_vars", cfg->max_env_vars,
                                cfg->max_string_bytes, check_env, err)))
        return -1;
    spec->n_env = meta->n_env_vars;
    if (!(spec->args = copy_strv(meta->script_args, meta->n_script_args, "script_args",
                                 cfg->max_args, cfg->max_string_bytes, NULL, err)))
        return -1;
    spec->n_args = meta->n_script_args;
    if (!(spec->pre_commands = copy_strv(meta->pre_commands, meta->n_pre_commands, "pre_commands",
                                         cfg->max_pre_commands, cfg->max_string_bytes, NULL, err)))
        return -1;
    spec->n_pre_commands = meta->n_pre_commands;
    return 0;
}

px_job_spec *px_codec_job_spec(const Pyexec__V1__ExecuteRequest *req, const px_config *cfg,
                               px_error *err) {
    static const Pyexec__V1__Metadata empty_meta = PYEXEC__V1__METADATA__INIT;
    static const Pyexec__V1__ExecutionConfig empty_conf = PYEXEC__V1__EXECUTION_CONFIG__INIT;
    const Pyexec__V1__Metadata *meta = req->metadata ? req->metadata : &empty_meta;
    const Pyexec__V1__ExecutionConfig *conf = meta->config ? meta->config : &empty_conf;

    __attribute__((cleanup(px_job_spec_freep))) px_job_spec *spec = calloc(1, sizeof *spec);
    if (!spec) {
        px_error_set(err, PX_E_INTERNAL, "out of memory");
        return NULL;
    }
    if (set_resources(spec, conf, cfg, err) < 0)
        return NULL;

    if ((int64_t)meta->stdin.len > cfg->max_stdin_bytes)
        return px_error_set(err, PX_E_INVALID, "metadata.stdin: %zu bytes, the maximum is %" PRId64,
                            meta->stdin.len, cfg->max_stdin_bytes),
               NULL;
    if ((int64_t)strlen(meta->requirements_txt) > cfg->max_string_bytes)
        return px_error_set(err, PX_E_INVALID,
                            "metadata.requirements_txt: longer than %" PRId64 " bytes",
                            cfg->max_string_bytes),
               NULL;
    __attribute__((cleanup(px_requirements_release))) px_requirements reqs = {0};
    if (px_requirements_parse(meta->requirements_txt, (size_t)cfg->max_requirements, &reqs, err) <
        0)
        return px_error_wrap(err, "metadata.requirements_txt"), NULL;
    const char *image = choose_image(meta, cfg, err);
    if (!image)
        return NULL;

    if (copy_lists(spec, meta, cfg, err) < 0)
        return NULL;

    __attribute__((cleanup(px_project_freep))) px_project *project = read_project(req, cfg, err);
    if (!project)
        return NULL;
    const char *entry = px_project_entrypoint(project, meta->entrypoint, err);
    if (!entry) {
        px_error_wrap(err, "metadata.entrypoint");
        return NULL;
    }
    spec->entrypoint = strdup(entry);
    spec->image = strdup(image);
    spec->requirements_txt = TAKE_PTR(reqs.normalised);
    if (meta->stdin.len > 0) {
        spec->stdin_data = malloc(meta->stdin.len);
        if (spec->stdin_data)
            memcpy(spec->stdin_data, meta->stdin.data, meta->stdin.len);
        spec->stdin_len = meta->stdin.len;
    }
    if (!spec->entrypoint || !spec->image || !spec->requirements_txt ||
        (meta->stdin.len > 0 && !spec->stdin_data)) {
        px_error_set(err, PX_E_INTERNAL, "out of memory");
        return NULL;
    }
    if (px_project_pack(project, &spec->tar, &spec->tar_len, err) < 0) {
        px_error_wrap(err, "repack project");
        return NULL;
    }
    return TAKE_PTR(spec);
}

px_job_spec *px_codec_eval_spec(const Pyexec__V1__EvalRequest *req, const px_config *cfg,
                                px_error *err) {
    Pyexec__V1__Metadata meta = PYEXEC__V1__METADATA__INIT;
    meta.entrypoint = req->entrypoint;
    meta.stdin = req->stdin;
    meta.config = req->config;
    meta.python_version = req->python_version;
    meta.requirements_txt = req->requirements_txt;
    meta.n_env_vars = req->n_env_vars;
    meta.env_vars = req->env_vars;
    Pyexec__V1__ExecuteRequest exec = PYEXEC__V1__EXECUTE_REQUEST__INIT;
    exec.metadata = &meta;
    Pyexec__V1__File main_py = PYEXEC__V1__FILE__INIT;
    Pyexec__V1__File *main_files[] = {&main_py};
    bool has_code = req->code[0] != '\0';
    if (has_code == (req->n_files > 0))
        return px_error_set(err, PX_E_INVALID, "code/files: send exactly one of them"), NULL;
    if (has_code) {
        if (req->entrypoint[0] && strcmp(req->entrypoint, "main.py") != 0)
            return px_error_set(err, PX_E_INVALID,
                                "entrypoint: only with files (code runs as main.py)"),
                   NULL;
        main_py.path = "main.py";
        main_py.content.data = (uint8_t *)req->code;
        main_py.content.len = strlen(req->code);
        exec.files = main_files;
        exec.n_files = 1;
    } else {
        exec.files = req->files;
        exec.n_files = req->n_files;
    }
    px_job_spec *spec = px_codec_job_spec(&exec, cfg, err);
    if (!spec) {
        /* The EvalRequest has Metadata's fields at its top level. */
        static const char prefix[] = "metadata.";
        if (strncmp(err->msg, prefix, sizeof prefix - 1) == 0)
            memmove(err->msg, err->msg + sizeof prefix - 1,
                    strlen(err->msg) - (sizeof prefix - 1) + 1);
        return NULL;
    }
    spec->eval = true;
    return spec;
}

#define PAGE_SIZE_DEFAULT 50

int px_codec_list_args(int32_t page_size, int status, size_t *size, px_status *out, px_error *err) {
    if (page_size < 0 || page_size > PX_STORE_LIST_MAX)
        return px_error_set(err, PX_E_INVALID, "page_size: %d is not in 0..%d", page_size,
                            PX_STORE_LIST_MAX);
    if (status < PX_STATUS_UNSPECIFIED || status > PX_STATUS_KILLED)
        return px_error_set(err, PX_E_INVALID, "status: %d is not an ExecutionStatus", status);
    *size = page_size == 0 ? PAGE_SIZE_DEFAULT : (size_t)page_size;
    *out = (px_status)status;
    return 0;
}

static void set_ts(Google__Protobuf__Timestamp *ts, int64_t unix_ms) {
    google__protobuf__timestamp__init(ts);
    ts->seconds = unix_ms / 1000;
    ts->nanos = (int32_t)((unix_ms % 1000) * 1000000);
}

void px_codec_result(px_result_msg *m, const px_record_view *v) {
    pyexec__v1__execution_result__init(&m->result);
    pyexec__v1__resource_usage__init(&m->usage);
    Pyexec__V1__ExecutionResult *r = &m->result;
    const px_outcome *o = &v->outcome;
    r->execution_id = (char *)v->id;
    r->status = (Pyexec__V1__ExecutionStatus)v->status;
    r->stdout.data = v->stdout_data;
    r->stdout.len = v->stdout_len;
    r->stderr.data = v->stderr_data;
    r->stderr.len = v->stderr_len;
    if (o->started_at_ms > 0) {
        set_ts(&m->started_at, o->started_at_ms);
        r->started_at = &m->started_at;
    }
    if (px_status_terminal(v->status)) {
        r->exit_code = o->exit_code;
        r->error = (char *)o->error;
        r->reason = (Pyexec__V1__TerminationReason)o->reason;
        r->output_truncated = o->output_truncated;
        if (o->finished_at_ms > 0) {
            set_ts(&m->finished_at, o->finished_at_ms);
            r->finished_at = &m->finished_at;
        }
        if (o->started_at_ms > 0 && o->finished_at_ms >= o->started_at_ms)
            r->duration_ms = o->finished_at_ms - o->started_at_ms;
        m->usage.peak_memory_bytes = o->peak_memory_bytes;
        m->usage.cpu_time_ms = o->cpu_time_ms;
        r->usage = &m->usage;
        if (o->py.result) {
            google__protobuf__string_value__init(&m->result_value);
            m->result_value.value = o->py.result;
            r->result = &m->result_value;
        }
        if (o->py.error_type)
            r->error_type = o->py.error_type;
        r->error_line = o->py.error_line;
        if (o->py.error_message)
            r->error_message = o->py.error_message;
    }
}

/* A protobuf-c output buffer that hashes what is appended. */
typedef struct hash_buffer {
    ProtobufCBuffer base;
    px_sha256_ctx ctx;
} hash_buffer;

static void hash_append(ProtobufCBuffer *buffer, size_t len, const uint8_t *data) {
    px_sha256_update(&container_of(buffer, hash_buffer, base)->ctx, data, len);
}

void px_codec_request_digest(const Pyexec__V1__ExecuteRequest *req, uint8_t out[PX_SHA256_LEN]) {
    Pyexec__V1__ExecuteRequest content = *req;
    content.async = 0;
    content.request_id = (char *)"";
    hash_buffer hb = {.base = {.append = hash_append}};
    px_sha256_init(&hb.ctx);
    protobuf_c_message_pack_to_buffer(&content.base, &hb.base);
    px_sha256_final(&hb.ctx, out);
}

void px_codec_eval_digest(const Pyexec__V1__EvalRequest *req, uint8_t out[PX_SHA256_LEN]) {
    static const char tag[] = "pyexec.v1.EvalRequest"; /* never an Execute's digest */
    Pyexec__V1__EvalRequest content = *req;
    content.async = 0;
    content.request_id = (char *)"";
    hash_buffer hb = {.base = {.append = hash_append}};
    px_sha256_init(&hb.ctx);
    px_sha256_update(&hb.ctx, tag, sizeof tag);
    protobuf_c_message_pack_to_buffer(&content.base, &hb.base);
    px_sha256_final(&hb.ctx, out);
}
