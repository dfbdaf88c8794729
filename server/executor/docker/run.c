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
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
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
/* After the bootstrap's last words, how long the engine may take to see the
 * container stop before it is killed. */
#define EXIT_AFTER_END_MS 2000
#define READ_CHUNK (64 * 1024)
#define WRITE_BURST (256 * 1024) /* stdin bytes written per poll round */

/*
 * Output coalescing. A program's single print() reaches the attach stream as
 * several writes ("tick", " ", "0", "\n") microseconds apart; delivered one
 * by one they would become as many chunks in the store and as many
 * StreamOutput messages. The pump holds output of one stream and delivers it
 * as one chunk when
 *   - what it holds ends with a newline once a read has been demultiplexed
 *     (whole lines go out without delay),
 *   - COALESCE_MS have passed since the first byte it holds (a partial line,
 *     e.g. a prompt, waits at most that long),
 *   - output of the other stream arrives (the order of the two is kept),
 *   - it holds COALESCE_MAX bytes,
 *   - or the run ends, before its result is reported.
 * Here rather than in the store or in StreamOutput: this is the one place
 * that sees the writes as they arrive and owns a poll loop to time the
 * delay; the store and every reader then deal in whole chunks.
 */
#define COALESCE_MS 5
#define COALESCE_MAX (64 * 1024)

/* ---- one run ---- */

/* What one run sends and scans, prepared before any container is touched. */
typedef struct run_io {
    px_sandbox_run *run;
    px_trailer_scanner scanner;     /* stderr: the usage trailer */
    px_trailer_scanner out_scanner; /* stdout: the end marker */
    char *preamble; /* the bootstrap preamble; owned */
    size_t preamble_len;
    const char *execution_id; /* the spec's, for the step log */
    int64_t deadline_ms;      /* monotonic; 0: the timeout counts from the drive */
    int64_t begun_ms;         /* monotonic: the run's start */
    int64_t step_ms;          /* monotonic: the last step's end */
    /* Output held for coalescing (see COALESCE_MS). */
    px_stream held_stream; /* of the bytes held; meaningful when held_len > 0 */
    uint8_t *held;         /* COALESCE_MAX bytes; owned */
    size_t held_len;
    int64_t held_due_ms;   /* monotonic: when the bytes held go out at the latest */
} run_io;

/* --log-level debug: one line per lifecycle step of a run, with what it
 * took and how far into the run it ended, e.g. "docker: execution exe_..:
 * create container '3f2a9c..': 41 ms (at 43 ms)". */
