// The --store URL and the Redis password.
#include "server/store/redis/target.h"

#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

namespace {

px_redis_target Parse(const char *url) {
    px_redis_target t;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_redis_target_parse(url, &t, &err), 0) << url << ": " << err.msg;
    return t;
}

std::string Error(const char *url) {
    px_redis_target t;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(px_redis_target_parse(url, &t, &err), -1) << url;
    EXPECT_EQ(err.code, PX_E_INVALID);
    return err.msg;
}

TEST(RedisTarget, TcpWithPortAndDb) {
    px_redis_target t = Parse("redis://cache.internal:6380/3");
    EXPECT_FALSE(t.is_unix);
    EXPECT_STREQ(t.host, "cache.internal");
    EXPECT_EQ(t.port, 6380);
    EXPECT_EQ(t.db, 3);
}

TEST(RedisTarget, TcpDefaults) {
    px_redis_target t = Parse("redis://127.0.0.1");
    EXPECT_EQ(t.port, 6379);
    EXPECT_EQ(t.db, 0);
    t = Parse("redis://127.0.0.1:7000/");
    EXPECT_EQ(t.port, 7000);
    EXPECT_EQ(t.db, 0);
}

TEST(RedisTarget, Ipv6InBrackets) {
    px_redis_target t = Parse("redis://[::1]:6379/1");
    EXPECT_STREQ(t.host, "::1");
    EXPECT_EQ(t.db, 1);
    char buf[128];
    px_redis_target_format(&t, buf, sizeof buf);
    EXPECT_STREQ(buf, "redis://[::1]:6379/1");
}

TEST(RedisTarget, UnixWithDb) {
    px_redis_target t = Parse("redis+unix:///run/redis/redis.sock?db=2");
    EXPECT_TRUE(t.is_unix);
    EXPECT_STREQ(t.path, "/run/redis/redis.sock");
    EXPECT_EQ(t.db, 2);
    char buf[256];
    px_redis_target_format(&t, buf, sizeof buf);
    EXPECT_STREQ(buf, "redis+unix:///run/redis/redis.sock?db=2");
}

TEST(RedisTarget, RefusesAPasswordInTheUrl) {
    EXPECT_NE(Error("redis://user:secret@host:6379").find("--store-password-file"),
              std::string::npos);
    EXPECT_NE(Error("redis://:secret@host").find("PYEXEC_STORE_PASSWORD"), std::string::npos);
}

TEST(RedisTarget, RefusesMalformedUrls) {
    Error("memory");
    Error("http://host:6379");
    Error("redis://");
    Error("redis://host:0");
    Error("redis://host:65536");
    Error("redis://host:port");
    Error("redis://host/db");
    Error("redis://host/-1");
    Error("redis://host/1000001");
    Error("redis://host?db=1");
    Error("redis://[::1");
    Error("redis://ho st");
    Error("redis+unix://relative/path");
    Error("redis+unix://");
    Error("redis+unix:///s.sock?database=1");
    Error("redis+unix:///s.sock?db=x");
    std::string long_path = "redis+unix:///" + std::string(200, 'a');
    EXPECT_NE(Error(long_path.c_str()).find("longer than"), std::string::npos);
}

TEST(RedisTarget, Sentinels) {
    px_redis_target t = Parse(
        "redis+sentinel://s1.internal,10.0.0.2:26380,[fd00::3]:26381/cache-main.1/4");
    EXPECT_TRUE(t.is_sentinel);
    EXPECT_FALSE(t.is_unix);
    ASSERT_EQ(t.sentinel_count, 3u);
    EXPECT_STREQ(t.sentinels[0].host, "s1.internal");
    EXPECT_EQ(t.sentinels[0].port, 26379);
    EXPECT_STREQ(t.sentinels[1].host, "10.0.0.2");
    EXPECT_EQ(t.sentinels[1].port, 26380);
    EXPECT_STREQ(t.sentinels[2].host, "fd00::3");
    EXPECT_EQ(t.sentinels[2].port, 26381);
    EXPECT_STREQ(t.master_name, "cache-main.1");
    EXPECT_EQ(t.db, 4);
    char buf[PX_REDIS_TARGET_TEXT_MAX];
    px_redis_target_format(&t, buf, sizeof buf);
    EXPECT_STREQ(buf, "redis+sentinel://s1.internal:26379,10.0.0.2:26380,[fd00::3]:26381/"
                      "cache-main.1/4");
}

