// Job specs through Redis: packed on the admitting node, unpacked where it runs.
#include "server/store/redis/jobpack.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

namespace {

char **Strv(const std::vector<std::string> &v) {
    char **out = static_cast<char **>(calloc(v.size() + 1, sizeof *out));
    for (size_t i = 0; i < v.size(); i++)
        out[i] = strdup(v[i].c_str());
    return out;
}

px_job_spec *Spec() {
    px_job_spec *s = static_cast<px_job_spec *>(calloc(1, sizeof(px_job_spec)));
    s->image = strdup("pyexec/python:3.11");
    s->entrypoint = strdup("main.py");
    static const uint8_t tar[] = {0, 1, 2, 0, 255};
    s->tar = static_cast<uint8_t *>(malloc(sizeof tar));
    memcpy(s->tar, tar, sizeof tar);
    s->tar_len = sizeof tar;
    s->stdin_data = static_cast<uint8_t *>(malloc(3));
    memcpy(s->stdin_data, "a\0b", 3);
    s->stdin_len = 3;
    s->env = Strv({"A=1", "B=two words"});
    s->n_env = 2;
    s->args = Strv({"--x", "", "é"});
    s->n_args = 3;
    s->pre_commands = Strv({"echo hi"});
    s->n_pre_commands = 1;
    s->requirements_txt = strdup("requests==2.31\n");
    s->timeout_s = 30;
    s->network = true;
    s->eval = true;
    snprintf(s->tenant, sizeof s->tenant, "%s", "team-a");
    s->memory_mb = 256;
    s->disk_mb = 512;
    s->cpu_shares = 1024;
    return s;
}

struct SpecFree {
    void operator()(px_job_spec *s) const { px_job_spec_free(s); }
};
using SpecPtr = std::unique_ptr<px_job_spec, SpecFree>;

std::string Pack(const px_job_spec *s) {
    uint8_t *buf = nullptr;
    size_t len = 0;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_jobpack_pack(s, &buf, &len, &err), 0) << err.msg;
    std::string out(reinterpret_cast<char *>(buf), len);
    free(buf);
    return out;
}

SpecPtr Unpack(const std::string &b, px_error *err) {
    return SpecPtr(
        px_jobpack_unpack(reinterpret_cast<const uint8_t *>(b.data()), b.size(), "exe_x", err));
}

TEST(JobPack, RoundTripKeepsEveryField) {
    SpecPtr in(Spec());
    px_error err = PX_ERROR_INIT;
    SpecPtr out = Unpack(Pack(in.get()), &err);
    ASSERT_NE(out, nullptr) << err.msg;
    EXPECT_STREQ(out->execution_id, "exe_x");
    EXPECT_STREQ(out->image, in->image);
    EXPECT_STREQ(out->entrypoint, in->entrypoint);
    ASSERT_EQ(out->tar_len, in->tar_len);
    EXPECT_EQ(memcmp(out->tar, in->tar, in->tar_len), 0);
    ASSERT_EQ(out->stdin_len, 3u);
    EXPECT_EQ(memcmp(out->stdin_data, "a\0b", 3), 0);
    ASSERT_EQ(out->n_env, 2u);
    EXPECT_STREQ(out->env[1], "B=two words");
    ASSERT_EQ(out->n_args, 3u);
    EXPECT_STREQ(out->args[1], "");
    EXPECT_STREQ(out->args[2], "é");
    ASSERT_EQ(out->n_pre_commands, 1u);
    EXPECT_STREQ(out->pre_commands[0], "echo hi");
    EXPECT_STREQ(out->requirements_txt, "requests==2.31\n");
    EXPECT_EQ(out->timeout_s, 30);
    EXPECT_TRUE(out->network);
    EXPECT_TRUE(out->eval);
    EXPECT_EQ(out->memory_mb, 256);
    EXPECT_EQ(out->disk_mb, 512);
    EXPECT_EQ(out->cpu_shares, 1024);
    EXPECT_STREQ(out->tenant, "team-a");
}

TEST(JobPack, EmptyListsAndNoRequirements) {
    SpecPtr in(Spec());
    in->n_env = in->n_args = in->n_pre_commands = 0; // the arrays are still freed
    free(in->requirements_txt);
    in->requirements_txt = nullptr;
    free(in->stdin_data);
    in->stdin_data = nullptr;
    in->stdin_len = 0;
    px_error err = PX_ERROR_INIT;
    SpecPtr out = Unpack(Pack(in.get()), &err);
    ASSERT_NE(out, nullptr) << err.msg;
    EXPECT_EQ(out->n_env + out->n_args + out->n_pre_commands, 0u);
    EXPECT_STREQ(out->requirements_txt, "");
    EXPECT_EQ(out->stdin_len, 0u);
    // Free what the test detached above.
    for (size_t i = 0; i < 2; i++)
        free(in->env[i]);
    for (size_t i = 0; i < 3; i++)
        free(in->args[i]);
    free(in->pre_commands[0]);
}

TEST(JobPack, RefusesEveryTruncationAndTrailingBytes) {
    SpecPtr in(Spec());
    std::string b = Pack(in.get());
    for (size_t n = 0; n < b.size(); n++) {
        px_error err = PX_ERROR_INIT;
        EXPECT_EQ(Unpack(b.substr(0, n), &err), nullptr) << n;
        EXPECT_EQ(err.code, PX_E_INTERNAL);
    }
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(Unpack(b + "x", &err), nullptr);
    EXPECT_NE(std::string(err.msg).find("exe_x"), std::string::npos) << err.msg;
}

TEST(JobPack, RefusesWrongMagicNulInStringsAndHugeLists) {
    SpecPtr in(Spec());
    std::string b = Pack(in.get());
    px_error err = PX_ERROR_INIT;
    std::string wrong = b;
    wrong[3] = '1'; /* PXJ1: the form before tenants */
    EXPECT_EQ(Unpack(wrong, &err), nullptr);
    // The image "pyexec/..." starts after magic + length: put a NUL in it.
    std::string nul = b;
    nul[4 + 4 + 2] = '\0';
    EXPECT_EQ(Unpack(nul, &err), nullptr);
    std::string huge = std::string("PXJ2") + std::string(4, '\0') + std::string(4, '\0') +
                       std::string(4, '\0') + std::string(4, '\0') +
                       std::string("\xff\xff\xff\x7f", 4);
    EXPECT_EQ(Unpack(huge, &err), nullptr);
}

} // namespace
