/* libpyexec against a real pyexecd (and the real Docker engine). */
#include "client/pyexec.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "server/base/id.h"
#include "tests/client/pyexecd_process.h"

namespace {

const char kUnknownId[] = "exe_00000000-0000-4000-8000-000000000000";

/* A request with one file, main.py, holding a copy of `code`. Not copyable. */
struct OneFile {
    std::string code;
    pyexec_file file;
    pyexec_request req;
    explicit OneFile(const std::string &c) : code(c) {
        memset(&file, 0, sizeof file);
        memset(&req, 0, sizeof req);
        file.path = "main.py";
        file.content = reinterpret_cast<const uint8_t *>(code.data());
        file.len = code.size();
        req.files = &file;
        req.n_files = 1;
    }
    OneFile(const OneFile &) = delete;
    OneFile &operator=(const OneFile &) = delete;
};

std::string Out(const pyexec_result *r) {
    return std::string(reinterpret_cast<const char *>(r->stdout_buf), r->stdout_len);
}
std::string Err(const pyexec_result *r) {
    return std::string(reinterpret_cast<const char *>(r->stderr_buf), r->stderr_len);
}

struct Collected {
    std::string out, err, all;
    std::vector<int64_t> offsets;
    std::vector<size_t> lens;
    int stop_after = -1; /* stop the stream after this many chunks */
    int chunks = 0;
};

int Collect(const pyexec_chunk *c, void *ud) {
    auto *col = static_cast<Collected *>(ud);
    std::string data(reinterpret_cast<const char *>(c->data), c->len);
    (c->stream == PYEXEC_STREAM_STDERR ? col->err : col->out) += data;
    col->offsets.push_back(c->offset);
    col->lens.push_back(c->len);
    col->all += data;
    col->chunks++;
    return col->stop_after >= 0 && col->chunks >= col->stop_after ? 1 : 0;
}

class LibpyexecTest : public ::testing::Test {
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
        pyexec_error err = PYEXEC_ERROR_INIT;
        client_ = pyexec_client_new(server_->address().c_str(), nullptr, &err);
        ASSERT_NE(client_, nullptr) << err.msg;
        ASSERT_EQ(pyexec_client_connect(client_, 10000, &err), 0) << err.msg;
    }
    void TearDown() override {
        for (const auto &id : started_) {
            pyexec_result *r = nullptr;
            if (pyexec_kill(client_, id.c_str(), &r, nullptr) == 0)
                pyexec_result_free(r);
        }
        pyexec_client_free(client_);
    }
    /* Submits asynchronously; the execution is killed at the end of the test. */
    std::string Submit(const std::string &code) {
        OneFile f(code);
        pyexec_result *r = nullptr;
        pyexec_error err = PYEXEC_ERROR_INIT;
        EXPECT_EQ(pyexec_execute_async(client_, &f.req, &r, &err), 0) << err.msg;
        if (!r)
            return "";
        std::string id = r->execution_id;
        pyexec_result_free(r);
        started_.push_back(id);
        return id;
    }

    static pyexec_test::PyexecdProcess *server_;
    static std::string start_error_;
    pyexec_client *client_ = nullptr;
    std::vector<std::string> started_;
};

pyexec_test::PyexecdProcess *LibpyexecTest::server_ = nullptr;
std::string LibpyexecTest::start_error_;

TEST_F(LibpyexecTest, HealthIsServing) {
    pyexec_health h = PYEXEC_HEALTH_UNKNOWN;
    pyexec_error err = PYEXEC_ERROR_INIT;
    ASSERT_EQ(pyexec_health_check(client_, nullptr, &h, &err), 0) << err.msg;
    EXPECT_EQ(h, PYEXEC_HEALTH_SERVING);
    EXPECT_STREQ(pyexec_health_name(h), "SERVING");
}

