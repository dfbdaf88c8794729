/*
 * Logging (CONTRIBUTING.md, "Style, by example"): modules return errors,
 * the boundary logs them once. Lines name their subject (execution id,
 * container id) and quote user-controlled strings.
 *
 * The sink and level are process-wide and set once by main() (or a test)
 * before threads start; px_log() itself is thread-safe. The default sink
 * writes "LEVEL message" lines to stderr.
 */
#ifndef PYEXEC_BASE_LOG_H
#define PYEXEC_BASE_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum px_log_level {
    PX_LOG_DEBUG = 0,
    PX_LOG_INFO = 1,
    PX_LOG_WARN = 2,
    PX_LOG_ERROR = 3,
} px_log_level;

/* A sink receives one formatted line without a trailing newline. It may be
 * called from any thread, concurrently. */
typedef void (*px_log_sink)(void *ud, px_log_level level, const char *line);

/* Installs `sink` (NULL restores the stderr sink). Call before threads start. */
void px_log_set_sink(px_log_sink sink, void *ud);

/* Messages below `level` are dropped before formatting. */
void px_log_set_level(px_log_level level);

/* Parses "debug", "info", "warn" or "error". Returns 0, or -1 if unknown. */
int px_log_level_parse(const char *name, px_log_level *out);

void px_log(px_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define px_debug(...) px_log(PX_LOG_DEBUG, __VA_ARGS__)
#define px_info(...) px_log(PX_LOG_INFO, __VA_ARGS__)
#define px_warn(...) px_log(PX_LOG_WARN, __VA_ARGS__)
#define px_err(...) px_log(PX_LOG_ERROR, __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif
