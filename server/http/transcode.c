#include "server/http/transcode.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/quote.h"

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "something else";
}

/* Members are named "prefix.key" in errors, or "key" with an empty prefix
 * (the eval body's top level). */
#define FIELD(prefix, key) (prefix), (prefix)[0] ? "." : "", (key)

static int want(const json_t *v, json_type type, const char *what, const char *prefix,
                const char *key, px_error *err) {
    if (json_typeof(v) == type)
        return 0;
    return px_error_set(err, PX_E_INVALID, "%s%s%s: expected %s, got %s", FIELD(prefix, key), what,
                        type_name(v));
}

static int get_string(json_t *obj, const char *key, const char *prefix, char **out, px_error *err) {
    json_t *v = json_object_get(obj, key);
    *out = (char *)"";
    if (!v || json_is_null(v))
        return 0;
    if (want(v, JSON_STRING, "a string", prefix, key, err) < 0)
        return -1;
    *out = (char *)json_string_value(v);
    return 0;
}

static int get_int32(json_t *obj, const char *key, const char *prefix, int32_t *out,
                     px_error *err) {
    json_t *v = json_object_get(obj, key);
    *out = 0;
    if (!v || json_is_null(v))
        return 0;
    if (want(v, JSON_INTEGER, "an integer", prefix, key, err) < 0)
        return -1;
    json_int_t i = json_integer_value(v);
    if (i < INT32_MIN || i > INT32_MAX)
        return px_error_set(err, PX_E_INVALID, "%s%s%s: %lld does not fit in 32 bits",
                            FIELD(prefix, key), (long long)i);
    *out = (int32_t)i;
    return 0;
}

/* A JSON array of strings -> a malloc'd array of borrowed pointers. */
static int get_strv(json_t *obj, const char *key, const char *prefix, char ***out, size_t *n,
                    px_error *err) {
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    *n = 0;
    if (!v || json_is_null(v))
        return 0;
    if (want(v, JSON_ARRAY, "an array of strings", prefix, key, err) < 0)
        return -1;
    size_t len = json_array_size(v);
    char **strs = calloc(len + 1, sizeof *strs);
    if (!strs)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    for (size_t i = 0; i < len; i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s)) {
            free(strs);
            return px_error_set(err, PX_E_INVALID, "%s.%s[%zu]: expected a string, got %s", prefix,
                                key, i, type_name(s));
        }
        strs[i] = (char *)json_string_value(s);
    }
    *out = strs;
    *n = len;
    return 0;
}

/* Every member of `obj` must be one of `known` (NULL-terminated). */
static int check_members(json_t *obj, const char *const *known, const char *prefix, px_error *err) {
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++)
            ok = strcmp(*k, key) == 0;
        px_quoted q;
        if (!ok)
            return px_error_set(err, PX_E_INVALID, "%s: unknown member '%s'", prefix,
                                px_quote_str(&q, key));
    }
    return 0;
}

/* The seed's ExecutionConfig object `obj` (named `where`) into `c`; a
 * network_disabled that is set points `c` at `nd`. */
static int parse_config(Pyexec__V1__ExecutionConfig *c, Google__Protobuf__BoolValue *nd,
                        json_t *obj, const char *where, px_error *err) {
    static const char *const known[] = {"timeout_seconds", "network_disabled", "memory_mb",
                                        "disk_mb",         "cpu_shares",       NULL};
    if (!json_is_object(obj))
        return px_error_set(err, PX_E_INVALID, "%s: expected an object, got %s", where,
                            type_name(obj));
    if (check_members(obj, known, where, err) < 0)
        return -1;
    if (get_int32(obj, "timeout_seconds", where, &c->timeout_seconds, err) < 0 ||
        get_int32(obj, "memory_mb", where, &c->memory_mb, err) < 0 ||
        get_int32(obj, "disk_mb", where, &c->disk_mb, err) < 0 ||
        get_int32(obj, "cpu_shares", where, &c->cpu_shares, err) < 0)
        return -1;
    json_t *net = json_object_get(obj, "network_disabled");
    if (net && !json_is_null(net)) {
        if (!json_is_boolean(net))
            return px_error_set(err, PX_E_INVALID,
                                "%s.network_disabled: expected a boolean, got %s", where,
                                type_name(net));
        nd->value = json_is_true(net);
        c->network_disabled = nd;
    }
    return 0;
}

