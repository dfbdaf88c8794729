/*
 * One run of the Docker sandbox back-end (see sandbox_internal.h).
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
 * The namespace mode (--isolation namespace, host.py) takes a third path: a
 * ready host of the spec's image (pooled, or one made now) -> update its
 * limits if they differ -> report started -> [poll loop] -> the host's
 * last words are the verdict (the host lives on: no wait, no removal) ->
 * back to the ready list when the execution ended cleanly and the host has
 * run fewer than --host-reuse executions; else removed. Any other end
 * (deadline, kill, broken stream, OOM kill, the bootstrap's failure, stdin
 * not wholly delivered) retires the host: it is killed and removed.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/base/cleanup.h"
#include "server/base/clock.h"
#include "server/base/id.h"
#include "server/base/log.h"
#include "server/executor/docker/bootstrap.h"
#include "server/executor/docker/docker_client.h"
#include "server/executor/docker/frames.h"
#include "server/executor/docker/sandbox_internal.h"

/* Usage snapshots before a kill are best effort: the engine answers a
 * one-shot stats call in a few ms, but waits for its 1 s sampling cycle
 * when another stats call is in flight. A Kill RPC must not wait for that;
 * a timeout (already late by definition) may, to report usage. */
#define KILL_STATS_TIMEOUT_MS 150
#define TIMEOUT_STATS_TIMEOUT_MS 1500
#define DRAIN_AFTER_KILL_MS 2000
#define READ_CHUNK (64 * 1024)

/* ---- one run ---- */

typedef enum run_end { END_EOF, END_DONE, END_KILL, END_PROTOCOL } run_end;

/* After the streams ended: exit code and OOM flag. A container that is gone
 * was lost. Returns 0, or -1 with result->error set. */
