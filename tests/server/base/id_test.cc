#include "server/base/id.h"

#include <string.h>

#include <set>
#include <string>

#include <gtest/gtest.h>

TEST(Id, NewIdsAreWellFormedAndDistinct) {
    std::set<std::string> seen;
    for (int i = 0; i < 1000; i++) {
        char id[PX_ID_LEN + 1];
        ASSERT_EQ(0, px_id_new(id, NULL));
        ASSERT_EQ(size_t(PX_ID_LEN), strlen(id));
        ASSERT_TRUE(px_id_valid(id, strlen(id))) << id;
        seen.insert(id);
    }
    EXPECT_EQ(1000u, seen.size());
}

TEST(Id, RejectsMalformed) {
    const char *bad[] = {"",
                         "exe_",
                         "../../etc/passwd",
                         "exe_1b4e28ba-2fa1-4d2e-8c9f-0e02b2c3d47",
                         "exe_1b4e28ba-2fa1-4d2e-8c9f-0e02b2c3d4790",
                         "exe_1B4E28BA-2fa1-4d2e-8c9f-0e02b2c3d479",
                         "abc_1b4e28ba-2fa1-4d2e-8c9f-0e02b2c3d479",
                         "exe_1b4e28ba_2fa1-4d2e-8c9f-0e02b2c3d479"};
    for (const char *s : bad)
        EXPECT_FALSE(px_id_valid(s, strlen(s))) << s;
    EXPECT_TRUE(px_id_valid("exe_1b4e28ba-2fa1-4d2e-8c9f-0e02b2c3d479", 40));
}

TEST(Id, RandomHex) {
    char out[33];
    ASSERT_EQ(0, px_random_hex(out, 16, NULL));
    EXPECT_EQ(32u, strlen(out));
    EXPECT_EQ(strspn(out, "0123456789abcdef"), 32u);
}