TEST_F(LibpyexecTest, ExecuteSyncHelloWorld) {
    OneFile f("print('hello, world')\n");
    pyexec_result *r = nullptr;
    pyexec_error err = PYEXEC_ERROR_INIT;
    ASSERT_EQ(pyexec_execute_sync(client_, &f.req, &r, &err), 0) << err.msg;
    EXPECT_TRUE(px_id_valid(r->execution_id, strlen(r->execution_id))) << r->execution_id;
    EXPECT_EQ(r->status, PYEXEC_STATUS_COMPLETED);
    EXPECT_EQ(r->reason, PYEXEC_REASON_EXITED);
    EXPECT_EQ(r->exit_code, 0);
    EXPECT_EQ(Out(r), "hello, world\n");
    EXPECT_EQ(Err(r), "");
    EXPECT_STREQ(r->error, "");
    EXPECT_TRUE(r->has_started_at);
    EXPECT_TRUE(r->has_finished_at);
    EXPECT_GE(r->duration_ms, 0);
    EXPECT_FALSE(r->output_truncated);
    pyexec_result_free(r);
}

TEST_F(LibpyexecTest, EvalReturnsTheResultOrTheError) {
    pyexec_result *r = nullptr;
    pyexec_error err = PYEXEC_ERROR_INIT;
    pyexec_request req;
    memset(&req, 0, sizeof req);
    const char *env[] = {"WHO=world"};
    req.env_vars = env;
    req.n_env_vars = 1;
    ASSERT_EQ(pyexec_eval_sync(client_, "import os\nprint('hi')\n'hello ' + os.environ['WHO']",
                               &req, &r, &err),
              0)
        << err.msg;
    EXPECT_EQ(r->status, PYEXEC_STATUS_COMPLETED);
    EXPECT_EQ(Out(r), "hi\n");
    ASSERT_NE(r->result, nullptr);
    EXPECT_STREQ(r->result, "'hello world'");
    EXPECT_STREQ(r->error_type, "");
    pyexec_result_free(r);

    r = nullptr;
    ASSERT_EQ(pyexec_eval_sync(client_, "x = 1\nx.nope\n", nullptr, &r, &err), 0) << err.msg;
    EXPECT_EQ(r->result, nullptr);
    EXPECT_STREQ(r->error_type, "AttributeError");
    EXPECT_EQ(r->error_line, 2);
    EXPECT_STREQ(r->error_message, "'int' object has no attribute 'nope'");
    EXPECT_EQ(r->exit_code, 1);
    pyexec_result_free(r);

    /* Async, then the listing shows it, newest first. */
    r = nullptr;
    ASSERT_EQ(pyexec_eval_async(client_, "6 * 7", nullptr, &r, &err), 0) << err.msg;
    std::string id = r->execution_id;
    pyexec_result_free(r);
    pyexec_list *l = nullptr;
    ASSERT_EQ(pyexec_list_executions(client_, PYEXEC_STATUS_UNSPECIFIED, 1, nullptr, &l, &err), 0)
        << err.msg;
    ASSERT_EQ(l->n, 1u);
    EXPECT_EQ(std::string(l->items[0]->execution_id), id);
    EXPECT_EQ(l->items[0]->stdout_len, 0u);
    EXPECT_STRNE(l->next_page_token, "");
    pyexec_list *next = nullptr;
    ASSERT_EQ(pyexec_list_executions(client_, PYEXEC_STATUS_UNSPECIFIED, 1, l->next_page_token,
                                     &next, &err),
              0)
        << err.msg;
    ASSERT_EQ(next->n, 1u);
    EXPECT_NE(std::string(next->items[0]->execution_id), id);
    pyexec_list_free(next);
    pyexec_list_free(l);
}

