/*
 * The configuration's parsing (see config.h, config_internal.h): defaults,
 * then the --config file, the environment and the flags, each value checked
 * against its setting's type and range, then the combinations checked.
 */
#include "server/base/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/config_internal.h"
#include "server/base/file.h"

/* One VERSION=IMAGE entry of --python-image (`len` bytes of `entry`). */
static int add_python_image(px_config *cfg, const char *entry, size_t len, const char *source,
                            px_error *err) {
    const char *eq = memchr(entry, '=', len);
    size_t vlen = eq ? (size_t)(eq - entry) : 0;
    size_t ilen = eq ? len - vlen - 1 : 0;
    px_python_image pi;
    if (!eq || vlen == 0 || vlen >= sizeof pi.version || ilen == 0 || ilen >= sizeof pi.image ||
        strspn(entry, "0123456789.") < vlen)
        return px_error_set(err, PX_E_INVALID,
                            "%s: '%.*s' is not VERSION=IMAGE (e.g. 3.13=pyexec/python:3.13)",
                            source, (int)(len > 80 ? 80 : len), entry);
    memcpy(pi.version, entry, vlen);
    pi.version[vlen] = '\0';
    memcpy(pi.image, eq + 1, ilen);
    pi.image[ilen] = '\0';
    for (int i = 0; i < cfg->n_python_images; i++) {
        if (strcmp(cfg->python_images[i].version, pi.version) == 0) {
            cfg->python_images[i] = pi;
            return 0;
        }
    }
    if (cfg->n_python_images >= PX_PYTHON_IMAGES_MAX)
        return px_error_set(err, PX_E_INVALID, "%s: more than %d Python versions", source,
                            PX_PYTHON_IMAGES_MAX);
    cfg->python_images[cfg->n_python_images++] = pi;
    return 0;
}

/* Checks a comma-separated list of image patterns: each non-empty, of the
 * characters of an image reference or '*'. */
static int check_patterns(const char *value, const char *source, px_error *err) {
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789._-/:@*";
    for (const char *p = value;; p++) {
        size_t len = strcspn(p, ",");
        if (len == 0)
            return px_error_set(err, PX_E_INVALID, "%s: an empty pattern in '%s'", source, value);
        size_t ok = strspn(p, chars);
        if (ok < len)
            return px_error_set(err, PX_E_INVALID,
                                "%s: '%.*s' has a character no image reference has ('%c')", source,
                                (int)len, p, p[ok]);
        p += len;
        if (!*p)
            return 0;
    }
}

