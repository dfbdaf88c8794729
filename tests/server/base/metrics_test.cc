#include "server/base/metrics.h"

#include <stdlib.h>

#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace {

std::string render(px_metrics *m) {
    char *text = nullptr;
    size_t len = 0;
    px_error err = PX_ERROR_INIT;
    EXPECT_EQ(0, px_metrics_render(m, &text, &len, &err)) << err.msg;
    std::string s(text ? text : "", len);
    free(text);
    return s;
}

TEST(Metrics, NullRegistryCountsNothingAndRendersEmpty) {
    EXPECT_EQ(nullptr, px_metrics_counter(nullptr, "a_total", "A.", nullptr));
    px_counter_add(nullptr, 1);
    px_histogram_observe(nullptr, 1.0);
    EXPECT_EQ(0, px_metrics_add_collector(nullptr, nullptr, nullptr));
    EXPECT_EQ("", render(nullptr));
}

TEST(Metrics, CountersOneFamilyManySeries) {
    px_metrics *m = px_metrics_new();
    px_counter *a = px_metrics_counter(m, "x_total", "Things.", "k=\"a\"");
    px_counter *b = px_metrics_counter(m, "x_total", "Things.", "k=\"b\"");
    EXPECT_EQ(a, px_metrics_counter(m, "x_total", "Things.", "k=\"a\""));
    px_counter_add(a, 2);
    px_counter_add(b, 5);
    px_counter_add(a, 1);
    EXPECT_EQ("# HELP x_total Things.\n# TYPE x_total counter\n"
              "x_total{k=\"a\"} 3\nx_total{k=\"b\"} 5\n",
              render(m));
    px_metrics_free(m);
}

TEST(Metrics, HistogramBucketsAreCumulativeWithSumAndCount) {
    static const double bounds[] = {1, 2};
    px_metrics *m = px_metrics_new();
    px_histogram *h = px_metrics_histogram(m, "t_seconds", "Time.", "op=\"x\"", bounds, 2);
    px_histogram_observe(h, 0.5);
    px_histogram_observe(h, 1.0); /* le is inclusive */
    px_histogram_observe(h, 1.5);
    px_histogram_observe(h, 7);
    EXPECT_EQ("# HELP t_seconds Time.\n# TYPE t_seconds histogram\n"
              "t_seconds_bucket{op=\"x\",le=\"1\"} 2\n"
              "t_seconds_bucket{op=\"x\",le=\"2\"} 3\n"
              "t_seconds_bucket{op=\"x\",le=\"+Inf\"} 4\n"
              "t_seconds_sum{op=\"x\"} 10\n"
              "t_seconds_count{op=\"x\"} 4\n",
              render(m));
    px_metrics_free(m);
}

void collect(void *ud, px_metrics_writer *w) {
    px_metrics_write_gauge(w, "g", "Gauge.", "i=\"1\"", *static_cast<int *>(ud));
    px_metrics_write_gauge(w, "g", "Gauge.", "i=\"2\"", 0.5);
    px_metrics_write_counter(w, "c_total", "Counted elsewhere.", nullptr, 9);
}

TEST(Metrics, CollectorsWriteAtRenderTimeUntilRemoved) {
    px_metrics *m = px_metrics_new();
    int v = 3;
    ASSERT_EQ(0, px_metrics_add_collector(m, collect, &v));
    EXPECT_EQ("# HELP g Gauge.\n# TYPE g gauge\ng{i=\"1\"} 3\ng{i=\"2\"} 0.5\n"
              "# HELP c_total Counted elsewhere.\n# TYPE c_total counter\nc_total 9\n",
              render(m));
    v = 4;
    EXPECT_NE(std::string::npos, render(m).find("g{i=\"1\"} 4\n"));
    px_metrics_remove_collector(m, collect, &v);
    EXPECT_EQ("", render(m));
    px_metrics_free(m);
}

TEST(Metrics, ConcurrentUpdatesAreAllCounted) {
    static const double bounds[] = {0.5};
    px_metrics *m = px_metrics_new();
    px_counter *c = px_metrics_counter(m, "n_total", "N.", nullptr);
    px_histogram *h = px_metrics_histogram(m, "h", "H.", nullptr, bounds, 1);
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; t++)
        threads.emplace_back([&] {
            for (int i = 0; i < 10000; i++) {
                px_counter_add(c, 1);
                px_histogram_observe(h, 1.0);
            }
        });
    for (auto &t : threads)
        t.join();
    std::string s = render(m);
    EXPECT_NE(std::string::npos, s.find("n_total 80000\n")) << s;
    EXPECT_NE(std::string::npos, s.find("h_sum 80000\n")) << s;
    EXPECT_NE(std::string::npos, s.find("h_count 80000\n")) << s;
    px_metrics_free(m);
}

} // namespace
