/*
 * The service manager's readiness and watchdog protocol (systemd's
 * sd_notify(3), Type=notify): one datagram of "KEY=value" lines to the
 * unix socket $NOTIFY_SOCKET names ('@' first: the abstract namespace).
 *
 * Written here rather than linked from libsystemd: the protocol is a
 * single sendto() that systemd documents as stable, and pyexecd also runs
 * where there is no systemd (its container image, CI), so the library
 * would be a dependency for some twenty lines. Without $NOTIFY_SOCKET
 * every call does nothing. Thread-safe.
 */
#ifndef PYEXEC_BASE_NOTIFY_H
#define PYEXEC_BASE_NOTIFY_H

#include <stdint.h>

#include "server/base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sends `state` (e.g. "READY=1\nSTATUS=serving") to $NOTIFY_SOCKET.
 * Returns 1 when sent, 0 when there is no $NOTIFY_SOCKET, or -1 with `err`
 * set (PX_E_UNAVAILABLE naming the socket) when it cannot be sent. */
int px_notify(const char *state, px_error *err);

/* The watchdog interval the service manager asks for, in microseconds
 * ($WATCHDOG_USEC, when $WATCHDOG_PID is unset or this process), or 0:
 * no watchdog. Send "WATCHDOG=1" at least every half of it. */
int64_t px_notify_watchdog_usec(void);

#ifdef __cplusplus
}
#endif

#endif
