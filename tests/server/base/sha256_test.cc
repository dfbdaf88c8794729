#include "server/base/sha256.h"

#include <stdio.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace {

std::string Hex(const uint8_t d[PX_SHA256_LEN]) {
    std::string s;
    char b[3];
    for (int i = 0; i < PX_SHA256_LEN; i++) {
        snprintf(b, sizeof b, "%02x", d[i]);
        s += b;
    }
    return s;
}

std::string Digest(const std::string &in) {
    uint8_t d[PX_SHA256_LEN];
    px_sha256(in.data(), in.size(), d);
    return Hex(d);
}

/* FIPS 180-4 examples and the NIST byte-oriented vectors. */
TEST(Sha256, KnownVectors) {
    EXPECT_EQ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", Digest(""));
    EXPECT_EQ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", Digest("abc"));
    EXPECT_EQ("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
              Digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"));
    EXPECT_EQ("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
              Digest(std::string(1000000, 'a')));
}

/* Padding edges: 55, 56, 63, 64 and 65 bytes (one or two final blocks). */
TEST(Sha256, PaddingEdges) {
    EXPECT_EQ("9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
              Digest(std::string(55, 'a')));
    EXPECT_EQ("b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a",
              Digest(std::string(56, 'a')));
    EXPECT_EQ("7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34",
              Digest(std::string(63, 'a')));
    EXPECT_EQ("ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb",
              Digest(std::string(64, 'a')));
    EXPECT_EQ("635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0",
              Digest(std::string(65, 'a')));
}

/* Fed in pieces of every size, the digest is the one of the whole. */
TEST(Sha256, IncrementalEqualsOneShot) {
    std::string in;
    for (int i = 0; i < 300; i++)
        in += static_cast<char>(i * 7);
    std::string want = Digest(in);
    for (size_t step = 1; step <= 130; step++) {
        px_sha256_ctx ctx;
        px_sha256_init(&ctx);
        for (size_t at = 0; at < in.size(); at += step)
            px_sha256_update(&ctx, in.data() + at, std::min(step, in.size() - at));
        uint8_t d[PX_SHA256_LEN];
        px_sha256_final(&ctx, d);
        EXPECT_EQ(want, Hex(d)) << "step " << step;
    }
}

} // namespace
