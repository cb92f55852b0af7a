// Rollout::boot: the boot rules (DESIGN.md, rule content lifecycle). A crash during a
// rollout comes back rolled back; a crash loop after an activation comes back on the last
// known good, the bundle quarantined; configured rules that changed are submitted.

#include <spdlog/spdlog.h>

#include "rollout_internal.h"

namespace vigil::ingest {

using namespace content;

Status Rollout::boot(const match::Bundle& seed) {
  std::unique_lock lock(mu_);
  State& st = *state_;
  st.policy = options_.policy;
  const TimeMs now = clock_.now_ms();

  auto prev_clean = record_boot(now);
  if (!prev_clean) return prev_clean.status();
  if (auto s = read_counters(); !s) return s;
  if (auto s = read_rollout_record(); !s) return s;
  if (st.active == 0) {
    if (auto s = first_start(seed, now, lock); !s) return s;
  } else {
    if (auto s = load_active(now); !s) return s;
    if (st.phase != Phase::kIdle) {
      if (auto s = resume_rollout(*prev_clean); !s) return s;
    } else if (!*prev_clean) {
      if (auto s = guard_crash_loop(now); !s) return s;
    }
    if (auto s = submit_changed_seed(seed, lock); !s) return s;
  }
  active_gauge_->set(static_cast<double>(st.active));
  return persist_state_locked();
}

// Whether the previous run stopped cleanly; records this one as running.
Expected<bool> Rollout::record_boot(TimeMs now) {
  bool prev_clean = true;
  auto boot = store_.get_meta(kBootKey);
  if (!boot) return boot.status();
  if (*boot) {
    // A record written at another path is a copy of the store (a checkpoint taken while it
    // ran), not a crash of this one. A damaged record says nothing either way.
    if (auto r = BootRecord::from_json(**boot)) prev_clean = r->clean || r->path != store_.path();
  }
  BootRecord running;
  running.clean = false;
  running.path = store_.path();
  running.started = now;
  if (auto s = store_.put_meta({{kBootKey, running.to_json()}}); !s) return s;
  return prev_clean;
}

// The next bundle version and audit sequence number.
Status Rollout::read_counters() {
  State& st = *state_;
  auto last_info = store_.scan_meta(kInfoPrefix, 1, true);
  if (!last_info) return last_info.status();
  if (!last_info->empty()) st.next_version = num_of_key(last_info->front().first, kInfoPrefix) + 1;
  auto last_audit = store_.scan_meta(kAuditPrefix, 1, true);
  if (!last_audit) return last_audit.status();
  if (!last_audit->empty()) st.next_audit = num_of_key(last_audit->front().first, kAuditPrefix) + 1;
  return Status::ok();
}

Status Rollout::read_rollout_record() {
  State& st = *state_;
  auto text = store_.get_meta(kRolloutKey);
  if (!text) return text.status();
  if (!*text) return Status::ok();
  auto rec = RolloutRecord::from_json(**text);
  if (!rec) return rec.status();
  if (rec->policy_from_api) {  // an operator's policy outlives the configured one
    st.policy = rec->policy;
    st.policy_from_api = true;
  }
  st.active = rec->active;
  st.lkg = rec->lkg;
  st.target = rec->target;
  st.from = rec->from;
  st.phase = rec->phase;
  st.active_since = rec->active_since;
  return Status::ok();
}

// First start: the configured bundle is the first active one, and the known good.
Status Rollout::first_start(const match::Bundle& seed, TimeMs now,
                            std::unique_lock<std::mutex>& lock) {
  State& st = *state_;
  auto sub = submit_locked(seed, "config", true, lock);
  if (!sub) return sub.status();
  if (!sub->valid) return Status::invalid("the configured rules do not validate: " + sub->json);
  st.active = st.lkg = sub->version;
  st.active_since = now;
  auto c = load_compiled(st.active);
  if (!c) return c.status();
  st.compiled[st.active] = *c;
  if (auto s = store_.put_meta({{kSeedKey, seed.hash()}}); !s) return s;
  return audit_locked("config", "activated", st.active, 0, "first start: the configured rules");
}

// The active bundle compiled; one the engine cannot run (an older engine's content) gives
// way to the last known good.
Status Rollout::load_active(TimeMs now) {
  State& st = *state_;
  auto c = load_compiled(st.active);
  if (!c) {
    spdlog::error("active bundle {} cannot be loaded: {}", st.active, c.status().to_string());
    if (st.lkg == 0 || st.lkg == st.active) return c.status();
    st.notice = "active bundle " + std::to_string(st.active) + " cannot be loaded (" +
                c.status().message() + "); running the last known good " + std::to_string(st.lkg);
    st.active = st.lkg;
    st.active_since = now;
    c = load_compiled(st.active);
    if (!c) return c.status();
  }
  st.compiled[st.active] = *c;
  return Status::ok();
}

// A rollout was in progress: after a crash it is a failed gate (rolled back); after a clean
// stop it starts over from its canary stage.
Status Rollout::resume_rollout(bool prev_clean) {
  State& st = *state_;
  if (!prev_clean) {
    const uint64_t target = st.target;
    if (auto s = rollback_locked(
            "vigil",
            "the process ended abnormally during the rollout of bundle " + std::to_string(target),
            false);
        !s) {
      return s;
    }
    st.notice = "bundle " + std::to_string(target) +
                " rolled back: the process ended abnormally during its rollout; running bundle " +
                std::to_string(st.active);
    st.boot_crash = {target, false, "the process ended abnormally during its rollout"};
    return Status::ok();
  }
  auto t = load_compiled(st.target);
  if (!t)
    return rollback_locked("vigil", "bundle cannot be loaded: " + t.status().message(), false);
  st.compiled[st.target] = *t;
  st.stage = 0;
  return Status::ok();
}

// The crash-loop guard: the previous run ended abnormally soon after the active bundle was
// activated. Counted; at crash_limit within crash_window_ms the bundle is quarantined and
// the last known good runs.
Status Rollout::guard_crash_loop(TimeMs now) {
  State& st = *state_;
  auto text = store_.get_meta(kActivationKey);
  if (!text) return text.status();
  if (!*text) return Status::ok();
  auto act = ActivationRecord::from_json(**text);
  if (!act) return act.status();
  const int64_t crashes = act->crashes + 1;
  if (act->version != st.active || st.active == st.lkg || st.lkg == 0 ||
      now - act->time >= options_.crash_window_ms) {
    return Status::ok();
  }
  spdlog::warn("bundle {} activated {} s ago: the previous run ended abnormally ({} of {})",
               act->version, (now - act->time) / 1000, crashes, options_.crash_limit);
  if (crashes < options_.crash_limit) {
    return store_.put_meta(
        {{kActivationKey, ActivationRecord{act->version, act->time, crashes}.to_json()}});
  }
  const uint64_t bad = st.active;
  auto lkg = load_compiled(st.lkg);
  if (!lkg) return lkg.status();
  st.compiled[st.lkg] = *lkg;
  st.from = bad;
  st.target = 0;
  st.active = st.lkg;
  st.active_since = now;
  quarantined_->inc();
  if (auto s = set_bundle_status(store_, bad, "quarantined"); !s) return s;
  const std::string why = "the process ended abnormally " + std::to_string(crashes) +
                          " times within " + std::to_string(options_.crash_window_ms / 1000) +
                          " s of activating bundle " + std::to_string(bad);
  if (auto s = audit_locked("vigil", "quarantined", bad, bad, why); !s) return s;
  if (auto s =
          audit_locked("vigil", "activated", st.active, bad, "last known good after a crash loop");
      !s)
    return s;
  st.boot_crash = {bad, true, why};
  st.notice = "bundle " + std::to_string(bad) + " quarantined: " + why +
              "; running the last known good bundle " + std::to_string(st.active);
  spdlog::error("{}", st.notice);
  return store_.put_meta({{kActivationKey, ActivationRecord{st.active, now, 0}.to_json()}});
}

// Configured rules that changed since the last start are a submitted bundle.
Status Rollout::submit_changed_seed(const match::Bundle& seed, std::unique_lock<std::mutex>& lock) {
  auto seed_hash = store_.get_meta(kSeedKey);
  if (!seed_hash) return seed_hash.status();
  if (*seed_hash && **seed_hash == seed.hash()) return Status::ok();
  lock.unlock();
  auto sub = submit_impl(seed, "config", true);
  lock.lock();
  if (!sub) return sub.status();
  if (auto s = store_.put_meta({{kSeedKey, seed.hash()}}); !s) return s;
  if (!sub->valid)
    spdlog::error("the configured rules changed but do not validate; keeping bundle {}",
                  state_->active);
  return Status::ok();
}

Expected<std::optional<SubmitResult>> Rollout::submit_changed_config(const match::Bundle& seed) {
  auto seed_hash = store_.get_meta(kSeedKey);
  if (!seed_hash) return seed_hash.status();
  if (*seed_hash && **seed_hash == seed.hash()) return std::optional<SubmitResult>{};
  auto sub = submit_impl(seed, "config", true);
  if (!sub) return sub.status();
  if (auto s = store_.put_meta({{kSeedKey, seed.hash()}}); !s) return s;
  return std::optional<SubmitResult>{std::move(*sub)};
}

}  // namespace vigil::ingest
