#pragma once
// Metrics registry: counters and gauges with labels, rendered in the Prometheus text
// exposition format. Registration takes a lock and happens at start-up or on rare events;
// updating a metric is one relaxed atomic operation, safe from any thread.

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "vigil/core/mutex.h"

namespace vigil {

class Counter {
 public:
  void inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void set(double v) { v_.store(v, std::memory_order_relaxed); }
  void add(double d) {
    double cur = v_.load(std::memory_order_relaxed);
    while (!v_.compare_exchange_weak(cur, cur + d, std::memory_order_relaxed)) {
    }
  }
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

// A Prometheus histogram with fixed upper bounds; observe() is a few relaxed atomics.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative count of observations <= bounds()[i]; i == bounds().size() is +Inf.
  uint64_t cumulative(size_t i) const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

using Labels = std::vector<std::pair<std::string, std::string>>;

class MetricsRegistry {
 public:
  // Returns the counter for (name, labels), creating it on first use. The reference stays
  // valid for the registry's lifetime. `name` follows Prometheus conventions
  // (vigil_events_consumed_total).
  Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
  // `bounds` are used when the histogram is created and ignored afterwards.
  Histogram& histogram(const std::string& name, const std::string& help, std::vector<double> bounds,
                       const Labels& labels = {});
  // Drops a gauge (a partition that is no longer assigned). References to it die with it.
  void remove_gauge(const std::string& name, const Labels& labels);

  // Value of a counter, 0 if it was never registered (for tests and the stats endpoint).
  uint64_t counter_value(const std::string& name, const Labels& labels = {}) const;
  // Sum of a counter over all its label sets that include `subset` (all of them if empty),
  // 0 if it was never registered.
  uint64_t counter_sum(const std::string& name, const Labels& subset = {}) const;

  // The whole registry in the Prometheus text format (version 0.0.4).
  std::string render_prometheus() const;

 private:
  struct Family {
    std::string help;
    enum class Type { kCounter, kGauge, kHistogram } type = Type::kCounter;
    std::map<std::string, std::unique_ptr<Counter>> counters;  // key: rendered label set
    std::map<std::string, std::unique_ptr<Gauge>> gauges;
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
  };
  mutable Mutex mu_;
  std::map<std::string, Family> families_ VIGIL_GUARDED_BY(mu_);
};

}  // namespace vigil