TEST_F(LibpyexecTest, ExecuteSyncPassesStdinArgsEnvAndExitCode) {
    OneFile f("import os, sys\n"
              "print(sys.stdin.read().upper(), sys.argv[1:], os.environ['GREETING'])\n"
              "sys.stderr.write('warn\\n')\n"
              "sys.exit(3)\n");
    const char *args[] = {"a", "b c"};
    const char *env[] = {"GREETING=hey"};
    const std::string in = "abc";
    f.req.script_args = args;
    f.req.n_script_args = 2;
    f.req.env_vars = env;
    f.req.n_env_vars = 1;
    f.req.stdin_data = reinterpret_cast<const uint8_t *>(in.data());
    f.req.stdin_len = in.size();
    f.req.timeout_seconds = 60;
    f.req.network = PYEXEC_NETWORK_DISABLED;
    pyexec_result *r = nullptr;
    pyexec_error err = PYEXEC_ERROR_INIT;
    ASSERT_EQ(pyexec_execute_sync(client_, &f.req, &r, &err), 0) << err.msg;
    EXPECT_EQ(r->status, PYEXEC_STATUS_COMPLETED);
    EXPECT_EQ(r->exit_code, 3);
    EXPECT_EQ(Out(r), "ABC ['a', 'b c'] hey\n");
    EXPECT_EQ(Err(r), "warn\n");
    pyexec_result_free(r);
}

/* 6 MiB in one sync result: above gRPC's 4 MiB default receive limit. */
TEST_F(LibpyexecTest, ExecuteSyncReceivesLargeOutput) {
    OneFile f("import sys\nsys.stdout.write('x' * (6 * 1024 * 1024))\n");
    pyexec_result *r = nullptr;
    pyexec_error err = PYEXEC_ERROR_INIT;
    ASSERT_EQ(pyexec_execute_sync(client_, &f.req, &r, &err), 0) << err.msg;
    EXPECT_EQ(r->status, PYEXEC_STATUS_COMPLETED);
    EXPECT_EQ(r->stdout_len, 6u * 1024 * 1024);
    pyexec_result_free(r);
}

TEST_F(LibpyexecTest, ExecuteAsyncThenStreamThenGet) {
    OneFile f("print('async hello')\n");
    pyexec_result *r = nullptr;
    pyexec_error err = PYEXEC_ERROR_INIT;
    ASSERT_EQ(pyexec_execute_async(client_, &f.req, &r, &err), 0) << err.msg;
    EXPECT_TRUE(r->status == PYEXEC_STATUS_PENDING || r->status == PYEXEC_STATUS_RUNNING)
        << pyexec_status_name(r->status);
    std::string id = r->execution_id;
    started_.push_back(id);
    pyexec_result_free(r);

    /* Wait for the end on the stream, then read everything. */
    pyexec_result *fin = nullptr;
    ASSERT_EQ(pyexec_stream_output(client_, id.c_str(), 0, nullptr, nullptr, &fin, &err), 0)
        << err.msg;
    EXPECT_EQ(fin->status, PYEXEC_STATUS_COMPLETED);
    pyexec_result_free(fin);

    ASSERT_EQ(pyexec_get_execution(client_, id.c_str(), &r, &err), 0) << err.msg;
    EXPECT_EQ(r->execution_id, id);
    EXPECT_EQ(r->status, PYEXEC_STATUS_COMPLETED);
    EXPECT_EQ(r->exit_code, 0);
    EXPECT_EQ(Out(r), "async hello\n");
    pyexec_result_free(r);
}

TEST_F(LibpyexecTest, StreamOutputDeliversChunksInOrderThenTheResult) {
    std::string id = Submit("import sys\n"
                            "print('one')\n"
                            "sys.stderr.write('two\\n')\n"
                            "print('three')\n"
                            "sys.exit(5)\n");
    ASSERT_FALSE(id.empty());
    Collected col;
    pyexec_result *fin = nullptr;
    pyexec_error err = PYEXEC_ERROR_INIT;
    ASSERT_EQ(pyexec_stream_output(client_, id.c_str(), 0, Collect, &col, &fin, &err), 0)
        << err.msg;
    EXPECT_EQ(col.out, "one\nthree\n");
    EXPECT_EQ(col.err, "two\n");
    /* Offsets count both streams together, in arrival order. */
    int64_t expect = 0;
    for (size_t i = 0; i < col.offsets.size(); i++) {
        EXPECT_EQ(col.offsets[i], expect) << "chunk " << i;
        expect += (int64_t)col.lens[i];
    }
    ASSERT_NE(fin, nullptr);
    EXPECT_EQ(fin->status, PYEXEC_STATUS_COMPLETED);
    EXPECT_EQ(fin->exit_code, 5);
    pyexec_result_free(fin);

    /* Replay from byte 4. */
    Collected again;
    ASSERT_EQ(pyexec_stream_output(client_, id.c_str(), 4, Collect, &again, nullptr, &err), 0)
        << err.msg;
    EXPECT_EQ(again.all, col.all.substr(4));
    ASSERT_FALSE(again.offsets.empty());
    EXPECT_EQ(again.offsets[0], 4);
}

