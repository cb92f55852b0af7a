// Rollout: the controller (stages, gates, operator actions) and the status document. The
// boot rules are in rollout_boot.cc, storing and loading bundles in rollout_content.cc, the
// dry run in rollout_dry_run.cc.

#include "vigil/ingest/rollout.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "rollout_gates.h"
#include "rollout_internal.h"
#include "vigil/core/event.h"
#include "vigil/core/thread_name.h"
#include "vigil/ingest/pipeline.h"

namespace vigil::ingest {

using namespace content;
using Writer = JsonWriter;

namespace {

Status cluster_only() {
  return Status::invalid(
      "cluster mode: rollout actions are the deployment coordinator's (ContentSync forwards them)");
}

}  // namespace

std::optional<RolloutPolicy> parse_rollout_policy(std::string_view name) {
  if (name == "staged") return RolloutPolicy::kStaged;
  if (name == "immediate") return RolloutPolicy::kImmediate;
  if (name == "pinned") return RolloutPolicy::kPinned;
  return std::nullopt;
}

std::string_view rollout_policy_name(RolloutPolicy p) {
  switch (p) {
    case RolloutPolicy::kStaged:
      return "staged";
    case RolloutPolicy::kImmediate:
      return "immediate";
    case RolloutPolicy::kPinned:
      return "pinned";
  }
  return "staged";
}

RolloutRecord Rollout::State::record() const {
  RolloutRecord r;
  r.policy = policy;
  r.policy_from_api = policy_from_api;
  r.active = active;
  r.lkg = lkg;
  r.target = target;
  r.from = from;
  r.phase = phase;
  r.stage = stage;
  r.active_since = active_since;
  return r;
}

Rollout::Rollout(store::Store& store, MetricsRegistry& metrics, const Clock& clock,
                 const RolloutOptions& options)
    : store_(store),
      metrics_(metrics),
      clock_(clock),
      options_(options),
      state_(std::make_unique<State>()) {
  if (options_.stages_percent.empty() || options_.stages_percent.back() != 100)
    options_.stages_percent.push_back(100);
  active_gauge_ = &metrics.gauge("vigil_bundle_active_version", "The active rule bundle version");
  target_gauge_ = &metrics.gauge("vigil_rollout_target_version",
                                 "The bundle version being rolled out (0: none)");
  stage_gauge_ = &metrics.gauge("vigil_rollout_stage",
                                "The stage of the rollout in progress (-1: none, 0: canary)");
  rollbacks_ = &metrics.counter("vigil_rollout_rollbacks_total",
                                "Rollouts rolled back (gates, crashes, operators)");
  quarantined_ = &metrics.counter("vigil_bundles_quarantined_total",
                                  "Bundles quarantined by the crash-loop guard");
}

Rollout::~Rollout() { stop(); }

Expected<std::unique_ptr<Rollout>> Rollout::open(store::Store& store, MetricsRegistry& metrics,
                                                 const Clock& clock, const RolloutOptions& options,
                                                 const match::Bundle& seed) {
  std::unique_ptr<Rollout> r(new Rollout(store, metrics, clock, options));
  if (auto s = r->boot(seed); !s) return s;
  return r;
}

std::vector<int> Rollout::stage_shards(int n) const {
  return rollout_stage_sizes(state_->policy, options_.stages_percent, n);
}

void Rollout::start(Pipeline& pipeline) {
  std::unique_lock lock(mu_);
  pipeline_ = &pipeline;
  State& st = *state_;
  st.shard_versions.assign(static_cast<size_t>(pipeline.workers()), 0);
  for (int i = 0; i < pipeline.workers(); ++i) {
    if (auto b = pipeline.bundle(i)) st.shard_versions[static_cast<size_t>(i)] = b->version;
  }
  if (st.phase != Phase::kIdle) {
    if (auto s = enter_stage_locked(st.stage); !s)
      spdlog::error("cannot resume the rollout: {}", s.to_string());
  } else if (st.deferred_start) {
    const uint64_t v = st.deferred_start;
    st.deferred_start = 0;
    if (auto s = start_locked(v, "config", "the configured rules changed"); !s) {
      spdlog::error("cannot start the rollout of bundle {}: {}", v, s.to_string());
    }
  }
  stop_ = false;
  thread_ = std::thread([this] {
    set_thread_name("vigil:rollout");
    run();
  });
}

void Rollout::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Rollout::mark_clean_stop() {
  std::lock_guard lock(mu_);
  BootRecord stopped;
  stopped.clean = true;
  stopped.path = store_.path();
  stopped.stopped = clock_.now_ms();
  (void)store_.put_meta({{kBootKey, stopped.to_json()}});
}

void Rollout::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(options_.tick_ms), [&] { return stop_; });
    if (stop_) break;
    lock.unlock();
    tick();
    lock.lock();
  }
}