TEST(RedisTarget, OneSentinelAndTheDefaultDatabase) {
    px_redis_target t = Parse("redis+sentinel://127.0.0.1:5000/mymaster");
    ASSERT_EQ(t.sentinel_count, 1u);
    EXPECT_EQ(t.sentinels[0].port, 5000);
    EXPECT_STREQ(t.master_name, "mymaster");
    EXPECT_EQ(t.db, 0);
    EXPECT_EQ(Parse("redis+sentinel://h/m/").db, 0);
}

TEST(RedisTarget, TheLongestSentinelUrlFormatsWhole) {
    std::string host(PX_REDIS_HOST_MAX, 'h'), url = "redis+sentinel://";
    for (int i = 0; i < PX_REDIS_SENTINELS_MAX; i++)
        url += (i ? "," : "") + host + ":65535";
    url += "/" + std::string(PX_REDIS_MASTER_NAME_MAX, 'm') + "/" + std::to_string(PX_REDIS_DB_MAX);
    px_redis_target t = Parse(url.c_str());
    char buf[PX_REDIS_TARGET_TEXT_MAX];
    px_redis_target_format(&t, buf, sizeof buf);
    EXPECT_EQ(url, buf);
}

TEST(RedisTarget, RefusesMalformedSentinelUrls) {
    EXPECT_NE(Error("redis+sentinel://").find("no Sentinel"), std::string::npos);
    EXPECT_NE(Error("redis+sentinel:///mymaster").find("no Sentinel"), std::string::npos);
    EXPECT_NE(Error("redis+sentinel://h1,h2").find("no master name"), std::string::npos);
    EXPECT_NE(Error("redis+sentinel://h1/").find("no master name"), std::string::npos);
    EXPECT_NE(Error("redis+sentinel://h1//0").find("no master name"), std::string::npos);
    EXPECT_NE(Error("redis+sentinel://h1,/m").find("empty Sentinel"), std::string::npos);
    EXPECT_NE(Error("redis+sentinel://h1,,h2/m").find("Sentinel 2"), std::string::npos);
    EXPECT_NE(Error("redis+sentinel://h1:0/m").find("port"), std::string::npos);
    EXPECT_NE(Error("redis+sentinel://h1/my master").find("[A-Za-z0-9_.-]"), std::string::npos);
    EXPECT_NE(Error("redis+sentinel://h1/m/x").find("database"), std::string::npos);
    EXPECT_NE(Error("redis+sentinel://h1/m/1/2").find("database"), std::string::npos);
    EXPECT_NE(Error("redis+sentinel://h1/m?db=1").find("query"), std::string::npos);
    EXPECT_NE(Error("redis+sentinel://:pw@h1/m").find("--store-password-file"), std::string::npos);
    std::string many = "redis+sentinel://";
    for (int i = 0; i <= PX_REDIS_SENTINELS_MAX; i++)
        many += (i ? ",h" : "h") + std::to_string(i);
    EXPECT_NE(Error((many + "/m").c_str()).find("more than"), std::string::npos);
    std::string long_name = "redis+sentinel://h/" + std::string(PX_REDIS_MASTER_NAME_MAX + 1, 'm');
    EXPECT_NE(Error(long_name.c_str()).find("longer than"), std::string::npos);
}

TEST(RedisTarget, IsRedis) {
    EXPECT_TRUE(px_redis_target_is_redis("redis://x"));
    EXPECT_TRUE(px_redis_target_is_redis("redis+unix:///x"));
    EXPECT_TRUE(px_redis_target_is_redis("redis+sentinel://x/m"));
    EXPECT_FALSE(px_redis_target_is_redis("memory"));
    EXPECT_FALSE(px_redis_target_is_redis("rediss://x"));
}