static int collect_exit(docker_sandbox *sb, const char *id, px_sandbox_result *result) {
    char path[512];
    px_error err = PX_ERROR_INIT;
    _cleanup_json_ json_t *w = NULL;
    _cleanup_json_ json_t *j = NULL;
    int rc = sb_container_path(path, sizeof path, id, "/wait?condition=not-running", &err);
    if (rc == 0)
        rc = sb_api(sb, "POST", path, NULL, 0, &w, &err);
    if (rc == 0 && (rc = sb_container_path(path, sizeof path, id, "/json", &err)) == 0)
        rc = sb_api(sb, "GET", path, NULL, 0, &j, &err);
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

/* The container's exit code as the engine reports it once the container
 * has stopped (POST wait; within the API timeout). Returns 0 with *code set,
 * or -1 with `err` set. */
static int wait_exit(docker_sandbox *sb, const char *id, int *code, px_error *err) {
    char path[512];
    _cleanup_json_ json_t *w = NULL;
    if (sb_container_path(path, sizeof path, id, "/wait?condition=not-running", err) < 0 ||
        sb_api(sb, "POST", path, NULL, 0, &w, err) < 0)
        return -1;
    json_t *c = json_object_get(w, "StatusCode");
    if (!json_is_integer(c))
        return px_error_set(err, PX_E_INTERNAL, "POST %s: answer has no StatusCode", path);
    *code = (int)json_integer_value(c);
    return 0;
}

/* Combines the engine's facts (already in `result`: exit code, OOM flag)
 * with the bootstrap's last words. They count only when the trailer's exit
 * code is the one the engine saw: the trailer is one witness, the
 * container's exit the other. Without last words that count, an OOM-killed
 * run reports its memory limit as its peak, which the cgroup reached (CPU
 * time is then unknown: 0). */
static void apply_verdict(const px_job_spec *spec, const run_io *io, const char *id,
                          px_sandbox_result *result) {
    int code = sb_trailer_exit_code(&io->scanner);
    if (code >= 0 && code == result->exit_code) {
        sb_apply_trailer(&io->scanner, result);
        sb_apply_report(&io->out_scanner, result);
    } else if (code >= 0) {
        px_warn("docker: container '%.12s' exited with %d but its trailer says %d; the "
                "trailer is ignored",
                id, result->exit_code, code);
    }
    if (result->oom_killed && result->peak_memory_bytes == 0)
        result->peak_memory_bytes = (int64_t)spec->memory_mb * 1024 * 1024;
}

/* One drive's state, shared by its steps. */
typedef struct drive_state {
    docker_sandbox *sb;
    const px_job_spec *spec;
    run_io *io;
    const char *id; /* the container */
    int fd;         /* its attach socket; borrowed */
    uint8_t *buf;   /* READ_CHUNK bytes */
    px_sandbox_result *result;
    stdin_feed in;
    px_frame_demux demux;
    int64_t deadline;       /* monotonic ms */
    int64_t drain_deadline; /* set once the container was killed at the deadline */
    px_error err;           /* why the stream broke (END_PROTOCOL) */
    pooled *host;           /* the namespace mode's host, or NULL */
    bool reusable;          /* out: the host may run another execution */
    bool killed;            /* the container was killed at a kill request */
} drive_state;

/* Ends the run by a kill: takes a usage snapshot (waiting `stats_timeout_ms`
 * at most), kills the container and lets its streams drain for at most
 * DRAIN_AFTER_KILL_MS. What the program wrote before it died may still be
 * on its way through the engine (a print's "\n" is a write of its own);
 * cutting the stream at the kill would lose those last bytes, so the run
 * ends at the stream's end, which the engine sends once the container is
 * gone. The caller marks why (timed_out, killed). */
static void kill_and_drain(drive_state *d, int64_t stats_timeout_ms) {
    sb_take_stats(d->sb, d->id, stats_timeout_ms, &d->result->peak_memory_bytes,
                  &d->result->cpu_time_ms);
    if (d->host) /* the host's counter runs over its whole life */
        d->result->cpu_time_ms = d->result->cpu_time_ms > d->host->cpu_base_ms
                                     ? d->result->cpu_time_ms - d->host->cpu_base_ms
                                     : 0;
    sb_kill_container(d->sb, d->id);
    d->in.done = true;
    d->drain_deadline = px_now_mono_ms() + DRAIN_AFTER_KILL_MS;
}

/* The poll loop: pumps stdin out and frames in until the stream ends, the
 * bootstrap's last words arrive or the drain after a kill (at the deadline
 * or on request) runs out. Returns how it ended (END_KILL after a kill
 * request, END_PROTOCOL with d->err set). */
static run_end pump(drive_state *d) {
    px_sandbox_run *run = d->io->run;
    int wake = px_sandbox_run_wake_fd(run);
    for (;;) {
        int64_t now = px_now_mono_ms();
        sb_flush_held_if_ready(d->io, now);
        if (!d->drain_deadline && px_sandbox_run_kill_requested(run)) {
            kill_and_drain(d, KILL_STATS_TIMEOUT_MS);
            d->killed = true;
            continue;
        }
        if (!d->drain_deadline && now >= d->deadline) {
            kill_and_drain(d, TIMEOUT_STATS_TIMEOUT_MS);
            d->result->timed_out = true;
            continue;
        }
        if (d->drain_deadline && now >= d->drain_deadline)
            return d->killed ? END_KILL : END_EOF;
        int64_t until = (d->drain_deadline ? d->drain_deadline : d->deadline) - now;
        if (d->io->held_len > 0 && d->io->held_due_ms - now < until)
            until = d->io->held_due_ms - now;
        struct pollfd p[2] = {
            {.fd = d->fd, .events = (short)(POLLIN | (d->in.done ? 0 : POLLOUT))},
            {.fd = wake, .events = POLLIN},
        };
        /* Once draining, a kill has nothing left to do: the wake fd (which
         * stays readable) is no longer watched. */
        int r = poll(p, wake >= 0 && !d->drain_deadline ? 2 : 1,
                     (int)(until > 60000 ? 60000 : until));
        if (r < 0 && errno != EINTR) {
            px_error_set_errno(&d->err, PX_E_INTERNAL, errno, "poll");
            return END_PROTOCOL;
        }
        if (r <= 0)
            continue;
        if (wake >= 0 && (p[1].revents & POLLIN))
            continue; /* the top of the loop reads the kill cause */
        if (p[0].revents & POLLOUT)
            sb_feed_stdin(&d->in, d->fd);
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(d->fd, d->buf, READ_CHUNK, MSG_DONTWAIT);
            if (n > 0) {
                if (px_frame_demux_feed(&d->demux, d->buf, (size_t)n, sb_deliver_frame, d->io,
                                        &d->err) < 0)
                    return END_PROTOCOL;
                sb_flush_held_if_ready(d->io, px_now_mono_ms());
                if (sb_bootstrap_done(d->io) && !d->drain_deadline)
                    return END_DONE;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                /* end of stream (or reset, which ends it too) */
                return d->killed ? END_KILL : END_EOF;
            }
        }
    }
}