TEST_F(LibpyexecTest, KillARunningExecution) {
    std::string id = Submit("import time\nprint('started', flush=True)\ntime.sleep(300)\n");
    ASSERT_FALSE(id.empty());
    /* Running once it printed: stop the stream after the first chunk. */
    Collected col;
    col.stop_after = 1;
    pyexec_error err = PYEXEC_ERROR_INIT;
    EXPECT_EQ(pyexec_stream_output(client_, id.c_str(), 0, Collect, &col, nullptr, &err), -1);
    EXPECT_EQ(err.code, PYEXEC_E_CANCELLED) << err.msg;
    EXPECT_EQ(col.out.rfind("started", 0), 0u) << col.out;

    pyexec_result *r = nullptr;
    ASSERT_EQ(pyexec_kill(client_, id.c_str(), &r, &err), 0) << err.msg;
    EXPECT_EQ(r->status, PYEXEC_STATUS_KILLED);
    EXPECT_EQ(r->reason, PYEXEC_REASON_KILLED);
    pyexec_result_free(r);
    /* Idempotent. */
    ASSERT_EQ(pyexec_kill(client_, id.c_str(), &r, &err), 0) << err.msg;
    EXPECT_EQ(r->status, PYEXEC_STATUS_KILLED);
    pyexec_result_free(r);
}

// A status without a code of its own (here ALREADY_EXISTS) is INTERNAL, and
// the message names the status as gRPC spells it.
TEST_F(LibpyexecTest, OtherStatusesAreInternalAndNamed) {
    std::string key = "libpyexec-test-" + std::to_string(getpid());
    OneFile first("import time\ntime.sleep(60)\n");
    first.req.request_id = key.c_str();
    pyexec_result *r = nullptr;
    pyexec_error err = PYEXEC_ERROR_INIT;
    ASSERT_EQ(pyexec_execute_async(client_, &first.req, &r, &err), 0) << err.msg;
    started_.push_back(r->execution_id);
    pyexec_result_free(r);
    r = nullptr;
    OneFile other("print('other content')\n");
    other.req.request_id = key.c_str();
    EXPECT_EQ(pyexec_execute_async(client_, &other.req, &r, &err), -1);
    EXPECT_EQ(err.code, PYEXEC_E_INTERNAL) << err.msg;
    EXPECT_EQ(std::string(err.msg).rfind("Execute: ALREADY_EXISTS: ", 0), 0u) << err.msg;
    EXPECT_EQ(r, nullptr);
}

