#include "server/base/tokens.h"

#include <ctype.h>
#include <stdio.h>

#include <gtest/gtest.h>

#include <string>

#include "server/base/sha256.h"

namespace {

struct Parsed {
    px_tokens *t = nullptr;
    px_error err = PX_ERROR_INIT;
    explicit Parsed(const std::string &text) {
        t = px_tokens_parse("tokens.txt", text.data(), text.size(), &err);
    }
    ~Parsed() { px_tokens_free(t); }
    std::string Find(const std::string &token) const {
        const char *tenant = px_tokens_find(t, token.data(), token.size());
        return tenant ? tenant : "(none)";
    }
};

std::string Sha(const std::string &token) {
    uint8_t d[PX_SHA256_LEN];
    px_sha256(token.data(), token.size(), d);
    std::string s;
    char b[3];
    for (int i = 0; i < PX_SHA256_LEN; i++) {
        snprintf(b, sizeof b, "%02x", d[i]);
        s += b;
    }
    return s;
}

TEST(Tokens, FindsTheTenantOfAToken) {
    Parsed p("# tenants\n"
             "\n"
             "alice " +
             Sha("alice-secret") +
             "\n"
             "  bob\t" +
             Sha("bob-secret") +
             "   # the first\r\n"
             "bob " +
             Sha("bob-second") +
             "\n"
             "team.x_1@corp-2 " +
             Sha("x"));
    ASSERT_NE(nullptr, p.t) << p.err.msg;
    EXPECT_EQ(4u, px_tokens_count(p.t));
    EXPECT_EQ("alice", p.Find("alice-secret"));
    EXPECT_EQ("bob", p.Find("bob-secret"));
    EXPECT_EQ("bob", p.Find("bob-second"));
    EXPECT_EQ("team.x_1@corp-2", p.Find("x"));
    EXPECT_EQ("(none)", p.Find("alice-secre"));
    EXPECT_EQ("(none)", p.Find(""));
    EXPECT_EQ("(none)", p.Find(Sha("alice-secret"))); /* the hash is not the token */
}

TEST(Tokens, UpperCaseHexIsAccepted) {
    std::string h = Sha("t");
    for (auto &c : h)
        c = (char)toupper(c);
    Parsed p("a " + h + "\n");
    ASSERT_NE(nullptr, p.t) << p.err.msg;
    EXPECT_EQ("a", p.Find("t"));
}

TEST(Tokens, EachBadLineIsNamed) {
    struct {
        std::string text, expect;
    } cases[] = {
        {"alice\n", "tokens.txt line 1: expected 'TENANT SHA256HEX' (two fields), got one"},
        {"# c\nalice " + Sha("a") + " extra\n", "tokens.txt line 2: expected 'TENANT SHA256HEX' "
                                                "(two fields), got more"},
        {"\n\nalice abc\n", "tokens.txt line 3: the hash is not 64 hex digits"},
        {"alice " + Sha("a").substr(1) + "g\n", "tokens.txt line 1: the hash is not 64 hex"},
        {"al/ice " + Sha("a") + "\n", "tokens.txt line 1: tenant 'al/ice' has a character"},
        {std::string(65, 'a') + " " + Sha("a") + "\n", "line 1: tenant longer than 64"},
        {"a " + Sha("x") + "\nb " + Sha("y") + "\nc " + Sha("x") + "\n",
         "tokens.txt line 3: the same hash as line 1 (tenant 'a')"},
        {"a " + Sha("x") + std::string("\nb\0\n", 4), "tokens.txt line 2: a NUL byte"},
    };
    for (auto &c : cases) {
        Parsed p(c.text);
        EXPECT_EQ(nullptr, p.t) << c.text;
        EXPECT_EQ(PX_E_INVALID, p.err.code);
        EXPECT_NE(std::string(p.err.msg).find(c.expect), std::string::npos)
            << p.err.msg << " (expected " << c.expect << ")";
    }
}

TEST(Tokens, AnEmptyFileHasNoTokens) {
    Parsed p("# nobody yet\n");
    ASSERT_NE(nullptr, p.t) << p.err.msg;
    EXPECT_EQ(0u, px_tokens_count(p.t));
    EXPECT_EQ("(none)", p.Find("anything"));
}

TEST(Tokens, AMissingFileIsNamed) {
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(nullptr, px_tokens_load("/nonexistent/tokens", &err));
    EXPECT_NE(std::string(err.msg).find("'/nonexistent/tokens'"), std::string::npos) << err.msg;
}

} // namespace