static void step_done(run_io *io, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void step_done(run_io *io, const char *fmt, ...) {
    int64_t now = px_now_mono_ms();
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    px_debug("docker: execution %s: %s: %lld ms (at %lld ms)", io->execution_id, what,
             (long long)(now - io->step_ms), (long long)(now - io->begun_ms));
    io->step_ms = now;
}

static void run_io_free(run_io *io) {
    if (!io)
        return;
    free(io->preamble);
    free(io->held);
    free(io);
}
PX_DEFINE_CLEANUP(run_io, run_io_free)

/* Chooses the nonce, arms the trailer scanner and builds the preamble
 * (with the run's dependency layer directory `deps`, or NULL).
 * Returns a new run_io, or NULL with `err` set (PX_E_INVALID when the spec
 * cannot be encoded). */
static run_io *run_io_new(const px_job_spec *spec, px_sandbox_run *run, const char *deps,
                          px_error *err) {
    char nonce[33];
    __attribute__((cleanup(run_io_freep))) run_io *io = calloc(1, sizeof *io);
    if (!io) {
        px_error_set(err, PX_E_INTERNAL, "out of memory");
        return NULL;
    }
    io->run = run;
    io->held = malloc(COALESCE_MAX);
    if (!io->held) {
        px_error_set(err, PX_E_INTERNAL, "out of memory");
        return NULL;
    }
    io->execution_id = spec->execution_id;
    io->begun_ms = io->step_ms = px_now_mono_ms();
    if (px_random_hex(nonce, 16, err) < 0 ||
        px_trailer_scanner_init(&io->scanner, nonce, err) < 0 ||
        px_trailer_scanner_init(&io->out_scanner, nonce, err) < 0 ||
        px_bootstrap_preamble(spec, nonce, deps, &io->preamble, &io->preamble_len, err) < 0)
        return NULL;
    return TAKE_PTR(io);
}

/* Delivers the output held, if any, as one chunk. */
static void flush_held(run_io *io) {
    if (io->held_len == 0)
        return;
    size_t len = io->held_len;
    io->held_len = 0;
    px_sandbox_run_output(io->run, io->held_stream, io->held, len);
}

/* Flushes what is held when it is a whole line (after each read) or due. */
static void flush_held_if_ready(run_io *io, int64_t now) {
    if (io->held_len > 0 && (io->held[io->held_len - 1] == '\n' || now >= io->held_due_ms))
        flush_held(io);
}

static void hold_output(run_io *io, px_stream stream, const uint8_t *data, size_t len) {
    if (len == 0)
        return;
    if (io->held_len > 0 && (io->held_stream != stream || io->held_len + len > COALESCE_MAX))
        flush_held(io);
    if (len > COALESCE_MAX) {
        px_sandbox_run_output(io->run, stream, data, len);
        return;
    }
    if (io->held_len == 0) {
        io->held_stream = stream;
        io->held_due_ms = px_now_mono_ms() + COALESCE_MS;
    }
    memcpy(io->held + io->held_len, data, len);
    io->held_len += len;
}

static void deliver_stderr(void *ud, const uint8_t *data, size_t len) {
    hold_output(ud, PX_STREAM_STDERR, data, len);
}

static void deliver_stdout(void *ud, const uint8_t *data, size_t len) {
    hold_output(ud, PX_STREAM_STDOUT, data, len);
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

/* Copies a string member of `j` (at most `max` bytes, cut at a UTF-8
 * character boundary) into *out; leaves *out alone when there is none. */
static void report_string(json_t *j, const char *key, size_t max, char **out) {
    const char *v = json_string_value(json_object_get(j, key));
    if (!v)
        return;
    size_t n = strlen(v);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)v[n] & 0xC0) == 0x80)
            n--;
    }
    *out = strndup(v, n);
}

/* Parses the Eval report the bootstrap put in its end marker on stdout
 * (bootstrap.h) into result->py; ignores junk. The wrapper bounds the
 * strings; REPORT_STRING_MAX only guards this side. */
