#include "server/base/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

struct Parsed {
    int rc;
    px_config cfg;
    px_error err;
    std::string out;
};

Parsed parse(std::vector<std::string> args, std::vector<std::string> env = {}) {
    Parsed p;
    px_config_default(&p.cfg);
    p.err = PX_ERROR_INIT;
    std::vector<char *> argv{const_cast<char *>("pyexecd")};
    for (auto &a : args)
        argv.push_back(&a[0]);
    std::vector<char *> envp;
    for (auto &e : env)
        envp.push_back(&e[0]);
    envp.push_back(nullptr);
    char *buf = nullptr;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    p.rc = px_config_parse(&p.cfg, (int)argv.size(), argv.data(), envp.data(), out, &p.err);
    fclose(out);
    p.out.assign(buf, len);
    free(buf);
    return p;
}

TEST(Config, DefaultsMatchTheContract) {
    px_config c;
    px_config_default(&c);
    EXPECT_STREQ("127.0.0.1:50051", c.listen);
    EXPECT_STREQ("/var/run/docker.sock", c.docker_socket);
    EXPECT_EQ(300, c.default_timeout_s);
    EXPECT_EQ(1024, c.default_memory_mb);
    EXPECT_EQ(2048, c.default_disk_mb);
    EXPECT_EQ(1024, c.default_cpu_shares);
    EXPECT_EQ(16 << 20, c.output_limit_bytes);
    EXPECT_EQ(300, c.retention_s);
    EXPECT_EQ(int64_t(1) << 30, c.max_retained_bytes);
}

TEST(Config, FlagsInBothForms) {
    Parsed p = parse({"--listen", "127.0.0.1:0", "--docker-socket=/tmp/d.sock", "--default-image",
                      "img:1", "--max-concurrent", "7"});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_STREQ("127.0.0.1:0", p.cfg.listen);
    EXPECT_STREQ("/tmp/d.sock", p.cfg.docker_socket);
    EXPECT_STREQ("img:1", p.cfg.default_image);
    EXPECT_EQ(7, p.cfg.max_concurrent);
}

TEST(Config, EnvironmentAndFlagPrecedence) {
    Parsed p = parse({"--default-image", "from-flag"},
                     {"PYEXEC_LISTEN=0.0.0.0:1234", "PYEXEC_INSECURE=1",
                      "PYEXEC_DEFAULT_IMAGE=from-env", "OTHER=x"});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_STREQ("0.0.0.0:1234", p.cfg.listen);
    EXPECT_STREQ("from-flag", p.cfg.default_image);
}

TEST(Config, PythonImagesBuiltInOverriddenAndAdded) {
    px_config c;
    px_config_default(&c);
    EXPECT_STREQ("pyexec/python:3.11", px_config_python_image(&c, "3.11"));
    EXPECT_STREQ("pyexec/python:3.13", px_config_python_image(&c, "3.13"));
    EXPECT_EQ(nullptr, px_config_python_image(&c, "3.12"));

    Parsed p = parse({"--python-image", "3.13=mine/py:13", "--python-image=3.12=mine/py:12"},
                     {"PYEXEC_PYTHON_IMAGE=3.10=env/py:10,3.9=env/py:9"});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_STREQ("pyexec/python:3.11", px_config_python_image(&p.cfg, "3.11"));
    EXPECT_STREQ("mine/py:13", px_config_python_image(&p.cfg, "3.13"));
    EXPECT_STREQ("mine/py:12", px_config_python_image(&p.cfg, "3.12"));
    EXPECT_STREQ("env/py:10", px_config_python_image(&p.cfg, "3.10"));
    char known[256];
    px_config_python_versions(&p.cfg, known, sizeof known);
    EXPECT_STREQ("3.11, 3.13, 3.10, 3.9, 3.12", known);
}

