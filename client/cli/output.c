/* Printing results: text, JSON (a small escaper of our own) and exit codes. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/cli/cli.h"
#include "server/base/cleanup.h"

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one
 * (overlong forms, surrogates and values past U+10FFFF are invalid). */
static size_t utf8_seq(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void cli_json_string(FILE *f, const uint8_t *data, size_t len) {
    fputc('"', f);
    size_t i = 0;
    while (i < len) {
        uint8_t c = data[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
            i++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n': fputs("\\n", f); break;
            case '\r': fputs("\\r", f); break;
            case '\t': fputs("\\t", f); break;
            case '\b': fputs("\\b", f); break;
            case '\f': fputs("\\f", f); break;
            default: fprintf(f, "\\u%04x", c);
            }
            i++;
        } else {
            size_t n = utf8_seq(data + i, len - i);
            if (n == 0) {
                fputs("\\ufffd", f);
                i++;
            } else {
                fwrite(data + i, 1, n, f);
                i += n;
            }
        }
    }
    fputc('"', f);
}

static void json_cstr(FILE *f, const char *s) {
    cli_json_string(f, (const uint8_t *)s, strlen(s));
}

/* RFC 3339 UTC with microseconds, or null. */
static void json_time(FILE *f, bool set, int64_t sec, int32_t nsec) {
    if (!set) {
        fputs("null", f);
        return;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    char buf[64];
    if (!gmtime_r(&t, &tm) || strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        fputs("null", f);
        return;
    }
    fprintf(f, "\"%s.%06dZ\"", buf, (int)(nsec / 1000));
}

void cli_json_result(FILE *f, const pyexec_result *r, const uint8_t *out, size_t out_len,
                     const uint8_t *err, size_t err_len) {
    if (!out) {
        out = r->stdout_buf;
        out_len = r->stdout_len;
    }
    if (!err) {
        err = r->stderr_buf;
        err_len = r->stderr_len;
    }
    fputs("{\"execution_id\": ", f);
    json_cstr(f, r->execution_id);
    fprintf(f, ", \"status\": \"%s\", \"stdout\": ", pyexec_status_name(r->status));
    cli_json_string(f, out, out_len);
    fputs(", \"stderr\": ", f);
    cli_json_string(f, err, err_len);
    if (pyexec_status_is_terminal(r->status))
        fprintf(f, ", \"exit_code\": %" PRId32, r->exit_code);
    else
        fputs(", \"exit_code\": null", f);
    fputs(", \"error\": ", f);
    if (*r->error)
        json_cstr(f, r->error);
    else
        fputs("null", f);
    fputs(", \"started_at\": ", f);
    json_time(f, r->has_started_at, r->started_at_sec, r->started_at_nsec);
    fputs(", \"finished_at\": ", f);
    json_time(f, r->has_finished_at, r->finished_at_sec, r->finished_at_nsec);
    fprintf(f,
            ", \"duration_ms\": %" PRId64 ", \"reason\": \"%s\", \"output_truncated\": %s"
            ", \"usage\": {\"peak_memory_bytes\": %" PRId64 ", \"cpu_time_ms\": %" PRId64 "}",
            r->duration_ms, pyexec_reason_name(r->reason), r->output_truncated ? "true" : "false",
            r->peak_memory_bytes, r->cpu_time_ms);
    fputs(", \"result\": ", f);
    if (r->result)
        json_cstr(f, r->result);
    else
        fputs("null", f);
    fputs(", \"error_type\": ", f);
    if (*r->error_type)
        json_cstr(f, r->error_type);
    else
        fputs("null", f);
    fprintf(f, ", \"error_line\": %" PRId32 ", \"error_message\": ", r->error_line);
    if (*r->error_type)
        json_cstr(f, r->error_message);
    else
        fputs("null", f);
    fputs("}\n", f);
}

int cli_exit_code(const pyexec_result *r) {
    switch (r->status) {
    case PYEXEC_STATUS_COMPLETED:
        if (r->reason == PYEXEC_REASON_TIMEOUT)
            return CLI_EXIT_TIMEOUT;
        if (r->exit_code < 0 || r->exit_code > 255)
            return CLI_EXIT_FAILED;
        return r->exit_code;
    case PYEXEC_STATUS_KILLED: return CLI_EXIT_KILLED;
    default: return CLI_EXIT_FAILED;
    }
}

void cli_format_bytes(char *buf, size_t size, int64_t n) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (n < 1024) {
        snprintf(buf, size, "%" PRId64 " bytes", n);
        return;
    }
    double v = (double)n / 1024;
    size_t u = 0;
    while (v >= 1024 && u + 1 < PX_ARRAY_SIZE(units)) {
        v /= 1024;
        u++;
    }
    /* One decimal, dropped when it is 0 ("1 MiB", "7.2 MiB"). */
    int tenths = (int)(v * 10 + 0.5);
    if (tenths % 10 == 0)
        snprintf(buf, size, "%d %s", tenths / 10, units[u]);
    else
        snprintf(buf, size, "%.1f %s", v, units[u]);
}

