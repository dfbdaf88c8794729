// The Docker back-end against a fake Engine API on a temporary unix socket:
// an engine that is down, one that fails, one that hangs, and attach streams
// that break the framing.
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/base/clock.h"
#include "server/executor/docker/docker_global.h"
#include "server/executor/docker/docker_sandbox.h"
#include "tests/server/executor/docker/test_support.h"

namespace {

struct Request {
    std::string method, target; // target without the /v1.41 prefix
};

// A one-thread HTTP server. The handler answers on `fd` and returns true to
// have the connection closed, false to keep it open until the server stops.
class FakeEngine {
  public:
    using Handler = std::function<bool(const Request &, int fd)>;

    explicit FakeEngine(Handler handler) : handler_(std::move(handler)) {
        char tmpl[] = "/tmp/pyexec-fake-engine-XXXXXX";
        dir_ = mkdtemp(tmpl);
        path_ = dir_ + "/docker.sock";
        listen_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa = {};
        sa.sun_family = AF_UNIX;
        memcpy(sa.sun_path, path_.c_str(), path_.size() + 1);
        if (bind(listen_, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0 ||
            listen(listen_, 16) != 0 || pipe(stop_) != 0)
            abort();
        thread_ = std::thread([this] { Serve(); });
    }

    ~FakeEngine() {
        (void)!write(stop_[1], "x", 1);
        thread_.join();
        for (int fd : held_)
            close(fd);
        close(listen_);
        close(stop_[0]);
        close(stop_[1]);
        unlink(path_.c_str());
        rmdir(dir_.c_str());
    }

    const std::string &path() const { return path_; }

    std::vector<std::string> Requests() {
        std::lock_guard<std::mutex> lock(mu_);
        return requests_;
    }

    bool Saw(const std::string &line) {
        for (const std::string &r : Requests())
            if (r == line)
                return true;
        return false;
    }

    // Responds and has the connection closed: `return Answer(...)` in a handler.
    static bool Answer(int fd, int status, const std::string &body) {
        Respond(fd, status, body);
        return true;
    }

    static void Respond(int fd, int status, const std::string &body) {
        std::string head = "HTTP/1.1 " + std::to_string(status) +
                           " X\r\nContent-Type: application/json\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
        WriteAll(fd, head + body);
    }

    static void WriteAll(int fd, const std::string &s) {
        size_t off = 0;
        while (off < s.size()) {
            ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
            if (n <= 0)
                return;
            off += static_cast<size_t>(n);
        }
    }

  private:
    void Serve() {
        for (;;) {
            pollfd p[2] = {{listen_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
            if (poll(p, 2, -1) < 0)
                continue;
            if (p[1].revents)
                return;
            int fd = accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0)
                continue;
            Request req;
            if (!ReadRequest(fd, &req)) {
                held_.push_back(fd);
                continue;
            }
            {
                std::lock_guard<std::mutex> lock(mu_);
                requests_.push_back(req.method + " " + req.target);
            }
            if (handler_(req, fd))
                close(fd);
            else
                held_.push_back(fd);
        }
    }

    // Reads one request (head and Content-Length body). False if the client
    // sent nothing within a second.
    static bool ReadRequest(int fd, Request *req) {
        std::string data;
        size_t head_end;
        while ((head_end = data.find("\r\n\r\n")) == std::string::npos) {
            pollfd p = {fd, POLLIN, 0};
            if (poll(&p, 1, 1000) <= 0)
                return false;
            char buf[4096];
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n <= 0)
                return false;
            data.append(buf, static_cast<size_t>(n));
        }
        size_t sp1 = data.find(' '), sp2 = data.find(' ', sp1 + 1);
        req->method = data.substr(0, sp1);
        req->target = data.substr(sp1 + 1, sp2 - sp1 - 1);
        if (req->target.rfind("/v1.41", 0) == 0)
            req->target = req->target.substr(6);
        size_t cl = data.find("Content-Length: ");
        size_t want = cl == std::string::npos || cl > head_end ? 0 : atoi(data.c_str() + cl + 16);
        while (data.size() - head_end - 4 < want) {
            char buf[4096];
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n <= 0)
                return false;
            data.append(buf, static_cast<size_t>(n));
        }
        return true;
    }