class PasswordFile : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/pyexec-password-XXXXXX";
        int fd = mkstemp(tmpl);
        ASSERT_GE(fd, 0);
        close(fd);
        path_ = tmpl;
    }
    void TearDown() override { unlink(path_.c_str()); }
    void Write(const std::string &content) {
        FILE *f = fopen(path_.c_str(), "w");
        ASSERT_NE(f, nullptr);
        fwrite(content.data(), 1, content.size(), f);
        fclose(f);
    }
    std::string path_;
};

TEST_F(PasswordFile, ReadsOneLineWithoutItsNewline) {
    Write("s3cret\r\n");
    char *pw = nullptr;
    px_error err = PX_ERROR_INIT;
    ASSERT_EQ(px_redis_password_load(path_.c_str(), "from-env", &pw, &err), 0) << err.msg;
    EXPECT_STREQ(pw, "s3cret"); // the file wins over the environment
    free(pw);
}

TEST_F(PasswordFile, RefusesEmptyMultiLineAndTooLong) {
    px_error err = PX_ERROR_INIT;
    char *pw = nullptr;
    Write("\n");
    EXPECT_EQ(px_redis_password_load(path_.c_str(), nullptr, &pw, &err), -1);
    EXPECT_NE(std::string(err.msg).find("empty password"), std::string::npos) << err.msg;
    Write("one\ntwo\n");
    EXPECT_EQ(px_redis_password_load(path_.c_str(), nullptr, &pw, &err), -1);
    EXPECT_NE(std::string(err.msg).find("line break"), std::string::npos) << err.msg;
    Write(std::string(PX_REDIS_PASSWORD_MAX + 1, 'p'));
    EXPECT_EQ(px_redis_password_load(path_.c_str(), nullptr, &pw, &err), -1);
    EXPECT_NE(std::string(err.msg).find("longer than"), std::string::npos) << err.msg;
    Write(std::string(PX_REDIS_PASSWORD_MAX, 'p') + "\n");
    ASSERT_EQ(px_redis_password_load(path_.c_str(), nullptr, &pw, &err), 0) << err.msg;
    EXPECT_EQ(strlen(pw), static_cast<size_t>(PX_REDIS_PASSWORD_MAX));
    free(pw);
}

TEST(Password, MissingFileNamesIt) {
    px_error err = PX_ERROR_INIT;
    char *pw = nullptr;
    EXPECT_EQ(px_redis_password_load("/nonexistent/pw", nullptr, &pw, &err), -1);
    EXPECT_EQ(err.code, PX_E_INVALID);
    EXPECT_NE(std::string(err.msg).find("/nonexistent/pw"), std::string::npos) << err.msg;
}

TEST(Password, FromTheEnvironmentOrNone) {
    px_error err = PX_ERROR_INIT;
    char *pw = nullptr;
    ASSERT_EQ(px_redis_password_load(nullptr, "env-pw", &pw, &err), 0);
    EXPECT_STREQ(pw, "env-pw");
    free(pw);
    ASSERT_EQ(px_redis_password_load("", nullptr, &pw, &err), 0);
    EXPECT_EQ(pw, nullptr);
    EXPECT_EQ(px_redis_password_load(nullptr, "", &pw, &err), -1);
}

TEST(Password, TheSentinelsOwnNamesItsVariable) {
    px_error err = PX_ERROR_INIT;
    char *pw = nullptr;
    ASSERT_EQ(px_redis_sentinel_password_load(nullptr, "s-pw", &pw, &err), 0);
    EXPECT_STREQ(pw, "s-pw");
    free(pw);
    EXPECT_EQ(px_redis_sentinel_password_load(nullptr, "a\nb", &pw, &err), -1);
    EXPECT_NE(std::string(err.msg).find("PYEXEC_STORE_SENTINEL_PASSWORD"), std::string::npos)
        << err.msg;
}

} // namespace
