/*
 * The Docker sandbox back-end's warm pool (see sandbox_internal.h).
 *
 * Up to POOL_THREADS pool threads (so at most that many creations at once)
 * keep `pool_size` containers of the pool's profile created, attached and
 * started. A pooled container moves through:
 *   creating (counted in `creating`) -> ready (in `ready`, FIFO) ->
 *   taken by one run (owned by it, removed when the run ends)
 * or, from ready, to discarded (died while idle, update failed, destroy).
 * A pool thread creates while ready + creating < pool_size and otherwise
 * waits on pool_cond, which a take, destroy() and a ping that finds the
 * engine back signal. A failed creation sets retry_at (exponential backoff,
 * POOL_BACKOFF_MIN_MS..POOL_BACKOFF_MAX_MS) and the threads wait for it with
 * a timed condition wait: an absent engine costs one attempt per backoff
 * period, never a spin. destroy() stops the threads (a creation in flight
 * finishes, bounded by api_timeout_ms, and is removed), closes the ready
 * containers' stdin so their bootstraps exit, then removes them.
 *
 * A container-mode run's take holds back one refill (sb_pool_take_held)
 * until the run has ended and removed its container, or refill_hold_ms
 * after that take, whichever comes first: creating and starting a
 * container (runc, the engine's network sandbox, a Python start-up)
 * competes for the engine and the CPU with the run's end, whose answer
 * waits for the engine to handle the container's exit, and with a Kill.
 * Each hold is the take's own: the pool threads create while ready +
 * creating + the holds in force < pool_size, so a run's end or its hold's
 * expiry lets its refill start whatever later takes hold. A long run thus
 * delays its refill by refill_hold_ms at most, also under steady load.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/base/cleanup.h"
#include "server/base/clock.h"
#include "server/base/id.h"
#include "server/base/log.h"
#include "server/executor/docker/bootstrap.h"
#include "server/executor/docker/docker_client.h"
#include "server/executor/docker/sandbox_internal.h"

#define POOL_BACKOFF_MIN_MS 250
#define POOL_BACKOFF_MAX_MS 10000

/* ---- the warm pool: take, check, hand over ---- */

void sb_pool_count(docker_sandbox *sb, uint64_t *counter) {
    pthread_mutex_lock(&sb->pool_mu);
    (*counter)++;
    pthread_mutex_unlock(&sb->pool_mu);
}

/* Ends a pooled container that no run will use, or that a run has used:
 * closes its stdin (its bootstrap then exits by itself), removes it and
 * drops its name from the live set. NULL-safe. */
void sb_pooled_discard(docker_sandbox *sb, pooled *p) {
    if (!p)
        return;
    if (p->fd >= 0)
        close(p->fd);
    sb_remove_container(sb, p->id[0] ? p->id : p->name);
    sb_live_remove(sb, p->name);
    free(p);
}

/* Whether a spec can run in a pooled container: everything `update` cannot
 * change must match the pool's profile. */
bool sb_pool_fits(const docker_sandbox *sb, const px_job_spec *spec) {
    return sb->pool_size > 0 && !spec->network && spec->disk_mb == sb->pool_disk_mb &&
           strcmp(spec->image, sb->pool_image) == 0;
}

/* Takes the oldest ready container of `image` with /work of `disk_mb` MiB
 * (owned by the caller from now on), or returns NULL when none is ready.
 * Wakes the pool threads to refill; with `hold` (linked in when a container
 * is taken), their refill waits for sb_pool_release_hold or refill_hold_ms
 * (see the file comment). */
static pooled *take(docker_sandbox *sb, const char *image, int disk_mb, sb_pool_hold *hold) {
    pthread_mutex_lock(&sb->pool_mu);
    pooled *p = NULL;
    for (int i = 0; i < sb->n_ready && !p; i++) {
        if (strcmp(sb->ready[i]->image, image) != 0 || sb->ready[i]->disk_mb != disk_mb)
            continue;
        p = sb->ready[i];
        memmove(&sb->ready[i], &sb->ready[i + 1],
                (size_t)(sb->n_ready - i - 1) * sizeof *sb->ready);
        sb->n_ready--;
        if (hold) { /* appended: the list stays in take order */
            hold->until_ms = px_now_mono_ms() + sb->refill_hold_ms;
            hold->next = NULL;
            sb_pool_hold **tail = &sb->holds;
            while (*tail)
                tail = &(*tail)->next;
            *tail = hold;
        }
        pthread_cond_broadcast(&sb->pool_cond);
    }
    pthread_mutex_unlock(&sb->pool_mu);
    return p;
}