    Handler handler_;
    std::string dir_, path_;
    int listen_ = -1;
    int stop_[2] = {-1, -1};
    std::thread thread_;
    std::vector<int> held_;
    std::mutex mu_;
    std::vector<std::string> requests_;
};

std::string Frame(int stream, uint32_t len, const std::string &payload) {
    std::string f(8, '\0');
    f[0] = static_cast<char>(stream);
    f[4] = static_cast<char>(len >> 24);
    f[5] = static_cast<char>(len >> 16);
    f[6] = static_cast<char>(len >> 8);
    f[7] = static_cast<char>(len);
    return f + payload;
}

// Bounds that catch a hang, not a slow machine: the API timeout under test is
// 300 ms, and a loaded (or sanitizer) build may take seconds beyond it.
const int64_t kHangGuardMs = 10000;

const char kUpgraded[] =
    "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
    "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n";

// Answers the calls every run makes before and after the container runs.
bool Routine(const Request &r, int fd) {
    if (r.target == "/_ping")
        FakeEngine::Respond(fd, 200, "OK");
    else if (r.target.rfind("/containers/json", 0) == 0)
        FakeEngine::Respond(fd, 200, "[]");
    else if (r.target.rfind("/images/", 0) == 0)
        FakeEngine::Respond(fd, 200, "{}");
    else if (r.target.rfind("/containers/create", 0) == 0)
        FakeEngine::Respond(fd, 201, "{\"Id\":\"c0ffee\",\"Warnings\":[]}");
    else if (r.method == "DELETE" || r.target.find("/kill") != std::string::npos ||
             r.target.find("/start") != std::string::npos)
        FakeEngine::Respond(fd, 204, "");
    else
        FakeEngine::Respond(fd, 404, "{\"message\":\"not faked\"}");
    return true;
}

class FakeEngineTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() { ASSERT_EQ(px_docker_global_init(nullptr), 0); }

    void TearDown() override {
        if (sandbox_.ops)
            sandbox_.ops->destroy(sandbox_.self);
    }

    void NewSandbox(const std::string &socket, int64_t api_timeout_ms = 5000) {
        DockerConfig cfg;
        cfg->socket_path = socket.c_str();
        cfg->instance = "fake";
        cfg->api_timeout_ms = api_timeout_ms;
        cfg->reaper_interval_ms = 0;
        px_error err = PX_ERROR_INIT;
        ASSERT_EQ(px_docker_sandbox_new(cfg.get(), &sandbox_, &err), 0) << err.msg;
    }

    px_sandbox_result Run(const Spec &spec, px_sandbox_run *run) {
        px_sandbox_result result = {};
        sandbox_.ops->run(sandbox_.self, spec.get(), run, &result);
        return run->Effective(result);
    }

    // Runs spec_ with a project of one main.py holding `code`.
    px_sandbox_result RunMain(const std::string &code, px_sandbox_run *run) {
        spec_.Tar(MakeTar({{"main.py", code}}));
        return Run(spec_, run);
    }

    px_sandbox sandbox_ = {};
    Spec spec_; // what RunMain runs; a test may set more of it first
};

