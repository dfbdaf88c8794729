/*
 * The execution lifecycle: admission, queue, workers, output cap and
 * classification (see executor.h for the contract).
 *
 * DESIGN
 *
 * Each admitted job is on the executor's `jobs` list (which holds one
 * reference) until its on_done is about to be delivered. A job moves through
 *
 *     QUEUED --(worker pops it)--> RUNNING --(run() returned)--> DONE
 *        \----(killed while queued)--------------------------------^
 *
 * QUEUED -> RUNNING happens under ex->mu and job->mu together, and so does
 * QUEUED -> DONE by a kill, so a killed queued job is never started and gets
 * exactly one on_done (from the killing thread). RUNNING -> DONE happens on
 * the worker under job->mu when the back-end reports its result: early,
 * through px_sandbox_run_ended() while it still cleans up, or when run()
 * returns. A kill cause only counts if it was recorded before that, so a
 * Kill that arrives after the program ended by itself changes nothing. The
 * worker stays busy until run() returns, so max_concurrent bounds sandboxes
 * that still exist, not only results still due.
 *
 * Kill requests while RUNNING record the first cause (RPC, cancel,
 * shutdown) and make the job's wake fd (an eventfd created when the job
 * starts running, closed when it is DONE) readable. The output cap is an
 * executor-internal reason to end the job: it is kept apart from the cause
 * so that a later Kill RPC still takes precedence in classification.
 *
 * Locks: ex->mu (queue, list, counters) before job->mu (state, cause, fd).
 * No lock is held while a callback or the back-end's run() runs.
 *
 * Counters: `admitted` counts jobs from a successful submit until just
 * before their on_done is delivered (so a caller that saw on_done can submit
 * again at once); `finishing` counts on_done calls made outside the workers
 * (queued jobs killed by another thread), which shutdown waits for.
 */
#include "server/executor/executor.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server/base/cleanup.h"
#include "server/base/clock.h"
#include "server/base/log.h"

/* What px_sandbox_run_kill_requested() reports when only the output cap
 * asked for the end; never used for classification. */
#define KILL_FLAG_OUTPUT_CAP 0x100

typedef enum job_state {
    JOB_QUEUED = 0,
    JOB_RUNNING = 1,
    JOB_DONE = 2,
} job_state;

/* The back-end's view of a running job; embedded in px_job. */
struct px_sandbox_run {
    /* Nonzero once a kill was requested: the cause, or KILL_FLAG_OUTPUT_CAP.
     * Read by back-ends from any thread. */
    atomic_int kill_flag;
    int wake_fd; /* -1 outside RUNNING; guarded by job->mu for writers */
};

struct px_job {
    atomic_uint refs;
    px_executor *ex; /* borrowed; only used while the job is admitted */
    px_job_events events;

    pthread_mutex_t mu;
    job_state state;     /* guarded by mu (and ex->mu for QUEUED transitions) */
    px_kill_cause cause; /* first external cause; guarded by mu */
    bool output_capped;  /* the output cap asked for the end; guarded by mu */

    /* Owned by whoever runs the job (the worker, or the killer of a queued
     * job); freed as soon as the run ends. */
    px_job_spec *spec;

    /* Touched only by the run() thread. */
    uint64_t output_bytes;
    bool truncated;
    bool started;
    int64_t started_at_ms;

    px_sandbox_run run;

    /* ex->jobs list and FIFO queue links; guarded by ex->mu. */
    px_job *prev, *next;
    px_job *qnext;
};

struct px_executor {
    px_executor_config config;
    px_sandbox sandbox;

    pthread_mutex_t mu;
    pthread_cond_t work_cond; /* a job was queued, or stopping */
    pthread_cond_t idle_cond; /* admitted or finishing dropped */
    px_job *qhead, *qtail;    /* FIFO of QUEUED jobs */
    unsigned queued;          /* jobs in that FIFO */
    px_job *jobs;             /* every admitted job */
    unsigned admitted;
    unsigned finishing;
    bool stopping;

    pthread_mutex_t shutdown_mu; /* serialises px_executor_shutdown */
    bool shut_down;              /* workers joined; guarded by shutdown_mu */

    pthread_t *workers;
    unsigned n_workers;

