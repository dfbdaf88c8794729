/*
 * GET /api/v1/executions/{id}/output?offset=N as Server-Sent Events: every
 * chunk of the output log from byte N (replay), then live output, then one
 * `result` event (the ExecutionResult without stdout/stderr), then the end
 * of the stream. Each chunk event is
 *
 *   event: stdout            (or stderr)
 *   id: 1234                 (the log offset just past this chunk)
 *   data: <the bytes as text, one data line per line>
 *
 * so a client that reconnects with Last-Event-ID (which wins over ?offset)
 * resumes exactly where it stopped: nothing lost, nothing twice.
 *
 * The stream is a libmicrohttpd content reader on the connection's thread:
 * it copies at most one event (READ_MAX log bytes) out of the log at a
 * time and blocks in poll() while there is nothing new (a reader watcher
 * signals an eventfd on each change). A slow client only slows its own
 * thread: the program appends to the log whatever the readers do. While
 * idle it sends a comment line every KEEPALIVE_MS (at most half the idle
 * timeout), so that a client that stopped reading is closed by the idle
 * timeout and a live one is not.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server/base/id.h"
#include "server/base/quote.h"
#include "server/http/door.h"

#define READ_MAX 16384 /* log bytes per event */
#define BLOCK 65536    /* libmicrohttpd's buffer for one read */
#define KEEPALIVE_MS 15000

typedef struct sse {
    px_record *record; /* one reference */
    px_watch *watch;
    int efd;     /* signalled by the watcher */
    int stop_fd; /* the server's */
    int client;  /* the client's socket, -1 if unknown */
    int keepalive_ms;
    int64_t offset;  /* next log byte to send */
    bool done;       /* the last event is formatted */
    px_http_buf out; /* formatted, not yet handed over */
    size_t out_off;
} sse;

static void on_change(void *ud, px_record *r) {
    (void)r;
    uint64_t one = 1;
    (void)!write(((sse *)ud)->efd, &one, sizeof one);
}

/* The longest prefix of d[0..len) that does not end inside a UTF-8
 * sequence (a chunk cut at READ_MAX may split a character). */
static size_t whole_utf8(const uint8_t *d, size_t len) {
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        uint8_t c = d[len - back];
        if ((c & 0xC0) == 0x80)
            continue;
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back ? len - back : len;
    }
    return len;
}

/* Appends "data: " lines for `text` (split at LF, CR and CRLF: SSE's line
 * ends) and the blank line that ends the event. */
static int append_data(px_http_buf *out, const char *text, size_t len) {
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        bool end = i == len || text[i] == '\n' || text[i] == '\r';
        if (!end)
            continue;
        if (px_http_buf_append(out, "data: ", 6) < 0 ||
            px_http_buf_append(out, text + start, i - start) < 0 ||
            px_http_buf_append(out, "\n", 1) < 0)
            return -1;
        if (i < len && text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
            i++;
        start = i + 1;
    }
    return px_http_buf_append(out, "\n", 1);
}

static int append_event(px_http_buf *out, const char *event, int64_t id, const char *data,
                        size_t len) {
    char head[96];
    int n = id >= 0 ? snprintf(head, sizeof head, "event: %s\nid: %" PRId64 "\n", event, id)
                    : snprintf(head, sizeof head, "event: %s\n", event);
    if (px_http_buf_append(out, head, (size_t)n) < 0)
        return -1;
    return append_data(out, data, len);
}

static int append_json_event(px_http_buf *out, const char *event, int64_t id, json_t *body) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return -1;
    int rc = append_event(out, event, id, text, strlen(text));
    free(text);
    return rc;
}

static int append_chunk(sse *s, const px_log_chunk *c) {
    size_t len = c->len == READ_MAX ? whole_utf8(c->data, c->len) : c->len;
    if (len == 0)
        len = c->len;
    px_http_buf text = {0};
    int rc = px_http_utf8_append(&text, c->data, len);
    if (rc == 0)
        rc = append_event(&s->out, c->stream == PX_STREAM_STDERR ? "stderr" : "stdout",
                          c->offset + (int64_t)len, text.data ? text.data : "", text.len);
    px_http_buf_release(&text);
    s->offset = c->offset + (int64_t)len;
    return rc;
}

static int append_result(sse *s) {
    px_record_view view;
    px_error err = PX_ERROR_INIT;
    if (px_record_snapshot(s->record, false, &view, &err) < 0)
        return -1;
    json_t *body = px_http_result_json(&view, false);
    px_record_view_release(&view);
    s->done = true;
    return append_json_event(&s->out, "result", s->offset, body);
}

/* Formats the next event into s->out, waiting for one if need be. Returns
 * 0, or -1 to end the stream at once (client gone, server stopping, out of
 * memory). */
