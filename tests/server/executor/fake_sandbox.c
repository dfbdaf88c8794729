/* The scripted fake back-end; see fake_sandbox.h for the step language. */
#include "tests/server/executor/fake_sandbox.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/base/cleanup.h"
#include "server/base/clock.h"

#define FLOOD_CHUNK 4096
#define MAX_GATES 64
#define GATE_NAME_MAX 64

typedef struct gate {
    char name[GATE_NAME_MAX];
    bool open;
    unsigned arrived;
} gate;

struct fake_sandbox {
    atomic_uint refs;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* any change below */
    gate gates[MAX_GATES];
    size_t n_gates;
    unsigned runs;
    unsigned running;
    bool down;
};

static void die(const char *what) {
    fprintf(stderr, "fake_sandbox: %s\n", what);
    abort();
}

fake_sandbox *fake_sandbox_new(void) {
    fake_sandbox *f = calloc(1, sizeof *f);
    if (!f)
        die("out of memory");
    atomic_init(&f->refs, 1);
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cond, &ca);
    pthread_condattr_destroy(&ca);
    return f;
}

void fake_sandbox_unref(fake_sandbox *f) {
    if (!f || atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* Caller holds f->mu. */
static gate *gate_find_locked(fake_sandbox *f, const char *name) {
    for (size_t i = 0; i < f->n_gates; i++) {
        if (strcmp(f->gates[i].name, name) == 0)
            return &f->gates[i];
    }
    if (f->n_gates == MAX_GATES || strlen(name) >= GATE_NAME_MAX)
        die("too many gates or gate name too long");
    gate *g = &f->gates[f->n_gates++];
    snprintf(g->name, sizeof g->name, "%s", name);
    return g;
}

void fake_sandbox_open_gate(fake_sandbox *f, const char *name) {
    pthread_mutex_lock(&f->mu);
    gate_find_locked(f, name)->open = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

static struct timespec deadline_of(int64_t timeout_ms) {
    int64_t d = px_now_mono_ms() + timeout_ms;
    struct timespec ts = {.tv_sec = (time_t)(d / 1000), .tv_nsec = (long)(d % 1000) * 1000000L};
    return ts;
}

bool fake_sandbox_wait_gate(fake_sandbox *f, const char *name, unsigned n, int64_t timeout_ms) {
    struct timespec ts = deadline_of(timeout_ms);
    pthread_mutex_lock(&f->mu);
    bool ok = true;
    while (gate_find_locked(f, name)->arrived < n) {
        if (pthread_cond_timedwait(&f->cond, &f->mu, &ts) == ETIMEDOUT) {
            ok = gate_find_locked(f, name)->arrived >= n;
            break;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return ok;
}

bool fake_sandbox_wait_runs(fake_sandbox *f, unsigned n, int64_t timeout_ms) {
    struct timespec ts = deadline_of(timeout_ms);
    pthread_mutex_lock(&f->mu);
    bool ok = true;
    while (f->runs < n) {
        if (pthread_cond_timedwait(&f->cond, &f->mu, &ts) == ETIMEDOUT) {
            ok = f->runs >= n;
            break;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return ok;
}

unsigned fake_sandbox_runs(fake_sandbox *f) {
    pthread_mutex_lock(&f->mu);
    unsigned n = f->runs;
    pthread_mutex_unlock(&f->mu);
    return n;
}

unsigned fake_sandbox_running(fake_sandbox *f) {
    pthread_mutex_lock(&f->mu);
    unsigned n = f->running;
    pthread_mutex_unlock(&f->mu);
    return n;
}

void fake_sandbox_set_down(fake_sandbox *f, bool down) {
    pthread_mutex_lock(&f->mu);
    f->down = down;
    pthread_mutex_unlock(&f->mu);
}

/* ---- run ---- */

static bool has_prefix(const char *s, const char *prefix, const char **rest) {
    size_t n = strlen(prefix);
    if (strncmp(s, prefix, n) != 0)
        return false;
    *rest = s + n;
    return true;
}

static bool is_prestart_failure(const char *step) {
    return strcmp(step, "fail") == 0 || strcmp(step, "noimage") == 0 ||
           strcmp(step, "unavailable") == 0;
}

static void end_killed(px_sandbox_result *res) {
    res->ran = true;
    res->exit_code = 137;
}

static void wait_gate(fake_sandbox *f, const char *name) {
    pthread_mutex_lock(&f->mu);
    gate *g = gate_find_locked(f, name);
    g->arrived++;
    pthread_cond_broadcast(&f->cond);
    while (!gate_find_locked(f, name)->open)
        pthread_cond_wait(&f->cond, &f->mu);
    pthread_mutex_unlock(&f->mu);
}

/* Blocks until the wake fd is readable. */
static void wait_killed(px_sandbox_run *run) {
    struct pollfd p = {.fd = px_sandbox_run_wake_fd(run), .events = POLLIN};
    while (!px_sandbox_run_kill_requested(run)) {
        int rc = poll(&p, 1, -1);
        if (rc < 0 && errno != EINTR)
            die("poll on the wake fd failed");
    }
}

/* Runs one step. Returns true when the run has ended (res filled). */
static bool run_step(fake_sandbox *f, const px_job_spec *spec, px_sandbox_run *run,
                     const char *step, px_sandbox_result *res) {
    const char *arg;
    if (has_prefix(step, "print:", &arg)) {
        px_sandbox_run_output(run, PX_STREAM_STDOUT, (const uint8_t *)arg, strlen(arg));
    } else if (has_prefix(step, "stderr:", &arg)) {
        px_sandbox_run_output(run, PX_STREAM_STDERR, (const uint8_t *)arg, strlen(arg));
    } else if (strcmp(step, "stdin") == 0) {
        if (spec->stdin_len > 0)
            px_sandbox_run_output(run, PX_STREAM_STDOUT, spec->stdin_data, spec->stdin_len);
    } else if (has_prefix(step, "flood:", &arg)) {
        uint64_t n = strtoull(arg, NULL, 10);
        uint8_t buf[FLOOD_CHUNK];
        uint64_t sent = 0;
        while (sent < n) {
            if (px_sandbox_run_kill_requested(run)) {
                end_killed(res);
                return true;
            }
            size_t len = n - sent < FLOOD_CHUNK ? (size_t)(n - sent) : FLOOD_CHUNK;
            for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t)('a' + (sent + i) % 26);
            px_sandbox_run_output(run, PX_STREAM_STDOUT, buf, len);
            sent += len;
        }
    } else if (has_prefix(step, "result:", &arg)) {
        free(res->py.result);
        res->py.result = strdup(arg);
    } else if (has_prefix(step, "raised:", &arg)) {
        /* raised:<type>:<line>:<message> */
        const char *c1 = strchr(arg, ':');
        const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) {
            px_error_set(&res->error, PX_E_INVALID, "fake: bad step '%s'", step);
            return true;
        }
        px_py_report_release(&res->py);
        res->py.error_type = strndup(arg, (size_t)(c1 - arg));
        res->py.error_line = atoi(c1 + 1);
        res->py.error_message = strdup(c2 + 1);
    } else if (strcmp(step, "mode") == 0) {
        const char *m = spec->eval ? "eval\n" : "execute\n";
        px_sandbox_run_output(run, PX_STREAM_STDOUT, (const uint8_t *)m, strlen(m));
    } else if (strcmp(step, "image") == 0) {
        px_sandbox_run_output(run, PX_STREAM_STDOUT, (const uint8_t *)spec->image,
                              strlen(spec->image));
    } else if (has_prefix(step, "exit:", &arg)) {
        res->ran = true;
        res->exit_code = atoi(arg);
        return true;
    } else if (has_prefix(step, "ended:", &arg)) {
        px_sandbox_result early;
        memset(&early, 0, sizeof early);
        early.ran = true;
        early.exit_code = atoi(arg);
        early.cpu_time_ms = 2;
        px_sandbox_run_ended(run, &early);
        /* What run() returns later is ignored; make that visible. */
        res->ran = true;
        res->exit_code = 99;
    } else if (strcmp(step, "sleep") == 0) {
        wait_killed(run);
        end_killed(res);
        return true;
    } else if (strcmp(step, "gate") == 0) {
        wait_gate(f, "");
    } else if (has_prefix(step, "gate:", &arg)) {
        wait_gate(f, arg);
    } else if (strcmp(step, "timeout") == 0) {
        end_killed(res);
        res->timed_out = true;
        return true;
    } else if (strcmp(step, "oom") == 0) {
        end_killed(res);
        res->oom_killed = true;
        res->peak_memory_bytes = (int64_t)spec->memory_mb * 1024 * 1024;
        return true;
    } else if (strcmp(step, "fail") == 0) {
        px_error_set(&res->error, PX_E_INTERNAL, "fake: sandbox failure");
        return true;
    } else if (strcmp(step, "noimage") == 0) {
        px_error_set(&res->error, PX_E_PRECONDITION, "fake: image '%s' not found",
                     spec->image ? spec->image : "");
        return true;
    } else if (strcmp(step, "unavailable") == 0) {
        px_error_set(&res->error, PX_E_UNAVAILABLE, "fake: engine unreachable");
        return true;
    } else if (strcmp(step, "lost") == 0) {
        res->lost = true;
        px_error_set(&res->error, PX_E_INTERNAL, "fake: sandbox vanished");
        return true;
    } else {
        px_error_set(&res->error, PX_E_INVALID, "fake: unknown step '%s'", step);
        return true;
    }
    return false;
}

static void fake_run(void *self, const px_job_spec *spec, px_sandbox_run *run,
                     px_sandbox_result *res) {
    fake_sandbox *f = self;
    pthread_mutex_lock(&f->mu);
    f->runs++;
    f->running++;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);

    /* The steps: the script arguments, then FAKE_STEP=<step> variables
     * (Eval has no script arguments). */
    const char *steps[256];
    size_t n_steps = 0;
    for (size_t i = 0; i < spec->n_args && n_steps < PX_ARRAY_SIZE(steps); i++)
        steps[n_steps++] = spec->args[i];
    for (size_t i = 0; i < spec->n_env && n_steps < PX_ARRAY_SIZE(steps); i++) {
        if (strncmp(spec->env[i], "FAKE_STEP=", 10) == 0)
            steps[n_steps++] = spec->env[i] + 10;
    }
    if (n_steps == 0 || !is_prestart_failure(steps[0]))
        px_sandbox_run_started(run);
    bool ended = false;
    for (size_t i = 0; i < n_steps && !ended; i++)
        ended = run_step(f, spec, run, steps[i], res);
    if (!ended) {
        res->ran = true;
        res->exit_code = 0;
    }
    if (res->ran)
        res->cpu_time_ms = 1;

    pthread_mutex_lock(&f->mu);
    f->running--;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

static int fake_ping(void *self, px_error *err) {
    fake_sandbox *f = self;
    pthread_mutex_lock(&f->mu);
    bool down = f->down;
    pthread_mutex_unlock(&f->mu);
    if (down)
        return px_error_set(err, PX_E_UNAVAILABLE, "fake: engine is down");
    return 0;
}

static void fake_destroy(void *self) {
    fake_sandbox_unref(self);
}

static const px_sandbox_ops fake_ops = {
    .run = fake_run,
    .ping = fake_ping,
    .destroy = fake_destroy,
};

px_sandbox fake_sandbox_as_sandbox(fake_sandbox *f) {
    atomic_fetch_add(&f->refs, 1);
    px_sandbox s = {.ops = &fake_ops, .self = f};
    return s;
}

static char *xstrdup(const char *s) {
    char *d = strdup(s);
    if (!d)
        die("out of memory");
    return d;
}

px_job_spec *fake_sandbox_spec(const char *step, ...) {
    px_job_spec *spec = calloc(1, sizeof *spec);
    if (!spec)
        die("out of memory");
    snprintf(spec->execution_id, sizeof spec->execution_id, "exe_fake");
    spec->image = xstrdup("fake:image");
    spec->entrypoint = xstrdup("main.py");
    spec->timeout_s = 30;
    spec->memory_mb = 64;
    spec->disk_mb = 64;
    spec->cpu_shares = 1024;

    size_t n = 0;
    va_list ap;
    va_start(ap, step);
    for (const char *s = step; s; s = va_arg(ap, const char *))
        n++;
    va_end(ap);
    if (n == 0)
        return spec;
    spec->args = calloc(n, sizeof *spec->args);
    if (!spec->args)
        die("out of memory");
    va_start(ap, step);
    for (const char *s = step; s; s = va_arg(ap, const char *))
        spec->args[spec->n_args++] = xstrdup(s);
    va_end(ap);
    return spec;
}
