#pragma once
// Rollout: the rule content lifecycle of one vigild (DESIGN.md steps 1-5).
//
// Bundles are validated (match::validate_bundle), stored immutably with increasing versions
// in the store's meta cf ("content/..."), refused ones included, and deduplicated by content
// hash. A valid bundle becomes active through a rollout, by the deployment's policy:
//   staged     the canary stage (one shard) first, then larger stages (percentages of the
//              shards), each held for stage_ms while the health gates are watched; a breach
//              rolls back automatically, otherwise the rollout promotes to the next stage;
//   immediate  every shard at once, gates watched for one stage_ms, rollback on a breach;
//   pinned     nothing automatic: a stored bundle waits for an operator's start, and each
//              stage for an operator's promote; a gate breach pauses the rollout.
// Gates, per stage, over the shards running the new bundle since the stage began:
// processing (matching) errors, p99 batch latency, alert volume per event against the
// previous bundle's (the shards still on it, else its rate before the rollout), and
// crashes (a process that ends abnormally during a rollout comes back rolled back).
//
// Last known good: the activation of a bundle is recorded (synced) before any shard runs it.
// A bundle that stays active good_after_ms becomes the last known good. If the process ends
// abnormally crash_limit times within crash_window_ms of activating a version, the next
// start quarantines that version and boots on the last known good; health, logs, metrics
// and the API say so.
//
// Every transition (stored, refused, started, promoted, paused, resumed, rolled back,
// completed, quarantined, policy changed) is appended to an audit log: who, when, why.
//
// Cluster mode (options.clustered, with ContentSync): the deployment's coordinator decides
// (content_coordinator.cc); this replica stores and validates bundles, publishes the ones
// submitted here, follows the decisions on its shards (follow), and keeps its boot rules,
// whose outcome ContentSync reports; it starts, promotes and rolls back nothing alone.
//
// Thread safety: every public method may be called from any thread (one mutex); the
// controller's own thread ticks the gates and stage timers. mu_ guards *state_ and stop_, and
// a method named *_locked needs it held. These are not Clang thread-safety annotations (see
// core/mutex.h) for a written reason: submit_locked validates a bundle without the lock and
// takes it only to store (it is entered holding it from boot and not from submit), a
// conditionally held lock that the analysis cannot express; ThreadSanitizer runs the rollout
// suites instead (make test-tsan: rollout_integration_test).

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "vigil/core/metrics.h"
#include "vigil/core/status.h"
#include "vigil/core/time.h"
#include "vigil/match/bundle.h"
#include "vigil/store/store.h"

namespace vigil::ingest {

class Pipeline;

enum class RolloutPolicy : uint8_t { kStaged, kImmediate, kPinned };
std::optional<RolloutPolicy> parse_rollout_policy(std::string_view name);
std::string_view rollout_policy_name(RolloutPolicy p);

struct RolloutOptions {
  RolloutPolicy policy = RolloutPolicy::kStaged;
  // Stages after the canary (one shard), as percentages of the shards; the last is 100.
  std::vector<int> stages_percent{50, 100};
  int64_t stage_ms = 60000;  // how long each stage is held and watched
  // Events the shards running the new bundle must have processed in a stage before it
  // promotes by itself (a canary that saw nothing proved nothing); 0: none needed.
  uint64_t min_stage_events = 0;
  // Gates.
  uint64_t max_match_errors = 0;   // matching errors allowed on the new bundle per stage
  double max_batch_p99_ms = 2000;  // p99 of the batch duration on the new bundle
  uint64_t min_batches_for_latency = 20;
  double max_alert_ratio = 10;             // alerts per event, new bundle over previous
  double min_baseline_alert_rate = 0.001;  // floor of the previous rate (a quiet bundle)
  uint64_t min_events_for_flood = 200;
  uint64_t min_alerts_for_flood = 50;
  // Last known good.
  int crash_limit = 3;
  int64_t crash_window_ms = 10 * 60 * 1000;
  int64_t good_after_ms = 10 * 60 * 1000;
  // Validation of submitted bundles; default_mapping must outlive the Rollout.
  match::BundleValidationOptions validation;
  // Events the scan cost is measured on besides recent stored ones (e.g. simulated).
  std::vector<std::string> reference_events;
  size_t stored_reference_events = 2000;
  int tick_ms = 100;
  // Cluster mode: the deployment's coordinator decides (ContentSync); this replica stores and
  // validates bundles, follows the decisions, and never starts, promotes or rolls back alone.
  bool clustered = false;
};

// The outcome of a bundle submission.
struct SubmitResult {
  uint64_t version = 0;
  std::string refused;  // why validation refused it (this submission's; empty otherwise)
  bool stored = false;  // false: the same content was stored before as `version`
  bool valid = false;
  bool rollout_started = false;
  std::string json;  // {"version":..,"stored":..,"valid":..,"rollout_started":..,"report":{..}}
};

// What the rollout is doing (GET /api/v1/rollout, `vigil rollout status`).
struct RolloutStatus {
  RolloutPolicy policy = RolloutPolicy::kStaged;
  std::string state;  // idle, rolling, paused
  uint64_t active = 0;
  TimeMs active_since = 0;  // 0: unknown
  uint64_t last_known_good = 0;
  std::optional<uint64_t> target;  // while rolling or paused
  struct Stage {
    size_t index = 0, stages = 0;
    uint64_t shards = 0;  // running the target in this stage
    TimeMs started = 0;
    int64_t hold_ms = 0;
  };
  std::optional<Stage> stage;  // while rolling or paused
  std::string last_breach, notice;
  struct Shard {
    size_t shard = 0;
    uint64_t bundle = 0;    // running now (0: none yet)
    uint64_t assigned = 0;  // told to run
  };
  std::vector<Shard> shards;