TEST(Config, PythonImageValuesAreChecked) {
    for (const char *bad : {"3.13", "=img", "3.13=", "three=img", "3.13=img,", "x"}) {
        Parsed p = parse({"--python-image", bad});
        EXPECT_EQ(-1, p.rc) << bad;
        EXPECT_EQ(PX_E_INVALID, p.err.code) << bad;
        EXPECT_NE(nullptr, strstr(p.err.msg, "--python-image")) << p.err.msg;
    }
    std::vector<std::string> args;
    for (int i = 0; i < PX_PYTHON_IMAGES_MAX; i++) {
        args.push_back("--python-image");
        args.push_back("4." + std::to_string(i) + "=img");
    }
    Parsed p = parse(args);
    EXPECT_EQ(-1, p.rc);
    EXPECT_NE(nullptr, strstr(p.err.msg, "more than")) << p.err.msg;
}

// By default a request may run the configured images and nothing else.
TEST(Config, AllowedImagesDefaultToTheConfiguredOnes) {
    Parsed p = parse({"--default-image", "mine/py:1", "--python-image", "3.12=mine/py:12"});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_FALSE(p.cfg.pull_missing) << "--pull never by default";
    for (const char *ok : {"mine/py:1", "mine/py:12", "pyexec/python:3.11", "pyexec/python:3.13"})
        EXPECT_TRUE(px_config_image_allowed(&p.cfg, ok)) << ok;
    for (const char *no : {"mine/py", "mine/py:2", "busybox", "127.0.0.1:1/mine/py:1",
                           "docker.io/mine/py:1", "mine/py:1x", ""})
        EXPECT_FALSE(px_config_image_allowed(&p.cfg, no)) << no;
    char allowed[256];
    px_config_allowed_images(&p.cfg, allowed, sizeof allowed);
    EXPECT_STREQ("mine/py:1, pyexec/python:3.11, pyexec/python:3.13, mine/py:12", allowed);
}

TEST(Config, AllowedImagePatterns) {
    Parsed p = parse({"--allowed-images", "pyexec/python:*,registry.local/team/*,exact:1"});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    for (const char *ok :
         {"pyexec/python:3.11", "pyexec/python:", "registry.local/team/a/b:c", "exact:1"})
        EXPECT_TRUE(px_config_image_allowed(&p.cfg, ok)) << ok;
    for (const char *no : {"pyexec/python", "pyexec/pythonx:1", "x/pyexec/python:3.11",
                           "registry.local/other:1", "exact:12", "exact:"})
        EXPECT_FALSE(px_config_image_allowed(&p.cfg, no)) << no;
    char allowed[256];
    px_config_allowed_images(&p.cfg, allowed, sizeof allowed);
    EXPECT_STREQ("pyexec/python:*, registry.local/team/*, exact:1", allowed);

    p = parse({}, {"PYEXEC_ALLOWED_IMAGES=*a*b*"});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_TRUE(px_config_image_allowed(&p.cfg, "xxaxxbxx"));
    EXPECT_TRUE(px_config_image_allowed(&p.cfg, "ab"));
    EXPECT_FALSE(px_config_image_allowed(&p.cfg, "ba"));

    for (const char *bad : {"", "a,,b", "a,", "img name", "img?", "[a]"}) {
        p = parse({"--allowed-images", bad});
        EXPECT_EQ(-1, p.rc) << bad;
        EXPECT_NE(nullptr, strstr(p.err.msg, "--allowed-images")) << p.err.msg;
    }
}

TEST(Config, Pull) {
    Parsed p = parse({"--pull", "missing"});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_TRUE(p.cfg.pull_missing);
    p = parse({}, {"PYEXEC_PULL=never"});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_FALSE(p.cfg.pull_missing);
    p = parse({"--pull", "always"});
    EXPECT_EQ(-1, p.rc);
    EXPECT_NE(std::string(p.err.msg).find("--pull: 'always' is not one of never, missing"),
              std::string::npos)
        << p.err.msg;
}

TEST(Config, WarmPool) {
    px_config c;
    px_config_default(&c);
    EXPECT_EQ(2, c.warm_pool);
    Parsed p = parse({"--warm-pool", "0"}, {"PYEXEC_WARM_POOL=9"});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_EQ(0, p.cfg.warm_pool) << "the flag wins over the environment";
    p = parse({}, {"PYEXEC_WARM_POOL=9"});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_EQ(9, p.cfg.warm_pool);
    p = parse({"--warm-pool=65"});
    EXPECT_EQ(-1, p.rc);
    EXPECT_NE(std::string(p.err.msg).find("--warm-pool: 65 is out of range [0, 64]"),
              std::string::npos)
        << p.err.msg;
}