std::shared_ptr<const match::CompiledBundle> Rollout::active() const {
  std::lock_guard lock(mu_);
  return state_->compiled.at(state_->active);
}

std::string Rollout::boot_notice() const {
  std::lock_guard lock(mu_);
  return state_->notice;
}

Status Rollout::persist_state_locked() {
  const State& st = *state_;
  active_gauge_->set(static_cast<double>(st.active));
  target_gauge_->set(static_cast<double>(st.phase == Phase::kIdle ? 0 : st.target));
  stage_gauge_->set(st.phase == Phase::kIdle ? -1.0 : static_cast<double>(st.stage));
  return store_.put_meta({{kRolloutKey, st.record().to_json()}});
}

Status Rollout::audit_locked(const std::string& actor, const std::string& action, uint64_t version,
                             uint64_t from, const std::string& reason) {
  State& st = *state_;
  const uint64_t seq = st.next_audit++;
  const AuditRecord entry{seq,   format_rfc3339(clock_.now_ms()), actor, action, version, from,
                          reason};
  return store_.put_meta({{num_key(kAuditPrefix, seq), entry.to_json()}});
}

Status Rollout::start_rollout(uint64_t version, const std::string& actor,
                              const std::string& reason) {
  std::lock_guard lock(mu_);
  if (options_.clustered) return cluster_only();
  if (!pipeline_) return Status::unavailable("the pipeline is not running");
  return start_locked(version, actor, reason);
}

Status Rollout::start_locked(uint64_t version, const std::string& actor,
                             const std::string& reason) {
  State& st = *state_;
  if (st.phase != Phase::kIdle) {
    return Status::invalid("the rollout of bundle " + std::to_string(st.target) +
                           " is in progress; promote, roll back or wait");
  }
  if (version == st.active)
    return Status::invalid("bundle " + std::to_string(version) + " is already active");
  auto info = store_.get_meta(num_key(kInfoPrefix, version));
  if (!info) return info.status();
  if (!*info) return Status::not_found("no bundle version " + std::to_string(version));
  auto bundle_info = BundleInfoRecord::from_json(**info);
  if (!bundle_info) return bundle_info.status();
  const std::string& status = bundle_info->status;
  if (status == "refused")
    return Status::invalid("bundle " + std::to_string(version) + " was refused by validation");
  if (status == "quarantined") {
    return Status::invalid("bundle " + std::to_string(version) +
                           " is quarantined (it crashed the process after activation)");
  }
  auto c = load_compiled(version);
  if (!c) return c.status();
  st.compiled[version] = *c;
  st.target = version;
  st.from = st.active;
  st.phase = Phase::kRolling;
  st.stage = 0;
  st.last_breach.clear();
  st.rollout_started = clock_.now_ms();
  // The previous bundle's alert rate before the rollout: the baseline when no shard is left on it.
  uint64_t events = 0, alerts = 0;
  for (size_t i = 0; i < st.shard_versions.size(); ++i) {
    const Labels l{{"shard", std::to_string(i)}};
    events += metrics_.counter_value("vigil_events_consumed_total", l);
    alerts += metrics_.counter_value("vigil_alerts_total", l);
  }
  st.rate_before = events >= options_.min_events_for_flood
                       ? static_cast<double>(alerts) / static_cast<double>(events)
                       : -1;
  // Recorded (synced) before any shard runs it: a crash from here on is this bundle's.
  if (auto s = persist_state_locked(); !s) return s;
  if (auto s = store_.put_meta(
          {{kActivationKey, ActivationRecord{version, clock_.now_ms(), 0}.to_json()}});
      !s) {
    return s;
  }
  if (auto s =
          audit_locked(actor, "started", version, st.from,
                       reason + " (policy " + std::string(rollout_policy_name(st.policy)) + ")");
      !s) {
    return s;
  }
  spdlog::info("rollout of bundle {} started by {} (policy {}), from bundle {}", version, actor,
               rollout_policy_name(st.policy), st.from);
  return enter_stage_locked(0);
}