TEST_F(LibpyexecTest, ErrorsMapToPxCodesAndKeepTheServerMessage) {
    pyexec_result *r = nullptr;
    pyexec_error err = PYEXEC_ERROR_INIT;
    EXPECT_EQ(pyexec_get_execution(client_, kUnknownId, &r, &err), -1);
    EXPECT_EQ(err.code, PYEXEC_E_NOT_FOUND) << err.msg;
    EXPECT_EQ(std::string(err.msg).rfind("GetExecution: ", 0), 0u) << err.msg;
    EXPECT_GT(strlen(err.msg), strlen("GetExecution: ")) << "server message kept";
    EXPECT_EQ(r, nullptr);

    err = PYEXEC_ERROR_INIT;
    EXPECT_EQ(pyexec_get_execution(client_, "exe_not-a-uuid", &r, &err), -1);
    EXPECT_EQ(err.code, PYEXEC_E_INVALID) << err.msg;

    err = PYEXEC_ERROR_INIT;
    EXPECT_EQ(pyexec_kill(client_, kUnknownId, &r, &err), -1);
    EXPECT_EQ(err.code, PYEXEC_E_NOT_FOUND) << err.msg;

    err = PYEXEC_ERROR_INIT;
    EXPECT_EQ(pyexec_stream_output(client_, kUnknownId, 0, nullptr, nullptr, nullptr, &err), -1);
    EXPECT_EQ(err.code, PYEXEC_E_NOT_FOUND) << err.msg;

    OneFile f("print(1)\n");
    f.req.entrypoint = "missing.py";
    err = PYEXEC_ERROR_INIT;
    EXPECT_EQ(pyexec_execute_sync(client_, &f.req, &r, &err), -1);
    EXPECT_EQ(err.code, PYEXEC_E_INVALID) << err.msg;

    OneFile bad("print(1)\n");
    bad.file.path = "../escape.py";
    err = PYEXEC_ERROR_INIT;
    EXPECT_EQ(pyexec_execute_sync(client_, &bad.req, &r, &err), -1);
    EXPECT_EQ(err.code, PYEXEC_E_INVALID) << err.msg;
}

TEST_F(LibpyexecTest, StreamOffsetsOutOfRange) {
    std::string id = Submit("print('x')\n");
    ASSERT_FALSE(id.empty());
    pyexec_error err = PYEXEC_ERROR_INIT;
    ASSERT_EQ(pyexec_stream_output(client_, id.c_str(), 0, nullptr, nullptr, nullptr, &err), 0)
        << err.msg;
    EXPECT_EQ(pyexec_stream_output(client_, id.c_str(), 1000, nullptr, nullptr, nullptr, &err), -1);
    EXPECT_EQ(err.code, PYEXEC_E_OUT_OF_RANGE) << err.msg;
    err = PYEXEC_ERROR_INIT;
    EXPECT_EQ(pyexec_stream_output(client_, id.c_str(), -1, nullptr, nullptr, nullptr, &err), -1);
    EXPECT_EQ(err.code, PYEXEC_E_INVALID) << err.msg;
}

TEST_F(LibpyexecTest, OneClientServesConcurrentCalls) {
    std::vector<std::thread> threads;
    std::vector<std::string> outs(3);
    for (int i = 0; i < 3; i++) {
        threads.emplace_back([this, i, &outs] {
            OneFile f("print(" + std::to_string(i) + " * 7)\n");
            pyexec_result *r = nullptr;
            pyexec_error err = PYEXEC_ERROR_INIT;
            if (pyexec_execute_sync(client_, &f.req, &r, &err) == 0) {
                outs[i] = Out(r);
                pyexec_result_free(r);
            } else {
                outs[i] = err.msg;
            }
        });
    }
    for (auto &t : threads)
        t.join();
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(outs[i], std::to_string(i * 7) + "\n");
}

/* ---- without a server -------------------------------------------------- */

TEST(LibpyexecOffline, UnreachableServerIsUnavailable) {
    pyexec_error err = PYEXEC_ERROR_INIT;
    pyexec_client *c = pyexec_client_new("127.0.0.1:1", nullptr, &err);
    ASSERT_NE(c, nullptr) << err.msg;
    EXPECT_EQ(pyexec_client_connect(c, 300, &err), -1);
    EXPECT_EQ(err.code, PYEXEC_E_UNAVAILABLE) << err.msg;
    pyexec_health h;
    err = PYEXEC_ERROR_INIT;
    EXPECT_EQ(pyexec_health_check(c, nullptr, &h, &err), -1);
    EXPECT_EQ(err.code, PYEXEC_E_UNAVAILABLE) << err.msg;
    /* The message names the server tried. */
    EXPECT_EQ(std::string(err.msg).rfind("Check: server 127.0.0.1:1: ", 0), 0u) << err.msg;
    pyexec_client_free(c);
}

/* pyexec_target_from_address() of `address`, or "error: <message>". */
static std::string Target(const char *address) {
    pyexec_error err = PYEXEC_ERROR_INIT;
    char *t = pyexec_target_from_address(address, &err);
    if (!t)
        return std::string("error: ") + err.msg;
    std::string s = t;
    free(t);
    return s;
}

