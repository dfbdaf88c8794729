/*
 * The Docker sandbox back-end's engine side (see sandbox_internal.h): API
 * helpers, the container profile and creation, the live set and the image
 * cache (image check, cached briefly; pull when absent, if allowed).
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/base/cleanup.h"
#include "server/base/clock.h"
#include "server/base/log.h"
#include "server/executor/docker/bootstrap.h"
#include "server/executor/docker/docker_client.h"
#include "server/executor/docker/sandbox_internal.h"
#include "server/executor/namespace/seccomp_filter.h"

#define IMAGE_CACHE_TTL_MS 10000
#define SANDBOX_UID 65534 /* nobody:nogroup */
#define SANDBOX_NOFILE 1024

/* The sandbox's own environment. Each name is one px_env_reserved()
 * reserves, so a request cannot override it. */
/* Paths the runtime hides (an empty read-only tmpfs over a directory,
 * /dev/null over a file). Setting MaskedPaths replaces the engine's list, so
 * it comes first, as Docker 20.10 has it; then what else would tell a
 * program about the host's kernel: its build configuration and everything
 * under /sys/kernel (vmcoreinfo with a physical address, BTF type data,
 * build notes, slab and mm details). docs/security.md. */
static const char *const masked_paths[] = {
    "/proc/asound",        "/proc/acpi",       "/proc/kcore",       "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi",          "/sys/firmware",    "/proc/config.gz",   "/sys/kernel",
};

static const char *const sandbox_env[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/tmp",
    "PYTHONUNBUFFERED=1",
    "PYTHONDONTWRITEBYTECODE=1",
    "PIP_DISABLE_PIP_VERSION_CHECK=1",
    "PIP_NO_CACHE_DIR=1",
};

void px_docker_config_from(px_docker_config *dc, const px_config *cfg) {
    *dc = (px_docker_config){
        .socket_path = cfg->docker_socket,
        .instance = cfg->instance,
        .api_timeout_ms = cfg->docker_timeout_ms,
        .pids_limit = cfg->pids_limit,
        .tmp_mb = cfg->tmp_mb,
        .nofile = SANDBOX_NOFILE,
        .reaper_interval_ms = cfg->reaper_interval_s * 1000,
        .runtime = cfg->runtime[0] ? cfg->runtime : NULL,
        .pull_missing = cfg->pull_missing,
        .warm_pool = cfg->warm_pool,
        .pool_image = cfg->default_image,
        .pool_memory_mb = cfg->default_memory_mb,
        .pool_disk_mb = cfg->default_disk_mb,
        .pool_cpu_shares = cfg->default_cpu_shares,
        .pool_refill_hold_ms = PX_DOCKER_REFILL_HOLD_MS,
        .isolation = cfg->isolation,
        .host_reuse = cfg->host_reuse,
        .wheelhouse = cfg->wheelhouse[0] ? cfg->wheelhouse : NULL,
        .pip_index_url = cfg->pip_index_url[0] ? cfg->pip_index_url : NULL,
        .deps_network = cfg->deps_network,
        .deps_cache_mb = cfg->deps_cache_mb,
        .auto_requirements = cfg->auto_requirements != 0,
        .helper_image = cfg->default_image,
    };
}

/* ---- API helpers ---- */

/* Calls the API and requires a 2xx answer; parses the body into *out if
 * out is non-NULL. Returns 0, or -1 with `err` set. */
int sb_api(docker_sandbox *sb, const char *method, const char *path, const char *body,
           int64_t timeout_ms, json_t **out, px_error *err) {
    px_docker_response r;
    if (px_docker_call(sb->client, method, path, body, timeout_ms, &r, err) < 0)
        return -1;
    int rc = 0;
    if (r.status < 200 || r.status > 299) {
        rc = px_docker_response_error(&r, method, path, err);
    } else if (out) {
        json_error_t jerr;
        *out = json_loadb(r.body, r.len, 0, &jerr);
        if (!*out)
            rc = px_error_set(err, PX_E_INTERNAL, "%s %s: bad JSON in answer: %s", method, path,
                              jerr.text);
    }
    px_docker_response_release(&r);
    return rc;
}