Status Rollout::enter_stage_locked(size_t stage) {
  State& st = *state_;
  const auto shards = stage_shards(static_cast<int>(st.shard_versions.size()));
  st.stage = std::min(stage, shards.size() - 1);
  st.stage_started = clock_.now_ms();
  apply_shards_locked();
  // The gates count from here.
  st.stage_start.assign(st.shard_versions.size(), {});
  for (size_t i = 0; i < st.shard_versions.size(); ++i) {
    const Labels l{{"shard", std::to_string(i)}};
    ShardSample& s = st.stage_start[i];
    s.events = metrics_.counter_value("vigil_events_consumed_total", l);
    s.alerts = metrics_.counter_value("vigil_alerts_total", l);
    s.errors = metrics_.counter_value("vigil_match_errors_total", l);
    Histogram& h = metrics_.histogram("vigil_batch_duration_seconds",
                                      "Time to match and persist a batch", {}, l);
    s.batches = h.count();
    for (size_t b = 0; b <= h.bounds().size(); ++b) s.latency.push_back(h.cumulative(b));
  }
  spdlog::info("rollout of bundle {}: stage {} ({} of {} shards)", st.target, st.stage,
               shards[st.stage], st.shard_versions.size());
  return persist_state_locked();
}

void Rollout::apply_shards_locked() {
  State& st = *state_;
  if (!pipeline_) return;
  const auto shards = stage_shards(static_cast<int>(st.shard_versions.size()));
  const int k = st.phase == Phase::kIdle ? 0 : shards[std::min(st.stage, shards.size() - 1)];
  for (size_t i = 0; i < st.shard_versions.size(); ++i) {
    // Cluster mode: the shards the deployment's decision named.
    const bool on_target =
        options_.clustered
            ? st.phase != Phase::kIdle && i < st.cluster_shards.size() && st.cluster_shards[i]
            : static_cast<int>(i) < k;
    const uint64_t want = on_target && st.target ? st.target : st.active;
    if (st.shard_versions[i] == want) continue;
    st.shard_versions[i] = want;
    pipeline_->set_bundle(static_cast<int>(i), st.compiled.at(want));
  }
}

std::optional<std::string> Rollout::breached_gate_locked() {
  State& st = *state_;
  if (st.stage_start.size() != st.shard_versions.size()) return std::nullopt;
  GateTotals t;
  t.rate_before = st.rate_before;
  for (size_t i = 0; i < st.shard_versions.size(); ++i) {
    const Labels l{{"shard", std::to_string(i)}};
    const ShardSample& s0 = st.stage_start[i];
    const uint64_t ev = metrics_.counter_value("vigil_events_consumed_total", l) - s0.events;
    const uint64_t al = metrics_.counter_value("vigil_alerts_total", l) - s0.alerts;
    if (st.shard_versions[i] != st.target) {
      t.events_old += ev;
      t.alerts_old += al;
      continue;
    }
    t.events_new += ev;
    t.alerts_new += al;
    t.errors += metrics_.counter_value("vigil_match_errors_total", l) - s0.errors;
    Histogram& h = metrics_.histogram("vigil_batch_duration_seconds",
                                      "Time to match and persist a batch", {}, l);
    t.bounds = h.bounds();
    t.buckets.resize(t.bounds.size() + 1, 0);
    for (size_t b = 0; b <= t.bounds.size() && b < s0.latency.size(); ++b)
      t.buckets[b] += h.cumulative(b) - s0.latency[b];
    t.batches += h.count() - s0.batches;
  }
  return breached_gate(options_, t, "bundle " + std::to_string(st.target),
                       "bundle " + std::to_string(st.from));
}

