#include "server/base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/base/cleanup.h"

int px_file_read(const char *what, const char *path, size_t max_bytes, char **out, size_t *len,
                 px_error *err) {
    *out = NULL;
    *len = 0;
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return px_error_set_errno(err, PX_E_INVALID, errno, "%s '%s'", what, path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return px_error_set_errno(err, PX_E_INVALID, errno, "%s '%s'", what, path);
    if (!S_ISREG(st.st_mode))
        return px_error_set(err, PX_E_INVALID, "%s '%s': not a regular file", what, path);
    _cleanup_free_ char *buf = malloc(max_bytes + 1);
    if (!buf)
        return px_error_set(err, PX_E_INTERNAL, "%s '%s': out of memory", what, path);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, max_bytes + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return px_error_set_errno(err, PX_E_INVALID, errno, "%s '%s'", what, path);
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max_bytes)
            return px_error_set(err, PX_E_INVALID, "%s '%s': larger than %zu bytes", what, path,
                                max_bytes);
    }
    buf[n] = '\0';
    *len = n;
    *out = TAKE_PTR(buf);
    return 0;
}
