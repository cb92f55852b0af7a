#pragma once
// ContentCoordinator: the deployment-wide staged rollout of cluster mode (DESIGN.md,
// Scale-out), as a state machine over what the content topic holds. Every replica feeds one
// with the records it reads; only the coordinator (the member that owns the single partition
// of the content group) calls tick() and act() and publishes the decisions they return.
//
// The shards are every live replica's ("<replica>/<shard>", a replica is live while its
// report is younger than report_timeout_ms), in name order: the canary is the first shard of
// the deployment, then the stages' percentages of all of them. The gates are the rollout's own
// (rollout_gates.h) over the counters the replicas report, from the moment a stage began (or
// a shard was first seen in it). A new bundle is started (staged and immediate policies) once
// every live replica has said its own validation passed; one that any replica refused is
// refused deployment-wide. A crash a replica's boot rules report for the bundle being rolled
// out rolls it back (quarantines it when the replica quarantined it); the last known good and
// the quarantine are the decision's, so they hold for every replica.
//
// Not thread-safe: one thread (ContentSync's) owns it.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "content_topic.h"
#include "rollout_gates.h"
#include "vigil/core/status.h"
#include "vigil/ingest/rollout.h"

namespace vigil::ingest {

class ContentCoordinator {
 public:
  ContentCoordinator(const RolloutOptions& options, std::string self, int64_t report_timeout_ms,
                     int64_t verdict_wait_ms);

  // What the topic holds, in its order.
  void on_bundle(const ctopic::BundleHeader& h, int64_t offset);
  void on_verdict(const ctopic::Verdict& v);
  void on_report(const ctopic::Report& r);
  void on_decision(const ctopic::Decision& d);
  void forget(const std::string& replica);  // its report was withdrawn (a clean stop)

  // One evaluation: a decision to publish when anything changed. `local_active` is this
  // replica's active bundle, the deployment's first when the topic holds no decision.
  std::optional<ctopic::Decision> tick(TimeMs now, const std::string& local_active);
  // An operator action: the decision to publish, or why the action is refused.
  Expected<ctopic::Decision> act(const ctopic::Action& a, TimeMs now);

  bool has_decision() const { return have_; }
  const ctopic::Decision& decision() const { return d_; }
  // The live shards, in stage order.
  std::vector<std::string> live_shards(TimeMs now) const;
  bool knows_bundle(const std::string& hash) const { return bundles_.count(hash) > 0; }

 private:
  struct Sample {
    TimeMs boot = 0;
    uint64_t events = 0, alerts = 0, errors = 0, batches = 0;
    std::vector<uint64_t> latency;
  };
  bool live(const ctopic::Report& r, TimeMs now) const;
  // Why the live replicas do not all hold `hash` as valid ("" if they do); `refused` tells a
  // refusal from a verdict still missing.
  std::string verdicts_against(const std::string& hash, TimeMs now, bool& refused) const;
  void start(const std::string& hash, TimeMs now, const std::string& actor,
             const std::string& reason);
  void enter_stage(uint64_t stage, TimeMs now);
  bool place_shards(TimeMs now);  // the target's shards for the stage; true if they changed
  void complete(TimeMs now, const std::string& actor, const std::string& reason);
  void roll_back(TimeMs now, const std::string& actor, const std::string& reason, bool quarantine);
  std::optional<std::string> breached(TimeMs now);
  bool stage_held(TimeMs now);
  bool judge_new_bundles(TimeMs now);
  bool handle_crashes(TimeMs now);
  void transition(const std::string& action, const std::string& actor, const std::string& reason);
  std::vector<int> stage_sizes(size_t n) const;

  RolloutOptions options_;
  std::string self_;
  int64_t report_timeout_ms_;
  int64_t verdict_wait_ms_;
  bool have_ = false;
  ctopic::Decision d_;
  struct Published {
    ctopic::BundleHeader header;
    int64_t offset = -1;
  };
  std::map<std::string, Published> bundles_;                                // by hash
  std::map<std::string, std::map<std::string, ctopic::Verdict>> verdicts_;  // hash, replica
  std::map<std::string, ctopic::Report> reports_;                           // by replica
  std::map<std::string, Sample> stage_start_;                               // by shard name
};

}  // namespace vigil::ingest