  std::string to_json() const;
};

class Rollout {
 public:
  // Reads the content state from the store and applies the boot rules (crash during a
  // rollout: rolled back; crash loop after an activation: last known good). `seed` is the
  // bundle given by configuration (--rules, --mapping): the first active bundle of an empty
  // store, and, when its content changes later, submitted like any other bundle (by
  // `actor` "config"). Records this boot as running (see mark_clean_stop).
  static Expected<std::unique_ptr<Rollout>> open(store::Store& store, MetricsRegistry& metrics,
                                                 const Clock& clock, const RolloutOptions& options,
                                                 const match::Bundle& seed);
  ~Rollout();

  // Starts the controller over `pipeline` (which must outlive stop()).
  void start(Pipeline& pipeline);
  void stop();
  // Records that the process stops cleanly (not a crash for the crash-loop guard).
  void mark_clean_stop();

  // The active bundle (what /api/v1/rules shows).
  std::shared_ptr<const match::CompiledBundle> active() const;
  // What the boot rules did, empty if nothing (e.g. "bundle 7 quarantined after 3 crashes;
  // running the last known good 5"). Shown in health and the banner.
  std::string boot_notice() const;

  Expected<SubmitResult> submit(const match::Bundle& bundle, const std::string& actor);
  // The configured rules read again while running (vigild's rules watch): submitted as at a
  // start (actor "config") when their content differs from the configured rules submitted
  // last; nullopt when it does not. A bundle that does not validate leaves the active one.
  Expected<std::optional<SubmitResult>> submit_changed_config(const match::Bundle& seed);
  // JSON documents for the API and the CLI.
  Expected<std::string> list_json() const;
  Expected<std::string> bundle_json(uint64_t version) const;
  RolloutStatus status() const;
  Expected<std::string> state_json() const;  // status().to_json()
  Expected<std::string> audit_json(size_t limit) const;
  // Runs a stored bundle and the active one over the stored events of [since, until), at most
  // max_events, and reports per-rule counts and the detections gained and lost.
  Expected<std::string> dry_run(uint64_t version, TimeMs since, TimeMs until,
                                size_t max_events) const;
  // The same for a bundle that is not stored (one a peer holds, or one being considered):
  // it must compile (lenient: rules that do not are left out); "version" is 0.
  Expected<std::string> dry_run_bundle(const match::Bundle& bundle, TimeMs since, TimeMs until,
                                       size_t max_events, bool lenient) const;
  // The archive (tar) of a stored bundle.
  Expected<std::string> bundle_archive(uint64_t version) const;

  // Operator actions. `version` for start; reason is free text for the audit log.
  Status start_rollout(uint64_t version, const std::string& actor, const std::string& reason);
  Status promote(const std::string& actor, const std::string& reason);
  Status pause(const std::string& actor, const std::string& reason);
  Status resume(const std::string& actor, const std::string& reason);
  Status rollback(const std::string& actor, const std::string& reason);
  Status set_policy(RolloutPolicy policy, const std::string& actor);

