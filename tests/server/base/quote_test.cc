// px_quote: the one way client strings appear in messages and logs.
#include "server/base/quote.h"

#include <gtest/gtest.h>

#include <string>

namespace {

TEST(Quote, PrintableAsciiIsKept) {
    px_quoted q;
    EXPECT_STREQ(px_quote_str(&q, "src/main.py"), "src/main.py");
    EXPECT_STREQ(px_quote_str(&q, ""), "");
    EXPECT_STREQ(px_quote_str(&q, nullptr), "");
}

TEST(Quote, ControlBytesQuotesBackslashesAndNonAsciiAreEscaped) {
    px_quoted q;
    const char s[] = "a\nb'c\\d\x7f\xc3\xa9";
    EXPECT_STREQ(px_quote(&q, s, sizeof s - 1), "a\\x0ab\\x27c\\x5cd\\x7f\\xc3\\xa9");
    const char nul[] = {'x', '\0', 'y'};
    EXPECT_STREQ(px_quote(&q, nul, sizeof nul), "x\\x00y");
}

TEST(Quote, LongStringsAreCutWithAnEllipsis) {
    px_quoted q;
    std::string at_max(PX_QUOTE_MAX_BYTES, 'a');
    EXPECT_EQ(px_quote_str(&q, at_max.c_str()), at_max);
    std::string over(PX_QUOTE_MAX_BYTES + 1, 'a');
    EXPECT_EQ(px_quote_str(&q, over.c_str()), at_max + "...");
    // The worst case fills the buffer exactly: every byte escaped, then "...".
    std::string worst(1000, '\x01');
    EXPECT_EQ(std::string(px_quote_str(&q, worst.c_str())).size(), PX_QUOTE_MAX_BYTES * 4 + 3);
}

} // namespace