void Rollout::tick() {
  std::lock_guard lock(mu_);
  State& st = *state_;
  if (options_.clustered) return;  // the deployment's coordinator watches the gates
  const TimeMs now = clock_.now_ms();
  if (st.phase == Phase::kIdle) {
    if (st.active != st.lkg && st.active_since > 0 &&
        now - st.active_since >= options_.good_after_ms) {
      const uint64_t old = st.lkg;
      st.lkg = st.active;
      (void)audit_locked(
          "vigil", "known_good", st.active, old,
          "active " + std::to_string(options_.good_after_ms / 1000) + " s without a crash");
      (void)persist_state_locked();
    }
    return;
  }
  if (auto breach = breached_gate_locked()) {
    if (st.policy == RolloutPolicy::kPinned) {
      if (st.phase != Phase::kPaused || st.last_breach != *breach) {
        st.phase = Phase::kPaused;
        st.last_breach = *breach;
        spdlog::warn("rollout of bundle {} paused (pinned policy): {}", st.target, *breach);
        (void)audit_locked("vigil", "paused", st.target, st.from, "gate: " + *breach);
        (void)persist_state_locked();
      }
      return;
    }
    spdlog::error("rollout of bundle {}: gate breached: {}", st.target, *breach);
    st.last_breach = *breach;
    (void)rollback_locked("vigil", "gate: " + *breach, false);
    return;
  }
  if (st.phase == Phase::kRolling && st.policy != RolloutPolicy::kPinned &&
      now - st.stage_started >= options_.stage_ms &&
      stage_events_locked() >= options_.min_stage_events) {
    const auto shards = stage_shards(static_cast<int>(st.shard_versions.size()));
    if (st.stage + 1 >= shards.size()) {
      complete_locked("vigil");
    } else {
      (void)audit_locked("vigil", "promoted", st.target, st.from,
                         "stage " + std::to_string(st.stage) + " held " +
                             std::to_string(options_.stage_ms / 1000) +
                             " s with every gate passed");
      (void)enter_stage_locked(st.stage + 1);
    }
  }
}

uint64_t Rollout::stage_events_locked() const {
  const State& st = *state_;
  uint64_t events = 0;
  for (size_t i = 0; i < st.shard_versions.size() && i < st.stage_start.size(); ++i) {
    if (st.shard_versions[i] != st.target) continue;
    events +=
        metrics_.counter_value("vigil_events_consumed_total", {{"shard", std::to_string(i)}}) -
        st.stage_start[i].events;
  }
  return events;
}

void Rollout::complete_locked(const std::string& actor) {
  State& st = *state_;
  const uint64_t from = st.active;
  st.active = st.target;
  st.active_since = clock_.now_ms();
  st.target = 0;
  st.phase = Phase::kIdle;
  st.stage = 0;
  apply_shards_locked();
  for (auto it = st.compiled.begin(); it != st.compiled.end();) {
    it = (it->first == st.active || it->first == st.lkg) ? std::next(it) : st.compiled.erase(it);
  }
  (void)store_.put_meta(
      {{kActivationKey, ActivationRecord{st.active, st.active_since, 0}.to_json()}});
  (void)audit_locked(actor, "completed", st.active, from,
                     "every stage passed; bundle active on every shard");
  (void)persist_state_locked();
  spdlog::info("bundle {} is active on every shard", st.active);
}

