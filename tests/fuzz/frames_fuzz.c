/*
 * libFuzzer target for server/executor/docker/frames.h: the attach-stream
 * demultiplexer and the usage-trailer scanner, fed arbitrary bytes split at
 * fuzzer-chosen points, the way the Docker back-end feeds them from its
 * reads (the demultiplexed stderr goes through the scanner).
 *
 * Input layout:
 *   byte 0        bits 0-1: which nonce (short, periodic, long, 32 hex)
 *                 bits 2-3: frame cap (16, 300, 4096, PX_FRAME_MAX_DEFAULT)
 *   byte 1        number of cut points k (0-15)
 *   k bytes       chunk lengths of the first k chunks (0 means 1); the rest
 *                 of the stream is the last chunk
 *   rest          the attach stream
 *
 * Checks, beyond the sanitizers:
 *   - the demultiplexer's stdout and stderr bytes, and whether it fails,
 *     equal those of a plain reference parser of the whole stream, however
 *     the stream is cut;
 *   - the scanner's output and the trailer it finds do not depend on where
 *     stderr is cut (fed whole vs fed in the demultiplexer's pieces);
 *   - the scanner never emits more bytes than it was fed, and passes stderr
 *     without a marker start byte (0x1e) through unchanged;
 *   - a found trailer fits PX_TRAILER_BODY_MAX.
 *
 * Built and run by scripts/fuzz; seeds in tests/fuzz/corpus/frames/.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/executor/docker/frames.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct buf {
    uint8_t *data;
    size_t len, cap;
} buf;

static void buf_add(buf *b, const uint8_t *data, size_t len) {
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *p = realloc(b->data, cap);
        if (!p)
            abort();
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static bool buf_eq(const buf *a, const buf *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* What one demultiplexer run produced. */
typedef struct demux_out {
    buf out, err; /* raw stdout, raw stderr */
    buf scanned;  /* stderr after the trailer scanner */
    px_trailer_scanner scanner;
    bool failed;
} demux_out;

static void scanned_sink(void *ud, const uint8_t *data, size_t len) {
    if (len == 0)
        abort(); /* the contract: len > 0 */
    buf_add(ud, data, len);
}

static void frame_sink(void *ud, px_stream stream, const uint8_t *data, size_t len) {
    demux_out *o = ud;
    if (len == 0)
        abort();
    if (stream == PX_STREAM_STDOUT) {
        buf_add(&o->out, data, len);
    } else if (stream == PX_STREAM_STDERR) {
        buf_add(&o->err, data, len);
        px_trailer_scanner_feed(&o->scanner, data, len, scanned_sink, &o->scanned);
    } else {
        abort();
    }
}

/* The reference: parses the whole stream at once, frame by frame. */
static void reference(const uint8_t *p, size_t len, uint32_t cap, buf *out, buf *err,
                      bool *failed) {
    size_t i = 0;
    *failed = false;
    while (i < len) {
        if (len - i < PX_FRAME_HEADER_LEN) {
            *failed = true; /* truncated header */
            return;
        }
        const uint8_t *h = p + i;
        uint32_t n = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
        if ((h[0] != 1 && h[0] != 2) || h[1] || h[2] || h[3] || n > cap) {
            *failed = true;
            return;
        }
        i += PX_FRAME_HEADER_LEN;
        size_t take = n <= len - i ? n : len - i;
        if (take)
            buf_add(h[0] == 1 ? out : err, p + i, take);
        i += take;
        if (take < n) {
            *failed = true; /* truncated payload */
            return;
        }
    }
}

static const char *const nonces[] = {
    "n",
    "aab",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
    "0123456789abcdef0123456789abcdef",
};
static const uint32_t caps[] = {16, 300, 4096, PX_FRAME_MAX_DEFAULT};

static void run(demux_out *o, const char *nonce, uint32_t cap, const uint8_t *stream, size_t len,
                const size_t *cuts, size_t n_cuts) {
    memset(o, 0, sizeof *o);
    px_error err = PX_ERROR_INIT;
    if (px_trailer_scanner_init(&o->scanner, nonce, &err) != 0)
        abort();
    px_frame_demux d;
    px_frame_demux_init(&d, cap);
    size_t at = 0;
    for (size_t c = 0; c <= n_cuts && !o->failed; c++) {
        size_t n = c < n_cuts ? cuts[c] : len - at;
        if (n > len - at)
            n = len - at;
        if (px_frame_demux_feed(&d, stream + at, n, frame_sink, o, &err) != 0) {
            if (err.code != PX_E_INTERNAL || !err.msg[0])
                abort();
            o->failed = true;
        }
        at += n;
    }
    if (!o->failed && px_frame_demux_finish(&d, &err) != 0)
        o->failed = true;
    px_trailer_scanner_finish(&o->scanner, scanned_sink, &o->scanned);
}

static void release(demux_out *o) {
    free(o->out.data);
    free(o->err.data);
    free(o->scanned.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    const char *nonce = nonces[data[0] & 3];
    uint32_t cap = caps[(data[0] >> 2) & 3];
    size_t n_cuts = data[1] & 15;
    if (size < 2 + n_cuts)
        return 0;
    size_t cuts[16];
    for (size_t i = 0; i < n_cuts; i++)
        cuts[i] = data[2 + i] ? data[2 + i] : 1;
    const uint8_t *stream = data + 2 + n_cuts;
    size_t len = size - 2 - n_cuts;

    demux_out split, whole;
    run(&split, nonce, cap, stream, len, cuts, n_cuts);
    run(&whole, nonce, cap, stream, len, NULL, 0);

    buf ref_out = {0}, ref_err = {0};
    bool ref_failed;
    reference(stream, len, cap, &ref_out, &ref_err, &ref_failed);
    /* Up to a protocol error, both pass on the same bytes, including the
     * start of a frame whose end never came. */
    if (split.failed != ref_failed || whole.failed != ref_failed)
        abort();
    if (!buf_eq(&split.out, &ref_out) || !buf_eq(&split.err, &ref_err) ||
        !buf_eq(&whole.out, &ref_out) || !buf_eq(&whole.err, &ref_err))
        abort();

    /* The scanner over stderr fed in one piece. */
    buf one = {0};
    px_trailer_scanner s;
    px_error err = PX_ERROR_INIT;
    if (px_trailer_scanner_init(&s, nonce, &err) != 0)
        abort();
    if (ref_err.len)
        px_trailer_scanner_feed(&s, ref_err.data, ref_err.len, scanned_sink, &one);
    px_trailer_scanner_finish(&s, scanned_sink, &one);

    if (!buf_eq(&split.scanned, &one) || !buf_eq(&whole.scanned, &one)) {
        fprintf(stderr, "scanner output depends on where stderr is cut (%zu vs %zu bytes)\n",
                split.scanned.len, one.len);
        abort();
    }
    if (split.scanner.has_trailer != s.has_trailer ||
        (s.has_trailer && strcmp(split.scanner.trailer, s.trailer) != 0)) {
        fprintf(stderr, "trailer found depends on where stderr is cut\n");
        abort();
    }
    if (one.len > ref_err.len)
        abort();
    if (ref_err.len && !memchr(ref_err.data, 0x1e, ref_err.len) && !buf_eq(&one, &ref_err))
        abort();
    if (s.has_trailer && strlen(s.trailer) > PX_TRAILER_BODY_MAX)
        abort();

    free(one.data);
    free(ref_out.data);
    free(ref_err.data);
    release(&split);
    release(&whole);
    return 0;
}
