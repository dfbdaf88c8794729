/* Time helpers. Thread-safe. */
#ifndef PYEXEC_BASE_CLOCK_H
#define PYEXEC_BASE_CLOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Milliseconds on CLOCK_MONOTONIC: for deadlines and durations. */
int64_t px_now_mono_ms(void);

/* Milliseconds since the Unix epoch on CLOCK_REALTIME: for timestamps. */
int64_t px_now_unix_ms(void);

#ifdef __cplusplus
}
#endif

#endif