Status Rollout::rollback_locked(const std::string& actor, const std::string& reason,
                                bool quarantine) {
  State& st = *state_;
  const uint64_t bad = st.target;
  st.target = 0;
  st.phase = Phase::kIdle;
  st.stage = 0;
  apply_shards_locked();
  rollbacks_->inc();
  (void)set_bundle_status(store_, bad, quarantine ? "quarantined" : "rolled_back");
  (void)store_.put_meta(
      {{kActivationKey, ActivationRecord{st.active, st.active_since, 0}.to_json()}});
  spdlog::warn("rollout of bundle {} rolled back to bundle {} by {}: {}", bad, st.active, actor,
               reason);
  if (auto s = audit_locked(actor, "rolled_back", bad, st.active, reason); !s) return s;
  return persist_state_locked();
}

Status Rollout::promote(const std::string& actor, const std::string& reason) {
  std::lock_guard lock(mu_);
  if (options_.clustered) return cluster_only();
  State& st = *state_;
  if (st.phase == Phase::kIdle) return Status::invalid("no rollout in progress");
  const auto shards = stage_shards(static_cast<int>(st.shard_versions.size()));
  if (st.stage + 1 >= shards.size()) {
    complete_locked(actor);
    return Status::ok();
  }
  if (auto s = audit_locked(actor, "promoted", st.target, st.from,
                            reason.empty() ? "by an operator" : reason);
      !s)
    return s;
  return enter_stage_locked(st.stage + 1);
}

Status Rollout::pause(const std::string& actor, const std::string& reason) {
  std::lock_guard lock(mu_);
  if (options_.clustered) return cluster_only();
  State& st = *state_;
  if (st.phase != Phase::kRolling) return Status::invalid("no rollout is running");
  st.phase = Phase::kPaused;
  if (auto s = audit_locked(actor, "paused", st.target, st.from,
                            reason.empty() ? "by an operator" : reason);
      !s)
    return s;
  return persist_state_locked();
}

Status Rollout::resume(const std::string& actor, const std::string& reason) {
  std::lock_guard lock(mu_);
  if (options_.clustered) return cluster_only();
  State& st = *state_;
  if (st.phase != Phase::kPaused) return Status::invalid("no rollout is paused");
  st.phase = Phase::kRolling;
  st.stage_started = clock_.now_ms();
  if (auto s = audit_locked(actor, "resumed", st.target, st.from,
                            reason.empty() ? "by an operator" : reason);
      !s)
    return s;
  return persist_state_locked();
}

Status Rollout::rollback(const std::string& actor, const std::string& reason) {
  std::lock_guard lock(mu_);
  if (options_.clustered) return cluster_only();
  State& st = *state_;
  if (st.phase != Phase::kIdle)
    return rollback_locked(actor, reason.empty() ? "by an operator" : reason, false);
  // Nothing rolling: back to the bundle that was active before this one.
  if (!pipeline_) return Status::unavailable("the pipeline is not running");
  auto prev = store_.scan_meta(kAuditPrefix, SIZE_MAX, true);
  if (!prev) return prev.status();
  uint64_t back = 0;
  for (const auto& [k, v] : *prev) {
    auto entry = AuditRecord::from_json(v);
    if (!entry) continue;
    if ((entry->action == "completed" || entry->action == "activated") &&
        entry->version == st.active && entry->from) {
      back = entry->from;
      break;
    }
  }
  if (back == 0) back = st.lkg != st.active ? st.lkg : 0;
  if (back == 0) return Status::invalid("there is no earlier bundle to roll back to");
  auto c = load_compiled(back);
  if (!c) return c.status();
  st.compiled[back] = *c;
  const uint64_t bad = st.active;
  st.active = back;
  st.active_since = clock_.now_ms();
  if (st.lkg == bad) st.lkg = back;
  apply_shards_locked();
  rollbacks_->inc();
  (void)store_.put_meta(
      {{kActivationKey, ActivationRecord{st.active, st.active_since, 0}.to_json()}});
  if (auto s =
          audit_locked(actor, "rolled_back", bad, back, reason.empty() ? "by an operator" : reason);
      !s)
    return s;
  return persist_state_locked();
}