TEST(Config, Dependencies) {
    px_config c;
    px_config_default(&c);
    EXPECT_STREQ("", c.wheelhouse);
    EXPECT_STREQ("", c.pip_index_url);
    EXPECT_STREQ("none", c.deps_network);
    EXPECT_EQ(2048, c.deps_cache_mb);
    EXPECT_EQ(256, c.max_requirements);
    EXPECT_EQ(0, c.auto_requirements);
    Parsed p = parse(
        {"--wheelhouse", "/srv/wheels", "--deps-cache-mb=10", "--deps-network", "host",
         "--max-requirements", "3", "--auto-requirements", "1"},
        {"PYEXEC_PIP_INDEX_URL=http://127.0.0.1:3141/simple", "PYEXEC_WHEELHOUSE=/env"});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_STREQ("/srv/wheels", p.cfg.wheelhouse) << "the flag wins over the environment";
    EXPECT_STREQ("http://127.0.0.1:3141/simple", p.cfg.pip_index_url);
    EXPECT_STREQ("host", p.cfg.deps_network);
    EXPECT_EQ(10, p.cfg.deps_cache_mb);
    EXPECT_EQ(3, p.cfg.max_requirements);
    EXPECT_EQ(1, p.cfg.auto_requirements);
    p = parse({"--auto-requirements", "2"});
    EXPECT_EQ(-1, p.rc);
    p = parse({"--deps-cache-mb", "0"});
    EXPECT_EQ(-1, p.rc);
    EXPECT_NE(std::string(p.err.msg).find("--deps-cache-mb: 0 is out of range"), std::string::npos)
        << p.err.msg;
    p = parse({"--max-requirements", "10001"});
    EXPECT_EQ(-1, p.rc);
}

TEST(Config, PlaintextIsForLoopbackUnlessInsecure) {
    for (const char *ok : {"127.0.0.1:0", "127.1.2.3:80", "localhost:1", "[::1]:50051"}) {
        Parsed p = parse({"--listen", ok});
        EXPECT_EQ(PX_CONFIG_RUN, p.rc) << ok << ": " << p.err.msg;
    }
    for (const char *open : {"0.0.0.0:50051", "[::]:1", "10.0.0.1:1", "example.org:1", ":1"}) {
        Parsed p = parse({"--listen", open});
        EXPECT_EQ(-1, p.rc) << open;
        EXPECT_NE(nullptr, strstr(p.err.msg, "is not a loopback address")) << p.err.msg;
        EXPECT_NE(nullptr, strstr(p.err.msg, "--insecure")) << p.err.msg;
        EXPECT_EQ(PX_CONFIG_RUN, parse({"--listen", open, "--insecure"}).rc) << open;
        EXPECT_EQ(PX_CONFIG_RUN, parse({"--listen", open, "--tls-cert", "c", "--tls-key", "k"}).rc)
            << open;
    }
    Parsed p = parse({"--listen", "0.0.0.0:1", "--insecure=false"});
    EXPECT_EQ(-1, p.rc);
    p = parse({"--listen", "0.0.0.0:1"}, {"PYEXEC_INSECURE=true"});
    EXPECT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_TRUE(p.cfg.insecure);
    p = parse({"--http-listen", "0.0.0.0:8080"});
    EXPECT_EQ(-1, p.rc);
    EXPECT_NE(nullptr, strstr(p.err.msg, "--http-listen '0.0.0.0:8080' is not a loopback"))
        << p.err.msg;
    EXPECT_EQ(PX_CONFIG_RUN, parse({"--http-listen", "0.0.0.0:8080", "--insecure"}).rc);
    EXPECT_EQ(PX_CONFIG_RUN,
              parse({"--http-listen", "0.0.0.0:8080", "--tls-cert", "c", "--tls-key", "k"}).rc);
    EXPECT_EQ(PX_CONFIG_RUN, parse({"--http-listen", "127.0.0.1:0"}).rc);
    p = parse({"--insecure=maybe"});
    EXPECT_EQ(-1, p.rc);
    EXPECT_NE(nullptr, strstr(p.err.msg, "--insecure: 'maybe'")) << p.err.msg;
}