static int next_event(sse *s) {
    for (;;) {
        px_log_chunk chunk = {0};
        px_error err = PX_ERROR_INIT;
        int st = px_record_read(s->record, s->offset, READ_MAX, &chunk, &err);
        if (st == PX_READ_DATA) {
            int rc = append_chunk(s, &chunk);
            free(chunk.data);
            return rc;
        }
        if (st == PX_READ_EOF)
            return append_result(s);
        if (st < 0) {
            /* The execution ended short of the offset asked for. */
            s->done = true;
            return append_json_event(&s->out, "error", -1, json_pack("{s:s}", "error", err.msg));
        }
        struct pollfd fds[3] = {
            {.fd = s->efd, .events = POLLIN},
            {.fd = s->stop_fd, .events = POLLIN},
            {.fd = s->client, .events = POLLRDHUP},
        };
        int n = poll(fds, s->client >= 0 ? 3 : 2, s->keepalive_ms);
        if (n < 0 && errno != EINTR)
            return -1;
        if (fds[1].revents)
            return -1;
        if (s->client >= 0 && (fds[2].revents & (POLLRDHUP | POLLHUP | POLLERR)))
            return -1;
        if (n == 0)
            return px_http_buf_append(&s->out, ": keep-alive\n\n", 14);
        uint64_t count;
        (void)!read(s->efd, &count, sizeof count);
    }
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    sse *s = cls;
    while (s->out_off == s->out.len) {
        s->out.len = 0;
        s->out_off = 0;
        if (s->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (next_event(s) < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = s->out.len - s->out_off;
    if (n > max)
        n = max;
    memcpy(buf, s->out.data + s->out_off, n);
    s->out_off += n;
    return (ssize_t)n;
}

static void sse_free(void *cls) {
    sse *s = cls;
    if (s->watch)
        px_record_unwatch(s->record, s->watch);
    if (s->efd >= 0)
        close(s->efd);
    px_record_unref(s->record);
    px_http_buf_release(&s->out);
    free(s);
}

/* The offset to start from: Last-Event-ID (a reconnect) over ?offset. */
static int start_offset(px_http_req *req, int64_t *out, px_error *err) {
    const char *v = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Last-Event-ID");
    const char *what = "Last-Event-ID";
    if (!v || !v[0]) {
        v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "offset");
        what = "offset";
    }
    *out = 0;
    if (!v || !v[0])
        return 0;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    px_quoted q;
    if (errno != 0 || end == v || *end != '\0')
        return px_error_set(err, PX_E_INVALID, "%s: '%s' is not an integer", what,
                            px_quote_str(&q, v));
    if (n < 0)
        return px_error_set(err, PX_E_INVALID, "%s: %lld is negative", what, n);
    *out = n;
    return 0;
}

enum MHD_Result px_http_stream_output(px_http_req *req) {
    px_error err = PX_ERROR_INIT;
    int64_t offset;
    px_record *record = NULL;
    if (start_offset(req, &offset, &err) < 0 || px_id_check(req->id, &err) < 0 ||
        !(record = px_store_get_as(req->srv->store, req->tenant, req->id, &err)))
        return px_http_reply_px_error(req, &err);
    px_record_view view;
    if (px_record_snapshot(record, false, &view, &err) < 0) {
        px_record_unref(record);
        return px_http_reply_px_error(req, &err);
    }
    bool past_end = px_status_terminal(view.status) && offset > view.log_len;
    int64_t log_len = view.log_len;
    px_record_view_release(&view);
    if (past_end) {
        px_record_unref(record);
        return px_http_reply_error(req, MHD_HTTP_RANGE_NOT_SATISFIABLE,
                                   "offset: %" PRId64 " is past the end of the output (%" PRId64
                                   " bytes)",
                                   offset, log_len);
    }
    sse *s = calloc(1, sizeof *s);
    if (!s) {
        px_record_unref(record);
        return px_http_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    s->record = record;
    s->offset = offset;
    s->stop_fd = req->srv->stop_fd;
    s->client = px_http_client_fd(req->conn);
    int half_timeout = req->srv->cfg->http_read_timeout_s * 500;
    s->keepalive_ms = half_timeout < KEEPALIVE_MS ? half_timeout : KEEPALIVE_MS;
    s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->efd < 0) {
        px_error_set_errno(&err, PX_E_INTERNAL, errno, "eventfd");
        sse_free(s);
        return px_http_reply_px_error(req, &err);
    }
    /* A reader: counted against the per-execution reader limit, as a
     * StreamOutput call is. */
    s->watch = px_record_watch(record, PX_WATCH_READER, on_change, s, &err);
    if (!s->watch) {
        sse_free(s);
        return px_http_reply_px_error(req, &err);
    }
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, BLOCK, sse_read, s,
                                                               sse_free);
    if (!r) {
        sse_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result ret = MHD_queue_response(req->conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    px_http_count(req, MHD_HTTP_OK);
    return ret;
}