TEST_F(FakeEngineTest, DaemonDown) {
    NewSandbox("/tmp/pyexec-no-such-dir/docker.sock");
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(sandbox_.ops->ping(sandbox_.self, &err), -1);
    EXPECT_EQ(err.code, PX_E_UNAVAILABLE);
    // The socket's own connect(2) error, not curl's "Failed to connect to
    // localhost port 80" about the URL it never dialled.
    EXPECT_NE(std::string(err.msg).find(
                  "Docker engine at /tmp/pyexec-no-such-dir/docker.sock: connect: No such file "
                  "or directory"),
              std::string::npos)
        << err.msg;
    EXPECT_EQ(std::string(err.msg).find("localhost"), std::string::npos) << err.msg;

    px_sandbox_run run;
    px_sandbox_result result = RunMain("print(1)\n", &run);
    EXPECT_FALSE(result.ran);
    EXPECT_EQ(result.error.code, PX_E_UNAVAILABLE) << result.error.msg;
    EXPECT_NE(std::string(result.error.msg).find("/tmp/pyexec-no-such-dir/docker.sock"),
              std::string::npos)
        << result.error.msg;
    EXPECT_EQ(run.started, 0);
}

TEST_F(FakeEngineTest, CreateFailsWithHttp500) {
    FakeEngine engine([](const Request &r, int fd) {
        if (r.target.rfind("/containers/create", 0) == 0)
            return FakeEngine::Answer(fd, 500, "{\"message\":\"no space left on device\"}");
        if (r.method == "DELETE")
            return FakeEngine::Answer(fd, 404, "{\"message\":\"No such container\"}");
        return Routine(r, fd);
    });
    NewSandbox(engine.path());
    px_sandbox_run run;
    px_sandbox_result result = RunMain("print(1)\n", &run);
    EXPECT_FALSE(result.ran);
    EXPECT_EQ(result.error.code, PX_E_INTERNAL);
    EXPECT_STREQ(result.error.msg,
                 "create container: POST /containers/create: HTTP 500: no space left on device");
    EXPECT_EQ(run.started, 0);
    EXPECT_TRUE(engine.Saw("DELETE /containers/pyexec-" + spec_.id() + "?force=1&v=1"))
        << "a half-created container would not leak";
}

TEST_F(FakeEngineTest, EngineThatNeverAnswersIsBoundedByTheApiTimeout) {
    FakeEngine engine([](const Request &, int) { return false; });
    int64_t t0 = px_now_mono_ms();
    NewSandbox(engine.path(), 300);
    EXPECT_LT(px_now_mono_ms() - t0, kHangGuardMs) << "the start-up ping is bounded";

    px_error err = PX_ERROR_INIT;
    t0 = px_now_mono_ms();
    EXPECT_EQ(sandbox_.ops->ping(sandbox_.self, &err), -1);
    EXPECT_EQ(err.code, PX_E_UNAVAILABLE);
    EXPECT_LT(px_now_mono_ms() - t0, kHangGuardMs);

    px_sandbox_run run;
    t0 = px_now_mono_ms();
    px_sandbox_result result = RunMain("print(1)\n", &run);
    int64_t took = px_now_mono_ms() - t0;
    EXPECT_FALSE(result.ran);
    EXPECT_EQ(result.error.code, PX_E_UNAVAILABLE) << result.error.msg;
    EXPECT_NE(std::string(result.error.msg).find("did not answer within 300 ms"), std::string::npos)
        << result.error.msg;
    EXPECT_LT(took, kHangGuardMs);
}

TEST_F(FakeEngineTest, TruncatedFrameOnAttach) {
    FakeEngine engine([](const Request &r, int fd) {
        if (r.target.find("/attach") != std::string::npos) {
            FakeEngine::WriteAll(fd, kUpgraded + Frame(1, 14, "partial output") +
                                         Frame(2, 100, "0123456789"));
            return true; // closes mid-frame
        }
        return Routine(r, fd);
    });
    NewSandbox(engine.path());
    px_sandbox_run run;
    px_sandbox_result result = RunMain("print(1)\n", &run);
    EXPECT_FALSE(result.ran);
    EXPECT_EQ(result.error.code, PX_E_INTERNAL);
    EXPECT_NE(std::string(result.error.msg).find("truncated frame"), std::string::npos)
        << result.error.msg;
    EXPECT_EQ(run.out, "partial output");
    EXPECT_EQ(run.err, "0123456789") << "pieces are delivered as they arrive";
    EXPECT_EQ(run.started, 1);
    EXPECT_TRUE(engine.Saw("POST /containers/c0ffee/kill"));
    EXPECT_TRUE(engine.Saw("DELETE /containers/c0ffee?force=1&v=1"));
}

