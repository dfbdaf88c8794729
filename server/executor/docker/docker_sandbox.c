/*
 * The Docker sandbox back-end; see docker_sandbox.h and docs/sandbox.md.
 *
 * One run, on the executor's worker thread, takes one of two paths to a
 * started container whose bootstrap waits for its header on stdin:
 *   warm  take a pooled container (when the spec fits the pool's profile) ->
 *         check it is still idle -> update its limits if they differ;
 *   cold  image check (cached briefly) -> register the name as live ->
 *         create -> attach -> start;
 * and then, on both: report started -> [poll loop] -> wait + inspect ->
 * remove -> unregister.
 * The poll loop watches the attach socket (frames in, stdin out), the
 * executor's wake fd and the deadline, and ends in one of three ways:
 *   EOF       the container's streams closed (the program ended, or it was
 *             killed at the deadline and its streams drained);
 *   KILL      the executor asked: SIGKILL at once, no draining;
 *   PROTOCOL  the attach stream broke its framing: SIGKILL, report an error.
 * Every path after a successful create ends in a forced removal.
 *
 * The reaper thread wakes every reaper_interval_ms (a timed condition wait,
 * so destroy() stops it at once) and removes containers of this instance
 * that are not in the live set. Names enter the live set before create and
 * leave it after removal, so the reaper never races a run or the pool.
 *
 * The warm pool. Up to POOL_THREADS pool threads (so at most that many
 * creations at once) keep `pool_size` containers of the pool's profile
 * created, attached and started. A pooled container moves through:
 *   creating (counted in `creating`) -> ready (in `ready`, FIFO) ->
 *   taken by one run (owned by it, removed when the run ends)
 * or, from ready, to discarded (died while idle, update failed, destroy).
 * A pool thread creates while ready + creating < pool_size and otherwise
 * waits on pool_cond, which a take, destroy() and a ping that finds the
 * engine back signal. A failed creation sets retry_at (exponential backoff,
 * POOL_BACKOFF_MIN_MS..POOL_BACKOFF_MAX_MS) and the threads wait for it with
 * a timed condition wait: an absent engine costs one attempt per backoff
 * period, never a spin. destroy() stops the threads (a creation in flight
 * finishes, bounded by api_timeout_ms, and is removed), closes the ready
 * containers' stdin so their bootstraps exit, then removes them.
 */
#include "server/executor/docker/docker_sandbox.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/base/cleanup.h"
#include "server/base/clock.h"
#include "server/base/id.h"
#include "server/base/log.h"
#include "server/executor/docker/bootstrap.h"
#include "server/executor/docker/docker_client.h"
#include "server/executor/docker/frames.h"

#define IMAGE_CACHE_SIZE 8
#define IMAGE_CACHE_TTL_MS 10000
#define PING_TIMEOUT_MS 2000
/* Usage snapshots before a kill are best effort: the engine answers a
 * one-shot stats call in a few ms, but waits for its 1 s sampling cycle
 * when another stats call is in flight. A Kill RPC must not wait for that;
 * a timeout (already late by definition) may, to report usage. */
#define KILL_STATS_TIMEOUT_MS 150
#define TIMEOUT_STATS_TIMEOUT_MS 1500
#define DRAIN_AFTER_KILL_MS 2000
/* After an early end, how long the container may take to exit by itself
 * before the removal kills it (it takes ~50 ms here). */
#define EXIT_AFTER_END_MS 2000
#define SANDBOX_UID 65534 /* nobody:nogroup */
#define READ_CHUNK (64 * 1024)
#define WRITE_BURST (256 * 1024) /* stdin bytes written per poll round */
#define POOL_THREADS 2             /* bound on concurrent pooled creations */
#define POOL_BACKOFF_MIN_MS 250
#define POOL_BACKOFF_MAX_MS 10000

static const char *const reserved_env[] = {
    "PATH",
    "HOME",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "PIP_NO_CACHE_DIR",
};

static const char *const sandbox_env[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/tmp",
    "PYTHONUNBUFFERED=1",
    "PYTHONDONTWRITEBYTECODE=1",
    "PIP_DISABLE_PIP_VERSION_CHECK=1",
    "PIP_NO_CACHE_DIR=1",
};

typedef struct image_entry {
    char *name;
    int64_t expires_ms;
} image_entry;

/* A pooled container: created, attached and started; its bootstrap blocks
 * reading its header. Owned by the pool while ready, then by one run. */
typedef struct pooled {
    char name[64];
    char id[128];
    int fd; /* the attach socket, -1 before attach */
} pooled;

typedef struct docker_sandbox {
    char *instance;
    char *runtime;
    int64_t api_timeout_ms;
    int pids_limit;
    int tmp_mb;
    int nofile;
    int64_t reaper_interval_ms;
    px_docker_client *client;

    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stopping;               /* under mu */
    char **live;                 /* container names of running runs; under mu */
    size_t n_live, cap_live;
    image_entry images[IMAGE_CACHE_SIZE]; /* under mu */
    pthread_t reaper;
    bool reaper_started;

    /* The warm pool (see the file comment). Settings are fixed at creation;
     * the rest is under mu. */
    int pool_size;
    char *pool_image;
    int pool_memory_mb, pool_disk_mb, pool_cpu_shares;
    pthread_cond_t pool_cond;
    pooled *ready[PX_DOCKER_POOL_MAX]; /* oldest first */
    int n_ready;
    int creating;
    int64_t retry_at_ms;       /* monotonic; no creation before it */
    int64_t backoff_ms;        /* 0 after a success */
    bool down;                 /* the last failure was an unreachable engine */
    px_docker_pool_stats stats; /* counters only; the gauges are read live */
    pthread_t pool_threads[POOL_THREADS];
    int n_pool_threads;
} docker_sandbox;

#define _cleanup_json_ __attribute__((cleanup(json_decrefp)))

void px_docker_config_default(px_docker_config *c) {
    c->socket_path = "/var/run/docker.sock";
    c->instance = "default";
    c->api_timeout_ms = 30000;
    c->pids_limit = 256;
    c->tmp_mb = 64;
    c->nofile = 1024;
    c->reaper_interval_ms = 60000;
    c->runtime = NULL;
    c->warm_pool = 0;
    c->pool_image = NULL;
    c->pool_memory_mb = 1024;
    c->pool_disk_mb = 2048;
    c->pool_cpu_shares = 1024;
}

