/* The `pyexec` CLI against a real pyexecd: input methods, streaming, exit
 * codes, --json and usage errors. */
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "tests/client/pyexecd_process.h"

namespace {

using pyexec_test::ProcessResult;

class CliTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        server_ = new pyexec_test::PyexecdProcess();
        std::string why;
        if (!server_->Start(&why)) {
            start_error_ = why;
            delete server_;
            server_ = nullptr;
        }
    }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    void SetUp() override {
        ASSERT_NE(server_, nullptr) << start_error_;
        cli_ = pyexec_test::Runfile("client/pyexec");
        ASSERT_FALSE(cli_.empty()) << "client/pyexec not in runfiles";
        const char *tmp = getenv("TEST_TMPDIR");
        std::string tmpl = std::string(tmp ? tmp : "/tmp") + "/cli_test.XXXXXX";
        ASSERT_NE(mkdtemp(&tmpl[0]), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override {
        for (const auto &id : submitted_)
            Run({"kill", "-q", id});
        std::string cmd = "rm -rf '" + dir_ + "'";
        EXPECT_EQ(system(cmd.c_str()), 0);
    }

    /* Runs `pyexec ARGS` with PYEXEC_SERVER set to the test server. */
    ProcessResult Run(const std::vector<std::string> &args, const std::string &in = "",
                      bool stdin_null = false) {
        std::vector<std::string> argv = {cli_};
        argv.insert(argv.end(), args.begin(), args.end());
        return pyexec_test::RunProcess(argv, in, {"PYEXEC_SERVER=" + server_->address()},
                                       stdin_null);
    }
    std::string Write(const std::string &rel, const std::string &content, mode_t mode = 0644) {
        std::string path = dir_ + "/" + rel;
        for (size_t i = dir_.size() + 1; (i = path.find('/', i)) != std::string::npos; i++)
            mkdir(path.substr(0, i).c_str(), 0755);
        std::ofstream(path, std::ios::binary) << content;
        chmod(path.c_str(), mode);
        return path;
    }

    static pyexec_test::PyexecdProcess *server_;
    static std::string start_error_;
    std::string cli_, dir_;
    std::vector<std::string> submitted_;
};

pyexec_test::PyexecdProcess *CliTest::server_ = nullptr;
std::string CliTest::start_error_;

TEST_F(CliTest, RunsAFileAndStreamsItsOutput) {
    std::string f = Write("hello.py", "import sys\nprint('hello')\nsys.stderr.write('oops\\n')\n");
    ProcessResult r = Run({"run", f});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "hello\n");
    EXPECT_EQ(r.err, "oops\n");
}

TEST_F(CliTest, PropagatesTheExitCode) {
    EXPECT_EQ(Run({"run", Write("a.py", "import sys\nsys.exit(7)\n")}).exit_code, 7);
    /* Killed by SIGTERM: 128 + 15. */
    ProcessResult r = Run({"run", Write("b.py", "import os, signal\nos.kill(os.getpid(), "
                                                "signal.SIGTERM)\n")});
    EXPECT_EQ(r.exit_code, 143) << r.err;
}