TEST_F(FakeEngineTest, OversizedFrameOnAttach) {
    FakeEngine engine([](const Request &r, int fd) {
        if (r.target.find("/attach") != std::string::npos) {
            FakeEngine::WriteAll(fd, kUpgraded + Frame(1, 2 << 20, "xx"));
            return false; // keeps the stream open: the back-end must not wait for it
        }
        return Routine(r, fd);
    });
    NewSandbox(engine.path());
    px_sandbox_run run;
    int64_t t0 = px_now_mono_ms();
    px_sandbox_result result = RunMain("print(1)\n", &run);
    EXPECT_LT(px_now_mono_ms() - t0, kHangGuardMs);
    EXPECT_FALSE(result.ran);
    EXPECT_EQ(result.error.code, PX_E_INTERNAL);
    EXPECT_NE(std::string(result.error.msg).find("exceeds"), std::string::npos) << result.error.msg;
    EXPECT_EQ(run.out, "");
    EXPECT_TRUE(engine.Saw("POST /containers/c0ffee/kill"));
    EXPECT_TRUE(engine.Saw("DELETE /containers/c0ffee?force=1&v=1"));
}

TEST_F(FakeEngineTest, ContainerThatVanishesIsLost) {
    FakeEngine engine([](const Request &r, int fd) {
        if (r.target.find("/attach") != std::string::npos) {
            FakeEngine::WriteAll(fd, kUpgraded + Frame(1, 3, "hi\n"));
            return true; // a clean end of stream
        }
        if (r.target.find("/wait") != std::string::npos)
            return FakeEngine::Answer(fd, 404, "{\"message\":\"No such container: c0ffee\"}");
        return Routine(r, fd);
    });
    NewSandbox(engine.path());
    px_sandbox_run run;
    px_sandbox_result result = RunMain("print(1)\n", &run);
    EXPECT_FALSE(result.ran);
    EXPECT_TRUE(result.lost);
    EXPECT_NE(std::string(result.error.msg).find("vanished"), std::string::npos)
        << result.error.msg;
    EXPECT_EQ(run.out, "hi\n");
}

TEST_F(FakeEngineTest, ExitCodeAndOomFromInspect) {
    FakeEngine engine([](const Request &r, int fd) {
        if (r.target.find("/attach") != std::string::npos) {
            FakeEngine::WriteAll(fd, kUpgraded);
            return true;
        }
        if (r.target.find("/wait") != std::string::npos)
            return FakeEngine::Answer(fd, 200, "{\"StatusCode\":137}");
        if (r.target == "/containers/c0ffee/json")
            return FakeEngine::Answer(fd, 200, "{\"State\":{\"ExitCode\":137,\"OOMKilled\":true}}");
        return Routine(r, fd);
    });
    NewSandbox(engine.path());
    spec_.MemoryMb(96);
    px_sandbox_run run;
    px_sandbox_result result = RunMain("print(1)\n", &run);
    EXPECT_TRUE(result.ran) << result.error.msg;
    EXPECT_EQ(result.exit_code, 137);
    EXPECT_TRUE(result.oom_killed);
    EXPECT_EQ(result.peak_memory_bytes, 96 << 20)
        << "no trailer: the cgroup reached its limit, which is the peak";
    EXPECT_EQ(result.cpu_time_ms, 0);
    EXPECT_TRUE(engine.Saw("DELETE /containers/c0ffee?force=1&v=1"));
}

