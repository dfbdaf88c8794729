/*
 * Metrics in the Prometheus text exposition format (version 0.0.4), for
 * the HTTP door's /metrics.
 *
 * A px_metrics is a registry owned by the daemon (or a test) and handed to
 * the modules that count; every function here accepts a NULL registry,
 * counter or histogram and then does nothing, so a module used without one
 * (a unit test, a tool) needs no special case.
 *
 * Counters and histograms are looked up once (px_metrics_counter /
 * px_metrics_histogram take the registry's mutex and return a pointer
 * that stays valid until px_metrics_free) and then updated lock-free with
 * atomics from any thread. Values known only by asking their owner (queue
 * depth, pool size) come from collectors, called while rendering.
 *
 * Labels are given preformatted, e.g. `status="completed",reason="exited"`;
 * their values must not need escaping (they are the code's own names).
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef PYEXEC_BASE_METRICS_H
#define PYEXEC_BASE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "server/base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct px_metrics px_metrics;
typedef struct px_counter px_counter;
typedef struct px_histogram px_histogram;
typedef struct px_metrics_writer px_metrics_writer;

/* Returns a new, empty registry, or NULL out of memory. */
px_metrics *px_metrics_new(void);

/* Frees the registry and every counter and histogram it handed out.
 * NULL-safe. */
void px_metrics_free(px_metrics *m);

/* The counter `name`{`labels`} (labels may be NULL or ""), made on first
 * use; every call with the same name must give the same help. Returns
 * NULL if `m` is NULL or out of memory (the counter then counts nothing). */
px_counter *px_metrics_counter(px_metrics *m, const char *name, const char *help,
                               const char *labels);

/* Adds `n`. Lock-free. NULL-safe. */
void px_counter_add(px_counter *c, uint64_t n);

/* The histogram `name`{`labels`} with the upper bounds `bounds[0..n)`
 * (ascending; +Inf is implicit), which must outlive the registry. */
px_histogram *px_metrics_histogram(px_metrics *m, const char *name, const char *help,
                                   const char *labels, const double *bounds, size_t n);

/* Records one observation. Lock-free. NULL-safe. */
void px_histogram_observe(px_histogram *h, double value);

/* Bucket bounds for latencies in seconds, 1 ms to 60 s. */
extern const double px_metrics_latency_bounds[];
extern const size_t px_metrics_latency_bounds_n;

/* A collector writes values it reads from their owner when rendering, with
 * px_metrics_write_gauge. It runs on the rendering thread and must not
 * block for long nor call back into the registry. */
typedef void (*px_metrics_collect_fn)(void *ud, px_metrics_writer *w);

/* Adds a collector; `ud` must stay valid until px_metrics_remove_collector
 * or px_metrics_free. Returns 0, or -1 out of memory. NULL-safe (0). */
int px_metrics_add_collector(px_metrics *m, px_metrics_collect_fn fn, void *ud);

/* Removes it; once this returns it is not running and never runs again. */
void px_metrics_remove_collector(px_metrics *m, px_metrics_collect_fn fn, void *ud);

/* From a collector: the gauge `name`{`labels`} = value. Successive calls
 * for one name form one family (write them together). */
void px_metrics_write_gauge(px_metrics_writer *w, const char *name, const char *help,
                            const char *labels, double value);

/* From a collector: a counter its owner keeps, `name`{`labels`} = value. */
void px_metrics_write_counter(px_metrics_writer *w, const char *name, const char *help,
                              const char *labels, uint64_t value);

/* Renders every metric as Prometheus text into a malloc'd string (*out,
 * *len; the caller frees it). Returns 0, or -1 with `err` (PX_E_INTERNAL)
 * out of memory. */
int px_metrics_render(px_metrics *m, char **out, size_t *len, px_error *err);

#ifdef __cplusplus
}
#endif

#endif
