#pragma once
// The rollout's records in the store's meta cf ("content/..."), each a type with one JSON
// form written and read by the same pair of functions, and the keys they live under.
// Private to vigil_ingest (and its unit tests: tests/unit/ingest/rollout_records_test.cc).
//
// Reading is lenient field by field, as it was for the records older versions wrote: a
// missing or mistyped field takes its default. A record that is not a JSON object is damaged
// (Status::corruption), which the boot reports instead of guessing.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "json_util.h"
#include "vigil/core/status.h"
#include "vigil/core/time.h"
#include "vigil/ingest/rollout.h"

namespace vigil::ingest::content {

// Meta keys. Versions and sequence numbers are written as 20 decimal digits so that key
// order is numeric order.
inline constexpr char kBundlePrefix[] = "content/bundle/";      // version -> tar
inline constexpr char kInfoPrefix[] = "content/info/";          // version -> info JSON
inline constexpr char kReportPrefix[] = "content/report/";      // version -> validation report
inline constexpr char kHashPrefix[] = "content/hash/";          // content hash -> version
inline constexpr char kAuditPrefix[] = "content/audit/";        // seq -> audit JSON
inline constexpr char kRolloutKey[] = "content/rollout";        // RolloutRecord
inline constexpr char kActivationKey[] = "content/activation";  // ActivationRecord
inline constexpr char kBootKey[] = "content/boot";              // BootRecord
inline constexpr char kSeedKey[] = "content/seed";  // hash of the last configured seed bundle

std::string num_key(const char* prefix, uint64_t n);
uint64_t num_of_key(std::string_view key, std::string_view prefix);

enum class Phase : uint8_t { kIdle, kRolling, kPaused };
std::string_view phase_name(Phase p);
Phase parse_phase(std::string_view s);  // unknown: idle

// The rollout's persistent state: what runs, what is known good, what is being rolled out.
struct RolloutRecord {
  RolloutPolicy policy = RolloutPolicy::kStaged;
  bool policy_from_api = false;  // set by an operator: it outlives the configured policy
  uint64_t active = 0, lkg = 0, target = 0, from = 0;
  Phase phase = Phase::kIdle;
  uint64_t stage = 0;
  TimeMs active_since = 0;

  std::string to_json() const;
  static Expected<RolloutRecord> from_json(std::string_view text);
  bool operator==(const RolloutRecord&) const = default;
};

// Which bundle was activated when, and the abnormal ends of the process since (the
// crash-loop guard's count).
struct ActivationRecord {
  uint64_t version = 0;
  TimeMs time = 0;
  int64_t crashes = 0;

  std::string to_json() const;
  static Expected<ActivationRecord> from_json(std::string_view text);
  bool operator==(const ActivationRecord&) const = default;
};

// A stored bundle's description (content/info/<version>). `status` is valid, refused,
// rolled_back or quarantined.
struct BundleInfoRecord {
  uint64_t version = 0;
  std::string hash, name, label, author, description;
  std::string created_at;  // RFC 3339
  std::string created_by;
  std::string status;
  bool lenient = false;  // the configured rules: a rule that does not compile is not fatal
  uint64_t rules = 0, files = 0, bytes = 0;

  std::string to_json() const;
  // Its members, into an object `w` is writing (the API adds its own beside them).
  void write_members(JsonWriter& w) const;
  static Expected<BundleInfoRecord> from_json(std::string_view text);
  bool operator==(const BundleInfoRecord&) const = default;
};

// One entry of the audit log (content/audit/<seq>): who did what to which bundle, and why.
struct AuditRecord {
  uint64_t seq = 0;
  std::string time;  // RFC 3339
  std::string actor, action;
  uint64_t version = 0;
  uint64_t from = 0;  // 0: not written
  std::string reason;

  std::string to_json() const;
  static Expected<AuditRecord> from_json(std::string_view text);
  bool operator==(const AuditRecord&) const = default;
};

// Whether the process that last opened the store stopped cleanly. Written unclean (with
// `started`) at boot and clean (with `stopped`) at a clean stop; `path` tells a copy of the
// store (a checkpoint taken while it ran) from a crash of this one.
struct BootRecord {
  bool clean = true;
  std::string path;
  TimeMs started = 0;  // 0: not written
  TimeMs stopped = 0;  // 0: not written

  std::string to_json() const;
  static Expected<BootRecord> from_json(std::string_view text);
  bool operator==(const BootRecord&) const = default;
};

}  // namespace vigil::ingest::content