int px_http_metadata_parse(px_http_metadata *m, json_t *obj, const char *prefix, px_error *err) {
    static const char *const known[] = {
        "entrypoint", "docker_image", "requirements_txt", "pre_commands",   "stdin",
        "config",     "env_vars",     "script_args",      "python_version", NULL};
    memset(m, 0, sizeof *m);
    pyexec__v1__metadata__init(&m->meta);
    pyexec__v1__execution_config__init(&m->config);
    google__protobuf__bool_value__init(&m->network_disabled);
    if (!obj || json_is_null(obj))
        return 0;
    if (!json_is_object(obj))
        return px_error_set(err, PX_E_INVALID, "%s: expected a JSON object, got %s", prefix,
                            type_name(obj));
    if (check_members(obj, known, prefix, err) < 0)
        goto fail;
    Pyexec__V1__Metadata *md = &m->meta;
    char *stdin_text;
    if (get_string(obj, "entrypoint", prefix, &md->entrypoint, err) < 0 ||
        get_string(obj, "docker_image", prefix, &md->docker_image, err) < 0 ||
        get_string(obj, "requirements_txt", prefix, &md->requirements_txt, err) < 0 ||
        get_string(obj, "python_version", prefix, &md->python_version, err) < 0 ||
        get_string(obj, "stdin", prefix, &stdin_text, err) < 0 ||
        get_strv(obj, "pre_commands", prefix, &m->pre_commands, &md->n_pre_commands, err) < 0 ||
        get_strv(obj, "env_vars", prefix, &m->env_vars, &md->n_env_vars, err) < 0 ||
        get_strv(obj, "script_args", prefix, &m->script_args, &md->n_script_args, err) < 0)
        goto fail;
    md->pre_commands = m->pre_commands;
    md->env_vars = m->env_vars;
    md->script_args = m->script_args;
    md->stdin.data = (uint8_t *)stdin_text;
    md->stdin.len = json_string_length(json_object_get(obj, "stdin"));
    json_t *config = json_object_get(obj, "config");
    if (config && !json_is_null(config)) {
        char where[64];
        snprintf(where, sizeof where, "%s.config", prefix);
        if (parse_config(&m->config, &m->network_disabled, config, where, err) < 0)
            goto fail;
        md->config = &m->config;
    }
    return 0;
fail:
    px_http_metadata_release(m);
    return -1;
}

void px_http_metadata_release(px_http_metadata *m) {
    free(m->pre_commands);
    free(m->env_vars);
    free(m->script_args);
    m->pre_commands = m->env_vars = m->script_args = NULL;
}

static int get_bool(json_t *obj, const char *key, bool *out, px_error *err) {
    json_t *v = json_object_get(obj, key);
    *out = false;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return px_error_set(err, PX_E_INVALID, "%s: expected a boolean, got %s", key, type_name(v));
    *out = json_is_true(v);
    return 0;
}

/* "files": [{"name": ..., "content": ...}] -> File messages. */
static int parse_files(px_http_eval *e, json_t *files, px_error *err) {
    if (!json_is_array(files))
        return px_error_set(err, PX_E_INVALID, "files: expected an array, got %s",
                            type_name(files));
    size_t n = json_array_size(files);
    e->files = calloc(n + 1, sizeof *e->files);
    e->file_ptrs = calloc(n + 1, sizeof *e->file_ptrs);
    if (!e->files || !e->file_ptrs)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    static const char *const known[] = {"name", "content", NULL};
    for (size_t i = 0; i < n; i++) {
        json_t *f = json_array_get(files, i);
        char where[32];
        snprintf(where, sizeof where, "files[%zu]", i);
        if (!json_is_object(f))
            return px_error_set(err, PX_E_INVALID, "%s: expected an object, got %s", where,
                                type_name(f));
        char *name, *content;
        if (check_members(f, known, where, err) < 0 ||
            get_string(f, "name", where, &name, err) < 0 ||
            get_string(f, "content", where, &content, err) < 0)
            return -1;
        Pyexec__V1__File *pf = &e->files[i];
        pyexec__v1__file__init(pf);
        pf->path = name;
        pf->content.data = (uint8_t *)content;
        pf->content.len = json_string_length(json_object_get(f, "content"));
        e->file_ptrs[i] = pf;
    }
    e->req.files = e->file_ptrs;
    e->req.n_files = n;
    return 0;
}

int px_http_eval_parse(px_http_eval *e, json_t *obj, px_error *err) {
    static const char *const known[] = {
        "code",     "files",          "entrypoint",       "stdin", "config", "python_version",
        "env_vars", "eval_last_expr", "requirements_txt", "async", NULL};
    memset(e, 0, sizeof *e);
    pyexec__v1__eval_request__init(&e->req);
    pyexec__v1__execution_config__init(&e->config);
    google__protobuf__bool_value__init(&e->network_disabled);
    if (!json_is_object(obj))
        return px_error_set(err, PX_E_INVALID, "body: expected a JSON object, got %s",
                            type_name(obj));
    Pyexec__V1__EvalRequest *r = &e->req;
    char *stdin_text;
    json_t *config = json_object_get(obj, "config");
    json_t *files = json_object_get(obj, "files");
    if (check_members(obj, known, "body", err) < 0 ||
        get_string(obj, "code", "", &r->code, err) < 0 ||
        get_string(obj, "entrypoint", "", &r->entrypoint, err) < 0 ||
        get_string(obj, "python_version", "", &r->python_version, err) < 0 ||
        get_string(obj, "requirements_txt", "", &r->requirements_txt, err) < 0 ||
        get_string(obj, "stdin", "", &stdin_text, err) < 0 ||
        get_strv(obj, "env_vars", "", &e->env_vars, &r->n_env_vars, err) < 0 ||
        get_bool(obj, "eval_last_expr", &e->eval_last_expr, err) < 0 ||
        get_bool(obj, "async", &e->async, err) < 0 ||
        (files && !json_is_null(files) && parse_files(e, files, err) < 0) ||
        (config && !json_is_null(config) &&
         parse_config(&e->config, &e->network_disabled, config, "config", err) < 0)) {
        px_http_eval_release(e);
        return -1;
    }
    r->env_vars = e->env_vars;
    r->stdin.data = (uint8_t *)stdin_text;
    r->stdin.len = json_string_length(json_object_get(obj, "stdin"));
    if (config && !json_is_null(config))
        r->config = &e->config;
    r->async = e->async;
    return 0;
}

void px_http_eval_release(px_http_eval *e) {
    free(e->env_vars);
    free(e->files);
    free(e->file_ptrs);
    e->env_vars = NULL;
    e->files = NULL;
    e->file_ptrs = NULL;
}