/* Fills the result from how the loop ended: after the bootstrap's last
 * words, waits for the engine to see the container stop and reports at once
 * when the two agree; kills on a kill request or a broken stream; otherwise
 * asks the engine for the exit status. */
/* A host's last words: its trailer is the verdict (the host, outside the
 * execution's namespaces, wrote it after the execution's pid namespace was
 * gone). Decides whether the host may run another execution. */
static void conclude_host(drive_state *d) {
    run_io *io = d->io;
    px_sandbox_result *result = d->result;
    result->ran = true;
    result->exit_code = sb_trailer_exit_code(&io->scanner);
    sb_apply_trailer(&io->scanner, result);
    sb_apply_report(&io->out_scanner, result);
    _cleanup_json_ json_t *j = json_loads(io->scanner.trailer, 0, NULL);
    json_int_t base = json_integer_value(json_object_get(j, "host_cpu_ms"));
    d->host->cpu_base_ms = base > 0 ? base : 0;
    d->host->uses++;
    d->reusable = json_integer_value(json_object_get(j, "clean")) == 1 && !result->oom_killed &&
                  d->in.done && d->in.i == PX_ARRAY_SIZE(d->in.seg) &&
                  d->host->uses < d->sb->host_reuse;
    sb_step_done(io, "host '%.12s' reported the end", d->id);
    px_sandbox_run_ended(io->run, result);
}

static void conclude(drive_state *d, run_end end) {
    run_io *io = d->io;
    px_sandbox_result *result = d->result;
    if (end == END_DONE && d->host && sb_trailer_exit_code(&io->scanner) >= 0) {
        conclude_host(d);
        return;
    }
    if (end == END_DONE && d->host)
        end = END_EOF; /* a trailer without an exit code: retire the host */
    if (end == END_DONE) {
        /* The bootstrap, the container's PID 1, has written its last words
         * and is exiting, which ends the container. Its trailer is one
         * witness; the exit code the engine saw is the other, and the
         * verdict only when they agree: then the result is complete and is
         * reported before the removal. Otherwise the engine's facts decide,
         * as after any end of stream. */
        int said = sb_trailer_exit_code(&io->scanner), seen = -1;
        px_error e = PX_ERROR_INIT;
        if (said >= 0 && wait_exit(d->sb, d->id, &seen, &e) == 0 && seen == said) {
            result->ran = true;
            result->exit_code = seen;
            sb_apply_trailer(&io->scanner, result);
            sb_apply_report(&io->out_scanner, result);
            sb_step_done(io, "see container '%.12s' stop", d->id);
            px_sandbox_run_ended(io->run, result);
            return;
        }
        end = END_EOF;
    }

    if (end != END_EOF) {
        /* Nothing more is read: let the engine's stream copier fail at once
         * instead of blocking on a full socket, which would hold up the
         * container's exit and so the kill call below until its timeout. */
        shutdown(d->fd, SHUT_RDWR);
    }
    if (end == END_KILL) {
        /* Killed at a request (kill_and_drain) and drained: the output is
         * complete. */
        result->ran = true;
        result->exit_code = 128 + 9;
        return;
    }
    if (end == END_PROTOCOL) {
        sb_kill_container(d->sb, d->id);
        result->error = d->err;
        px_error_wrap(&result->error, "container '%.12s'", d->id);
        return;
    }
    if (collect_exit(d->sb, d->id, result) < 0)
        return;
    result->ran = true;
    apply_verdict(d->spec, io, d->id, result);
    /* Final: report it now; the removal follows. */
    px_sandbox_run_ended(io->run, result);
}

