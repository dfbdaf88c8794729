#include "server/base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "server/base/id.h"

/* Process-wide state: the sink, format and node are written by main()
 * before threads; the level at any time. */
static px_log_sink log_sink;
static void *log_ud;
static atomic_int log_level = PX_LOG_INFO;
static px_log_format log_format = PX_LOG_TEXT;
static char log_node[64];

/* The most bytes of a formatted message, and of a whole line. */
#define MESSAGE_MAX 2048
#define LINE_MAX_BYTES (MESSAGE_MAX * 6 + 2048)
/* The most output bytes one structured field may take in a JSON line. */
#define FIELD_MAX 200

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static const char *level_upper(px_log_level level) {
    switch (level) {
    case PX_LOG_DEBUG: return "DEBUG";
    case PX_LOG_INFO: return "INFO";
    case PX_LOG_WARN: return "WARN";
    case PX_LOG_ERROR: return "ERROR";
    }
    return "?";
}

const char *px_log_level_name(px_log_level level) {
    return (unsigned)level < 4 ? level_names[level] : "?";
}

void px_log_set_sink(px_log_sink sink, void *ud) {
    log_sink = sink;
    log_ud = ud;
}

void px_log_set_level(px_log_level level) {
    atomic_store(&log_level, (int)level);
}

px_log_level px_log_get_level(void) {
    return (px_log_level)atomic_load(&log_level);
}

void px_log_set_format(px_log_format format) {
    log_format = format;
}

void px_log_set_node(const char *node) {
    snprintf(log_node, sizeof log_node, "%s", node ? node : "");
}

int px_log_level_parse(const char *name, px_log_level *out) {
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (px_log_level)i;
            return 0;
        }
    }
    return -1;
}

int px_log_format_parse(const char *name, px_log_format *out) {
    if (strcmp(name, "text") == 0)
        *out = PX_LOG_TEXT;
    else if (strcmp(name, "json") == 0)
        *out = PX_LOG_JSON;
    else
        return -1;
    return 0;
}

/* An output buffer that never overflows: appends stop at `cap`. */
typedef struct outbuf {
    char *p;
    size_t len, cap; /* cap excludes the NUL */
} outbuf;

static bool put(outbuf *o, const char *s, size_t n) {
    if (n > o->cap - o->len)
        return false;
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
    return true;
}

static bool puts_(outbuf *o, const char *s) {
    return put(o, s, strlen(s));
}

/* Appends `s` as the inside of a JSON string, at most `limit` bytes of it
 * (whole escapes only). Every byte outside printable ASCII is escaped
 * (\u00XX), so the line is ASCII, valid JSON and valid UTF-8 whatever the
 * message held. */
static void put_json_chars(outbuf *o, const char *s, size_t limit) {
    size_t end = o->len + limit < o->cap ? o->len + limit : o->cap;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        size_t n;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c == '\n') {
            memcpy(esc, "\\n", 2);
            n = 2;
        } else if (c == '\t') {
            memcpy(esc, "\\t", 2);
            n = 2;
        } else if (c < 0x20 || c >= 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            n = 6;
        } else {
            esc[0] = (char)c;
            n = 1;
        }
        if (o->len + n > end)
            return;
        put(o, esc, n);
    }
}

/* The execution id a message names ("execution exe_…"), or NULL. */
static const char *id_in_message(const char *message, char out[PX_ID_LEN + 1]) {
    static const char needle[] = "execution exe_";
    for (const char *p = strstr(message, needle); p; p = strstr(p + 1, needle)) {
        const char *id = p + sizeof needle - 5; /* at "exe_" */
        if (strlen(id) >= PX_ID_LEN && px_id_valid(id, PX_ID_LEN)) {
            memcpy(out, id, PX_ID_LEN);
            out[PX_ID_LEN] = '\0';
            return out;
        }
    }
    return NULL;
}

static void put_field(outbuf *o, const char *key, const char *value) {
    char head[32];
    snprintf(head, sizeof head, ",\"%s\":\"", key);
    puts_(o, head);
    put_json_chars(o, value ? value : "", FIELD_MAX);
    puts_(o, "\"");
}

void px_log_format_line(char *out, size_t n, px_log_format format, px_log_level level, int64_t sec,
                        long nsec, const px_log_fields *f, const char *message) {
    if (n == 0)
        return;
    out[0] = '\0';
    struct tm tm;
    time_t t = (time_t)sec;
    gmtime_r(&t, &tm);
    char when[96];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, nsec / 1000000);
    if (format == PX_LOG_TEXT) {
        snprintf(out, n, "%s %-5s %s", when, level_upper(level), message);
        return;
    }
    static const px_log_fields none = {.duration_us = -1};
    if (!f)
        f = &none;
    char idbuf[PX_ID_LEN + 1];
    const char *id = f->execution_id ? f->execution_id : id_in_message(message, idbuf);

    /* The keys after the message first, so the message gets what is left. */
    char tail_buf[8 * (FIELD_MAX + 32)];
    outbuf tail = {tail_buf, 0, sizeof tail_buf - 1};
    tail_buf[0] = '\0';
    put_field(&tail, "execution_id", id);
    put_field(&tail, "tenant", f->tenant);
    put_field(&tail, "node", log_node);
    put_field(&tail, "rpc", f->rpc);
    put_field(&tail, "peer", f->peer);
    put_field(&tail, "code", f->code);
    char dur[48];
    if (f->duration_us >= 0)
        snprintf(dur, sizeof dur, ",\"duration_ms\":%lld.%03lld}",
                 (long long)(f->duration_us / 1000), (long long)(f->duration_us % 1000));
    else
        snprintf(dur, sizeof dur, ",\"duration_ms\":null}");
    puts_(&tail, dur);

    outbuf o = {out, 0, n - 1};
    puts_(&o, "{\"time\":\"");
    puts_(&o, when);
    puts_(&o, "\",\"level\":\"");
    puts_(&o, px_log_level_name(level));
    puts_(&o, "\",\"message\":\"");
    size_t room = o.cap - o.len > tail.len + 1 ? o.cap - o.len - tail.len - 1 : 0;
    put_json_chars(&o, message, room);
    puts_(&o, "\"");
    puts_(&o, tail_buf);
}

static void emit(px_log_level level, const px_log_fields *f, const char *fmt, va_list ap) {
    char message[MESSAGE_MAX];
    vsnprintf(message, sizeof message, fmt, ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char line[LINE_MAX_BYTES];
    px_log_format_line(line, sizeof line, log_format, level, (int64_t)ts.tv_sec, ts.tv_nsec, f,
                       message);
    if (log_sink) {
        log_sink(log_ud, level, line);
        return;
    }
    /* One write per line (stdio's stream lock), so threads never interleave. */
    fprintf(stderr, "%s\n", line);
}

void px_log(px_log_level level, const char *fmt, ...) {
    if ((int)level < atomic_load(&log_level))
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(level, NULL, fmt, ap);
    va_end(ap);
}

void px_log_with(px_log_level level, const px_log_fields *f, const char *fmt, ...) {
    if ((int)level < atomic_load(&log_level))
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(level, f, fmt, ap);
    va_end(ap);
}
