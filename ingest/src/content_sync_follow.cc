// ContentSync, writing and following: bundles published in chunks, the deployment's decision
// followed on this replica's shards, the report, the coordinator's turn, the status document.

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>
#include <zstd.h>

#include <algorithm>
#include <charconv>

#include "content_coordinator.h"
#include "content_sync_internal.h"
#include "json_util.h"
#include "vigil/ingest/content_sync.h"
#include "vigil/ingest/pipeline.h"

namespace vigil::ingest {

using Writer = JsonWriter;

Status ContentSync::publish(const match::Bundle& bundle, const std::string& actor, bool lenient) {
  const std::string tar = bundle.to_tar();
  std::string packed(ZSTD_compressBound(tar.size()), '\0');
  const size_t n = ZSTD_compress(packed.data(), packed.size(), tar.data(), tar.size(), 3);
  if (ZSTD_isError(n)) return Status::internal(std::string("zstd: ") + ZSTD_getErrorName(n));
  packed.resize(n);
  ctopic::BundleHeader h;
  h.hash = bundle.hash();
  h.bytes = tar.size();
  h.compressed = packed.size();
  h.chunks = static_cast<uint32_t>(
      std::max<size_t>(1, (packed.size() + options_.chunk_bytes - 1) / options_.chunk_bytes));
  h.actor = actor;
  h.origin = options_.self;
  h.lenient = lenient;
  h.time = clock_.now_ms();
  // The chunks first: a reader that meets the header has them all.
  for (uint32_t i = 0; i < h.chunks; ++i) {
    const size_t at = static_cast<size_t>(i) * options_.chunk_bytes;
    const std::string_view piece =
        std::string_view(packed).substr(at, std::min(options_.chunk_bytes, packed.size() - at));
    if (auto s = produce(ctopic::chunk_key(h.hash, i), piece); !s) return s;
  }
  if (auto s = produce(std::string(ctopic::kBundle) + h.hash, h.to_json()); !s) return s;
  if (auto s = flush(15000); !s) return s;
  spdlog::info("content: published {} ({} bytes in {} chunks) by {}", ctopic::short_name(h.hash),
               h.compressed, h.chunks, actor);
  return Status::ok();
}

Status ContentSync::apply_decision() {
  std::optional<ctopic::Decision> d;
  {
    std::lock_guard lock(shared_->mu);
    d = shared_->decision;
  }
  decision_pending_ = false;
  if (!d) return Status::ok();
  Rollout::Followed f;
  f.seq = d->seq;
  f.policy = d->policy;
  f.phase = std::string(content::phase_name(d->phase));
  f.active = rollout_.version_of(d->active);
  f.target = d->target.empty() ? 0 : rollout_.version_of(d->target);
  f.lkg = d->lkg.empty() ? 0 : rollout_.version_of(d->lkg);
  const std::string mine = options_.self + "/";
  for (const auto& name : d->target_shards) {
    if (!name.starts_with(mine)) continue;
    int i = 0;
    const char* p = name.data() + mine.size();
    if (std::from_chars(p, name.data() + name.size(), i).ec == std::errc())
      f.target_shards.push_back(i);
  }
  auto versions = [&](const std::vector<std::string>& hashes, std::vector<uint64_t>& out) {
    for (const auto& h : hashes)
      if (uint64_t v = rollout_.version_of(h)) out.push_back(v);
  };
  versions(d->quarantined, f.quarantined);
  versions(d->rolled_back, f.rolled_back);
  versions(d->refused, f.refused);
  f.stage = d->stage;
  f.stages = d->stages;
  f.stage_started = d->stage_started;
  f.action = d->action;
  f.actor = d->actor;
  f.reason = d->reason;
  f.coordinator = d->coordinator;
  f.last_breach = d->last_breach;
  std::string why;
  if (f.active == 0) {
    why = "the deployment's active " + ctopic::short_name(d->active) + " is not stored here (yet)";
  } else if (d->phase != content::Phase::kIdle && f.target == 0) {
    why = "the rolled-out " + ctopic::short_name(d->target) + " is not stored here (yet)";
  }
  Status s = f.active ? rollout_.follow(f) : Status::not_found(why);
  if (s && why.empty()) {
    applied_seq_ = d->seq;
    seq_->set(static_cast<double>(d->seq));
  } else {
    decision_pending_ = true;  // again at the next tick (the bundle may arrive)
    if (why.empty()) why = s.to_string();
  }
  std::lock_guard lock(shared_->mu);
  shared_->apply_error = why;
  return why.empty() ? Status::ok() : Status::unavailable(why);
}

void ContentSync::report() {
  ctopic::Report r;
  r.replica = options_.self;
  r.time = clock_.now_ms();
  r.boot = boot_;
  r.applied = applied_seq_;
  if (pipeline_) {
    for (int i = 0; i < pipeline_->workers(); ++i) {
      const Labels l{{"shard", std::to_string(i)}};
      ctopic::ShardReport s;
      s.shard = static_cast<uint32_t>(i);
      if (auto b = pipeline_->bundle(i)) s.bundle = b->hash;
      s.events = metrics_.counter_value("vigil_events_consumed_total", l);
      s.alerts = metrics_.counter_value("vigil_alerts_total", l);
      s.errors = metrics_.counter_value("vigil_match_errors_total", l);
      Histogram& h = metrics_.histogram("vigil_batch_duration_seconds",
                                        "Time to match and persist a batch", {}, l);
      r.bounds = h.bounds();
      s.batches = h.count();
      for (size_t b = 0; b <= h.bounds().size(); ++b) s.latency.push_back(h.cumulative(b));
      r.shards.push_back(std::move(s));
    }
  }
  const Rollout::BootCrash crash = rollout_.boot_crash();
  if (crash.version) {
    r.crashed = rollout_.hash_of(crash.version);
    r.crash_kind = crash.quarantined ? "quarantined" : "rolled_back";
    r.crash_reason = crash.reason;
  }
  (void)produce(std::string(ctopic::kReport) + options_.self, r.to_json());
  last_report_ = r.time;
}

void ContentSync::coordinate() {
  const TimeMs now = clock_.now_ms();
  auto active = rollout_.active();
  const std::string local = active ? active->hash : std::string();
  if (!coord_->has_decision() && !coord_->knows_bundle(local)) {
    // The deployment's first bundle is this replica's: the others must be able to read it.
    static constexpr int64_t kRetryMs = 10000;
    if (now - first_publish_ >= kRetryMs) {
      first_publish_ = now;
      if (auto tar = rollout_.bundle_archive(active->version)) {
        if (auto b = match::Bundle::from_archive(*tar))
          (void)publish(*b, "vigil", rollout_.lenient(active->version));
      }
    }
    return;
  }
  if (auto d = coord_->tick(now, local))
    (void)produce(std::string(ctopic::kDecision), d->to_json());
  for (auto it = shared_->pending_actions.begin(); it != shared_->pending_actions.end(); ++it) {
    const ctopic::Action& a = it->second;
    if (answered_.count(a.id)) continue;
    answered_.insert(a.id);
    ctopic::ActionResult res;
    res.id = a.id;
    res.coordinator = options_.self;
    static constexpr int64_t kExpiryMs = 5 * 60 * 1000;
    if (now - std::min(a.time, now) > kExpiryMs) {
      res.error = "the action expired before a coordinator took it";
    } else if (auto d = coord_->act(a, now)) {
      (void)produce(std::string(ctopic::kDecision), d->to_json());
      res.ok = true;
    } else {
      res.error = d.status().message();
    }
    (void)produce(std::string(ctopic::kResult) + a.id, res.to_json());
    (void)produce(std::string(ctopic::kAction) + a.id, {}, true);
  }
}

std::string ContentSync::state_json() const {
  std::string local = rollout_.status().to_json();
  std::lock_guard lock(shared_->mu);
  const TimeMs now = clock_.now_ms();
  auto bundle = [&](Writer& w, const char* k, const std::string& hash) {
    w.Key(k);
    if (hash.empty()) {
      w.Null();
      return;
    }
    w.StartObject();
    kv(w, "hash", hash);
    kv(w, "version", rollout_.version_of(hash));
    w.EndObject();
  };
  auto strs = [](Writer& w, const char* k, const std::vector<std::string>& v) {
    w.Key(k);
    w.StartArray();
    for (const auto& s : v) w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
    w.EndArray();
  };
  const std::string cluster = write_json([&](Writer& w) {
    w.StartObject();
    kv(w, "replica", options_.self);
    kv(w, "topic", options_.topic);
    kv(w, "coordinator",
       coordinator_ ? options_.self : (shared_->decision ? shared_->decision->coordinator : ""));
    w.Key("this_replica_coordinates");
    w.Bool(coordinator_);
    w.Key("caught_up");
    w.Bool(shared_->caught_up);
    kv(w, "lag", static_cast<uint64_t>(shared_->lag));
    kv(w, "applied", applied_seq_.load());
    kv(w, "not_followed", shared_->apply_error);
    w.Key("decision");
    if (!shared_->decision) {
      w.Null();
    } else {
      const ctopic::Decision& d = *shared_->decision;
      w.StartObject();
      kv(w, "seq", d.seq);
      kv(w, "coordinator", d.coordinator);
      kv(w, "time", format_rfc3339(d.time));
      kv(w, "policy", rollout_policy_name(d.policy));
      kv(w, "state", content::phase_name(d.phase));
      bundle(w, "active", d.active);
      bundle(w, "last_known_good", d.lkg);
      bundle(w, "target", d.target);
      kv(w, "stage", d.stage);
      kv(w, "stages", d.stages);
      strs(w, "target_shards", d.target_shards);
      strs(w, "quarantined", d.quarantined);
      strs(w, "rolled_back", d.rolled_back);
      strs(w, "refused", d.refused);
      kv(w, "last_action", d.action);
      kv(w, "actor", d.actor);
      kv(w, "reason", d.reason);
      kv(w, "last_breach", d.last_breach);
      w.EndObject();
    }
    w.Key("replicas");
    w.StartArray();
    for (const auto& [name, r] : shared_->reports) {
      w.StartObject();
      kv(w, "name", name);
      w.Key("live");
      w.Bool(now - std::min(r.time, now) <= options_.report_timeout_ms);
      kv(w, "reported", format_rfc3339(r.time));
      kv(w, "applied", r.applied);
      kv(w, "crashed", r.crashed);
      w.Key("shards");
      w.StartArray();
      for (const auto& s : r.shards) {
        w.StartObject();
        kv(w, "shard", uint64_t{s.shard});
        bundle(w, "bundle", s.bundle);
        kv(w, "events", s.events);
        kv(w, "alerts", s.alerts);
        w.EndObject();
      }
      w.EndArray();
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  });
  if (local.empty() || local.back() != '}') return local;
  local.pop_back();
  return local + ",\"cluster\":" + cluster + "}";
}

}  // namespace vigil::ingest