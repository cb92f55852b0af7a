#pragma once
// Rollout's state, shared by its files: rollout.cc (the controller: stages, gates, operator
// actions), rollout_boot.cc (the boot rules and the crash-loop guard), rollout_content.cc
// (storing, listing and loading bundles) and rollout_dry_run.cc. Private to vigil_ingest.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "json_util.h"
#include "rollout_records.h"
#include "vigil/ingest/rollout.h"

namespace vigil::ingest {

using content::Phase;

// Per-shard counters a stage's gates compare.
struct ShardSample {
  uint64_t events = 0, alerts = 0, errors = 0, batches = 0;
  std::vector<uint64_t> latency;  // cumulative bucket counts of vigil_batch_duration_seconds
};

struct Rollout::State {
  RolloutPolicy policy = RolloutPolicy::kStaged;
  bool policy_from_api = false;
  uint64_t active = 0, lkg = 0, target = 0, from = 0;
  Phase phase = Phase::kIdle;
  size_t stage = 0;
  TimeMs stage_started = 0;
  TimeMs active_since = 0;
  TimeMs rollout_started = 0;
  std::string last_breach;
  std::string notice;
  uint64_t next_version = 1;
  uint64_t next_audit = 1;
  uint64_t deferred_start = 0;  // a rollout to start once the pipeline is attached
  std::map<uint64_t, std::shared_ptr<const match::CompiledBundle>> compiled;
  std::vector<uint64_t> shard_versions;  // what each shard was told to run
  std::vector<ShardSample> stage_start;
  double rate_before = -1;  // alerts per event of the previous bundle before the rollout
  // Cluster mode: which shards the deployment's decision runs the target on, the decision
  // followed last, and what this boot's rules did after an abnormal end.
  std::vector<bool> cluster_shards;
  uint64_t followed_seq = 0;
  std::string coordinator;
  size_t stages = 0;
  Rollout::BootCrash boot_crash;

  // The persistent part.
  content::RolloutRecord record() const;
};

// Rewrites the status of a stored bundle's info record (valid, refused, rolled_back,
// quarantined); a missing or damaged record is left as it is.
Status set_bundle_status(store::Store& store, uint64_t version, const char* status);

}  // namespace vigil::ingest
