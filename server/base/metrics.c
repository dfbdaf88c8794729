#include "server/base/metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double px_metrics_latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                            0.5,   1,      2.5,   5,    10,    30,   60};
const size_t px_metrics_latency_bounds_n = sizeof px_metrics_latency_bounds /
                                           sizeof px_metrics_latency_bounds[0];

typedef enum kind { KIND_COUNTER, KIND_HISTOGRAM } kind;

struct px_counter {
    _Atomic uint64_t value;
};

struct px_histogram {
    const double *bounds;
    size_t n;
    _Atomic uint64_t *buckets; /* n + 1, the last for +Inf; not cumulative */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_bits; /* a double's bits, updated by compare-and-swap */
};

typedef struct series {
    char *labels;
    px_counter counter;
    px_histogram histogram;
    struct series *next;
} series;

typedef struct family {
    char *name;
    char *help;
    kind kind;
    series *head, *tail;
    struct family *next;
} family;

typedef struct collector {
    px_metrics_collect_fn fn;
    void *ud;
    struct collector *next;
} collector;

/* `mu` guards the lists (families, their series, collectors) and is held
 * while rendering, so a removed collector is not running. Values are
 * atomics, read and written without it. */
struct px_metrics {
    pthread_mutex_t mu;
    family *families, *last;
    collector *collectors;
};

struct px_metrics_writer {
    FILE *f;
    char last[128]; /* the family written last */
};

px_metrics *px_metrics_new(void) {
    px_metrics *m = calloc(1, sizeof *m);
    if (m)
        pthread_mutex_init(&m->mu, NULL);
    return m;
}

