#include "tests/client/pyexecd_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <cstdlib>
#include <cstring>

extern char **environ;

namespace pyexec_test {

std::string Runfile(const std::string &rel) {
    for (const char *var : {"RUNFILES_DIR", "TEST_SRCDIR"}) {
        const char *dir = getenv(var);
        if (!dir)
            continue;
        for (const char *ws : {"pyexec", "__main__"}) {
            std::string p = std::string(dir) + "/" + ws + "/" + rel;
            if (access(p.c_str(), X_OK) == 0)
                return p;
        }
    }
    return "";
}

static std::vector<char *> CStrings(const std::vector<std::string> &v) {
    std::vector<char *> out;
    for (const auto &s : v)
        out.push_back(const_cast<char *>(s.c_str()));
    out.push_back(nullptr);
    return out;
}

PyexecdProcess::~PyexecdProcess() {
    Stop();
}

bool PyexecdProcess::Start(std::string *why) {
    const char *env_bin = getenv("PYEXECD_BIN");
    std::string bin = env_bin && *env_bin ? env_bin : Runfile("server/pyexecd");
    if (bin.empty() || access(bin.c_str(), X_OK) != 0) {
        *why = "pyexecd not found: set PYEXECD_BIN or depend on //server:pyexecd";
        return false;
    }
    /* A unique instance name: a server's reaper removes the containers of
     * its instance that it does not own, which would include those of
     * other test servers running at the same time. The pid alone is not
     * unique: Bazel runs each test in its own pid namespace. */
    std::random_device rd;
    char suffix[32];
    snprintf(suffix, sizeof suffix, "%d-%08x", (int)getpid(), (unsigned)rd());
    std::vector<std::string> args = {bin, "--listen", "127.0.0.1:0", "--instance",
                                     std::string("client-test-") + suffix};
    const char *image = getenv("PYEXEC_TEST_IMAGE");
    if (image && *image) {
        args.push_back("--default-image");
        args.push_back(image);
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        *why = "pipe failed";
        return false;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    auto argv = CStrings(args);
    int rc = posix_spawn(&pid_, bin.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        pid_ = -1;
        *why = std::string("spawn ") + bin + ": " + strerror(rc);
        return false;
    }
    stdout_fd_ = fds[0];

    /* The first line, within 30 s. */
    std::string line;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (line.find('\n') == std::string::npos) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        struct pollfd p = {stdout_fd_, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            *why = "no 'listening on' line within 30 s";
            Stop();
            return false;
        }
        char buf[256];
        ssize_t n = read(stdout_fd_, buf, sizeof buf);
        if (n <= 0) {
            *why = "server exited before printing its address";
            Stop();
            return false;
        }
        line.append(buf, (size_t)n);
    }
    line = line.substr(0, line.find('\n'));
    const std::string prefix = "listening on ";
    if (line.compare(0, prefix.size(), prefix) != 0) {
        *why = "unexpected first line: " + line;
        Stop();
        return false;
    }
    address_ = line.substr(prefix.size());
    /* Keep draining stdout so the server never blocks on a full pipe. */
    int fd = stdout_fd_;
    drain_ = std::thread([fd] {
        char buf[4096];
        while (read(fd, buf, sizeof buf) > 0) {
        }
    });
    return true;
}

void PyexecdProcess::Stop() {
    if (pid_ > 0) {
        kill(pid_, SIGTERM);
        int status;
        bool done = false;
        for (int i = 0; i < 3000 && !done; i++) {
            pid_t r = waitpid(pid_, &status, WNOHANG);
            if (r == pid_ || r < 0)
                done = true;
            else
                usleep(10 * 1000);
        }
        if (!done) {
            kill(pid_, SIGKILL);
            waitpid(pid_, &status, 0);
        }
        pid_ = -1;
    }
    if (drain_.joinable())
        drain_.join();
    if (stdout_fd_ >= 0) {
        close(stdout_fd_);
        stdout_fd_ = -1;
    }
}

ProcessResult RunProcess(const std::vector<std::string> &argv, const std::string &stdin_data,
                         const std::vector<std::string> &env, bool stdin_null) {
    ProcessResult res;
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
        return res;
    std::vector<std::string> envs;
    for (char **e = environ; *e; e++)
        envs.push_back(*e);
    for (const auto &kv : env)
        envs.push_back(kv);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (stdin_null)
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    else
        posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    auto cargv = CStrings(argv);
    auto cenv = CStrings(envs);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0].c_str(), &fa, nullptr, cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    if (rc != 0) {
        close(in[1]);
        close(out[0]);
        close(err[0]);
        res.err = std::string("spawn failed: ") + strerror(rc);
        return res;
    }
    /* Feed stdin from a thread while reading both outputs here. */
    std::thread feeder([&] {
        size_t off = 0;
        signal(SIGPIPE, SIG_IGN);
        while (off < stdin_data.size()) {
            ssize_t n = write(in[1], stdin_data.data() + off, stdin_data.size() - off);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        close(in[1]);
    });
    struct pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(p, 2, -1) < 0)
            break;
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[65536];
            ssize_t n = read(p[i].fd, buf, sizeof buf);
            if (n <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                open_fds--;
            } else {
                (i == 0 ? res.out : res.err).append(buf, (size_t)n);
            }
        }
    }
    feeder.join();
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status))
        res.exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        res.exit_code = 128 + WTERMSIG(status);
    return res;
}

} // namespace pyexec_test