static int set_value(px_config *cfg, const opt *o, const char *value, const char *source,
                     px_error *err) {
    char *field = (char *)cfg + o->offset;
    if (o->kind == OPT_IMAGES) {
        if (strlen(value) >= o->size)
            return px_error_set(err, PX_E_INVALID, "%s: longer than %zu characters", source,
                                o->size - 1);
        if (check_patterns(value, source, err) < 0)
            return -1;
        memcpy(field, value, strlen(value) + 1);
        return 0;
    }
    if (o->kind == OPT_PULL) {
        if (strcmp(value, "never") != 0 && strcmp(value, "missing") != 0)
            return px_error_set(err, PX_E_INVALID, "%s: '%s' is not one of never, missing", source,
                                value);
        *(bool *)(void *)field = strcmp(value, "missing") == 0;
        return 0;
    }
    if (o->kind == OPT_BOOL) {
        bool on = strcmp(value, "1") == 0 || strcmp(value, "true") == 0;
        if (!on && strcmp(value, "0") != 0 && strcmp(value, "false") != 0)
            return px_error_set(err, PX_E_INVALID, "%s: '%s' is not one of 1, true, 0, false",
                                source, value);
        *(bool *)(void *)field = on;
        return 0;
    }
    if (o->kind == OPT_PYIMAGE) {
        for (const char *p = value;; p++) {
            size_t len = strcspn(p, ",");
            if (add_python_image(cfg, p, len, source, err) < 0)
                return -1;
            p += len;
            if (!*p)
                return 0;
        }
    }
    if (o->kind == OPT_STR) {
        size_t len = strlen(value);
        if ((int64_t)len < o->min || len >= o->size)
            return px_error_set(err, PX_E_INVALID, "%s: must be %" PRId64 " to %zu characters",
                                source, o->min, o->size - 1);
        memcpy(field, value, len + 1);
        return 0;
    }
    if (o->kind == OPT_FORMAT) {
        if (px_log_format_parse(value, (px_log_format *)(void *)field) < 0)
            return px_error_set(err, PX_E_INVALID, "%s: '%s' is not one of text, json", source,
                                value);
        return 0;
    }
    if (o->kind == OPT_LEVEL) {
        if (px_log_level_parse(value, (px_log_level *)(void *)field) < 0)
            return px_error_set(err, PX_E_INVALID,
                                "%s: '%s' is not one of debug, info, warn, error", source, value);
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0')
        return px_error_set(err, PX_E_INVALID, "%s: '%s' is not an integer", source, value);
    if (v < o->min || v > o->max)
        return px_error_set(err, PX_E_INVALID,
                            "%s: %lld is out of range [%" PRId64 ", %" PRId64 "]", source, v,
                            o->min, o->max);
    if (o->kind == OPT_INT)
        *(int *)(void *)field = (int)v;
    else
        *(int64_t *)(void *)field = (int64_t)v;
    return 0;
}

bool px_config_listen_is_loopback(const char *listen) {
    const char *colon = strrchr(listen, ':');
    if (!colon)
        return false;
    char host[256];
    size_t len = (size_t)(colon - listen);
    if (len >= 2 && listen[0] == '[' && listen[len - 1] == ']') {
        listen++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof host)
        return false;
    memcpy(host, listen, len);
    host[len] = '\0';
    if (strcmp(host, "localhost") == 0)
        return true;
    struct in_addr v4;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    struct in6_addr v6;
    if (inet_pton(AF_INET6, host, &v6) == 1)
        return memcmp(&v6, &in6addr_loopback, sizeof v6) == 0;
    return false;
}

/* TLS settings go together, and plaintext is for loopback only unless
 * --insecure says otherwise. */
static int check_tls(const px_config *cfg, px_error *err) {
    if (!cfg->tls_cert[0] != !cfg->tls_key[0])
        return px_error_set(err, PX_E_INVALID, "%s without %s: TLS needs both",
                            cfg->tls_cert[0] ? "--tls-cert" : "--tls-key",
                            cfg->tls_cert[0] ? "--tls-key" : "--tls-cert");
    if (cfg->tls_client_ca[0] && !cfg->tls_cert[0])
        return px_error_set(err, PX_E_INVALID,
                            "--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS)");
    if (!cfg->tls_cert[0] && !cfg->insecure && !px_config_listen_is_loopback(cfg->listen))
        return px_error_set(err, PX_E_INVALID,
                            "--listen '%s' is not a loopback address: serve it with --tls-cert "
                            "and --tls-key, or allow plaintext there with --insecure",
                            cfg->listen);
    if (cfg->metrics_tenant[0] && !cfg->auth_tokens[0] && !cfg->tls_client_ca[0])
        return px_error_set(err, PX_E_INVALID,
                            "--metrics-tenant needs tenants: --auth-tokens or --tls-client-ca");
    /* The HTTP door speaks TLS with the same files. */
    if (cfg->http_listen[0] && !cfg->tls_cert[0] && !cfg->insecure &&
        !px_config_listen_is_loopback(cfg->http_listen))
        return px_error_set(err, PX_E_INVALID,
                            "--http-listen '%s' is not a loopback address: serve it with "
                            "--tls-cert and --tls-key, or allow plaintext there with --insecure",
                            cfg->http_listen);
    return 0;
}

/* The flags that are not settings: they say where the settings are and
 * what to do with them, so they are neither in the file nor in px_config_opts[]. */
static bool is_config_flag(const char *name, size_t len) {
    return (len == 6 && memcmp(name, "config", 6) == 0);
}

static bool is_check_flag(const char *name, size_t len) {
    return (len == 12 && memcmp(name, "check-config", 12) == 0);
}

/* One pass over argv. The first (apply false) answers --help and
 * --version, refuses unknown flags and missing values, and finds --config
 * and --check-config; the second (apply true) sets the values, over what
 * the file and the environment set. */
static int walk_flags(px_config *cfg, int argc, char **argv, FILE *out, bool apply, px_error *err) {
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            px_config_usage(out);
            return PX_CONFIG_HELP;
        }
        if (strcmp(arg, "--version") == 0) {
            fprintf(out, "pyexecd %s\n", PYEXEC_VERSION);
            return PX_CONFIG_VERSION;
        }
        if (strncmp(arg, "--", 2) != 0)
            return px_error_set(err, PX_E_INVALID, "unexpected argument '%s' (see --help)", arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        if (is_check_flag(name, len)) {
            if (eq)
                return px_error_set(err, PX_E_INVALID, "--check-config takes no value");
            cfg->check_config = true;
            continue;
        }
        const opt *o = is_config_flag(name, len) ? NULL : px_config_find_flag(name, len);
        if (!o && !is_config_flag(name, len))
            return px_error_set(err, PX_E_INVALID, "unknown flag '%s' (see --help)", arg);
        const char *value = eq ? eq + 1 : NULL;
        if (!value && o && o->kind == OPT_BOOL)
            value = "1";
        if (!value) {
            if (i + 1 >= argc)
                return px_error_set(err, PX_E_INVALID, "flag '--%.*s' needs a value", (int)len,
                                    name);
            value = argv[++i];
        }
        if (!o) {
            if (!value[0] || strlen(value) >= sizeof cfg->config_file)
                return px_error_set(err, PX_E_INVALID, "--config: must be 1 to %zu characters",
                                    sizeof cfg->config_file - 1);
            snprintf(cfg->config_file, sizeof cfg->config_file, "%s", value);
            continue;
        }
        if (!apply)
            continue;
        char source[80];
        snprintf(source, sizeof source, "--%.*s", (int)len, name);
        if (set_value(cfg, o, value, source, err) < 0)
            return -1;
        if (o->kind == OPT_LEVEL)
            cfg->log_level_pinned = true;
    }
    return PX_CONFIG_RUN;
}