void cli_format_duration(char *buf, size_t size, int64_t ms) {
    if (ms < 1000)
        snprintf(buf, size, "%" PRId64 " ms", ms);
    else if (ms % 1000 == 0 || ms >= 100000)
        snprintf(buf, size, "%" PRId64 " s", (ms + 500) / 1000);
    else
        snprintf(buf, size, "%.1f s", (double)ms / 1000);
}

void cli_print_summary(const pyexec_result *r) {
    char a[32], b[32];
    fprintf(stderr, "Execution ID: %s\nStatus: %s\n", r->execution_id,
            pyexec_status_name(r->status));
    if (pyexec_status_is_terminal(r->status)) {
        fprintf(stderr, "Exit code: %" PRId32 "\nReason: %s\n", r->exit_code,
                pyexec_reason_name(r->reason));
        if (r->duration_ms > 0) {
            cli_format_duration(a, sizeof a, r->duration_ms);
            fprintf(stderr, "Duration: %s\n", a);
        }
        if (r->peak_memory_bytes || r->cpu_time_ms) {
            cli_format_bytes(a, sizeof a, r->peak_memory_bytes);
            cli_format_duration(b, sizeof b, r->cpu_time_ms);
            fprintf(stderr, "Peak memory: %s\nCPU time: %s\n", a, b);
        }
        if (r->output_truncated)
            fputs("Output: truncated\n", stderr);
    }
}

/* "SEGV" for 11; NULL for a number that is no signal. */
static const char *signal_abbrev(int n) {
    return n > 0 && n < 65 ? sigabbrev_np(n) : NULL;
}