TEST(Config, MetricsTenantNeedsTenants) {
    Parsed p = parse({"--metrics-tenant", "ops"});
    EXPECT_EQ(-1, p.rc);
    EXPECT_NE(nullptr, strstr(p.err.msg, "--metrics-tenant needs tenants")) << p.err.msg;
    p = parse({"--metrics-tenant", "ops", "--auth-tokens", "tokens"});
    EXPECT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_STREQ("ops", p.cfg.metrics_tenant);
}

TEST(Config, TlsFilesGoTogether) {
    Parsed p = parse({"--tls-cert", "c.pem"});
    EXPECT_EQ(-1, p.rc);
    EXPECT_NE(nullptr, strstr(p.err.msg, "--tls-cert without --tls-key")) << p.err.msg;
    p = parse({"--tls-key", "k.pem"});
    EXPECT_NE(nullptr, strstr(p.err.msg, "--tls-key without --tls-cert")) << p.err.msg;
    p = parse({"--tls-client-ca", "ca.pem"});
    EXPECT_EQ(-1, p.rc);
    EXPECT_NE(nullptr, strstr(p.err.msg, "--tls-client-ca needs --tls-cert")) << p.err.msg;
    p = parse({"--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-ca", "ca.pem"});
    EXPECT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_STREQ("ca.pem", p.cfg.tls_client_ca);
}

TEST(Config, UnknownFlagIsAClearError) {
    Parsed p = parse({"--no-such-flag", "1"});
    EXPECT_EQ(-1, p.rc);
    EXPECT_EQ(PX_E_INVALID, p.err.code);
    EXPECT_NE(nullptr, strstr(p.err.msg, "--no-such-flag")) << p.err.msg;
}

TEST(Config, MissingValue) {
    Parsed p = parse({"--listen"});
    EXPECT_EQ(-1, p.rc);
    EXPECT_NE(nullptr, strstr(p.err.msg, "needs a value")) << p.err.msg;
}

TEST(Config, NumbersAreCheckedAndBounded) {
    Parsed p = parse({"--max-concurrent", "abc"});
    EXPECT_EQ(-1, p.rc);
    EXPECT_NE(nullptr, strstr(p.err.msg, "not an integer")) << p.err.msg;
    p = parse({"--max-concurrent", "0"});
    EXPECT_EQ(-1, p.rc);
    EXPECT_NE(nullptr, strstr(p.err.msg, "out of range")) << p.err.msg;
    p = parse({}, {"PYEXEC_RETENTION_S=-5"});
    EXPECT_EQ(-1, p.rc);
    EXPECT_NE(nullptr, strstr(p.err.msg, "PYEXEC_RETENTION_S")) << p.err.msg;
}

TEST(Config, DefaultAboveMaximumIsRejected) {
    Parsed p = parse({"--default-timeout-s", "100", "--max-timeout-s", "50"});
    EXPECT_EQ(-1, p.rc);
    EXPECT_NE(nullptr, strstr(p.err.msg, "--max-timeout-s")) << p.err.msg;
}

TEST(Config, StreamReaderBounds) {
    px_config c;
    px_config_default(&c);
    EXPECT_EQ(256, c.max_stream_readers);
    EXPECT_EQ(1024, c.max_total_stream_readers);
    EXPECT_EQ(64 << 20, c.max_stream_queued_bytes);
    /* Every reader's share of the queued bytes must be at least 1 KiB. */
    Parsed p = parse({"--max-total-stream-readers", "100", "--max-stream-queued-bytes", "102400"});
    EXPECT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    p = parse({"--max-total-stream-readers", "101", "--max-stream-queued-bytes", "102400"});
    EXPECT_EQ(-1, p.rc);
    EXPECT_NE(nullptr, strstr(p.err.msg, "less than 1024 bytes")) << p.err.msg;
}