/* Runs the started container `id`, attached on `fd` (borrowed; `early`
 * holds the stream bytes that came with the attach answer), to its end:
 * sends the preamble, project and stdin, pumps output, enforces the
 * deadline (counted from this call: the caller has just reported the start)
 * and kill requests, and fills `result` except for the removal, which the
 * caller does. With `host` (the namespace mode), the host's last words are
 * the verdict; returns whether the host may run another execution (false
 * for every container of the container mode). When the bootstrap's end marker and trailer both arrive, the
 * output is complete: the run waits for the container's exit, which follows
 * at once, and when the engine's exit code agrees with the trailer reports
 * the result (px_sandbox_run_ended) before the removal. */
static bool drive(docker_sandbox *sb, const px_job_spec *spec, run_io *io, const char *id, int fd,
                  const uint8_t *early, size_t early_len, pooled *host, px_sandbox_result *result) {
    _cleanup_free_ uint8_t *buf = malloc(READ_CHUNK);
    if (!buf) {
        px_error_set(&result->error, PX_E_INTERNAL, "out of memory");
        sb_kill_container(sb, id);
        return false;
    }
    drive_state d = {
        .sb = sb,
        .spec = spec,
        .io = io,
        .id = id,
        .fd = fd,
        .buf = buf,
        .result = result,
        .in = {.seg = {{(const uint8_t *)io->preamble, io->preamble_len},
                       {spec->tar, spec->tar_len},
                       {spec->stdin_data, spec->stdin_len}},
               .keep_open = host != NULL},
        .host = host,
        .deadline = io->deadline_ms ? io->deadline_ms
                                    : px_now_mono_ms() + (int64_t)spec->timeout_s * 1000,
        .err = PX_ERROR_INIT,
    };
    px_frame_demux_init(&d.demux, PX_FRAME_MAX_DEFAULT);
    run_end end;
    if (early_len > 0 &&
        px_frame_demux_feed(&d.demux, early, early_len, sb_deliver_frame, io, &d.err) < 0)
        end = END_PROTOCOL;
    else
        end = pump(&d);

    if (end == END_EOF && px_frame_demux_finish(&d.demux, &d.err) < 0)
        end = END_PROTOCOL;
    static const char *const how[] = {
        [END_EOF] = "its streams closed",
        [END_DONE] = "the bootstrap reported the end",
        [END_KILL] = "a kill was requested",
        [END_PROTOCOL] = "its attach stream broke",
    };
    sb_step_done(io, "run container '%.12s' until %s", id, how[end]);
    px_trailer_scanner_finish(&io->out_scanner, sb_deliver_stdout, io);
    px_trailer_scanner_finish(&io->scanner, sb_deliver_stderr, io);
    sb_flush_held(io); /* before the result: nothing held back is lost or late */
    conclude(&d, end);
    return d.reusable;
}

/* The warm path: takes pooled containers until one is idle, accepts the
 * spec's limits and takes the run's name, pyexec-<execution id> (the others
 * are discarded), then reports the start and drives it. The pool's refill
 * waits for the run's end, its container's removal included (pool.c).
 * Returns false, having done nothing for the run, when the pool has none to
 * give. */
