/* The settings' table, their defaults and --help (see config_internal.h). */
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "server/base/config.h"
#include "server/base/config_internal.h"

/* The settings of the common kinds, with their defaults (px_config_default
 * sets them from here; "" and 0: unset). For OPT_STR, `min` is the shortest
 * value: 1, or 0 where empty means "off" (STR_OR_EMPTY, whose default is
 * empty). */
#define FIELD_SIZE(field) sizeof(((px_config *)0)->field)
#define STR(field, def, help)                                                                      \
    { #field, OPT_STR, offsetof(px_config, field), FIELD_SIZE(field), 1, 0, help, 0, def }
#define STR_OR_EMPTY(field, help)                                                                  \
    { #field, OPT_STR, offsetof(px_config, field), FIELD_SIZE(field), 0, 0, help, 0, "" }
#define INT(field, def, lo, hi, help)                                                              \
    { #field, OPT_INT, offsetof(px_config, field), sizeof(int), lo, hi, help, def, NULL }
#define I64(field, def, lo, hi, help)                                                              \
    { #field, OPT_I64, offsetof(px_config, field), sizeof(int64_t), lo, hi, help, def, NULL }
/* The other kinds: parsed and defaulted each its own way (config.c,
 * px_config_default). */
#define OTHER(name, kind, field, size, help)                                                       \
    { name, kind, offsetof(px_config, field), size, 0, 0, help, 0, NULL }

const opt px_config_opts[] = {
    STR(listen, "127.0.0.1:50051", "address to listen on, HOST:PORT (port 0 picks a free port)"),
    STR(tls_cert, "",
        "PEM file of the server's certificate chain: with --tls-key, the gRPC port "
        "speaks TLS only (re-read on SIGHUP)"),
    STR(tls_key, "", "PEM file of the private key of --tls-cert (re-read on SIGHUP)"),
    STR(tls_client_ca, "",
        "PEM file of the CAs whose certificates clients must present (mutual "
        "TLS; needs --tls-cert; re-read on SIGHUP)"),
    OTHER("insecure", OPT_BOOL, insecure, sizeof(bool),
          "allow plaintext on a --listen address that is not loopback (without it, such an "
          "address needs --tls-cert and --tls-key)"),
    STR(auth_tokens, "",
        "file of the tenants' tokens: lines 'TENANT SHA256HEX' (the hex SHA-256 of "
        "the token; '#' comments); every call then needs 'authorization: Bearer "
        "TOKEN' (re-read on SIGHUP)"),
    STR(metrics_tenant, "",
        "the tenant whose token (or client certificate) the HTTP door's /metrics "
        "needs (empty: /metrics is open)"),
    INT(tenant_max_concurrent, 0, 0, 1000000,
        "executions one tenant may have pending or running at once (0: no quota)"),
    INT(tenant_max_queued, 0, 0, 1000000,
        "executions one tenant may have waiting for a slot (0: no quota)"),
    INT(tenant_max_per_minute, 0, 0, 1000000,
        "executions one tenant may start a minute, in bursts of as many (0: no quota)"),
    STR(docker_socket, "/var/run/docker.sock", "path of the Docker engine's unix socket"),
    STR(default_image, "pyexec/python:3.11", "image used when a request names none"),
    STR(instance, "default", "name of this server instance (container label; the reaper's scope)"),
    STR(runtime, "",
        "OCI runtime of the sandboxes, as registered with the engine, e.g. crun "
        "(empty: the engine's default)"),
    OTHER("log_level", OPT_LEVEL, log_level, sizeof(px_log_level),
          "debug, info, warn or error (the --config file's is re-read on SIGHUP)"),
    OTHER("log_format", OPT_FORMAT, log_format, sizeof(px_log_format),
          "text (\"TIME LEVEL message\" lines) or json (one object per line: time, level, message, "
          "execution_id, tenant, node, rpc, peer, code, duration_ms)"),
    OTHER("python_image", OPT_PYIMAGE, python_images, 0,
          "VERSION=IMAGE: the image of a python_version requests may ask for; repeatable, each "
          "replaces or adds one (comma-separated in the environment)"),
    OTHER("allowed_images", OPT_IMAGES, allowed_images, FIELD_SIZE(allowed_images),
          "comma-separated patterns of the images a request may run, '*' matching any characters, "
          "e.g. pyexec/python:*; a request for another image is refused"),
    OTHER("pull", OPT_PULL, pull_missing, sizeof(bool),
          "never or missing: whether the engine may pull an allowed image that is not present "
          "(never: no registry is contacted)"),
    INT(default_timeout_s, 300, 1, 86400, "default wall-clock timeout of an execution, seconds"),
    INT(max_timeout_s, 3600, 1, 86400, "largest timeout a request may ask for"),
    INT(default_memory_mb, 1024, 16, 1 << 20, "default memory limit, MiB"),
    INT(max_memory_mb, 8192, 16, 1 << 20, "largest memory limit a request may ask for"),
    INT(default_disk_mb, 2048, 1, 1 << 20, "default size of /work, MiB"),
    INT(max_disk_mb, 8192, 1, 1 << 20, "largest /work a request may ask for"),
    INT(default_cpu_shares, 1024, 2, 262144, "default CPU weight"),
    INT(max_cpu_shares, 262144, 2, 262144, "largest CPU weight a request may ask for"),
    I64(output_limit_bytes, 16 * MIB, 1, INT64_C(1) << 32,
        "stdout+stderr cap per execution, bytes"),
    I64(max_message_bytes, 96 * MIB, 1024, INT_MAX, "largest request message, bytes"),
    I64(max_stdin_bytes, 16 * MIB, 0, INT_MAX, "largest stdin of a request, bytes"),
    I64(max_project_bytes, 256 * MIB, 1, INT64_C(1) << 40, "largest unpacked project, bytes"),
    INT(max_files, 10000, 1, 10000000, "most entries in a project"),
    INT(max_path_len, 1024, 16, 65536, "longest path in a project, bytes"),
    INT(max_env_vars, 256, 0, 100000, "most env_vars in a request"),
    INT(max_args, 1024, 0, 100000, "most script_args in a request"),
    INT(max_pre_commands, 64, 0, 10000, "most pre_commands in a request"),
    I64(max_string_bytes, MIB, 1, INT_MAX,
        "longest env var, argument, pre-command or requirements"),
    INT(max_requirements, 256, 0, 10000, "most requirement lines in a request's requirements_txt"),
    INT(max_concurrent, 4, 1, 4096, "executions running at once"),
    INT(max_queue, 64, 0, 1000000, "admitted executions waiting to run"),
    INT(max_records, 10000, 1, 100000000, "executions retained in memory"),
    I64(max_retained_bytes, 1024 * MIB, 0, INT64_C(1) << 40,
        "bytes of output and Eval reports finished executions may hold together; past it the "
        "oldest are dropped before their retention ends (0: no budget)"),
    INT(max_stream_readers, 256, 1, 100000, "concurrent StreamOutput calls per execution"),
    /* A stalled reader costs its queued message plus ~13 KiB of call state
     * (docs/security.md): 1024 of them, ~77 MiB at most. */
    INT(max_total_stream_readers, 1024, 1, 1000000, "concurrent StreamOutput calls, server-wide"),
    I64(max_stream_queued_bytes, 64 * MIB, 1024, INT64_C(1) << 40,
        "output bytes queued to StreamOutput readers together (each reader's message is at "
        "most this / --max-total-stream-readers, and 64 KiB)"),
    /* Sixteen results of the full default output cap at once. */
    I64(max_reply_queued_bytes, 256 * MIB, 65536, INT64_C(1) << 40,
        "bytes of unary replies (results with their output) being sent to clients together; "
        "past it a reply is RESOURCE_EXHAUSTED (at least --output-limit-bytes + 64 KiB)"),
    INT(max_concurrent_streams, 256, 1, 100000, "HTTP/2 streams per connection"),
    I64(retention_s, 300, 0, INT64_C(1) << 31, "seconds a finished execution stays readable"),
    I64(shutdown_grace_s, 10, 0, 86400, "seconds running executions get on SIGTERM"),
    INT(pids_limit, 256, 8, 1 << 22, "process limit of a sandbox"),
    INT(tmp_mb, 64, 1, 1 << 20, "size of a sandbox's /tmp, MiB"),
    I64(docker_timeout_ms, 30000, 100, 3600000, "bound on each Docker Engine API call, ms"),
    I64(reaper_interval_s, 60, 0, 86400,
        "seconds between orphan-container sweeps (0: start-up only)"),
    I64(health_interval_ms, 1000, 10, 3600000, "how often the Docker engine is pinged, ms"),
    /* One pooled container per core of the machine this was sized on (2):
     * enough for a burst of runs that keeps both cores busy, while an idle
     * pooled container holds ~10 MB and no CPU. A bigger pool does not raise
     * sustained throughput, which container creation bounds either way. */
    INT(warm_pool, 2, 0, 64, "pre-started containers kept ready for default-profile runs (0: off)"),
    STR(isolation, "container",
        "container (a fresh container per execution) or namespace (fresh namespaces "
        "per execution, made by bubblewrap in pooled host containers)"),
    INT(host_reuse, 100, 1, 1000000,
        "executions a namespace-mode host container runs before it is "
        "replaced (at once after an abnormal end)"),
    STR(wheelhouse, "",
        "host directory of wheels that requirements are installed from (mounted "
        "read-only into the builds; empty: none)"),
    STR(pip_index_url, "",
        "package index (PEP 503 simple URL) requirements are installed from "
        "(empty: none); needs --deps-network host or bridge"),
    STR(deps_network, "none",
        "network of the requirement builds: none, host or bridge (sandboxes keep "
        "theirs)"),
    INT(auto_requirements, 0, 0, 1,
        "1: requirements also include the distributions the project's .py files import "
        "(neither standard library nor the project's own); a request's requirements_txt \"-\" "
        "turns it off for that request"),
    I64(deps_cache_mb, 2048, 1, INT64_C(1) << 30,
        "size the cached requirement layers may take together, MiB (least recently used "
        "evicted first)"),
    STR_OR_EMPTY(http_listen, "address of the HTTP door (REST/JSON, /metrics, /docs), HOST:PORT "
                              "(port 0 picks a free port; empty: no HTTP door)"),
    /* The gRPC receive limit's default: the same code fits through either door. */
    I64(http_max_body_bytes, 96 * MIB, 1024, INT_MAX, "largest HTTP request body, bytes"),
    INT(http_max_connections, 256, 1, 65536, "open HTTP connections, all clients together"),
    INT(http_max_connections_per_client, 64, 1, 65536, "open HTTP connections from one IP address"),
    INT(http_max_header_bytes, 32 * 1024, 4096, 1 << 20,
        "largest HTTP request line plus headers, bytes (beyond: 414 or 431)"),
    STR_OR_EMPTY(http_docs_dir, "directory of swagger-ui-dist, for the browsable /docs page "
                                "(scripts/setup installs it; empty: a plain list of the routes)"),
    INT(http_read_timeout_s, 30, 1, 3600,
        "seconds an HTTP connection may stay idle (a request trickling in included)"),
    STR(store, "memory",
        "where records, output and the job queue live: memory (this process), "
        "redis://HOST:PORT[/DB], redis+unix:///PATH[?db=N] or "
        "redis+sentinel://HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB] (the primary the "
        "Sentinels name; shared by many nodes)"),
    STR(store_password_file, "",
        "file holding the Redis password (else PYEXEC_STORE_PASSWORD; "
        "never on the command line)"),
    STR(store_sentinel_password_file, "",
        "file holding the Sentinels' own password, with a redis+sentinel:// --store (else "
        "PYEXEC_STORE_SENTINEL_PASSWORD; never on the command line)"),
    STR(store_namespace, "pyexec", "prefix of this cluster's Redis keys (px:NAMESPACE:...)"),
    STR(node_name, "", "this node's name in the cluster, unique (default: host name and pid)"),
    I64(node_lease_ms, 10000, 300, 600000,
        "a node that stops renewing its lease this long is declared lost (Redis store), ms"),
    STR(role, "both",
        "both (serves calls and runs jobs), frontend (serves calls, runs nothing, needs no "
        "Docker engine) or worker (runs jobs, serves only health); frontend and worker "
        "need a Redis --store"),
    INT(store_grace_s, 30, 1, 86400,
        "seconds the Redis store may stay unreachable before a node kills its running "
        "executions (they end FAILED/LOST, written when Redis answers again)"),
    INT(store_min_replicas, 0, 0, 8,
        "Redis replicas that must acknowledge (WAIT) a new execution before the client is "
        "answered and a claim before its program starts; fewer: the call fails UNAVAILABLE, "
        "the claim is retried (0: no wait)"),
    INT(store_replica_timeout_ms, 1000, 1, 60000,
        "how long a create or a claim waits for --store-min-replicas acknowledgements, ms"),
};

const size_t px_config_n_opts = sizeof px_config_opts / sizeof px_config_opts[0];

void px_config_default(px_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < px_config_n_opts; i++) {
        const opt *o = &px_config_opts[i];
        char *field = (char *)cfg + o->offset;
        switch (o->kind) {
        case OPT_STR: snprintf(field, o->size, "%s", o->def_str); break;
        case OPT_INT: *(int *)(void *)field = (int)o->def; break;
        case OPT_I64: *(int64_t *)(void *)field = o->def; break;
        default: break; /* the kinds below */
        }
    }
    static const px_python_image builtin[] = {{"3.11", "pyexec/python:3.11"},
                                              {"3.13", "pyexec/python:3.13"}};
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        cfg->python_images[cfg->n_python_images++] = builtin[i];
    cfg->log_level = PX_LOG_INFO;
}

/* "max_timeout_s" -> "max-timeout-s" (flag) or "PYEXEC_MAX_TIMEOUT_S" (env). */
void px_config_flag_name(const opt *o, char *out, size_t n) {
    snprintf(out, n, "%s", o->name);
    for (char *p = out; *p; p++)
        if (*p == '_')
            *p = '-';
}

void px_config_env_name(const opt *o, char *out, size_t n) {
    int k = snprintf(out, n, "PYEXEC_");
    for (const char *p = o->name; *p && (size_t)k + 1 < n; p++)
        out[k++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    out[k] = '\0';
}

const opt *px_config_find_flag(const char *name, size_t len) {
    for (size_t i = 0; i < px_config_n_opts; i++) {
        char flag[64];
        px_config_flag_name(&px_config_opts[i], flag, sizeof flag);
        if (strlen(flag) == len && memcmp(flag, name, len) == 0)
            return &px_config_opts[i];
    }
    return NULL;
}

/* A number for --help: a byte count that is a whole number of KiB, MiB or
 * GiB also gets that form, e.g. "16777216 (16 MiB)". */
static void format_number(int64_t v, bool bytes, char *out, size_t n) {
    static const struct {
        int64_t unit;
        const char *name;
    } units[] = {{INT64_C(1) << 40, "TiB"}, {INT64_C(1) << 30, "GiB"}, {MIB, "MiB"}, {1024, "KiB"}};
    int k = snprintf(out, n, "%" PRId64, v);
    if (!bytes || v <= 0 || k < 0 || (size_t)k >= n)
        return;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (v >= units[i].unit && v % units[i].unit == 0) {
            snprintf(out + k, n - (size_t)k, " (%" PRId64 " %s)", v / units[i].unit, units[i].name);
            return;
        }
    }
}

void px_config_usage(FILE *out) {
    px_config def;
    px_config_default(&def);
    fprintf(out, "usage: pyexecd [--config FILE] [--check-config] [--FLAG VALUE]...\n\n"
                 "Runs Python projects in fresh Docker containers behind a gRPC API.\n"
                 "Every flag can also be set with the environment variable shown;\n"
                 "a number outside the range shown is refused.\n\n");
    for (size_t i = 0; i < px_config_n_opts; i++) {
        const opt *o = &px_config_opts[i];
        char flag[64], env[80], defval[300], lo[64], hi[64], range[160] = "";
        px_config_flag_name(o, flag, sizeof flag);
        px_config_env_name(o, env, sizeof env);
        const char *field = (const char *)&def + o->offset;
        bool bytes = strstr(o->name, "_bytes") != NULL;
        switch (o->kind) {
        case OPT_STR: snprintf(defval, sizeof defval, "%s", field[0] ? field : "(none)"); break;
        case OPT_INT:
            format_number(*(const int *)(const void *)field, bytes, defval, sizeof defval);
            break;
        case OPT_I64:
            format_number(*(const int64_t *)(const void *)field, bytes, defval, sizeof defval);
            break;
        case OPT_LEVEL: snprintf(defval, sizeof defval, "info"); break;
        case OPT_FORMAT: snprintf(defval, sizeof defval, "text"); break;
        case OPT_IMAGES:
            snprintf(defval, sizeof defval,
                     "the configured images (--default-image and every "
                     "--python-image)");
            break;
        case OPT_PULL: snprintf(defval, sizeof defval, "never"); break;
        case OPT_BOOL: snprintf(defval, sizeof defval, "off"); break;
        case OPT_PYIMAGE: {
            size_t k = 0;
            defval[0] = '\0';
            for (int j = 0; j < def.n_python_images && k < sizeof defval; j++) {
                int w = snprintf(defval + k, sizeof defval - k, "%s%s=%s", j ? "," : "",
                                 def.python_images[j].version, def.python_images[j].image);
                if (w < 0)
                    break;
                k += (size_t)w;
            }
            break;
        }
        }
        if (o->kind == OPT_INT || o->kind == OPT_I64) {
            format_number(o->min, bytes, lo, sizeof lo);
            format_number(o->max, bytes, hi, sizeof hi);
            snprintf(range, sizeof range, "%s to %s, ", lo, hi);
        }
        fprintf(out, "  --%-24s %s\n  %-26s %sdefault %s; env %s\n", flag, o->help, "", range,
                defval, env);
    }
    /* Not settings (so neither in the file nor in the table above). */
    fprintf(out, "  --%-24s %s\n  --%-24s %s\n", "help", "print this text", "version",
            "print the version");
    fprintf(out,
            "  --%-24s %s\n  %-26s env PYEXEC_CONFIG\n"
            "  --%-24s %s\n",
            "config FILE",
            "settings, one 'flag-name = value' a line ('#' comments); flags and the "
            "environment win over it; its log-level is re-read on SIGHUP",
            "", "check-config",
            "check the flags, environment and --config file; print 'configuration OK' and "
            "exit 0, or the error and exit 1; never starts");
}
