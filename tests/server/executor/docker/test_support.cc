#include "tests/server/executor/docker/test_support.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <jansson.h>

#include "server/base/clock.h"
#include "server/base/id.h"
#include "server/executor/docker/docker_global.h"

bool EngineTest::engine_up_ = false;

void EngineTest::SetUpTestSuite() {
    ASSERT_EQ(px_docker_global_init(nullptr), 0);
    px_docker_client *c = px_docker_client_new(kEngineSocket, 2000, nullptr);
    px_docker_response r;
    engine_up_ = px_docker_call(c, "GET", "/_ping", nullptr, 0, &r, nullptr) == 0 &&
                 r.status == 200;
    if (engine_up_)
        px_docker_response_release(&r);
    px_docker_client_free(c);
}

void EngineTest::SetUp() {
    if (!engine_up_) {
        // scripts/test sets PYEXEC_REQUIRE_ENGINE=1: there a missing engine
        // is a broken machine, and the suite fails rather than passing empty.
        const char *require = getenv("PYEXEC_REQUIRE_ENGINE");
        if (require && strcmp(require, "1") == 0)
            FAIL() << "no docker engine answers on " << kEngineSocket
                   << " (PYEXEC_REQUIRE_ENGINE=1)";
        GTEST_SKIP() << "no docker engine answers on " << kEngineSocket;
    }
    DockerConfig defaults;
    client_ = px_docker_client_new(kEngineSocket, defaults->api_timeout_ms, nullptr);
}

void EngineTest::TearDown() {
    Destroy();
    px_docker_client_free(client_);
    client_ = nullptr;
}

std::string NewInstance(const std::string &prefix) {
    char hex[17];
    px_random_hex(hex, 8, nullptr);
    return prefix + "-" + std::to_string(getpid()) + "-" + hex;
}

std::string EngineTest::Main(const std::string &code) {
    return MakeTar({{"main.py", code}});
}

Outcome EngineTest::Run(const Spec &spec, px_sandbox_run *run) {
    px_sandbox_run local;
    if (!run)
        run = &local;
    Outcome o;
    px_sandbox_result returned = {};
    sandbox_.ops->run(sandbox_.self, spec.get(), run, &returned);
    int64_t end = px_now_mono_ms();
    o.result = run->Effective(returned);
    std::lock_guard<std::mutex> lock(run->mu);
    o.out = run->out;
    o.err = run->err;
    o.started = run->started;
    o.ended = run->ended;
    o.order_ok = run->order_ok;
    o.ran_ms_after_start = run->started ? end - run->started_mono_ms : 0;
    return o;
}

void EngineTest::Destroy() {
    if (sandbox_.ops)
        sandbox_.ops->destroy(sandbox_.self);
    sandbox_ = {};
}

int EngineTest::CountLabelled(const std::vector<std::string> &labels) {
    std::string filters = "{\"label\":[";
    for (size_t i = 0; i < labels.size(); i++)
        filters += (i ? ",\"" : "\"") + labels[i] + "\"";
    filters += "]}";
    char *esc = px_docker_escape(filters.c_str(), nullptr);
    std::string path = std::string("/containers/json?all=1&filters=") + esc;
    free(esc);
    px_docker_response r;
    if (px_docker_call(client_, "GET", path.c_str(), nullptr, 0, &r, nullptr) != 0)
        return -1;
    json_t *j = json_loadb(r.body, r.len, 0, nullptr);
    int n = j ? static_cast<int>(json_array_size(j)) : -1;
    json_decref(j);
    px_docker_response_release(&r);
    return n;
}

long EngineTest::Inspect(const std::string &name, std::string *body) {
    px_docker_response r;
    std::string path = "/containers/" + name + "/json";
    if (px_docker_call(client_, "GET", path.c_str(), nullptr, 0, &r, nullptr) != 0)
        return -1;
    long s = r.status;
    if (body)
        body->assign(r.body, r.len);
    px_docker_response_release(&r);
    return s;
}

DockerConfig::DockerConfig() {
    px_config_default(&server_);
    px_docker_config_from(&docker_, &server_);
    docker_.warm_pool = 0;
}

px_sandbox_run::px_sandbox_run() {
    if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0)
        abort();
}

px_sandbox_run::~px_sandbox_run() {
    close(wake[0]);
    close(wake[1]);
}

void px_sandbox_run::Kill(px_kill_cause c) {
    int expected = PX_KILL_NONE;
    cause.compare_exchange_strong(expected, c);
    char b = 1;
    (void)!write(wake[1], &b, 1);
}

