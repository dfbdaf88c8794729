/*
 * Docker Engine API client over the unix socket; see docker_client.h.
 *
 * Plain calls use one fresh curl easy handle each (handles are not shared
 * between threads). The attach call does not use curl: it is a hijacked
 * connection that becomes a raw byte stream in both directions, which is
 * simplest to drive from the caller's own poll() loop on a plain socket.
 */
#include "server/executor/docker/docker_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "server/base/cleanup.h"
#include "server/base/clock.h"

struct px_docker_client {
    char *socket_path;
    int64_t timeout_ms;
    px_counter *unanswered;    /* may be NULL */
    px_counter *server_errors; /* may be NULL */
};

void px_docker_client_count_errors(px_docker_client *c, px_counter *unanswered,
                                   px_counter *server_errors) {
    c->unanswered = unanswered;
    c->server_errors = server_errors;
}

px_docker_client *px_docker_client_new(const char *socket_path, int64_t timeout_ms, px_error *err) {
    if (timeout_ms <= 0) {
        px_error_set(err, PX_E_INVALID, "docker client: timeout %lld ms is not positive",
                     (long long)timeout_ms);
        return NULL;
    }
    px_docker_client *c = calloc(1, sizeof *c);
    if (!c || !(c->socket_path = strdup(socket_path))) {
        free(c);
        px_error_set(err, PX_E_INTERNAL, "docker client: out of memory");
        return NULL;
    }
    c->timeout_ms = timeout_ms;
    return c;
}

void px_docker_client_free(px_docker_client *c) {
    if (!c)
        return;
    free(c->socket_path);
    free(c);
}

const char *px_docker_client_socket(const px_docker_client *c) {
    return c->socket_path;
}

void px_docker_response_release(px_docker_response *r) {
    if (!r)
        return;
    free(r->body);
    r->body = NULL;
    r->len = 0;
    r->status = 0;
}

typedef struct body_buf {
    char *data;
    size_t len, cap;
    bool overflow;
} body_buf;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud) {
    body_buf *b = ud;
    size_t n = size * nmemb;
    if (b->len + n > PX_DOCKER_MAX_RESPONSE) {
        b->overflow = true;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static void curl_easy_cleanupp(CURL **h) {
    if (*h)
        curl_easy_cleanup(*h);
}

static void curl_slist_free_allp(struct curl_slist **l) {
    if (*l)
        curl_slist_free_all(*l);
}

/* Sets the request's method and, for POST, its body (none is an empty
 * one). */
static void set_method(CURL *h, const char *method, const char *json_body) {
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, json_body ? json_body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(json_body ? strlen(json_body) : 0));
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
}

/* Sets `err` for a transfer that failed with `rc` (`errbuf`: curl's own
 * words, `overflow`: the body outgrew PX_DOCKER_MAX_RESPONSE). Returns -1. */
static int transfer_error(const px_docker_client *c, CURL *h, CURLcode rc, const char *errbuf,
                          bool overflow, const char *method, const char *path, int64_t timeout_ms,
                          px_error *err) {
    if (overflow)
        return px_error_set(err, PX_E_INTERNAL, "%s %s: response larger than %u bytes", method,
                            path, PX_DOCKER_MAX_RESPONSE);
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return px_error_set(err, PX_E_UNAVAILABLE,
                            "%s %s: Docker engine at %s did not answer within %lld ms", method,
                            path, c->socket_path, (long long)timeout_ms);
    /* curl words a failed connect to the socket as one to the URL's host
     * ("Failed to connect to localhost port 80"): say what the socket's
     * connect(2) said instead. */
    long os_errno = 0;
    if (rc == CURLE_COULDNT_CONNECT &&
        curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK && os_errno > 0)
        return px_error_set(err, PX_E_UNAVAILABLE, "%s %s: Docker engine at %s: connect: %s",
                            method, path, c->socket_path, strerror((int)os_errno));
    return px_error_set(err, PX_E_UNAVAILABLE, "%s %s: Docker engine at %s: %s", method, path,
                        c->socket_path, errbuf[0] ? errbuf : curl_easy_strerror(rc));
}

int px_docker_call(const px_docker_client *c, const char *method, const char *path,
                   const char *json_body, int64_t timeout_ms, px_docker_response *resp,
                   px_error *err) {
    memset(resp, 0, sizeof *resp);
    if (timeout_ms <= 0)
        timeout_ms = c->timeout_ms;
    __attribute__((cleanup(curl_easy_cleanupp))) CURL *h = curl_easy_init();
    __attribute__((cleanup(curl_slist_free_allp))) struct curl_slist *headers = NULL;
    _cleanup_free_ char *url = NULL;
    if (!h || asprintf(&url, "http://localhost/" PX_DOCKER_API_VERSION "%s", path) < 0) {
        url = NULL;
        return px_error_set(err, PX_E_INTERNAL, "%s %s: cannot set up the request", method, path);
    }
    body_buf body = {0};
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->socket_path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    headers = curl_slist_append(headers, "Expect:");
    if (json_body)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    set_method(h, method, json_body);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        free(body.data);
        px_counter_add(c->unanswered, 1);
        return transfer_error(c, h, rc, errbuf, body.overflow, method, path, timeout_ms, err);
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 500)
        px_counter_add(c->server_errors, 1);
    if (!body.data) {
        body.data = strdup("");
        if (!body.data)
            return px_error_set(err, PX_E_INTERNAL, "%s %s: out of memory", method, path);
    }
    resp->status = status;
    resp->body = body.data;
    resp->len = body.len;
    return 0;
}

