/*
 * The dependency cache's helper containers (see deps_internal.h): short-lived
 * containers of deps_helper.py that list, build and remove layers in the
 * cache's volume, or detect a project's imports. A build gets the deps
 * network and the wheelhouse; a detection, which parses the user's code,
 * runs as the sandbox user with no mount and no network.
 */
#include <errno.h>
#include <stdint.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/base/cleanup.h"
#include "server/base/clock.h"
#include "server/base/id.h"
#include "server/base/log.h"
#include "server/executor/docker/deps_internal.h"
#include "server/executor/docker/docker_client.h"
#include "server/executor/docker/frames.h"
#include "server/executor/docker/sandbox_internal.h"

static const char helper_script[] =
#include "server/executor/docker/deps_helper_py.inc"
    ;

#define HELPER_MEMORY_MB 1024
#define HELPER_TMP_MB 64
#define HELPER_READ_CHUNK (64 * 1024)
#define DEPS_MOUNT "/deps"

static void helper_sink(void *ud, px_stream stream, const uint8_t *data, size_t len) {
    helper_io *io = ud;
    if (stream == PX_STREAM_STDERR) {
        if (io->run)
            px_sandbox_run_output(io->run, PX_STREAM_STDERR, data, len);
        else
            px_debug("docker: deps helper: %.*s", (int)len, (const char *)data);
        return;
    }
    size_t room = HELPER_OUT_MAX - io->out_len;
    size_t n = len < room ? len : room;
    memcpy(io->out + io->out_len, data, n);
    io->out_len += n;
    io->out[io->out_len] = '\0';
}

/* The create body of a helper container running `args` in `image`. A
 * build gets the deps network and the wheelhouse; "detect", which parses
 * the user's code, runs as the sandbox user with no mount and stdin open. */
static char *helper_body(docker_sandbox *sb, const char *image, const char *const *args,
                         size_t n_args, px_error *err) {
    bool build = strcmp(args[0], "build") == 0, detect = strcmp(args[0], "detect") == 0;
    json_t *cmd = json_pack("[s,s,s,s,s]", "python3", "-I", "-S", "-c", helper_script);
    for (size_t i = 0; cmd && i < n_args; i++)
        json_array_append_new(cmd, json_string(args[i]));
    json_t *mounts = detect ? json_array()
                            : json_pack("[{s:s, s:s, s:s}]", "Type", "volume", "Source",
                                        sb->deps_volume, "Target", DEPS_MOUNT);
    if (mounts && build && sb->wheelhouse)
        json_array_append_new(mounts,
                              json_pack("{s:s, s:s, s:s, s:b}", "Type", "bind", "Source",
                                        sb->wheelhouse, "Target", "/wheelhouse", "ReadOnly", 1));
    char tmp_opts[64];
    snprintf(tmp_opts, sizeof tmp_opts, "rw,noexec,nosuid,nodev,size=%dm", HELPER_TMP_MB);
    const json_int_t memory = (json_int_t)HELPER_MEMORY_MB * 1024 * 1024;
    json_t *host = json_pack(
        "{s:s, s:b, s:[s], s:[s,s], s:I, s:I, s:I, s:{s:s}, s:b, s:{s:s, s:{}}, s:o}",
        "NetworkMode", build ? sb->deps_network : "none", "ReadonlyRootfs", 1, "CapDrop", "ALL",
        "SecurityOpt", "no-new-privileges", sb->seccomp_opt, "PidsLimit",
        (json_int_t)sb->pids_limit, "Memory", memory, "MemorySwap", memory, "Tmpfs", "/tmp",
        tmp_opts, "Init", 1, "LogConfig", "Type", "none", "Config", "Mounts", mounts);
    if (host && sb->runtime)
        json_object_set_new(host, "Runtime", json_string(sb->runtime));
    _cleanup_json_ json_t *body = json_pack(
        "{s:s, s:o, s:[s,s], s:s, s:s, s:b, s:b, s:b, s:{s:s, s:s, s:s}, s:o}", "Image", image,
        "Cmd", cmd, "Env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/tmp", "WorkingDir", "/tmp", "User", detect ? "65534:65534" : "0:0", "AttachStdout",
        1, "AttachStderr", 1, "Tty", 0, "Labels", "pyexec.service", "pyexecd", "pyexec.instance",
        sb->instance, "pyexec.deps", args[0], "HostConfig", host);
    if (!body) {
        px_error_set(err, PX_E_INTERNAL, "out of memory building the helper's create body");
        return NULL;
    }
    if (detect) {
        json_object_set_new(body, "AttachStdin", json_true());
        json_object_set_new(body, "OpenStdin", json_true());
        json_object_set_new(body, "StdinOnce", json_true());
    }
    char *s = json_dumps(body, JSON_COMPACT);
    if (!s)
        px_error_set(err, PX_E_INTERNAL, "out of memory");
    return s;
}

/* Pumps the helper's attach stream on `fd` into `io` until it ends, a kill
 * is requested (io->run) or `deadline` (monotonic ms; 0: none) passes.
 * Returns how it ended, or -1 with `err` set. */