    /* Metrics (config.metrics; all NULL without one). */
    px_counter *output_bytes[3]; /* by px_stream */
    px_counter *refused_full, *refused_stopping;
};

/* ---- job helpers ---- */

static px_job *job_of_run(const px_sandbox_run *run) {
    return container_of(run, px_job, run);
}

void px_job_ref(px_job *job) {
    atomic_fetch_add_explicit(&job->refs, 1, memory_order_relaxed);
}

void px_job_unref(px_job *job) {
    if (!job)
        return;
    if (atomic_fetch_sub_explicit(&job->refs, 1, memory_order_acq_rel) != 1)
        return;
    px_job_spec_free(job->spec);
    pthread_mutex_destroy(&job->mu);
    free(job);
}

/* Makes the wake fd readable. Caller holds job->mu. */
static void job_wake_locked(px_job *job) {
    if (job->run.wake_fd < 0)
        return;
    uint64_t one = 1;
    ssize_t w;
    do {
        w = write(job->run.wake_fd, &one, sizeof one);
    } while (w < 0 && errno == EINTR);
    /* EAGAIN means the counter is already nonzero: readable either way. */
}

/* Caller holds ex->mu. */
static void list_remove_locked(px_executor *ex, px_job *job) {
    if (job->prev)
        job->prev->next = job->next;
    else
        ex->jobs = job->next;
    if (job->next)
        job->next->prev = job->prev;
    job->prev = job->next = NULL;
}

/* Removes a QUEUED job from the FIFO. Caller holds ex->mu. */
static void queue_remove_locked(px_executor *ex, px_job *job) {
    px_job *prev = NULL;
    for (px_job *j = ex->qhead; j; prev = j, j = j->qnext) {
        if (j != job)
            continue;
        if (prev)
            prev->qnext = j->qnext;
        else
            ex->qhead = j->qnext;
        if (ex->qtail == j)
            ex->qtail = prev;
        j->qnext = NULL;
        ex->queued--;
        return;
    }
}

/* ---- classification (the order of docs/contract.md, "Reasons") ---- */

static void classify(px_kill_cause cause, bool output_capped, bool truncated, int64_t started_at_ms,
                     const px_sandbox_result *res, px_outcome *out) {
    memset(out, 0, sizeof *out);
    out->ran = res->ran && !res->lost;
    out->exit_code = out->ran ? res->exit_code : 0;
    out->output_truncated = truncated;
    out->peak_memory_bytes = res->peak_memory_bytes;
    out->cpu_time_ms = res->cpu_time_ms;
    out->started_at_ms = started_at_ms;
    out->error_code = PX_OK;
    out->py = res->py; /* borrowed: the caller keeps `res` until on_done returns */

    switch (cause) {
    case PX_KILL_RPC:
        out->status = PX_STATUS_KILLED;
        out->reason = PX_REASON_KILLED;
        goto done;
    case PX_KILL_CANCEL:
        out->status = PX_STATUS_KILLED;
        out->reason = PX_REASON_CLIENT_CANCELLED;
        goto done;
    case PX_KILL_SHUTDOWN:
        out->status = PX_STATUS_FAILED;
        out->reason = PX_REASON_SANDBOX_ERROR;
        out->error_code = PX_E_INTERNAL;
        snprintf(out->error, sizeof out->error, "killed by server shutdown");
        goto done;
    case PX_KILL_NONE: break;
    }

    if (!res->ran || res->lost) {
        out->status = PX_STATUS_FAILED;
        out->reason = res->lost ? PX_REASON_LOST : PX_REASON_SANDBOX_ERROR;
        out->error_code = res->error.code != PX_OK ? res->error.code : PX_E_INTERNAL;
        if (res->error.msg[0])
            snprintf(out->error, sizeof out->error, "%s", res->error.msg);
        else
            snprintf(out->error, sizeof out->error, "%s",
                     res->lost ? "sandbox lost" : "sandbox failed without a reason");
    } else if (res->timed_out) {
        out->status = PX_STATUS_COMPLETED;
        out->reason = PX_REASON_TIMEOUT;
    } else if (output_capped) {
        out->status = PX_STATUS_COMPLETED;
        out->reason = PX_REASON_OUTPUT_LIMIT;
    } else if (res->oom_killed) {
        out->status = PX_STATUS_COMPLETED;
        out->reason = PX_REASON_MEMORY_LIMIT;
    } else {
        out->status = PX_STATUS_COMPLETED;
        out->reason = PX_REASON_EXITED;
    }
done:
    out->finished_at_ms = px_now_unix_ms();
}