Status Rollout::set_policy(RolloutPolicy policy, const std::string& actor) {
  std::lock_guard lock(mu_);
  if (options_.clustered) return cluster_only();
  State& st = *state_;
  if (st.phase != Phase::kIdle) return Status::invalid("the policy cannot change during a rollout");
  const std::string old(rollout_policy_name(st.policy));
  st.policy = policy;
  st.policy_from_api = true;
  if (auto s = audit_locked(actor, "policy", st.active, 0,
                            old + " -> " + std::string(rollout_policy_name(policy)));
      !s)
    return s;
  return persist_state_locked();
}

Rollout::BootCrash Rollout::boot_crash() const {
  std::lock_guard lock(mu_);
  return state_->boot_crash;
}

Status Rollout::follow(const Followed& f) {
  std::lock_guard lock(mu_);
  State& st = *state_;
  if (!options_.clustered) return Status::invalid("not in cluster mode");
  if (f.seq < st.followed_seq) return Status::ok();  // an older decision read late
  if (f.active == 0) return Status::not_found("the deployment's active bundle is not stored here");
  // This boot quarantined it after a crash loop: the last known good runs here until the
  // coordinator, told by the report, decides again.
  const uint64_t active_version =
      st.boot_crash.quarantined && f.active == st.boot_crash.version ? st.active : f.active;
  auto active = load_compiled(active_version);
  if (!active) return active.status();
  Phase phase = f.phase == "rolling"  ? Phase::kRolling
                : f.phase == "paused" ? Phase::kPaused
                                      : Phase::kIdle;
  uint64_t target = phase == Phase::kIdle ? 0 : f.target;
  if (phase != Phase::kIdle && target == 0)
    return Status::not_found("the bundle being rolled out is not stored here");
  // This boot rolled it back or quarantined it: the coordinator hears of it from the report.
  if (target && target == st.boot_crash.version) target = 0;
  // None of this replica's shards runs it: nothing rolls out here (and an abnormal end of
  // this process is no evidence against it).
  if (std::none_of(f.target_shards.begin(), f.target_shards.end(), [](int i) { return i >= 0; }))
    target = 0;
  std::shared_ptr<const match::CompiledBundle> target_bundle;
  if (target) {
    auto t = load_compiled(target);
    if (!t) return t.status();
    target_bundle = *t;
  }
  const TimeMs now = clock_.now_ms();
  const bool fresh = f.seq > st.followed_seq;
  st.compiled[active_version] = *active;
  if (target_bundle) st.compiled[target] = target_bundle;
  // Recorded (synced) before any shard runs it, as a rollout started here would.
  if (active_version != st.active) {
    st.active = active_version;
    st.active_since = now;
    if (auto s =
            store_.put_meta({{kActivationKey, ActivationRecord{active_version, now, 0}.to_json()}});
        !s)
      return s;
  }
  if (target && target != st.target) {
    if (auto s = store_.put_meta({{kActivationKey, ActivationRecord{target, now, 0}.to_json()}});
        !s)
      return s;
  }
  st.target = target;
  st.from = target ? st.active : 0;
  st.phase = target ? phase : Phase::kIdle;
  st.stage = f.stage;
  st.stages = f.stages;
  st.stage_started = f.stage_started;
  st.policy = f.policy;
  st.coordinator = f.coordinator;
  st.last_breach = f.last_breach;
  if (f.lkg) st.lkg = f.lkg;
  st.cluster_shards.assign(std::max(st.shard_versions.size(), st.cluster_shards.size()), false);
  for (int i : f.target_shards) {
    if (i < 0) continue;
    if (static_cast<size_t>(i) >= st.cluster_shards.size())
      st.cluster_shards.resize(static_cast<size_t>(i) + 1, false);
    st.cluster_shards[static_cast<size_t>(i)] = true;
  }
  if (fresh) {
    st.followed_seq = f.seq;
    for (uint64_t v : f.quarantined) (void)set_bundle_status(store_, v, "quarantined");
    for (uint64_t v : f.rolled_back) (void)set_bundle_status(store_, v, "rolled_back");
    for (uint64_t v : f.refused) (void)set_bundle_status(store_, v, "refused");
    if (!f.action.empty()) {
      (void)audit_locked(f.actor.empty() ? "vigil" : f.actor, f.action, target ? target : st.active,
                         st.from, "deployment (coordinator " + f.coordinator + "): " + f.reason);
    }
  }
  if (auto s = persist_state_locked(); !s) return s;
  apply_shards_locked();
  for (auto it = st.compiled.begin(); it != st.compiled.end();) {
    const uint64_t v = it->first;
    it = (v == st.active || v == st.lkg || v == st.target) ? std::next(it) : st.compiled.erase(it);
  }
  return Status::ok();
}

