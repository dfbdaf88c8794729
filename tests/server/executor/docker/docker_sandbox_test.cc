// End-to-end tests of the Docker back-end against the real engine and the
// sandbox image. Skipped when /var/run/docker.sock does not answer. Every
// test checks that no container of this process's instance is left behind.
#include "server/executor/docker/docker_sandbox.h"

#include <gtest/gtest.h>
#include <jansson.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "server/base/clock.h"
#include "server/base/id.h"
#include "server/executor/docker/docker_client.h"
#include "tests/server/executor/docker/test_support.h"

namespace {

// One instance name for the whole suite (the reaper test derives others).
std::string Instance() {
    static std::string instance = NewInstance("test");
    return instance;
}

class DockerSandboxTest : public EngineTest {
  protected:
    void SetUp() override {
        EngineTest::SetUp();
        if (IsSkipped())
            return;
        DockerConfig cfg;
        instance_ = Instance();
        cfg->instance = instance_.c_str();
        cfg->reaper_interval_ms = 0;
        cfg->pids_limit = 64;
        px_error err = PX_ERROR_INIT;
        ASSERT_EQ(px_docker_sandbox_new(cfg.get(), &sandbox_, &err), 0) << err.msg;
    }

    void TearDown() override {
        Destroy();
        if (client_) {
            EXPECT_EQ(CountContainers(instance_), 0) << "containers left behind";
            EXPECT_EQ(CountContainers(instance_ + "-reaper"), 0) << "containers left behind";
        }
        EngineTest::TearDown();
    }

    // Containers (any state) labelled with `instance`.
    int CountContainers(const std::string &instance) {
        return CountLabelled({"pyexec.instance=" + instance});
    }

    // Creates a stopped container with this suite's labels, as a crashed
    // server would leave it. Returns its id.
    std::string CreateOrphan(const std::string &instance) {
        std::string body = "{\"Image\":\"pyexec/python:3.11\",\"Cmd\":[\"true\"],"
                           "\"Labels\":{\"pyexec.service\":\"pyexecd\",\"pyexec.instance\":\"" +
                           instance + "\"},\"HostConfig\":{\"NetworkMode\":\"none\"}}";
        px_docker_response r;
        EXPECT_EQ(
            px_docker_call(client_, "POST", "/containers/create", body.c_str(), 0, &r, nullptr), 0);
        EXPECT_EQ(r.status, 201) << r.body;
        json_t *j = json_loadb(r.body, r.len, 0, nullptr);
        std::string id = json_string_value(json_object_get(j, "Id"));
        json_decref(j);
        px_docker_response_release(&r);
        return id;
    }

    // A Python string literal holding `s` (ASCII), escapes spelled out.
    static std::string PyStr(const std::string &s) {
        std::string lit = "'";
        char buf[8];
        for (unsigned char c : s) {
            snprintf(buf, sizeof buf, "\\x%02x", c);
            lit += buf;
        }
        return lit + "'";
    }

    std::string instance_;
};

TEST_F(DockerSandboxTest, HelloWorldWithUsage) {
    Spec spec;
    spec.Tar(Main("print('hello world')\n"));
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_EQ(o.result.exit_code, 0);
    EXPECT_EQ(o.out, "hello world\n");
    EXPECT_EQ(o.err, "") << "the usage trailer is stripped from stderr";
    EXPECT_EQ(o.started, 1);
    EXPECT_EQ(o.ended, 1) << "the end marker and trailer report the result early";
    EXPECT_TRUE(o.order_ok);
    EXPECT_FALSE(o.result.timed_out);
    EXPECT_FALSE(o.result.oom_killed);
    EXPECT_FALSE(o.result.lost);
    EXPECT_GT(o.result.peak_memory_bytes, 1 << 20);
    EXPECT_GE(o.result.cpu_time_ms, 0);
}

TEST_F(DockerSandboxTest, StdinArgsAndEnv) {
    Spec spec;
    spec
        .Tar(Main(
            "import os, sys\n"
            "data = sys.stdin.buffer.read()\n"
            "print(len(data), data[:5], data[-3:])\n"
            "print(sys.argv[1:])\n"
            "print(os.environ['GREETING'], os.environ['HOME'], os.environ['PYTHONUNBUFFERED'])\n"
            "print(os.getcwd())\n"))
        .Stdin("first" + std::string(300000, '.') + "end")
        .Args({"a b", "--flag", ""})
        .Env({"GREETING=hi there", "HOME=/root", "PYTHONUNBUFFERED=0"});
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_EQ(o.result.exit_code, 0) << o.err;
    EXPECT_EQ(o.out, "300008 b'first' b'end'\n"
                     "['a b', '--flag', '']\n"
                     "hi there /tmp 1\n"
                     "/work\n");
}

TEST_F(DockerSandboxTest, ProgramThatNeverReadsStdinDoesNotDeadlock) {
    Spec spec;
    spec.Tar(Main("print('done')\n")).Stdin(std::string(4 << 20, 'z'));
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_EQ(o.out, "done\n");
    EXPECT_EQ(o.result.exit_code, 0);
}

TEST_F(DockerSandboxTest, MultiFilePackage) {
    Spec spec;
    spec.Tar(MakeTar({{"app", "", 0755, '5'},
                      {"app/__init__.py", "from .util import twice\n"},
                      {"app/util.py", "def twice(x):\n    return 2 * x\n"},
                      {"run.py", "import app\nprint(app.twice(21))\n"}}))
        .Entrypoint("run.py");
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_EQ(o.out, "42\n") << o.err;
    EXPECT_EQ(o.result.exit_code, 0);
}

TEST_F(DockerSandboxTest, NonZeroExitWithTraceback) {
    Spec spec;
    spec.Tar(Main("print('before')\nraise ValueError('bad value')\n"));
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_EQ(o.result.exit_code, 1);
    EXPECT_EQ(o.out, "before\n");
    EXPECT_NE(o.err.find("Traceback (most recent call last)"), std::string::npos) << o.err;
    EXPECT_NE(o.err.find("ValueError: bad value\n"), std::string::npos) << o.err;
    EXPECT_EQ(o.err.find("PYX"), std::string::npos) << "no trailer bytes leak";
}

TEST_F(DockerSandboxTest, TheProgramCannotReadTraceOrKillTheBootstrap) {
    // The bootstrap is PID 1 and not dumpable: its memory and descriptors
    // are closed to the program (same user), ptrace is refused, and signals
    // from inside the container do not reach it. The run ends with the
    // program's own exit.
    Spec spec;
    spec.Tar(Main("import ctypes, errno, os, signal\n"
                  "libc = ctypes.CDLL(None, use_errno=True)\n"
                  "print('parent', os.getppid())\n"
                  "for path in ('/proc/1/mem', '/proc/1/environ', '/proc/1/fd/1'):\n"
                  "    try:\n"
                  "        open(path, 'rb').close()\n"
                  "        print(path, 'opened')\n"
                  "    except OSError as e:\n"
                  "        print(path, errno.errorcode[e.errno])\n"
                  "for req in (16, 0x4206):  # PTRACE_ATTACH, PTRACE_SEIZE\n"
                  "    r = libc.ptrace(req, 1, 0, 0)\n"
                  "    print('ptrace', r, errno.errorcode.get(ctypes.get_errno()))\n"
                  "os.kill(1, signal.SIGKILL)\n"
                  "os.kill(1, signal.SIGINT)\n"
                  "print('still here', flush=True)\n"
                  "raise SystemExit(5)\n"));
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_EQ(o.out, "parent 1\n"
                     "/proc/1/mem EACCES\n"
                     "/proc/1/environ EACCES\n"
                     "/proc/1/fd/1 EACCES\n"
                     "ptrace -1 EPERM\n"
                     "ptrace -1 EPERM\n"
                     "still here\n")
        << o.err;
    EXPECT_EQ(o.result.exit_code, 5);
    EXPECT_EQ(o.ended, 1);
    EXPECT_GT(o.result.cpu_time_ms, 0) << "usage from the trailer";
}

TEST_F(DockerSandboxTest, MarkersWithAWrongNonceAreProgramOutput) {
    // A program that prints what an end marker and a trailer look like, with
    // a nonce it made up, ends the run no earlier and gets its bytes back.
    const std::string fake = "\x1ePYX0123456789abcdef0123456789abcdef\x1e";
    const std::string body = fake + "{}" + fake + "\n";
    const std::string trailer = fake + "{\"exit_code\": 7}" + fake + "\n";
    Spec spec;
    spec.Tar(Main("import sys, time\n"
                  "sys.stdout.write(" +
                  PyStr(body) +
                  ")\n"
                  "sys.stdout.flush()\n"
                  "sys.stderr.write(" +
                  PyStr(trailer) +
                  ")\n"
                  "sys.stderr.flush()\n"
                  "time.sleep(0.2)\n"
                  "print('after', flush=True)\n"
                  "sys.exit(3)\n"));
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_EQ(o.result.exit_code, 3);
    EXPECT_EQ(o.out, body + "after\n");
    EXPECT_EQ(o.err, trailer);
    EXPECT_EQ(o.ended, 1);
}

TEST_F(DockerSandboxTest, SignalExitIs128PlusN) {
    Spec spec;
    spec.Tar(Main("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n"));
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_EQ(o.result.exit_code, 128 + 15);
}

TEST_F(DockerSandboxTest, Timeout) {
    Spec spec;
    spec.Tar(Main("import time\nprint('sleeping', flush=True)\ntime.sleep(60)\n")).Timeout(2);
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_TRUE(o.result.timed_out);
    EXPECT_EQ(o.result.exit_code, 137);
    EXPECT_EQ(o.out, "sleeping\n");
    EXPECT_GE(o.ran_ms_after_start, 2000);
    // A hang guard, not a speed test: a loaded machine may take seconds to
    // stop and reap the container.
    EXPECT_LT(o.ran_ms_after_start, 30000) << "the run ends after the limit, it does not hang";
    EXPECT_GT(o.result.peak_memory_bytes, 0) << "usage from the stats snapshot";
}

TEST_F(DockerSandboxTest, OutOfMemory) {
    Spec spec;
    spec.Tar(Main("print('allocating', flush=True)\nb = b'x' * (200 * 1024 * 1024)\n"
                  "print('survived')\n"))
        .MemoryMb(64);
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_TRUE(o.result.oom_killed);
    EXPECT_EQ(o.result.exit_code, 137);
    EXPECT_EQ(o.out, "allocating\n");
    EXPECT_GT(o.result.peak_memory_bytes, 32 << 20);
}

TEST_F(DockerSandboxTest, FillingWorkUntilMemoryRunsOutStillReportsUsage) {
    // The /work tmpfs counts against the memory limit and a kill frees none
    // of it. The program, not the bootstrap, is the OOM killer's choice, and
    // the bootstrap keeps memory for its last words: the usage arrives.
    Spec spec;
    spec.Tar(Main("import time\n"
                  "t = time.process_time()\n"
                  "while time.process_time() - t < 0.2:\n"
                  "    pass\n"
                  "print('filling', flush=True)\n"
                  "with open('/work/fill', 'wb') as f:\n"
                  "    while True:\n"
                  "        f.write(b'z' * 65536)\n"))
        .MemoryMb(64)
        .DiskMb(256);
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_TRUE(o.result.oom_killed);
    EXPECT_EQ(o.result.exit_code, 137);
    EXPECT_EQ(o.out, "filling\n");
    EXPECT_EQ(o.ended, 1) << "the bootstrap wrote its last words";
    EXPECT_GT(o.result.peak_memory_bytes, 32 << 20);
    EXPECT_GE(o.result.cpu_time_ms, 200) << "the program's own CPU time at least";
}

TEST_F(DockerSandboxTest, OutputFloodArrivesIntact) {
    Spec spec;
    spec.Tar(Main("import sys\n"
                  "block = bytes(range(256)) * 4096\n"
                  "for i in range(8):\n"
                  "    sys.stdout.buffer.write(block)\n"
                  "    sys.stderr.buffer.write(b'e%d' % i)\n"));
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_EQ(o.result.exit_code, 0);
    std::string block;
    for (int i = 0; i < 256; i++)
        block.push_back(static_cast<char>(i));
    std::string expected;
    for (int i = 0; i < 8 * 4096; i++)
        expected += block;
    ASSERT_EQ(o.out.size(), expected.size());
    EXPECT_TRUE(o.out == expected);
    EXPECT_EQ(o.err, "e0e1e2e3e4e5e6e7");
}

TEST_F(DockerSandboxTest, ForkBombIsContainedByThePidsLimit) {
    Spec spec;
    spec.Tar(Main("import os, time\n"
                  "n = 0\n"
                  "try:\n"
                  "    for _ in range(1000):\n"
                  "        if os.fork() == 0:\n"
                  "            time.sleep(60)\n"
                  "            os._exit(0)\n"
                  "        n += 1\n"
                  "except OSError as e:\n"
                  "    print('fork failed after', n, e.errno)\n"))
        .Timeout(20);
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_FALSE(o.result.timed_out) << "the program ends without hanging";
    EXPECT_EQ(o.out.rfind("fork failed after ", 0), 0u) << o.out << o.err;
    int n = atoi(o.out.c_str() + strlen("fork failed after "));
    EXPECT_LT(n, 64);
}

TEST_F(DockerSandboxTest, NoNetworkButLoopback) {
    Spec spec;
    spec.Tar(Main("import os\n"
                  "print(sorted(os.listdir('/sys/class/net')))\n"
                  "print(len(open('/proc/net/route').read().splitlines()))\n"));
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_EQ(o.out, "['lo']\n1\n") << "only lo, and no route beyond the header line";
}

TEST_F(DockerSandboxTest, NetworkEnabledHasAnInterface) {
    Spec spec;
    spec.Tar(Main("import os\nprint(len(os.listdir('/sys/class/net')) > 1)\n")).Network(true);
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_EQ(o.out, "True\n");
}

TEST_F(DockerSandboxTest, HardeningProfile) {
    Spec spec;
    spec.Tar(Main("import errno, os\n"
                  "for path in ('/etc/x', '/usr/x'):\n"
                  "    try:\n"
                  "        open(path, 'w')\n"
                  "        print('wrote', path)\n"
                  "    except OSError as e:\n"
                  "        print(errno.errorcode[e.errno])\n"
                  "print(os.getuid(), os.getgid())\n"
                  "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])\n"
                  "print(open('/proc/self/status').read().split('NoNewPrivs:')[1].split()[0])\n"
                  "open('/tmp/t', 'w').write('ok')\n"
                  "open('/work/w', 'w').write('ok')\n"
                  "print('writable')\n"));
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_EQ(o.out, "EROFS\nEROFS\n65534 65534\n0000000000000000\n1\nwritable\n") << o.err;
}

TEST_F(DockerSandboxTest, DiskLimitInWork) {
    Spec spec;
    spec.Tar(Main("import errno\n"
                  "try:\n"
                  "    with open('/work/big', 'wb') as f:\n"
                  "        for _ in range(64):\n"
                  "            f.write(b'\\0' * (1 << 20))\n"
                  "    print('wrote 64 MiB')\n"
                  "except OSError as e:\n"
                  "    print(errno.errorcode[e.errno])\n"))
        .DiskMb(16);
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_TRUE(o.out == "ENOSPC\n" || o.out == "EFBIG\n") << o.out << o.err;
}

TEST_F(DockerSandboxTest, KillMidRun) {
    Spec spec;
    spec.Tar(Main("import time\nprint('ready', flush=True)\ntime.sleep(60)\n"));
    px_sandbox_run run;
    Outcome o;
    int64_t killed_at = 0, ended_at = 0;
    std::thread t([&] {
        o = Run(spec, &run);
        ended_at = px_now_mono_ms();
    });
    ASSERT_TRUE(run.WaitForOutput("ready\n", 20000));
    killed_at = px_now_mono_ms();
    run.Kill(PX_KILL_RPC);
    t.join();
    // The contract's figure is a second; under a loaded CI machine the
    // bound here is generous, and bench/ measures the real latency.
    EXPECT_LT(ended_at - killed_at, 10000) << "ends promptly after the kill";
    EXPECT_TRUE(o.result.ran);
    EXPECT_EQ(o.result.exit_code, 137);
    EXPECT_EQ(Inspect("pyexec-" + spec.id()), 404) << "container removed";
}

std::string Wheel() {
    const std::string init = "VALUE = 'from the wheel'\n";
    const std::string meta = "Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n";
    const std::string wheel =
        "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n";
    const std::string record = "tinypkg/__init__.py,,\ntinypkg-1.0.dist-info/METADATA,,\n"
                               "tinypkg-1.0.dist-info/WHEEL,,\ntinypkg-1.0.dist-info/RECORD,,\n";
    return MakeZip({{"tinypkg/__init__.py", init},
                    {"tinypkg-1.0.dist-info/METADATA", meta},
                    {"tinypkg-1.0.dist-info/WHEEL", wheel},
                    {"tinypkg-1.0.dist-info/RECORD", record}});
}

TEST_F(DockerSandboxTest, RequirementsWithoutAPackageSourceAreAPrecondition) {
    /* Requirements are built into layers outside the sandbox from the
     * server's wheelhouse or index (tests/e2e/test_deps.py); this back-end
     * has neither, so it refuses before any container exists. */
    Spec spec;
    spec.Tar(Main("print('program ran')\n")).Requirements("tinypkg==1.0\n").Timeout(60);
    Outcome o = Run(spec);
    EXPECT_FALSE(o.result.ran);
    EXPECT_EQ(o.result.error.code, PX_E_PRECONDITION);
    EXPECT_NE(std::string(o.result.error.msg).find("--wheelhouse"), std::string::npos)
        << o.result.error.msg;
    EXPECT_EQ(o.out, "");
}

TEST_F(DockerSandboxTest, RequirementsComeFromTheWheelhouseIntoACachedLayer) {
    char dir[] = "/tmp/pyexec-wheelhouse-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    std::string whl = std::string(dir) + "/tinypkg-1.0-py3-none-any.whl";
    FILE *f = fopen(whl.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::string bytes = Wheel();
    fwrite(bytes.data(), 1, bytes.size(), f);
    fclose(f);
    Destroy();
    DockerConfig cfg;
    cfg->instance = instance_.c_str();
    cfg->reaper_interval_ms = 0;
    cfg->wheelhouse = dir;
    px_error err = PX_ERROR_INIT;
    ASSERT_EQ(px_docker_sandbox_new(cfg.get(), &sandbox_, &err), 0) << err.msg;

    Spec spec;
    spec.Tar(Main("import tinypkg\nprint(tinypkg.VALUE)\n"))
        .Requirements("tinypkg==1.0\n")
        .Timeout(120);
    Outcome first = Run(spec);
    ASSERT_TRUE(first.result.ran) << first.result.error.msg;
    EXPECT_EQ(first.result.exit_code, 0) << first.out << first.err;
    EXPECT_EQ(first.out, "from the wheel\n") << first.err;
    EXPECT_NE(first.err.find("pyexec: install: "), std::string::npos) << first.err;

    Spec again;
    again.Tar(Main("import tinypkg\nprint(tinypkg.VALUE)\n"))
        .Requirements("tinypkg==1.0\n")
        .Timeout(120);
    Outcome second = Run(again);
    ASSERT_TRUE(second.result.ran) << second.result.error.msg;
    EXPECT_EQ(second.out, "from the wheel\n") << second.err;
    EXPECT_EQ(second.err, "") << "the cached layer needs no build";

    Destroy();
    px_docker_response r;
    std::string vol = "/volumes/pyexec-deps-" + instance_;
    if (px_docker_call(client_, "DELETE", vol.c_str(), nullptr, 0, &r, nullptr) == 0)
        px_docker_response_release(&r);
    unlink(whl.c_str());
    rmdir(dir);
}

TEST_F(DockerSandboxTest, PreCommands) {
    Spec spec;
    spec.Tar(Main("print(open('made.txt').read().strip())\n"))
        .PreCommands({"echo made by pre > made.txt", "echo pre-output; echo pre-err >&2"});
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_EQ(o.result.exit_code, 0) << o.err;
    EXPECT_EQ(o.out, "pre-output\nmade by pre\n");
    EXPECT_EQ(o.err, "pre-err\n");
}

TEST_F(DockerSandboxTest, FailingPreCommandStopsTheRun) {
    Spec spec;
    spec.Tar(Main("print('program ran')\n")).PreCommands({"true", "exit 3", "echo never"});
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_EQ(o.result.exit_code, 3);
    EXPECT_EQ(o.out, "");
    EXPECT_NE(o.err.find("pre-command \"exit 3\" failed with exit code 3"), std::string::npos)
        << o.err;
}

TEST_F(DockerSandboxTest, MissingImageIsAPreconditionAndIsNotPulled) {
    // pull_missing is off (the server's --pull never): an absent image fails
    // the run without a pull, so no registry is contacted (the name points
    // at 127.0.0.1:1 all the same).
    Spec spec;
    spec.Tar(Main("print(1)\n")).Image("127.0.0.1:1/pyexec/no-such-image:1");
    Outcome o = Run(spec);
    EXPECT_FALSE(o.result.ran);
    EXPECT_EQ(o.started, 0);
    EXPECT_EQ(o.result.error.code, PX_E_PRECONDITION) << o.result.error.msg;
    EXPECT_NE(std::string(o.result.error.msg)
                  .find("image '127.0.0.1:1/pyexec/no-such-image:1' is not present, and this "
                        "server does not pull images"),
              std::string::npos)
        << o.result.error.msg;
}

TEST_F(DockerSandboxTest, Ping) {
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(sandbox_.ops->ping(sandbox_.self, &err), 0) << err.msg;
}

TEST_F(DockerSandboxTest, ReaperRemovesOrphans) {
    const std::string instance = instance_ + "-reaper";
    std::string first = CreateOrphan(instance);
    ASSERT_EQ(Inspect(first), 200);

    DockerConfig cfg;
    cfg->instance = instance.c_str();
    cfg->reaper_interval_ms = 100;
    px_sandbox reaper_sb;
    px_error err = PX_ERROR_INIT;
    ASSERT_EQ(px_docker_sandbox_new(cfg.get(), &reaper_sb, &err), 0) << err.msg;
    EXPECT_EQ(Inspect(first), 404) << "the start-up reap removed it";

    std::string other = CreateOrphan(instance_ + "-not-mine");
    std::string second = CreateOrphan(instance);
    int64_t deadline = px_now_mono_ms() + 20000;
    while (Inspect(second) != 404 && px_now_mono_ms() < deadline)
        usleep(50 * 1000); // awaiting the engine's state: there is no event to wait on
    EXPECT_EQ(Inspect(second), 404) << "the periodic reaper removed it";
    EXPECT_EQ(Inspect(other), 200) << "another instance's container is left alone";

    int64_t t0 = px_now_mono_ms();
    reaper_sb.ops->destroy(reaper_sb.self);
    EXPECT_LT(px_now_mono_ms() - t0, 5000) << "the reaper thread stops promptly";

    px_docker_response r;
    std::string path = "/containers/" + other + "?force=1";
    ASSERT_EQ(px_docker_call(client_, "DELETE", path.c_str(), nullptr, 0, &r, nullptr), 0);
    px_docker_response_release(&r);
}

} // namespace
