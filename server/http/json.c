/*
 * The door's answers as JSON: an ExecutionResult in the original service's
 * shape (docs/api.md, "The HTTP door"), and output bytes as text.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "server/http/door.h"

int px_http_buf_append(px_http_buf *b, const char *data, size_t len) {
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p)
            return -1;
        b->data = p;
        b->cap = cap;
    }
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

void px_http_buf_release(px_http_buf *b) {
    free(b->data);
    *b = (px_http_buf){0};
}

/* At p[0..n): the length of the well-formed UTF-8 sequence there (> 0),
 * or minus the length of the maximal ill-formed subpart to replace with
 * one U+FFFD (Unicode 15, section 3.9, "U+FFFD Substitution of Maximal
 * Subparts", as Python's and the browsers' decoders do): the lead byte and
 * the continuation bytes that could still have completed it. Well-formed
 * means RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF. */
static ptrdiff_t utf8_seq(const uint8_t *p, size_t n) {
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF; /* the bounds of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return -1;
    if (n < 2 || p[1] < lo || p[1] > hi)
        return -1;
    for (size_t i = 2; i < len; i++)
        if (i >= n || (p[i] & 0xC0) != 0x80)
            return -(ptrdiff_t)i;
    return (ptrdiff_t)len;
}

int px_http_utf8_append(px_http_buf *out, const uint8_t *data, size_t len) {
    static const char replacement[] = "\xEF\xBF\xBD";
    size_t run = 0; /* start of the current well-formed run */
    size_t i = 0;
    while (i < len) {
        ptrdiff_t k = utf8_seq(data + i, len - i);
        if (k > 0) {
            i += (size_t)k;
            continue;
        }
        if (px_http_buf_append(out, (const char *)data + run, i - run) < 0 ||
            px_http_buf_append(out, replacement, 3) < 0)
            return -1;
        i += (size_t)-k;
        run = i;
    }
    return px_http_buf_append(out, (const char *)data + run, i - run);
}

static const char *const status_names[] = {
    [PX_STATUS_PENDING] = "pending",     [PX_STATUS_RUNNING] = "running",
    [PX_STATUS_COMPLETED] = "completed", [PX_STATUS_FAILED] = "failed",
    [PX_STATUS_KILLED] = "killed",
};

static const char *const reason_names[] = {
    [PX_REASON_EXITED] = "exited",
    [PX_REASON_TIMEOUT] = "timeout",
    [PX_REASON_MEMORY_LIMIT] = "memory_limit",
    [PX_REASON_OUTPUT_LIMIT] = "output_limit",
    [PX_REASON_KILLED] = "killed",
    [PX_REASON_CLIENT_CANCELLED] = "client_cancelled",
    [PX_REASON_LOST] = "lost",
    [PX_REASON_SANDBOX_ERROR] = "sandbox_error",
};

const char *px_http_status_name(px_status s) {
    if ((unsigned)s < sizeof status_names / sizeof status_names[0])
        return status_names[s];
    return NULL;
}

const char *px_http_reason_name(px_reason r) {
    if ((unsigned)r < sizeof reason_names / sizeof reason_names[0])
        return reason_names[r];
    return NULL;
}

int px_http_status_parse(const char *name, px_status *out) {
    for (size_t i = 0; i < sizeof status_names / sizeof status_names[0]; i++) {
        if (status_names[i] && strcasecmp(status_names[i], name) == 0) {
            *out = (px_status)i;
            return 0;
        }
    }
    return -1;
}

/* "2026-12-01T13:40:00.123Z" */
static json_t *rfc3339(int64_t unix_ms) {
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm))
        return json_null();
    char buf[40];
    size_t k = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, sizeof buf - k, ".%03dZ", (int)(unix_ms % 1000));
    return json_string(buf);
}

static json_t *text(const uint8_t *data, size_t len) {
    px_http_buf b = {0};
    if (px_http_utf8_append(&b, data, len) < 0) {
        px_http_buf_release(&b);
        return NULL;
    }
    json_t *s = json_stringn(b.data ? b.data : "", b.len);
    px_http_buf_release(&b);
    return s;
}

static json_t *or_null(const char *s) {
    return s ? json_string(s) : json_null();
}

json_t *px_http_result_json(const px_record_view *v, bool with_output) {
    const px_outcome *o = &v->outcome;
    bool terminal = px_status_terminal(v->status);
    json_t *r = json_object();
    if (!r)
        return NULL;
    int bad = 0;
    bad |= json_object_set_new(r, "execution_id", json_string(v->id));
    bad |= json_object_set_new(r, "status", or_null(px_http_status_name(v->status)));
    bad |= json_object_set_new(r, "stdout",
                               with_output ? text(v->stdout_data, v->stdout_len) : json_null());
    bad |= json_object_set_new(r, "stderr",
                               with_output ? text(v->stderr_data, v->stderr_len) : json_null());
    bad |= json_object_set_new(r, "exit_code", terminal ? json_integer(o->exit_code) : json_null());
    bad |= json_object_set_new(
        r, "error",
        terminal && o->error[0] ? text((const uint8_t *)o->error, strlen(o->error)) : json_null());
    bad |= json_object_set_new(r, "started_at",
                               o->started_at_ms > 0 ? rfc3339(o->started_at_ms) : json_null());
    bad |= json_object_set_new(r, "finished_at",
                               terminal && o->finished_at_ms > 0 ? rfc3339(o->finished_at_ms)
                                                                 : json_null());
    bool timed = terminal && o->started_at_ms > 0 && o->finished_at_ms >= o->started_at_ms;
    bad |= json_object_set_new(
        r, "duration_ms", timed ? json_integer(o->finished_at_ms - o->started_at_ms) : json_null());
    bad |= json_object_set_new(r, "reason",
                               terminal ? or_null(px_http_reason_name(o->reason)) : json_null());
    bad |= json_object_set_new(r, "output_truncated",
                               json_boolean(terminal && o->output_truncated));
    json_t *usage = terminal ? json_pack("{sI sI}", "peak_memory_bytes",
                                         (json_int_t)o->peak_memory_bytes, "cpu_time_ms",
                                         (json_int_t)o->cpu_time_ms)
                             : json_null();
    bad |= json_object_set_new(r, "usage", usage);
    /* Eval's report (null for Execute, and for an Eval that did not report). */
    const px_py_report *py = &o->py;
    bool reported = terminal && (py->result || py->error_type);
    bad |= json_object_set_new(r, "result",
                               terminal && py->result
                                   ? text((const uint8_t *)py->result, strlen(py->result))
                                   : json_null());
    bad |= json_object_set_new(r, "error_type",
                               terminal && py->error_type
                                   ? text((const uint8_t *)py->error_type, strlen(py->error_type))
                                   : json_null());
    bad |= json_object_set_new(r, "error_line",
                               reported && py->error_type && py->error_line > 0
                                   ? json_integer(py->error_line)
                                   : json_null());
    bad |= json_object_set_new(
        r, "error_message",
        terminal && py->error_message
            ? text((const uint8_t *)py->error_message, strlen(py->error_message))
            : json_null());
    if (bad) {
        json_decref(r);
        return NULL;
    }
    return r;
}
