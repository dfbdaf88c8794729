// Test support for the Docker back-end: a stand-in for the executor's side
// of px_sandbox_run (collects output, offers a wake pipe and a kill flag),
// a job-spec builder, tiny ustar and zip (wheel) writers, the back-end's
// configuration from the server's defaults, and the fixture of the tests
// against the real engine.
#ifndef PYEXEC_TESTS_EXECUTOR_DOCKER_TEST_SUPPORT_H
#define PYEXEC_TESTS_EXECUTOR_DOCKER_TEST_SUPPORT_H

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "server/base/config.h"
#include "server/executor/docker/docker_client.h"
#include "server/executor/docker/docker_sandbox.h"
#include "server/executor/sandbox.h"
#include "server/model/job.h"

// The back-end's configuration as pyexecd derives it from its defaults
// (px_config_default, then px_docker_config_from), with the warm pool off.
// Owns the server configuration its strings point into.
class DockerConfig {
  public:
    DockerConfig();
    DockerConfig(const DockerConfig &) = delete;
    DockerConfig &operator=(const DockerConfig &) = delete;

    px_docker_config *operator->() { return &docker_; }
    px_docker_config *mut() { return &docker_; }
    const px_docker_config *get() const { return &docker_; }

  private:
    px_config server_;
    px_docker_config docker_;
};

// The executor's control object, as far as the back-end can see it.
struct px_sandbox_run {
    px_sandbox_run();
    ~px_sandbox_run();
    // Requests a kill: sets the cause and makes the wake fd readable.
    void Kill(px_kill_cause cause);
    // Waits until the combined output contains `needle` (or the timeout).
    bool WaitForOutput(const std::string &needle, int timeout_ms);
    // The result the executor would report: the early one if the back-end
    // called px_sandbox_run_ended, else the one run() filled.
    px_sandbox_result Effective(const px_sandbox_result &returned);

    std::mutex mu;
    std::condition_variable cv;
    std::string out, err, combined;
    // Every px_sandbox_run_output call: the stream and the bytes.
    std::vector<std::pair<int, std::string>> chunks;
    int started = 0;
    int64_t started_mono_ms = 0;
    std::atomic<int> cause{PX_KILL_NONE};
    int wake[2] = {-1, -1};
    bool order_ok = true; // no output before started, none after ended
    int ended = 0;        // px_sandbox_run_ended calls
    px_sandbox_result early = {};
};

// A px_job_spec built from C++ values; owns the C spec.
class Spec {
  public:
    Spec();
    ~Spec();
    Spec(const Spec &) = delete;
    Spec &operator=(const Spec &) = delete;

    Spec &Image(const std::string &image);
    Spec &Entrypoint(const std::string &ep);
    Spec &Tar(const std::string &tar);
    Spec &Stdin(const std::string &data);
    Spec &Env(const std::vector<std::string> &env);
    Spec &Args(const std::vector<std::string> &args);
    Spec &PreCommands(const std::vector<std::string> &cmds);
    Spec &Requirements(const std::string &req);
    Spec &Timeout(int s);
    Spec &Network(bool on);
    Spec &MemoryMb(int mb);
    Spec &DiskMb(int mb);
    Spec &CpuShares(int shares);

    const px_job_spec *get() const { return spec_; }
    std::string id() const { return spec_->execution_id; }

  private:
    px_job_spec *spec_;
};

// One file of a test project.
struct TarEntry {
    std::string path;
    std::string data;
    unsigned mode = 0644;
    char type = '0'; // '0' file, '5' directory, '2' symlink (data = target)
};

// Writes a ustar archive (paths up to 100 bytes).
std::string MakeTar(const std::vector<TarEntry> &entries);

// Writes a zip archive with stored (uncompressed) members.
std::string MakeZip(const std::vector<std::pair<std::string, std::string>> &files);

// What one run produced, as the executor would see it.
struct Outcome {
    px_sandbox_result result = {};
    std::string out, err;
    int started = 0;
    int ended = 0;                  // px_sandbox_run_ended calls
    bool order_ok = true;           // no output before started, none after ended
    int64_t ran_ms_after_start = 0; // from the start report to run()'s return
};

// A fresh instance name, "<prefix>-<pid>-<16 hex digits>".
std::string NewInstance(const std::string &prefix);

// A test against the real engine on kEngineSocket, skipped when no engine
// answers there. Subclasses create sandbox_; TearDown destroys it and
// closes client_ (a plain client for inspecting the engine).
class EngineTest : public ::testing::Test {
  protected:
    static constexpr const char *kEngineSocket = "/var/run/docker.sock";

    static void SetUpTestSuite();
    void SetUp() override;
    void TearDown() override;

    // A project of one file, main.py.
    static std::string Main(const std::string &code);

    // Runs `spec` on sandbox_ with `run` (a fresh one when null).
    Outcome Run(const Spec &spec, px_sandbox_run *run = nullptr);
    // Destroys sandbox_ if there is one.
    void Destroy();
    // Containers (any state) that carry every one of `labels` ("k=v"), or
    // -1 if the engine does not answer.
    int CountLabelled(const std::vector<std::string> &labels);
    // GET /containers/{name}/json: the HTTP status (-1 without an answer),
    // and the body in *body.
    long Inspect(const std::string &name, std::string *body = nullptr);

    static bool engine_up_;
    px_sandbox sandbox_ = {};
    px_docker_client *client_ = nullptr;
};

#endif