int sb_container_path(char *buf, size_t cap, const char *id, const char *suffix, px_error *err) {
    _cleanup_free_ char *eid = px_docker_escape(id, NULL);
    if (!eid)
        return px_error_set(err, PX_E_INTERNAL, "path of container '%.64s': out of memory", id);
    int n = snprintf(buf, cap, "/containers/%s%s", eid, suffix);
    if (n < 0 || (size_t)n >= cap)
        return px_error_set(err, PX_E_INTERNAL, "path of container '%.64s': longer than %zu bytes",
                            id, cap - 1);
    return 0;
}

double sb_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Best effort: forced removal with volumes. */
void sb_remove_container(docker_sandbox *sb, const char *id) {
    char path[512];
    px_error err = PX_ERROR_INIT;
    double t0 = sb_now_s();
    if ((sb_container_path(path, sizeof path, id, "?force=1&v=1", &err) < 0 ||
         sb_api(sb, "DELETE", path, NULL, 0, NULL, &err) < 0) &&
        err.code != PX_E_NOT_FOUND)
        px_warn("docker: remove container '%.64s': %s", id, err.msg);
    else
        px_histogram_observe(sb->remove_seconds, sb_now_s() - t0);
}

int sb_start_container(docker_sandbox *sb, const char *id, px_error *err) {
    char path[512];
    double t0 = sb_now_s();
    if (sb_container_path(path, sizeof path, id, "/start", err) < 0 ||
        sb_api(sb, "POST", path, NULL, 0, NULL, err) < 0)
        return -1;
    px_histogram_observe(sb->start_seconds, sb_now_s() - t0);
    return 0;
}

/* Best effort SIGKILL. */
void sb_kill_container(docker_sandbox *sb, const char *id) {
    char path[512];
    px_error err = PX_ERROR_INIT;
    if (sb_container_path(path, sizeof path, id, "/kill", &err) == 0)
        sb_api(sb, "POST", path, NULL, 0, NULL, &err);
}

/* Best effort usage snapshot from the stats endpoint (cgroup v1 and v2). */
void sb_take_stats(docker_sandbox *sb, const char *id, int64_t timeout_ms, int64_t *peak,
                   int64_t *cpu_ms) {
    char path[512];
    px_error err = PX_ERROR_INIT;
    _cleanup_json_ json_t *j = NULL;
    if (sb_container_path(path, sizeof path, id, "/stats?stream=false&one-shot=true", &err) < 0 ||
        sb_api(sb, "GET", path, NULL, timeout_ms, &j, &err) < 0)
        return;
    json_t *mem = json_object_get(j, "memory_stats");
    json_int_t m = json_integer_value(json_object_get(mem, "max_usage"));
    if (m <= 0)
        m = json_integer_value(json_object_get(mem, "usage"));
    json_int_t c = json_integer_value(json_object_get(
        json_object_get(json_object_get(j, "cpu_stats"), "cpu_usage"), "total_usage"));
    if (m > 0)
        *peak = m;
    if (c > 0)
        *cpu_ms = c / 1000000;
}

/* ---- live set and image cache ---- */

int sb_live_add(docker_sandbox *sb, const char *name, px_error *err) {
    _cleanup_free_ char *copy = strdup(name);
    if (!copy)
        return px_error_set(err, PX_E_INTERNAL, "register container '%s': out of memory", name);
    pthread_mutex_lock(&sb->live_mu);
    if (sb->n_live == sb->cap_live) {
        size_t cap = sb->cap_live ? 2 * sb->cap_live : 16;
        char **v = realloc(sb->live, cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&sb->live_mu);
            return px_error_set(err, PX_E_INTERNAL, "register container '%s': out of memory", name);
        }
        sb->live = v;
        sb->cap_live = cap;
    }
    sb->live[sb->n_live++] = TAKE_PTR(copy);
    pthread_mutex_unlock(&sb->live_mu);
    return 0;
}

