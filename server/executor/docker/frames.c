/*
 * Attach-stream demultiplexer and usage-trailer scanner; see frames.h.
 *
 * The scanner is a small state machine:
 *   SCAN  --marker matched-->  BODY  --marker matched-->  AFTER --any byte--> SCAN
 * In SCAN it runs Knuth-Morris-Pratt over the bytes. The bytes it holds back
 * are always exactly marker[0, matched), so they need no buffer of their own:
 * when a mismatch shortens the match, the released bytes are re-emitted from
 * the marker itself. In AFTER a single "\n" (the trailer's end) is dropped.
 */
#include "server/executor/docker/frames.h"

#include <string.h>

void px_frame_demux_init(px_frame_demux *d, uint32_t max_frame) {
    memset(d, 0, sizeof *d);
    d->max_frame = max_frame;
}

int px_frame_demux_feed(px_frame_demux *d, const uint8_t *data, size_t len, px_frame_sink sink,
                        void *ud, px_error *err) {
    if (d->failed)
        return px_error_set(err, PX_E_INTERNAL, "attach stream: protocol error");
    while (len > 0) {
        if (!d->in_payload) {
            size_t n = PX_FRAME_HEADER_LEN - d->header_have;
            if (n > len)
                n = len;
            memcpy(d->header + d->header_have, data, n);
            d->header_have += n;
            data += n;
            len -= n;
            if (d->header_have < PX_FRAME_HEADER_LEN)
                break;
            const uint8_t *h = d->header;
            uint32_t size = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 |
                            (uint32_t)h[7];
            d->header_have = 0;
            if ((h[0] != PX_STREAM_STDOUT && h[0] != PX_STREAM_STDERR) || h[1] || h[2] || h[3]) {
                d->failed = true;
                return px_error_set(err, PX_E_INTERNAL,
                                    "attach stream: bad frame header (stream %u)", h[0]);
            }
            if (size > d->max_frame) {
                d->failed = true;
                return px_error_set(err, PX_E_INTERNAL,
                                    "attach stream: frame of %u bytes exceeds the %u-byte limit",
                                    size, d->max_frame);
            }
            d->stream = (px_stream)h[0];
            d->remaining = size;
            d->in_payload = size > 0;
        } else {
            size_t n = d->remaining < len ? d->remaining : len;
            sink(ud, d->stream, data, n);
            data += n;
            len -= n;
            d->remaining -= (uint32_t)n;
            if (d->remaining == 0)
                d->in_payload = false;
        }
    }
    return 0;
}

int px_frame_demux_finish(const px_frame_demux *d, px_error *err) {
    if (d->failed)
        return px_error_set(err, PX_E_INTERNAL, "attach stream: protocol error");
    if (d->in_payload || d->header_have > 0)
        return px_error_set(err, PX_E_INTERNAL, "attach stream: truncated frame at end of stream");
    return 0;
}

/* ---- usage trailer ---- */

enum { SCAN = 0, BODY = 1, AFTER = 2 };

int px_trailer_scanner_init(px_trailer_scanner *s, const char *nonce, px_error *err) {
    memset(s, 0, sizeof *s);
    size_t n = strlen(nonce);
    if (n == 0 || n > PX_TRAILER_NONCE_MAX || memchr(nonce, 0x1e, n))
        return px_error_set(err, PX_E_INTERNAL, "trailer scanner: unusable nonce");
    s->marker[0] = 0x1e;
    memcpy(s->marker + 1, "PYX", 3);
    memcpy(s->marker + 4, nonce, n);
    s->marker[4 + n] = 0x1e;
    s->marker_len = n + 5;
    /* fail[k]: length of the longest proper border of marker[0, k]. */
    size_t k = 0;
    s->fail[0] = 0;
    for (size_t i = 1; i < s->marker_len; i++) {
        while (k > 0 && s->marker[i] != s->marker[k])
            k = s->fail[k - 1];
        if (s->marker[i] == s->marker[k])
            k++;
        s->fail[i] = (uint8_t)k;
    }
    s->state = SCAN;
    return 0;
}

