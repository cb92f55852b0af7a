#include "vigil/core/metrics.h"

#include <gtest/gtest.h>

#include <thread>

namespace vigil {
namespace {

TEST(Metrics, RendersPrometheusText) {
  MetricsRegistry m;
  m.counter("vigil_events_total", "Events").inc(3);
  m.counter("vigil_invalid_total", "Invalid", {{"reason", "bad \"json\"\n"}}).inc();
  m.gauge("vigil_lag", "Lag").set(2.5);
  const std::string text = m.render_prometheus();
  EXPECT_NE(text.find("# HELP vigil_events_total Events\n# TYPE vigil_events_total "
                      "counter\nvigil_events_total 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(vigil_invalid_total{reason="bad \"json\"\n"} 1)"), std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE vigil_lag gauge\nvigil_lag 2.5\n"), std::string::npos) << text;
}

TEST(Metrics, SameNameAndLabelsSameCounterAcrossThreads) {
  MetricsRegistry m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      Counter& c = m.counter("c_total", "c", {{"k", "v"}});
      for (int i = 0; i < 10000; ++i) c.inc();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(m.counter_value("c_total", {{"k", "v"}}), 40000u);
  EXPECT_EQ(m.counter_value("c_total", {{"k", "other"}}), 0u);
  EXPECT_EQ(m.counter_value("unknown"), 0u);
}

TEST(Metrics, HistogramsRenderCumulativeBuckets) {
  MetricsRegistry m;
  Histogram& h = m.histogram("vigil_batch_seconds", "Batch time", {0.1, 0.01, 1}, {{"shard", "0"}});
  for (double v : {0.0078125, 0.01, 0.0625, 0.5, 7.0}) h.observe(v);
  EXPECT_EQ(&h, &m.histogram("vigil_batch_seconds", "Batch time", {}, {{"shard", "0"}}));
  EXPECT_EQ(h.count(), 5u);
  const std::string text = m.render_prometheus();
  EXPECT_NE(text.find("# TYPE vigil_batch_seconds histogram\n"
                      "vigil_batch_seconds_bucket{shard=\"0\",le=\"0.01\"} 2\n"
                      "vigil_batch_seconds_bucket{shard=\"0\",le=\"0.1\"} 3\n"
                      "vigil_batch_seconds_bucket{shard=\"0\",le=\"1\"} 4\n"
                      "vigil_batch_seconds_bucket{shard=\"0\",le=\"+Inf\"} 5\n"
                      "vigil_batch_seconds_sum{shard=\"0\"} 7.5803125\n"
                      "vigil_batch_seconds_count{shard=\"0\"} 5\n"),
            std::string::npos)
      << text;
  m.histogram("plain", "p", {1}).observe(2);
  EXPECT_NE(m.render_prometheus().find("plain_bucket{le=\"1\"} 0\nplain_bucket{le=\"+Inf\"} 1\n"),
            std::string::npos);
}

TEST(Metrics, SumsOverLabelSubsetsAndRemovesGauges) {
  MetricsRegistry m;
  m.counter("d_total", "d", {{"reason", "a"}, {"shard", "0"}}).inc(1);
  m.counter("d_total", "d", {{"reason", "a"}, {"shard", "1"}}).inc(2);
  m.counter("d_total", "d", {{"reason", "ab"}, {"shard", "1"}}).inc(4);
  EXPECT_EQ(m.counter_sum("d_total"), 7u);
  EXPECT_EQ(m.counter_sum("d_total", {{"reason", "a"}}), 3u);  // not "ab"
  EXPECT_EQ(m.counter_sum("d_total", {{"shard", "1"}}), 6u);
  EXPECT_EQ(m.counter_sum("d_total", {{"reason", "b"}}), 0u);
  EXPECT_EQ(m.counter_sum("none"), 0u);

  m.gauge("lag", "l", {{"partition", "1"}}).set(5);
  m.gauge("lag", "l", {{"partition", "2"}}).set(6);
  m.remove_gauge("lag", {{"partition", "1"}});
  const std::string text = m.render_prometheus();
  EXPECT_EQ(text.find("partition=\"1\""), std::string::npos) << text;
  EXPECT_NE(text.find("lag{partition=\"2\"} 6"), std::string::npos) << text;
}

}  // namespace
}  // namespace vigil