/* ---- the back-end's control object ---- */

void px_sandbox_run_started(px_sandbox_run *run) {
    px_job *job = job_of_run(run);
    if (job->started)
        return;
    job->started = true;
    job->started_at_ms = px_now_unix_ms();
    if (job->events.on_running)
        job->events.on_running(job->events.ud, job->started_at_ms);
}

void px_sandbox_run_output(px_sandbox_run *run, px_stream stream, const uint8_t *data, size_t len) {
    px_job *job = job_of_run(run);
    if (len == 0 || job->truncated)
        return;
    /* Output implies the program started; keep on_running before on_output. */
    if (!job->started)
        px_sandbox_run_started(run);

    uint64_t limit = job->ex->config.output_limit_bytes;
    size_t keep = len;
    if (limit > 0 && job->output_bytes + len > limit) {
        keep = (size_t)(limit - job->output_bytes);
        job->truncated = true;
    }
    job->output_bytes += keep;
    px_counter_add(job->ex->output_bytes[stream == PX_STREAM_STDERR ? 2 : 1], keep);
    if (keep > 0 && job->events.on_output)
        job->events.on_output(job->events.ud, stream, data, keep);

    if (job->truncated) {
        pthread_mutex_lock(&job->mu);
        job->output_capped = true;
        int expected = 0;
        atomic_compare_exchange_strong(&job->run.kill_flag, &expected, KILL_FLAG_OUTPUT_CAP);
        job_wake_locked(job);
        pthread_mutex_unlock(&job->mu);
    }
}

px_kill_cause px_sandbox_run_kill_requested(const px_sandbox_run *run) {
    return (px_kill_cause)atomic_load(&((px_sandbox_run *)run)->kill_flag);
}

int px_sandbox_run_wake_fd(const px_sandbox_run *run) {
    return run->wake_fd;
}

/* ---- ending a job ---- */

/* Delivers on_done for a job that has left `jobs` and drops the list's
 * reference. No lock held. */