pooled *sb_pool_take(docker_sandbox *sb, const char *image, int disk_mb) {
    return take(sb, image, disk_mb, NULL);
}

pooled *sb_pool_take_held(docker_sandbox *sb, const char *image, int disk_mb, sb_pool_hold *hold) {
    return take(sb, image, disk_mb, hold);
}

void sb_pool_release_hold(docker_sandbox *sb, sb_pool_hold *hold) {
    pthread_mutex_lock(&sb->pool_mu);
    for (sb_pool_hold **h = &sb->holds; *h; h = &(*h)->next) {
        if (*h == hold) {
            *h = hold->next;
            pthread_cond_broadcast(&sb->pool_cond);
            break;
        }
    }
    pthread_mutex_unlock(&sb->pool_mu);
}

/* The holds in force at `now` (under pool_mu); *until_ms: when the
 * earliest of them expires (unchanged when there is none). The list is in
 * take order, so the expired ones come first. */
static int holds_in_force(const docker_sandbox *sb, int64_t now, int64_t *until_ms) {
    int n = 0;
    for (const sb_pool_hold *h = sb->holds; h; h = h->next) {
        if (h->until_ms <= now)
            continue;
        if (n++ == 0)
            *until_ms = h->until_ms;
    }
    return n;
}

/* A namespace-mode host after a clean execution: back to the ready list
 * (newest last), or removed when the list is full or the back-end stops. */
void sb_pool_return(docker_sandbox *sb, pooled *p) {
    pthread_mutex_lock(&sb->pool_mu);
    bool kept = !sb->pool_stopping && sb->n_ready < PX_DOCKER_POOL_MAX;
    if (kept) {
        sb->ready[sb->n_ready++] = p;
        pthread_cond_broadcast(&sb->pool_cond);
    }
    pthread_mutex_unlock(&sb->pool_mu);
    if (!kept)
        sb_pooled_discard(sb, p);
}

/* True while the idle bootstrap still waits: its stream has neither output
 * (an idle bootstrap prints nothing) nor an end (the container died). */
bool sb_pooled_idle(const pooled *p) {
    struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 0;
}

/* Gives pooled container `id` the spec's memory (Memory = MemorySwap, one
 * call, so the engine orders the cgroup v1 writes for a raise or a cut), CPU
 * weight and process limit. No call when they equal the ones it was created
 * with. Returns 0, or -1 with `err` set. */
int sb_pooled_set_limits(docker_sandbox *sb, pooled *p, const px_job_spec *spec, px_error *err) {
    const char *id = p->id;
    if (spec->memory_mb == p->memory_mb && spec->cpu_shares == p->cpu_shares)
        return 0;
    const json_int_t memory = (json_int_t)spec->memory_mb * 1024 * 1024;
    _cleanup_json_ json_t *b = json_pack("{s:I, s:I, s:I, s:I}", "Memory", memory, "MemorySwap",
                                         memory, "CpuShares", (json_int_t)spec->cpu_shares,
                                         "PidsLimit", (json_int_t)sb->pids_limit);
    _cleanup_free_ char *body = b ? json_dumps(b, JSON_COMPACT) : NULL;
    char path[512];
    if (!body)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    if (sb_container_path(path, sizeof path, id, "/update", err) < 0 ||
        sb_api(sb, "POST", path, body, 0, NULL, err) < 0)
        return px_error_wrap(err, "update pooled container '%.12s'", id);
    p->memory_mb = spec->memory_mb;
    p->cpu_shares = spec->cpu_shares;
    return 0;
}

/* Renames pooled container `p` to `name`, keeping it in the live set under
 * one name or the other throughout. Returns 0, or -1 with `err` set. */
int sb_pooled_rename(docker_sandbox *sb, pooled *p, const char *name, px_error *err) {
    if (strlen(name) >= sizeof p->name)
        return px_error_set(err, PX_E_INTERNAL, "container name too long");
    _cleanup_free_ char *eid = px_docker_escape(p->id, NULL);
    _cleanup_free_ char *ename = px_docker_escape(name, NULL);
    _cleanup_free_ char *path = NULL;
    if (!eid || !ename || asprintf(&path, "/containers/%s/rename?name=%s", eid, ename) < 0) {
        path = NULL;
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    }
    if (sb_live_add(sb, name, err) < 0)
        return -1;
    if (sb_api(sb, "POST", path, NULL, 0, NULL, err) < 0) {
        sb_live_remove(sb, name);
        return px_error_wrap(err, "rename pooled container '%.12s'", p->id);
    }
    sb_live_remove(sb, p->name);
    memcpy(p->name, name, strlen(name) + 1); /* fits: checked above */
    return 0;
}