static bool run_warm(docker_sandbox *sb, const px_job_spec *spec, run_io *io,
                     px_sandbox_result *result) {
    for (;;) {
        sb_pool_hold hold;
        pooled *p = sb_pool_take_held(sb, spec->image, spec->disk_mb, &hold);
        if (!p)
            return false;
        px_error err = PX_ERROR_INIT;
        char name[128];
        snprintf(name, sizeof name, "pyexec-%s", spec->execution_id);
        if (!sb_pooled_idle(p)) {
            px_warn("docker: pooled container '%.12s' ended or spoke while idle; removing it",
                    p->id);
        } else if (sb_pooled_set_limits(sb, p, spec, &err) < 0 ||
                   sb_pooled_rename(sb, p, name, &err) < 0) {
            px_warn("docker: execution %s: %s; removing it", spec->execution_id, err.msg);
        } else {
            sb_pool_count(sb, &sb->stats.taken);
            sb_step_done(io, "take pooled container '%.12s'", p->id);
            px_sandbox_run_started(io->run);
            drive(sb, spec, io, p->id, p->fd, NULL, 0, NULL, result);
            char id[16];
            snprintf(id, sizeof id, "%.12s", p->id);
            sb_pooled_discard(sb, p);
            sb_step_done(io, "remove container '%s'", id);
            sb_pool_release_hold(sb, &hold);
            return true;
        }
        sb_pool_count(sb, &sb->stats.discarded);
        sb_pooled_discard(sb, p);
        sb_pool_release_hold(sb, &hold);
    }
}

/* The cold path: a container made for this run alone. */
static void run_cold(docker_sandbox *sb, const px_job_spec *spec, run_io *io,
                     px_sandbox_result *result) {
    px_error err = PX_ERROR_INIT;
    if (sb_ensure_image(sb, spec->image, &err) < 0) {
        result->error = err;
        return;
    }
    sb_step_done(io, "check image '%s'", spec->image);
    if (px_sandbox_run_kill_requested(io->run)) {
        px_error_set(&result->error, PX_E_CANCELLED, "killed before the container was created");
        return;
    }
    sb_pool_count(sb, &sb->stats.cold);
    char name[128];
    snprintf(name, sizeof name, "pyexec-%s", spec->execution_id);
    if (sb_live_add(sb, name, &err) < 0) {
        result->error = err;
        return;
    }
    char id[128];
    if (sb_create_container(sb, spec, false, name, id, sizeof id, &err) < 0) {
        result->error = err;
        px_error_wrap(&result->error, "create container");
        /* The engine may have created it before failing: no leak either way. */
        if (err.code != PX_E_INVALID)
            sb_remove_container(sb, name);
        sb_live_remove(sb, name);
        return;
    }
    sb_step_done(io, "create container '%.12s'", id);
    _cleanup_free_ uint8_t *early = NULL;
    size_t early_len = 0;
    int fd = px_docker_attach(sb->client, id, &early, &early_len, &err);
    if (fd < 0) {
        result->error = err;
        px_error_wrap(&result->error, "attach to container '%.12s'", id);
    } else {
        sb_step_done(io, "attach to container '%.12s'", id);
        if (sb_start_container(sb, id, &err) < 0) {
            result->error = err;
            px_error_wrap(&result->error, "start container '%.12s'", id);
        } else {
            sb_step_done(io, "start container '%.12s'", id);
            px_sandbox_run_started(io->run);
            drive(sb, spec, io, id, fd, early, early_len, NULL, result);
        }
    }
    if (fd >= 0)
        close(fd);
    sb_remove_container(sb, id);
    sb_step_done(io, "remove container '%.12s'", id);
    sb_live_remove(sb, name);
}

/* The namespace mode: a ready host of the spec's image, or one made now;
 * its limits set to the spec's; one execution; then the host goes back to
 * the ready list or is retired (see the top of the file). */