static void deliver_done(px_job *job, const px_outcome *outcome) {
    px_metrics *m = job->ex->config.metrics;
    if (m) {
        char labels[96], *p;
        snprintf(labels, sizeof labels, "status=\"%s\",reason=\"%s\"",
                 px_status_name(outcome->status), px_reason_name(outcome->reason));
        for (p = labels; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        px_counter_add(px_metrics_counter(m, "pyexec_executions_total",
                                          "Executions ended, by status and reason.", labels),
                       1);
    }
    if (job->events.on_done)
        job->events.on_done(job->events.ud, outcome);
    px_job_unref(job);
}

/* Ends a job that was removed from the queue by a kill: it never ran.
 * Called with no lock held; the caller counted it in ex->finishing. */
static void finish_queued(px_executor *ex, px_job *job, px_kill_cause cause) {
    px_job_spec_free(TAKE_PTR(job->spec));
    px_sandbox_result res;
    memset(&res, 0, sizeof res);
    px_outcome outcome;
    classify(cause, false, false, 0, &res, &outcome);
    deliver_done(job, &outcome);

    pthread_mutex_lock(&ex->mu);
    ex->finishing--;
    pthread_cond_broadcast(&ex->idle_cond);
    pthread_mutex_unlock(&ex->mu);
}

/* Takes a QUEUED job out of the queue and the list. Caller holds ex->mu and
 * job->mu; afterwards it must call finish_queued() without locks. */
static void unqueue_locked(px_executor *ex, px_job *job, px_kill_cause cause) {
    queue_remove_locked(ex, job);
    list_remove_locked(ex, job);
    job->state = JOB_DONE;
    job->cause = cause;
    ex->admitted--;
    ex->finishing++;
    pthread_cond_broadcast(&ex->idle_cond);
}

void px_executor_kill(px_executor *ex, px_job *job, px_kill_cause cause) {
    if (!ex || !job || cause == PX_KILL_NONE || job->ex != ex)
        return;
    pthread_mutex_lock(&ex->mu);
    pthread_mutex_lock(&job->mu);
    bool was_queued = false;
    switch (job->state) {
    case JOB_QUEUED:
        unqueue_locked(ex, job, cause);
        was_queued = true;
        break;
    case JOB_RUNNING:
        if (job->cause == PX_KILL_NONE) {
            job->cause = cause;
            /* The cap may have set the flag first; report the real cause. */
            atomic_store(&job->run.kill_flag, (int)cause);
            job_wake_locked(job);
        }
        break;
    case JOB_DONE: break;
    }
    pthread_mutex_unlock(&job->mu);
    pthread_mutex_unlock(&ex->mu);
    if (was_queued)
        finish_queued(ex, job, cause);
}

/* Moves a RUNNING job to DONE with `res` and delivers its end, once: the
 * back-end may report the result early (px_sandbox_run_ended) and run()
 * returns later. Called on the job's worker with no lock held. */
static void job_end(px_executor *ex, px_job *job, const px_sandbox_result *res) {
    /* From here on kills have no effect. */
    pthread_mutex_lock(&job->mu);
    if (job->state == JOB_DONE) {
        pthread_mutex_unlock(&job->mu);
        return;
    }
    job->state = JOB_DONE;
    px_kill_cause cause = job->cause;
    bool capped = job->output_capped;
    if (job->run.wake_fd >= 0)
        close(job->run.wake_fd);
    job->run.wake_fd = -1;
    pthread_mutex_unlock(&job->mu);

    px_outcome outcome;
    classify(cause, capped, job->truncated, job->started ? job->started_at_ms : 0, res, &outcome);

    pthread_mutex_lock(&ex->mu);
    list_remove_locked(ex, job);
    ex->admitted--;
    pthread_cond_broadcast(&ex->idle_cond);
    pthread_mutex_unlock(&ex->mu);

    deliver_done(job, &outcome);
}

void px_sandbox_run_ended(px_sandbox_run *run, const px_sandbox_result *result) {
    px_job *job = job_of_run(run);
    job_end(job->ex, job, result);
}

/* Runs one popped job on the calling worker and delivers its end. The
 * worker holds a reference of its own until run() returns, which may be
 * after the end was delivered (and the list's reference dropped). */
static void run_job(px_executor *ex, px_job *job) {
    px_sandbox_result res;
    memset(&res, 0, sizeof res);
    px_job_ref(job);

    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) {
        px_error_set_errno(&res.error, PX_E_INTERNAL, errno, "executor: eventfd");
    } else {
        pthread_mutex_lock(&job->mu);
        job->run.wake_fd = fd;
        if (job->cause != PX_KILL_NONE)
            job_wake_locked(job);
        pthread_mutex_unlock(&job->mu);
        ex->sandbox.ops->run(ex->sandbox.self, job->spec, &job->run, &res);
    }

    px_job_spec_free(TAKE_PTR(job->spec));
    job_end(ex, job, &res);
    px_py_report_release(&res.py);
    px_job_unref(job);
}

static void *worker_main(void *arg) {
    px_executor *ex = arg;
    for (;;) {
        pthread_mutex_lock(&ex->mu);
        while (!ex->qhead && !ex->stopping)
            pthread_cond_wait(&ex->work_cond, &ex->mu);
        px_job *job = ex->qhead;
        if (!job) {
            pthread_mutex_unlock(&ex->mu);
            return NULL;
        }
        ex->qhead = job->qnext;
        if (!ex->qhead)
            ex->qtail = NULL;
        job->qnext = NULL;
        ex->queued--;
        pthread_mutex_lock(&job->mu);
        job->state = JOB_RUNNING;
        pthread_mutex_unlock(&job->mu);
        pthread_mutex_unlock(&ex->mu);

        run_job(ex, job);
    }
}

/* ---- metrics ---- */

static void collect(void *ud, px_metrics_writer *w) {
    px_executor *ex = ud;
    pthread_mutex_lock(&ex->mu);
    unsigned queued = ex->queued, admitted = ex->admitted;
    pthread_mutex_unlock(&ex->mu);
    px_metrics_write_gauge(w, "pyexec_executions_queued",
                           "Executions admitted and waiting for a worker.", NULL, queued);
    px_metrics_write_gauge(w, "pyexec_executions_running",
                           "Executions a worker is running (or ending).", NULL,
                           admitted > queued ? admitted - queued : 0);
    px_metrics_write_gauge(w, "pyexec_executions_max_running",
                           "Executions that may run at once (--max-concurrent).", NULL,
                           ex->config.max_concurrent);
}

