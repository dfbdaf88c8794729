// The monotonic condition-variable helpers: a deadline on px_now_mono_ms()'s
// clock ends a wait; a signal ends it before.
#include "server/base/clock.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <pthread.h>

#include <thread>

namespace {

struct Waiter {
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cond;
    bool flag = false;

    Waiter() { EXPECT_EQ(px_cond_init_mono(&cond), 0); }
    ~Waiter() { pthread_cond_destroy(&cond); }
};

TEST(Clock, WaitUntilAPassedDeadlineTimesOut) {
    Waiter w;
    pthread_mutex_lock(&w.mu);
    EXPECT_EQ(px_cond_wait_until(&w.cond, &w.mu, px_now_mono_ms() - 1), ETIMEDOUT);
    EXPECT_EQ(px_cond_wait_until(&w.cond, &w.mu, 0), ETIMEDOUT);
    pthread_mutex_unlock(&w.mu);
}

TEST(Clock, WaitUntilEndsAtTheDeadlineOnTheMonotonicClock) {
    Waiter w;
    int64_t until = px_now_mono_ms() + 20;
    pthread_mutex_lock(&w.mu);
    int rc = 0;
    while (rc != ETIMEDOUT)
        rc = px_cond_wait_until(&w.cond, &w.mu, until);
    pthread_mutex_unlock(&w.mu);
    // Measured on the same clock the deadline was given on.
    EXPECT_GE(px_now_mono_ms(), until);
}

TEST(Clock, SignalEndsTheWaitBeforeTheDeadline) {
    Waiter w;
    std::thread t([&] {
        pthread_mutex_lock(&w.mu);
        w.flag = true;
        pthread_cond_signal(&w.cond);
        pthread_mutex_unlock(&w.mu);
    });
    int64_t until = px_now_mono_ms() + 3600 * 1000;
    pthread_mutex_lock(&w.mu);
    int rc = 0;
    while (!w.flag && rc != ETIMEDOUT)
        rc = px_cond_wait_until(&w.cond, &w.mu, until);
    EXPECT_TRUE(w.flag);
    EXPECT_NE(rc, ETIMEDOUT);
    pthread_mutex_unlock(&w.mu);
    t.join();
}

} // namespace
