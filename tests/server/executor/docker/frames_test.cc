// Unit tests of the attach-stream demultiplexer and the usage-trailer
// scanner, with the input split at every byte boundary.
#include "server/executor/docker/frames.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

std::string Frame(int stream, const std::string &payload) {
    std::string f(8, '\0');
    f[0] = static_cast<char>(stream);
    uint32_t n = static_cast<uint32_t>(payload.size());
    f[4] = static_cast<char>(n >> 24);
    f[5] = static_cast<char>(n >> 16);
    f[6] = static_cast<char>(n >> 8);
    f[7] = static_cast<char>(n);
    return f + payload;
}

struct Collected {
    std::string out, err;
    std::vector<std::pair<int, std::string>> pieces;
};

void Collect(void *ud, px_stream stream, const uint8_t *data, size_t len) {
    auto *c = static_cast<Collected *>(ud);
    ASSERT_GT(len, 0u);
    std::string s(reinterpret_cast<const char *>(data), len);
    (stream == PX_STREAM_STDOUT ? c->out : c->err) += s;
    c->pieces.emplace_back(stream, s);
}

int Feed(px_frame_demux *d, const std::string &s, Collected *c, px_error *err) {
    return px_frame_demux_feed(d, reinterpret_cast<const uint8_t *>(s.data()), s.size(), Collect, c,
                               err);
}

TEST(FrameDemux, SplitAtEveryBoundary) {
    const std::string stream = Frame(1, "hello ") + Frame(2, "oops\n") + Frame(1, "") +
                               Frame(1, std::string(300, 'x')) + Frame(2, "end");
    for (size_t cut = 0; cut <= stream.size(); cut++) {
        px_frame_demux d;
        px_frame_demux_init(&d, PX_FRAME_MAX_DEFAULT);
        Collected c;
        px_error err = PX_ERROR_INIT;
        ASSERT_EQ(Feed(&d, stream.substr(0, cut), &c, &err), 0) << err.msg;
        ASSERT_EQ(Feed(&d, stream.substr(cut), &c, &err), 0) << err.msg;
        ASSERT_EQ(px_frame_demux_finish(&d, &err), 0) << "cut " << cut;
        EXPECT_EQ(c.out, "hello " + std::string(300, 'x')) << "cut " << cut;
        EXPECT_EQ(c.err, "oops\nend") << "cut " << cut;
    }
}

TEST(FrameDemux, ByteByByteDeliversPiecesAsTheyArrive) {
    const std::string stream = Frame(1, "abc") + Frame(2, "de");
    px_frame_demux d;
    px_frame_demux_init(&d, PX_FRAME_MAX_DEFAULT);
    Collected c;
    px_error err = PX_ERROR_INIT;
    for (size_t i = 0; i < stream.size(); i++) {
        ASSERT_EQ(Feed(&d, stream.substr(i, 1), &c, &err), 0);
        if (i == 8) { // first payload byte of the first frame
            EXPECT_EQ(c.out, "a") << "payload is passed on before the frame is complete";
        }
    }
    EXPECT_EQ(c.pieces.size(), 5u);
    EXPECT_EQ(c.out, "abc");
    EXPECT_EQ(c.err, "de");
    EXPECT_EQ(px_frame_demux_finish(&d, &err), 0);
}

TEST(FrameDemux, OversizedFrameIsAProtocolError) {
    px_frame_demux d;
    px_frame_demux_init(&d, 1024);
    Collected c;
    px_error err = PX_ERROR_INIT;
    ASSERT_EQ(Feed(&d, Frame(1, std::string(1024, 'a')), &c, &err), 0);
    std::string big = Frame(1, std::string(1025, 'b'));
    EXPECT_EQ(Feed(&d, big, &c, &err), -1);
    EXPECT_EQ(err.code, PX_E_INTERNAL);
    EXPECT_NE(std::string(err.msg).find("exceeds"), std::string::npos) << err.msg;
    EXPECT_EQ(c.out, std::string(1024, 'a')) << "nothing of the bad frame is delivered";
    EXPECT_EQ(Feed(&d, Frame(1, "x"), &c, &err), -1) << "the demux stays failed";
    EXPECT_EQ(px_frame_demux_finish(&d, &err), -1);
}

TEST(FrameDemux, UnknownStreamIsAProtocolError) {
    for (int stream : {0, 3, 7}) {
        px_frame_demux d;
        px_frame_demux_init(&d, PX_FRAME_MAX_DEFAULT);
        Collected c;
        px_error err = PX_ERROR_INIT;
        EXPECT_EQ(Feed(&d, Frame(stream, "x"), &c, &err), -1) << stream;
        EXPECT_TRUE(c.out.empty() && c.err.empty());
    }
    px_frame_demux d;
    px_frame_demux_init(&d, PX_FRAME_MAX_DEFAULT);
    Collected c;
    px_error err = PX_ERROR_INIT;
    std::string f = Frame(1, "x");
    f[2] = 1; // reserved bytes must be zero
    EXPECT_EQ(Feed(&d, f, &c, &err), -1);
}

TEST(FrameDemux, TruncatedFrameIsReportedAtEnd) {
    const std::string stream = Frame(1, "complete") + Frame(2, "cut short");
    for (size_t end = 1; end < stream.size(); end++) {
        if (end == Frame(1, "complete").size())
            continue; // a frame boundary: a clean end
        px_frame_demux d;
        px_frame_demux_init(&d, PX_FRAME_MAX_DEFAULT);
        Collected c;
        px_error err = PX_ERROR_INIT;
        ASSERT_EQ(Feed(&d, stream.substr(0, end), &c, &err), 0);
        EXPECT_EQ(px_frame_demux_finish(&d, &err), -1) << "end " << end;
        EXPECT_NE(std::string(err.msg).find("truncated"), std::string::npos) << err.msg;
    }
}

