/*
 * Logging (CONTRIBUTING.md, "Style, by example"): modules return errors,
 * the boundary logs them once. Lines name their subject (execution id,
 * container id) and quote user-controlled strings.
 *
 * Two formats (--log-format): text, "TIME LEVEL message" lines; json, one
 * object per line with the keys time, level, message, execution_id,
 * tenant, node, rpc, peer, code and duration_ms (docs/operations.md#logs).
 * The structured keys come from px_log_fields (px_log_with); a line without
 * an explicit execution id takes the one its message names ("execution
 * exe_…", the convention of every line about an execution).
 *
 * Format, node and sink are process-wide and set once by main() (or a
 * test) before threads start; the level may change at any time (SIGHUP);
 * px_log() itself is thread-safe. The default sink writes to stderr.
 */
#ifndef PYEXEC_BASE_LOG_H
#define PYEXEC_BASE_LOG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum px_log_level {
    PX_LOG_DEBUG = 0,
    PX_LOG_INFO = 1,
    PX_LOG_WARN = 2,
    PX_LOG_ERROR = 3,
} px_log_level;

typedef enum px_log_format {
    PX_LOG_TEXT = 0,
    PX_LOG_JSON = 1,
} px_log_format;

/* The structured part of a line. Any member may be NULL (or, for
 * duration_us, negative): not known. No member may hold a secret or a
 * request body: they are written as they are (JSON-escaped). */
typedef struct px_log_fields {
    const char *execution_id;
    const char *tenant;  /* the caller's tenant; "" where there are none */
    const char *rpc;     /* "Execute", or an HTTP door's "POST /api/v1/exec" */
    const char *peer;    /* "ipv4:127.0.0.1:40312" */
    const char *code;    /* a gRPC status name ("OK") or an HTTP status ("200") */
    int64_t duration_us; /* the call's duration */
} px_log_fields;

/* A sink receives each line as the stderr sink would write it (in the
 * process's format), without the trailing newline. It may be called from
 * any thread, concurrently. */
typedef void (*px_log_sink)(void *ud, px_log_level level, const char *line);

/* Installs `sink` (NULL restores the stderr sink). Call before threads start. */
void px_log_set_sink(px_log_sink sink, void *ud);

/* Messages below `level` are dropped before formatting. Any thread. */
void px_log_set_level(px_log_level level);
px_log_level px_log_get_level(void);

/* Call before threads start. */
void px_log_set_format(px_log_format format);

/* The "node" key of JSON lines (this server's name; copied, cut at 63
 * bytes). Call before threads start. */
void px_log_set_node(const char *node);

/* Parses "debug", "info", "warn" or "error". Returns 0, or -1 if unknown. */
int px_log_level_parse(const char *name, px_log_level *out);
const char *px_log_level_name(px_log_level level); /* "info" */

/* Parses "text" or "json". Returns 0, or -1 if unknown. */
int px_log_format_parse(const char *name, px_log_format *out);

void px_log(px_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* px_log with structured fields (`f` may be NULL). */
void px_log_with(px_log_level level, const px_log_fields *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats one line in `format`, without the trailing newline, into
 * out[0..n); a line that does not fit is cut inside its message, so a JSON
 * line stays one valid object (n >= PX_LOG_LINE_MIN). `sec`/`nsec`: the
 * CLOCK_REALTIME time of the event. Used by px_log; public for tests. */
#define PX_LOG_LINE_MIN 4096
void px_log_format_line(char *out, size_t n, px_log_format format, px_log_level level, int64_t sec,
                        long nsec, const px_log_fields *f, const char *message);

#define px_debug(...) px_log(PX_LOG_DEBUG, __VA_ARGS__)
#define px_info(...) px_log(PX_LOG_INFO, __VA_ARGS__)
#define px_warn(...) px_log(PX_LOG_WARN, __VA_ARGS__)
#define px_err(...) px_log(PX_LOG_ERROR, __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif
