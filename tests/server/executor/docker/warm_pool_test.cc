// The Docker back-end's warm pool, against the real engine and the sandbox
// image: single use, limits applied at hand-over, the cold path for specs
// the pool does not fit, the timeout counted from hand-over, refill (after
// the run that took the container, or after the hold time), backoff
// while the engine is away, and removal on destroy. Skipped when
// /var/run/docker.sock does not answer. Every test checks that no container
// of its instance is left behind.
#include "server/executor/docker/docker_sandbox.h"

#include <gtest/gtest.h>
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "server/base/clock.h"
#include "server/base/id.h"
#include "server/executor/docker/docker_client.h"
#include "tests/server/executor/docker/test_support.h"

namespace {

const int kPoolMemoryMb = 1024;
const int kPoolDiskMb = 64; // Spec's default disk_mb: default specs fit the pool
const int kPidsLimit = 64;
const int64_t kReadyTimeoutMs = 60000; // generous: creation takes ~0.1-1 s

std::string TestImage() {
    const char *img = getenv("PYEXEC_TEST_IMAGE");
    return img && *img ? img : "pyexec/python:3.11";
}

class WarmPoolTest : public EngineTest {
  protected:
    void SetUp() override {
        EngineTest::SetUp();
        instance_ = NewInstance("test-pool");
    }

    void TearDown() override {
        Destroy();
        if (client_) {
            EXPECT_EQ(CountContainers("pyexec.instance=" + instance_), 0)
                << "containers left behind";
        }
        EngineTest::TearDown();
    }

    // Creates the back-end with a pool of `size` on `socket`, whose refill
    // after a take waits up to `hold_ms` for the run's end.
    void MakeSandbox(int size, const char *socket = kEngineSocket,
                     int64_t hold_ms = PX_DOCKER_REFILL_HOLD_MS) {
        image_ = TestImage();
        DockerConfig cfg;
        cfg->socket_path = socket;
        cfg->instance = instance_.c_str();
        cfg->reaper_interval_ms = 0;
        cfg->pids_limit = kPidsLimit;
        cfg->warm_pool = size;
        cfg->pool_image = image_.c_str();
        cfg->pool_memory_mb = kPoolMemoryMb;
        cfg->pool_disk_mb = kPoolDiskMb;
        cfg->pool_cpu_shares = 1024;
        cfg->pool_refill_hold_ms = hold_ms;
        px_error err = PX_ERROR_INIT;
        ASSERT_EQ(px_docker_sandbox_new(cfg.get(), &sandbox_, &err), 0) << err.msg;
    }

    px_docker_pool_stats Stats() {
        px_docker_pool_stats s;
        px_docker_sandbox_pool_stats(&sandbox_, &s);
        return s;
    }

    bool WaitReady(int n) {
        return px_docker_sandbox_pool_wait(&sandbox_, n, kReadyTimeoutMs) == 0;
    }

    // Containers (any state) carrying `label` and this test's instance label.
    int CountContainers(const std::string &label) {
        return CountLabelled({"pyexec.instance=" + instance_, label});
    }

    std::string instance_, image_;
};

TEST_F(WarmPoolTest, EachPooledContainerServesOneRun) {
    MakeSandbox(1);
    ASSERT_TRUE(WaitReady(1));
    EXPECT_EQ(CountContainers("pyexec.pool=1"), 1);

    Spec first;
    first
        .Tar(Main("import socket\n"
                  "open('/work/secret.txt', 'w').write('first')\n"
                  "open('/tmp/secret.txt', 'w').write('first')\n"
                  "print(socket.gethostname())\n"))
        .MemoryMb(kPoolMemoryMb); // the pool's own limits: no update call
    Outcome a = Run(first);
    ASSERT_TRUE(a.result.ran) << a.result.error.msg;
    EXPECT_EQ(a.result.exit_code, 0) << a.err;
    EXPECT_EQ(a.started, 1);
    EXPECT_EQ(Stats().taken, 1u);

    // The pool holds one container: the next run's must be a refill.
    ASSERT_TRUE(WaitReady(1));
    Spec second;
    second.Tar(Main("import os, socket\n"
                    "print(os.path.exists('/work/secret.txt'), os.path.exists('/tmp/secret.txt'))\n"
                    "print(sorted(os.listdir('/work')))\n"
                    "print(socket.gethostname())\n"));
    Outcome b = Run(second);
    ASSERT_TRUE(b.result.ran) << b.result.error.msg;
    EXPECT_EQ(b.result.exit_code, 0) << b.err;
    px_docker_pool_stats s = Stats();
    EXPECT_EQ(s.taken, 2u);
    EXPECT_EQ(s.cold, 0u);
    EXPECT_GE(s.created, 2u);

    std::string host_a = a.out, host_b = b.out.substr(b.out.rfind('\n', b.out.size() - 2) + 1);
    EXPECT_EQ(b.out.substr(0, b.out.size() - host_b.size()), "False False\n['main.py']\n");
    EXPECT_EQ(host_a.size(), 13u) << host_a; // 12 hex digits of the container id
    EXPECT_NE(host_a, host_b) << "a different container";
    EXPECT_EQ(Inspect(host_a.substr(0, 12)), 404) << "the used container is removed";
}

TEST_F(WarmPoolTest, RunningContainerIsNamedAfterItsExecution) {
    MakeSandbox(1);
    ASSERT_TRUE(WaitReady(1));
    Spec spec;
    spec.Tar(Main("import time\nprint('ready', flush=True)\ntime.sleep(60)\n"));
    px_sandbox_run run;
    Outcome o;
    std::thread t([&] { o = Run(spec, &run); });
    EXPECT_TRUE(run.WaitForOutput("ready\n", 30000));
    std::string body;
    EXPECT_EQ(Inspect("pyexec-" + spec.id(), &body), 200);
    EXPECT_NE(body.find("\"pyexec.pool\":\"1\""), std::string::npos) << body;
    run.Kill(PX_KILL_RPC);
    t.join();
    EXPECT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_EQ(o.result.exit_code, 137);
    EXPECT_EQ(Stats().taken, 1u);
    EXPECT_EQ(Inspect("pyexec-" + spec.id()), 404) << "removed after the run";
}

TEST_F(WarmPoolTest, LowerMemoryLimitIsEnforcedAfterHandOver) {
    MakeSandbox(1);
    ASSERT_TRUE(WaitReady(1));
    Spec spec;
    spec.Tar(Main("print('allocating', flush=True)\nb = b'x' * (200 * 1024 * 1024)\n"
                  "print('survived')\n"))
        .MemoryMb(64);
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_EQ(Stats().taken, 1u) << "ran in the pooled container made with 1024 MiB";
    EXPECT_TRUE(o.result.oom_killed);
    EXPECT_EQ(o.result.exit_code, 137);
    EXPECT_EQ(o.out, "allocating\n");
}

TEST_F(WarmPoolTest, LimitsSetAtHandOverAreTheJobs) {
    MakeSandbox(1);
    ASSERT_TRUE(WaitReady(1));
    Spec spec;
    spec.Tar(
            Main("import os\n"
                 "if not os.path.exists('/sys/fs/cgroup/memory/memory.limit_in_bytes'):\n"
                 "    print('cgroup v2')\n"
                 "    raise SystemExit(0)\n"
                 "for f in ('memory/memory.limit_in_bytes', 'memory/memory.memsw.limit_in_bytes',\n"
                 "          'cpu/cpu.shares', 'pids/pids.max'):\n"
                 "    try:\n"
                 "        print(open('/sys/fs/cgroup/' + f).read().strip())\n"
                 "    except OSError:\n"
                 "        print('-')\n"))
        .MemoryMb(2048) // above the pool's 1024: a raise
        .CpuShares(512);
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_EQ(Stats().taken, 1u);
    if (o.out == "cgroup v2\n")
        GTEST_SKIP() << "the cgroup v1 files are not there";
    std::string memsw = o.out.find("\n-\n") != std::string::npos ? "-" : "2147483648";
    EXPECT_EQ(o.out, "2147483648\n" + memsw + "\n512\n64\n") << o.err;
}

TEST_F(WarmPoolTest, ForkBombIsContainedInAPooledContainer) {
    MakeSandbox(1);
    ASSERT_TRUE(WaitReady(1));
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
    EXPECT_EQ(Stats().taken, 1u);
    EXPECT_FALSE(o.result.timed_out);
    ASSERT_EQ(o.out.rfind("fork failed after ", 0), 0u) << o.out << o.err;
    EXPECT_LT(atoi(o.out.c_str() + strlen("fork failed after ")), kPidsLimit);
}

TEST_F(WarmPoolTest, SpecsThePoolDoesNotFitTakeTheColdPath) {
    MakeSandbox(1);
    ASSERT_TRUE(WaitReady(1));

    Spec net;
    net.Tar(Main("import os\nprint(len(os.listdir('/sys/class/net')) > 1)\n")).Network(true);
    Outcome a = Run(net);
    ASSERT_TRUE(a.result.ran) << a.result.error.msg;
    EXPECT_EQ(a.out, "True\n") << a.err;

    Spec disk;
    disk.Tar(Main("import os\ns = os.statvfs('/work')\nprint(s.f_blocks * s.f_frsize >> 20)\n"))
        .DiskMb(32);
    Outcome b = Run(disk);
    ASSERT_TRUE(b.result.ran) << b.result.error.msg;
    EXPECT_EQ(b.out, "32\n") << b.err;

    px_docker_pool_stats s = Stats();
    EXPECT_EQ(s.cold, 2u);
    EXPECT_EQ(s.taken, 0u);
    EXPECT_EQ(s.ready, 1) << "the pooled container still waits";
}

TEST_F(WarmPoolTest, TimeoutCountsFromHandOver) {
    MakeSandbox(1);
    ASSERT_TRUE(WaitReady(1));
    // The pooled container idles longer than the run's whole timeout before
    // the run takes it: counted from creation, the run would be killed at
    // once. Counted from hand-over, the program (which itself takes no time)
    // has the whole timeout for Python's start-up and the container's exit.
    // The idle time is the condition under test, not a wait for an event:
    // the deadline is the server's monotonic clock at hand-over, so only
    // real idle time can tell the two apart. The timeout is wide (a pooled
    // run takes well under a second here) so that a loaded or sanitizer
    // machine cannot make a correct server miss it; the price is the idle
    // time, 1 s more than the timeout.
    const int kTimeoutS = 15;
    sleep(kTimeoutS + 1);
    Spec spec;
    spec.Tar(Main("print('start', flush=True)\nprint('end')\n")).Timeout(kTimeoutS);
    Outcome o = Run(spec);
    ASSERT_TRUE(o.result.ran) << o.result.error.msg;
    EXPECT_EQ(Stats().taken, 1u);
    EXPECT_FALSE(o.result.timed_out);
    EXPECT_EQ(o.result.exit_code, 0) << o.err;
    EXPECT_EQ(o.out, "start\nend\n");
}

TEST_F(WarmPoolTest, RefillsAfterTakes) {
    MakeSandbox(2);
    ASSERT_TRUE(WaitReady(2));
    for (int i = 0; i < 3; i++) {
        Spec spec;
        spec.Tar(Main("print('run')\n"));
        Outcome o = Run(spec);
        ASSERT_TRUE(o.result.ran) << o.result.error.msg;
        EXPECT_EQ(o.out, "run\n");
    }
    ASSERT_TRUE(WaitReady(2)) << "back to full";
    px_docker_pool_stats s = Stats();
    EXPECT_EQ(s.taken + s.cold, 3u);
    EXPECT_GE(s.taken, 2u);
    EXPECT_EQ(s.created, 2u + s.taken) << "one refill per take";
    EXPECT_EQ(CountContainers("pyexec.pool=1"), 2);
}

// The refill after a take starts only once the run that took the container
// has ended and removed it: creating and starting a container would
// compete with the run's end (and a Kill) for the engine and the CPU.
TEST_F(WarmPoolTest, RefillWaitsForTheRunThatTookTheContainer) {
    MakeSandbox(1, kEngineSocket, 600000); // a hold that outlasts the test
    ASSERT_TRUE(WaitReady(1));
    Spec spec;
    spec.Tar(Main("import time\nprint('ready', flush=True)\ntime.sleep(600)\n"));
    px_sandbox_run run;
    Outcome o;
    std::thread t([&] { o = Run(spec, &run); });
    EXPECT_TRUE(run.WaitForOutput("ready\n", 30000)); // joined below either way
    px_docker_pool_stats during = Stats();
    run.Kill(PX_KILL_RPC);
    t.join();
    EXPECT_EQ(o.result.exit_code, 137) << o.result.error.msg;
    EXPECT_EQ(during.taken, 1u);
    EXPECT_EQ(during.creating, 0) << "no refill while the run is in flight";
    EXPECT_EQ(during.created, 1u);
    EXPECT_EQ(Inspect("pyexec-" + spec.id()), 404) << "removed when run() returns";
    ASSERT_TRUE(WaitReady(1)) << "the refill follows the run's end";
    EXPECT_EQ(Stats().created, 2u);
}

// Each take holds back its own refill: a run's end lets its refill start
// while a later take's run is still in flight (under steady load a hold
// shared by all takes would keep the pool from refilling at all).
TEST_F(WarmPoolTest, ARunsEndRefillsWhileALaterRunHoldsItsOwn) {
    MakeSandbox(2, kEngineSocket, 600000); // holds that outlast the test
    ASSERT_TRUE(WaitReady(2));
    Spec first, second;
    first.Tar(Main("import time\nprint('ready', flush=True)\ntime.sleep(600)\n")).Timeout(600);
    second.Tar(Main("import time\nprint('ready', flush=True)\ntime.sleep(600)\n")).Timeout(600);
    px_sandbox_run run_a, run_b;
    Outcome a, b;
    std::thread ta([&] { a = Run(first, &run_a); });
    EXPECT_TRUE(run_a.WaitForOutput("ready\n", 30000)); // joined below either way
    std::thread tb([&] { b = Run(second, &run_b); });
    EXPECT_TRUE(run_b.WaitForOutput("ready\n", 30000));
    run_a.Kill(PX_KILL_RPC);
    ta.join();
    bool refilled = WaitReady(1);
    run_b.Kill(PX_KILL_RPC);
    tb.join();
    EXPECT_TRUE(refilled) << "the first run's end refills";
    EXPECT_EQ(a.result.exit_code, 137) << a.result.error.msg;
    EXPECT_EQ(b.result.exit_code, 137) << b.result.error.msg;
    EXPECT_FALSE(b.result.timed_out) << "still running when its pool was refilled";
    px_docker_pool_stats s = Stats();
    EXPECT_EQ(s.taken, 2u);
    EXPECT_GE(s.created, 3u);
}

// A long run holds its refill back for the hold time only.
TEST_F(WarmPoolTest, ALongRunHoldsItsRefillForTheHoldTimeAtMost) {
    MakeSandbox(1, kEngineSocket, 100);
    ASSERT_TRUE(WaitReady(1));
    Spec spec;
    spec.Tar(Main("import time\nprint('ready', flush=True)\ntime.sleep(600)\n"));
    px_sandbox_run run;
    Outcome o;
    std::thread t([&] { o = Run(spec, &run); });
    EXPECT_TRUE(run.WaitForOutput("ready\n", 30000)); // joined below either way
    bool refilled = WaitReady(1);
    run.Kill(PX_KILL_RPC);
    t.join();
    EXPECT_TRUE(refilled);
    EXPECT_EQ(o.result.exit_code, 137)
        << "still running when the pool was full again: " << o.result.error.msg;
    EXPECT_EQ(Stats().created, 2u);
}

TEST_F(WarmPoolTest, DestroyRemovesEveryPooledContainer) {
    MakeSandbox(3);
    ASSERT_TRUE(WaitReady(3));
    EXPECT_EQ(CountContainers("pyexec.pool=1"), 3);
    int64_t t0 = px_now_mono_ms();
    Destroy();
    EXPECT_LT(px_now_mono_ms() - t0, 20000) << "generous bound; it is well under a second";
    EXPECT_EQ(CountContainers("pyexec.service=pyexecd"), 0);
}

TEST_F(WarmPoolTest, DestroyWhileRefilling) {
    MakeSandbox(3);
    // When the first is ready, the pool threads are making the other two.
    ASSERT_TRUE(WaitReady(1));
    Destroy(); // creations in flight finish, and their containers are removed
    EXPECT_EQ(CountContainers("pyexec.service=pyexecd"), 0);
}

TEST_F(WarmPoolTest, BacksOffWhileTheEngineIsAwayAndRefillsWhenItReturns) {
    char dir[] = "/tmp/pyexec-pool-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    std::string socket = std::string(dir) + "/engine.sock";
    MakeSandbox(1, socket.c_str());

    // No engine behind the socket path: the pool must wait between attempts.
    EXPECT_EQ(px_docker_sandbox_pool_wait(&sandbox_, 1, 1500), -1);
    px_docker_pool_stats s = Stats();
    EXPECT_GE(s.failures, 1u);
    EXPECT_LE(s.failures, 6u) << "backs off instead of spinning";
    EXPECT_EQ(s.ready, 0);

    // The engine appears at the path; the next ping notices and the pool fills.
    ASSERT_EQ(symlink(kEngineSocket, socket.c_str()), 0);
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(sandbox_.ops->ping(sandbox_.self, &err), 0) << err.msg;
    EXPECT_TRUE(WaitReady(1));
    Destroy();
    unlink(socket.c_str());
    rmdir(dir);
}

} // namespace