static void init_metrics(px_executor *ex) {
    px_metrics *m = ex->config.metrics;
    if (!m)
        return;
    static const char out_help[] = "Output bytes the programs wrote (kept: the cap applied).";
    ex->output_bytes[1] = px_metrics_counter(m, "pyexec_output_bytes_total", out_help,
                                             "stream=\"stdout\"");
    ex->output_bytes[2] = px_metrics_counter(m, "pyexec_output_bytes_total", out_help,
                                             "stream=\"stderr\"");
    static const char ref_help[] = "Executions refused at admission, by why.";
    ex->refused_full = px_metrics_counter(m, "pyexec_admissions_refused_total", ref_help,
                                          "reason=\"queue_full\"");
    ex->refused_stopping = px_metrics_counter(m, "pyexec_admissions_refused_total", ref_help,
                                              "reason=\"shutting_down\"");
    if (px_metrics_add_collector(m, collect, ex) < 0)
        px_warn("executor: metrics: out of memory; queue depth is not reported");
}

/* ---- public API ---- */

px_executor *px_executor_new(const px_executor_config *config, px_sandbox sandbox, px_error *err) {
    if (!config || config->max_concurrent == 0 || !sandbox.ops || !sandbox.ops->run) {
        if (sandbox.ops && sandbox.ops->destroy)
            sandbox.ops->destroy(sandbox.self);
        px_error_set(err, PX_E_INVALID, "executor: max_concurrent must be at least 1");
        return NULL;
    }
    px_executor *ex = calloc(1, sizeof *ex);
    pthread_t *workers = calloc(config->max_concurrent, sizeof *workers);
    if (!ex || !workers) {
        free(ex);
        free(workers);
        if (sandbox.ops->destroy)
            sandbox.ops->destroy(sandbox.self);
        px_error_set(err, PX_E_INTERNAL, "executor: out of memory");
        return NULL;
    }
    ex->config = *config;
    ex->sandbox = sandbox;
    ex->workers = workers;
    pthread_mutex_init(&ex->mu, NULL);
    pthread_mutex_init(&ex->shutdown_mu, NULL);
    pthread_cond_init(&ex->work_cond, NULL);
    px_cond_init_mono(&ex->idle_cond);
    init_metrics(ex);

    for (unsigned i = 0; i < config->max_concurrent; i++) {
        int rc = pthread_create(&ex->workers[i], NULL, worker_main, ex);
        if (rc != 0) {
            px_error_set_errno(err, PX_E_INTERNAL, rc, "executor: start worker %u", i);
            px_executor_free(ex);
            return NULL;
        }
        ex->n_workers++;
    }
    return ex;
}

px_job *px_executor_submit(px_executor *ex, px_job_spec *spec, const px_job_events *events,
                           px_error *err) {
    if (!spec || !events) {
        px_job_spec_free(spec);
        px_error_set(err, PX_E_INVALID, "executor: submit without spec or events");
        return NULL;
    }
    px_job *job = calloc(1, sizeof *job);
    if (!job) {
        px_job_spec_free(spec);
        px_error_set(err, PX_E_INTERNAL, "executor: out of memory");
        return NULL;
    }
    atomic_init(&job->refs, 2); /* the caller's handle and the jobs list */
    job->ex = ex;
    job->events = *events;
    job->spec = spec;
    job->state = JOB_QUEUED;
    job->run.wake_fd = -1;
    atomic_init(&job->run.kill_flag, 0);
    pthread_mutex_init(&job->mu, NULL);

    pthread_mutex_lock(&ex->mu);
    if (ex->stopping) {
        pthread_mutex_unlock(&ex->mu);
        px_counter_add(ex->refused_stopping, 1);
        px_job_spec_free(TAKE_PTR(job->spec));
        free(job);
        px_error_set(err, PX_E_UNAVAILABLE, "executor: shutting down");
        return NULL;
    }
    uint64_t limit = (uint64_t)ex->config.max_concurrent + ex->config.max_queue;
    if (ex->admitted >= limit) {
        pthread_mutex_unlock(&ex->mu);
        px_counter_add(ex->refused_full, 1);
        px_job_spec_free(TAKE_PTR(job->spec));
        free(job);
        px_error_set(err, PX_E_EXHAUSTED,
                     "executor: %u executions running or queued (limit %u running + %u queued)",
                     ex->admitted, ex->config.max_concurrent, ex->config.max_queue);
        return NULL;
    }
    ex->admitted++;
    job->next = ex->jobs;
    if (ex->jobs)
        ex->jobs->prev = job;
    ex->jobs = job;
    if (ex->qtail)
        ex->qtail->qnext = job;
    else
        ex->qhead = job;
    ex->qtail = job;
    ex->queued++;
    pthread_cond_signal(&ex->work_cond);
    pthread_mutex_unlock(&ex->mu);
    return job;
}