int px_docker_response_error(const px_docker_response *r, const char *method, const char *path,
                             px_error *err) {
    px_code code = r->status == 404 ? PX_E_NOT_FOUND : PX_E_INTERNAL;
    const char *msg = r->body ? r->body : "";
    json_t *j = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
    const char *jm = j ? json_string_value(json_object_get(j, "message")) : NULL;
    if (jm)
        msg = jm;
    int len = (int)strcspn(msg, "\n");
    px_error_set(err, code, "%s %s: HTTP %ld: %.*s", method, path, r->status, len, msg);
    json_decref(j);
    return -1;
}

char *px_docker_escape(const char *s, const char *keep) {
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char ch = *p;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '.' || ch == '_' || ch == '~' || ch == '-' || (keep && strchr(keep, ch))) {
            *o++ = (char)ch;
        } else {
            *o++ = '%';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        }
    }
    *o = '\0';
    return out;
}

/* Waits until `fd` is ready for `events` or the deadline passes. Returns 1
 * if ready, 0 on timeout, -1 on error (errno set). */
static int wait_fd(int fd, short events, int64_t deadline_ms) {
    for (;;) {
        int64_t left = deadline_ms - px_now_mono_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

/* Connects a non-blocking socket to the engine within the deadline.
 * Returns the socket, or -1 with `err` set (`what` names the call). */
static int connect_engine(const px_docker_client *c, const char *what, int64_t deadline,
                          px_error *err) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(c->socket_path) >= sizeof sa.sun_path)
        return px_error_set(err, PX_E_UNAVAILABLE, "%s: socket path too long", what);
    memcpy(sa.sun_path, c->socket_path, strlen(c->socket_path) + 1);

    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return px_error_set_errno(err, PX_E_INTERNAL, errno, "%s: socket", what);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (errno != EAGAIN && errno != EINPROGRESS)
            return px_error_set_errno(err, PX_E_UNAVAILABLE, errno,
                                      "%s: cannot connect to docker engine at %s", what,
                                      c->socket_path);
        if (wait_fd(fd, POLLOUT, deadline) <= 0)
            return px_error_set(err, PX_E_UNAVAILABLE, "%s: cannot connect to %s in time", what,
                                c->socket_path);
    }
    return TAKE_FD(fd);
}

/* Sends all `len` bytes of `req` on the non-blocking `fd` within the
 * deadline. Returns 0, or -1 with `err` set. */