RolloutStatus Rollout::status() const {
  std::lock_guard lock(mu_);
  const State& st = *state_;
  RolloutStatus out;
  out.policy = st.policy;
  out.state = std::string(phase_name(st.phase));
  out.active = st.active;
  out.active_since = st.active_since;
  out.last_known_good = st.lkg;
  if (st.phase != Phase::kIdle && options_.clustered) {
    out.target = st.target;
    out.stage = RolloutStatus::Stage{
        st.stage, st.stages,
        static_cast<uint64_t>(std::count(st.cluster_shards.begin(), st.cluster_shards.end(), true)),
        st.stage_started, options_.stage_ms};
  } else if (st.phase != Phase::kIdle) {
    const auto shards = stage_shards(static_cast<int>(st.shard_versions.size()));
    out.target = st.target;
    out.stage =
        RolloutStatus::Stage{st.stage, shards.size(),
                             static_cast<uint64_t>(shards[std::min(st.stage, shards.size() - 1)]),
                             st.stage_started, options_.stage_ms};
  }
  out.last_breach = st.last_breach;
  out.notice = st.notice;
  for (size_t i = 0; i < st.shard_versions.size(); ++i) {
    auto b = pipeline_ ? pipeline_->bundle(static_cast<int>(i)) : nullptr;
    out.shards.push_back({i, b ? b->version : 0, st.shard_versions[i]});
  }
  return out;
}

Expected<std::string> Rollout::state_json() const { return status().to_json(); }

std::string RolloutStatus::to_json() const {
  return write_json([&](Writer& w) {
    w.StartObject();
    kv(w, "policy", rollout_policy_name(policy));
    kv(w, "state", state);
    kv(w, "active", active);
    kv(w, "active_since", active_since > 0 ? format_rfc3339(active_since) : std::string());
    kv(w, "last_known_good", last_known_good);
    w.Key("target");
    if (target)
      w.Uint64(*target);
    else
      w.Null();
    w.Key("stage");
    if (!stage) {
      w.Null();
    } else {
      w.StartObject();
      kv(w, "index", stage->index);
      kv(w, "stages", stage->stages);
      kv(w, "shards", stage->shards);
      kv(w, "started", format_rfc3339(stage->started));
      w.Key("hold_ms");
      w.Int64(stage->hold_ms);
      w.EndObject();
    }
    kv(w, "last_breach", last_breach);
    kv(w, "notice", notice);
    w.Key("shards");
    w.StartArray();
    for (const auto& sh : shards) {
      w.StartObject();
      kv(w, "shard", sh.shard);
      kv(w, "bundle", sh.bundle);
      kv(w, "assigned", sh.assigned);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  });
}

}  // namespace vigil::ingest