void sb_live_remove(docker_sandbox *sb, const char *name) {
    pthread_mutex_lock(&sb->live_mu);
    for (size_t i = 0; i < sb->n_live; i++) {
        if (strcmp(sb->live[i], name) == 0) {
            free(sb->live[i]);
            sb->live[i] = sb->live[--sb->n_live];
            break;
        }
    }
    pthread_mutex_unlock(&sb->live_mu);
}

bool sb_live_has(docker_sandbox *sb, const char *name) {
    bool found = false;
    pthread_mutex_lock(&sb->live_mu);
    for (size_t i = 0; i < sb->n_live && !found; i++)
        found = strcmp(sb->live[i], name) == 0;
    pthread_mutex_unlock(&sb->live_mu);
    return found;
}

bool sb_image_cached(docker_sandbox *sb, const char *image) {
    bool hit = false;
    int64_t now = px_now_mono_ms();
    pthread_mutex_lock(&sb->image_mu);
    for (size_t i = 0; i < IMAGE_CACHE_SIZE && !hit; i++)
        hit = sb->images[i].name && sb->images[i].expires_ms > now &&
              strcmp(sb->images[i].name, image) == 0;
    pthread_mutex_unlock(&sb->image_mu);
    return hit;
}

void sb_image_remember(docker_sandbox *sb, const char *image) {
    char *copy = strdup(image);
    if (!copy)
        return;
    pthread_mutex_lock(&sb->image_mu);
    size_t victim = 0;
    for (size_t i = 0; i < IMAGE_CACHE_SIZE; i++) {
        if (!sb->images[i].name || strcmp(sb->images[i].name, image) == 0) {
            victim = i;
            break;
        }
        if (sb->images[i].expires_ms < sb->images[victim].expires_ms)
            victim = i;
    }
    free(sb->images[victim].name);
    sb->images[victim].name = copy;
    sb->images[victim].expires_ms = px_now_mono_ms() + IMAGE_CACHE_TTL_MS;
    pthread_mutex_unlock(&sb->image_mu);
}

/* Returns 1 if present, 0 if absent, -1 with `err` set on failure. */
int sb_image_present(docker_sandbox *sb, const char *image, px_error *err) {
    _cleanup_free_ char *eimg = px_docker_escape(image, "/:@");
    _cleanup_free_ char *path = NULL;
    if (!eimg || asprintf(&path, "/images/%s/json", eimg) < 0) {
        path = NULL;
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    }
    px_error e = PX_ERROR_INIT;
    if (sb_api(sb, "GET", path, NULL, 0, NULL, &e) == 0)
        return 1;
    if (e.code == PX_E_NOT_FOUND)
        return 0;
    *err = e;
    return -1;
}

/* Pulls `image`. Returns 0, or -1 with `err` set. The engine answers 200 and
 * reports a failure inside the progress stream, or fails the call. */
static int image_pull(docker_sandbox *sb, const char *image, px_error *err) {
    _cleanup_free_ char *eimg = px_docker_escape(image, NULL);
    _cleanup_free_ char *path = NULL;
    if (!eimg || asprintf(&path, "/images/create?fromImage=%s", eimg) < 0) {
        path = NULL;
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    }
    px_docker_response r;
    if (px_docker_call(sb->client, "POST", path, NULL, 0, &r, err) < 0)
        return -1;
    int rc = 0;
    if (r.status != 200) {
        rc = px_docker_response_error(&r, "POST", path, err);
    } else {
        /* One JSON object per line; the last "error" wins. */
        for (char *line = r.body; line && *line;) {
            char *nl = strchr(line, '\n');
            size_t n = nl ? (size_t)(nl - line) : strlen(line);
            _cleanup_json_ json_t *j = json_loadb(line, n, 0, NULL);
            const char *e = json_string_value(json_object_get(j, "error"));
            if (e)
                rc = px_error_set(err, PX_E_INTERNAL, "POST %s: %s", path, e);
            line = nl ? nl + 1 : NULL;
        }
    }
    px_docker_response_release(&r);
    return rc;
}