int px_executor_ping(px_executor *ex, px_error *err) {
    if (!ex->sandbox.ops->ping)
        return 0;
    return ex->sandbox.ops->ping(ex->sandbox.self, err);
}

unsigned px_executor_active(px_executor *ex) {
    pthread_mutex_lock(&ex->mu);
    unsigned n = ex->admitted;
    pthread_mutex_unlock(&ex->mu);
    return n;
}

void px_executor_shutdown(px_executor *ex, int64_t grace_ms) {
    if (!ex)
        return;
    pthread_mutex_lock(&ex->shutdown_mu);
    if (ex->shut_down) {
        pthread_mutex_unlock(&ex->shutdown_mu);
        return;
    }

    pthread_mutex_lock(&ex->mu);
    ex->stopping = true;
    pthread_cond_broadcast(&ex->work_cond);

    /* Grace: admitted jobs may end on their own. */
    if (grace_ms > 0) {
        int64_t until = px_now_mono_ms() + grace_ms;
        while (ex->admitted > 0) {
            if (px_cond_wait_until(&ex->idle_cond, &ex->mu, until) == ETIMEDOUT)
                break;
        }
    }

    /* Kill the rest: queued ones end here, running ones are woken. */
    px_job *dequeued = NULL;
    for (px_job *job = ex->jobs, *next; job; job = next) {
        next = job->next;
        pthread_mutex_lock(&job->mu);
        if (job->state == JOB_QUEUED) {
            unqueue_locked(ex, job, PX_KILL_SHUTDOWN);
            job->qnext = dequeued;
            dequeued = job;
        } else if (job->state == JOB_RUNNING && job->cause == PX_KILL_NONE) {
            job->cause = PX_KILL_SHUTDOWN;
            atomic_store(&job->run.kill_flag, (int)PX_KILL_SHUTDOWN);
            job_wake_locked(job);
        }
        pthread_mutex_unlock(&job->mu);
    }
    pthread_mutex_unlock(&ex->mu);

    while (dequeued) {
        px_job *job = dequeued;
        dequeued = job->qnext;
        job->qnext = NULL;
        finish_queued(ex, job, PX_KILL_SHUTDOWN);
    }

    for (unsigned i = 0; i < ex->n_workers; i++)
        pthread_join(ex->workers[i], NULL);

    /* Queued jobs killed by other threads: wait for their on_done. */
    pthread_mutex_lock(&ex->mu);
    while (ex->finishing > 0)
        pthread_cond_wait(&ex->idle_cond, &ex->mu);
    pthread_mutex_unlock(&ex->mu);

    ex->shut_down = true;
    pthread_mutex_unlock(&ex->shutdown_mu);
}

void px_executor_free(px_executor *ex) {
    if (!ex)
        return;
    px_executor_shutdown(ex, 0);
    px_metrics_remove_collector(ex->config.metrics, collect, ex);
    if (ex->sandbox.ops->destroy)
        ex->sandbox.ops->destroy(ex->sandbox.self);
    pthread_cond_destroy(&ex->work_cond);
    pthread_cond_destroy(&ex->idle_cond);
    pthread_mutex_destroy(&ex->mu);
    pthread_mutex_destroy(&ex->shutdown_mu);
    free(ex->workers);
    free(ex);
}
