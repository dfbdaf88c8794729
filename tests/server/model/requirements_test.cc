#include "server/model/requirements.h"

#include <string>

#include <gtest/gtest.h>

namespace {

/* The normalised form of `text`, or "ERROR: <message>". */
std::string norm(const char *text, size_t max_lines = 100) {
    px_requirements r;
    px_error err = PX_ERROR_INIT;
    if (px_requirements_parse(text, max_lines, &r, &err) < 0) {
        EXPECT_EQ(PX_E_INVALID, err.code) << err.msg;
        return std::string("ERROR: ") + err.msg;
    }
    std::string s = r.normalised;
    px_requirements_release(&r);
    return s;
}

void expect_refused(const char *line, const char *why) {
    std::string text = std::string("good\n") + line + "\n";
    std::string got = norm(text.c_str());
    EXPECT_EQ(0u, got.rfind("ERROR: line 2 (", 0)) << line << " -> " << got;
    EXPECT_NE(std::string::npos, got.find(why)) << line << " -> " << got;
}

} // namespace

TEST(Requirements, EmptyAndCommentsOnlyAreNone) {
    EXPECT_EQ("", norm(""));
    EXPECT_EQ("", norm(nullptr));
    EXPECT_EQ("", norm("\n  \n# just a comment\n\t# another\r\n"));
}

TEST(Requirements, NamesAreCanonicalAndLinesSorted) {
    EXPECT_EQ("pyyaml\nrequests\n", norm("requests\nPyYAML\n"));
    EXPECT_EQ("zope-interface\n", norm("Zope.__Interface"));
    EXPECT_EQ("a\n", norm("a\nA\n"));
    EXPECT_EQ("demo\n", norm("  demo   # the demo package\n"));
}

TEST(Requirements, ExtrasSpecifiersAndMarkersAreNormalised) {
    EXPECT_EQ("requests[security,socks]<3,>=2.0\n",
              norm("Requests [ socks , Security ] >= 2.0 , < 3"));
    EXPECT_EQ("pkg==1.*\n", norm("pkg (==1.*)"));
    EXPECT_EQ("pkg~=1.4.2\n", norm("pkg~=1.4.2"));
    EXPECT_EQ("pkg===1.0+local\n", norm("pkg===1.0+local"));
    EXPECT_EQ("pkg>=1 ; python_version >= \"3.8\" and ( os_name == 'posix' )\n",
              norm("pkg>=1;python_version>=\"3.8\"   and (os_name=='posix')"));
    EXPECT_EQ("pkg ; extra not in \"a b\"\n", norm("pkg ; extra not in \"a b\""));
}

TEST(Requirements, SameRequirementsInAnotherOrderNormaliseAlike) {
    EXPECT_EQ(norm("b>=1,<2\nA\n"), norm("a\n\nB <2, >=1\na\n"));
}

TEST(Requirements, DashMeansNoDetection) {
    px_requirements r;
    px_error err = PX_ERROR_INIT;
    ASSERT_EQ(0, px_requirements_parse(" - \n", 10, &r, &err)) << err.msg;
    EXPECT_TRUE(r.no_detect);
    EXPECT_STREQ("-\n", r.normalised);
    EXPECT_EQ(0u, r.count);
    px_requirements_release(&r);
    EXPECT_NE(std::string::npos, norm("-\nrequests\n").find("cannot be combined"));
}

TEST(Requirements, CountIsOfDistinctLines) {
    px_requirements r;
    px_error err = PX_ERROR_INIT;
    ASSERT_EQ(0, px_requirements_parse("a\nb\nA\n", 10, &r, &err)) << err.msg;
    EXPECT_EQ(2u, r.count);
    px_requirements_release(&r);
}

TEST(Requirements, OptionsAreRefused) {
    for (const char *line :
         {"-i http://index.example/simple", "--index-url=http://x/simple",
          "--extra-index-url http://x", "-e .", "-e git+https://h/r.git", "-r other.txt",
          "--requirement other.txt", "-c constraints.txt", "-f /wheels", "--find-links /wheels",
          "--trusted-host h", "--no-index", "--pre", "--hash=sha256:00", "--only-binary=:all:"})
        expect_refused(line, "options are not allowed");
}