void px_metrics_free(px_metrics *m) {
    if (!m)
        return;
    for (family *f = m->families, *fn; f; f = fn) {
        fn = f->next;
        for (series *s = f->head, *sn; s; s = sn) {
            sn = s->next;
            free(s->histogram.buckets);
            free(s->labels);
            free(s);
        }
        free(f->name);
        free(f->help);
        free(f);
    }
    for (collector *c = m->collectors, *cn; c; c = cn) {
        cn = c->next;
        free(c);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* The series name{labels} of `k`, made if new. Called with m->mu held. */
static series *find(px_metrics *m, const char *name, const char *help, kind k, const char *labels) {
    if (!labels)
        labels = "";
    family *f = m->families;
    while (f && strcmp(f->name, name) != 0)
        f = f->next;
    if (!f) {
        f = calloc(1, sizeof *f);
        if (!f)
            return NULL;
        f->name = strdup(name);
        f->help = strdup(help);
        f->kind = k;
        if (!f->name || !f->help) {
            free(f->name);
            free(f->help);
            free(f);
            return NULL;
        }
        if (m->last)
            m->last->next = f;
        else
            m->families = f;
        m->last = f;
    }
    if (f->kind != k)
        return NULL;
    for (series *s = f->head; s; s = s->next)
        if (strcmp(s->labels, labels) == 0)
            return s;
    series *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->labels = strdup(labels);
    if (!s->labels) {
        free(s);
        return NULL;
    }
    if (f->tail)
        f->tail->next = s;
    else
        f->head = s;
    f->tail = s;
    return s;
}

px_counter *px_metrics_counter(px_metrics *m, const char *name, const char *help,
                               const char *labels) {
    if (!m)
        return NULL;
    pthread_mutex_lock(&m->mu);
    series *s = find(m, name, help, KIND_COUNTER, labels);
    pthread_mutex_unlock(&m->mu);
    return s ? &s->counter : NULL;
}

void px_counter_add(px_counter *c, uint64_t n) {
    if (c)
        atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

px_histogram *px_metrics_histogram(px_metrics *m, const char *name, const char *help,
                                   const char *labels, const double *bounds, size_t n) {
    if (!m)
        return NULL;
    pthread_mutex_lock(&m->mu);
    series *s = find(m, name, help, KIND_HISTOGRAM, labels);
    if (s && !s->histogram.buckets) {
        s->histogram.buckets = calloc(n + 1, sizeof *s->histogram.buckets);
        s->histogram.bounds = bounds;
        s->histogram.n = s->histogram.buckets ? n : 0;
    }
    pthread_mutex_unlock(&m->mu);
    return s && s->histogram.buckets ? &s->histogram : NULL;
}

void px_histogram_observe(px_histogram *h, double value) {
    if (!h)
        return;
    size_t i = 0;
    while (i < h->n && value > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed), new_bits;
    do {
        double sum;
        memcpy(&sum, &old, sizeof sum);
        sum += value;
        memcpy(&new_bits, &sum, sizeof sum);
    } while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old, new_bits,
                                                    memory_order_relaxed, memory_order_relaxed));
    /* Counted last: a scrape never sees more observations than buckets hold. */
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

int px_metrics_add_collector(px_metrics *m, px_metrics_collect_fn fn, void *ud) {
    if (!m)
        return 0;
    collector *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    c->fn = fn;
    c->ud = ud;
    pthread_mutex_lock(&m->mu);
    c->next = m->collectors;
    m->collectors = c;
    pthread_mutex_unlock(&m->mu);
    return 0;
}

void px_metrics_remove_collector(px_metrics *m, px_metrics_collect_fn fn, void *ud) {
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    for (collector **p = &m->collectors; *p; p = &(*p)->next) {
        if ((*p)->fn == fn && (*p)->ud == ud) {
            collector *c = *p;
            *p = c->next;
            free(c);
            break;
        }
    }
    pthread_mutex_unlock(&m->mu);
}

static void head(px_metrics_writer *w, const char *name, const char *help, const char *type) {
    if (strcmp(w->last, name) == 0)
        return;
    snprintf(w->last, sizeof w->last, "%s", name);
    fprintf(w->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{labels} or name{labels,extra} or name{extra} or name */
static void series_name(FILE *f, const char *name, const char *suffix, const char *labels,
                        const char *extra) {
    bool l = labels && labels[0], e = extra && extra[0];
    fprintf(f, "%s%s%s%s%s%s%s", name, suffix, l || e ? "{" : "", l ? labels : "",
            l && e ? "," : "", e ? extra : "", l || e ? "}" : "");
}

void px_metrics_write_gauge(px_metrics_writer *w, const char *name, const char *help,
                            const char *labels, double value) {
    head(w, name, help, "gauge");
    series_name(w->f, name, "", labels, NULL);
    fprintf(w->f, " %.17g\n", value);
}

void px_metrics_write_counter(px_metrics_writer *w, const char *name, const char *help,
                              const char *labels, uint64_t value) {
    head(w, name, help, "counter");
    series_name(w->f, name, "", labels, NULL);
    fprintf(w->f, " %" PRIu64 "\n", value);
}

static void render_histogram(FILE *f, const char *name, const series *s) {
    const px_histogram *h = &s->histogram;
    uint64_t count = atomic_load_explicit(&h->count, memory_order_relaxed);
    uint64_t cumulative = 0;
    char le[64];
    for (size_t i = 0; i <= h->n; i++) {
        cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < h->n)
            snprintf(le, sizeof le, "le=\"%g\"", h->bounds[i]);
        else
            snprintf(le, sizeof le, "le=\"+Inf\"");
        series_name(f, name, "_bucket", s->labels, le);
        fprintf(f, " %" PRIu64 "\n", cumulative);
    }
    uint64_t bits = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
    double sum;
    memcpy(&sum, &bits, sizeof sum);
    series_name(f, name, "_sum", s->labels, NULL);
    fprintf(f, " %.17g\n", sum);
    series_name(f, name, "_count", s->labels, NULL);
    /* The buckets may have moved on since `count` was read; +Inf is at least it. */
    fprintf(f, " %" PRIu64 "\n", cumulative > count ? cumulative : count);
}

int px_metrics_render(px_metrics *m, char **out, size_t *len, px_error *err) {
    *out = NULL;
    *len = 0;
    px_metrics_writer w = {0};
    w.f = open_memstream(out, len);
    if (!w.f)
        return px_error_set(err, PX_E_INTERNAL, "metrics: out of memory");
    if (m) {
        pthread_mutex_lock(&m->mu);
        for (const family *f = m->families; f; f = f->next) {
            head(&w, f->name, f->help, f->kind == KIND_COUNTER ? "counter" : "histogram");
            for (const series *s = f->head; s; s = s->next) {
                if (f->kind == KIND_HISTOGRAM) {
                    render_histogram(w.f, f->name, s);
                    continue;
                }
                series_name(w.f, f->name, "", s->labels, NULL);
                fprintf(w.f, " %" PRIu64 "\n",
                        atomic_load_explicit(&s->counter.value, memory_order_relaxed));
            }
        }
        for (const collector *c = m->collectors; c; c = c->next) {
            w.last[0] = '\0';
            c->fn(c->ud, &w);
        }
        pthread_mutex_unlock(&m->mu);
    }
    if (fclose(w.f) != 0 || !*out) {
        free(*out);
        *out = NULL;
        return px_error_set(err, PX_E_INTERNAL, "metrics: out of memory");
    }
    return 0;
}