TEST(Config, ReplyBudgetHoldsAFullResult) {
    px_config c;
    px_config_default(&c);
    EXPECT_EQ(256 << 20, c.max_reply_queued_bytes);
    Parsed p = parse({"--output-limit-bytes", "1000000", "--max-reply-queued-bytes", "1065536"});
    EXPECT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    p = parse({"--output-limit-bytes", "1000000", "--max-reply-queued-bytes", "1065535"});
    EXPECT_EQ(-1, p.rc);
    EXPECT_NE(nullptr, strstr(p.err.msg, "--output-limit-bytes")) << p.err.msg;
}

TEST(Config, EmptyStringRejected) {
    Parsed p = parse({"--listen", ""});
    EXPECT_EQ(-1, p.rc);
}

TEST(Config, HttpDoorIsOffByDefaultAndItsLimitsAreBounded) {
    Parsed p = parse({});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc);
    EXPECT_STREQ("", p.cfg.http_listen);
    p = parse({"--http-listen", "127.0.0.1:8080", "--http-max-body-bytes", "4096",
               "--http-max-connections", "8", "--http-max-connections-per-client", "2",
               "--http-max-header-bytes", "8192", "--http-read-timeout-s", "5"});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_STREQ("127.0.0.1:8080", p.cfg.http_listen);
    EXPECT_EQ(4096, p.cfg.http_max_body_bytes);
    EXPECT_EQ(8, p.cfg.http_max_connections);
    EXPECT_EQ(2, p.cfg.http_max_connections_per_client);
    EXPECT_EQ(8192, p.cfg.http_max_header_bytes);
    EXPECT_EQ(5, p.cfg.http_read_timeout_s);
    /* Empty turns the door off again (e.g. over PYEXEC_HTTP_LISTEN). */
    p = parse({"--http-listen", ""}, {"PYEXEC_HTTP_LISTEN=127.0.0.1:8080"});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_STREQ("", p.cfg.http_listen);
    p = parse({}, {"PYEXEC_HTTP_LISTEN=127.0.0.1:8080"});
    EXPECT_STREQ("127.0.0.1:8080", p.cfg.http_listen);
    for (const char *bad : {"--http-max-body-bytes=10", "--http-max-connections=0",
                            "--http-max-header-bytes=100", "--http-read-timeout-s=0"}) {
        p = parse({bad});
        EXPECT_EQ(-1, p.rc) << bad;
        EXPECT_NE(nullptr, strstr(p.err.msg, "out of range")) << p.err.msg;
    }
}

TEST(Config, LogLevel) {
    Parsed p = parse({"--log-level", "debug"});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc);
    EXPECT_EQ(PX_LOG_DEBUG, p.cfg.log_level);
    p = parse({"--log-level", "loud"});
    EXPECT_EQ(-1, p.rc);
}

TEST(Config, HelpAndVersion) {
    Parsed p = parse({"--help"});
    EXPECT_EQ(PX_CONFIG_HELP, p.rc);
    EXPECT_NE(std::string::npos, p.out.find("--docker-socket"));
    EXPECT_NE(std::string::npos, p.out.find("PYEXEC_DOCKER_SOCKET"));
    p = parse({"--version"});
    EXPECT_EQ(PX_CONFIG_VERSION, p.rc);
    EXPECT_NE(std::string::npos, p.out.find(PYEXEC_VERSION));
}

/* Every numeric flag's --help entry shows "MIN to MAX, default D", and those
 * are the bounds the parser enforces: MIN and MAX are accepted, one past
 * either is refused as out of range. (A value may still be refused for
 * another reason, e.g. a default above its maximum; that is not a range.) */
