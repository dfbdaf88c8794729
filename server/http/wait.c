/*
 * A connection's thread waiting for a record: a control watcher signals an
 * eventfd on every change, and the thread poll()s that, the client's socket
 * (a hang-up ends the wait) and the server's stop eventfd. The watcher
 * callback does nothing but the write, so it never waits on the
 * connection and takes none of its locks.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server/http/door.h"

static void on_change(void *ud, px_record *r) {
    (void)r;
    uint64_t one = 1;
    /* EAGAIN: the counter is full, i.e. already readable; nothing lost. */
    (void)!write(*(int *)ud, &one, sizeof one);
}

int px_http_wait_terminal(px_http_req *req, px_record *record, px_error *err) {
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0)
        return px_error_set_errno(err, PX_E_INTERNAL, errno, "eventfd");
    /* Registered before the state is checked, so no change is missed; no
     * first check when the registration saw the record not ended (its end
     * will signal the eventfd). */
    bool live = false;
    px_watch *watch = px_record_watch_live(record, PX_WATCH_CONTROL, on_change, &efd, &live, err);
    if (!watch) {
        close(efd);
        return -1;
    }
    int end = -1;
    int client = px_http_client_fd(req->conn);
    for (bool check = !live;; check = true) {
        if (check) {
            px_record_view view;
            if (px_record_snapshot(record, false, &view, err) < 0)
                break;
            bool terminal = px_status_terminal(view.status);
            px_record_view_release(&view);
            if (terminal) {
                end = PX_WAIT_TERMINAL;
                break;
            }
        }
        struct pollfd fds[3] = {
            {.fd = efd, .events = POLLIN},
            {.fd = req->srv->stop_fd, .events = POLLIN},
            {.fd = client, .events = POLLRDHUP},
        };
        int n = poll(fds, client >= 0 ? 3 : 2, -1);
        if (n < 0 && errno != EINTR) {
            px_error_set_errno(err, PX_E_INTERNAL, errno, "poll");
            break;
        }
        if (fds[1].revents) {
            end = PX_WAIT_STOPPING;
            break;
        }
        if (client >= 0 && (fds[2].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            end = PX_WAIT_HUNG_UP;
            break;
        }
        uint64_t count;
        (void)!read(efd, &count, sizeof count);
    }
    px_record_unwatch(record, watch);
    close(efd);
    return end;
}
