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
  EXPECT_NE(text.find("# HELP vigil_events_total Events\n# TYPE vigil_events_total counter\nvigil_events_total 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(vigil_invalid_total{reason="bad \"json\"\n"} 1)"), std::string::npos) << text;
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

}  // namespace
}  // namespace vigil