static int apply_env(px_config *cfg, char **envp, px_error *err) {
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, "PYEXEC_", 7) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        for (size_t i = 0; i < px_config_n_opts; i++) {
            char env[80];
            px_config_env_name(&px_config_opts[i], env, sizeof env);
            if (strlen(env) == (size_t)(eq - *e) && memcmp(env, *e, (size_t)(eq - *e)) == 0) {
                if (set_value(cfg, &px_config_opts[i], eq + 1, env, err) < 0)
                    return -1;
                if (px_config_opts[i].kind == OPT_LEVEL)
                    cfg->log_level_pinned = true;
            }
        }
    }
    return 0;
}

static bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r';
}

/* The configuration file (docs/operations.md#the-configuration-file):
 * "key = value" lines, keys the flags' names without "--", '#' comments on
 * lines of their own. Errors name the file and the line. */
static int apply_file(px_config *cfg, const char *path, px_error *err) {
    char *text = NULL;
    size_t len = 0;
    if (px_file_read("--config", path, PX_CONFIG_FILE_MAX, &text, &len, err) < 0)
        return -1;
    int rc = 0;
    int lineno = 0;
    char *next = text;
    while (rc == 0 && next < text + len) {
        char *line = next;
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        next = nl ? nl + 1 : text + len;
        lineno++;
        char *end = nl ? nl : text + len;
        if (memchr(line, '\0', (size_t)(end - line))) {
            rc = px_error_set(err, PX_E_INVALID, "%s:%d: a NUL byte", path, lineno);
            break;
        }
        while (line < end && is_blank(*line))
            line++;
        while (end > line && is_blank(end[-1]))
            end--;
        *end = '\0';
        if (line == end || line[0] == '#' || line[0] == ';')
            continue;
        char *eq = strchr(line, '=');
        if (!eq) {
            rc = px_error_set(err, PX_E_INVALID, "%s:%d: '%.80s' is not KEY = VALUE", path, lineno,
                              line);
            break;
        }
        char *kend = eq;
        while (kend > line && is_blank(kend[-1]))
            kend--;
        *kend = '\0';
        for (char *k = line; *k; k++)
            if (*k == '_')
                *k = '-';
        char *value = eq + 1;
        while (*value && is_blank(*value))
            value++;
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        const opt *o = px_config_find_flag(line, strlen(line));
        if (!o) {
            rc = px_error_set(err, PX_E_INVALID,
                              "%s:%d: unknown key '%.64s' (the keys are the flags' names, see "
                              "--help)",
                              path, lineno, line);
            break;
        }
        char source[1200];
        snprintf(source, sizeof source, "%s:%d: %s", path, lineno, line);
        rc = set_value(cfg, o, value, source, err);
    }
    free(text);
    return rc;
}