bool px_docker_env_reserved(const char *name, size_t len) {
    for (size_t i = 0; i < PX_ARRAY_SIZE(reserved_env); i++)
        if (strlen(reserved_env[i]) == len && memcmp(reserved_env[i], name, len) == 0)
            return true;
    return false;
}

/* ---- API helpers ---- */

/* Calls the API and requires a 2xx answer; parses the body into *out if
 * out is non-NULL. Returns 0, or -1 with `err` set. */
static int api(docker_sandbox *sb, const char *method, const char *path, const char *body,
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

static int container_path(char *buf, size_t cap, const char *id, const char *suffix) {
    _cleanup_free_ char *eid = px_docker_escape(id, NULL);
    if (!eid)
        return -1;
    int n = snprintf(buf, cap, "/containers/%s%s", eid, suffix);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* Best effort: forced removal with volumes. */
static void remove_container(docker_sandbox *sb, const char *id) {
    char path[512];
    if (container_path(path, sizeof path, id, "?force=1&v=1") < 0)
        return;
    px_error err = PX_ERROR_INIT;
    if (api(sb, "DELETE", path, NULL, 0, NULL, &err) < 0 && err.code != PX_E_NOT_FOUND)
        px_warn("docker: remove container '%.64s': %s", id, err.msg);
}

/* Best effort SIGKILL. */
static void kill_container(docker_sandbox *sb, const char *id) {
    char path[512];
    if (container_path(path, sizeof path, id, "/kill") < 0)
        return;
    px_error err = PX_ERROR_INIT;
    api(sb, "POST", path, NULL, 0, NULL, &err);
}

/* Best effort usage snapshot from the stats endpoint (cgroup v1 and v2). */
static void take_stats(docker_sandbox *sb, const char *id, int64_t timeout_ms, int64_t *peak,
                       int64_t *cpu_ms) {
    char path[512];
    if (container_path(path, sizeof path, id, "/stats?stream=false&one-shot=true") < 0)
        return;
    px_error err = PX_ERROR_INIT;
    _cleanup_json_ json_t *j = NULL;
    if (api(sb, "GET", path, NULL, timeout_ms, &j, &err) < 0)
        return;
    json_t *mem = json_object_get(j, "memory_stats");
    json_int_t m = json_integer_value(json_object_get(mem, "max_usage"));
    if (m <= 0)
        m = json_integer_value(json_object_get(mem, "usage"));
    json_int_t c = json_integer_value(
        json_object_get(json_object_get(json_object_get(j, "cpu_stats"), "cpu_usage"),
                        "total_usage"));
    if (m > 0)
        *peak = m;
    if (c > 0)
        *cpu_ms = c / 1000000;
}

/* ---- live set and image cache ---- */

static int live_add(docker_sandbox *sb, const char *name) {
    _cleanup_free_ char *copy = strdup(name);
    if (!copy)
        return -1;
    pthread_mutex_lock(&sb->mu);
    if (sb->n_live == sb->cap_live) {
        size_t cap = sb->cap_live ? 2 * sb->cap_live : 16;
        char **v = realloc(sb->live, cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&sb->mu);
            return -1;
        }
        sb->live = v;
        sb->cap_live = cap;
    }
    sb->live[sb->n_live++] = TAKE_PTR(copy);
    pthread_mutex_unlock(&sb->mu);
    return 0;
}

static void live_remove(docker_sandbox *sb, const char *name) {
    pthread_mutex_lock(&sb->mu);
    for (size_t i = 0; i < sb->n_live; i++) {
        if (strcmp(sb->live[i], name) == 0) {
            free(sb->live[i]);
            sb->live[i] = sb->live[--sb->n_live];
            break;
        }
    }
    pthread_mutex_unlock(&sb->mu);
}

static bool live_has(docker_sandbox *sb, const char *name) {
    bool found = false;
    pthread_mutex_lock(&sb->mu);
    for (size_t i = 0; i < sb->n_live && !found; i++)
        found = strcmp(sb->live[i], name) == 0;
    pthread_mutex_unlock(&sb->mu);
    return found;
}

static bool image_cached(docker_sandbox *sb, const char *image) {
    bool hit = false;
    int64_t now = px_now_mono_ms();
    pthread_mutex_lock(&sb->mu);
    for (size_t i = 0; i < IMAGE_CACHE_SIZE && !hit; i++)
        hit = sb->images[i].name && sb->images[i].expires_ms > now &&
              strcmp(sb->images[i].name, image) == 0;
    pthread_mutex_unlock(&sb->mu);
    return hit;
}

static void image_remember(docker_sandbox *sb, const char *image) {
    char *copy = strdup(image);
    if (!copy)
        return;
    pthread_mutex_lock(&sb->mu);
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
    pthread_mutex_unlock(&sb->mu);
}

/* Returns 1 if present, 0 if absent, -1 with `err` set on failure. */
static int image_present(docker_sandbox *sb, const char *image, px_error *err) {
    _cleanup_free_ char *eimg = px_docker_escape(image, "/:@");
    _cleanup_free_ char *path = NULL;
    if (!eimg || asprintf(&path, "/images/%s/json", eimg) < 0) {
        path = NULL;
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    }
    px_error e = PX_ERROR_INIT;
    if (api(sb, "GET", path, NULL, 0, NULL, &e) == 0)
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

static int ensure_image(docker_sandbox *sb, const char *image, px_error *err) {
    if (image_cached(sb, image))
        return 0;
    int present = image_present(sb, image, err);
    if (present < 0)
        return px_error_wrap(err, "inspect image '%s'", image);
    if (!present) {
        px_error e = PX_ERROR_INIT;
        if (image_pull(sb, image, &e) < 0 || (present = image_present(sb, image, &e)) <= 0) {
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
    image_remember(sb, image);
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
    snprintf(work_opts, sizeof work_opts,
             "rw,exec,nosuid,nodev,size=%dm,mode=1777,uid=%d,gid=%d", spec->disk_mb,
             SANDBOX_UID, SANDBOX_UID);
    snprintf(tmp_opts, sizeof tmp_opts, "rw,noexec,nosuid,nodev,size=%dm,mode=1777", sb->tmp_mb);
    const json_int_t mib = 1024 * 1024;
    const json_int_t memory = (json_int_t)spec->memory_mb * mib;
    const json_int_t disk = (json_int_t)spec->disk_mb * mib;

    json_t *host = json_pack(
        "{s:s, s:b, s:[s], s:[s], s:I, s:I, s:I, s:I, s:{s:s, s:s}, s:I, s:[o,o,o], s:b, "
        "s:{s:s, s:{}}}",
        "NetworkMode", spec->network ? "bridge" : "none", "ReadonlyRootfs", 1, "CapDrop", "ALL",
        "SecurityOpt", "no-new-privileges", "PidsLimit", (json_int_t)sb->pids_limit, "Memory",
        memory, "MemorySwap", memory, "CpuShares", (json_int_t)spec->cpu_shares, "Tmpfs", "/work",
        work_opts, "/tmp", tmp_opts, "ShmSize", (json_int_t)sb->tmp_mb * mib, "Ulimits",
        ulimit("nofile", sb->nofile), ulimit("fsize", disk), ulimit("core", 0), "Init", 1,
        "LogConfig", "Type", "none", "Config");
    if (!host || !env || !labels) {
        json_decref(host);
        json_decref(env);
        json_decref(labels);
        return out_of_memory(err);
    }
    if (sb->runtime)
        json_object_set_new(host, "Runtime", json_string(sb->runtime));

    const char *cmd[] = {"python3", "-I", "-S", "-c", px_bootstrap_script()};
    _cleanup_json_ json_t *body = json_pack(
        "{s:s, s:o, s:o, s:s, s:s, s:b, s:b, s:b, s:b, s:b, s:b, s:o, s:o}", "Image",
        spec->image, "Cmd", strv_json(cmd, PX_ARRAY_SIZE(cmd)), "Env", env, "WorkingDir",
        "/work", "User", "65534:65534", "AttachStdin", 1, "AttachStdout", 1, "AttachStderr", 1,
        "OpenStdin", 1, "StdinOnce", 1, "Tty", 0, "Labels", labels, "HostConfig", host);
    if (!body) {
        px_error_set(err, PX_E_INVALID, "the image name or execution id is not valid UTF-8");
        return NULL;
    }
    char *s = json_dumps(body, JSON_COMPACT);
    return s ? s : out_of_memory(err);
}

static int create_container(docker_sandbox *sb, const px_job_spec *spec, bool for_pool,
                            const char *name, char *id, size_t id_cap, px_error *err) {
    _cleanup_free_ char *body = create_body(sb, spec, for_pool, err);
    if (!body)
        return -1;
    _cleanup_free_ char *ename = px_docker_escape(name, NULL);
    char path[256];
    if (!ename || snprintf(path, sizeof path, "/containers/create?name=%s", ename) >=
                      (int)sizeof path)
        return px_error_set(err, PX_E_INTERNAL, "container name too long");
    px_docker_response r;
    if (px_docker_call(sb->client, "POST", path, body, 0, &r, err) < 0)
        return -1;
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

/* ---- one run ---- */

/* What one run sends and scans, prepared before any container is touched. */
typedef struct run_io {
    px_sandbox_run *run;
    px_trailer_scanner scanner;     /* stderr: the usage trailer */
    px_trailer_scanner out_scanner; /* stdout: the end marker */
    char *preamble; /* the bootstrap preamble; owned */
    size_t preamble_len;
} run_io;

static void run_io_free(run_io *io) {
    if (!io)
        return;
    free(io->preamble);
    free(io);
}
PX_DEFINE_CLEANUP(run_io, run_io_free)

/* Chooses the nonce, arms the trailer scanner and builds the preamble.
 * Returns a new run_io, or NULL with `err` set (PX_E_INVALID when the spec
 * cannot be encoded). */
static run_io *run_io_new(const px_job_spec *spec, px_sandbox_run *run, px_error *err) {
    char nonce[33];
    __attribute__((cleanup(run_io_freep))) run_io *io = calloc(1, sizeof *io);
    if (!io) {
        px_error_set(err, PX_E_INTERNAL, "out of memory");
        return NULL;
    }
    io->run = run;
    if (px_random_hex(nonce, 16, err) < 0 ||
        px_trailer_scanner_init(&io->scanner, nonce, err) < 0 ||
        px_trailer_scanner_init(&io->out_scanner, nonce, err) < 0 ||
        px_bootstrap_preamble(spec, nonce, &io->preamble, &io->preamble_len, err) < 0)
        return NULL;
    return TAKE_PTR(io);
}

static void deliver_stderr(void *ud, const uint8_t *data, size_t len) {
    run_io *io = ud;
    px_sandbox_run_output(io->run, PX_STREAM_STDERR, data, len);
}

static void deliver_stdout(void *ud, const uint8_t *data, size_t len) {
    run_io *io = ud;
    px_sandbox_run_output(io->run, PX_STREAM_STDOUT, data, len);
}

static void deliver_frame(void *ud, px_stream stream, const uint8_t *data, size_t len) {
    run_io *io = ud;
    if (stream == PX_STREAM_STDERR)
        px_trailer_scanner_feed(&io->scanner, data, len, deliver_stderr, io);
    else
        px_trailer_scanner_feed(&io->out_scanner, data, len, deliver_stdout, io);
}

/* Both of the bootstrap's last words arrived: the end marker on stdout and
 * the trailer on stderr. The program has exited and all of its output is in. */
static bool bootstrap_done(const run_io *io) {
    return io->scanner.has_trailer && io->out_scanner.has_trailer;
}

/* The bytes sent to the container's stdin, in order, without copies. */
typedef struct stdin_feed {
    struct {
        const uint8_t *p;
        size_t len;
    } seg[3];
    size_t i, off;
    bool done;
} stdin_feed;

/* Writes what the socket takes now (at most WRITE_BURST bytes). Shuts the
 * write side down after the last byte, which is the program's EOF. */
static void feed_stdin(stdin_feed *f, int fd) {
    size_t burst = 0;
    while (!f->done && burst < WRITE_BURST) {
        if (f->i == PX_ARRAY_SIZE(f->seg)) {
            shutdown(fd, SHUT_WR);
            f->done = true;
            break;
        }
        size_t left = f->seg[f->i].len - f->off;
        if (left == 0) {
            f->i++;
            f->off = 0;
            continue;
        }
        if (left > WRITE_BURST - burst)
            left = WRITE_BURST - burst;
        ssize_t n = send(fd, f->seg[f->i].p + f->off, left, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            f->off += (size_t)n;
            burst += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            break;
        } else {
            /* The container closed its stdin (it ended): nothing more to say. */
            f->done = true;
        }
    }
}

typedef enum run_end { END_EOF, END_DONE, END_KILL, END_PROTOCOL } run_end;

/* Parses the bootstrap's usage trailer into the result; ignores junk. */
static void apply_trailer(const px_trailer_scanner *s, px_sandbox_result *result) {
    if (!s->has_trailer)
        return;
    _cleanup_json_ json_t *j = json_loads(s->trailer, 0, NULL);
    json_int_t m = json_integer_value(json_object_get(j, "peak_memory_bytes"));
    json_int_t c = json_integer_value(json_object_get(j, "cpu_time_ms"));
    if (m > 0)
        result->peak_memory_bytes = m;
    if (c >= 0 && json_object_get(j, "cpu_time_ms"))
        result->cpu_time_ms = c;
    /* The memory cgroup's own count: exact, where the engine's OOMKilled
     * flag misses a kill that races with the container's exit (~1 in 100
     * OOM kills here). */
    if (json_integer_value(json_object_get(j, "oom_kills")) > 0)
        result->oom_killed = true;
}

/* The bootstrap's exit code from its trailer, or -1 if it has none. */
static int trailer_exit_code(const px_trailer_scanner *s) {
    if (!s->has_trailer)
        return -1;
    _cleanup_json_ json_t *j = json_loads(s->trailer, 0, NULL);
    json_t *code = json_object_get(j, "exit_code");
    if (!json_is_integer(code) || json_integer_value(code) < 0 || json_integer_value(code) > 255)
        return -1;
    return (int)json_integer_value(code);
}

/* After the streams ended: exit code and OOM flag. A container that is gone
 * was lost. Returns 0, or -1 with result->error set. */
static int collect_exit(docker_sandbox *sb, const char *id, px_sandbox_result *result) {
    char path[512];
    px_error err = PX_ERROR_INIT;
    _cleanup_json_ json_t *w = NULL;
    _cleanup_json_ json_t *j = NULL;
    int rc = container_path(path, sizeof path, id, "/wait?condition=not-running");
    if (rc == 0)
        rc = api(sb, "POST", path, NULL, 0, &w, &err);
    if (rc == 0 && (rc = container_path(path, sizeof path, id, "/json")) == 0)
        rc = api(sb, "GET", path, NULL, 0, &j, &err);
    if (rc < 0) {
        if (err.code == PX_E_NOT_FOUND) {
            result->lost = true;
            px_error_wrap(&err, "container '%.12s' vanished while running", id);
        } else {
            px_error_wrap(&err, "collect exit status of container '%.12s'", id);
        }
        result->error = err;
        return -1;
    }
    json_t *state = json_object_get(j, "State");
    const char *status = json_string_value(json_object_get(state, "Status"));
    if (status && (strcmp(status, "removing") == 0 || strcmp(status, "dead") == 0)) {
        /* We remove our containers only after this: someone else is. */
        result->lost = true;
        px_error_set(&result->error, PX_E_NOT_FOUND,
                     "container '%.12s' vanished while running (state '%s')", id, status);
        return -1;
    }
    json_t *code = json_object_get(state, "ExitCode");
    if (!code)
        code = json_object_get(w, "StatusCode");
    result->exit_code = (int)json_integer_value(code);
    result->oom_killed = json_is_true(json_object_get(state, "OOMKilled"));
    return 0;
}

/* After an early end: reads the attach stream to its end, which comes when
 * the container has exited, discarding what little may come (output of
 * processes the program left behind), for at most EXIT_AFTER_END_MS. A
 * container that exited by itself costs the engine less to remove than a
 * running one, which it would first have to kill (another runtime call). */
static void await_exit(int fd, uint8_t *buf) {
    int64_t until = px_now_mono_ms() + EXIT_AFTER_END_MS;
    for (;;) {
        int64_t left = until - px_now_mono_ms();
        if (left <= 0)
            return;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return;
        ssize_t n = recv(fd, buf, READ_CHUNK, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return;
    }
}

/* Runs the started container `id`, attached on `fd` (borrowed; `early`
 * holds the stream bytes that came with the attach answer), to its end:
 * sends the preamble, project and stdin, pumps output, enforces the
 * deadline (counted from this call: the caller has just reported the start)
 * and kill requests, and fills `result` except for the removal, which the
 * caller does. When the bootstrap's end marker and trailer both arrive, the
 * result is reported at once (px_sandbox_run_ended) without waiting for the
 * container to exit. */
static void drive(docker_sandbox *sb, const px_job_spec *spec, run_io *io, const char *id,
                  int fd, const uint8_t *early, size_t early_len, px_sandbox_result *result) {
    px_error err = PX_ERROR_INIT;
    px_sandbox_run *run = io->run;
    _cleanup_free_ uint8_t *buf = malloc(READ_CHUNK);
    if (!buf) {
        px_error_set(&result->error, PX_E_INTERNAL, "out of memory");
        kill_container(sb, id);
        return;
    }
    int64_t deadline = px_now_mono_ms() + (int64_t)spec->timeout_s * 1000;
    int64_t drain_deadline = 0; /* set once the container was killed at the deadline */

    stdin_feed in = {.seg = {{(const uint8_t *)io->preamble, io->preamble_len},
                             {spec->tar, spec->tar_len},
                             {spec->stdin_data, spec->stdin_len}}};
    px_frame_demux demux;
    px_frame_demux_init(&demux, PX_FRAME_MAX_DEFAULT);
    run_end end = END_EOF;
    if (early_len > 0 &&
        px_frame_demux_feed(&demux, early, early_len, deliver_frame, io, &err) < 0)
        end = END_PROTOCOL;

    int wake = px_sandbox_run_wake_fd(run);
    while (end == END_EOF) {
        int64_t now = px_now_mono_ms();
        if (px_sandbox_run_kill_requested(run)) {
            end = END_KILL;
            break;
        }
        if (!drain_deadline && now >= deadline) {
            take_stats(sb, id, TIMEOUT_STATS_TIMEOUT_MS, &result->peak_memory_bytes,
                       &result->cpu_time_ms);
            kill_container(sb, id);
            result->timed_out = true;
            in.done = true;
            drain_deadline = px_now_mono_ms() + DRAIN_AFTER_KILL_MS;
            continue;
        }
        if (drain_deadline && now >= drain_deadline)
            break;
        int64_t until = (drain_deadline ? drain_deadline : deadline) - now;
        struct pollfd p[2] = {
            {.fd = fd, .events = (short)(POLLIN | (in.done ? 0 : POLLOUT))},
            {.fd = wake, .events = POLLIN},
        };
        int r = poll(p, wake >= 0 ? 2 : 1, (int)(until > 60000 ? 60000 : until));
        if (r < 0 && errno != EINTR) {
            px_error_set_errno(&err, PX_E_INTERNAL, errno, "poll");
            end = END_PROTOCOL;
            break;
        }
        if (r <= 0)
            continue;
        if (wake >= 0 && (p[1].revents & POLLIN))
            continue; /* the top of the loop reads the kill cause */
        if (p[0].revents & POLLOUT)
            feed_stdin(&in, fd);
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(fd, buf, READ_CHUNK, MSG_DONTWAIT);
            if (n > 0) {
                if (px_frame_demux_feed(&demux, buf, (size_t)n, deliver_frame, io, &err) < 0)
                    end = END_PROTOCOL;
                else if (bootstrap_done(io) && !drain_deadline)
                    end = END_DONE;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                break; /* end of stream (or reset, which ends it too) */
            }
        }
    }

    if (end == END_EOF && px_frame_demux_finish(&demux, &err) < 0)
        end = END_PROTOCOL;
    px_trailer_scanner_finish(&io->out_scanner, deliver_stdout, io);
    px_trailer_scanner_finish(&io->scanner, deliver_stderr, io);

    int code = end == END_DONE ? trailer_exit_code(&io->scanner) : -1;
    if (code >= 0) {
        /* The result is complete without the engine: report it now; the
         * container, which is exiting by itself, is removed afterwards. */
        result->ran = true;
        result->exit_code = code;
        apply_trailer(&io->scanner, result);
        px_sandbox_run_ended(run, result);
        await_exit(fd, buf);
        return;
    }
    if (end == END_DONE)
        end = END_EOF; /* no usable exit code: ask the engine as before */

    if (end != END_EOF) {
        /* Nothing more is read: let the engine's stream copier fail at once
         * instead of blocking on a full socket, which would hold up the
         * container's exit and so the kill call below until its timeout. */
        shutdown(fd, SHUT_RDWR);
    }
    if (end == END_KILL) {
        take_stats(sb, id, KILL_STATS_TIMEOUT_MS, &result->peak_memory_bytes,
                   &result->cpu_time_ms);
        kill_container(sb, id);
        result->ran = true;
        result->exit_code = 128 + 9;
        return;
    }
    if (end == END_PROTOCOL) {
        kill_container(sb, id);
        result->error = err;
        px_error_wrap(&result->error, "container '%.12s'", id);
        return;
    }
    if (collect_exit(sb, id, result) < 0)
        return;
    result->ran = true;
    apply_trailer(&io->scanner, result);
}

/* ---- the warm pool: take, check, hand over ---- */

static void pool_count(docker_sandbox *sb, uint64_t *counter) {
    pthread_mutex_lock(&sb->mu);
    (*counter)++;
    pthread_mutex_unlock(&sb->mu);
}

/* Ends a pooled container that no run will use, or that a run has used:
 * closes its stdin (its bootstrap then exits by itself), removes it and
 * drops its name from the live set. NULL-safe. */
static void pooled_discard(docker_sandbox *sb, pooled *p) {
    if (!p)
        return;
    if (p->fd >= 0)
        close(p->fd);
    remove_container(sb, p->id[0] ? p->id : p->name);
    live_remove(sb, p->name);
    free(p);
}

/* Whether a spec can run in a pooled container: everything `update` cannot
 * change must match the pool's profile. */
static bool pool_fits(const docker_sandbox *sb, const px_job_spec *spec) {
    return sb->pool_size > 0 && !spec->network && spec->disk_mb == sb->pool_disk_mb &&
           strcmp(spec->image, sb->pool_image) == 0;
}

/* Takes the oldest ready container (owned by the caller from now on), or
 * returns NULL when none is ready. Wakes the pool threads to refill. */
static pooled *pool_take(docker_sandbox *sb) {
    pthread_mutex_lock(&sb->mu);
    pooled *p = NULL;
    if (sb->n_ready > 0) {
        p = sb->ready[0];
        memmove(&sb->ready[0], &sb->ready[1], (size_t)(sb->n_ready - 1) * sizeof sb->ready[0]);
        sb->n_ready--;
        pthread_cond_broadcast(&sb->pool_cond);
    }
    pthread_mutex_unlock(&sb->mu);
    return p;
}

/* True while the idle bootstrap still waits: its stream has neither output
 * (an idle bootstrap prints nothing) nor an end (the container died). */
static bool pooled_idle(const pooled *p) {
    struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 0;
}

/* Gives pooled container `id` the spec's memory (Memory = MemorySwap, one
 * call, so the engine orders the cgroup v1 writes for a raise or a cut), CPU
 * weight and process limit. No call when they equal the ones it was created
 * with. Returns 0, or -1 with `err` set. */
static int pooled_set_limits(docker_sandbox *sb, const char *id, const px_job_spec *spec,
                             px_error *err) {
    if (spec->memory_mb == sb->pool_memory_mb && spec->cpu_shares == sb->pool_cpu_shares)
        return 0;
    const json_int_t memory = (json_int_t)spec->memory_mb * 1024 * 1024;
    _cleanup_json_ json_t *b =
        json_pack("{s:I, s:I, s:I, s:I}", "Memory", memory, "MemorySwap", memory, "CpuShares",
                  (json_int_t)spec->cpu_shares, "PidsLimit", (json_int_t)sb->pids_limit);
    _cleanup_free_ char *body = b ? json_dumps(b, JSON_COMPACT) : NULL;
    char path[512];
    if (!body || container_path(path, sizeof path, id, "/update") < 0)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    if (api(sb, "POST", path, body, 0, NULL, err) < 0)
        return px_error_wrap(err, "update pooled container '%.12s'", id);
    return 0;
}

/* Renames pooled container `p` to `name`, keeping it in the live set under
 * one name or the other throughout. Returns 0, or -1 with `err` set. */
static int pooled_rename(docker_sandbox *sb, pooled *p, const char *name, px_error *err) {
    if (strlen(name) >= sizeof p->name)
        return px_error_set(err, PX_E_INTERNAL, "container name too long");
    _cleanup_free_ char *eid = px_docker_escape(p->id, NULL);
    _cleanup_free_ char *ename = px_docker_escape(name, NULL);
    _cleanup_free_ char *path = NULL;
    if (!eid || !ename || asprintf(&path, "/containers/%s/rename?name=%s", eid, ename) < 0) {
        path = NULL;
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    }
    if (live_add(sb, name) < 0)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    if (api(sb, "POST", path, NULL, 0, NULL, err) < 0) {
        live_remove(sb, name);
        return px_error_wrap(err, "rename pooled container '%.12s'", p->id);
    }
    live_remove(sb, p->name);
    memcpy(p->name, name, strlen(name) + 1); /* fits: checked above */
    return 0;
}

/* The warm path: takes pooled containers until one is idle, accepts the
 * spec's limits and takes the run's name, pyexec-<execution id> (the others
 * are discarded), then reports the start and drives it.
 * Returns false, having done nothing for the run, when the pool has none to
 * give. */
static bool run_warm(docker_sandbox *sb, const px_job_spec *spec, run_io *io,
                     px_sandbox_result *result) {
    for (;;) {
        pooled *p = pool_take(sb);
        if (!p)
            return false;
        px_error err = PX_ERROR_INIT;
        char name[128];
        snprintf(name, sizeof name, "pyexec-%s", spec->execution_id);
        if (!pooled_idle(p)) {
            px_warn("docker: pooled container '%.12s' ended or spoke while idle; removing it",
                    p->id);
        } else if (pooled_set_limits(sb, p->id, spec, &err) < 0 ||
                   pooled_rename(sb, p, name, &err) < 0) {
            px_warn("docker: execution %s: %s; removing it", spec->execution_id, err.msg);
        } else {
            pool_count(sb, &sb->stats.taken);
            px_debug("docker: execution %s runs in pooled container '%.12s'",
                     spec->execution_id, p->id);
            px_sandbox_run_started(io->run);
            drive(sb, spec, io, p->id, p->fd, NULL, 0, result);
            pooled_discard(sb, p);
            return true;
        }
        pool_count(sb, &sb->stats.discarded);
        pooled_discard(sb, p);
    }
}

/* The cold path: a container made for this run alone. */
static void run_cold(docker_sandbox *sb, const px_job_spec *spec, run_io *io,
                     px_sandbox_result *result) {
    px_error err = PX_ERROR_INIT;
    if (ensure_image(sb, spec->image, &err) < 0) {
        result->error = err;
        return;
    }
    if (px_sandbox_run_kill_requested(io->run)) {
        px_error_set(&result->error, PX_E_CANCELLED, "killed before the container was created");
        return;
    }
    pool_count(sb, &sb->stats.cold);
    char name[128];
    snprintf(name, sizeof name, "pyexec-%s", spec->execution_id);
    if (live_add(sb, name) < 0) {
        px_error_set(&result->error, PX_E_INTERNAL, "out of memory");
        return;
    }
    char id[128];
    if (create_container(sb, spec, false, name, id, sizeof id, &err) < 0) {
        result->error = err;
        px_error_wrap(&result->error, "create container");
        /* The engine may have created it before failing: no leak either way. */
        if (err.code != PX_E_INVALID)
            remove_container(sb, name);
        live_remove(sb, name);
        return;
    }
    _cleanup_free_ uint8_t *early = NULL;
    size_t early_len = 0;
    char path[512];
    int fd = px_docker_attach(sb->client, id, &early, &early_len, &err);
    if (fd < 0) {
        result->error = err;
        px_error_wrap(&result->error, "attach to container '%.12s'", id);
    } else if (container_path(path, sizeof path, id, "/start") < 0 ||
               api(sb, "POST", path, NULL, 0, NULL, &err) < 0) {
        result->error = err;
        px_error_wrap(&result->error, "start container '%.12s'", id);
    } else {
        px_sandbox_run_started(io->run);
        drive(sb, spec, io, id, fd, early, early_len, result);
    }
    if (fd >= 0)
        close(fd);
    remove_container(sb, id);
    live_remove(sb, name);
}

static void sandbox_run(void *self, const px_job_spec *spec, px_sandbox_run *run,
                        px_sandbox_result *result) {
    docker_sandbox *sb = self;
    px_error err = PX_ERROR_INIT;
    result->ran = false;
    __attribute__((cleanup(run_io_freep))) run_io *io = run_io_new(spec, run, &err);
    if (!io) {
        result->error = err;
        px_error_wrap(&result->error, "prepare bootstrap");
        return;
    }
    if (px_sandbox_run_kill_requested(run)) {
        px_error_set(&result->error, PX_E_CANCELLED, "killed before the container was created");
        return;
    }
    if (pool_fits(sb, spec) && run_warm(sb, spec, io, result))
        return;
    run_cold(sb, spec, io, result);
}

static int sandbox_ping(void *self, px_error *err) {
    docker_sandbox *sb = self;
    int64_t t = sb->api_timeout_ms < PING_TIMEOUT_MS ? sb->api_timeout_ms : PING_TIMEOUT_MS;
    px_error e = PX_ERROR_INIT;
    if (api(sb, "GET", "/_ping", NULL, t, NULL, &e) < 0) {
        if (err) {
            *err = e;
            err->code = PX_E_UNAVAILABLE;
        }
        return -1;
    }
    /* The engine answers: a pool waiting out a backoff because it did not
     * may refill now rather than at the end of the backoff. */
    pthread_mutex_lock(&sb->mu);
    if (sb->down) {
        sb->down = false;
        sb->retry_at_ms = 0;
        pthread_cond_broadcast(&sb->pool_cond);
    }
    pthread_mutex_unlock(&sb->mu);
    return 0;
}

/* ---- the warm pool: refill ---- */

/* Waits on `cond` until woken or until the monotonic time `until_ms`.
 * Returns ETIMEDOUT once that time has passed. */
static int cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t until_ms) {
    struct timespec ts = {.tv_sec = until_ms / 1000, .tv_nsec = (until_ms % 1000) * 1000000};
    return pthread_cond_timedwait(cond, mu, &ts);
}

/* Makes one pooled container: image present (never pulled here: a pull may
 * take long, and a cold run pulls), name live, create, attach, start.
 * Returns it (owned by the caller), or NULL with `err` set and nothing left
 * behind. */
static pooled *pool_create(docker_sandbox *sb, px_error *err) {
    char hex[17];
    if (px_random_hex(hex, 8, err) < 0)
        return NULL;
    pooled *p = calloc(1, sizeof *p);
    if (!p) {
        px_error_set(err, PX_E_INTERNAL, "out of memory");
        return NULL;
    }
    p->fd = -1;
    snprintf(p->name, sizeof p->name, "pyexec-pool-%s", hex);
    if (!image_cached(sb, sb->pool_image)) {
        int present = image_present(sb, sb->pool_image, err);
        if (present <= 0) {
            if (present == 0)
                px_error_set(err, PX_E_PRECONDITION, "image '%s' is not present",
                             sb->pool_image);
            free(p);
            return NULL;
        }
        image_remember(sb, sb->pool_image);
    }
    if (live_add(sb, p->name) < 0) {
        free(p);
        px_error_set(err, PX_E_INTERNAL, "out of memory");
        return NULL;
    }
    px_job_spec profile = {
        .image = sb->pool_image,
        .network = false,
        .memory_mb = sb->pool_memory_mb,
        .disk_mb = sb->pool_disk_mb,
        .cpu_shares = sb->pool_cpu_shares,
    };
    if (create_container(sb, &profile, true, p->name, p->id, sizeof p->id, err) < 0) {
        px_error_wrap(err, "create container");
        pooled_discard(sb, p); /* by name: the engine may have made it */
        return NULL;
    }
    _cleanup_free_ uint8_t *early = NULL;
    size_t early_len = 0;
    char path[512];
    p->fd = px_docker_attach(sb->client, p->id, &early, &early_len, err);
    if (p->fd < 0) {
        px_error_wrap(err, "attach to container '%.12s'", p->id);
    } else if (early_len > 0) {
        px_error_set(err, PX_E_INTERNAL, "container '%.12s' spoke before its start", p->id);
    } else if (container_path(path, sizeof path, p->id, "/start") < 0 ||
               api(sb, "POST", path, NULL, 0, NULL, err) < 0) {
        px_error_wrap(err, "start container '%.12s'", p->id);
    } else {
        return p;
    }
    pooled_discard(sb, p);
    return NULL;
}

/* A pool thread; see the file comment. */
static void *pool_main(void *arg) {
    docker_sandbox *sb = arg;
    pthread_mutex_lock(&sb->mu);
    while (!sb->stopping) {
        if (sb->retry_at_ms > px_now_mono_ms()) {
            cond_wait_until(&sb->pool_cond, &sb->mu, sb->retry_at_ms);
            continue;
        }
        if (sb->n_ready + sb->creating >= sb->pool_size) {
            pthread_cond_wait(&sb->pool_cond, &sb->mu);
            continue;
        }
        sb->creating++;
        pthread_mutex_unlock(&sb->mu);

        px_error err = PX_ERROR_INIT;
        pooled *p = pool_create(sb, &err);

        pthread_mutex_lock(&sb->mu);
        sb->creating--;
        bool recovered = false, first_failure = false;
        if (p) {
            recovered = sb->backoff_ms > 0;
            sb->backoff_ms = 0;
            sb->retry_at_ms = 0;
            sb->down = false;
            if (!sb->stopping) {
                sb->ready[sb->n_ready++] = TAKE_PTR(p);
                sb->stats.created++;
            }
        } else {
            sb->stats.failures++;
            first_failure = sb->backoff_ms == 0;
            sb->backoff_ms = first_failure ? POOL_BACKOFF_MIN_MS
                             : 2 * sb->backoff_ms > POOL_BACKOFF_MAX_MS
                                 ? POOL_BACKOFF_MAX_MS
                                 : 2 * sb->backoff_ms;
            sb->retry_at_ms = px_now_mono_ms() + sb->backoff_ms;
            sb->down = err.code == PX_E_UNAVAILABLE;
        }
        pthread_cond_broadcast(&sb->pool_cond); /* pool_wait() and the other thread */
        pthread_mutex_unlock(&sb->mu);

        pooled_discard(sb, p); /* made while destroy() began: nobody will take it */
        if (first_failure)
            px_warn("docker: warm pool: %s (retrying with backoff)", err.msg);
        if (recovered)
            px_info("docker: warm pool: creating containers again");
        pthread_mutex_lock(&sb->mu);
    }
    pthread_mutex_unlock(&sb->mu);
    return NULL;
}

void px_docker_sandbox_pool_stats(const px_sandbox *s, px_docker_pool_stats *out) {
    docker_sandbox *sb = s->self;
    pthread_mutex_lock(&sb->mu);
    *out = sb->stats;
    out->size = sb->pool_size;
    out->ready = sb->n_ready;
    out->creating = sb->creating;
    pthread_mutex_unlock(&sb->mu);
}

int px_docker_sandbox_pool_wait(const px_sandbox *s, int ready, int64_t timeout_ms) {
    docker_sandbox *sb = s->self;
    if (ready > sb->pool_size)
        return -1;
    int64_t until = px_now_mono_ms() + timeout_ms;
    pthread_mutex_lock(&sb->mu);
    while (sb->n_ready < ready && !sb->stopping &&
           cond_wait_until(&sb->pool_cond, &sb->mu, until) != ETIMEDOUT) {
    }
    bool reached = sb->n_ready >= ready;
    pthread_mutex_unlock(&sb->mu);
    return reached ? 0 : -1;
}

/* ---- reaper ---- */

/* Removes this instance's containers that no live run owns. Returns the
 * number removed, or -1 with `err` set if the list failed. */
static int reap(docker_sandbox *sb, px_error *err) {
    _cleanup_json_ json_t *filters =
        json_pack("{s:[s,s]}", "label", "pyexec.service=pyexecd", "pyexec.instance=");
    if (!filters)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    _cleanup_free_ char *inst = NULL;
    if (asprintf(&inst, "pyexec.instance=%s", sb->instance) < 0) {
        inst = NULL;
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    }
    json_array_set_new(json_object_get(filters, "label"), 1, json_string(inst));
    _cleanup_free_ char *fs = json_dumps(filters, JSON_COMPACT);
    _cleanup_free_ char *efs = fs ? px_docker_escape(fs, NULL) : NULL;
    _cleanup_free_ char *path = NULL;
    if (!efs || asprintf(&path, "/containers/json?all=1&filters=%s", efs) < 0) {
        path = NULL;
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    }
    _cleanup_json_ json_t *list = NULL;
    if (api(sb, "GET", path, NULL, 0, &list, err) < 0)
        return px_error_wrap(err, "list containers");
    int removed = 0;
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c) {
        const char *cid = json_string_value(json_object_get(c, "Id"));
        const char *name = json_string_value(json_array_get(json_object_get(c, "Names"), 0));
        if (!cid)
            continue;
        if (name && name[0] == '/')
            name++;
        if (name && live_has(sb, name))
            continue;
        px_info("docker: reaper removes orphan container '%.12s' (%s)", cid, name ? name : "?");
        remove_container(sb, cid);
        removed++;
    }
    return removed;
}

/* Fails, naming the ones there are, when the engine has no runtime called
 * sb->runtime: every create would fail with an error the client cannot fix. */
static int check_runtime(docker_sandbox *sb, px_error *err) {
    _cleanup_json_ json_t *info = NULL;
    if (api(sb, "GET", "/info", NULL, 0, &info, err) < 0)
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

static void *reaper_main(void *arg) {
    docker_sandbox *sb = arg;
    pthread_mutex_lock(&sb->mu);
    while (!sb->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + (sb->reaper_interval_ms % 1000) * 1000000;
        ts.tv_sec += sb->reaper_interval_ms / 1000 + ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        while (!sb->stopping && pthread_cond_timedwait(&sb->cond, &sb->mu, &ts) != ETIMEDOUT) {
        }
        if (sb->stopping)
            break;
        pthread_mutex_unlock(&sb->mu);
        px_error err = PX_ERROR_INIT;
        if (reap(sb, &err) < 0)
            px_warn("docker: reaper: %s", err.msg);
        pthread_mutex_lock(&sb->mu);
    }
    pthread_mutex_unlock(&sb->mu);
    return NULL;
}

/* ---- life cycle ---- */

static void sandbox_free(docker_sandbox *sb) {
    if (!sb)
        return;
    for (int i = 0; i < sb->n_ready; i++)
        free(sb->ready[i]);
    for (size_t i = 0; i < sb->n_live; i++)
        free(sb->live[i]);
    free(sb->live);
    for (size_t i = 0; i < IMAGE_CACHE_SIZE; i++)
        free(sb->images[i].name);
    px_docker_client_free(sb->client);
    pthread_cond_destroy(&sb->pool_cond);
    pthread_cond_destroy(&sb->cond);
    pthread_mutex_destroy(&sb->mu);
    free(sb->pool_image);
    free(sb->instance);
    free(sb->runtime);
    free(sb);
}

/* Stops and joins the reaper and pool threads. */
static void stop_threads(docker_sandbox *sb) {
    pthread_mutex_lock(&sb->mu);
    sb->stopping = true;
    pthread_cond_broadcast(&sb->cond);
    pthread_cond_broadcast(&sb->pool_cond);
    pthread_mutex_unlock(&sb->mu);
    if (sb->reaper_started)
        pthread_join(sb->reaper, NULL);
    for (int i = 0; i < sb->n_pool_threads; i++)
        pthread_join(sb->pool_threads[i], NULL);
    sb->reaper_started = false;
    sb->n_pool_threads = 0;
}

/* Removes every ready pooled container. First all their stdins close, so
 * the bootstraps exit in parallel; then each is removed. Only after
 * stop_threads(). */
static void pool_drain(docker_sandbox *sb) {
    for (int i = 0; i < sb->n_ready; i++) {
        close(sb->ready[i]->fd);
        sb->ready[i]->fd = -1;
    }
    while (sb->n_ready > 0)
        pooled_discard(sb, sb->ready[--sb->n_ready]);
}

static void sandbox_destroy(void *self) {
    docker_sandbox *sb = self;
    if (!sb)
        return;
    stop_threads(sb);
    pool_drain(sb);
    sandbox_free(sb);
}

static const px_sandbox_ops docker_ops = {
    .run = sandbox_run,
    .ping = sandbox_ping,
    .destroy = sandbox_destroy,
};

int px_docker_sandbox_new(const px_docker_config *config, px_sandbox *out, px_error *err) {
    if (!config->socket_path || !config->instance || !config->instance[0] ||
        config->pids_limit <= 0 || config->tmp_mb <= 0 || config->nofile <= 0 ||
        config->api_timeout_ms <= 0 || config->reaper_interval_ms < 0 ||
        config->warm_pool < 0 || config->warm_pool > PX_DOCKER_POOL_MAX ||
        (config->warm_pool > 0 &&
         (!config->pool_image || !config->pool_image[0] || config->pool_memory_mb <= 0 ||
          config->pool_disk_mb <= 0 || config->pool_cpu_shares <= 0)))
        return px_error_set(err, PX_E_INVALID, "docker sandbox: invalid configuration");
    docker_sandbox *sb = calloc(1, sizeof *sb);
    if (!sb)
        return px_error_set(err, PX_E_INTERNAL, "docker sandbox: out of memory");
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sb->cond, &ca);
    pthread_cond_init(&sb->pool_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&sb->mu, NULL);
    sb->instance = strdup(config->instance);
    sb->runtime = config->runtime ? strdup(config->runtime) : NULL;
    sb->api_timeout_ms = config->api_timeout_ms;
    sb->pids_limit = config->pids_limit;
    sb->tmp_mb = config->tmp_mb;
    sb->nofile = config->nofile;
    sb->reaper_interval_ms = config->reaper_interval_ms;
    sb->pool_size = config->warm_pool;
    sb->pool_image = config->warm_pool > 0 ? strdup(config->pool_image) : NULL;
    sb->pool_memory_mb = config->pool_memory_mb;
    sb->pool_disk_mb = config->pool_disk_mb;
    sb->pool_cpu_shares = config->pool_cpu_shares;
    sb->client = px_docker_client_new(config->socket_path, config->api_timeout_ms, err);
    if (!sb->client || !sb->instance || (config->runtime && !sb->runtime) ||
        (sb->pool_size > 0 && !sb->pool_image)) {
        sandbox_free(sb);
        return px_error_set(err, PX_E_INTERNAL, "docker sandbox: out of memory");
    }
    px_error e = PX_ERROR_INIT;
    if (sandbox_ping(sb, &e) == 0) {
        if (sb->runtime && check_runtime(sb, err) < 0) {
            sandbox_free(sb);
            return -1;
        }
        if (reap(sb, &e) < 0)
            px_warn("docker: start-up reap: %s", e.msg);
    }
    if (sb->reaper_interval_ms > 0) {
        int rc = pthread_create(&sb->reaper, NULL, reaper_main, sb);
        if (rc != 0) {
            sandbox_free(sb);
            return px_error_set_errno(err, PX_E_INTERNAL, rc, "docker sandbox: reaper thread");
        }
        sb->reaper_started = true;
    }
    /* After the start-up reap, which would otherwise race the first pooled
     * containers' creation. */
    int threads = sb->pool_size < POOL_THREADS ? sb->pool_size : POOL_THREADS;
    for (int i = 0; i < threads; i++) {
        int rc = pthread_create(&sb->pool_threads[i], NULL, pool_main, sb);
        if (rc != 0) {
            stop_threads(sb);
            pool_drain(sb);
            sandbox_free(sb);
            return px_error_set_errno(err, PX_E_INTERNAL, rc, "docker sandbox: pool thread");
        }
        sb->n_pool_threads++;
    }
    out->ops = &docker_ops;
    out->self = sb;
    return 0;
}
