/*
 * pyexecd's configuration: every setting is a flag `--name VALUE`, an
 * environment variable `PYEXEC_NAME` (upper case, '-' -> '_') and a line
 * `name = VALUE` of the --config file; a flag wins over the environment,
 * which wins over the file, which wins over the default. Parsed once in
 * main(), then read-only (shared by all threads without locks); only the
 * log level is re-read, from the file, on SIGHUP.
 */
#ifndef PYEXEC_BASE_CONFIG_H
#define PYEXEC_BASE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "pyexec_version.h" /* PYEXEC_VERSION, for --version */
#include "server/base/error.h"
#include "server/base/log.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most --python-image entries (built-in ones included). */
#define PX_PYTHON_IMAGES_MAX 16

/* One Python version a request may ask for (python_version) and its image. */
typedef struct px_python_image {
    char version[16]; /* e.g. "3.13": digits and dots */
    char image[256];
} px_python_image;

/* The largest --config file. */
#define PX_CONFIG_FILE_MAX (1 << 20)

typedef struct px_config {
    /* --config FILE (or PYEXEC_CONFIG): settings read under the environment
     * and the flags; "" = none. --check-config: validate, do not start. */
    char config_file[1024];
    bool check_config;
    /* The log level was set by a flag or the environment: a SIGHUP's
     * re-read of the file leaves it. */
    bool log_level_pinned;
    char listen[256]; /* --listen, default 127.0.0.1:50051 */
    /* TLS of the gRPC port (PEM files, re-read on SIGHUP): --tls-cert and
     * --tls-key together turn it on; --tls-client-ca also makes it mutual
     * (every client presents a certificate that CA signed). Empty: off. */
    char tls_cert[1024];
    char tls_key[1024];
    char tls_client_ca[1024];
    /* --insecure: plaintext on an address that is not loopback is allowed
     * (without it such a --listen needs TLS). */
    bool insecure;
    /* --auth-tokens: the tenants' token file (lines "TENANT SHA256HEX",
     * re-read on SIGHUP); "" = no tokens. */
    char auth_tokens[1024];
    /* Per-tenant quotas (0: none): executions pending or running, of those
     * pending, admissions per minute. */
    int tenant_max_concurrent;
    int tenant_max_queued;
    int tenant_max_per_minute;
    /* --metrics-tenant: the tenant whose token (or certificate) the HTTP
     * door's /metrics needs; "" = /metrics is open. */
    char metrics_tenant[256]; /* a tenant: PX_TENANT_MAX bytes with its NUL */
    char docker_socket[256];  /* --docker-socket, default /var/run/docker.sock */
    char default_image[256];  /* --default-image, default pyexec/python:3.11 */
    char instance[64];        /* --instance: label value for the reaper, default "default" */
    char runtime[64];         /* --runtime: OCI runtime of sandboxes; "" = engine default */
    px_log_level log_level;   /* --log-level debug|info|warn|error */
    px_log_format log_format; /* --log-format text|json */
    /* --python-image VERSION=IMAGE (repeatable; replaces or adds a version):
     * built in, 3.11 -> pyexec/python:3.11 and 3.13 -> pyexec/python:3.13. */
    px_python_image python_images[PX_PYTHON_IMAGES_MAX];
    int n_python_images;
    /* --allowed-images: comma-separated patterns of the images a request may
     * run ('*' matches any run of characters, everything else itself); ""
     * (the default) allows the configured images: --default-image and every
     * --python-image. See px_config_image_allowed(). */
    char allowed_images[1024];
    /* --pull never|missing: whether the engine may pull an allowed image
     * that is not present (default never: no registry is contacted). */
    bool pull_missing;

    /* Per-execution limits: the default applied when a request leaves a
     * field 0/unset, and the maximum a request may ask for. */
    int default_timeout_s, max_timeout_s;
    int default_memory_mb, max_memory_mb;
    int default_disk_mb, max_disk_mb;
    int default_cpu_shares, max_cpu_shares;
    int64_t output_limit_bytes; /* stdout+stderr per execution */

    /* Request limits. */
    int64_t max_message_bytes; /* gRPC receive limit */
    int64_t max_stdin_bytes;
    int64_t max_project_bytes; /* unpacked */
    int max_files;
    int max_path_len;
    int max_env_vars;
    int max_args;
    int max_pre_commands;
    int64_t max_string_bytes; /* one env var, arg, pre-command, requirements */
    int max_requirements;     /* requirement lines in requirements_txt */

    /* Service capacity. */
    int max_concurrent;              /* executions running at once */
    int max_queue;                   /* admitted executions waiting to run */
    int max_records;                 /* executions retained in memory */
    int64_t max_retained_bytes;      /* output bytes retained executions may hold together */
    int max_stream_readers;          /* concurrent StreamOutput calls per execution */
    int max_total_stream_readers;    /* concurrent StreamOutput calls, server-wide */
    int64_t max_stream_queued_bytes; /* output queued to StreamOutput readers together */
    int64_t max_reply_queued_bytes;  /* unary replies (results with output) queued together */
    int max_concurrent_streams;      /* HTTP/2 streams per connection */
    int64_t retention_s;             /* terminal records kept after finished_at */
    int64_t shutdown_grace_s;        /* SIGTERM: running executions may finish */

    /* Sandbox. */
    int pids_limit;
    int tmp_mb;
    int64_t docker_timeout_ms; /* bound on each Engine API call */
    int64_t reaper_interval_s;
    int64_t health_interval_ms; /* how often the engine is pinged */
    int warm_pool;              /* pre-started containers for the default profile; 0: off */
    char isolation[16];         /* --isolation container|namespace (docs/sandbox.md) */
    int host_reuse;             /* --host-reuse: executions per namespace-mode host */

    /* Dependencies (requirements_txt): layers built outside the sandbox. */
    char wheelhouse[1024];    /* --wheelhouse: host directory of wheels; "" = none */
    char pip_index_url[1024]; /* --pip-index-url: package index of the builds; "" = none */
    char deps_network[16];    /* --deps-network: none, host or bridge (the builds only) */
    int64_t deps_cache_mb;    /* --deps-cache-mb: size of the layer cache (LRU) */
    int auto_requirements;    /* --auto-requirements 0|1: add the project's imports */

    /* The HTTP door (server/http). */
    char http_listen[256];               /* --http-listen HOST:PORT; "" (the default): off */
    int64_t http_max_body_bytes;         /* request body; beyond: 413 */
    int http_max_connections;            /* open connections, all clients together */
    int http_max_connections_per_client; /* open connections from one IP address */
    int http_max_header_bytes;           /* request line + headers (the connection's buffer) */
    int http_read_timeout_s;             /* a connection idle this long is closed */
    char http_docs_dir[1024];            /* swagger-ui-dist for /docs; "": a plain page */
    /* The store: "memory" (this process only) or a Redis URL shared by many
     * nodes (checked by the daemon; the password never comes from a flag
     * but from --store-password-file or PYEXEC_STORE_PASSWORD). */
    char store[512];               /* --store, default memory */
    char store_password_file[512]; /* --store-password-file, default none */
    char store_namespace[65];      /* --store-namespace: key prefix px:<ns>:, default pyexec */
    char node_name[65];            /* --node-name: unique per cluster; "" = host name + pid */
    int64_t node_lease_ms;         /* --node-lease-ms: a silent node's runs are lost after it */
    char role[16];                 /* --role both|frontend|worker (checked by the daemon) */
    int store_grace_s;             /* --store-grace-s: Redis away this long: runs are killed */
    /* --store-sentinel-password-file: the Sentinels' own password (else
     * PYEXEC_STORE_SENTINEL_PASSWORD), default none. */
    char store_sentinel_password_file[512];
    /* --store-min-replicas: replicas that must acknowledge a create or a
     * claim (Redis WAIT) before it counts, 0..8, default 0 (no wait);
     * --store-replica-timeout-ms: how long to wait for them. */
    int store_min_replicas;
    int store_replica_timeout_ms;
} px_config;

