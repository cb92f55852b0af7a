#pragma once
// The staged rollout's arithmetic, shared by the rollout of one replica (rollout.cc, over its
// shards) and the coordinator of a deployment (content_coordinator.cc, over every replica's):
// how many shards each stage runs the new bundle on, and whether a stage's counters breach a
// gate. Private to vigil_ingest.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vigil/ingest/rollout.h"

namespace vigil::ingest {

// Shards running the new bundle per stage, for n shards: the canary (one shard), then the
// percentages of options.stages_percent (rounded up, each larger than the last), n last.
// The immediate policy has one stage of every shard.
std::vector<int> rollout_stage_sizes(RolloutPolicy policy, const std::vector<int>& stages_percent,
                                     int n);

// A stage's counters since it began, summed over the shards running the new bundle ("new")
// and over the others ("old").
struct GateTotals {
  uint64_t errors = 0, events_new = 0, alerts_new = 0, events_old = 0, alerts_old = 0;
  uint64_t batches = 0;
  std::vector<double> bounds;     // of vigil_batch_duration_seconds, in seconds
  std::vector<uint64_t> buckets;  // cumulative counts per bound (+Inf last), new bundle only
  // Alerts per event of the previous bundle before the rollout (-1: not enough events).
  double rate_before = -1;
};

// The first gate breached, as a reason naming the bundles ("bundle 7" / "bundle 3f2a..."),
// or nothing.
std::optional<std::string> breached_gate(const RolloutOptions& options, const GateTotals& t,
                                         const std::string& target, const std::string& from);

}  // namespace vigil::ingest