TEST(Requirements, UrlsAndDirectReferencesAreRefused) {
    expect_refused("https://h/pkg-1.0-py3-none-any.whl", "URLs are not allowed");
    expect_refused("git+https://h/repo.git#egg=pkg", "URLs are not allowed");
    expect_refused("file:///tmp/pkg.whl", "URLs are not allowed");
    expect_refused("pkg @ https://h/pkg.whl", "URLs are not allowed");
    expect_refused("pkg@git+ssh", "direct references");
}

TEST(Requirements, PathsAreRefused) {
    expect_refused("./pkg", "paths are not allowed");
    expect_refused("../pkg", "paths are not allowed");
    expect_refused("/wheels/pkg.whl", "paths are not allowed");
    expect_refused("~/pkg", "paths are not allowed");
    expect_refused("dir/pkg", "paths are not allowed");
    expect_refused("dir\\pkg", "paths are not allowed");
    expect_refused(".", "paths are not allowed");
    expect_refused("pkg-1.0-py3-none-any.whl", "paths are not allowed");
    expect_refused("pkg-1.0.tar.gz", "paths are not allowed");
    expect_refused("pkg.zip", "paths are not allowed");
}

TEST(Requirements, OtherFormsAreRefused) {
    expect_refused("pkg \\", "line continuations");
    expect_refused("pkg==${VERSION}", "environment variables");
    expect_refused("pkg; os.system('x')", "marker");
    expect_refused("pkg ; python_version >= '3' )", "')' without");
    expect_refused("pkg ; (python_version >= '3'", "'(' without");
    expect_refused("pkg ; python_version >= '3", "unterminated string");
    expect_refused("pkg ;", "not followed by a marker");
    expect_refused("pkg foo", "unexpected text");
    expect_refused("pkg >= ", "needs a version");
    expect_refused("pkg => 1", "must start with one of");
    expect_refused("pkg[a b]", "extras");
    expect_refused("pkg[", "an extra must be a name");
    expect_refused("pkg (>=1", "not closed");
    expect_refused("-pkg", "options");
    expect_refused("pkg-", "distribution name");
    expect_refused("$pkg", "distribution name");
    expect_refused("pkg\x01", "unexpected text");
}

TEST(Requirements, TheRefusedLineIsQuotedSafely) {
    std::string got = norm("a\n--index-url http://x\x1b[31m\n");
    EXPECT_NE(std::string::npos, got.find("line 2 ('--index-url http://x\\x1b[31m')")) << got;
    std::string long_line = "-" + std::string(200, 'x');
    got = norm(long_line.c_str());
    EXPECT_NE(std::string::npos, got.find("...'")) << got;
    EXPECT_LT(got.size(), 300u);
}

TEST(Requirements, LineCountAndLengthAreBounded) {
    EXPECT_EQ("a\nb\n", norm("a\nb\n", 2));
    EXPECT_NE(std::string::npos, norm("a\nb\nc\n", 2).find("line 3: more than 2 requirements"));
    std::string long_name(PX_REQUIREMENT_LINE_MAX + 1, 'a');
    EXPECT_NE(std::string::npos, norm(long_name.c_str()).find("the maximum is 1024"));
    std::string ok_name(PX_REQUIREMENT_LINE_MAX, 'a');
    EXPECT_EQ(ok_name + "\n", norm(ok_name.c_str()));
}

TEST(Requirements, ANormalisedLineIsAlwaysALineTheParserAccepts) {
    /* A marker of many adjacent empty strings gains a blank between each
     * pair when normalised (found by the requirements fuzz target): a line
     * under the bound whose normalised form would be over it is refused. */
    std::string marker = "reY;<" + std::string(1000, '\'');
    std::string got = norm(marker.c_str());
    EXPECT_EQ(0u, got.rfind("ERROR: line 1 (", 0)) << got;
    EXPECT_NE(std::string::npos, got.find("over the maximum line length")) << got;
    std::string short_marker = "a; python_version " + std::string("> '3'");
    EXPECT_EQ("a ; python_version > '3'\n", norm(short_marker.c_str()));
}

TEST(Requirements, CanonicalName) {
    char out[16];
    ASSERT_EQ(0, px_requirement_canonical_name("Foo._-Bar", 9, out, sizeof out));
    EXPECT_STREQ("foo-bar", out);
    EXPECT_EQ(-1, px_requirement_canonical_name("abcdefghijklmnopq", 17, out, sizeof out));
}
