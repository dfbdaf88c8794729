/*
 * One run's I/O for the Docker sandbox back-end (see sandbox_internal.h):
 * what the run sends (the bootstrap preamble, the project, stdin) and what
 * it scans on the way back (frames, the end marker and trailer, output
 * held for coalescing), and the bootstrap's last words as result fields.
 * The container's side of the run (paths, poll loop, exit) is run.c.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server/base/cleanup.h"
#include "server/base/clock.h"
#include "server/base/id.h"
#include "server/base/log.h"
#include "server/executor/docker/bootstrap.h"
#include "server/executor/docker/frames.h"
#include "server/executor/docker/sandbox_internal.h"

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

/* --log-level debug: one line per lifecycle step of a run, with what it
 * took and how far into the run it ended, e.g. "docker: execution exe_..:
 * create container '3f2a9c..': 41 ms (at 43 ms)". */
void sb_step_done(run_io *io, const char *fmt, ...) {
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

void sb_run_io_free(run_io *io) {
    if (!io)
        return;
    free(io->preamble);
    free(io->held);
    free(io);
}

/* Chooses the nonce, arms the trailer scanner and builds the preamble
 * (with the run's dependency layer directory `deps`, or NULL).
 * Returns a new run_io, or NULL with `err` set (PX_E_INVALID when the spec
 * cannot be encoded). */
bool sb_ns_runs(const docker_sandbox *sb, const px_job_spec *spec) {
    return sb->ns && !spec->network;
}

run_io *sb_run_io_new(const docker_sandbox *sb, const px_job_spec *spec, px_sandbox_run *run,
                      const char *deps, px_error *err) {
    char nonce[33];
    __attribute__((cleanup(sb_run_io_freep))) run_io *io = calloc(1, sizeof *io);
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
        px_trailer_scanner_init(&io->out_scanner, nonce, err) < 0)
        return NULL;
    if (sb_ns_runs(sb, spec)
            ? px_host_preamble(spec, nonce, deps, sb->ns_filter, sb->ns_filter_len, sb->tmp_mb,
                               &io->preamble, &io->preamble_len, err) < 0
            : px_bootstrap_preamble(spec, nonce, deps, &io->preamble, &io->preamble_len, err) < 0)
        return NULL;
    return TAKE_PTR(io);
}

/* Delivers the output held, if any, as one chunk. */
void sb_flush_held(run_io *io) {
    if (io->held_len == 0)
        return;
    size_t len = io->held_len;
    io->held_len = 0;
    px_sandbox_run_output(io->run, io->held_stream, io->held, len);
}

/* Flushes what is held when it is a whole line (after each read) or due. */
void sb_flush_held_if_ready(run_io *io, int64_t now) {
    if (io->held_len > 0 && (io->held[io->held_len - 1] == '\n' || now >= io->held_due_ms))
        sb_flush_held(io);
}

static void hold_output(run_io *io, px_stream stream, const uint8_t *data, size_t len) {
    if (len == 0)
        return;
    if (io->held_len > 0 && (io->held_stream != stream || io->held_len + len > COALESCE_MAX))
        sb_flush_held(io);
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

void sb_deliver_stderr(void *ud, const uint8_t *data, size_t len) {
    hold_output(ud, PX_STREAM_STDERR, data, len);
}

void sb_deliver_stdout(void *ud, const uint8_t *data, size_t len) {
    hold_output(ud, PX_STREAM_STDOUT, data, len);
}

void sb_deliver_frame(void *ud, px_stream stream, const uint8_t *data, size_t len) {
    run_io *io = ud;
    if (stream == PX_STREAM_STDERR)
        px_trailer_scanner_feed(&io->scanner, data, len, sb_deliver_stderr, io);
    else
        px_trailer_scanner_feed(&io->out_scanner, data, len, sb_deliver_stdout, io);
}

/* Both of the bootstrap's last words arrived: the end marker on stdout and
 * the trailer on stderr. The program has exited and all of its output is in. */
bool sb_bootstrap_done(const run_io *io) {
    return io->scanner.has_trailer && io->out_scanner.has_trailer;
}

/* Writes what the socket takes now (at most WRITE_BURST bytes). Shuts the
 * write side down after the last byte, which is the program's EOF. */
void sb_feed_stdin(stdin_feed *f, int fd) {
    size_t burst = 0;
    while (!f->done && burst < WRITE_BURST) {
        if (f->i == PX_ARRAY_SIZE(f->seg)) {
            if (!f->keep_open)
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

/* Parses the bootstrap's usage trailer into the result; ignores junk. */
void sb_apply_trailer(const px_trailer_scanner *s, px_sandbox_result *result) {
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
void sb_apply_report(const px_trailer_scanner *s, px_sandbox_result *result) {
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
int sb_trailer_exit_code(const px_trailer_scanner *s) {
    if (!s->has_trailer)
        return -1;
    _cleanup_json_ json_t *j = json_loads(s->trailer, 0, NULL);
    json_t *code = json_object_get(j, "exit_code");
    if (!json_is_integer(code) || json_integer_value(code) < 0 || json_integer_value(code) > 255)
        return -1;
    return (int)json_integer_value(code);
}