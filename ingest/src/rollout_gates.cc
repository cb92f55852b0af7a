#include "rollout_gates.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace vigil::ingest {

std::vector<int> rollout_stage_sizes(RolloutPolicy policy, const std::vector<int>& stages_percent,
                                     int n) {
  if (policy == RolloutPolicy::kImmediate) return {std::max(1, n)};
  std::vector<int> out{1};
  for (int pct : stages_percent) {
    const int k = std::clamp(static_cast<int>(std::ceil(n * pct / 100.0)), 1, std::max(1, n));
    if (k > out.back()) out.push_back(k);
  }
  if (out.back() < n) out.push_back(n);
  return out;
}

std::optional<std::string> breached_gate(const RolloutOptions& options, const GateTotals& t,
                                         const std::string& target, const std::string& from) {
  if (t.errors > options.max_match_errors) {
    return "processing errors: " + std::to_string(t.errors) +
           " matching errors on the shards running " + target + " (allowed " +
           std::to_string(options.max_match_errors) + ")";
  }
  if (t.batches >= options.min_batches_for_latency && !t.bounds.empty() &&
      t.buckets.size() > t.bounds.size()) {
    const double want = 0.99 * static_cast<double>(t.batches);
    double p99 = t.bounds.back() * 2;  // past the last bound
    for (size_t b = 0; b < t.bounds.size(); ++b) {
      if (static_cast<double>(t.buckets[b]) >= want) {
        p99 = t.bounds[b];
        break;
      }
    }
    if (p99 * 1000 > options.max_batch_p99_ms) {
      return "latency: p99 batch duration " + std::to_string(static_cast<int64_t>(p99 * 1000)) +
             " ms on the shards running " + target + " (allowed " +
             std::to_string(static_cast<int64_t>(options.max_batch_p99_ms)) + " ms)";
    }
  }
  if (t.events_new >= options.min_events_for_flood &&
      t.alerts_new >= options.min_alerts_for_flood) {
    double baseline = t.rate_before;
    if (t.events_old >= options.min_events_for_flood)
      baseline = static_cast<double>(t.alerts_old) / static_cast<double>(t.events_old);
    baseline = std::max(baseline, options.min_baseline_alert_rate);
    const double rate = static_cast<double>(t.alerts_new) / static_cast<double>(t.events_new);
    if (rate > options.max_alert_ratio * baseline) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "%.4f alerts per event on ", rate);
      std::string out = "alert flood: " + std::string(buf) + target;
      std::snprintf(buf, sizeof buf, " against %.4f on ", baseline);
      out += buf + from;
      std::snprintf(buf, sizeof buf, " (more than %gx)", options.max_alert_ratio);
      return out + buf;
    }
  }
  return std::nullopt;
}

}  // namespace vigil::ingest