  // Cluster mode (ContentSync). `on_stored` publishes a bundle submitted here (by an operator
  // or the configuration) that validated; it is called outside the lock.
  void set_on_stored(
      std::function<void(const match::Bundle&, const std::string& actor, bool lenient)> on_stored);
  // A bundle read from the content topic: stored and validated as a submitted one, neither
  // published again nor started here.
  // `lenient`: as the configured rules (a rule that does not compile is left out, not fatal).
  Expected<SubmitResult> store_published(const match::Bundle& bundle, const std::string& actor,
                                         bool lenient);
  // Whether a stored version was the configured rules (validated leniently); its status
  // (valid, refused, rolled_back, quarantined; "" when not stored).
  bool lenient(uint64_t version) const;
  std::string bundle_status(uint64_t version) const;
  // The deployment's decision in this store's versions (0: none).
  struct Followed {
    uint64_t seq = 0;
    RolloutPolicy policy = RolloutPolicy::kStaged;
    std::string phase = "idle";  // idle, rolling, paused
    uint64_t active = 0, target = 0, lkg = 0;
    std::vector<int> target_shards;  // this replica's shards that run the target
    size_t stage = 0, stages = 0;
    TimeMs stage_started = 0;
    std::vector<uint64_t> quarantined, rolled_back, refused;
    std::string action, actor, reason, coordinator, last_breach;
  };
  // Applies it to the shards (before start(): to the bundle they start on). A target this
  // boot rolled back after an abnormal end is not run here (the report says why).
  Status follow(const Followed& f);
  // The version stored for a content hash (0: none); the hash of a stored version.
  uint64_t version_of(const std::string& hash) const;
  std::string hash_of(uint64_t version) const;
  // The hash of the configured rules submitted last ("" none).
  std::string configured_hash() const;
  // What this boot's rules did after an abnormal end: the bundle rolled back or quarantined.
  struct BootCrash {
    uint64_t version = 0;
    bool quarantined = false;
    std::string reason;
  };
  BootCrash boot_crash() const;

  // One evaluation of the gates and stage timer (the controller thread calls it every
  // tick_ms; tests may call it directly).
  void tick();

 private:
  struct State;
  Rollout(store::Store& store, MetricsRegistry& metrics, const Clock& clock,
          const RolloutOptions& options);
  // The boot rules (rollout_boot.cc), in order.
  Status boot(const match::Bundle& seed);
  Expected<bool> record_boot(TimeMs now);  // whether the previous run stopped cleanly
  Status read_counters();
  Status read_rollout_record();
  Status first_start(const match::Bundle& seed, TimeMs now, std::unique_lock<std::mutex>& lock);
  Status load_active(TimeMs now);
  Status resume_rollout(bool prev_clean);
  Status guard_crash_loop(TimeMs now);
  Status submit_changed_seed(const match::Bundle& seed, std::unique_lock<std::mutex>& lock);
  Expected<std::shared_ptr<const match::CompiledBundle>> load_compiled(uint64_t version) const;
  Expected<SubmitResult> submit_impl(const match::Bundle& bundle, const std::string& actor,
                                     bool lenient);
  // Validates without the lock, then takes `lock` (if not held) to store.
  Expected<SubmitResult> submit_locked(const match::Bundle& bundle, const std::string& actor,
                                       bool lenient, std::unique_lock<std::mutex>& lock);
  Status start_locked(uint64_t version, const std::string& actor, const std::string& reason);
  Status enter_stage_locked(size_t stage);
  void complete_locked(const std::string& actor);
  Status rollback_locked(const std::string& actor, const std::string& reason, bool quarantine);
  Status persist_state_locked();
  Status audit_locked(const std::string& actor, const std::string& action, uint64_t version,
                      uint64_t from, const std::string& reason);
  std::optional<std::string> breached_gate_locked();
  uint64_t stage_events_locked() const;  // processed by the new bundle's shards this stage
  std::vector<int> stage_shards(int shards) const;  // shards running the new bundle, per stage
  void apply_shards_locked();
  std::vector<std::string> reference_events() const;
  void run();

  store::Store& store_;
  MetricsRegistry& metrics_;
  const Clock& clock_;
  RolloutOptions options_;
  Pipeline* pipeline_ = nullptr;
  mutable std::mutex mu_;
  std::unique_ptr<State> state_;
  std::thread thread_;
  std::condition_variable cv_;
  bool stop_ = false;
  Gauge* active_gauge_ = nullptr;
  Gauge* target_gauge_ = nullptr;
  Gauge* stage_gauge_ = nullptr;
  Counter* rollbacks_ = nullptr;
  Counter* quarantined_ = nullptr;
  std::function<void(const match::Bundle&, const std::string&, bool)> on_stored_;
};

}  // namespace vigil::ingest
