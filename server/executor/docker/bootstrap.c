/* The bootstrap script (generated from bootstrap.py) and its preamble. */
#include "server/executor/docker/bootstrap.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/cleanup.h"
#include "server/executor/docker/docker_sandbox.h"
#include "server/executor/reserved_env.h"

static const char bootstrap_script[] =
#include "server/executor/docker/bootstrap_py.inc"
    ;

static const char eval_wrapper[] =
#include "server/executor/docker/eval_wrapper_py.inc"
    ;

const char *px_bootstrap_script(void) {
    return bootstrap_script;
}

const char *px_bootstrap_eval_wrapper(void) {
    return eval_wrapper;
}

static int add_string(json_t *obj, const char *key, const char *value, px_error *err) {
    json_t *s = json_string(value);
    if (!s)
        return px_error_set(err, PX_E_INVALID, "%s is not valid UTF-8", key);
    json_object_set_new(obj, key, s);
    return 0;
}

static int add_strv(json_t *obj, const char *key, char *const *v, size_t n, px_error *err) {
    json_t *a = json_array();
    if (!a)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    json_object_set_new(obj, key, a);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_string(v[i]);
        if (!s)
            return px_error_set(err, PX_E_INVALID, "%s[%zu] is not valid UTF-8", key, i);
        json_array_append_new(a, s);
    }
    return 0;
}

/* The request's environment without the names the sandbox reserves (its
 * own values, set on the container, win). */
static int add_env(json_t *obj, const px_job_spec *spec, px_error *err) {
    json_t *a = json_array();
    if (!a)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    json_object_set_new(obj, "env", a);
    for (size_t i = 0; i < spec->n_env; i++) {
        const char *kv = spec->env[i];
        if (px_env_reserved(kv, strcspn(kv, "=")))
            continue;
        json_t *s = json_string(kv);
        if (!s)
            return px_error_set(err, PX_E_INVALID, "environment entry %zu is not valid UTF-8", i);
        json_array_append_new(a, s);
    }
    return 0;
}

int px_bootstrap_preamble(const px_job_spec *spec, const char *nonce, const char *deps, char **out,
                          size_t *out_len, px_error *err) {
    __attribute__((cleanup(json_decrefp))) json_t *h = json_object();
    if (!h)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    json_object_set_new(h, "tar_len", json_integer((json_int_t)spec->tar_len));
    if (add_string(h, "entrypoint", spec->entrypoint, err) < 0 ||
        add_strv(h, "args", spec->args, spec->n_args, err) < 0 || add_env(h, spec, err) < 0 ||
        add_strv(h, "pre_commands", spec->pre_commands, spec->n_pre_commands, err) < 0 ||
        (nonce && add_string(h, "nonce", nonce, err) < 0))
        return -1;
    if (deps) {
        if (add_string(h, "deps", deps, err) < 0)
            return -1;
    } else {
        json_object_set_new(h, "deps", json_null());
    }
    json_object_set_new(h, "network", json_boolean(spec->network));
    if (spec->eval)
        json_object_set_new(h, "eval", json_string(eval_wrapper));
    _cleanup_free_ char *body = json_dumps(h, JSON_COMPACT);
    if (!body)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    size_t blen = strlen(body);
    if (blen > 9999999999u)
        return px_error_set(err, PX_E_INVALID, "bootstrap header too large");
    char *buf = malloc(PX_BOOTSTRAP_LINE_LEN + blen + 1);
    if (!buf)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    snprintf(buf, PX_BOOTSTRAP_LINE_LEN + 1, "PYX1 %010zu\n", blen);
    memcpy(buf + PX_BOOTSTRAP_LINE_LEN, body, blen + 1);
    *out = buf;
    *out_len = PX_BOOTSTRAP_LINE_LEN + blen;
    return 0;
}

static const char host_script[] =
#include "server/executor/docker/host_py.inc"
    ;

const char *px_host_script(void) {
    return host_script;
}

/* Builds a message to a host into a new buffer (*out, *out_len; malloc'd,
 * owned by the caller, NUL-terminated past *out_len): "PYXH %010zu\n", the
 * header `h` (NULL: out of memory), `filter`, then `tail`. Returns 0, or -1
 * with `err` set. */
static int host_message(const json_t *h, const uint8_t *filter, size_t filter_len, const char *tail,
                        size_t tail_len, char **out, size_t *out_len, px_error *err) {
    _cleanup_free_ char *body = h ? json_dumps(h, JSON_COMPACT) : NULL;
    if (!body)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    size_t blen = strlen(body);
    if (blen > 9999999999u)
        return px_error_set(err, PX_E_INVALID, "host header too large");
    size_t total = PX_BOOTSTRAP_LINE_LEN + blen + filter_len + tail_len;
    char *buf = malloc(total + 1);
    if (!buf)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    snprintf(buf, PX_BOOTSTRAP_LINE_LEN + 1, "PYXH %010zu\n", blen % 10000000000u);
    memcpy(buf + PX_BOOTSTRAP_LINE_LEN, body, blen);
    memcpy(buf + PX_BOOTSTRAP_LINE_LEN + blen, filter, filter_len);
    if (tail_len > 0)
        memcpy(buf + PX_BOOTSTRAP_LINE_LEN + blen + filter_len, tail, tail_len);
    buf[total] = '\0';
    *out = buf;
    *out_len = total;
    return 0;
}

int px_host_preamble(const px_job_spec *spec, const char *nonce, const char *deps,
                     const uint8_t *filter, size_t filter_len, int tmp_mb, char **out,
                     size_t *out_len, px_error *err) {
    _cleanup_free_ char *job = NULL;
    size_t job_len = 0;
    if (px_bootstrap_preamble(spec, NULL, deps, &job, &job_len, err) < 0)
        return -1;
    __attribute__((cleanup(json_decrefp))) json_t *h = json_pack(
        "{s:s, s:I, s:I, s:i, s:i}", "nonce", nonce, "filter_len", (json_int_t)filter_len,
        "job_len", (json_int_t)(job_len + spec->tar_len + spec->stdin_len), "work_mb",
        spec->disk_mb, "tmp_mb", tmp_mb);
    return host_message(h, filter, filter_len, job, job_len, out, out_len, err);
}

int px_host_prime(const uint8_t *filter, size_t filter_len, int work_mb, int tmp_mb, char **out,
                  size_t *out_len, px_error *err) {
    __attribute__((cleanup(json_decrefp)))
    json_t *h = json_pack("{s:b, s:I, s:i, s:i}", "prime", 1, "filter_len", (json_int_t)filter_len,
                          "work_mb", work_mb, "tmp_mb", tmp_mb);
    return host_message(h, filter, filter_len, NULL, 0, out, out_len, err);
}
