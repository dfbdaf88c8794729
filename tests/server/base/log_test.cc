// px_log_format_line: the text and JSON forms of a line, the escaping that
// keeps a JSON line one valid ASCII object whatever the message holds, the
// execution id taken from the message, and the cut of an over-long line.
#include <gtest/gtest.h>

#include <string>

extern "C" {
#include "server/base/log.h"
}

namespace {

const char kId[] = "exe_1b4e28ba-2fa1-4d2e-8c9f-0e02b2c3d479";

std::string Line(px_log_format format, const px_log_fields *f, const char *message,
                 size_t n = 16384) {
    std::string out(n, '\0');
    // 2026-12-01T14:20:05.123Z
    px_log_format_line(&out[0], n, format, PX_LOG_WARN, 1796134805, 123000000, f, message);
    out.resize(strlen(out.c_str()));
    return out;
}

TEST(LogTest, TextLineIsTimeLevelMessage) {
    EXPECT_EQ(Line(PX_LOG_TEXT, nullptr, "hello"), "2026-12-01T14:20:05.123Z WARN  hello");
}

TEST(LogTest, JsonLineHasEveryKeyInOrder) {
    px_log_set_node("node-a");
    px_log_fields f = {kId, "", "Execute", "ipv4:127.0.0.1:4000", "OK", 12345};
    EXPECT_EQ(Line(PX_LOG_JSON, &f, "rpc: Execute"),
              std::string("{\"time\":\"2026-12-01T14:20:05.123Z\",\"level\":\"warn\","
                          "\"message\":\"rpc: Execute\",\"execution_id\":\"") +
                  kId +
                  "\",\"tenant\":\"\",\"node\":\"node-a\",\"rpc\":\"Execute\","
                  "\"peer\":\"ipv4:127.0.0.1:4000\",\"code\":\"OK\",\"duration_ms\":12.345}");
    px_log_set_node("");
}

TEST(LogTest, JsonLineWithoutFieldsHasEmptyKeysAndNullDuration) {
    std::string line = Line(PX_LOG_JSON, nullptr, "started");
    EXPECT_NE(line.find("\"execution_id\":\"\",\"tenant\":\"\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"duration_ms\":null}"), std::string::npos) << line;
}

TEST(LogTest, JsonTakesTheExecutionIdTheMessageNames) {
    std::string msg = std::string("docker: execution ") + kId + ": create container: 5 ms";
    std::string line = Line(PX_LOG_JSON, nullptr, msg.c_str());
    EXPECT_NE(line.find(std::string("\"execution_id\":\"") + kId + "\""), std::string::npos)
        << line;
    // Something that only looks like one is not taken.
    line = Line(PX_LOG_JSON, nullptr, "execution exe_nope: x");
    EXPECT_NE(line.find("\"execution_id\":\"\""), std::string::npos) << line;
}

TEST(LogTest, JsonEscapesQuotesBackslashesControlAndNonAsciiBytes) {
    std::string line = Line(PX_LOG_JSON, nullptr, "a\"b\\c\nd\te\x01\xc3\xa9");
    EXPECT_NE(line.find("\"message\":\"a\\\"b\\\\c\\nd\\te\\u0001\\u00c3\\u00a9\""),
              std::string::npos)
        << line;
    for (unsigned char c : line)
        EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "byte " << int(c);
}

TEST(LogTest, AnOverLongJsonLineIsCutInsideItsMessageAndStaysWhole) {
    std::string msg(5000, '"'); // each escapes to two bytes
    std::string line = Line(PX_LOG_JSON, nullptr, msg.c_str(), PX_LOG_LINE_MIN);
    ASSERT_LT(line.size(), size_t(PX_LOG_LINE_MIN));
    EXPECT_EQ(line.substr(line.size() - 19), "\"duration_ms\":null}");
    // The message ends on a whole escape, then its closing quote.
    size_t end = line.find("\",\"execution_id\"");
    ASSERT_NE(end, std::string::npos);
    size_t start = line.find("\"message\":\"") + 11;
    EXPECT_EQ((end - start) % 2, 0u);
    EXPECT_GT(end - start, 1000u);
}

TEST(LogTest, LevelAndFormatNamesParse) {
    px_log_level level;
    ASSERT_EQ(px_log_level_parse("warn", &level), 0);
    EXPECT_EQ(level, PX_LOG_WARN);
    EXPECT_STREQ(px_log_level_name(level), "warn");
    EXPECT_EQ(px_log_level_parse("WARN", &level), -1);
    px_log_format format;
    ASSERT_EQ(px_log_format_parse("json", &format), 0);
    EXPECT_EQ(format, PX_LOG_JSON);
    EXPECT_EQ(px_log_format_parse("xml", &format), -1);
}

} // namespace