bool px_sandbox_run::WaitForOutput(const std::string &needle, int timeout_ms) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                       [&] { return combined.find(needle) != std::string::npos; });
}

px_sandbox_result px_sandbox_run::Effective(const px_sandbox_result &returned) {
    std::lock_guard<std::mutex> lock(mu);
    return ended ? early : returned;
}

extern "C" {

void px_sandbox_run_started(px_sandbox_run *run) {
    std::lock_guard<std::mutex> lock(run->mu);
    run->started++;
    run->started_mono_ms = px_now_mono_ms();
}

void px_sandbox_run_output(px_sandbox_run *run, px_stream stream, const uint8_t *data, size_t len) {
    std::lock_guard<std::mutex> lock(run->mu);
    if (!run->started || run->ended)
        run->order_ok = false;
    std::string &s = stream == PX_STREAM_STDOUT ? run->out : run->err;
    s.append(reinterpret_cast<const char *>(data), len);
    run->combined.append(reinterpret_cast<const char *>(data), len);
    run->chunks.emplace_back(static_cast<int>(stream),
                             std::string(reinterpret_cast<const char *>(data), len));
    run->cv.notify_all();
}

px_kill_cause px_sandbox_run_kill_requested(const px_sandbox_run *run) {
    return static_cast<px_kill_cause>(run->cause.load());
}

int px_sandbox_run_wake_fd(const px_sandbox_run *run) {
    return run->ended ? -1 : run->wake[0];
}

void px_sandbox_run_ended(px_sandbox_run *run, const px_sandbox_result *result) {
    std::lock_guard<std::mutex> lock(run->mu);
    if (run->ended++ == 0)
        run->early = *result;
}

} // extern "C"

static char *dup_str(const std::string &s) {
    char *p = static_cast<char *>(malloc(s.size() + 1));
    memcpy(p, s.data(), s.size());
    p[s.size()] = '\0';
    return p;
}

static char **dup_strv(const std::vector<std::string> &v) {
    char **out = static_cast<char **>(calloc(v.size() + 1, sizeof(char *)));
    for (size_t i = 0; i < v.size(); i++)
        out[i] = dup_str(v[i]);
    return out;
}