// ---- trailer scanner ----

const char kNonce[] = "0123456789abcdef0123456789abcdef";

std::string Marker() {
    return std::string("\x1ePYX") + kNonce + "\x1e";
}

void Append(void *ud, const uint8_t *data, size_t len) {
    ASSERT_GT(len, 0u);
    static_cast<std::string *>(ud)->append(reinterpret_cast<const char *>(data), len);
}

void Scan(px_trailer_scanner *s, const std::string &in, std::string *out) {
    px_trailer_scanner_feed(s, reinterpret_cast<const uint8_t *>(in.data()), in.size(), Append,
                            out);
}

TEST(TrailerScanner, StripsTheTrailerSplitAtEveryBoundary) {
    const std::string body = "{\"peak_memory_bytes\": 123, \"cpu_time_ms\": 4}";
    const std::string program = "Traceback...\nValueError: \x1ePY no marker\n";
    const std::string in = program + Marker() + body + Marker() + "\n";
    for (size_t a = 0; a <= in.size(); a++) {
        for (size_t b = a; b <= in.size(); b += 7) {
            px_trailer_scanner s;
            ASSERT_EQ(px_trailer_scanner_init(&s, kNonce, nullptr), 0);
            std::string out;
            Scan(&s, in.substr(0, a), &out);
            Scan(&s, in.substr(a, b - a), &out);
            Scan(&s, in.substr(b), &out);
            px_trailer_scanner_finish(&s, Append, &out);
            ASSERT_EQ(out, program) << "cuts " << a << "," << b;
            ASSERT_TRUE(s.has_trailer);
            ASSERT_EQ(std::string(s.trailer), body);
        }
    }
}

TEST(TrailerScanner, ByteByByte) {
    const std::string in = "x" + Marker() + "{}" + Marker() + "\n";
    px_trailer_scanner s;
    ASSERT_EQ(px_trailer_scanner_init(&s, kNonce, nullptr), 0);
    std::string out;
    for (char ch : in)
        Scan(&s, std::string(1, ch), &out);
    px_trailer_scanner_finish(&s, Append, &out);
    EXPECT_EQ(out, "x");
    EXPECT_TRUE(s.has_trailer);
    EXPECT_STREQ(s.trailer, "{}");
}

TEST(TrailerScanner, HoldsBackOnlyAProperMarkerPrefix) {
    px_trailer_scanner s;
    ASSERT_EQ(px_trailer_scanner_init(&s, kNonce, nullptr), 0);
    std::string out;
    Scan(&s, "abc\x1ePYX0123", &out);
    EXPECT_EQ(out, "abc") << "only the marker prefix is held back";
    Scan(&s, "Z", &out);
    EXPECT_EQ(out, "abc\x1ePYX0123Z") << "released as soon as the marker is ruled out";
    Scan(&s, "tail\x1e", &out);
    EXPECT_EQ(out, "abc\x1ePYX0123Ztail");
    px_trailer_scanner_finish(&s, Append, &out);
    EXPECT_EQ(out, "abc\x1ePYX0123Ztail\x1e") << "flushed at the end";
    EXPECT_FALSE(s.has_trailer);
}

TEST(TrailerScanner, OverlappingStartIsFound) {
    // A broken marker start immediately followed by the real marker: the
    // mismatching byte itself starts the next match.
    const std::string m = Marker();
    const std::string broken = m.substr(0, 7);
    const std::string in = broken + m + "{\"a\":1}" + m + "\n" + "after";
    px_trailer_scanner s;
    ASSERT_EQ(px_trailer_scanner_init(&s, kNonce, nullptr), 0);
    std::string out;
    for (char ch : in)
        Scan(&s, std::string(1, ch), &out);
    px_trailer_scanner_finish(&s, Append, &out);
    EXPECT_EQ(out, broken + "after");
    EXPECT_STREQ(s.trailer, "{\"a\":1}");
}

TEST(TrailerScanner, UnterminatedTrailerIsOutput) {
    const std::string in = "x" + Marker() + "{\"peak";
    px_trailer_scanner s;
    ASSERT_EQ(px_trailer_scanner_init(&s, kNonce, nullptr), 0);
    std::string out;
    Scan(&s, in, &out);
    px_trailer_scanner_finish(&s, Append, &out);
    EXPECT_EQ(out, in);
    EXPECT_FALSE(s.has_trailer);
}

TEST(TrailerScanner, OversizedBodyIsOutput) {
    const std::string body(PX_TRAILER_BODY_MAX + 10, 'j');
    const std::string in = Marker() + body + Marker() + "\n";
    px_trailer_scanner s;
    ASSERT_EQ(px_trailer_scanner_init(&s, kNonce, nullptr), 0);
    std::string out;
    Scan(&s, in, &out);
    px_trailer_scanner_finish(&s, Append, &out);
    EXPECT_FALSE(s.has_trailer);
    EXPECT_EQ(out.substr(0, Marker().size() + body.size()), Marker() + body);
}

TEST(TrailerScanner, RejectsBadNonce) {
    px_trailer_scanner s;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_trailer_scanner_init(&s, "", &err), -1);
    EXPECT_EQ(px_trailer_scanner_init(&s, "a\x1e", &err), -1);
    EXPECT_EQ(px_trailer_scanner_init(&s, std::string(PX_TRAILER_NONCE_MAX + 1, 'a').c_str(), &err),
              -1);
}

} // namespace