static int send_all(int fd, const char *req, size_t len, int64_t deadline, const char *what,
                    px_error *err) {
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if (wait_fd(fd, POLLOUT, deadline) <= 0)
                return px_error_set(err, PX_E_UNAVAILABLE, "%s: engine did not accept the request",
                                    what);
            continue;
        }
        return px_error_set_errno(err, PX_E_UNAVAILABLE, errno, "%s: send", what);
    }
    return 0;
}

/* Reads from `fd` into head[cap] (NUL-terminated) until the response head
 * ends ("\r\n\r\n") or the deadline passes. Stores the bytes read in
 * *have and returns the length of the head with its blank line, or -1 with
 * `err` set. Bytes after the head (stream data) stay in `head`. */
static ssize_t read_head(const px_docker_client *c, int fd, char *head, size_t cap, size_t *have,
                         int64_t deadline, const char *what, px_error *err) {
    char *end = NULL;
    *have = 0;
    while (!end) {
        if (*have == cap - 1)
            return px_error_set(err, PX_E_INTERNAL, "%s: response head too long", what);
        int w = wait_fd(fd, POLLIN, deadline);
        if (w == 0)
            return px_error_set(err, PX_E_UNAVAILABLE,
                                "%s: docker engine at %s did not answer within %lld ms", what,
                                c->socket_path, (long long)c->timeout_ms);
        if (w < 0)
            return px_error_set_errno(err, PX_E_UNAVAILABLE, errno, "%s: poll", what);
        ssize_t n = recv(fd, head + *have, cap - 1 - *have, 0);
        if (n == 0)
            return px_error_set(err, PX_E_UNAVAILABLE, "%s: connection closed by the engine", what);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return px_error_set_errno(err, PX_E_UNAVAILABLE, errno, "%s: recv", what);
        }
        *have += (size_t)n;
        head[*have] = '\0';
        end = memmem(head, *have, "\r\n\r\n", 4);
    }
    return end + 4 - head;
}

int px_docker_attach(const px_docker_client *c, const char *id, uint8_t **early, size_t *early_len,
                     px_error *err) {
    *early = NULL;
    *early_len = 0;
    _cleanup_free_ char *eid = px_docker_escape(id, NULL);
    char what[256];
    snprintf(what, sizeof what, "POST /containers/%s/attach", eid ? eid : "?");
    if (!eid)
        return px_error_set(err, PX_E_INTERNAL, "%s: out of memory", what);

    int64_t deadline = px_now_mono_ms() + c->timeout_ms;
    _cleanup_close_ int fd = connect_engine(c, what, deadline, err);
    if (fd < 0)
        return -1;

    _cleanup_free_ char *req = NULL;
    int req_len = asprintf(&req,
                           "POST /" PX_DOCKER_API_VERSION
                           "/containers/%s/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                           "Host: docker\r\n"
                           "Content-Length: 0\r\n"
                           "Connection: Upgrade\r\n"
                           "Upgrade: tcp\r\n"
                           "\r\n",
                           eid);
    if (req_len < 0) {
        req = NULL;
        return px_error_set(err, PX_E_INTERNAL, "%s: out of memory", what);
    }
    if (send_all(fd, req, (size_t)req_len, deadline, what, err) < 0)
        return -1;

    char head[8192];
    size_t have;
    ssize_t got = read_head(c, fd, head, sizeof head, &have, deadline, what, err);
    if (got < 0)
        return -1;
    size_t head_len = (size_t)got;
    int status = 0;
    if (sscanf(head, "HTTP/1.%*d %d", &status) != 1)
        return px_error_set(err, PX_E_INTERNAL, "%s: malformed response", what);
    if (status != 101 && status != 200) {
        px_docker_response r = {.status = status, .body = head + head_len, .len = have - head_len};
        return px_docker_response_error(&r, "POST", what + 5, err);
    }
    if (have > head_len) {
        *early = malloc(have - head_len);
        if (!*early)
            return px_error_set(err, PX_E_INTERNAL, "%s: out of memory", what);
        memcpy(*early, head + head_len, have - head_len);
        *early_len = have - head_len;
    }
    return TAKE_FD(fd);
}