static void free_strv(char **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

Spec::Spec() : spec_(static_cast<px_job_spec *>(calloc(1, sizeof(px_job_spec)))) {
    char id[PX_ID_LEN + 1];
    if (px_id_new(id, nullptr) != 0)
        abort();
    memcpy(spec_->execution_id, id, sizeof id);
    const char *img = getenv("PYEXEC_TEST_IMAGE");
    spec_->image = dup_str(img && *img ? img : "pyexec/python:3.11");
    spec_->entrypoint = dup_str("main.py");
    spec_->timeout_s = 30;
    spec_->memory_mb = 256;
    spec_->disk_mb = 64;
    spec_->cpu_shares = 1024;
}

Spec::~Spec() {
    px_job_spec_free(spec_);
}

Spec &Spec::Image(const std::string &image) {
    free(spec_->image);
    spec_->image = dup_str(image);
    return *this;
}
Spec &Spec::Entrypoint(const std::string &ep) {
    free(spec_->entrypoint);
    spec_->entrypoint = dup_str(ep);
    return *this;
}
Spec &Spec::Tar(const std::string &tar) {
    free(spec_->tar);
    spec_->tar = reinterpret_cast<uint8_t *>(dup_str(tar));
    spec_->tar_len = tar.size();
    return *this;
}
Spec &Spec::Stdin(const std::string &data) {
    free(spec_->stdin_data);
    spec_->stdin_data = reinterpret_cast<uint8_t *>(dup_str(data));
    spec_->stdin_len = data.size();
    return *this;
}
Spec &Spec::Env(const std::vector<std::string> &env) {
    free_strv(spec_->env, spec_->n_env);
    spec_->env = dup_strv(env);
    spec_->n_env = env.size();
    return *this;
}
Spec &Spec::Args(const std::vector<std::string> &args) {
    free_strv(spec_->args, spec_->n_args);
    spec_->args = dup_strv(args);
    spec_->n_args = args.size();
    return *this;
}
Spec &Spec::PreCommands(const std::vector<std::string> &cmds) {
    free_strv(spec_->pre_commands, spec_->n_pre_commands);
    spec_->pre_commands = dup_strv(cmds);
    spec_->n_pre_commands = cmds.size();
    return *this;
}
Spec &Spec::Requirements(const std::string &req) {
    free(spec_->requirements_txt);
    spec_->requirements_txt = dup_str(req);
    return *this;
}
Spec &Spec::Timeout(int s) {
    spec_->timeout_s = s;
    return *this;
}
Spec &Spec::Network(bool on) {
    spec_->network = on;
    return *this;
}
Spec &Spec::MemoryMb(int mb) {
    spec_->memory_mb = mb;
    return *this;
}
Spec &Spec::DiskMb(int mb) {
    spec_->disk_mb = mb;
    return *this;
}
Spec &Spec::CpuShares(int shares) {
    spec_->cpu_shares = shares;
    return *this;
}

static void octal(char *field, size_t width, unsigned long long v) {
    // width includes the terminating NUL; digits are right-aligned, zero-filled.
    for (size_t i = width - 1; i-- > 0; v >>= 3)
        field[i] = static_cast<char>('0' + (v & 7));
    field[width - 1] = '\0';
}

std::string MakeTar(const std::vector<TarEntry> &entries) {
    std::string out;
    for (const TarEntry &e : entries) {
        char h[512];
        memset(h, 0, sizeof h);
        if (e.path.size() > 100)
            abort();
        memcpy(h, e.path.data(), e.path.size());
        octal(h + 100, 8, e.mode);
        octal(h + 108, 8, 0);
        octal(h + 116, 8, 0);
        size_t size = e.type == '0' ? e.data.size() : 0;
        octal(h + 124, 12, size);
        octal(h + 136, 12, 0);
        h[156] = e.type;
        if (e.type == '2')
            memcpy(h + 157, e.data.data(), e.data.size());
        memcpy(h + 257, "ustar", 6);
        memcpy(h + 263, "00", 2);
        memset(h + 148, ' ', 8);
        unsigned sum = 0;
        for (unsigned char c : h)
            sum += c;
        snprintf(h + 148, 8, "%06o", sum);
        out.append(h, sizeof h);
        if (size) {
            out.append(e.data);
            out.append((512 - size % 512) % 512, '\0');
        }
    }
    out.append(1024, '\0');
    return out;
}

static uint32_t crc32(const std::string &s) {
    uint32_t c = 0xffffffffu;
    for (unsigned char b : s) {
        c ^= b;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void le16(std::string &s, unsigned v) {
    s.push_back(static_cast<char>(v & 0xff));
    s.push_back(static_cast<char>((v >> 8) & 0xff));
}

static void le32(std::string &s, uint32_t v) {
    le16(s, v & 0xffff);
    le16(s, v >> 16);
}

std::string MakeZip(const std::vector<std::pair<std::string, std::string>> &files) {
    std::string out, central;
    for (const auto &f : files) {
        uint32_t crc = crc32(f.second);
        uint32_t offset = static_cast<uint32_t>(out.size());
        le32(out, 0x04034b50);
        le16(out, 20);   // version needed
        le16(out, 0);    // flags
        le16(out, 0);    // stored
        le16(out, 0);    // time
        le16(out, 0x21); // date: 1980-01-01
        le32(out, crc);
        le32(out, static_cast<uint32_t>(f.second.size()));
        le32(out, static_cast<uint32_t>(f.second.size()));
        le16(out, static_cast<unsigned>(f.first.size()));
        le16(out, 0);
        out += f.first;
        out += f.second;

        le32(central, 0x02014b50);
        le16(central, 20);
        le16(central, 20);
        le16(central, 0);
        le16(central, 0);
        le16(central, 0);
        le16(central, 0x21);
        le32(central, crc);
        le32(central, static_cast<uint32_t>(f.second.size()));
        le32(central, static_cast<uint32_t>(f.second.size()));
        le16(central, static_cast<unsigned>(f.first.size()));
        le16(central, 0); // extra
        le16(central, 0); // comment
        le16(central, 0); // disk
        le16(central, 0); // internal attrs
        le32(central, 0); // external attrs
        le32(central, offset);
        central += f.first;
    }
    uint32_t cd_offset = static_cast<uint32_t>(out.size());
    out += central;
    le32(out, 0x06054b50);
    le16(out, 0);
    le16(out, 0);
    le16(out, static_cast<unsigned>(files.size()));
    le16(out, static_cast<unsigned>(files.size()));
    le32(out, static_cast<uint32_t>(central.size()));
    le32(out, cd_offset);
    le16(out, 0);
    return out;
}