static int helper_pump(int fd, helper_io *io, const uint8_t *early, size_t early_len,
                       int64_t deadline, helper_end *end, px_error *err) {
    px_frame_demux demux;
    px_frame_demux_init(&demux, PX_FRAME_MAX_DEFAULT);
    if (early_len > 0 && px_frame_demux_feed(&demux, early, early_len, helper_sink, io, err) < 0)
        return -1;
    _cleanup_free_ uint8_t *buf = malloc(HELPER_READ_CHUNK);
    if (!buf)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    int wake = io->run ? px_sandbox_run_wake_fd(io->run) : -1;
    for (;;) {
        if (io->run && px_sandbox_run_kill_requested(io->run)) {
            *end = HELPER_KILLED;
            return 0;
        }
        int64_t now = px_now_mono_ms();
        if (deadline && now >= deadline) {
            *end = HELPER_TIMED_OUT;
            return 0;
        }
        int64_t left = deadline ? deadline - now : 60000;
        bool writing = io->in && io->in_off <= io->in_len;
        struct pollfd p[2] = {{.fd = fd, .events = (short)(POLLIN | (writing ? POLLOUT : 0))},
                              {.fd = wake, .events = POLLIN}};
        int r = poll(p, wake >= 0 ? 2 : 1, (int)(left > 60000 ? 60000 : left));
        if (r < 0 && errno != EINTR)
            return px_error_set_errno(err, PX_E_INTERNAL, errno, "poll");
        if (r <= 0 || (wake >= 0 && (p[1].revents & POLLIN)))
            continue;
        if (writing && (p[0].revents & POLLOUT)) {
            if (io->in_off == io->in_len) {
                shutdown(fd, SHUT_WR); /* the helper's EOF */
                io->in_off++;
            } else {
                ssize_t w = send(fd, io->in + io->in_off, io->in_len - io->in_off,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w > 0)
                    io->in_off += (size_t)w;
                else if (w < 0 && errno != EAGAIN && errno != EINTR)
                    io->in_off = io->in_len + 1; /* it stopped reading: it ended */
            }
        }
        if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        ssize_t n = recv(fd, buf, HELPER_READ_CHUNK, MSG_DONTWAIT);
        if (n > 0) {
            if (px_frame_demux_feed(&demux, buf, (size_t)n, helper_sink, io, err) < 0)
                return -1;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            *end = HELPER_EXITED;
            return px_frame_demux_finish(&demux, err);
        }
    }
}

/* Creates container `name` from `body`, attaches, starts it and pumps its
 * stream (helper_pump) to its end; then, when it exited, its exit code.
 * Returns 0, or -1 with `err` set. The caller removes the container. */
static int helper_container(docker_sandbox *sb, const char *name, const char *body, helper_io *io,
                            int64_t deadline, helper_end *end, int *exit_code, px_error *err) {
    char id[128], path[512];
    _cleanup_free_ char *ename = px_docker_escape(name, NULL);
    if (!ename)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    snprintf(path, sizeof path, "/containers/create?name=%s", ename);
    px_docker_response r;
    if (px_docker_call(sb->client, "POST", path, body, 0, &r, err) < 0)
        return px_error_wrap(err, "create helper container");
    if (r.status != 201 && r.status != 200) {
        px_docker_response_error(&r, "POST", "/containers/create", err);
        px_docker_response_release(&r);
        return px_error_wrap(err, "create helper container");
    }
    _cleanup_json_ json_t *j = json_loadb(r.body, r.len, 0, NULL);
    px_docker_response_release(&r);
    const char *cid = json_string_value(json_object_get(j, "Id"));
    if (!cid || strlen(cid) >= sizeof id)
        return px_error_set(err, PX_E_INTERNAL, "POST /containers/create: answer has no Id");
    memcpy(id, cid, strlen(cid) + 1);
    _cleanup_free_ uint8_t *early = NULL;
    size_t early_len = 0;
    _cleanup_close_ int fd = px_docker_attach(sb->client, id, &early, &early_len, err);
    if (fd < 0)
        return px_error_wrap(err, "attach to helper container '%.12s'", id);
    if (sb_container_path(path, sizeof path, id, "/start", err) < 0 ||
        sb_api(sb, "POST", path, NULL, 0, NULL, err) < 0)
        return px_error_wrap(err, "start helper container '%.12s'", id);
    if (helper_pump(fd, io, early, early_len, deadline, end, err) < 0)
        return px_error_wrap(err, "helper container '%.12s'", id);
    if (*end != HELPER_EXITED)
        return 0;
    _cleanup_json_ json_t *w = NULL;
    if (sb_container_path(path, sizeof path, id, "/wait?condition=not-running", err) < 0 ||
        sb_api(sb, "POST", path, NULL, 0, &w, err) < 0)
        return px_error_wrap(err, "wait for helper container '%.12s'", id);
    *exit_code = (int)json_integer_value(json_object_get(w, "StatusCode"));
    return 0;
}

/* Runs the helper (`args`: its mode and the mode's arguments) in a new
 * container of `image` to its end. Returns 0 with *end and, when it exited,
 * *exit_code; or -1 with `err` set. The container is gone either way. */
int sb_deps_run_helper(docker_sandbox *sb, const char *image, const char *const *args,
                       size_t n_args, helper_io *io, int64_t deadline, helper_end *end,
                       int *exit_code, px_error *err) {
    char hex[17], name[64];
    if (px_random_hex(hex, 8, err) < 0)
        return -1;
    snprintf(name, sizeof name, "pyexec-deps-%s", hex);
    _cleanup_free_ char *body = helper_body(sb, image, args, n_args, err);
    if (!body || sb_live_add(sb, name, err) < 0)
        return -1;
    int rc = helper_container(sb, name, body, io, deadline, end, exit_code, err);
    sb_remove_container(sb, name); /* by name: also when the create half-failed */
    sb_live_remove(sb, name);
    return rc;
}
