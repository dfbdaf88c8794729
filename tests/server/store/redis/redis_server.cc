#include "tests/server/store/redis/redis_server.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

namespace pxtest {

namespace {

[[noreturn]] void Die(const std::string &what) {
    fprintf(stderr, "redis test server: %s\n", what.c_str());
    abort();
}

} // namespace

RedisServer::RedisServer(std::vector<std::string> extra) : extra_(std::move(extra)) {
    // As pyexecd does: a write to a socket the server closed is an error, not
    // a signal.
    signal(SIGPIPE, SIG_IGN);
    char tmpl[] = "/tmp/pyexec-redis-XXXXXX";
    if (!mkdtemp(tmpl))
        Die("mkdtemp failed");
    dir_ = tmpl;
    socket_ = dir_ + "/redis.sock";
    notify_ = dir_ + "/notify.sock";
    for (size_t i = 0; i + 1 < extra_.size(); i++)
        if (extra_[i] == "--requirepass")
            password_ = extra_[i + 1];
    Start();
}

RedisServer::~RedisServer() {
    if (pid_ > 0)
        Kill();
    std::string rm = "rm -rf '" + dir_ + "'";
    if (system(rm.c_str()) != 0)
        fprintf(stderr, "redis test server: could not remove %s\n", dir_.c_str());
}

void RedisServer::Start() {
    int ns = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa = {};
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", notify_.c_str());
    unlink(notify_.c_str());
    if (ns < 0 || bind(ns, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0)
        Die("cannot bind the notification socket");
    std::vector<std::string> args = {"redis-server", "--port",    "0",
                                     "--unixsocket", socket_,     "--unixsocketperm",
                                     "700",          "--dir",     dir_,
                                     "--appendonly", "yes",       "--appendfsync",
                                     "always",       "--save",    "",
                                     "--supervised", "systemd",   "--loglevel",
                                     "warning",      "--logfile", dir_ + "/redis.log"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = fork();
    if (pid_ < 0)
        Die("fork failed");
    if (pid_ == 0) {
        setenv("NOTIFY_SOCKET", notify_.c_str(), 1);
        std::vector<char *> argv;
        for (auto &a : args)
            argv.push_back(const_cast<char *>(a.c_str()));
        argv.push_back(nullptr);
        execvp("redis-server", argv.data());
        _exit(127);
    }
    // Wait for READY=1 (or the process's death), at most 30 s.
    for (;;) {
        pollfd p = {ns, POLLIN, 0};
        int n = poll(&p, 1, 30000);
        if (n <= 0) {
            int st;
            if (waitpid(pid_, &st, WNOHANG) == pid_)
                Die("redis-server exited during start-up (see " + dir_ + "/redis.log)");
            Die("redis-server did not report READY=1 within 30 s");
        }
        char buf[512];
        ssize_t len = recv(ns, buf, sizeof buf - 1, 0);
        if (len < 0)
            Die("recv on the notification socket failed");
        buf[len] = '\0';
        if (strstr(buf, "READY=1"))
            break;
    }
    close(ns);
}

void RedisServer::Stop() {
    if (pid_ <= 0)
        return;
    kill(pid_, SIGTERM);
    int st;
    waitpid(pid_, &st, 0);
    pid_ = -1;
}

void RedisServer::Kill() {
    if (pid_ <= 0)
        return;
    kill(pid_, SIGKILL);
    int st;
    waitpid(pid_, &st, 0);
    pid_ = -1;
}

redisReply *RedisServer::Command(const std::vector<std::string> &argv) {
    redisContext *c = redisConnectUnix(socket_.c_str());
    if (!c || c->err)
        Die("cannot connect to the test server");
    if (!password_.empty()) {
        auto *r = static_cast<redisReply *>(redisCommand(c, "AUTH %s", password_.c_str()));
        if (!r || r->type == REDIS_REPLY_ERROR)
            Die("AUTH failed");
        freeReplyObject(r);
    }
    std::vector<const char *> v;
    std::vector<size_t> l;
    for (auto &a : argv) {
        v.push_back(a.data());
        l.push_back(a.size());
    }
    auto *r = static_cast<redisReply *>(
        redisCommandArgv(c, static_cast<int>(v.size()), v.data(), l.data()));
    redisFree(c);
    if (!r)
        Die("command failed on the socket");
    return r;
}

long long RedisServer::Int(const std::vector<std::string> &argv) {
    redisReply *r = Command(argv);
    long long v = -1;
    if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, nullptr, 10);
    freeReplyObject(r);
    return v;
}

std::string RedisServer::Str(const std::vector<std::string> &argv) {
    redisReply *r = Command(argv);
    std::string s;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
        r->type == REDIS_REPLY_ERROR)
        s.assign(r->str, r->len);
    freeReplyObject(r);
    return s;
}

} // namespace pxtest
