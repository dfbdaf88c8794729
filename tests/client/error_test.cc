// The client's own error type: set, set_errno, wrap, clear, code names; and
// the public headers stand alone, without anything from server/.
#include "client/pyexec.h"

#include <errno.h>
#include <string.h>

#include <string>

#include <gtest/gtest.h>

#ifdef PYEXEC_BASE_ERROR_H
#error "client/pyexec.h must not include server/base/error.h"
#endif

TEST(PyexecError, SetReturnsMinusOneAndFillsCodeAndMessage) {
    pyexec_error err = PYEXEC_ERROR_INIT;
    EXPECT_EQ(pyexec_error_set(&err, PYEXEC_E_NOT_FOUND, "execution '%s' not found", "exe_x"), -1);
    EXPECT_EQ(err.code, PYEXEC_E_NOT_FOUND);
    EXPECT_STREQ(err.msg, "execution 'exe_x' not found");
}

TEST(PyexecError, SetErrnoAppendsStrerror) {
    pyexec_error err = PYEXEC_ERROR_INIT;
    EXPECT_EQ(pyexec_error_set_errno(&err, PYEXEC_E_INVALID, ENOENT, "open '%s'", "a.py"), -1);
    EXPECT_EQ(err.code, PYEXEC_E_INVALID);
    EXPECT_EQ(std::string(err.msg), std::string("open 'a.py': ") + strerror(ENOENT));
}

TEST(PyexecError, WrapPrefixesContextAndKeepsCode) {
    pyexec_error err = PYEXEC_ERROR_INIT;
    pyexec_error_set(&err, PYEXEC_E_UNAVAILABLE, "connection refused");
    EXPECT_EQ(pyexec_error_wrap(&err, "%s", "Execute"), -1);
    EXPECT_EQ(pyexec_error_wrap(&err, "run"), -1);
    EXPECT_EQ(err.code, PYEXEC_E_UNAVAILABLE);
    EXPECT_STREQ(err.msg, "run: Execute: connection refused");
}

TEST(PyexecError, WrapTruncatesAtTheBufferSize) {
    pyexec_error err = PYEXEC_ERROR_INIT;
    std::string long_msg(PYEXEC_ERROR_MSG_MAX - 1, 'x');
    pyexec_error_set(&err, PYEXEC_E_INTERNAL, "%s", long_msg.c_str());
    pyexec_error_wrap(&err, "context");
    EXPECT_EQ(strlen(err.msg), size_t{PYEXEC_ERROR_MSG_MAX - 1});
    EXPECT_EQ(std::string(err.msg).rfind("context: x", 0), 0u);
}

TEST(PyexecError, NullErrIsIgnored) {
    EXPECT_EQ(pyexec_error_set(nullptr, PYEXEC_E_INVALID, "x"), -1);
    EXPECT_EQ(pyexec_error_set_errno(nullptr, PYEXEC_E_INVALID, EIO, "x"), -1);
    EXPECT_EQ(pyexec_error_wrap(nullptr, "x"), -1);
    pyexec_error_clear(nullptr);
}

TEST(PyexecError, ClearResets) {
    pyexec_error err = PYEXEC_ERROR_INIT;
    pyexec_error_set(&err, PYEXEC_E_TIMEOUT, "late");
    pyexec_error_clear(&err);
    EXPECT_EQ(err.code, PYEXEC_OK);
    EXPECT_STREQ(err.msg, "");
}

TEST(PyexecError, CodeNamesAreGrpcStatusNames) {
    EXPECT_STREQ(pyexec_code_name(PYEXEC_OK), "OK");
    EXPECT_STREQ(pyexec_code_name(PYEXEC_E_INVALID), "INVALID_ARGUMENT");
    EXPECT_STREQ(pyexec_code_name(PYEXEC_E_NOT_FOUND), "NOT_FOUND");
    EXPECT_STREQ(pyexec_code_name(PYEXEC_E_EXHAUSTED), "RESOURCE_EXHAUSTED");
    EXPECT_STREQ(pyexec_code_name(PYEXEC_E_UNAVAILABLE), "UNAVAILABLE");
    EXPECT_STREQ(pyexec_code_name(PYEXEC_E_PRECONDITION), "FAILED_PRECONDITION");
    EXPECT_STREQ(pyexec_code_name(PYEXEC_E_OUT_OF_RANGE), "OUT_OF_RANGE");
    EXPECT_STREQ(pyexec_code_name(PYEXEC_E_CANCELLED), "CANCELLED");
    EXPECT_STREQ(pyexec_code_name(PYEXEC_E_TIMEOUT), "DEADLINE_EXCEEDED");
    EXPECT_STREQ(pyexec_code_name(PYEXEC_E_INTERNAL), "INTERNAL");
    EXPECT_STREQ(pyexec_code_name(static_cast<pyexec_code>(99)), "UNKNOWN");
}
