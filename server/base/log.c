#include "server/base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The one piece of process-wide state: written by main() before threads. */
static px_log_sink log_sink;
static void *log_ud;
static atomic_int log_level = PX_LOG_INFO;

static const char *level_name(px_log_level level) {
    switch (level) {
    case PX_LOG_DEBUG: return "DEBUG";
    case PX_LOG_INFO: return "INFO";
    case PX_LOG_WARN: return "WARN";
    case PX_LOG_ERROR: return "ERROR";
    }
    return "?";
}

void px_log_set_sink(px_log_sink sink, void *ud) {
    log_sink = sink;
    log_ud = ud;
}

void px_log_set_level(px_log_level level) {
    atomic_store(&log_level, (int)level);
}

int px_log_level_parse(const char *name, px_log_level *out) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (px_log_level)i;
            return 0;
        }
    }
    return -1;
}

void px_log(px_log_level level, const char *fmt, ...) {
    if ((int)level < atomic_load(&log_level))
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (log_sink) {
        log_sink(log_ud, level, line);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s\n", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
            level_name(level), line);
}
