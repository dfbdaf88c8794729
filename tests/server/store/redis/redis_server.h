// A private redis-server for tests: started on a unix socket in a fresh
// temporary directory (--port 0, AOF on), never the system service.
// Readiness is awaited through the server's systemd notification socket
// (READY=1), not by polling.
#ifndef PYEXEC_TESTS_STORE_REDIS_SERVER_H
#define PYEXEC_TESTS_STORE_REDIS_SERVER_H

#include <hiredis/hiredis.h>
#include <sys/types.h>

#include <string>
#include <vector>

namespace pxtest {

class RedisServer {
  public:
    // Starts redis-server with `extra` arguments (e.g. {"--requirepass", "x"});
    // aborts the test binary if it does not come up.
    explicit RedisServer(std::vector<std::string> extra = {});
    ~RedisServer(); // stops it and removes the directory

    const std::string &socket_path() const { return socket_; }
    std::string url() const { return "redis+unix://" + socket_; }

    // SIGTERM and wait (Redis writes its AOF first); Start() again on the
    // same directory and socket, with the data the AOF holds.
    void Stop();
    void Start();
    // SIGKILL, as a crash.
    void Kill();

    // A raw command on a fresh connection (as an operator or another node
    // would): returns the reply, owned by the caller (freeReplyObject).
    redisReply *Command(const std::vector<std::string> &argv);
    // Convenience: the reply's integer, or its string parsed, or -1.
    long long Int(const std::vector<std::string> &argv);
    std::string Str(const std::vector<std::string> &argv);

  private:
    std::string dir_, socket_, notify_;
    std::vector<std::string> extra_;
    std::string password_;
    pid_t pid_ = -1;
};

} // namespace pxtest

#endif