// The back-end's settings come from the server's configuration through one
// mapping: every field, the reaper in ms, an empty runtime as NULL.
TEST(DockerConfig, FromTheServerConfiguration) {
    px_config c;
    px_config_default(&c);
    snprintf(c.runtime, sizeof c.runtime, "runsc");
    c.reaper_interval_s = 7;
    c.warm_pool = 3;
    px_docker_config d;
    px_docker_config_from(&d, &c);
    EXPECT_EQ(d.socket_path, c.docker_socket);
    EXPECT_EQ(d.instance, c.instance);
    EXPECT_STREQ(d.runtime, "runsc");
    EXPECT_EQ(d.api_timeout_ms, c.docker_timeout_ms);
    EXPECT_EQ(d.pids_limit, c.pids_limit);
    EXPECT_EQ(d.tmp_mb, c.tmp_mb);
    EXPECT_EQ(d.nofile, 1024);
    EXPECT_EQ(d.reaper_interval_ms, 7000);
    EXPECT_EQ(d.warm_pool, 3);
    EXPECT_EQ(d.pool_image, c.default_image);
    EXPECT_EQ(d.pool_memory_mb, c.default_memory_mb);
    EXPECT_EQ(d.pool_disk_mb, c.default_disk_mb);
    EXPECT_EQ(d.pool_cpu_shares, c.default_cpu_shares);
    EXPECT_EQ(d.pool_refill_hold_ms, PX_DOCKER_REFILL_HOLD_MS);
    c.runtime[0] = '\0';
    px_docker_config_from(&d, &c);
    EXPECT_EQ(d.runtime, nullptr);
}

// Each invalid setting is refused before the engine is contacted, with a
// message naming that setting.
TEST(DockerConfig, EachInvalidSettingIsNamed) {
    struct Case {
        std::function<void(px_docker_config *)> spoil;
        const char *names;
    };
    const Case cases[] = {
        {[](px_docker_config *c) { c->socket_path = nullptr; }, "no engine socket path"},
        {[](px_docker_config *c) { c->instance = ""; }, "no instance name"},
        {[](px_docker_config *c) { c->api_timeout_ms = 0; }, "API timeout 0 ms"},
        {[](px_docker_config *c) { c->pids_limit = 0; }, "process limit 0"},
        {[](px_docker_config *c) { c->tmp_mb = -1; }, "/tmp size -1 MiB"},
        {[](px_docker_config *c) { c->nofile = 0; }, "open-file limit 0"},
        {[](px_docker_config *c) { c->reaper_interval_ms = -5; }, "reaper interval -5 ms"},
        {[](px_docker_config *c) { c->warm_pool = PX_DOCKER_POOL_MAX + 1; },
         "warm pool size 65 is not in 0..64"},
        {[](px_docker_config *c) { c->warm_pool = 1; }, "the warm pool has no image"},
        {[](px_docker_config *c) { c->pool_refill_hold_ms = -1; }, "refill hold -1 ms"},
        {[](px_docker_config *c) {
             c->warm_pool = 1;
             c->pool_image = "img";
             c->pool_memory_mb = 0;
         },
         "warm pool memory 0 MiB"},
        {[](px_docker_config *c) {
             c->warm_pool = 1;
             c->pool_image = "img";
             c->pool_disk_mb = 0;
         },
         "warm pool disk 0 MiB"},
        {[](px_docker_config *c) {
             c->warm_pool = 1;
             c->pool_image = "img";
             c->pool_cpu_shares = 0;
         },
         "warm pool CPU shares 0"},
        {[](px_docker_config *c) {
             c->wheelhouse = "/tmp";
             c->deps_network = "overlay";
         },
         "deps network 'overlay' is not one of none, host, bridge"},
        {[](px_docker_config *c) { c->pip_index_url = "http://127.0.0.1:1/simple"; },
         "a pip index URL needs a deps network (host or bridge), not none"},
        {[](px_docker_config *c) {
             c->pip_index_url = "ftp://127.0.0.1/simple";
             c->deps_network = "host";
         },
         "pip index URL 'ftp://127.0.0.1/simple' is not http(s)://"},
        {[](px_docker_config *c) { c->wheelhouse = "/nonexistent/wheels"; },
         "wheelhouse '/nonexistent/wheels': No such file or directory"},
        {[](px_docker_config *c) { c->wheelhouse = "/etc/hostname"; },
         "wheelhouse '/etc/hostname' is not a directory"},
        {[](px_docker_config *c) {
             c->wheelhouse = "/tmp";
             c->deps_cache_mb = 0;
         },
         "deps cache 0 MiB is not positive"},
        {[](px_docker_config *c) { c->auto_requirements = true; },
         "auto requirements need a package source"},
    };
    for (const Case &tc : cases) {
        DockerConfig cfg;
        cfg->socket_path = "/nonexistent/docker.sock";
        cfg->pool_image = nullptr;
        tc.spoil(cfg.mut());
        px_sandbox sb;
        px_error err = PX_ERROR_INIT;
        ASSERT_EQ(px_docker_sandbox_new(cfg.get(), &sb, &err), -1) << tc.names;
        EXPECT_EQ(err.code, PX_E_INVALID) << err.msg;
        EXPECT_NE(strstr(err.msg, tc.names), nullptr) << err.msg;
    }
}