TEST(Config, HelpShowsTheRangeOfEveryNumericFlag) {
    Parsed help = parse({"--help"});
    ASSERT_EQ(PX_CONFIG_HELP, help.rc);
    std::vector<std::pair<std::string, std::string>> blocks; /* flag, its second line */
    size_t pos = 0;
    while ((pos = help.out.find("\n  --", pos)) != std::string::npos) {
        size_t name_end = help.out.find(' ', pos + 5);
        if (help.out.compare(pos + 5, name_end - pos - 5, "help") == 0)
            break; /* --help and --version take no value */
        size_t line2 = help.out.find('\n', pos + 1);
        size_t line2_end = help.out.find('\n', line2 + 1);
        ASSERT_NE(std::string::npos, line2_end);
        blocks.emplace_back(help.out.substr(pos + 5, name_end - pos - 5),
                            help.out.substr(line2 + 1, line2_end - line2 - 1));
        pos = line2;
    }
    int ranged = 0;
    for (const auto &b : blocks) {
        const std::string &flag = b.first, &line = b.second;
        size_t d = line.find("default ");
        ASSERT_NE(std::string::npos, d) << flag << ": " << line;
        char *end = nullptr;
        strtoll(line.c_str() + d + 8, &end, 10);
        bool numeric = end != line.c_str() + d + 8 && (*end == ';' || *end == ' ');
        long long lo = 0, hi = 0;
        int n = sscanf(line.c_str(), " %lld%*[^t]to %lld", &lo, &hi);
        if (!numeric) {
            EXPECT_EQ(std::string::npos, line.find(" to ")) << flag << ": " << line;
            continue;
        }
        ASSERT_EQ(2, n) << "--" << flag << " shows no range: " << line;
        ranged++;
        for (long long v : {lo, hi, lo - 1, hi + 1}) {
            Parsed p = parse({"--" + flag, std::to_string(v)});
            bool refused = p.rc < 0 && strstr(p.err.msg, "out of range") != nullptr;
            EXPECT_EQ(v < lo || v > hi, refused) << "--" << flag << " " << v << ": " << p.err.msg;
        }
    }
    EXPECT_GE(ranged, 30);
}

TEST(Config, PositionalArgumentRejected) {
    Parsed p = parse({"serve"});
    EXPECT_EQ(-1, p.rc);
}

/* ---- the --config file ---- */

std::string write_file(const std::string &text) {
    char path[] = "/tmp/pyexec-config-test.XXXXXX";
    int fd = mkstemp(path);
    EXPECT_GE(fd, 0);
    EXPECT_EQ((ssize_t)text.size(), write(fd, text.data(), text.size()));
    close(fd);
    return path;
}

TEST(ConfigFile, KeysAreFlagNamesWithCommentsQuotesAndBlanks) {
    std::string f = write_file("# pyexecd settings\n"
                               "\n"
                               "  max-concurrent = 7\n"
                               "default_image=\"img:file\"\r\n"
                               "; also a comment\n"
                               "insecure = true\n"
                               "listen = 0.0.0.0:1\n"
                               "python-image = 3.12=py:3.12\n"
                               "allowed-images = pyexec/python:*,py:*\n");
    Parsed p = parse({"--config", f});
    unlink(f.c_str());
    ASSERT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_EQ(7, p.cfg.max_concurrent);
    EXPECT_STREQ("img:file", p.cfg.default_image);
    EXPECT_TRUE(p.cfg.insecure);
    EXPECT_STREQ("0.0.0.0:1", p.cfg.listen);
    EXPECT_STREQ("py:3.12", px_config_python_image(&p.cfg, "3.12"));
    EXPECT_STREQ("pyexec/python:*,py:*", p.cfg.allowed_images);
    EXPECT_STREQ(f.c_str(), p.cfg.config_file);
}

TEST(ConfigFile, FlagsWinOverEnvironmentWhichWinsOverTheFile) {
    std::string f = write_file("default-image = from-file\n"
                               "instance = from-file\n"
                               "runtime = from-file\n"
                               "max-queue = 5\n");
    Parsed p = parse({"--runtime", "from-flag", "--config", f},
                     {"PYEXEC_INSTANCE=from-env", "PYEXEC_RUNTIME=from-env"});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_STREQ("from-file", p.cfg.default_image);
    EXPECT_STREQ("from-env", p.cfg.instance);
    EXPECT_STREQ("from-flag", p.cfg.runtime);
    EXPECT_EQ(5, p.cfg.max_queue);
    EXPECT_EQ(10000, p.cfg.max_records); /* the default, set by nobody */
    // PYEXEC_CONFIG names the file too; --config wins over it.
    p = parse({}, {"PYEXEC_CONFIG=" + f});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_STREQ("from-file", p.cfg.instance);
    p = parse({"--config", "/nonexistent/pyexecd.conf"}, {"PYEXEC_CONFIG=" + f});
    EXPECT_EQ(-1, p.rc);
    unlink(f.c_str());
}

