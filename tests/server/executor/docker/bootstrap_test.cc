// The bootstrap preamble: the request's environment reaches the program
// without the names every back-end reserves (server/executor/reserved_env.h);
// the namespace mode's priming message for a new host.
#include "server/executor/docker/bootstrap.h"

#include <gtest/gtest.h>
#include <jansson.h>
#include <stdlib.h>

#include <string>
#include <vector>

#include "server/executor/reserved_env.h"
#include "tests/server/executor/docker/test_support.h"

namespace {

std::vector<std::string> PreambleEnv(const Spec &spec) {
    char *out = nullptr;
    size_t len = 0;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_bootstrap_preamble(spec.get(), "0123456789abcdef0123456789abcdef", nullptr, &out,
                                    &len, &err),
              0)
        << err.msg;
    std::vector<std::string> env;
    if (!out)
        return env;
    json_t *j = json_loadb(out + PX_BOOTSTRAP_LINE_LEN, len - PX_BOOTSTRAP_LINE_LEN, 0, nullptr);
    free(out);
    EXPECT_NE(j, nullptr);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "env"), i, v) env.push_back(json_string_value(v));
    json_decref(j);
    return env;
}

TEST(Bootstrap, ReservedNamesAreDroppedFromTheEnvironment) {
    Spec spec;
    spec.Env({"GREETING=hi", "HOME=/root", "LD_PRELOAD=/x.so", "PYEXEC_NONCE=forged",
              "PYTHONPATH=/work/lib", "PATHX=kept"});
    EXPECT_EQ(PreambleEnv(spec),
              (std::vector<std::string>{"GREETING=hi", "PYTHONPATH=/work/lib", "PATHX=kept"}));
}

TEST(Bootstrap, HostPrimeIsAHeaderAndTheFilter) {
    const uint8_t filter[] = {0x20, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00};
    char *out = nullptr;
    size_t len = 0;
    px_error err = PX_ERROR_INIT;
    ASSERT_EQ(px_host_prime(filter, sizeof filter, 2048, 64, &out, &len, &err), 0) << err.msg;
    std::string msg(out, len);
    free(out);
    ASSERT_GT(len, PX_BOOTSTRAP_LINE_LEN + sizeof filter);
    ASSERT_EQ(msg.substr(0, 5), "PYXH ");
    ASSERT_EQ(msg[PX_BOOTSTRAP_LINE_LEN - 1], '\n');
    size_t blen = std::stoul(msg.substr(5, 10));
    EXPECT_EQ(len, PX_BOOTSTRAP_LINE_LEN + blen + sizeof filter); // nothing after the filter
    json_t *j = json_loadb(msg.data() + PX_BOOTSTRAP_LINE_LEN, blen, 0, nullptr);
    ASSERT_NE(j, nullptr);
    EXPECT_TRUE(json_is_true(json_object_get(j, "prime")));
    EXPECT_EQ(json_integer_value(json_object_get(j, "filter_len")), (json_int_t)sizeof filter);
    EXPECT_EQ(json_integer_value(json_object_get(j, "work_mb")), 2048);
    EXPECT_EQ(json_integer_value(json_object_get(j, "tmp_mb")), 64);
    EXPECT_EQ(json_object_get(j, "nonce"), nullptr); // no job, nothing to answer
    json_decref(j);
    EXPECT_EQ(msg.substr(PX_BOOTSTRAP_LINE_LEN + blen),
              std::string(reinterpret_cast<const char *>(filter), sizeof filter));
}

TEST(Bootstrap, HostJobIsAHeaderTheFilterAndTheBootstrapPreamble) {
    const uint8_t filter[] = {0x20, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00};
    Spec spec;
    spec.Stdin("in");
    char *out = nullptr;
    size_t len = 0;
    px_error err = PX_ERROR_INIT;
    ASSERT_EQ(px_host_preamble(spec.get(), "0123456789abcdef0123456789abcdef", nullptr, filter,
                               sizeof filter, 64, &out, &len, &err),
              0)
        << err.msg;
    std::string msg(out, len);
    free(out);
    ASSERT_GT(len, PX_BOOTSTRAP_LINE_LEN + sizeof filter);
    ASSERT_EQ(msg.substr(0, 5), "PYXH ");
    ASSERT_EQ(msg[PX_BOOTSTRAP_LINE_LEN - 1], '\n');
    size_t blen = std::stoul(msg.substr(5, 10));
    json_t *j = json_loadb(msg.data() + PX_BOOTSTRAP_LINE_LEN, blen, 0, nullptr);
    ASSERT_NE(j, nullptr);
    EXPECT_STREQ(json_string_value(json_object_get(j, "nonce")),
                 "0123456789abcdef0123456789abcdef");
    EXPECT_EQ(json_integer_value(json_object_get(j, "filter_len")), (json_int_t)sizeof filter);
    EXPECT_EQ(json_integer_value(json_object_get(j, "tmp_mb")), 64);
    json_int_t job_len = json_integer_value(json_object_get(j, "job_len"));
    json_decref(j);
    EXPECT_EQ(msg.substr(PX_BOOTSTRAP_LINE_LEN + blen, sizeof filter),
              std::string(reinterpret_cast<const char *>(filter), sizeof filter));
    // Then the bootstrap's own preamble, whole; the project and stdin follow
    // on the stream and are counted in job_len.
    std::string job = msg.substr(PX_BOOTSTRAP_LINE_LEN + blen + sizeof filter);
    ASSERT_EQ(job.substr(0, 5), "PYX1 ");
    EXPECT_EQ(job.size(), PX_BOOTSTRAP_LINE_LEN + std::stoul(job.substr(5, 10)));
    EXPECT_EQ(job_len, (json_int_t)(job.size() + spec.get()->tar_len + 2));
}

TEST(ReservedEnv, MatchesWholeNamesOnly) {
    EXPECT_STREQ(px_env_reserved("HOME=/root", 4), "HOME");
    EXPECT_STREQ(px_env_reserved("LD_PRELOAD", 10), "LD_PRELOAD");
    EXPECT_EQ(px_env_reserved("HOM", 3), nullptr);
    EXPECT_EQ(px_env_reserved("HOMES", 5), nullptr);
    EXPECT_EQ(px_env_reserved("PYTHONPATH", 10), nullptr);
}

} // namespace