static void apply_report(const px_trailer_scanner *s, px_sandbox_result *result) {
    enum { REPORT_STRING_MAX = PX_TRAILER_BODY_MAX };
    if (!s->has_trailer || strcmp(s->trailer, "{}") == 0)
        return;
    _cleanup_json_ json_t *j = json_loads(s->trailer, 0, NULL);
    if (!json_is_object(j))
        return;
    px_py_report_release(&result->py);
    report_string(j, "error_type", REPORT_STRING_MAX, &result->py.error_type);
    if (result->py.error_type) {
        json_int_t line = json_integer_value(json_object_get(j, "error_line"));
        result->py.error_line = line > 0 && line <= INT32_MAX ? (int32_t)line : 0;
        report_string(j, "error_message", REPORT_STRING_MAX, &result->py.error_message);
    } else {
        /* A result only when the code raised nothing. */
        report_string(j, "result", REPORT_STRING_MAX, &result->py.result);
    }
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
 * has stopped (POST wait), within `timeout_ms`. Returns 0 with *code set,
 * or -1 with `err` set. */
static int wait_exit(docker_sandbox *sb, const char *id, int64_t timeout_ms, int *code,
                     px_error *err) {
    char path[512];
    _cleanup_json_ json_t *w = NULL;
    if (sb_container_path(path, sizeof path, id, "/wait?condition=not-running", err) < 0 ||
        sb_api(sb, "POST", path, NULL, timeout_ms, &w, err) < 0)
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
    int code = trailer_exit_code(&io->scanner);
    if (code >= 0 && code == result->exit_code) {
        apply_trailer(&io->scanner, result);
        apply_report(&io->out_scanner, result);
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
    const char *id;         /* the container */
    int fd;                 /* its attach socket; borrowed */
    uint8_t *buf;           /* READ_CHUNK bytes */
    px_sandbox_result *result;
    stdin_feed in;
    px_frame_demux demux;
    int64_t deadline;       /* monotonic ms */
    int64_t drain_deadline; /* set once the container was killed at the deadline */
    px_error err;           /* why the stream broke (END_PROTOCOL) */
} drive_state;

/* The deadline passed: takes a usage snapshot, kills the container and lets
 * its streams drain for at most DRAIN_AFTER_KILL_MS. */
static void kill_at_deadline(drive_state *d) {
    sb_take_stats(d->sb, d->id, TIMEOUT_STATS_TIMEOUT_MS, &d->result->peak_memory_bytes,
                  &d->result->cpu_time_ms);
    sb_kill_container(d->sb, d->id);
    d->result->timed_out = true;
    d->in.done = true;
    d->drain_deadline = px_now_mono_ms() + DRAIN_AFTER_KILL_MS;
}

/* The poll loop: pumps stdin out and frames in until the stream ends, the
 * bootstrap's last words arrive, a kill is requested or the drain after the
 * deadline's kill runs out. Returns how it ended (END_PROTOCOL with d->err
 * set). */
static run_end pump(drive_state *d) {
    px_sandbox_run *run = d->io->run;
    int wake = px_sandbox_run_wake_fd(run);
    for (;;) {
        int64_t now = px_now_mono_ms();
        flush_held_if_ready(d->io, now);
        if (px_sandbox_run_kill_requested(run))
            return END_KILL;
        if (!d->drain_deadline && now >= d->deadline) {
            kill_at_deadline(d);
            continue;
        }
        if (d->drain_deadline && now >= d->drain_deadline)
            return END_EOF;
        int64_t until = (d->drain_deadline ? d->drain_deadline : d->deadline) - now;
        if (d->io->held_len > 0 && d->io->held_due_ms - now < until)
            until = d->io->held_due_ms - now;
        struct pollfd p[2] = {
            {.fd = d->fd, .events = (short)(POLLIN | (d->in.done ? 0 : POLLOUT))},
            {.fd = wake, .events = POLLIN},
        };
        int r = poll(p, wake >= 0 ? 2 : 1, (int)(until > 60000 ? 60000 : until));
        if (r < 0 && errno != EINTR) {
            px_error_set_errno(&d->err, PX_E_INTERNAL, errno, "poll");
            return END_PROTOCOL;
        }
        if (r <= 0)
            continue;
        if (wake >= 0 && (p[1].revents & POLLIN))
            continue; /* the top of the loop reads the kill cause */
        if (p[0].revents & POLLOUT)
            feed_stdin(&d->in, d->fd);
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(d->fd, d->buf, READ_CHUNK, MSG_DONTWAIT);
            if (n > 0) {
                if (px_frame_demux_feed(&d->demux, d->buf, (size_t)n, deliver_frame, d->io,
                                        &d->err) < 0)
                    return END_PROTOCOL;
                flush_held_if_ready(d->io, px_now_mono_ms());
                if (bootstrap_done(d->io) && !d->drain_deadline)
                    return END_DONE;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                return END_EOF; /* end of stream (or reset, which ends it too) */
            }
        }
    }
}

/* Fills the result from how the loop ended: after the bootstrap's last
 * words, waits for the engine to see the container stop and reports at once
 * when the two agree; kills on a kill request or a broken stream; otherwise
 * asks the engine for the exit status. */
static void conclude(drive_state *d, run_end end) {
    run_io *io = d->io;
    px_sandbox_result *result = d->result;
    if (end == END_DONE) {
        /* The bootstrap, the container's PID 1, has written its last words
         * and is exiting, which ends the container. Its trailer is one
         * witness; the exit code the engine saw is the other, and the
         * verdict only when they agree: then the result is complete and is
         * reported before the removal. Otherwise the engine's facts decide,
         * as after any end of stream. */
        int said = trailer_exit_code(&io->scanner), seen = -1;
        px_error e = PX_ERROR_INIT;
        if (said >= 0 && wait_exit(d->sb, d->id, EXIT_AFTER_END_MS, &seen, &e) == 0 &&
            seen == said) {
            result->ran = true;
            result->exit_code = seen;
            apply_trailer(&io->scanner, result);
            apply_report(&io->out_scanner, result);
            step_done(io, "see container '%.12s' stop", d->id);
            px_sandbox_run_ended(io->run, result);
            return;
        }
        if (e.code == PX_E_UNAVAILABLE)
            sb_kill_container(d->sb, d->id); /* it did not stop in time */
        end = END_EOF;
    }

    if (end != END_EOF) {
        /* Nothing more is read: let the engine's stream copier fail at once
         * instead of blocking on a full socket, which would hold up the
         * container's exit and so the kill call below until its timeout. */
        shutdown(d->fd, SHUT_RDWR);
    }
    if (end == END_KILL) {
        sb_take_stats(d->sb, d->id, KILL_STATS_TIMEOUT_MS, &result->peak_memory_bytes,
                      &result->cpu_time_ms);
        sb_kill_container(d->sb, d->id);
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
 * caller does. When the bootstrap's end marker and trailer both arrive, the
 * output is complete: the run waits for the container's exit, which follows
 * at once, and when the engine's exit code agrees with the trailer reports
 * the result (px_sandbox_run_ended) before the removal. */
static void drive(docker_sandbox *sb, const px_job_spec *spec, run_io *io, const char *id,
                  int fd, const uint8_t *early, size_t early_len, px_sandbox_result *result) {
    _cleanup_free_ uint8_t *buf = malloc(READ_CHUNK);
    if (!buf) {
        px_error_set(&result->error, PX_E_INTERNAL, "out of memory");
        sb_kill_container(sb, id);
        return;
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
                       {spec->stdin_data, spec->stdin_len}}},
        .deadline = io->deadline_ms ? io->deadline_ms
                                    : px_now_mono_ms() + (int64_t)spec->timeout_s * 1000,
        .err = PX_ERROR_INIT,
    };
    px_frame_demux_init(&d.demux, PX_FRAME_MAX_DEFAULT);
    run_end end;
    if (early_len > 0 &&
        px_frame_demux_feed(&d.demux, early, early_len, deliver_frame, io, &d.err) < 0)
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
    step_done(io, "run container '%.12s' until %s", id, how[end]);
    px_trailer_scanner_finish(&io->out_scanner, deliver_stdout, io);
    px_trailer_scanner_finish(&io->scanner, deliver_stderr, io);
    flush_held(io); /* before the result: nothing held back is lost or late */
    conclude(&d, end);
}

/* The warm path: takes pooled containers until one is idle, accepts the
 * spec's limits and takes the run's name, pyexec-<execution id> (the others
 * are discarded), then reports the start and drives it.
 * Returns false, having done nothing for the run, when the pool has none to
 * give. */
static bool run_warm(docker_sandbox *sb, const px_job_spec *spec, run_io *io,
                     px_sandbox_result *result) {
    for (;;) {
        pooled *p = sb_pool_take(sb);
        if (!p)
            return false;
        px_error err = PX_ERROR_INIT;
        char name[128];
        snprintf(name, sizeof name, "pyexec-%s", spec->execution_id);
        if (!sb_pooled_idle(p)) {
            px_warn("docker: pooled container '%.12s' ended or spoke while idle; removing it",
                    p->id);
        } else if (sb_pooled_set_limits(sb, p->id, spec, &err) < 0 ||
                   sb_pooled_rename(sb, p, name, &err) < 0) {
            px_warn("docker: execution %s: %s; removing it", spec->execution_id, err.msg);
        } else {
            sb_pool_count(sb, &sb->stats.taken);
            step_done(io, "take pooled container '%.12s'", p->id);
            px_sandbox_run_started(io->run);
            drive(sb, spec, io, p->id, p->fd, NULL, 0, result);
            char id[16];
            snprintf(id, sizeof id, "%.12s", p->id);
            sb_pooled_discard(sb, p);
            step_done(io, "remove container '%s'", id);
            return true;
        }
        sb_pool_count(sb, &sb->stats.discarded);
        sb_pooled_discard(sb, p);
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
    step_done(io, "check image '%s'", spec->image);
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
    step_done(io, "create container '%.12s'", id);
    _cleanup_free_ uint8_t *early = NULL;
    size_t early_len = 0;
    char path[512];
    int fd = px_docker_attach(sb->client, id, &early, &early_len, &err);
    if (fd < 0) {
        result->error = err;
        px_error_wrap(&result->error, "attach to container '%.12s'", id);
    } else {
        step_done(io, "attach to container '%.12s'", id);
        if (sb_container_path(path, sizeof path, id, "/start", &err) < 0 ||
            sb_api(sb, "POST", path, NULL, 0, NULL, &err) < 0) {
            result->error = err;
            px_error_wrap(&result->error, "start container '%.12s'", id);
        } else {
            step_done(io, "start container '%.12s'", id);
            px_sandbox_run_started(io->run);
            drive(sb, spec, io, id, fd, early, early_len, result);
        }
    }
    if (fd >= 0)
        close(fd);
    sb_remove_container(sb, id);
    step_done(io, "remove container '%.12s'", id);
    sb_live_remove(sb, name);
}

/* Runs `spec` with its dependency layer `deps` (directory under /deps, or
 * NULL) whose build or wait, if any, set `deadline` (0: none yet). */
static void run_with(docker_sandbox *sb, const px_job_spec *spec, px_sandbox_run *run,
                     const char *deps, int64_t deadline, px_sandbox_result *result) {
    px_error err = PX_ERROR_INIT;
    char path[128];
    if (deps)
        snprintf(path, sizeof path, "/deps/%s", deps);
    __attribute__((cleanup(run_io_freep))) run_io *io =
        run_io_new(spec, run, deps ? path : NULL, &err);
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
    if (sb_pool_fits(sb, spec) && run_warm(sb, spec, io, result))
        return;
    run_cold(sb, spec, io, result);
}

void sb_run(void *self, const px_job_spec *spec, px_sandbox_run *run,
            px_sandbox_result *result) {
    docker_sandbox *sb = self;
    result->ran = false;
    if (!spec->requirements_txt || !spec->requirements_txt[0]) {
        run_with(sb, spec, run, NULL, 0, result);
        return;
    }
    if (!sb_deps_enabled(sb)) {
        px_error_set(&result->error, PX_E_PRECONDITION,
                     "requirements_txt: this server installs no requirements (it runs without "
                     "--wheelhouse and --pip-index-url)");
        return;
    }
    if (px_sandbox_run_kill_requested(run)) {
        px_error_set(&result->error, PX_E_CANCELLED, "killed before the container was created");
        return;
    }
    int64_t deadline = 0;
    sb_layer *layer = sb_deps_acquire(sb, spec, run, &deadline, result);
    if (!layer)
        return;
    run_with(sb, spec, run, sb_layer_dir(layer), deadline, result);
    sb_deps_release(sb, layer);
}