int sb_ensure_image(docker_sandbox *sb, const char *image, px_error *err) {
    if (sb_image_cached(sb, image))
        return 0;
    int present = sb_image_present(sb, image, err);
    if (present < 0)
        return px_error_wrap(err, "inspect image '%s'", image);
    if (!present && !sb->pull_missing)
        return px_error_set(err, PX_E_PRECONDITION,
                            "image '%s' is not present, and this server does not pull images "
                            "(--pull never)",
                            image);
    if (!present) {
        px_error e = PX_ERROR_INIT;
        if (image_pull(sb, image, &e) < 0 || (present = sb_image_present(sb, image, &e)) <= 0) {
            if (e.code == PX_E_UNAVAILABLE) {
                *err = e;
                return px_error_wrap(err, "pull image '%s'", image);
            }
            if (e.code == PX_OK)
                px_error_set(&e, PX_E_INTERNAL, "the pull left no image");
            return px_error_set(err, PX_E_PRECONDITION,
                                "image '%s' is not present and could not be pulled: %s", image,
                                e.msg);
        }
    }
    sb_image_remember(sb, image);
    return 0;
}

/* ---- container creation ---- */

static json_t *strv_json(const char *const *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *ulimit(const char *name, json_int_t value) {
    return json_pack("{s:s, s:I, s:I}", "Name", name, "Soft", value, "Hard", value);
}

static char *out_of_memory(px_error *err) {
    px_error_set(err, PX_E_INTERNAL, "out of memory");
    return NULL;
}

/* Builds the create body for the profile of `spec` (image, network, limits;
 * the request's environment travels in the bootstrap header instead). A
 * pooled container (`for_pool`) is labelled pyexec.pool=1, any other
 * pyexec.execution=<id>. Returns a new JSON string, or NULL with `err` set. */
static char *create_body(docker_sandbox *sb, const px_job_spec *spec, bool for_pool,
                         px_error *err) {
    json_t *env = strv_json(sandbox_env, PX_ARRAY_SIZE(sandbox_env));
    json_t *labels = json_pack("{s:s, s:s}", "pyexec.service", "pyexecd", "pyexec.instance",
                               sb->instance);
    if (labels && for_pool)
        json_object_set_new(labels, "pyexec.pool", json_string("1"));
    else if (labels)
        json_object_set_new(labels, "pyexec.execution", json_string(spec->execution_id));

    char work_opts[128], tmp_opts[128];
    /* Owned by the sandbox user: the engine re-modes the WorkingDir mount
     * point to 0755 after mounting it, so mode=1777 alone is not enough. */
    snprintf(work_opts, sizeof work_opts, "rw,exec,nosuid,nodev,size=%dm,mode=1777,uid=%d,gid=%d",
             spec->disk_mb, SANDBOX_UID, SANDBOX_UID);
    snprintf(tmp_opts, sizeof tmp_opts, "rw,noexec,nosuid,nodev,size=%dm,mode=1777", sb->tmp_mb);
    const json_int_t mib = 1024 * 1024;
    const json_int_t memory = (json_int_t)spec->memory_mb * mib;
    const json_int_t disk = (json_int_t)spec->disk_mb * mib;

    /* "Init": false: the bootstrap is PID 1, which no signal from inside
     * the container reaches (bootstrap.py, docs/sandbox.md). */
    json_t *host = json_pack(
        "{s:s, s:b, s:[s], s:[s,s], s:o, s:I, s:I, s:I, s:I, s:{s:s, s:s}, s:I, s:[o,o,o], s:b, "
        "s:{s:s, s:{}}}",
        "NetworkMode", spec->network ? "bridge" : "none", "ReadonlyRootfs", 1, "CapDrop", "ALL",
        "SecurityOpt", "no-new-privileges", sb->seccomp_opt, "MaskedPaths",
        strv_json(masked_paths, PX_ARRAY_SIZE(masked_paths)), "PidsLimit",
        (json_int_t)sb->pids_limit, "Memory", memory, "MemorySwap", memory, "CpuShares",
        (json_int_t)spec->cpu_shares, "Tmpfs", "/work", work_opts, "/tmp", tmp_opts, "ShmSize",
        (json_int_t)sb->tmp_mb * mib, "Ulimits", ulimit("nofile", sb->nofile),
        ulimit("fsize", disk), ulimit("core", 0), "Init", 0, "LogConfig", "Type", "none", "Config");
    /* A namespace-mode host (--isolation namespace): bubblewrap may create
     * namespaces and mounts (the host profile), and /proc is left unmasked,
     * since the kernel refuses a new procfs where parts of the old one are
     * covered; each execution gets its own /proc, masked again by host.py,
     * and its own /work and /tmp. docs/security.md, "Namespace mode". */
    bool is_host = sb->ns && for_pool;
    if (host && is_host) {
        json_object_set_new(host, "SecurityOpt",
                            json_pack("[s,s]", "no-new-privileges", sb->host_seccomp_opt));
        json_object_set_new(host, "MaskedPaths", json_array());
        json_object_set_new(host, "ReadonlyPaths", json_array());
        json_object_set_new(host, "Tmpfs", json_pack("{s:s}", "/tmp", tmp_opts));
        if (labels)
            json_object_set_new(labels, "pyexec.host", json_string("1"));
    }
    if (!host || !env || !labels) {
        json_decref(host);
        json_decref(env);
        json_decref(labels);
        return out_of_memory(err);
    }
    if (sb->runtime)
        json_object_set_new(host, "Runtime", json_string(sb->runtime));
    /* The dependency layers, read-only, for whichever this run (or, pooled,
     * a later run) uses: see deps.c. */
    if (sb_deps_enabled(sb))
        json_object_set_new(host, "Mounts",
                            json_pack("[{s:s, s:s, s:s, s:b}]", "Type", "volume", "Source",
                                      sb->deps_volume, "Target", "/deps", "ReadOnly", 1));

    const char *cmd[] = {"python3", "-I", "-S", "-c", px_bootstrap_script()};
    /* host.py's last argument, the executions it will run at most: it
     * starts no sandbox ahead of a job that will never come. */
    char reuse[16];
    snprintf(reuse, sizeof reuse, "%d", sb->host_reuse);
    const char *host_cmd[] = {"python3", "-I", "-S", "-c", px_host_script(), px_bootstrap_script(),
                              reuse};
    _cleanup_json_ json_t *body = json_pack(
        "{s:s, s:o, s:o, s:s, s:s, s:b, s:b, s:b, s:b, s:b, s:b, s:o, s:o}", "Image", spec->image,
        "Cmd",
        is_host ? strv_json(host_cmd, PX_ARRAY_SIZE(host_cmd)) : strv_json(cmd, PX_ARRAY_SIZE(cmd)),
        "Env", env, "WorkingDir", is_host ? "/" : "/work", "User", "65534:65534", "AttachStdin", 1,
        "AttachStdout", 1, "AttachStderr", 1, "OpenStdin", 1, "StdinOnce", 1, "Tty", 0, "Labels",
        labels, "HostConfig", host);
    if (!body) {
        px_error_set(err, PX_E_INVALID, "the image name or execution id is not valid UTF-8");
        return NULL;
    }
    char *s = json_dumps(body, JSON_COMPACT);
    return s ? s : out_of_memory(err);
}

int sb_create_container(docker_sandbox *sb, const px_job_spec *spec, bool for_pool,
                        const char *name, char *id, size_t id_cap, px_error *err) {
    _cleanup_free_ char *body = create_body(sb, spec, for_pool, err);
    if (!body)
        return -1;
    _cleanup_free_ char *ename = px_docker_escape(name, NULL);
    char path[256];
    if (!ename ||
        snprintf(path, sizeof path, "/containers/create?name=%s", ename) >= (int)sizeof path)
        return px_error_set(err, PX_E_INTERNAL, "container name too long");
    px_docker_response r;
    double t0 = sb_now_s();
    if (px_docker_call(sb->client, "POST", path, body, 0, &r, err) < 0)
        return -1;
    if (r.status == 201 || r.status == 200)
        px_histogram_observe(sb->create_seconds, sb_now_s() - t0);
    if (r.status != 201 && r.status != 200) {
        /* Name the endpoint without the query, as the engine's docs do. */
        px_docker_response_error(&r, "POST", "/containers/create", err);
        px_docker_response_release(&r);
        return -1;
    }
    _cleanup_json_ json_t *j = json_loadb(r.body, r.len, 0, NULL);
    px_docker_response_release(&r);
    const char *cid = json_string_value(json_object_get(j, "Id"));
    if (!cid || strlen(cid) >= id_cap)
        return px_error_set(err, PX_E_INTERNAL, "POST /containers/create: answer has no Id");
    memcpy(id, cid, strlen(cid) + 1);
    return 0;
}

/* Fails, naming the ones there are, when the engine has no runtime called
 * sb->runtime: every create would fail with an error the client cannot fix. */
static const char seccomp_profile[] =
#include "server/executor/docker/seccomp_json.inc"
    ;

char *sb_seccomp_option(px_error *err) {
    json_error_t jerr;
    _cleanup_json_ json_t *profile = json_loads(seccomp_profile, 0, &jerr);
    if (!json_is_object(profile) || !json_is_array(json_object_get(profile, "syscalls"))) {
        px_error_set(err, PX_E_INTERNAL, "docker sandbox: the built-in seccomp profile is bad: %s",
                     profile ? "no syscalls" : jerr.text);
        return NULL;
    }
    _cleanup_free_ char *compact = json_dumps(profile, JSON_COMPACT);
    char *opt = NULL;
    if (!compact || asprintf(&opt, "seccomp=%s", compact) < 0) {
        px_error_set(err, PX_E_INTERNAL, "docker sandbox: out of memory");
        return NULL;
    }
    return opt;
}

int sb_check_runtime(docker_sandbox *sb, px_error *err) {
    _cleanup_json_ json_t *info = NULL;
    if (sb_api(sb, "GET", "/info", NULL, 0, &info, err) < 0)
        return px_error_wrap(err, "docker sandbox: look up runtime '%s'", sb->runtime);
    json_t *runtimes = json_object_get(info, "Runtimes");
    if (json_object_get(runtimes, sb->runtime))
        return 0;
    char names[256] = "";
    size_t used = 0;
    const char *name;
    json_t *v;
    json_object_foreach(runtimes, name, v) {
        int n = snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", name);
        if (n < 0 || (size_t)n >= sizeof names - used)
            break;
        used += (size_t)n;
    }
    (void)v;
    return px_error_set(err, PX_E_INVALID,
                        "docker sandbox: the engine has no runtime '%s' (it has: %s); register "
                        "it with dockerd --add-runtime or \"runtimes\" in daemon.json",
                        sb->runtime, used ? names : "none listed");
}

static const char seccomp_host_profile[] =
#include "server/executor/docker/seccomp_host_json.inc"
    ;

/* The programs' filter from the sandbox profile (seccomp.json): its rules as
 * plain structs for the filter's module, which adds its own policy. */
static int build_ns_filter(docker_sandbox *sb, px_error *err) {
    json_error_t jerr;
    _cleanup_json_ json_t *p = json_loads(seccomp_profile, 0, &jerr);
    json_t *arches = json_object_get(p, "architectures");
    json_t *rules = json_object_get(p, "syscalls");
    if (!json_is_array(arches) || !json_is_array(rules) || json_array_size(arches) > 8)
        return px_error_set(err, PX_E_INTERNAL, "the built-in seccomp profile is bad");
    size_t n_rules = json_array_size(rules), n_names = 0, n_args = 0;
    for (size_t i = 0; i < n_rules; i++) {
        n_names += json_array_size(json_object_get(json_array_get(rules, i), "names"));
        n_args += json_array_size(json_object_get(json_array_get(rules, i), "args"));
    }
    const char *arch_names[8];
    _cleanup_free_ px_seccomp_rule *r = calloc(n_rules + 1, sizeof *r);
    _cleanup_free_ const char **names = calloc(n_names + 1, sizeof *names);
    _cleanup_free_ px_seccomp_arg *args = calloc(n_args + 1, sizeof *args);
    if (!r || !names || !args)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    for (size_t i = 0; i < json_array_size(arches); i++)
        arch_names[i] = json_string_value(json_array_get(arches, i));
    size_t ni = 0, ai = 0;
    for (size_t i = 0; i < n_rules; i++) {
        json_t *rule = json_array_get(rules, i);
        json_t *nv = json_object_get(rule, "names"), *av = json_object_get(rule, "args");
        const char *action = json_string_value(json_object_get(rule, "action"));
        if (!action)
            return px_error_set(err, PX_E_INTERNAL, "seccomp profile: rule %zu has no action", i);
        r[i] = (px_seccomp_rule){
            .names = names + ni,
            .n_names = json_array_size(nv),
            .action = action,
            .errno_ret = (int)json_integer_value(json_object_get(rule, "errnoRet")),
            .args = args + ai,
            .n_args = json_array_size(av),
        };
        for (size_t k = 0; k < json_array_size(nv); k++)
            names[ni++] = json_string_value(json_array_get(nv, k));
        for (size_t k = 0; k < json_array_size(av); k++) {
            json_t *a = json_array_get(av, k);
            const char *op = json_string_value(json_object_get(a, "op"));
            args[ai++] = (px_seccomp_arg){
                .index = (unsigned)json_integer_value(json_object_get(a, "index")),
                .op = op ? op : "",
                .value = (uint64_t)json_integer_value(json_object_get(a, "value")),
                .value_two = (uint64_t)json_integer_value(json_object_get(a, "valueTwo")),
            };
        }
        for (size_t k = 0; k < r[i].n_names; k++)
            if (!r[i].names[k])
                return px_error_set(err, PX_E_INTERNAL, "seccomp profile: a name is not text");
    }
    px_seccomp_profile profile = {arch_names, json_array_size(arches), r, n_rules};
    return px_ns_filter_build(&profile, &sb->ns_filter, &sb->ns_filter_len, err);
}

int sb_ns_prepare(docker_sandbox *sb, px_error *err) {
    json_error_t jerr;
    _cleanup_json_ json_t *host = json_loads(seccomp_host_profile, 0, &jerr);
    _cleanup_free_ char *compact = host ? json_dumps(host, JSON_COMPACT) : NULL;
    if (!compact)
        return px_error_set(err, PX_E_INTERNAL,
                            "docker sandbox: the built-in host seccomp profile is bad: %s",
                            host ? "out of memory" : jerr.text);
    if (asprintf(&sb->host_seccomp_opt, "seccomp=%s", compact) < 0) {
        sb->host_seccomp_opt = NULL;
        return px_error_set(err, PX_E_INTERNAL, "docker sandbox: out of memory");
    }
    if (build_ns_filter(sb, err) < 0)
        return px_error_wrap(err, "docker sandbox");
    return 0;
}
