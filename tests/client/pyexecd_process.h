/*
 * Test support: a real pyexecd started for a test, and a runner for child
 * processes (the `pyexec` CLI).
 *
 * The server binary is $PYEXECD_BIN if set, else the runfiles copy of
 * //server:pyexecd. It is started as `pyexecd --listen 127.0.0.1:0
 * --instance client-test-PID [--default-image $PYEXEC_TEST_IMAGE]` (its
 * own reaper scope) and its first stdout line
 * "listening on HOST:PORT" gives the address. Stop() (and the destructor)
 * end it by pid: SIGTERM, then SIGKILL after 30 s.
 * Not thread-safe; one object per test fixture.
 */
#ifndef PYEXEC_TESTS_CLIENT_PYEXECD_PROCESS_H
#define PYEXEC_TESTS_CLIENT_PYEXECD_PROCESS_H

#include <sys/types.h>

#include <string>
#include <thread>
#include <vector>

namespace pyexec_test {

/* The path of a file in the runfiles tree ("client/pyexec"), or "". */
std::string Runfile(const std::string &workspace_relative);

class PyexecdProcess {
  public:
    PyexecdProcess() = default;
    ~PyexecdProcess();
    PyexecdProcess(const PyexecdProcess &) = delete;
    PyexecdProcess &operator=(const PyexecdProcess &) = delete;

    /* Starts the server and waits up to 30 s for its address. Returns false
     * with *why set on failure. */
    bool Start(std::string *why);
    void Stop();
    const std::string &address() const { return address_; }

  private:
    pid_t pid_ = -1;
    int stdout_fd_ = -1;
    std::string address_;
    std::thread drain_;
};

struct ProcessResult {
    int exit_code = -1; /* 128+N if killed by signal N */
    std::string out, err;
};

/* Runs argv (argv[0] is a path) with `stdin_data` on its standard input
 * (or /dev/null when `stdin_null`), extra environment entries "K=V", and
 * collects stdout and stderr. */
ProcessResult RunProcess(const std::vector<std::string> &argv, const std::string &stdin_data,
                         const std::vector<std::string> &env, bool stdin_null = false);

} // namespace pyexec_test

#endif
