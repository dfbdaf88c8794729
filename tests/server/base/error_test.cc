#include "server/base/error.h"

#include <errno.h>
#include <string.h>

#include <gtest/gtest.h>

TEST(Error, SetFormatsMessageAndCode) {
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(-1, px_error_set(&err, PX_E_INVALID, "bad %s", "path"));
    EXPECT_EQ(PX_E_INVALID, err.code);
    EXPECT_STREQ("bad path", err.msg);
}

TEST(Error, WrapReadsLikeAStack) {
    px_error err = PX_ERROR_INIT;
    px_error_set(&err, PX_E_UNAVAILABLE, "HTTP 500");
    px_error_wrap(&err, "start container '%s'", "ab12");
    px_error_wrap(&err, "execute");
    EXPECT_STREQ("execute: start container 'ab12': HTTP 500", err.msg);
    EXPECT_EQ(PX_E_UNAVAILABLE, err.code);
}

TEST(Error, WrapTruncatesInsteadOfOverflowing) {
    px_error err = PX_ERROR_INIT;
    std::string big(3000, 'x');
    px_error_set(&err, PX_E_INTERNAL, "%s", big.c_str());
    px_error_wrap(&err, "%s", big.c_str());
    EXPECT_EQ(PX_ERROR_MSG_MAX - 1, strlen(err.msg));
}

TEST(Error, SetErrnoAppendsStrerror) {
    px_error err = PX_ERROR_INIT;
    px_error_set_errno(&err, PX_E_INTERNAL, ENOENT, "open '%s'", "/x");
    EXPECT_STREQ("open '/x': No such file or directory", err.msg);
}

TEST(Error, NullErrIsIgnored) {
    EXPECT_EQ(-1, px_error_set(NULL, PX_E_INVALID, "x"));
    EXPECT_EQ(-1, px_error_wrap(NULL, "x"));
}

TEST(Error, CodeNames) {
    EXPECT_STREQ("INVALID_ARGUMENT", px_code_name(PX_E_INVALID));
    EXPECT_STREQ("RESOURCE_EXHAUSTED", px_code_name(PX_E_EXHAUSTED));
    EXPECT_STREQ("OK", px_code_name(PX_OK));
    EXPECT_STREQ("UNAUTHENTICATED", px_code_name(PX_E_UNAUTHENTICATED));
}