// An engine whose attach stream carries `frames` in one write, then either
// ends (the container exits 0) or stays open until the container is killed
// (as a real engine ends it once the container is gone).
FakeEngine::Handler AttachThen(const std::string &frames, bool end) {
    auto attach = std::make_shared<int>(-1); // the engine's thread only
    return [frames, end, attach](const Request &r, int fd) {
        if (r.target.find("/attach") != std::string::npos) {
            FakeEngine::WriteAll(fd, kUpgraded + frames);
            if (!end)
                *attach = fd;
            return end;
        }
        if (r.target.find("/kill") != std::string::npos && *attach >= 0)
            shutdown(*attach, SHUT_RDWR);
        if (r.target.find("/wait") != std::string::npos)
            return FakeEngine::Answer(fd, 200, "{\"StatusCode\":0}");
        if (r.target == "/containers/c0ffee/json")
            return FakeEngine::Answer(fd, 200, "{\"State\":{\"ExitCode\":0}}");
        return Routine(r, fd);
    };
}

using Chunks = std::vector<std::pair<int, std::string>>;

// print('tick', 0) writes "tick", " ", "0", "\n": one chunk, not four.
TEST_F(FakeEngineTest, WritesOfOneLineAreOneChunk) {
    FakeEngine engine(AttachThen(
        Frame(1, 4, "tick") + Frame(1, 1, " ") + Frame(1, 1, "0") + Frame(1, 1, "\n"), true));
    NewSandbox(engine.path());
    px_sandbox_run run;
    px_sandbox_result result = RunMain("print('tick', 0)\n", &run);
    EXPECT_TRUE(result.ran) << result.error.msg;
    EXPECT_EQ(run.chunks, (Chunks{{1, "tick 0\n"}}));
}

// Held output of one stream goes out before the other stream's output.
TEST_F(FakeEngineTest, CoalescingKeepsTheOrderOfTheStreams) {
    FakeEngine engine(AttachThen(
        Frame(1, 1, "a") + Frame(1, 1, "b") + Frame(2, 2, "E\n") + Frame(1, 2, "c\n"), true));
    NewSandbox(engine.path());
    px_sandbox_run run;
    px_sandbox_result result = RunMain("pass\n", &run);
    EXPECT_TRUE(result.ran) << result.error.msg;
    EXPECT_EQ(run.chunks, (Chunks{{1, "ab"}, {2, "E\n"}, {1, "c\n"}}));
}