TEST(LibpyexecOffline, AddressesBecomeTargets) {
    EXPECT_EQ(Target("127.0.0.1:6000"), "127.0.0.1:6000");
    EXPECT_EQ(Target("127.0.0.1"), "127.0.0.1:50051");
    EXPECT_EQ(Target("localhost"), "localhost:50051");
    EXPECT_EQ(Target("http://localhost:50061"), "localhost:50061");
    EXPECT_EQ(Target("http://localhost:50061/"), "localhost:50061");
    EXPECT_EQ(Target("grpc://example.test"), "example.test:50051");
    EXPECT_EQ(Target("[::1]:7"), "[::1]:7");
    EXPECT_EQ(Target("[::1]"), "[::1]:50051");
    EXPECT_EQ(Target("::1"), "[::1]:50051");
    EXPECT_EQ(Target("unix:/run/pyexec.sock"), "unix:/run/pyexec.sock");
    EXPECT_EQ(Target("dns:///h:1"), "dns:///h:1");
    EXPECT_EQ(Target(nullptr), PYEXEC_DEFAULT_SERVER);
    EXPECT_EQ(Target(""), PYEXEC_DEFAULT_SERVER);
    EXPECT_EQ(Target("https://h:1"), "h:1");
    EXPECT_EQ(Target("https://h"), "h:443");
    EXPECT_EQ(Target("grpcs://h"), "h:50051");
    EXPECT_TRUE(pyexec_address_uses_tls("https://h"));
    EXPECT_TRUE(pyexec_address_uses_tls("grpcs://h:1"));
    EXPECT_FALSE(pyexec_address_uses_tls("http://h"));
    EXPECT_FALSE(pyexec_address_uses_tls("h:1"));
    EXPECT_NE(Target("ftp://h:1").find("unknown scheme"), std::string::npos);
    EXPECT_NE(Target("h:0").find("bad port '0'"), std::string::npos);
    EXPECT_NE(Target("h:65536").find("bad port"), std::string::npos);
    EXPECT_NE(Target("h:").find("bad port"), std::string::npos);
    EXPECT_NE(Target(":1").find("no host"), std::string::npos);
    EXPECT_NE(Target("http://h:1/x").find("a path"), std::string::npos);
    EXPECT_NE(Target("[::1]x").find("expected [v6]:port"), std::string::npos);

    pyexec_error err = PYEXEC_ERROR_INIT;
    pyexec_client *c = pyexec_client_new("http://localhost", nullptr, &err);
    ASSERT_NE(c, nullptr) << err.msg;
    EXPECT_STREQ(pyexec_client_target(c), "localhost:50051");
    pyexec_client_free(c);
    c = pyexec_client_new("https://localhost", nullptr, &err);
    ASSERT_NE(c, nullptr) << err.msg;
    EXPECT_STREQ(pyexec_client_target(c), "localhost:443");
    pyexec_client_free(c);
}

TEST(LibpyexecOffline, TlsAndTokenOptionsAreChecked) {
    pyexec_error err = PYEXEC_ERROR_INIT;
    pyexec_client_options o = {};
    o.tls_ca_file = "/nonexistent/ca.pem";
    EXPECT_EQ(pyexec_client_new("127.0.0.1:1", &o, &err), nullptr);
    EXPECT_EQ(err.code, PYEXEC_E_INVALID);
    EXPECT_NE(std::string(err.msg).find("'/nonexistent/ca.pem'"), std::string::npos) << err.msg;
    o = {};
    o.tls_cert_file = "/c.pem";
    EXPECT_EQ(pyexec_client_new("https://h", &o, &err), nullptr);
    EXPECT_NE(std::string(err.msg).find("tls_cert_file without tls_key_file"), std::string::npos)
        << err.msg;
    o = {};
    o.token = "two words";
    EXPECT_EQ(pyexec_client_new("127.0.0.1:1", &o, &err), nullptr);
    EXPECT_NE(std::string(err.msg).find("token"), std::string::npos) << err.msg;
    o.token = "tok_0123";
    pyexec_client *c = pyexec_client_new("127.0.0.1:1", &o, &err);
    ASSERT_NE(c, nullptr) << err.msg;
    pyexec_client_free(c);
}