static void run_ns(docker_sandbox *sb, const px_job_spec *spec, run_io *io,
                   px_sandbox_result *result) {
    px_error err = PX_ERROR_INIT;
    pooled *p = NULL;
    while (!p && (p = sb_pool_take(sb, spec->image, spec->disk_mb))) {
        if (!sb_pooled_idle(p)) {
            px_warn("docker: host '%.12s' ended or spoke while idle; removing it", p->id);
        } else if (sb_pooled_set_limits(sb, p, spec, &err) < 0) {
            px_warn("docker: execution %s: %s; removing it", spec->execution_id, err.msg);
        } else {
            sb_pool_count(sb, &sb->stats.taken);
            sb_step_done(io, "take host '%.12s' (%d executions before)", p->id, p->uses);
            break;
        }
        sb_pool_count(sb, &sb->stats.discarded);
        sb_pooled_discard(sb, p);
        p = NULL;
    }
    if (!p) {
        if (sb_ensure_image(sb, spec->image, &err) < 0) {
            result->error = err;
            return;
        }
        if (px_sandbox_run_kill_requested(io->run)) {
            px_error_set(&result->error, PX_E_CANCELLED, "killed before the host was created");
            return;
        }
        sb_pool_count(sb, &sb->stats.cold);
        p = sb_pooled_create(sb, spec, &err);
        if (!p) {
            result->error = err;
            px_error_wrap(&result->error, "make a host container");
            return;
        }
        sb_step_done(io, "create host '%.12s'", p->id);
    }
    px_sandbox_run_started(io->run);
    /* No rename to pyexec-<execution id> as in the warm pool: two engine
     * calls per execution (there and back) cost more engine CPU than the
     * execution itself. The debug log names the host of each execution; so
     * does the execution's host name (the container's short id). */
    if (drive(sb, spec, io, p->id, p->fd, NULL, 0, p, result)) {
        sb_pool_return(sb, p);
        return;
    }
    char id[16];
    snprintf(id, sizeof id, "%.12s", p->id);
    sb_pooled_discard(sb, p);
    sb_step_done(io, "retire host '%s'", id);
}

/* Runs `spec` with its dependency layer `deps` (directory under /deps, or
 * NULL) whose build or wait, if any, set `deadline` (0: none yet). */
static void run_with(docker_sandbox *sb, const px_job_spec *spec, px_sandbox_run *run,
                     const char *deps, int64_t deadline, px_sandbox_result *result) {
    px_error err = PX_ERROR_INIT;
    char path[128];
    if (deps)
        snprintf(path, sizeof path, "/deps/%s", deps);
    __attribute__((cleanup(sb_run_io_freep)))
    run_io *io = sb_run_io_new(sb, spec, run, deps ? path : NULL, &err);
    if (!io) {
        result->error = err;
        px_error_wrap(&result->error, "prepare bootstrap");
        return;
    }
    io->deadline_ms = deadline;
    if (px_sandbox_run_kill_requested(run)) {
        px_error_set(&result->error, PX_E_CANCELLED, "killed before the container was created");
        return;
    }
    if (sb_ns_runs(sb, spec)) {
        run_ns(sb, spec, io, result);
        return;
    }
    if (sb_pool_fits(sb, spec) && run_warm(sb, spec, io, result))
        return;
    run_cold(sb, spec, io, result);
}

void sb_run(void *self, const px_job_spec *spec, px_sandbox_run *run, px_sandbox_result *result) {
    docker_sandbox *sb = self;
    result->ran = false;
    const char *own = spec->requirements_txt ? spec->requirements_txt : "";
    bool none = !own[0] || strcmp(own, "-\n") == 0; /* "-": none, none detected */
    if (!sb_deps_enabled(sb) && !none) {
        px_error_set(&result->error, PX_E_PRECONDITION,
                     "requirements_txt: this server installs no requirements (it runs without "
                     "--wheelhouse and --pip-index-url)");
        return;
    }
    if (!sb_deps_enabled(sb) || (none && (own[0] || !sb->deps_auto))) {
        run_with(sb, spec, run, NULL, 0, result);
        return;
    }
    if (px_sandbox_run_kill_requested(run)) {
        px_error_set(&result->error, PX_E_CANCELLED, "killed before the container was created");
        return;
    }
    int64_t deadline = 0;
    _cleanup_free_ char *wanted = sb_deps_requirements(sb, spec, run, &deadline, result);
    if (!wanted)
        return;
    if (!wanted[0]) {
        run_with(sb, spec, run, NULL, deadline, result);
        return;
    }
    sb_layer *layer = sb_deps_acquire(sb, spec, wanted, run, &deadline, result);
    if (!layer)
        return;
    run_with(sb, spec, run, sb_layer_dir(layer), deadline, result);
    sb_deps_release(sb, layer);
}