/* Fills `cfg` with the defaults. */
void px_config_default(px_config *cfg);

typedef enum px_config_action {
    PX_CONFIG_RUN = 0,     /* parsed: run the server */
    PX_CONFIG_HELP = 1,    /* --help was given: usage printed, exit 0 */
    PX_CONFIG_VERSION = 2, /* --version was given: version printed, exit 0 */
    PX_CONFIG_CHECKED = 3, /* --check-config: all parsed; the caller checks the rest, exits 0 */
} px_config_action;

/* Parses the --config file (named by argv or PYEXEC_CONFIG), then `envp`
 * (NULL-terminated "KEY=value" strings, may be NULL), then argv[1..argc-1]
 * over the defaults. Help and version text go to `out`. Returns a px_config_action, or -1 with `err` set (PX_E_INVALID)
 * naming the flag, variable or FILE:LINE and the accepted values; main()
 * exits 2 then (1 with --check-config: cfg->check_config is set). */
int px_config_parse(px_config *cfg, int argc, char **argv, char **envp, FILE *out, px_error *err);

/* SIGHUP: re-reads cfg's --config file, checking it whole, into *level:
 * the log-level it sets (the default if none). Without a file, or when a
 * flag or the environment set the level, *level is cfg's. Returns 0, or -1
 * with `err` set naming FILE:LINE (*level is then cfg's). */
int px_config_reread_log_level(const px_config *cfg, px_log_level *level, px_error *err);

/* The image of Python `version` ("3.13"), or NULL if the config has none. */
const char *px_config_python_image(const px_config *cfg, const char *version);

/* The known versions, ", "-separated, in the order configured, into `out`. */
void px_config_python_versions(const px_config *cfg, char *out, size_t n);

/* Whether a request may run `image` (see allowed_images). */
bool px_config_image_allowed(const px_config *cfg, const char *image);

/* The images a request may run, as a client should read it (the patterns,
 * or the configured images), ", "-separated, into `out` (cut at `n`). */
void px_config_allowed_images(const px_config *cfg, char *out, size_t n);

/* Whether the HOST of `listen` (HOST:PORT) is a loopback address:
 * localhost, 127.0.0.0/8 or ::1 (bracketed or not). */
bool px_config_listen_is_loopback(const char *listen);

/* Prints the usage text (all flags, env names and defaults). */
void px_config_usage(FILE *out);

/* The smallest share of --max-stream-queued-bytes one reader may get. */
#define PX_STREAM_MESSAGE_MIN 1024

#ifdef __cplusplus
}
#endif

#endif