int px_config_parse(px_config *cfg, int argc, char **argv, char **envp, FILE *out, px_error *err) {
    int action = walk_flags(cfg, argc, argv, out, false, err);
    if (action != PX_CONFIG_RUN)
        return action;
    if (!cfg->config_file[0]) {
        for (char **e = envp; e && *e; e++) {
            if (strncmp(*e, "PYEXEC_CONFIG=", 14) == 0 && (*e)[14]) {
                if (strlen(*e + 14) >= sizeof cfg->config_file)
                    return px_error_set(err, PX_E_INVALID,
                                        "PYEXEC_CONFIG: must be 1 to %zu characters",
                                        sizeof cfg->config_file - 1);
                snprintf(cfg->config_file, sizeof cfg->config_file, "%s", *e + 14);
            }
        }
    }
    if (cfg->config_file[0] && apply_file(cfg, cfg->config_file, err) < 0)
        return -1;
    if (apply_env(cfg, envp, err) < 0)
        return -1;
    if (walk_flags(cfg, argc, argv, out, true, err) < 0)
        return -1;
    struct {
        const char *what;
        int64_t def, max;
    } pairs[] = {
        {"timeout-s", cfg->default_timeout_s, cfg->max_timeout_s},
        {"memory-mb", cfg->default_memory_mb, cfg->max_memory_mb},
        {"disk-mb", cfg->default_disk_mb, cfg->max_disk_mb},
        {"cpu-shares", cfg->default_cpu_shares, cfg->max_cpu_shares},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        if (pairs[i].def > pairs[i].max)
            return px_error_set(err, PX_E_INVALID,
                                "--default-%s (%" PRId64 ") is above --max-%s (%" PRId64 ")",
                                pairs[i].what, pairs[i].def, pairs[i].what, pairs[i].max);
    }
    if (cfg->max_stream_queued_bytes / cfg->max_total_stream_readers < PX_STREAM_MESSAGE_MIN)
        return px_error_set(err, PX_E_INVALID,
                            "--max-stream-queued-bytes (%" PRId64 ") leaves each of the "
                            "--max-total-stream-readers (%d) less than %d bytes",
                            cfg->max_stream_queued_bytes, cfg->max_total_stream_readers,
                            PX_STREAM_MESSAGE_MIN);
    if (check_tls(cfg, err) < 0)
        return -1;
    if (cfg->max_reply_queued_bytes < cfg->output_limit_bytes + 64 * 1024)
        return px_error_set(err, PX_E_INVALID,
                            "--max-reply-queued-bytes (%" PRId64 ") is below --output-limit-bytes "
                            "(%" PRId64 ") + 64 KiB: a full result could never be sent",
                            cfg->max_reply_queued_bytes, cfg->output_limit_bytes);
    return cfg->check_config ? PX_CONFIG_CHECKED : PX_CONFIG_RUN;
}

int px_config_reread_log_level(const px_config *cfg, px_log_level *level, px_error *err) {
    *level = cfg->log_level;
    if (!cfg->config_file[0] || cfg->log_level_pinned)
        return 0;
    px_config fresh;
    px_config_default(&fresh);
    if (apply_file(&fresh, cfg->config_file, err) < 0)
        return -1;
    *level = fresh.log_level;
    return 0;
}