/* Scans until the end of `p` or the end of an opening marker; returns the
 * number of bytes consumed. */
static size_t scan_part(px_trailer_scanner *s, const uint8_t *p, size_t len, px_bytes_sink sink,
                        void *ud) {
    size_t carry0 = s->matched; /* held bytes that arrived before this call */
    size_t i = 0;
    while (i < len) {
        uint8_t b = p[i++];
        while (s->matched > 0 && s->marker[s->matched] != b)
            s->matched = s->fail[s->matched - 1];
        if (s->marker[s->matched] == b)
            s->matched++;
        if (s->matched == s->marker_len)
            break;
    }
    size_t held_here = s->matched < i ? s->matched : i;
    size_t carry_now = s->matched - held_here;
    if (carry0 > carry_now)
        sink(ud, s->marker, carry0 - carry_now);
    if (i > held_here)
        sink(ud, p, i - held_here);
    if (s->matched == s->marker_len) {
        s->matched = 0;
        s->state = BODY;
        s->body_len = 0;
    }
    return i;
}

static void body_overflow(px_trailer_scanner *s, px_bytes_sink sink, void *ud) {
    /* Not a trailer after all: it was program output. */
    sink(ud, s->marker, s->marker_len);
    if (s->body_len > 0)
        sink(ud, s->body, s->body_len);
    s->body_len = 0;
    s->state = SCAN;
}

/* Collects the body until the closing marker; returns bytes consumed. */
static size_t body_part(px_trailer_scanner *s, const uint8_t *p, size_t len, px_bytes_sink sink,
                        void *ud) {
    size_t room = sizeof s->body - s->body_len;
    size_t n = len < room ? len : room;
    size_t old = s->body_len;
    memcpy(s->body + old, p, n);
    s->body_len += n;
    size_t from = old >= s->marker_len ? old - (s->marker_len - 1) : 0;
    const uint8_t *hit = NULL;
    if (s->body_len >= s->marker_len)
        hit = memmem(s->body + from, s->body_len - from, s->marker, s->marker_len);
    if (hit) {
        size_t blen = (size_t)(hit - s->body);
        size_t end = blen + s->marker_len; /* body bytes up to the closing marker's end */
        if (blen <= PX_TRAILER_BODY_MAX) {
            memcpy(s->trailer, s->body, blen);
            s->trailer[blen] = '\0';
            s->has_trailer = true;
            s->state = AFTER;
            s->body_len = 0;
            return end - old;
        }
    }
    if (hit || s->body_len >= PX_TRAILER_BODY_MAX + s->marker_len) {
        /* Not a trailer: the opening marker was output. Scanning restarts
         * right after it, over the body bytes of earlier calls and then
         * those of this call, exactly as if they had come in one piece (a
         * marker may begin in one and end in the other). The earlier bytes
         * hold no whole marker, so this re-feed cannot overflow again. */
        uint8_t again[sizeof s->body];
        memcpy(again, s->body, old);
        s->body_len = 0;
        s->state = SCAN;
        sink(ud, s->marker, s->marker_len);
        px_trailer_scanner_feed(s, again, old, sink, ud);
        return 0;
    }
    return n;
}

void px_trailer_scanner_feed(px_trailer_scanner *s, const uint8_t *data, size_t len,
                             px_bytes_sink sink, void *ud) {
    size_t i = 0;
    while (i < len) {
        switch (s->state) {
        case SCAN: i += scan_part(s, data + i, len - i, sink, ud); break;
        case BODY: i += body_part(s, data + i, len - i, sink, ud); break;
        default:
            if (data[i] == '\n')
                i++;
            s->state = SCAN;
            break;
        }
    }
}

void px_trailer_scanner_finish(px_trailer_scanner *s, px_bytes_sink sink, void *ud) {
    if (s->state == SCAN && s->matched > 0)
        sink(ud, s->marker, s->matched);
    else if (s->state == BODY)
        body_overflow(s, sink, ud);
    s->matched = 0;
    s->body_len = 0;
    s->state = SCAN;
}
