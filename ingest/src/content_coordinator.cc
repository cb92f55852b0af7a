#include "content_coordinator.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <utility>

namespace vigil::ingest {

using content::Phase;
using ctopic::short_name;

namespace {

constexpr size_t kMaxListed = 256;  // bundles kept in each of the decision's lists

void add_listed(std::vector<std::string>& list, const std::string& hash) {
  if (std::find(list.begin(), list.end(), hash) != list.end()) return;
  list.push_back(hash);
  if (list.size() > kMaxListed) list.erase(list.begin());
}

bool listed(const std::vector<std::string>& list, const std::string& hash) {
  return std::find(list.begin(), list.end(), hash) != list.end();
}

std::string shard_name(const std::string& replica, uint32_t shard) {
  return replica + "/" + std::to_string(shard);
}

// The order of live_shards(): by replica name, then shard number.
bool shard_order(const std::string& a, const std::string& b) {
  const size_t sa = a.rfind('/'), sb = b.rfind('/');
  const std::string_view ra(a.data(), sa), rb(b.data(), sb);
  if (ra != rb) return ra < rb;
  return std::stoul(a.substr(sa + 1)) < std::stoul(b.substr(sb + 1));
}

}  // namespace

ContentCoordinator::ContentCoordinator(const RolloutOptions& options, std::string self,
                                       int64_t report_timeout_ms, int64_t verdict_wait_ms)
    : options_(options),
      self_(std::move(self)),
      report_timeout_ms_(report_timeout_ms),
      verdict_wait_ms_(verdict_wait_ms) {
  if (options_.stages_percent.empty() || options_.stages_percent.back() != 100)
    options_.stages_percent.push_back(100);
}

void ContentCoordinator::on_bundle(const ctopic::BundleHeader& h, int64_t offset) {
  bundles_[h.hash] = {h, offset};
}

void ContentCoordinator::on_verdict(const ctopic::Verdict& v) { verdicts_[v.hash][v.replica] = v; }

void ContentCoordinator::on_report(const ctopic::Report& r) { reports_[r.replica] = r; }

void ContentCoordinator::forget(const std::string& replica) { reports_.erase(replica); }

void ContentCoordinator::on_decision(const ctopic::Decision& d) {
  if (have_ && d.seq <= d_.seq) return;
  // Another coordinator's (an earlier one, or this one's own read back): its stage began
  // where the counters stood then, which this one did not see; they count from now.
  if (!have_ || d.coordinator != self_ || d.stage != d_.stage || d.target != d_.target)
    stage_start_.clear();
  d_ = d;
  have_ = true;
}

bool ContentCoordinator::live(const ctopic::Report& r, TimeMs now) const {
  return now - std::min(r.time, now) <= report_timeout_ms_;
}

std::vector<std::string> ContentCoordinator::live_shards(TimeMs now) const {
  std::vector<std::pair<std::string, uint32_t>> all;
  for (const auto& [replica, r] : reports_) {
    if (!live(r, now)) continue;
    for (const auto& s : r.shards) all.emplace_back(replica, s.shard);
  }
  std::sort(all.begin(), all.end());
  std::vector<std::string> out;
  out.reserve(all.size());
  for (const auto& [replica, shard] : all) out.push_back(shard_name(replica, shard));
  return out;
}

std::vector<int> ContentCoordinator::stage_sizes(size_t n) const {
  return rollout_stage_sizes(d_.policy, options_.stages_percent, static_cast<int>(n));
}

std::string ContentCoordinator::verdicts_against(const std::string& hash, TimeMs now,
                                                 bool& refused) const {
  refused = false;
  auto it = verdicts_.find(hash);
  std::string missing;
  for (const auto& [replica, r] : reports_) {
    if (!live(r, now)) continue;
    const ctopic::Verdict* v = nullptr;
    if (it != verdicts_.end()) {
      if (auto vit = it->second.find(replica); vit != it->second.end()) v = &vit->second;
    }
    if (v && !v->valid) {
      refused = true;
      return "refused by replica " + replica + ": " + v->reason;
    }
    if (!v && missing.empty()) missing = "replica " + replica + " has not validated it yet";
  }
  return missing;
}

void ContentCoordinator::transition(const std::string& action, const std::string& actor,
                                    const std::string& reason) {
  d_.action = action;
  d_.actor = actor;
  d_.reason = reason;
  spdlog::info("deployment rollout: {} by {}: {}", action, actor, reason);
}

void ContentCoordinator::start(const std::string& hash, TimeMs now, const std::string& actor,
                               const std::string& reason) {
  d_.from = d_.active;
  d_.target = hash;
  d_.phase = Phase::kRolling;
  d_.started = now;
  d_.last_breach.clear();
  // The previous bundle's alert rate before the rollout: the baseline when no shard is left on it.
  uint64_t events = 0, alerts = 0;
  for (const auto& [replica, r] : reports_) {
    if (!live(r, now)) continue;
    for (const auto& s : r.shards) {
      events += s.events;
      alerts += s.alerts;
    }
  }
  d_.rate_before = events >= options_.min_events_for_flood
                       ? static_cast<double>(alerts) / static_cast<double>(events)
                       : -1;
  transition("started", actor,
             reason + " (policy " + std::string(rollout_policy_name(d_.policy)) + ")");
  enter_stage(0, now);
}

// The stage's shards: shards that consume events before idle ones (a replica may hold no
// partition of the events topic: a canary that sees nothing proves nothing), and among each,
// those already running the target before the others (in name order), so that a stage keeps
// its shards while they stay live.
bool ContentCoordinator::place_shards(TimeMs now) {
  const auto shards = live_shards(now);
  const auto sizes = stage_sizes(shards.size());
  d_.stage = std::min<uint64_t>(d_.stage, sizes.size() - 1);
  d_.stages = sizes.size();
  const size_t k = std::min(shards.size(), static_cast<size_t>(sizes[d_.stage]));
  std::set<std::string> busy;
  for (const auto& [replica, r] : reports_)
    for (const auto& s : r.shards)
      if (s.events > 0) busy.insert(shard_name(replica, s.shard));
  std::vector<std::string> order;
  for (int pass = 0; pass < 4; ++pass) {
    const bool want_busy = pass < 2, want_chosen = pass % 2 == 0;
    const auto& from = want_chosen ? d_.target_shards : shards;
    for (const auto& name : from) {
      if (want_busy != (busy.count(name) > 0) || listed(order, name) ||
          !std::binary_search(shards.begin(), shards.end(), name, shard_order))
        continue;
      order.push_back(name);
    }
  }
  order.resize(k);
  std::vector<std::string> want = std::move(order);
  if (want == d_.target_shards) return false;
  d_.target_shards = std::move(want);
  return true;
}

void ContentCoordinator::enter_stage(uint64_t stage, TimeMs now) {
  d_.stage = stage;
  d_.stage_started = now;
  place_shards(now);
  stage_start_.clear();
  for (const auto& [replica, r] : reports_) {
    if (!live(r, now)) continue;
    for (const auto& s : r.shards)
      stage_start_[shard_name(replica, s.shard)] = {r.boot,   s.events,  s.alerts,
                                                    s.errors, s.batches, s.latency};
  }
}

void ContentCoordinator::complete(TimeMs now, const std::string& actor, const std::string& reason) {
  d_.previous = d_.active;
  d_.active = d_.target;
  d_.active_since = now;
  d_.target.clear();
  d_.from.clear();
  d_.phase = Phase::kIdle;
  d_.stage = 0;
  d_.target_shards.clear();
  transition("completed", actor, reason);
}

void ContentCoordinator::roll_back(TimeMs now, const std::string& actor, const std::string& reason,
                                   bool quarantine) {
  const std::string bad = d_.target;
  add_listed(quarantine ? d_.quarantined : d_.rolled_back, bad);
  d_.target.clear();
  d_.from.clear();
  d_.phase = Phase::kIdle;
  d_.stage = 0;
  d_.target_shards.clear();
  (void)now;
  transition(quarantine ? "quarantined" : "rolled_back", actor,
             short_name(bad) + " back to " + short_name(d_.active) + ": " + reason);
}

std::optional<std::string> ContentCoordinator::breached(TimeMs now) {
  GateTotals t;
  t.rate_before = d_.rate_before;
  for (const auto& [replica, r] : reports_) {
    if (!live(r, now)) continue;
    if (t.bounds.empty()) t.bounds = r.bounds;
    for (const auto& s : r.shards) {
      const std::string name = shard_name(replica, s.shard);
      auto it = stage_start_.find(name);
      // A shard first seen in this stage, or whose process restarted: it counts from now.
      if (it == stage_start_.end() || it->second.boot != r.boot || s.events < it->second.events ||
          s.alerts < it->second.alerts || s.errors < it->second.errors ||
          s.batches < it->second.batches || s.latency.size() != it->second.latency.size()) {
        stage_start_[name] = {r.boot, s.events, s.alerts, s.errors, s.batches, s.latency};
        continue;
      }
      const Sample& s0 = it->second;
      const uint64_t ev = s.events - s0.events, al = s.alerts - s0.alerts;
      if (s.bundle == d_.target) {
        t.events_new += ev;
        t.alerts_new += al;
        t.errors += s.errors - s0.errors;
        t.batches += s.batches - s0.batches;
        if (r.bounds == t.bounds) {
          t.buckets.resize(t.bounds.size() + 1, 0);
          for (size_t b = 0; b < t.buckets.size() && b < s.latency.size(); ++b)
            t.buckets[b] += s.latency[b] >= s0.latency[b] ? s.latency[b] - s0.latency[b] : 0;
        }
      } else if (s.bundle == d_.active) {
        t.events_old += ev;
        t.alerts_old += al;
      }
    }
  }
  return breached_gate(options_, t, short_name(d_.target), short_name(d_.active));
}

// The stage was held long enough, on enough events, and every shard of it runs the target.
bool ContentCoordinator::stage_held(TimeMs now) {
  if (now - d_.stage_started < options_.stage_ms) return false;
  uint64_t events = 0;
  for (const auto& [replica, r] : reports_) {
    if (!live(r, now)) continue;
    for (const auto& s : r.shards) {
      const std::string name = shard_name(replica, s.shard);
      if (!listed(d_.target_shards, name)) continue;
      if (s.bundle != d_.target) return false;  // not applied there yet
      auto it = stage_start_.find(name);
      if (it != stage_start_.end() && it->second.boot == r.boot && s.events >= it->second.events)
        events += s.events - it->second.events;
    }
  }
  return events >= options_.min_stage_events;
}

// Bundles published since the last judged: started, refused, or waited for.
bool ContentCoordinator::judge_new_bundles(TimeMs now) {
  std::vector<const Published*> fresh;
  for (const auto& [hash, p] : bundles_)
    if (p.offset > d_.bundles_seen) fresh.push_back(&p);
  std::sort(fresh.begin(), fresh.end(),
            [](const Published* a, const Published* b) { return a->offset < b->offset; });
  bool changed = false;
  for (const Published* p : fresh) {
    const std::string& hash = p->header.hash;
    if (hash == d_.active || hash == d_.target || listed(d_.quarantined, hash) ||
        listed(d_.refused, hash)) {
      d_.bundles_seen = p->offset;
      changed = true;
      continue;
    }
    bool refused = false;
    std::string why = verdicts_against(hash, now, refused);
    if (!why.empty() && !refused) {
      if (now - std::min(p->header.time, now) < verdict_wait_ms_) break;  // wait for it
      why = "no verdict in " + std::to_string(verdict_wait_ms_ / 1000) + " s: " + why;
      refused = true;
    }
    d_.bundles_seen = p->offset;
    changed = true;
    if (refused) {
      add_listed(d_.refused, hash);
      transition("refused", "vigil", short_name(hash) + " " + why);
      continue;
    }
    if (d_.policy == RolloutPolicy::kPinned || d_.phase != Phase::kIdle) continue;
    start(hash, now, p->header.actor.empty() ? "vigil" : p->header.actor,
          "a new valid bundle, valid on every replica, under the " +
              std::string(rollout_policy_name(d_.policy)) + " policy");
  }
  return changed;
}

// The boot rules of a replica that ended abnormally, as the deployment's.
bool ContentCoordinator::handle_crashes(TimeMs now) {
  for (const auto& [replica, r] : reports_) {
    if (!live(r, now) || r.crashed.empty()) continue;
    const bool quarantine = r.crash_kind == "quarantined";
    const std::string why = "replica " + replica + ": " + r.crash_reason;
    if (d_.phase != Phase::kIdle && r.crashed == d_.target && r.boot >= d_.started) {
      roll_back(now, "vigil", "crash: " + why, quarantine);
      return true;
    }
    if (d_.phase == Phase::kIdle && quarantine && r.crashed == d_.active && !d_.lkg.empty() &&
        d_.lkg != d_.active && r.boot >= d_.active_since) {
      const std::string bad = d_.active;
      add_listed(d_.quarantined, bad);
      d_.previous = bad;
      d_.active = d_.lkg;
      d_.active_since = now;
      transition("quarantined", "vigil",
                 short_name(bad) + " (a crash loop; the last known good runs): " + why);
      return true;
    }
  }
  return false;
}

std::optional<ctopic::Decision> ContentCoordinator::tick(TimeMs now,
                                                         const std::string& local_active) {
  bool changed = false;
  if (!have_) {
    if (!ctopic::is_hash(local_active)) return std::nullopt;
    d_ = {};
    d_.policy = options_.policy;
    d_.active = d_.lkg = local_active;
    d_.active_since = now;
    have_ = true;
    transition("activated", "vigil",
               "the first coordinator's active bundle, " + short_name(local_active));
    changed = true;
  }
  changed |= handle_crashes(now);
  if (d_.phase == Phase::kIdle) {
    if (d_.active != d_.lkg && d_.active_since > 0 &&
        now - d_.active_since >= options_.good_after_ms) {
      d_.lkg = d_.active;
      transition("known_good", "vigil",
                 short_name(d_.active) + " active " +
                     std::to_string(options_.good_after_ms / 1000) + " s without a crash");
      changed = true;
    }
    changed |= judge_new_bundles(now);
  } else {
    changed |= place_shards(now);
    bool refused = false;
    const std::string why = verdicts_against(d_.target, now, refused);
    std::optional<std::string> breach;
    if (refused)
      breach = why;
    else
      breach = breached(now);
    if (breach) {
      if (d_.policy == RolloutPolicy::kPinned && !refused) {
        if (d_.phase != Phase::kPaused || d_.last_breach != *breach) {
          d_.phase = Phase::kPaused;
          d_.last_breach = *breach;
          transition("paused", "vigil", "gate: " + *breach);
          changed = true;
        }
      } else {
        d_.last_breach = *breach;
        roll_back(now, "vigil", "gate: " + *breach, false);
        changed = true;
      }
    } else if (d_.phase == Phase::kRolling && d_.policy != RolloutPolicy::kPinned &&
               stage_held(now)) {
      if (d_.stage + 1 >= d_.stages) {
        complete(now, "vigil", "every stage passed; bundle active on every shard");
      } else {
        transition("promoted", "vigil",
                   "stage " + std::to_string(d_.stage) + " held " +
                       std::to_string(options_.stage_ms / 1000) + " s with every gate passed");
        enter_stage(d_.stage + 1, now);
      }
      changed = true;
    }
  }
  if (!changed) return std::nullopt;
  ++d_.seq;
  d_.time = now;
  d_.coordinator = self_;
  return d_;
}

Expected<ctopic::Decision> ContentCoordinator::act(const ctopic::Action& a, TimeMs now) {
  if (!have_) return Status::unavailable("the deployment has no rollout state yet");
  const std::string actor = a.actor.empty() ? "operator" : a.actor;
  const std::string reason = a.reason.empty() ? "by an operator" : a.reason;
  if (a.action == "start") {
    if (d_.phase != Phase::kIdle)
      return Status::invalid("the rollout of " + short_name(d_.target) +
                             " is in progress; promote, roll back or wait");
    if (a.hash == d_.active) return Status::invalid(short_name(a.hash) + " is already active");
    if (!bundles_.count(a.hash))
      return Status::not_found(short_name(a.hash) + " was not published on the content topic");
    if (listed(d_.quarantined, a.hash))
      return Status::invalid(short_name(a.hash) +
                             " is quarantined (it crashed a replica after activation)");
    if (listed(d_.refused, a.hash))
      return Status::invalid(short_name(a.hash) + " was refused by a replica's validation");
    bool refused = false;
    if (auto why = verdicts_against(a.hash, now, refused); !why.empty())
      return Status::invalid(short_name(a.hash) + ": " + why);
    auto& rb = d_.rolled_back;
    rb.erase(std::remove(rb.begin(), rb.end(), a.hash), rb.end());
    start(a.hash, now, actor, reason);
  } else if (a.action == "promote") {
    if (d_.phase == Phase::kIdle) return Status::invalid("no rollout in progress");
    place_shards(now);
    if (d_.stage + 1 >= d_.stages) {
      complete(now, actor, reason);
    } else {
      transition("promoted", actor, reason);
      enter_stage(d_.stage + 1, now);
    }
  } else if (a.action == "pause") {
    if (d_.phase != Phase::kRolling) return Status::invalid("no rollout is running");
    d_.phase = Phase::kPaused;
    transition("paused", actor, reason);
  } else if (a.action == "resume") {
    if (d_.phase != Phase::kPaused) return Status::invalid("no rollout is paused");
    d_.phase = Phase::kRolling;
    d_.stage_started = now;
    transition("resumed", actor, reason);
  } else if (a.action == "rollback") {
    if (d_.phase != Phase::kIdle) {
      roll_back(now, actor, reason, false);
    } else {
      // Nothing rolling: back to the bundle active before this one.
      std::string back = d_.previous;
      if (back.empty() || back == d_.active || listed(d_.quarantined, back))
        back = d_.lkg != d_.active ? d_.lkg : std::string();
      if (back.empty()) return Status::invalid("there is no earlier bundle to roll back to");
      const std::string bad = d_.active;
      add_listed(d_.rolled_back, bad);
      d_.active = back;
      d_.previous.clear();
      d_.active_since = now;
      if (d_.lkg == bad) d_.lkg = back;
      transition("rolled_back", actor,
                 short_name(bad) + " back to " + short_name(back) + ": " + reason);
    }
  } else if (a.action == "policy") {
    auto p = parse_rollout_policy(a.policy);
    if (!p) return Status::invalid("unknown policy '" + a.policy + "'");
    if (d_.phase != Phase::kIdle)
      return Status::invalid("the policy cannot change during a rollout");
    const std::string old(rollout_policy_name(d_.policy));
    d_.policy = *p;
    transition("policy", actor, old + " -> " + a.policy);
  } else {
    return Status::invalid("unknown rollout action '" + a.action + "'");
  }
  ++d_.seq;
  d_.time = now;
  d_.coordinator = self_;
  return d_;
}

}  // namespace vigil::ingest