/* The engine answers: a pool waiting out a backoff because it did not
 * may refill now rather than at the end of the backoff. */
void sb_pool_engine_back(docker_sandbox *sb) {
    pthread_mutex_lock(&sb->pool_mu);
    if (sb->down) {
        sb->down = false;
        sb->retry_at_ms = 0;
        pthread_cond_broadcast(&sb->pool_cond);
    }
    pthread_mutex_unlock(&sb->pool_mu);
}

/* ---- the warm pool: refill ---- */

/* Has the new host `p` start the sandbox of its first job now (host.py's
 * "prime"), so that a job taking a host from the pool does not wait for
 * bubblewrap and the bootstrap. Returns 0, or -1 with `err` set. */
static int prime_host(docker_sandbox *sb, const pooled *p, px_error *err) {
    _cleanup_free_ char *msg = NULL;
    size_t len = 0;
    if (px_host_prime(sb->ns_filter, sb->ns_filter_len, p->disk_mb, sb->tmp_mb, &msg, &len, err) <
        0)
        return -1;
    int64_t deadline = px_now_mono_ms() + sb->api_timeout_ms;
    for (size_t off = 0; off < len;) {
        ssize_t n = send(p->fd, msg + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        int64_t left = deadline - px_now_mono_ms();
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return px_error_set_errno(err, PX_E_UNAVAILABLE, errno, "prime host '%.12s'", p->id);
        struct pollfd pfd = {.fd = p->fd, .events = POLLOUT};
        if (left <= 0 || (poll(&pfd, 1, (int)left) < 0 && errno != EINTR))
            return px_error_set(err, PX_E_UNAVAILABLE, "prime host '%.12s': no room to write",
                                p->id);
    }
    return 0;
}

/* Makes one pooled container for `profile` (image, memory, disk, CPU; in
 * the namespace mode a host, primed): name live, create, attach, start.
 * Returns it (owned by the caller), or NULL with `err` set and nothing left
 * behind. */
pooled *sb_pooled_create(docker_sandbox *sb, const px_job_spec *profile, px_error *err) {
    char hex[17];
    if (px_random_hex(hex, 8, err) < 0)
        return NULL;
    pooled *p = calloc(1, sizeof *p);
    if (!p) {
        px_error_set(err, PX_E_INTERNAL, "out of memory");
        return NULL;
    }
    p->fd = -1;
    snprintf(p->name, sizeof p->name, "pyexec-%s-%s", sb->ns ? "host" : "pool", hex);
    snprintf(p->image, sizeof p->image, "%s", profile->image);
    p->memory_mb = profile->memory_mb;
    p->cpu_shares = profile->cpu_shares;
    p->disk_mb = profile->disk_mb;
    if (sb_live_add(sb, p->name, err) < 0) {
        free(p);
        return NULL;
    }
    if (sb_create_container(sb, profile, true, p->name, p->id, sizeof p->id, err) < 0) {
        px_error_wrap(err, "create container");
        sb_pooled_discard(sb, p); /* by name: the engine may have made it */
        return NULL;
    }
    _cleanup_free_ uint8_t *early = NULL;
    size_t early_len = 0;
    p->fd = px_docker_attach(sb->client, p->id, &early, &early_len, err);
    if (p->fd < 0) {
        px_error_wrap(err, "attach to container '%.12s'", p->id);
    } else if (early_len > 0) {
        px_error_set(err, PX_E_INTERNAL, "container '%.12s' spoke before its start", p->id);
    } else if (sb_start_container(sb, p->id, err) < 0) {
        px_error_wrap(err, "start container '%.12s'", p->id);
    } else if (!sb->ns || prime_host(sb, p, err) == 0) {
        return p;
    }
    sb_pooled_discard(sb, p);
    return NULL;
}

/* Makes one pooled container of the pool's profile: image present (never
 * pulled here: a pull may take long, and a cold run pulls), then
 * sb_pooled_create(). */
static pooled *pool_create(docker_sandbox *sb, px_error *err) {
    if (!sb_image_cached(sb, sb->pool_image)) {
        int present = sb_image_present(sb, sb->pool_image, err);
        if (present <= 0) {
            if (present == 0)
                px_error_set(err, PX_E_PRECONDITION, "image '%s' is not present", sb->pool_image);
            return NULL;
        }
        sb_image_remember(sb, sb->pool_image);
    }
    px_job_spec profile = {
        .image = sb->pool_image,
        .network = false,
        .memory_mb = sb->pool_memory_mb,
        .disk_mb = sb->pool_disk_mb,
        .cpu_shares = sb->pool_cpu_shares,
    };
    return sb_pooled_create(sb, &profile, err);
}

/* A pool thread; see the file comment. */
void *sb_pool_main(void *arg) {
    docker_sandbox *sb = arg;
    pthread_mutex_lock(&sb->pool_mu);
    while (!sb->pool_stopping) {
        if (sb->retry_at_ms > px_now_mono_ms()) {
            px_cond_wait_until(&sb->pool_cond, &sb->pool_mu, sb->retry_at_ms);
            continue;
        }
        if (sb->n_ready + sb->creating >= sb->pool_size) {
            pthread_cond_wait(&sb->pool_cond, &sb->pool_mu);
            continue;
        }
        int64_t hold_until = 0;
        if (sb->n_ready + sb->creating + holds_in_force(sb, px_now_mono_ms(), &hold_until) >=
            sb->pool_size) {
            px_cond_wait_until(&sb->pool_cond, &sb->pool_mu, hold_until);
            continue;
        }
        sb->creating++;
        pthread_mutex_unlock(&sb->pool_mu);

        px_error err = PX_ERROR_INIT;
        pooled *p = pool_create(sb, &err);

        pthread_mutex_lock(&sb->pool_mu);
        sb->creating--;
        bool recovered = false, first_failure = false;
        if (p) {
            recovered = sb->backoff_ms > 0;
            sb->backoff_ms = 0;
            sb->retry_at_ms = 0;
            sb->down = false;
            if (!sb->pool_stopping) {
                sb->ready[sb->n_ready++] = TAKE_PTR(p);
                sb->stats.created++;
            }
        } else {
            sb->stats.failures++;
            first_failure = sb->backoff_ms == 0;
            sb->backoff_ms = first_failure                              ? POOL_BACKOFF_MIN_MS
                             : 2 * sb->backoff_ms > POOL_BACKOFF_MAX_MS ? POOL_BACKOFF_MAX_MS
                                                                        : 2 * sb->backoff_ms;
            sb->retry_at_ms = px_now_mono_ms() + sb->backoff_ms;
            sb->down = err.code == PX_E_UNAVAILABLE;
        }
        pthread_cond_broadcast(&sb->pool_cond); /* pool_wait() and the other thread */
        pthread_mutex_unlock(&sb->pool_mu);

        sb_pooled_discard(sb, p); /* made while destroy() began: nobody will take it */
        if (first_failure)
            px_warn("docker: warm pool: %s (retrying with backoff)", err.msg);
        if (recovered)
            px_info("docker: warm pool: creating containers again");
        pthread_mutex_lock(&sb->pool_mu);
    }
    pthread_mutex_unlock(&sb->pool_mu);
    return NULL;
}

void px_docker_sandbox_pool_stats(const px_sandbox *s, px_docker_pool_stats *out) {
    docker_sandbox *sb = s->self;
    pthread_mutex_lock(&sb->pool_mu);
    *out = sb->stats;
    out->size = sb->pool_size;
    out->ready = sb->n_ready;
    out->creating = sb->creating;
    pthread_mutex_unlock(&sb->pool_mu);
}

int px_docker_sandbox_pool_wait(const px_sandbox *s, int ready, int64_t timeout_ms) {
    docker_sandbox *sb = s->self;
    if (ready > sb->pool_size)
        return -1;
    int64_t until = px_now_mono_ms() + timeout_ms;
    pthread_mutex_lock(&sb->pool_mu);
    while (sb->n_ready < ready && !sb->pool_stopping &&
           px_cond_wait_until(&sb->pool_cond, &sb->pool_mu, until) != ETIMEDOUT) {
    }
    bool reached = sb->n_ready >= ready;
    pthread_mutex_unlock(&sb->pool_mu);
    return reached ? 0 : -1;
}

/* Removes every ready pooled container. First all their stdins close, so
 * the bootstraps exit in parallel; then each is removed. Only after
 * stop_threads(). */
void sb_pool_drain(docker_sandbox *sb) {
    for (int i = 0; i < sb->n_ready; i++) {
        close(sb->ready[i]->fd);
        sb->ready[i]->fd = -1;
    }
    while (sb->n_ready > 0)
        sb_pooled_discard(sb, sb->ready[--sb->n_ready]);
}
