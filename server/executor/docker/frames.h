/*
 * Stream helpers for the Docker attach connection (no I/O, no allocation).
 *
 * px_frame_demux splits Docker's multiplexed attach stream (Tty=false) into
 * stdout and stderr pieces. Each frame is an 8-byte header
 * [stream, 0, 0, 0, big-endian u32 length] followed by `length` payload
 * bytes; frame boundaries are unrelated to read boundaries. Payload is handed
 * on as soon as it arrives, piece by piece: a frame is never buffered whole.
 *
 * px_trailer_scanner watches the sandbox's stderr for the one usage trailer
 * the bootstrap writes after the program has exited:
 *     MARKER {json} MARKER "\n"      with MARKER = "\x1e" "PYX" nonce "\x1e"
 * where the nonce is random per run, so a program cannot guess it. The
 * scanner passes every other byte on unchanged and in order. It holds back
 * only a tail that is a proper prefix of the marker (at most marker length - 1
 * bytes), releases it as soon as the next byte rules the marker out, and
 * releases it at the end of the stream (px_trailer_scanner_finish).
 *
 * Thread safety: a demux or scanner is plain state owned by one thread.
 */
#ifndef PYEXEC_EXECUTOR_DOCKER_FRAMES_H
#define PYEXEC_EXECUTOR_DOCKER_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/base/error.h"
#include "server/model/job.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PX_FRAME_HEADER_LEN 8
/* Default cap on one frame's payload. Docker writes at most 32 KiB a frame. */
#define PX_FRAME_MAX_DEFAULT (1u << 20)

/* Receives one payload piece (borrowed for the call; len > 0). */
typedef void (*px_frame_sink)(void *ud, px_stream stream, const uint8_t *data, size_t len);

typedef struct px_frame_demux {
    uint8_t header[PX_FRAME_HEADER_LEN];
    size_t header_have;
    bool in_payload;
    uint32_t remaining; /* payload bytes left in the current frame */
    px_stream stream;
    uint32_t max_frame;
    bool failed;
} px_frame_demux;

/* Initialises `d` to expect a frame header; frames longer than `max_frame`
 * bytes are protocol errors. */
void px_frame_demux_init(px_frame_demux *d, uint32_t max_frame);

/* Consumes `len` bytes, calling `sink` for each payload piece. Returns 0, or
 * -1 with `err` set (PX_E_INTERNAL) on a protocol error: a stream other than
 * 1 (stdout) or 2 (stderr), non-zero reserved header bytes, or a frame longer
 * than the cap. After an error every later call fails the same way. */
int px_frame_demux_feed(px_frame_demux *d, const uint8_t *data, size_t len, px_frame_sink sink,
                        void *ud, px_error *err);

/* At end of stream: returns 0 if the stream ended on a frame boundary, or -1
 * with `err` set (truncated frame, or an earlier protocol error). */
int px_frame_demux_finish(const px_frame_demux *d, px_error *err);

/* ---- usage trailer ---- */

#define PX_TRAILER_NONCE_MAX 64 /* characters of the nonce */
#define PX_TRAILER_MARKER_MAX (PX_TRAILER_NONCE_MAX + 5)
/* A longer body is not a trailer. The end marker on stdout carries an Eval
 * report of up to 64 KiB (the bootstrap's REPORT_MAX). */
#define PX_TRAILER_BODY_MAX (65536 + 1024)

/* Receives output bytes that are not part of a trailer (borrowed; len > 0). */
typedef void (*px_bytes_sink)(void *ud, const uint8_t *data, size_t len);

typedef struct px_trailer_scanner {
    uint8_t marker[PX_TRAILER_MARKER_MAX];
    size_t marker_len;
    uint8_t fail[PX_TRAILER_MARKER_MAX]; /* KMP failure function of marker */
    size_t matched;                      /* marker bytes matched (and held back) */
    int state;                           /* scanning, in body, after closing marker */
    uint8_t body[PX_TRAILER_BODY_MAX + PX_TRAILER_MARKER_MAX];
    size_t body_len;
    /* The last complete trailer seen (its JSON body, NUL-terminated). */
    bool has_trailer;
    char trailer[PX_TRAILER_BODY_MAX + 1];
} px_trailer_scanner;

/* Builds the marker from `nonce` (1..PX_TRAILER_NONCE_MAX characters, none
 * of them "\x1e"). Returns 0, or -1 with `err` set (PX_E_INTERNAL) if the
 * nonce is unusable. */
int px_trailer_scanner_init(px_trailer_scanner *s, const char *nonce, px_error *err);

/* Consumes stderr bytes; non-trailer bytes go to `sink` in order. */
void px_trailer_scanner_feed(px_trailer_scanner *s, const uint8_t *data, size_t len,
                             px_bytes_sink sink, void *ud);

/* End of stream: releases held-back bytes (and an unterminated trailer,
 * which was not one) to `sink`. */
void px_trailer_scanner_finish(px_trailer_scanner *s, px_bytes_sink sink, void *ud);

#ifdef __cplusplus
}
#endif

#endif