TEST_F(CliTest, TimeoutExits124AndSaysSoOnce) {
    ProcessResult r = Run({"run", "--timeout", "1",
                           Write("slow.py", "import time\n"
                                            "time.sleep(60)\n")});
    EXPECT_EQ(r.exit_code, 124) << r.err;
    EXPECT_NE(r.err.find(" timed out after 1 s\n"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("exit code"), std::string::npos) << "no conflicting code: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(CliTest, ASignalDeathIsNamed) {
    ProcessResult r = Run({"run", Write("segv.py", "import ctypes\nctypes.string_at(0)\n")});
    EXPECT_EQ(r.exit_code, 139) << r.err;
    EXPECT_NE(r.err.find("killed by SIGSEGV\n"), std::string::npos) << r.err;
    /* A plain exit says nothing. */
    EXPECT_EQ(Run({"run", Write("seven.py", "import sys\nsys.exit(7)\n")}).err, "");
}

TEST_F(CliTest, KilledIsSaidOnceInWords) {
    ProcessResult s = Run({"submit", Write("sl.py", "import time\ntime.sleep(300)\n")});
    ASSERT_EQ(s.exit_code, 0) << s.err;
    std::string id = s.out.substr(0, s.out.find('\n'));
    submitted_.push_back(id);
    ASSERT_EQ(Run({"kill", id}).exit_code, 0);
    ProcessResult f = Run({"follow", id});
    EXPECT_EQ(f.exit_code, 137);
    EXPECT_EQ(f.err, "pyexec: execution " + id + " was killed\n");
}

TEST_F(CliTest, OutputLimitNamesTheLimit) {
    /* The test server keeps the default output cap, 16 MiB. */
    ProcessResult r = Run({"run", Write("flood.py", "import sys\nwhile True:\n"
                                                    "    sys.stdout.write('x' * 65536)\n")});
    EXPECT_EQ(r.out.size(), 16u << 20);
    EXPECT_NE(r.err.find("its output reached the server's limit of 16 MiB\n"), std::string::npos)
        << r.err;
}

TEST_F(CliTest, VerboseUsesUnits) {
    ProcessResult r = Run({"run", "-v", Write("v.py", "print(1)\n")});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("Peak memory: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(" MiB\n"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find(" bytes\n"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("CPU time: "), std::string::npos) << r.err;
}

TEST_F(CliTest, RunsCodeFromStandardInput) {
    ProcessResult r = Run({"run"}, "print(6 * 7)\n");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "42\n");
}

TEST_F(CliTest, ForwardsPipedStandardInput) {
    std::string f = Write("ask.py", "print('hi', input())\n");
    ProcessResult r = Run({"run", f}, "bob\n");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "hi bob\n");
    /* `-` and /dev/stdin name the same pipe. */
    for (const char *name : {"-", "/dev/stdin"}) {
        ProcessResult d = Run({"run", "--stdin-file", name, f}, "ann\n");
        EXPECT_EQ(d.exit_code, 0) << name << ": " << d.err;
        EXPECT_EQ(d.out, "hi ann\n") << name;
    }
    /* Code on stdin leaves the program none; `-` then has nothing to give. */
    ProcessResult both = Run({"run", "--stdin-file", "-"}, "print(1)\n");
    EXPECT_EQ(both.exit_code, 2) << both.err;
    EXPECT_NE(both.err.find("already carries the code"), std::string::npos) << both.err;
}

TEST_F(CliTest, PipedStandardInputPastTheServersLimitIsRefusedClearly) {
    ProcessResult r = Run({"run", Write("n.py", "print(1)\n")}, std::string((16u << 20) + 1, 'x'));
    EXPECT_EQ(r.exit_code, 125) << r.err;
    EXPECT_NE(r.err.find("INVALID_ARGUMENT: Execute: metadata.stdin: 16777217 bytes, the maximum "
                         "is 16777216"),
              std::string::npos)
        << r.err;
}

TEST_F(CliTest, AcceptsUrlStyleAddresses) {
    std::string f = Write("a.py", "print('url')\n");
    for (const std::string &addr :
         {"http://" + server_->address(), "http://" + server_->address() + "/",
          "grpc://" + server_->address()}) {
        ProcessResult r = Run({"--server", addr, "run", f});
        EXPECT_EQ(r.exit_code, 0) << addr << ": " << r.err;
        EXPECT_EQ(r.out, "url\n") << addr;
    }
    /* TLS to a plaintext server: the handshake fails, the server is named. */
    ProcessResult tls = Run({"--server", "https://" + server_->address(), "health"});
    EXPECT_NE(tls.exit_code, 0);
    EXPECT_NE(tls.err.find("UNAVAILABLE"), std::string::npos) << tls.err;
    ProcessResult port = Run({"health", "--server", "localhost:http"});
    EXPECT_EQ(port.exit_code, 2);
    EXPECT_NE(port.err.find("bad port 'http'"), std::string::npos) << port.err;
}

