#include "server/base/clock.h"

#include <pthread.h>
#include <time.h>

static int64_t ms_of(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t px_now_mono_ms(void) {
    return ms_of(CLOCK_MONOTONIC);
}

int64_t px_now_mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t px_now_unix_ms(void) {
    return ms_of(CLOCK_REALTIME);
}

int px_cond_init_mono(pthread_cond_t *cond) {
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc != 0)
        return rc;
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cond, &ca);
    pthread_condattr_destroy(&ca);
    return rc;
}

int px_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t until_ms) {
    if (until_ms < 0)
        until_ms = 0;
    struct timespec ts = {.tv_sec = (time_t)(until_ms / 1000),
                          .tv_nsec = (long)(until_ms % 1000) * 1000000L};
    return pthread_cond_timedwait(cond, mu, &ts);
}
