#include "server/base/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "server/base/cleanup.h"

int px_notify(const char *state, px_error *err) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !path[0])
        return 0;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof addr.sun_path)
        return px_error_set(err, PX_E_UNAVAILABLE,
                            "NOTIFY_SOCKET '%.100s' is neither an absolute path nor '@' and a name "
                            "of at most %zu bytes",
                            path, sizeof addr.sun_path - 1);
    memcpy(addr.sun_path, path, len);
    if (path[0] == '@')
        addr.sun_path[0] = '\0'; /* the abstract namespace */
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return px_error_set_errno(err, PX_E_UNAVAILABLE, errno, "NOTIFY_SOCKET: socket");
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr, alen) < 0)
        return px_error_set_errno(err, PX_E_UNAVAILABLE, errno, "NOTIFY_SOCKET '%.100s'", path);
    return 1;
}

int64_t px_notify_watchdog_usec(void) {
    const char *pid = getenv("WATCHDOG_PID");
    if (pid && pid[0]) {
        char *end = NULL;
        long long p = strtoll(pid, &end, 10);
        if (*end != '\0' || p != (long long)getpid())
            return 0;
    }
    const char *usec = getenv("WATCHDOG_USEC");
    if (!usec || !usec[0])
        return 0;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(usec, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0)
        return 0;
    return (int64_t)v;
}