TEST_F(CliTest, AnUnreachableServerIsNamed) {
    /* An IP address: a host name would go through c-ares, whose resolver
     * state LeakSanitizer reports at exit in the ASan run. */
    ProcessResult r = Run({"--server", "http://127.0.0.1:1", "health"});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("UNAVAILABLE: Check: server 127.0.0.1:1: "), std::string::npos) << r.err;
}

TEST_F(CliTest, PassesArgsEnvAndStdinFile) {
    std::string f = Write("main.py", "import os, sys\n"
                                     "print(sys.argv[1:], os.environ['K'], sys.stdin.read())\n");
    std::string in = Write("input.txt", "data");
    setenv("PYEXEC_CLI_TEST_FORWARD", "fwd", 1);
    ProcessResult r = Run({"run", "--env", "K=v", "-e", "PYEXEC_CLI_TEST_FORWARD", "--arg", "one",
                           "--stdin-file", in, f, "--", "two", "--three"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "['one', 'two', '--three'] v data\n");
}

TEST_F(CliTest, RunsADirectoryKeepingPathsAndModes) {
    Write("proj/main.py", "import os\nfrom pkg import mod\n"
                          "print(mod.X, oct(os.stat('tool.sh').st_mode & 0o777))\n");
    Write("proj/pkg/__init__.py", "");
    Write("proj/pkg/mod.py", "X = 'deep'\n");
    Write("proj/tool.sh", "echo\n", 0750);
    ProcessResult r = Run({"run", dir_ + "/proj"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "deep 0o750\n");
}

TEST_F(CliTest, RunsRepeatedFileFlagsWithRelativePaths) {
    Write("lib/util.py", "def f():\n    return 'util'\n");
    Write("app.py", "import sys\nsys.path.insert(0, 'lib')\nimport util\nprint(util.f())\n");
    /* Paths are kept relative as given: run from the temporary directory. */
    std::string cmd = "cd '" + dir_ + "' && PYEXEC_SERVER=" + server_->address() + " '" + cli_ +
                      "' run --file app.py --file ./lib/util.py --entrypoint app.py";
    FILE *p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[256] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    int status = pclose(p);
    EXPECT_EQ(std::string(buf, n), "util\n");
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST_F(CliTest, RunsATarArchive) {
    Write("t/main.py", "print('from tar')\n");
    std::string cmd = "tar -C '" + dir_ + "/t' -cf '" + dir_ + "/code.tar' main.py";
    ASSERT_EQ(system(cmd.c_str()), 0);
    ProcessResult r = Run({"run", dir_ + "/code.tar"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "from tar\n");
}

TEST_F(CliTest, RunsCompressedTarArchives) {
    Write("t/main.py", "print('from a compressed tar')\n");
    for (const char *c : {"z:code.tar.gz", "z:code.tgz", "j:code.tar.bz2", "J:code.tar.xz"}) {
        std::string archive = dir_ + "/" + (c + 2);
        std::string cmd = std::string("tar -C '") + dir_ + "/t' -c" + c[0] + "f '" + archive +
                          "' main.py";
        ASSERT_EQ(system(cmd.c_str()), 0) << cmd;
        ProcessResult r = Run({"run", archive});
        EXPECT_EQ(r.exit_code, 0) << c << ": " << r.err;
        EXPECT_EQ(r.out, "from a compressed tar\n") << c;
    }
    /* A gzip under another name is not taken for source code. */
    std::string cmd = "cp '" + dir_ + "/code.tgz' '" + dir_ + "/code.gz'";
    ASSERT_EQ(system(cmd.c_str()), 0);
    ProcessResult gz = Run({"run", dir_ + "/code.gz"});
    EXPECT_EQ(gz.exit_code, 2);
    EXPECT_NE(gz.err.find("is a gzip file, not Python code"), std::string::npos) << gz.err;
    ProcessResult bad = Run({"run", Write("junk.tar.gz", "not gzip\n")});
    EXPECT_EQ(bad.exit_code, 2);
    EXPECT_NE(bad.err.find("not compressed"), std::string::npos) << bad.err;
}

/* Lists every file the program received, links shown with their targets. */
static const char kListFiles[] =
    "import os\n"
    "out = []\n"
    "for d, dirs, files in os.walk('.'):\n"
    "    for f in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:\n"
    "        p = os.path.join(d, f)[2:]\n"
    "        out.append(p + (' -> ' + os.readlink(p) if os.path.islink(p) else ''))\n"
    "print('\\n'.join(sorted(out)))\n";

TEST_F(CliTest, DirectoriesLeaveVcsCachesAndIgnoredFilesHome) {
    Write("p/main.py", kListFiles);
    Write("p/.git/HEAD", "ref\n");
    Write("p/__pycache__/main.cpython-311.pyc", "x");
    Write("p/__pycache__/note.txt", "x");
    Write("p/pkg/__pycache__/m.cpython-311.pyc", "x");
    Write("p/pkg/mod.py", "");
    Write("p/pkg/old.pyc", "x");
    Write("p/build/out.o", "x");
    Write("p/src/build/keep.py", "");
    Write("p/debug.log", "x");
    Write("p/important.log", "x");
    Write("p/docs/readme.md", "x");
    Write("p/docs/a/b/deep.md", "x");
    Write("p/docs/a/b/deep.txt", "x");
    Write("p/data/secret.csv", "x");
    Write("p/data/sample.csv", "x");
    Write("p/.pyexecignore", "# comments and blank lines are skipped\n"
                             "\n"
                             "/build/\n"        /* anchored, directories only */
                             "*.log\n"          /* any depth */
                             "!important.log\n" /* negation */
                             "docs/**/*.md\n"   /* ** spans zero or more directories */
                             "data/*\n"
                             "!data/sample.csv\n"
                             "!__pycache__/\n"); /* a default rule undone (*.pyc stays) */
    ProcessResult r = Run({"run", dir_ + "/p"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, ".pyexecignore\n"
                     "__pycache__/note.txt\n"
                     "data/sample.csv\n"
                     "docs/a/b/deep.txt\n"
                     "important.log\n"
                     "main.py\n"
                     "pkg/mod.py\n"
                     "src/build/keep.py\n");
}

TEST_F(CliTest, DirectoriesSendSymbolicLinksAsLinks) {
    Write("l/main.py", kListFiles);
    Write("l/pkg/mod.py", "X = 1\n");
    ASSERT_EQ(symlink("pkg/mod.py", (dir_ + "/l/alias.py").c_str()), 0);
    ASSERT_EQ(symlink("pkg", (dir_ + "/l/pkglink").c_str()), 0);
    ProcessResult r = Run({"run", dir_ + "/l"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "alias.py -> pkg/mod.py\nmain.py\npkg/mod.py\npkglink -> pkg\n");

    /* A link out of the project is sent as a link, which the server refuses:
     * the host file it points to never leaves the machine. */
    ASSERT_EQ(symlink("/etc/passwd", (dir_ + "/l/passwd").c_str()), 0);
    ProcessResult out = Run({"run", dir_ + "/l"});
    EXPECT_EQ(out.exit_code, 125);
    EXPECT_NE(out.err.find("INVALID_ARGUMENT"), std::string::npos) << out.err;
    EXPECT_NE(out.err.find("'passwd'"), std::string::npos) << out.err;
    EXPECT_EQ(out.out.find("root:"), std::string::npos) << out.out;
}

TEST_F(CliTest, JsonPrintsOneResultObject) {
    ProcessResult r = Run({"run", "--json", Write("j.py", "print('hi \"there\"')\n")});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.find("{\"execution_id\": \"exe_"), 0u) << r.out;
    EXPECT_NE(r.out.find("\"status\": \"completed\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\"stdout\": \"hi \\\"there\\\"\\n\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\"exit_code\": 0"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\"reason\": \"exited\""), std::string::npos) << r.out;
    EXPECT_EQ(r.out.back(), '\n');
    EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << "one line";
}

TEST_F(CliTest, EvalPrintsTheOutputThenTheResult) {
    ProcessResult r = Run({"eval", "print('hi')\nx = [1, 2]\nx"}, "", true);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "hi\n[1, 2]\n");
    ProcessResult in = Run({"eval"}, "import sys\n'%d.%d' % sys.version_info[:2]\n");
    EXPECT_EQ(in.exit_code, 0) << in.err;
    EXPECT_EQ(in.out, "'3.11'\n");
    ProcessResult v = Run({"eval", "--python", "3.13", "import sys\nsys.version_info[:2]"}, "",
                          true);
    EXPECT_EQ(v.exit_code, 0) << v.err;
    EXPECT_EQ(v.out, "(3, 13)\n");
    ProcessResult piped = Run({"eval", "input()"}, "bob\n");
    EXPECT_EQ(piped.out, "'bob'\n") << piped.err;
    ProcessResult none = Run({"eval", "x = 1"}, "", true);
    EXPECT_EQ(none.exit_code, 0);
    EXPECT_EQ(none.out, "");
    ProcessResult plain = Run({"eval", "--no-result", "2 + 2"}, "", true);
    EXPECT_EQ(plain.exit_code, 0) << plain.err;
    EXPECT_EQ(plain.out, "");
}

TEST_F(CliTest, EvalThatRaisesExitsOneWithTheTraceback) {
    ProcessResult r = Run({"eval", "x = 1\nx / 0"}, "", true);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("File \"/work/main.py\", line 2"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("ZeroDivisionError: division by zero"), std::string::npos) << r.err;
    ProcessResult j = Run({"eval", "--json", "x = 1\nx / 0"}, "", true);
    EXPECT_EQ(j.exit_code, 1);
    EXPECT_NE(j.out.find("\"result\": null, \"error_type\": \"ZeroDivisionError\", "
                         "\"error_line\": 2, \"error_message\": \"division by zero\"}"),
              std::string::npos)
        << j.out;
    ProcessResult ok = Run({"eval", "--json", "'a' * 3"}, "", true);
    EXPECT_NE(ok.out.find("\"result\": \"'aaa'\", \"error_type\": null"), std::string::npos)
        << ok.out;
    EXPECT_EQ(Run({"eval", "--pre", "true", "1"}, "", true).exit_code, 2);
    EXPECT_EQ(Run({"eval", "1", "2"}, "", true).exit_code, 2);
}

TEST_F(CliTest, LsListsNewestFirstAndFilters) {
    ProcessResult a = Run({"eval", "--json", "1"}, "", true);
    ProcessResult b = Run({"eval", "--json", "1/0"}, "", true);
    auto id_of = [](const std::string &json) {
        size_t at = json.find("exe_");
        return json.substr(at, 40);
    };
    std::string ida = id_of(a.out), idb = id_of(b.out);
    ProcessResult l = Run({"ls"}, "", true);
    EXPECT_EQ(l.exit_code, 0) << l.err;
    size_t pa = l.out.find(ida), pb = l.out.find(idb);
    ASSERT_NE(pa, std::string::npos) << l.out;
    ASSERT_NE(pb, std::string::npos) << l.out;
    EXPECT_LT(pb, pa) << "newest first";
    EXPECT_NE(l.out.find(idb + "  completed  exited               1"), std::string::npos) << l.out;
    ProcessResult q = Run({"ls", "-q", "--status", "completed"}, "", true);
    EXPECT_NE(q.out.find(ida + "\n"), std::string::npos) << q.out;
    ProcessResult k = Run({"ls", "-q", "--status", "killed"}, "", true);
    EXPECT_EQ(k.out.find(ida), std::string::npos) << k.out;
    EXPECT_EQ(Run({"ls", "--status", "done"}, "", true).exit_code, 2);
}

TEST_F(CliTest, JsonReplacesInvalidUtf8) {
    ProcessResult r = Run(
        {"run", "--json", Write("u.py", "import sys\nsys.stdout.buffer.write(b'a\\xffb\\x01')\n")});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("\"stdout\": \"a\\ufffdb\\u0001\""), std::string::npos) << r.out;
}

TEST_F(CliTest, SubmitFollowGetKill) {
    ProcessResult s = Run({"submit", Write("s.py", "print('sub')\n")});
    ASSERT_EQ(s.exit_code, 0) << s.err;
    std::string id = s.out.substr(0, s.out.find('\n'));
    ASSERT_EQ(id.rfind("exe_", 0), 0u) << s.out;
    submitted_.push_back(id);

    ProcessResult f = Run({"follow", id});
    EXPECT_EQ(f.exit_code, 0) << f.err;
    EXPECT_EQ(f.out, "sub\n");
    ProcessResult off = Run({"follow", id, "--offset", "2"});
    EXPECT_EQ(off.out, "b\n");

    ProcessResult g = Run({"get", id});
    EXPECT_EQ(g.exit_code, 0) << g.err;
    EXPECT_EQ(g.out, "sub\n");
    ProcessResult gj = Run({"get", "--json", id});
    EXPECT_NE(gj.out.find("\"execution_id\": \"" + id + "\""), std::string::npos) << gj.out;

    ProcessResult slow = Run({"submit", Write("sl.py", "import time\ntime.sleep(300)\n")});
    ASSERT_EQ(slow.exit_code, 0) << slow.err;
    std::string sid = slow.out.substr(0, slow.out.find('\n'));
    submitted_.push_back(sid);
    ProcessResult k = Run({"kill", sid});
    EXPECT_EQ(k.exit_code, 0) << k.err;
    EXPECT_EQ(k.out, sid + " killed\n");
    /* Following a killed execution exits 137. */
    EXPECT_EQ(Run({"follow", sid}).exit_code, 137);
}

TEST_F(CliTest, HealthAndVersion) {
    ProcessResult h = Run({"health"});
    EXPECT_EQ(h.exit_code, 0) << h.err;
    EXPECT_EQ(h.out, "SERVING\n");
    ProcessResult v = Run({"version"});
    EXPECT_EQ(v.exit_code, 0);
    EXPECT_EQ(v.out, "pyexec 0.1.0\n");
}

TEST_F(CliTest, CallFailuresExit125) {
    ProcessResult r = Run({"--server", "127.0.0.1:1", "run", Write("x.py", "print(1)\n")});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("UNAVAILABLE"), std::string::npos) << r.err;
    ProcessResult g = Run({"get", "exe_00000000-0000-4000-8000-000000000000"});
    EXPECT_EQ(g.exit_code, 125);
    EXPECT_NE(g.err.find("NOT_FOUND"), std::string::npos) << g.err;
    ProcessResult bad = Run({"get", "nope"});
    EXPECT_EQ(bad.exit_code, 125);
    EXPECT_NE(bad.err.find("INVALID_ARGUMENT"), std::string::npos) << bad.err;
}

TEST_F(CliTest, UsageErrorsExit2) {
    std::string f = Write("ok.py", "print(1)\n");
    for (const auto &args : std::vector<std::vector<std::string>>{
             {},
             {"frobnicate"},
             {"run", "--bogus", f},
             {"run", "--timeout", "soon", f},
             {"run", "--memory"},
             {"run", f, f},
             {"run", dir_ + "/does-not-exist.py"},
             {"run", "--env", "=x", f},
             {"get"},
             {"kill", "a", "b"},
             {"follow", "--offset", "-1", "exe_x"},
             {"health", "--offset", "3"},
         }) {
        ProcessResult r = Run(args, "", true);
        std::string shown;
        for (const auto &a : args)
            shown += a + " ";
        EXPECT_EQ(r.exit_code, 2) << shown << ": " << r.err;
        EXPECT_FALSE(r.err.empty()) << shown;
    }
    /* No code anywhere: stdin is empty. */
    ProcessResult none = Run({"run"}, "");
    EXPECT_EQ(none.exit_code, 2) << none.err;
}

TEST_F(CliTest, EveryCommandHasHelp) {
    for (const char *cmd : {"run", "submit", "get", "follow", "kill", "health", "version"}) {
        ProcessResult r = Run({cmd, "--help"});
        EXPECT_EQ(r.exit_code, 0) << cmd;
        EXPECT_EQ(r.out.find(std::string("Usage: pyexec ") + cmd), 0u) << r.out;
    }
    ProcessResult top = Run({"--help"});
    EXPECT_EQ(top.exit_code, 0);
    EXPECT_NE(top.out.find("Commands:"), std::string::npos);
}

TEST_F(CliTest, HelpIsLaidOutInSections) {
    for (const char *cmd : {"run", "submit", "get", "follow", "kill", "health"}) {
        std::string out = Run({cmd, "--help"}).out;
        /* Every line fits 80 columns; sections are apart. */
        for (size_t i = 0, e; i < out.size(); i = e + 1) {
            e = out.find('\n', i);
            ASSERT_NE(e, std::string::npos) << cmd;
            EXPECT_LE(e - i, 80u) << cmd << ": " << out.substr(i, e - i);
        }
        EXPECT_NE(out.find("\n\nCommon options:\n"), std::string::npos) << cmd << ":\n" << out;
    }
    EXPECT_NE(Run({"follow", "--help"}).out.find("\n\nOptions:\n  --offset N "), std::string::npos);
    std::string health = Run({"health", "--help"}).out;
    EXPECT_NE(health.find("\n\nOptions:\n  --service NAME "), std::string::npos) << health;
    EXPECT_NE(health.find("-q, --quiet           print nothing"), std::string::npos) << health;
}

TEST_F(CliTest, HealthOfOneService) {
    ProcessResult ok = Run({"health", "--service", "pyexec.v1.ExecutorService"});
    EXPECT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_EQ(ok.out, "SERVING\n");
    ProcessResult unknown = Run({"health", "--service", "no.such.Service"});
    EXPECT_EQ(unknown.exit_code, 125);
    EXPECT_NE(unknown.err.find("NOT_FOUND"), std::string::npos) << unknown.err;
    ProcessResult quiet = Run({"health", "-q"});
    EXPECT_EQ(quiet.exit_code, 0);
    EXPECT_EQ(quiet.out + quiet.err, "");
}

TEST_F(CliTest, QuietShowsOnlyTheStdoutOfASuccess) {
    std::string ok = Write("ok.py", "import sys\nprint('out')\nsys.stderr.write('err\\n')\n");
    ProcessResult r = Run({"run", "-q", ok});
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_EQ(r.out, "out\n");
    EXPECT_EQ(r.err, "");
    ProcessResult fail = Run({"run", "-q", Write("bad.py", "print('out')\nraise SystemExit(3)\n")});
    EXPECT_EQ(fail.exit_code, 3);
    EXPECT_EQ(fail.out + fail.err, "");
    ProcessResult slow = Run(
        {"run", "-q", "--timeout", "1", Write("slow.py", "import time\ntime.sleep(60)\n")});
    EXPECT_EQ(slow.exit_code, 124);
    EXPECT_EQ(slow.out + slow.err, "");
}

} // namespace