void cli_print_abnormal(const pyexec_result *r, int64_t log_bytes, int32_t timeout_s) {
    const char *id = r->execution_id;
    char a[32];
    switch (r->status) {
    case PYEXEC_STATUS_FAILED:
        fprintf(stderr, "pyexec: execution %s failed (%s): %s\n", id, pyexec_reason_name(r->reason),
                *r->error ? r->error : "no reason given");
        return;
    case PYEXEC_STATUS_KILLED:
        if (r->reason == PYEXEC_REASON_CLIENT_CANCELLED)
            fprintf(stderr, "pyexec: execution %s was killed: its synchronous caller went away\n",
                    id);
        else
            fprintf(stderr, "pyexec: execution %s was killed\n", id);
        return;
    case PYEXEC_STATUS_COMPLETED: break;
    default: return;
    }
    switch (r->reason) {
    case PYEXEC_REASON_TIMEOUT:
        if (timeout_s > 0)
            snprintf(a, sizeof a, "%" PRId32 " s", timeout_s);
        else
            cli_format_duration(a, sizeof a, r->duration_ms);
        fprintf(stderr, "pyexec: execution %s timed out after %s\n", id, a);
        break;
    case PYEXEC_REASON_MEMORY_LIMIT:
        if (r->peak_memory_bytes > 0) {
            cli_format_bytes(a, sizeof a, r->peak_memory_bytes);
            fprintf(stderr, "pyexec: execution %s ran out of memory (peak %s)\n", id, a);
        } else {
            fprintf(stderr, "pyexec: execution %s ran out of memory\n", id);
        }
        break;
    case PYEXEC_REASON_OUTPUT_LIMIT:
        if (log_bytes > 0) {
            cli_format_bytes(a, sizeof a, log_bytes);
            fprintf(stderr,
                    "pyexec: execution %s was stopped: its output reached the server's "
                    "limit of %s\n",
                    id, a);
        } else {
            fprintf(stderr,
                    "pyexec: execution %s was stopped: its output reached the server's "
                    "limit\n",
                    id);
        }
        break;
    case PYEXEC_REASON_EXITED:
    case PYEXEC_REASON_UNSPECIFIED: {
        /* The bootstrap reports a death by signal N as 128+N. */
        const char *sig = r->exit_code > 128 ? signal_abbrev(r->exit_code - 128) : NULL;
        if (sig)
            fprintf(stderr, "pyexec: execution %s: the program was killed by SIG%s\n", id, sig);
        break;
    }
    default:
        fprintf(stderr, "pyexec: execution %s stopped: %s\n", id, pyexec_reason_name(r->reason));
        break;
    }
    if (r->output_truncated && r->reason != PYEXEC_REASON_OUTPUT_LIMIT)
        fprintf(stderr, "pyexec: execution %s: output truncated\n", id);
}

/* ---- following a stream ---------------------------------------------- */

typedef struct growbuf {
    uint8_t *data;
    size_t len, cap;
} growbuf;

static int growbuf_append(growbuf *b, const uint8_t *d, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *nd = realloc(b->data, cap);
        if (!nd)
            return -1;
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, d, n);
    b->len += n;
    return 0;
}

typedef struct follow_ctx {
    bool collect; /* --json or -q: keep the output instead of printing it */
    growbuf out, err;
    int64_t end; /* offset just past the last byte received */
} follow_ctx;

static int on_chunk(const pyexec_chunk *chunk, void *userdata) {
    follow_ctx *fc = userdata;
    bool is_err = chunk->stream == PYEXEC_STREAM_STDERR;
    fc->end = chunk->offset + (int64_t)chunk->len;
    if (fc->collect)
        return growbuf_append(is_err ? &fc->err : &fc->out, chunk->data, chunk->len);
    FILE *f = is_err ? stderr : stdout;
    if (fwrite(chunk->data, 1, chunk->len, f) != chunk->len || fflush(f) != 0)
        return -1;
    return 0;
}

int cli_follow(pyexec_client *c, const cli_opts *o, const char *id, int64_t offset) {
    follow_ctx fc = {.collect = o->json || o->quiet, .end = offset};
    pyexec_result *r = NULL;
    pyexec_error err = PYEXEC_ERROR_INIT;
    int rc;
    if (pyexec_stream_output(c, id, offset, on_chunk, &fc, &r, &err) < 0) {
        rc = cli_fail("follow", &err);
    } else {
        rc = cli_exit_code(r);
        if (o->json) {
            cli_json_result(stdout, r, fc.out.data ? fc.out.data : (const uint8_t *)"", fc.out.len,
                            fc.err.data ? fc.err.data : (const uint8_t *)"", fc.err.len);
        } else if (o->quiet) {
            if (r->status == PYEXEC_STATUS_COMPLETED && r->exit_code == 0 && fc.out.len)
                fwrite(fc.out.data, 1, fc.out.len, stdout);
        } else {
            cli_print_abnormal(r, fc.end, o->timeout_seconds);
            if (o->verbose)
                cli_print_summary(r);
        }
        fflush(stdout);
    }
    pyexec_result_free(r);
    free(fc.out.data);
    free(fc.err.data);
    return rc;
}