// A partial line is held only briefly: it arrives while the stream stays
// open (a prompt waiting for input), and a partial line at the end of the
// stream arrives before the result.
TEST_F(FakeEngineTest, PartialLinesAreNotHeldBack) {
    {
        FakeEngine engine(AttachThen(Frame(1, 8, "prompt> "), false));
        NewSandbox(engine.path());
        px_sandbox_run run;
        px_sandbox_result result = {};
        std::thread t([&] { result = RunMain("input('prompt> ')\n", &run); });
        EXPECT_TRUE(run.WaitForOutput("prompt> ", 10000)) << "held while the stream is open";
        run.Kill(PX_KILL_RPC);
        t.join();
        EXPECT_EQ(run.chunks, (Chunks{{1, "prompt> "}}));
        sandbox_.ops->destroy(sandbox_.self);
        sandbox_ = {};
    }
    FakeEngine engine(AttachThen(Frame(1, 10, "no newline"), true));
    NewSandbox(engine.path());
    px_sandbox_run run;
    px_sandbox_result result = RunMain("pass\n", &run);
    EXPECT_TRUE(result.ran) << result.error.msg;
    EXPECT_EQ(run.chunks, (Chunks{{1, "no newline"}}));
    EXPECT_TRUE(run.order_ok) << "all output before the result";
}

// A killed program keeps the bytes it wrote before it died: print('started')
// is two writes, "started" and "\n", and the second may still be in the
// engine when the kill is asked for. The run kills the container and reads
// its stream to the end (the engine sends it once the container is gone)
// instead of cutting it at the request.
TEST_F(FakeEngineTest, AKilledProgramKeepsWhatItWroteBeforeItDied) {
    int attach = -1; // the engine's thread only
    FakeEngine engine([&attach](const Request &r, int fd) {
        if (r.target.find("/attach") != std::string::npos) {
            FakeEngine::WriteAll(fd, kUpgraded + Frame(1, 7, "started"));
            attach = fd;
            return false; // open until the kill
        }
        if (r.target.find("/kill") != std::string::npos && attach >= 0) {
            // The container dies: what it wrote last, then the end.
            FakeEngine::WriteAll(attach, Frame(1, 1, "\n"));
            shutdown(attach, SHUT_RDWR);
        }
        return Routine(r, fd);
    });
    NewSandbox(engine.path());
    px_sandbox_run run;
    px_sandbox_result result = {};
    std::thread t([&] { result = RunMain("print('started')\n", &run); });
    ASSERT_TRUE(run.WaitForOutput("started", kHangGuardMs));
    run.Kill(PX_KILL_RPC);
    t.join();
    EXPECT_TRUE(result.ran) << result.error.msg;
    EXPECT_EQ(result.exit_code, 128 + 9);
    std::string out;
    for (const auto &c : run.chunks)
        out += c.second;
    EXPECT_EQ(out, "started\n");
    EXPECT_TRUE(engine.Saw("POST /containers/c0ffee/kill"));
    EXPECT_TRUE(run.order_ok) << "all output before the result";
}

// Reads the bootstrap preamble the back-end sends on the attach socket `fd`
// and returns the nonce in its header ("" if none came).
std::string ReadNonce(int fd) {
    std::string data;
    for (;;) {
        size_t at = data.find("\"nonce\":\"");
        if (at != std::string::npos && data.size() >= at + 9 + 32)
            return data.substr(at + 9, 32);
        pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0)
            return "";
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return "";
        data.append(buf, static_cast<size_t>(n));
    }
}

// The bootstrap's last words claim exit 0 with tiny usage; the engine saw
// `engine_exit`, or answers every wait and inspect with HTTP `failure` (a
// status other than 200). Returns what the back-end reported and whether it
// ended early.
struct Verdict {
    px_sandbox_result result;
    int ended;
};

