#pragma once
// The content topic of cluster mode (DESIGN.md, Scale-out): the records every replica reads
// and writes, each a type with one JSON form written and read by the same pair of functions,
// and the keys they live under. The topic is compacted and has one partition, so the latest
// record of each key is kept and every replica reads the records in the same order.
//
//   bundle/<hash>             BundleHeader: a bundle was published (its archive in chunks)
//   chunk/<hash>/<n>          piece n of the bundle's archive, zstd-compressed (raw bytes)
//   verdict/<hash>/<replica>  Verdict: what that replica's own validation said of the bundle
//   decision                  Decision: the deployment's rollout state, by the coordinator
//   report/<replica>          Report: what that replica's shards run and their counters
//   action/<id>               Action: an operator action for the coordinator (any replica)
//   result/<id>               ActionResult: the coordinator's answer to it
//
// Reading is strict: a record that is not a JSON object of this format version, or lacks a
// field the coordinator or a follower needs, fails with the reason (counted, never applied).
// Private to vigil_ingest and its unit tests.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rollout_records.h"
#include "vigil/core/status.h"
#include "vigil/core/time.h"
#include "vigil/ingest/rollout.h"

namespace vigil::ingest::ctopic {

inline constexpr uint64_t kFormat = 1;

inline constexpr std::string_view kBundle = "bundle/";
inline constexpr std::string_view kChunk = "chunk/";
inline constexpr std::string_view kVerdict = "verdict/";
inline constexpr std::string_view kDecision = "decision";
inline constexpr std::string_view kReport = "report/";
inline constexpr std::string_view kAction = "action/";
inline constexpr std::string_view kResult = "result/";

std::string chunk_key(std::string_view hash, uint32_t n);
std::string verdict_key(std::string_view hash, std::string_view replica);
// Whether `s` is a content hash (32 lowercase hex digits) / a replica or action name.
bool is_hash(std::string_view s);
bool is_name(std::string_view s);
// "bundle 3f2a9c1e" (the first 8 digits of a hash), for reasons and logs.
std::string short_name(std::string_view hash);

struct BundleHeader {
  std::string hash;
  uint64_t bytes = 0;       // the archive (tar)
  uint64_t compressed = 0;  // the chunks together
  uint32_t chunks = 0;
  std::string actor, origin;  // who pushed it, and to which replica
  bool lenient = false;       // the configured rules: a rule that does not compile is left out
  TimeMs time = 0;

  std::string to_json() const;
  static Expected<BundleHeader> from_json(std::string_view text);
  bool operator==(const BundleHeader&) const = default;
};

struct Verdict {
  std::string hash, replica;
  bool valid = false;
  std::string reason;  // why it was refused
  TimeMs time = 0;

  std::string to_json() const;
  static Expected<Verdict> from_json(std::string_view text);
  bool operator==(const Verdict&) const = default;
};

// One shard's counters (cumulative since its process started) and what it runs.
struct ShardReport {
  uint32_t shard = 0;
  std::string bundle;  // hash running now ("" none)
  uint64_t events = 0, alerts = 0, errors = 0, batches = 0;
  std::vector<uint64_t> latency;  // cumulative counts per bound of vigil_batch_duration_seconds

  bool operator==(const ShardReport&) const = default;
};

struct Report {
  std::string replica;
  TimeMs time = 0;
  TimeMs boot = 0;             // when the process started: counters restart with it
  uint64_t applied = 0;        // the seq of the last decision this replica applied
  std::vector<double> bounds;  // of the latency buckets, seconds
  std::vector<ShardReport> shards;
  // What this boot's rules did after an abnormal end: the bundle (hash) rolled back or
  // quarantined, "rolled_back" or "quarantined", and why.
  std::string crashed, crash_kind, crash_reason;
  std::string api;  // this replica's API URL, if it has peers (informational)

  std::string to_json() const;
  static Expected<Report> from_json(std::string_view text);
  bool operator==(const Report&) const = default;
};

// The deployment's rollout state. Bundles are named by hash (versions are per store).
struct Decision {
  uint64_t seq = 0;  // increases with every decision; a follower ignores an older one
  std::string coordinator;
  TimeMs time = 0;
  RolloutPolicy policy = RolloutPolicy::kStaged;
  content::Phase phase = content::Phase::kIdle;
  std::string active, lkg, target, from;
  std::string previous;  // the bundle active before `active` (an idle rollback goes back to it)
  TimeMs active_since = 0;
  uint64_t stage = 0, stages = 0;
  TimeMs stage_started = 0;
  TimeMs started = 0;                      // when the rollout in progress began
  std::vector<std::string> target_shards;  // "<replica>/<shard>" running the target
  std::vector<std::string> quarantined, rolled_back, refused;
  int64_t bundles_seen = -1;  // the offset of the last bundle header the coordinator judged
  double rate_before = -1;    // the previous bundle's alert rate before the rollout
  // The transition this decision made: action (started, promoted, ...), who, and why.
  std::string action, actor, reason, last_breach;

  std::string to_json() const;
  static Expected<Decision> from_json(std::string_view text);
  bool operator==(const Decision&) const = default;
};

struct Action {
  std::string id, action;  // start, promote, pause, resume, rollback, policy
  std::string hash;        // start: the bundle
  std::string policy;      // policy: the new one
  std::string actor, reason, replica;
  TimeMs time = 0;

  std::string to_json() const;
  static Expected<Action> from_json(std::string_view text);
  bool operator==(const Action&) const = default;
};

struct ActionResult {
  std::string id;
  bool ok = false;
  std::string error;
  std::string coordinator;

  std::string to_json() const;
  static Expected<ActionResult> from_json(std::string_view text);
  bool operator==(const ActionResult&) const = default;
};

}  // namespace vigil::ingest::ctopic
