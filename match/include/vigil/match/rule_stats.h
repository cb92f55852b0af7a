#pragma once
// Matches per rule and alerts per correlation since the process started. The shard workers
// add to it once a batch is persisted (a retried batch counts once); the API reads it.
// Thread safety: any thread, lock-free.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace vigil::match {

class RuleStats {
 public:
  RuleStats(size_t rules, size_t correlations)
      : rules_(rules),
        correlations_(correlations),
        matches_(std::make_unique<std::atomic<uint64_t>[]>(rules)),
        fired_(std::make_unique<std::atomic<uint64_t>[]>(correlations)),
        errors_(std::make_unique<std::atomic<uint64_t>[]>(rules)) {}

  void add_match(uint32_t rule, uint64_t n = 1) {
    if (rule < rules_) matches_[rule].fetch_add(n, std::memory_order_relaxed);
  }
  // An event the rule could not be evaluated on (see Matcher::failed_rules()).
  void add_error(uint32_t rule, uint64_t n = 1) {
    if (rule < rules_) errors_[rule].fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t errors(uint32_t rule) const {
    return rule < rules_ ? errors_[rule].load(std::memory_order_relaxed) : 0;
  }
  void add_correlation_alert(uint32_t correlation, uint64_t n = 1) {
    if (correlation < correlations_) fired_[correlation].fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t matches(uint32_t rule) const {
    return rule < rules_ ? matches_[rule].load(std::memory_order_relaxed) : 0;
  }
  uint64_t correlation_alerts(uint32_t correlation) const {
    return correlation < correlations_ ? fired_[correlation].load(std::memory_order_relaxed) : 0;
  }

 private:
  size_t rules_, correlations_;
  std::unique_ptr<std::atomic<uint64_t>[]> matches_;
  std::unique_ptr<std::atomic<uint64_t>[]> fired_;
  std::unique_ptr<std::atomic<uint64_t>[]> errors_;
};

}  // namespace vigil::match