class Witnesses : public FakeEngineTest {
  protected:
    Verdict Run2(int engine_exit, int failure = 200) {
        std::vector<std::thread> streams;
        FakeEngine engine([&](const Request &r, int fd) {
            if (r.target.find("/attach") != std::string::npos) {
                FakeEngine::WriteAll(fd, kUpgraded);
                streams.emplace_back([fd] {
                    std::string nonce = ReadNonce(fd);
                    std::string m = "\x1ePYX" + nonce + "\x1e";
                    std::string out = m + "{}" + m + "\n";
                    std::string err = m +
                                      "{\"peak_memory_bytes\": 1, \"cpu_time_ms\": 1, "
                                      "\"oom_kills\": 0, \"exit_code\": 0}" +
                                      m + "\n";
                    FakeEngine::WriteAll(fd, Frame(1, 3, "hi\n") +
                                                 Frame(1, static_cast<uint32_t>(out.size()), out) +
                                                 Frame(2, static_cast<uint32_t>(err.size()), err));
                    shutdown(fd, SHUT_RDWR); // the container exited
                });
                return false;
            }
            bool asks_exit = r.target.find("/wait") != std::string::npos ||
                             r.target == "/containers/c0ffee/json";
            if (asks_exit && failure != 200)
                return FakeEngine::Answer(fd, failure, "{\"message\":\"engine trouble\"}");
            if (r.target.find("/wait") != std::string::npos)
                return FakeEngine::Answer(fd, 200,
                                          "{\"StatusCode\":" + std::to_string(engine_exit) + "}");
            if (r.target == "/containers/c0ffee/json")
                return FakeEngine::Answer(
                    fd, 200,
                    "{\"State\":{\"ExitCode\":" + std::to_string(engine_exit) +
                        ",\"OOMKilled\":false}}");
            return Routine(r, fd);
        });
        NewSandbox(engine.path());
        px_sandbox_run run;
        Verdict v = {RunMain("print(1)\n", &run), run.ended};
        EXPECT_EQ(run.out, "hi\n");
        EXPECT_EQ(run.err, "");
        EXPECT_TRUE(engine.Saw("POST /containers/c0ffee/wait?condition=not-running"))
            << "the engine is asked even after the last words";
        for (std::thread &t : streams)
            t.join();
        return v;
    }
};

TEST_F(Witnesses, ATrailerThatTheEngineConfirmsGivesTheUsage) {
    Verdict v = Run2(0);
    EXPECT_TRUE(v.result.ran) << v.result.error.msg;
    EXPECT_EQ(v.result.exit_code, 0);
    EXPECT_EQ(v.result.peak_memory_bytes, 1);
    EXPECT_EQ(v.result.cpu_time_ms, 1);
    EXPECT_EQ(v.ended, 1) << "reported before the removal";
}

TEST_F(Witnesses, ATrailerThatTheEngineContradictsIsIgnored) {
    Verdict v = Run2(3);
    EXPECT_TRUE(v.result.ran) << v.result.error.msg;
    EXPECT_EQ(v.result.exit_code, 3) << "the engine's exit, not the trailer's";
    EXPECT_EQ(v.result.peak_memory_bytes, 0) << "nor its usage";
    EXPECT_EQ(v.result.cpu_time_ms, 0);
}

// Without the engine's word the last words are no verdict: a failed wait
// fails the run, and a container the engine no longer knows was lost.
TEST_F(Witnesses, ATrailerTheEngineCannotConfirmIsNoVerdict) {
    Verdict v = Run2(0, 500);
    EXPECT_FALSE(v.result.ran);
    EXPECT_FALSE(v.result.lost);
    EXPECT_EQ(v.result.error.code, PX_E_INTERNAL) << v.result.error.msg;
    EXPECT_NE(std::string(v.result.error.msg).find("engine trouble"), std::string::npos)
        << v.result.error.msg;
    EXPECT_EQ(v.result.peak_memory_bytes, 0) << "no usage from the trailer";
    EXPECT_EQ(v.ended, 0) << "nothing reported before the removal";
}

TEST_F(Witnesses, AContainerGoneAfterTheLastWordsIsLost) {
    Verdict v = Run2(0, 404);
    EXPECT_FALSE(v.result.ran);
    EXPECT_TRUE(v.result.lost) << v.result.error.msg;
    EXPECT_EQ(v.result.peak_memory_bytes, 0) << "no usage from the trailer";
    EXPECT_EQ(v.ended, 0);
}

} // namespace