TEST(LibpyexecOffline, InvalidRequestsFailBeforeAnyCall) {
    pyexec_error err = PYEXEC_ERROR_INIT;
    pyexec_client *c = pyexec_client_new("127.0.0.1:1", nullptr, &err);
    ASSERT_NE(c, nullptr) << err.msg;
    EXPECT_STREQ(pyexec_client_target(c), "127.0.0.1:1");
    OneFile f("print(1)\n");
    f.req.memory_mb = -1;
    pyexec_result *r = nullptr;
    EXPECT_EQ(pyexec_execute_sync(c, &f.req, &r, &err), -1);
    EXPECT_EQ(err.code, PYEXEC_E_INVALID) << err.msg;
    OneFile g("print(1)\n");
    g.req.n_env_vars = 2; /* no array */
    err = PYEXEC_ERROR_INIT;
    EXPECT_EQ(pyexec_execute_async(c, &g.req, &r, &err), -1);
    EXPECT_EQ(err.code, PYEXEC_E_INVALID) << err.msg;
    OneFile h("print(1)\n");
    err = PYEXEC_ERROR_INIT;
    EXPECT_EQ(pyexec_eval_sync(c, "1", &h.req, &r, &err), -1); /* code and files */
    EXPECT_EQ(err.code, PYEXEC_E_INVALID) << err.msg;
    const char *args[] = {"a"};
    pyexec_request with_args;
    memset(&with_args, 0, sizeof with_args);
    with_args.script_args = args;
    with_args.n_script_args = 1;
    err = PYEXEC_ERROR_INIT;
    EXPECT_EQ(pyexec_eval_sync(c, "1", &with_args, &r, &err), -1);
    EXPECT_EQ(err.code, PYEXEC_E_INVALID) << err.msg;
    err = PYEXEC_ERROR_INIT;
    EXPECT_EQ(pyexec_get_execution(c, nullptr, &r, &err), -1);
    EXPECT_EQ(err.code, PYEXEC_E_INVALID) << err.msg;
    EXPECT_EQ(r, nullptr);
    pyexec_client_free(c);

    pyexec_client_options bad = {};
    bad.max_receive_bytes = -5;
    err = PYEXEC_ERROR_INIT;
    EXPECT_EQ(pyexec_client_new(nullptr, &bad, &err), nullptr);
    EXPECT_EQ(err.code, PYEXEC_E_INVALID);
}

TEST(LibpyexecOffline, NamesAndTerminalStates) {
    EXPECT_STREQ(pyexec_status_name(PYEXEC_STATUS_COMPLETED), "completed");
    EXPECT_STREQ(pyexec_status_name(PYEXEC_STATUS_KILLED), "killed");
    EXPECT_STREQ(pyexec_status_name((pyexec_status)42), "unspecified");
    EXPECT_STREQ(pyexec_reason_name(PYEXEC_REASON_MEMORY_LIMIT), "memory_limit");
    EXPECT_STREQ(pyexec_reason_name(PYEXEC_REASON_CLIENT_CANCELLED), "client_cancelled");
    EXPECT_STREQ(pyexec_health_name(PYEXEC_HEALTH_NOT_SERVING), "NOT_SERVING");
    EXPECT_FALSE(pyexec_status_is_terminal(PYEXEC_STATUS_PENDING));
    EXPECT_FALSE(pyexec_status_is_terminal(PYEXEC_STATUS_RUNNING));
    EXPECT_TRUE(pyexec_status_is_terminal(PYEXEC_STATUS_COMPLETED));
    EXPECT_TRUE(pyexec_status_is_terminal(PYEXEC_STATUS_FAILED));
    EXPECT_TRUE(pyexec_status_is_terminal(PYEXEC_STATUS_KILLED));
    pyexec_result_free(nullptr);
    pyexec_client_free(nullptr);
}

} // namespace