TEST(ConfigFile, ErrorsNameTheFileAndLine) {
    struct {
        const char *text, *message;
    } cases[] = {
        {"max-concurrent = 4\nmax-concurrent = lots\n",
         ":2: max-concurrent: 'lots' is not an integer"},
        {"\n\nlog-level = loud\n", ":3: log-level: 'loud' is not one of debug"},
        {"listen\n", ":1: 'listen' is not KEY = VALUE"},
        {"# ok\nno-such-flag = 1\n", ":2: unknown key 'no-such-flag'"},
        {"config = other.conf\n", ":1: unknown key 'config'"},
        {"max-timeout-s = 0\n", ":1: max-timeout-s: 0 is out of range [1, 86400]"},
        {"listen = 0.0.0.0:50051\n", "is not a loopback address"},
    };
    for (const auto &c : cases) {
        std::string f = write_file(c.text);
        Parsed p = parse({"--config", f});
        unlink(f.c_str());
        EXPECT_EQ(-1, p.rc) << c.text;
        EXPECT_NE(std::string::npos, std::string(p.err.msg).find(c.message))
            << c.text << " -> " << p.err.msg;
        if (c.message[0] == ':') {
            EXPECT_EQ(0, strncmp(p.err.msg, f.c_str(), f.size())) << p.err.msg;
        }
    }
    Parsed p = parse({"--config", "/nonexistent/pyexecd.conf"});
    EXPECT_EQ(-1, p.rc);
    EXPECT_NE(std::string::npos, std::string(p.err.msg).find("/nonexistent/pyexecd.conf"))
        << p.err.msg;
}

TEST(ConfigFile, CheckConfigReportsWithoutRunning) {
    std::string f = write_file("max-concurrent = 3\n");
    Parsed p = parse({"--check-config", "--config", f});
    EXPECT_EQ(PX_CONFIG_CHECKED, p.rc) << p.err.msg;
    EXPECT_EQ(3, p.cfg.max_concurrent);
    unlink(f.c_str());
    p = parse({"--check-config", "--max-concurrent", "0"});
    EXPECT_EQ(-1, p.rc);
    EXPECT_TRUE(p.cfg.check_config); /* main() exits 1 then, not 2 */
}

TEST(ConfigFile, RereadLogLevelUnlessAFlagOrTheEnvironmentSetIt) {
    std::string f = write_file("log-level = warn\n");
    Parsed p = parse({"--config", f});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    EXPECT_EQ(PX_LOG_WARN, p.cfg.log_level);
    FILE *w = fopen(f.c_str(), "w");
    fputs("# now\nlog-level = debug\n", w);
    fclose(w);
    px_log_level level = PX_LOG_ERROR;
    px_error err = PX_ERROR_INIT;
    ASSERT_EQ(0, px_config_reread_log_level(&p.cfg, &level, &err)) << err.msg;
    EXPECT_EQ(PX_LOG_DEBUG, level);
    // A file that no longer parses changes nothing and says where.
    w = fopen(f.c_str(), "w");
    fputs("log-level = debug\nmax-queue = -1\n", w);
    fclose(w);
    EXPECT_EQ(-1, px_config_reread_log_level(&p.cfg, &level, &err));
    EXPECT_EQ(PX_LOG_WARN, level);
    EXPECT_NE(std::string::npos, std::string(err.msg).find(f + ":2: max-queue")) << err.msg;
    // Set by the environment: the file's is not taken.
    w = fopen(f.c_str(), "w");
    fputs("log-level = debug\n", w);
    fclose(w);
    p = parse({"--config", f}, {"PYEXEC_LOG_LEVEL=error"});
    ASSERT_EQ(PX_CONFIG_RUN, p.rc) << p.err.msg;
    ASSERT_EQ(0, px_config_reread_log_level(&p.cfg, &level, &err));
    EXPECT_EQ(PX_LOG_ERROR, level);
    unlink(f.c_str());
}

} // namespace
