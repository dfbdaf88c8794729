/* Time helpers, and condition variables whose timed waits take a deadline
 * on the same clock. Thread-safe. */
#ifndef PYEXEC_BASE_CLOCK_H
#define PYEXEC_BASE_CLOCK_H

#include <pthread.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Milliseconds on CLOCK_MONOTONIC: for deadlines and durations. */
int64_t px_now_mono_ms(void);

/* Microseconds on CLOCK_MONOTONIC: for short durations (a call's). */
int64_t px_now_mono_us(void);

/* Milliseconds since the Unix epoch on CLOCK_REALTIME: for timestamps. */
int64_t px_now_unix_ms(void);

/* Initialises `cond` so that its timed waits measure CLOCK_MONOTONIC, the
 * clock of px_now_mono_ms(), and so never jump with the wall clock.
 * Returns 0 or an errno value, like pthread_cond_init. */
int px_cond_init_mono(pthread_cond_t *cond);

/* Waits on `cond` (initialised by px_cond_init_mono; the caller holds `mu`)
 * until it is signalled or the px_now_mono_ms() time `until_ms` passes.
 * Returns 0 when woken (perhaps spuriously: the caller rechecks its
 * condition), or ETIMEDOUT once that time has passed. */
int px_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t until_ms);

#ifdef __cplusplus
}
#endif

#endif
