#include "vigil/ingest/rollout.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "vigil/core/event.h"
#include "vigil/core/thread_name.h"
#include "vigil/ingest/pipeline.h"
#include "vigil/match/matcher.h"

namespace vigil::ingest {
namespace {

// Meta keys (the store's "content/" space). Versions and sequence numbers are written as
// 20 decimal digits so that key order is numeric order.
constexpr char kBundlePrefix[] = "content/bundle/";  // version -> tar
constexpr char kInfoPrefix[] = "content/info/";      // version -> info JSON
constexpr char kReportPrefix[] = "content/report/";  // version -> validation report JSON
constexpr char kHashPrefix[] = "content/hash/";      // content hash -> version
constexpr char kAuditPrefix[] = "content/audit/";    // seq -> audit JSON
constexpr char kRolloutKey[] = "content/rollout";    // the rollout record
constexpr char kActivationKey[] = "content/activation";
constexpr char kBootKey[] = "content/boot";
constexpr char kSeedKey[] = "content/seed";  // hash of the last configured seed bundle

std::string num_key(const char* prefix, uint64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020llu", static_cast<unsigned long long>(n));
  return std::string(prefix) + buf;
}

uint64_t num_of_key(std::string_view key, std::string_view prefix) {
  uint64_t n = 0;
  for (char c : key.substr(prefix.size())) n = n * 10 + static_cast<uint64_t>(c - '0');
  return n;
}

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

template <typename F>
std::string write_json(F&& f) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  f(w);
  return std::string(sb.GetString(), sb.GetSize());
}

void kv(Writer& w, const char* k, std::string_view v) {
  w.Key(k);
  w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
}
void kv(Writer& w, const char* k, uint64_t v) {
  w.Key(k);
  w.Uint64(v);
}

Expected<rapidjson::Document> parse_record(const std::string& text, const std::string& what) {
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  if (d.HasParseError() || !d.IsObject()) return Status::corruption(what + " record is damaged");
  return d;
}

uint64_t get_u64(const rapidjson::Value& v, const char* k) {
  auto it = v.FindMember(k);
  return it != v.MemberEnd() && it->value.IsUint64() ? it->value.GetUint64() : 0;
}
int64_t get_i64(const rapidjson::Value& v, const char* k) {
  auto it = v.FindMember(k);
  return it != v.MemberEnd() && it->value.IsInt64() ? it->value.GetInt64() : 0;
}
std::string get_str(const rapidjson::Value& v, const char* k) {
  auto it = v.FindMember(k);
  return it != v.MemberEnd() && it->value.IsString()
             ? std::string(it->value.GetString(), it->value.GetStringLength())
             : std::string();
}
bool get_bool(const rapidjson::Value& v, const char* k, bool dflt) {
  auto it = v.FindMember(k);
  return it != v.MemberEnd() && it->value.IsBool() ? it->value.GetBool() : dflt;
}

// The activation record: which bundle was activated when, and the abnormal ends since.
std::string activation_json(uint64_t version, TimeMs time, int64_t crashes) {
  return write_json([&](Writer& w) {
    w.StartObject();
    kv(w, "version", version);
    kv(w, "time", static_cast<uint64_t>(time));
    kv(w, "crashes", static_cast<uint64_t>(crashes));
    w.EndObject();
  });
}

// Rewrites the status of a stored bundle's info record (valid, refused, rolled_back,
// quarantined); a missing or damaged record is left as it is.
Status set_bundle_status(store::Store& store, const std::string& info_key, const char* status) {
  auto info = store.get_meta(info_key);
  if (!info || !*info) return Status::ok();
  auto doc = parse_record(**info, "bundle info");
  if (!doc || !doc->HasMember("status")) return Status::ok();
  (*doc)["status"].SetString(status, doc->GetAllocator());
  rapidjson::StringBuffer sb;
  Writer w(sb);
  doc->Accept(w);
  return store.put_meta({{info_key, std::string(sb.GetString(), sb.GetSize())}});
}

enum class Phase : uint8_t { kIdle, kRolling, kPaused };
std::string_view phase_name(Phase p) {
  switch (p) {
    case Phase::kIdle:
      return "idle";
    case Phase::kRolling:
      return "rolling";
    case Phase::kPaused:
      return "paused";
  }
  return "idle";
}
Phase parse_phase(std::string_view s) {
  if (s == "rolling") return Phase::kRolling;
  if (s == "paused") return Phase::kPaused;
  return Phase::kIdle;
}

// Per-shard counters a stage's gates compare.
struct ShardSample {
  uint64_t events = 0, alerts = 0, errors = 0, batches = 0;
  std::vector<uint64_t> latency;  // cumulative bucket counts of vigil_batch_duration_seconds
};

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
};

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

Status Rollout::boot(const match::Bundle& seed) {
  std::unique_lock lock(mu_);
  State& st = *state_;
  st.policy = options_.policy;
  const TimeMs now = clock_.now_ms();

  // Was the previous run stopped cleanly? Then record this one as running.
  bool prev_clean = true;
  auto boot = store_.get_meta(kBootKey);
  if (!boot) return boot.status();
  if (*boot) {
    // A record written at another path is a copy of the store (a checkpoint taken while it
    // ran), not a crash of this one.
    if (auto d = parse_record(**boot, "boot"); d) {
      prev_clean = get_bool(*d, "clean", true) || get_str(*d, "path") != store_.path();
    }
  }
  if (auto s = store_.put_meta({{kBootKey, write_json([&](Writer& w) {
                                   w.StartObject();
                                   w.Key("clean");
                                   w.Bool(false);
                                   kv(w, "path", store_.path());
                                   kv(w, "started", static_cast<uint64_t>(now));
                                   w.EndObject();
                                 })}});
      !s) {
    return s;
  }

  // Counters.
  auto last_info = store_.scan_meta(kInfoPrefix, 1, true);
  if (!last_info) return last_info.status();
  if (!last_info->empty()) st.next_version = num_of_key(last_info->front().first, kInfoPrefix) + 1;
  auto last_audit = store_.scan_meta(kAuditPrefix, 1, true);
  if (!last_audit) return last_audit.status();
  if (!last_audit->empty()) st.next_audit = num_of_key(last_audit->front().first, kAuditPrefix) + 1;

  auto rec = store_.get_meta(kRolloutKey);
  if (!rec) return rec.status();
  if (*rec) {
    auto d = parse_record(**rec, "rollout");
    if (!d) return d.status();
    if (get_bool(*d, "policy_from_api", false)) {
      if (auto p = parse_rollout_policy(get_str(*d, "policy"))) {
        st.policy = *p;
        st.policy_from_api = true;
      }
    }
    st.active = get_u64(*d, "active");
    st.lkg = get_u64(*d, "lkg");
    st.target = get_u64(*d, "target");
    st.from = get_u64(*d, "from");
    st.phase = parse_phase(get_str(*d, "phase"));
    st.active_since = get_i64(*d, "active_since");
  }

  if (st.active == 0) {
    // First start: the configured bundle is the first active one, and the known good.
    auto sub = submit_locked(seed, "config", true, lock);
    if (!sub) return sub.status();
    if (!sub->valid) return Status::invalid("the configured rules do not validate: " + sub->json);
    st.active = st.lkg = sub->version;
    st.active_since = now;
    auto c = load_compiled(st.active);
    if (!c) return c.status();
    st.compiled[st.active] = *c;
    if (auto s = store_.put_meta({{kSeedKey, seed.hash()}}); !s) return s;
    if (auto s =
            audit_locked("config", "activated", st.active, 0, "first start: the configured rules");
        !s)
      return s;
  } else {
    auto c = load_compiled(st.active);
    if (!c) {
      // The engine cannot run what it stored (an older engine's content): the known good.
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

    if (st.phase != Phase::kIdle) {
      if (!prev_clean) {
        // A crash during a rollout is a failed gate.
        const uint64_t target = st.target;
        if (auto s = rollback_locked("vigil",
                                     "the process ended abnormally during the rollout of bundle " +
                                         std::to_string(target),
                                     false);
            !s) {
          return s;
        }
        st.notice =
            "bundle " + std::to_string(target) +
            " rolled back: the process ended abnormally during its rollout; running bundle " +
            std::to_string(st.active);
      } else {
        auto t = load_compiled(st.target);
        if (!t) {
          if (auto s = rollback_locked("vigil", "bundle cannot be loaded: " + t.status().message(),
                                       false);
              !s)
            return s;
        } else {
          st.compiled[st.target] = *t;
          st.stage = 0;  // the rollout starts over from its canary stage
        }
      }
    } else if (!prev_clean) {
      auto act = store_.get_meta(kActivationKey);
      if (!act) return act.status();
      if (*act) {
        auto d = parse_record(**act, "activation");
        if (!d) return d.status();
        const uint64_t version = get_u64(*d, "version");
        const int64_t crashes = get_i64(*d, "crashes") + 1;
        const TimeMs at = get_i64(*d, "time");
        if (version == st.active && st.active != st.lkg && st.lkg != 0 &&
            now - at < options_.crash_window_ms) {
          spdlog::warn("bundle {} activated {} s ago: the previous run ended abnormally ({} of {})",
                       version, (now - at) / 1000, crashes, options_.crash_limit);
          if (crashes >= options_.crash_limit) {
            const uint64_t bad = st.active;
            auto lkg = load_compiled(st.lkg);
            if (!lkg) return lkg.status();
            st.compiled[st.lkg] = *lkg;
            st.from = bad;
            st.target = 0;
            st.active = st.lkg;
            st.active_since = now;
            quarantined_->inc();
            if (auto s = set_bundle_status(store_, num_key(kInfoPrefix, bad), "quarantined"); !s)
              return s;
            const std::string why = "the process ended abnormally " + std::to_string(crashes) +
                                    " times within " +
                                    std::to_string(options_.crash_window_ms / 1000) +
                                    " s of activating bundle " + std::to_string(bad);
            if (auto s = audit_locked("vigil", "quarantined", bad, bad, why); !s) return s;
            if (auto s = audit_locked("vigil", "activated", st.active, bad,
                                      "last known good after a crash loop");
                !s)
              return s;
            st.notice = "bundle " + std::to_string(bad) + " quarantined: " + why +
                        "; running the last known good bundle " + std::to_string(st.active);
            spdlog::error("{}", st.notice);
            if (auto s = store_.put_meta({{kActivationKey, activation_json(st.active, now, 0)}});
                !s) {
              return s;
            }
          } else if (auto s =
                         store_.put_meta({{kActivationKey, activation_json(version, at, crashes)}});
                     !s) {
            return s;
          }
        }
      }
    }

    // Configured rules that changed since the last start are a submitted bundle.
    auto seed_hash = store_.get_meta(kSeedKey);
    if (!seed_hash) return seed_hash.status();
    if (!*seed_hash || **seed_hash != seed.hash()) {
      lock.unlock();
      auto sub = submit_impl(seed, "config", true);
      lock.lock();
      if (!sub) return sub.status();
      if (auto s = store_.put_meta({{kSeedKey, seed.hash()}}); !s) return s;
      if (!sub->valid)
        spdlog::error("the configured rules changed but do not validate; keeping bundle {}",
                      st.active);
    }
  }
  active_gauge_->set(static_cast<double>(st.active));
  return persist_state_locked();
}

std::vector<int> Rollout::stage_shards(int n) const {
  std::vector<int> out;
  if (state_->policy == RolloutPolicy::kImmediate) return {std::max(1, n)};
  out.push_back(1);
  for (int pct : options_.stages_percent) {
    const int k = std::clamp(static_cast<int>(std::ceil(n * pct / 100.0)), 1, std::max(1, n));
    if (k > out.back()) out.push_back(k);
  }
  if (out.back() < n) out.push_back(n);
  return out;
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
  (void)store_.put_meta({{kBootKey, write_json([&](Writer& w) {
                            w.StartObject();
                            w.Key("clean");
                            w.Bool(true);
                            kv(w, "path", store_.path());
                            kv(w, "stopped", static_cast<uint64_t>(clock_.now_ms()));
                            w.EndObject();
                          })}});
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

Expected<std::shared_ptr<const match::CompiledBundle>> Rollout::load_compiled(
    uint64_t version) const {
  if (auto it = state_->compiled.find(version); it != state_->compiled.end()) return it->second;
  auto tar = store_.get_meta(num_key(kBundlePrefix, version));
  if (!tar) return tar.status();
  if (!*tar) return Status::not_found("no bundle version " + std::to_string(version));
  auto bundle = match::Bundle::from_archive(**tar);
  if (!bundle)
    return Status::corruption("stored bundle " + std::to_string(version) + ": " +
                              bundle.status().message());
  if (!options_.validation.default_mapping) return Status::invalid("no default mapping configured");
  bool lenient = false;
  if (auto info = store_.get_meta(num_key(kInfoPrefix, version)); info && *info) {
    if (auto d = parse_record(**info, "bundle info")) lenient = get_bool(*d, "lenient", false);
  }
  auto rs = match::compile_bundle(*bundle, *options_.validation.default_mapping, lenient);
  if (!rs) return rs.status();
  auto c = std::make_shared<match::CompiledBundle>();
  c->version = version;
  c->hash = bundle->hash();
  if (auto info = store_.get_meta(num_key(kInfoPrefix, version)); info && *info) {
    if (auto d = parse_record(**info, "bundle info")) c->name = get_str(*d, "name");
  }
  if (auto report = store_.get_meta(num_key(kReportPrefix, version)); report && *report) {
    if (auto d = parse_record(**report, "validation report")) {
      if (auto rules = d->FindMember("rules"); rules != d->MemberEnd() && rules->value.IsArray()) {
        for (const auto& r : rules->value.GetArray()) {
          auto cost = r.FindMember("cost_ns_per_event");
          if (cost != r.MemberEnd() && cost->value.IsNumber())
            c->cost_ns[get_str(r, "id")] = cost->value.GetDouble();
        }
      }
    }
  }
  c->stats =
      std::make_shared<match::RuleStats>((*rs)->rules().size(), (*rs)->correlations().size());
  c->rules = std::move(*rs);
  return std::shared_ptr<const match::CompiledBundle>(std::move(c));
}

std::vector<std::string> Rollout::reference_events() const {
  std::vector<std::string> out = options_.reference_events;
  if (options_.stored_reference_events > 0) {
    store::EventQuery q;
    q.limit = options_.stored_reference_events;
    if (auto page = store_.query_events(q)) {
      for (auto& e : page->events) out.push_back(std::move(e.payload));
    }
  }
  return out;
}

Expected<SubmitResult> Rollout::submit(const match::Bundle& bundle, const std::string& actor) {
  return submit_impl(bundle, actor, false);
}

Expected<SubmitResult> Rollout::submit_impl(const match::Bundle& bundle, const std::string& actor,
                                            bool lenient) {
  std::unique_lock lock(mu_, std::defer_lock);
  auto r = submit_locked(bundle, actor, lenient, lock);
  if (!r || !r->stored || !r->valid) return r;
  if (!lock.owns_lock()) lock.lock();
  State& st = *state_;
  if (st.policy != RolloutPolicy::kPinned && st.phase == Phase::kIdle) {
    if (!pipeline_) {
      st.deferred_start = r->version;
      r->rollout_started = true;
    } else if (auto s = start_locked(r->version, actor,
                                     "a new valid bundle under the " +
                                         std::string(rollout_policy_name(st.policy)) + " policy");
               s) {
      r->rollout_started = true;
    } else {
      spdlog::warn("bundle {} stored but not rolled out: {}", r->version, s.to_string());
    }
  }
  // The JSON document carries rollout_started.
  r->json = write_json([&](Writer& w) {
    w.StartObject();
    kv(w, "version", r->version);
    w.Key("stored");
    w.Bool(r->stored);
    w.Key("valid");
    w.Bool(r->valid);
    w.Key("rollout_started");
    w.Bool(r->rollout_started);
    auto report = store_.get_meta(num_key(kReportPrefix, r->version));
    w.Key("report");
    if (report && *report)
      w.RawValue((*report)->data(), (*report)->size(), rapidjson::kObjectType);
    else
      w.Null();
    w.EndObject();
  });
  return r;
}

// Validates outside the lock (it can take seconds), stores under it. `lenient`: the
// configured rules, where a rule that does not compile is reported, not fatal (as before
// bundles existed).
Expected<SubmitResult> Rollout::submit_locked(const match::Bundle& bundle, const std::string& actor,
                                              bool lenient, std::unique_lock<std::mutex>& lock) {
  SubmitResult result;
  auto existing = store_.get_meta(std::string(kHashPrefix) + bundle.hash());
  if (!existing) return existing.status();
  if (*existing) {
    result.version = num_of_key(**existing, "");
    auto info = store_.get_meta(num_key(kInfoPrefix, result.version));
    if (!info) return info.status();
    if (*info) {
      if (auto d = parse_record(**info, "bundle info"))
        result.valid = get_str(*d, "status") == "valid";
    }
    result.json = write_json([&](Writer& w) {
      w.StartObject();
      kv(w, "version", result.version);
      w.Key("stored");
      w.Bool(false);
      w.Key("valid");
      w.Bool(result.valid);
      w.Key("rollout_started");
      w.Bool(false);
      kv(w, "detail",
         "the same content was stored before as version " + std::to_string(result.version));
      w.EndObject();
    });
    return result;
  }
  match::BundleValidationOptions vo = options_.validation;
  vo.reference_events = reference_events();
  vo.require_all_rules = !lenient;
  const match::BundleReport report = match::validate_bundle(bundle, vo);
  const std::string report_json = report.to_json();
  result.valid = report.ok();
  result.stored = true;

  if (!lock.owns_lock()) lock.lock();
  State& st = *state_;
  result.version = st.next_version++;
  const TimeMs now = clock_.now_ms();
  const std::string info = write_json([&](Writer& w) {
    w.StartObject();
    kv(w, "version", result.version);
    kv(w, "hash", bundle.hash());
    kv(w, "name", report.manifest.name);
    kv(w, "label", report.manifest.label);
    kv(w, "author", report.manifest.author);
    kv(w, "description", report.manifest.description);
    kv(w, "created_at", format_rfc3339(now));
    kv(w, "created_by", actor);
    kv(w, "status", result.valid ? "valid" : "refused");
    w.Key("lenient");
    w.Bool(lenient);
    kv(w, "rules", report.rules.size());
    kv(w, "files", bundle.files().size());
    kv(w, "bytes", bundle.total_bytes());
    w.EndObject();
  });
  if (auto s = store_.put_meta(
          {{num_key(kBundlePrefix, result.version), bundle.to_tar()},
           {num_key(kInfoPrefix, result.version), info},
           {num_key(kReportPrefix, result.version), report_json},
           {std::string(kHashPrefix) + bundle.hash(), std::to_string(result.version)}});
      !s) {
    return s;
  }
  std::string why;
  if (!result.valid) {
    const auto errs = report.all_errors();
    why = errs.empty() ? "no rule" : errs.front();
    if (errs.size() > 1) why += " (and " + std::to_string(errs.size() - 1) + " more)";
  }
  for (const auto& rv : report.rules) {
    for (const auto& w : rv.warnings) {
      if (w.starts_with("not loaded: ")) spdlog::warn("bundle {}: rule {}", result.version, w);
    }
  }
  if (auto s = audit_locked(actor, result.valid ? "stored" : "refused", result.version, 0, why); !s)
    return s;
  spdlog::info("bundle {} ({}) stored by {}: {}", result.version, bundle.hash(), actor,
               result.valid ? "valid" : "refused: " + why);
  result.json = write_json([&](Writer& w) {
    w.StartObject();
    kv(w, "version", result.version);
    w.Key("stored");
    w.Bool(true);
    w.Key("valid");
    w.Bool(result.valid);
    w.Key("rollout_started");
    w.Bool(false);
    w.Key("report");
    w.RawValue(report_json.data(), report_json.size(), rapidjson::kObjectType);
    w.EndObject();
  });
  return result;
}

Status Rollout::persist_state_locked() {
  const State& st = *state_;
  active_gauge_->set(static_cast<double>(st.active));
  target_gauge_->set(static_cast<double>(st.phase == Phase::kIdle ? 0 : st.target));
  stage_gauge_->set(st.phase == Phase::kIdle ? -1.0 : static_cast<double>(st.stage));
  return store_.put_meta({{kRolloutKey, write_json([&](Writer& w) {
                             w.StartObject();
                             kv(w, "policy", rollout_policy_name(st.policy));
                             w.Key("policy_from_api");
                             w.Bool(st.policy_from_api);
                             kv(w, "active", st.active);
                             kv(w, "lkg", st.lkg);
                             kv(w, "target", st.target);
                             kv(w, "from", st.from);
                             kv(w, "phase", phase_name(st.phase));
                             kv(w, "stage", st.stage);
                             w.Key("active_since");
                             w.Int64(st.active_since);
                             w.EndObject();
                           })}});
}

Status Rollout::audit_locked(const std::string& actor, const std::string& action, uint64_t version,
                             uint64_t from, const std::string& reason) {
  State& st = *state_;
  const uint64_t seq = st.next_audit++;
  return store_.put_meta({{num_key(kAuditPrefix, seq), write_json([&](Writer& w) {
                             w.StartObject();
                             kv(w, "seq", seq);
                             kv(w, "time", format_rfc3339(clock_.now_ms()));
                             kv(w, "actor", actor);
                             kv(w, "action", action);
                             kv(w, "version", version);
                             if (from) kv(w, "from", from);
                             kv(w, "reason", reason);
                             w.EndObject();
                           })}});
}

Status Rollout::start_rollout(uint64_t version, const std::string& actor,
                              const std::string& reason) {
  std::lock_guard lock(mu_);
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
  auto d = parse_record(**info, "bundle info");
  if (!d) return d.status();
  const std::string status = get_str(*d, "status");
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
  if (auto s = store_.put_meta({{kActivationKey, activation_json(version, clock_.now_ms(), 0)}});
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
    const uint64_t want = static_cast<int>(i) < k ? st.target : st.active;
    if (st.shard_versions[i] == want) continue;
    st.shard_versions[i] = want;
    pipeline_->set_bundle(static_cast<int>(i), st.compiled.at(want));
  }
}

std::optional<std::string> Rollout::breached_gate_locked() {
  State& st = *state_;
  if (st.stage_start.size() != st.shard_versions.size()) return std::nullopt;
  uint64_t errors = 0, events_new = 0, alerts_new = 0, events_old = 0, alerts_old = 0, batches = 0;
  std::vector<uint64_t> buckets;
  std::vector<double> bounds;
  for (size_t i = 0; i < st.shard_versions.size(); ++i) {
    const Labels l{{"shard", std::to_string(i)}};
    const ShardSample& s0 = st.stage_start[i];
    const uint64_t ev = metrics_.counter_value("vigil_events_consumed_total", l) - s0.events;
    const uint64_t al = metrics_.counter_value("vigil_alerts_total", l) - s0.alerts;
    if (st.shard_versions[i] != st.target) {
      events_old += ev;
      alerts_old += al;
      continue;
    }
    events_new += ev;
    alerts_new += al;
    errors += metrics_.counter_value("vigil_match_errors_total", l) - s0.errors;
    Histogram& h = metrics_.histogram("vigil_batch_duration_seconds",
                                      "Time to match and persist a batch", {}, l);
    bounds = h.bounds();
    buckets.resize(bounds.size() + 1, 0);
    for (size_t b = 0; b <= bounds.size() && b < s0.latency.size(); ++b)
      buckets[b] += h.cumulative(b) - s0.latency[b];
    batches += h.count() - s0.batches;
  }
  if (errors > options_.max_match_errors) {
    return "processing errors: " + std::to_string(errors) +
           " matching errors on the shards running bundle " + std::to_string(st.target) +
           " (allowed " + std::to_string(options_.max_match_errors) + ")";
  }
  if (batches >= options_.min_batches_for_latency && !bounds.empty()) {
    const double want = 0.99 * static_cast<double>(batches);
    double p99 = bounds.back() * 2;  // past the last bound
    for (size_t b = 0; b < bounds.size(); ++b) {
      if (static_cast<double>(buckets[b]) >= want) {
        p99 = bounds[b];
        break;
      }
    }
    if (p99 * 1000 > options_.max_batch_p99_ms) {
      return "latency: p99 batch duration " + std::to_string(static_cast<int64_t>(p99 * 1000)) +
             " ms on the shards running bundle " + std::to_string(st.target) + " (allowed " +
             std::to_string(static_cast<int64_t>(options_.max_batch_p99_ms)) + " ms)";
    }
  }
  if (events_new >= options_.min_events_for_flood && alerts_new >= options_.min_alerts_for_flood) {
    double baseline = st.rate_before;
    if (events_old >= options_.min_events_for_flood)
      baseline = static_cast<double>(alerts_old) / static_cast<double>(events_old);
    baseline = std::max(baseline, options_.min_baseline_alert_rate);
    const double rate = static_cast<double>(alerts_new) / static_cast<double>(events_new);
    if (rate > options_.max_alert_ratio * baseline) {
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "alert flood: %.4f alerts per event on bundle %llu against %.4f on bundle %llu "
                    "(more than %gx)",
                    rate, static_cast<unsigned long long>(st.target), baseline,
                    static_cast<unsigned long long>(st.from), options_.max_alert_ratio);
      return std::string(buf);
    }
  }
  return std::nullopt;
}

void Rollout::tick() {
  std::lock_guard lock(mu_);
  State& st = *state_;
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
  (void)store_.put_meta({{kActivationKey, activation_json(st.active, st.active_since, 0)}});
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
  (void)set_bundle_status(store_, num_key(kInfoPrefix, bad),
                          quarantine ? "quarantined" : "rolled_back");
  (void)store_.put_meta({{kActivationKey, activation_json(st.active, st.active_since, 0)}});
  spdlog::warn("rollout of bundle {} rolled back to bundle {} by {}: {}", bad, st.active, actor,
               reason);
  if (auto s = audit_locked(actor, "rolled_back", bad, st.active, reason); !s) return s;
  return persist_state_locked();
}

Status Rollout::promote(const std::string& actor, const std::string& reason) {
  std::lock_guard lock(mu_);
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
  State& st = *state_;
  if (st.phase != Phase::kIdle)
    return rollback_locked(actor, reason.empty() ? "by an operator" : reason, false);
  // Nothing rolling: back to the bundle that was active before this one.
  if (!pipeline_) return Status::unavailable("the pipeline is not running");
  auto prev = store_.scan_meta(kAuditPrefix, SIZE_MAX, true);
  if (!prev) return prev.status();
  uint64_t back = 0;
  for (const auto& [k, v] : *prev) {
    auto d = parse_record(v, "audit");
    if (!d) continue;
    const std::string action = get_str(*d, "action");
    if ((action == "completed" || action == "activated") && get_u64(*d, "version") == st.active &&
        get_u64(*d, "from")) {
      back = get_u64(*d, "from");
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
  (void)store_.put_meta({{kActivationKey, activation_json(st.active, st.active_since, 0)}});
  if (auto s =
          audit_locked(actor, "rolled_back", bad, back, reason.empty() ? "by an operator" : reason);
      !s)
    return s;
  return persist_state_locked();
}

Status Rollout::set_policy(RolloutPolicy policy, const std::string& actor) {
  std::lock_guard lock(mu_);
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

Expected<std::string> Rollout::list_json() const {
  auto infos = store_.scan_meta(kInfoPrefix, SIZE_MAX, true);
  if (!infos) return infos.status();
  std::lock_guard lock(mu_);
  const State& st = *state_;
  return write_json([&](Writer& w) {
    w.StartObject();
    w.Key("bundles");
    w.StartArray();
    for (const auto& [k, v] : *infos) {
      auto d = parse_record(v, "bundle info");
      if (!d) continue;
      const uint64_t version = get_u64(*d, "version");
      w.StartObject();
      for (auto m = d->MemberBegin(); m != d->MemberEnd(); ++m) {
        w.Key(m->name.GetString());
        m->value.Accept(w);
      }
      w.Key("active");
      w.Bool(version == st.active);
      w.Key("last_known_good");
      w.Bool(version == st.lkg);
      w.Key("rolling_out");
      w.Bool(st.phase != Phase::kIdle && version == st.target);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  });
}

Expected<std::string> Rollout::bundle_json(uint64_t version) const {
  auto info = store_.get_meta(num_key(kInfoPrefix, version));
  if (!info) return info.status();
  if (!*info) return Status::not_found("no bundle version " + std::to_string(version));
  auto report = store_.get_meta(num_key(kReportPrefix, version));
  if (!report) return report.status();
  auto tar = store_.get_meta(num_key(kBundlePrefix, version));
  if (!tar) return tar.status();
  auto d = parse_record(**info, "bundle info");
  if (!d) return d.status();
  std::vector<std::string> files;
  if (*tar) {
    if (auto b = match::Bundle::from_archive(**tar)) {
      for (const auto& f : b->files()) files.push_back(f.path);
    }
  }
  return write_json([&](Writer& w) {
    w.StartObject();
    for (auto m = d->MemberBegin(); m != d->MemberEnd(); ++m) {
      w.Key(m->name.GetString());
      m->value.Accept(w);
    }
    w.Key("file_list");
    w.StartArray();
    for (const auto& f : files) w.String(f);
    w.EndArray();
    w.Key("report");
    if (*report)
      w.RawValue((*report)->data(), (*report)->size(), rapidjson::kObjectType);
    else
      w.Null();
    w.EndObject();
  });
}

Expected<std::string> Rollout::bundle_archive(uint64_t version) const {
  auto tar = store_.get_meta(num_key(kBundlePrefix, version));
  if (!tar) return tar.status();
  if (!*tar) return Status::not_found("no bundle version " + std::to_string(version));
  return std::move(**tar);
}

Expected<std::string> Rollout::audit_json(size_t limit) const {
  auto entries = store_.scan_meta(kAuditPrefix, limit, true);
  if (!entries) return entries.status();
  return write_json([&](Writer& w) {
    w.StartObject();
    w.Key("audit");
    w.StartArray();
    for (const auto& [k, v] : *entries) w.RawValue(v.data(), v.size(), rapidjson::kObjectType);
    w.EndArray();
    w.EndObject();
  });
}

Expected<std::string> Rollout::state_json() const {
  std::lock_guard lock(mu_);
  const State& st = *state_;
  const auto shards = stage_shards(static_cast<int>(st.shard_versions.size()));
  return write_json([&](Writer& w) {
    w.StartObject();
    kv(w, "policy", rollout_policy_name(st.policy));
    kv(w, "state", phase_name(st.phase));
    kv(w, "active", st.active);
    kv(w, "active_since", st.active_since > 0 ? format_rfc3339(st.active_since) : std::string());
    kv(w, "last_known_good", st.lkg);
    w.Key("target");
    if (st.phase == Phase::kIdle)
      w.Null();
    else
      w.Uint64(st.target);
    w.Key("stage");
    if (st.phase == Phase::kIdle) {
      w.Null();
    } else {
      w.StartObject();
      kv(w, "index", st.stage);
      kv(w, "stages", shards.size());
      kv(w, "shards", static_cast<uint64_t>(shards[std::min(st.stage, shards.size() - 1)]));
      kv(w, "started", format_rfc3339(st.stage_started));
      w.Key("hold_ms");
      w.Int64(options_.stage_ms);
      w.EndObject();
    }
    kv(w, "last_breach", st.last_breach);
    kv(w, "notice", st.notice);
    w.Key("shards");
    w.StartArray();
    for (size_t i = 0; i < st.shard_versions.size(); ++i) {
      w.StartObject();
      kv(w, "shard", i);
      auto b = pipeline_ ? pipeline_->bundle(static_cast<int>(i)) : nullptr;
      kv(w, "bundle", b ? b->version : 0);
      kv(w, "assigned", st.shard_versions[i]);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  });
}

Expected<std::string> Rollout::dry_run(uint64_t version, TimeMs since, TimeMs until,
                                       size_t max_events) const {
  std::shared_ptr<const match::CompiledBundle> candidate, current;
  {
    std::lock_guard lock(mu_);
    current = state_->compiled.at(state_->active);
    auto info = store_.get_meta(num_key(kInfoPrefix, version));
    if (!info) return info.status();
    if (!*info) return Status::not_found("no bundle version " + std::to_string(version));
    auto d = parse_record(**info, "bundle info");
    if (!d) return d.status();
    if (get_str(*d, "status") == "refused") {
      return Status::invalid("bundle " + std::to_string(version) +
                             " was refused by validation and cannot run");
    }
    auto c = load_compiled(version);
    if (!c) return c.status();
    candidate = *c;
  }
  struct RuleCount {
    std::string title;
    bool in_active = false, in_candidate = false;
    uint64_t active = 0, candidate = 0, gained = 0, lost = 0;
    std::vector<std::string> gained_samples, lost_samples;
  };
  std::map<std::string, RuleCount> counts;
  for (const auto& r : current->rules->rules()) {
    auto& c = counts[r.id];
    c.title = r.title;
    c.in_active = true;
  }
  for (const auto& r : candidate->rules->rules()) {
    auto& c = counts[r.id];
    c.title = r.title;
    c.in_candidate = true;
  }
  auto m_active = match::Matcher::create(current->rules);
  if (!m_active) return m_active.status();
  auto m_candidate = match::Matcher::create(candidate->rules);
  if (!m_candidate) return m_candidate.status();
  EventParser parser;
  Event event;
  std::vector<uint32_t> hits;
  std::vector<std::string> a_ids, c_ids;
  uint64_t scanned = 0, invalid = 0;
  bool partial = false;
  auto ids_of = [&](const match::CompiledBundle& b, match::Matcher& m, const std::string& payload,
                    std::vector<std::string>& out) {
    out.clear();
    if (parser.parse(payload, b.rules->fields(), event) != ParseError::kNone) return false;
    hits.clear();
    if (!m.match(event, hits)) return true;
    for (uint32_t h : hits) out.push_back(b.rules->rules()[h].id);
    std::sort(out.begin(), out.end());
    return true;
  };
  auto sample = [](const store::StoredEvent& e) {
    return e.stream + "/" + std::to_string(e.partition) + "@" + std::to_string(e.offset);
  };
  auto s = store_.scan_events(since, until, [&](const store::StoredEvent& e) {
    if (scanned >= max_events) {
      partial = true;
      return false;
    }
    ++scanned;
    if (!ids_of(*current, **m_active, e.payload, a_ids) ||
        !ids_of(*candidate, **m_candidate, e.payload, c_ids)) {
      ++invalid;
      return true;
    }
    for (const auto& id : a_ids) {
      auto& c = counts[id];
      ++c.active;
      if (!std::binary_search(c_ids.begin(), c_ids.end(), id)) {
        ++c.lost;
        if (c.lost_samples.size() < 5) c.lost_samples.push_back(sample(e));
      }
    }
    for (const auto& id : c_ids) {
      auto& c = counts[id];
      ++c.candidate;
      if (!std::binary_search(a_ids.begin(), a_ids.end(), id)) {
        ++c.gained;
        if (c.gained_samples.size() < 5) c.gained_samples.push_back(sample(e));
      }
    }
    return true;
  });
  if (!s) return s;
  uint64_t total_active = 0, total_candidate = 0, total_gained = 0, total_lost = 0;
  for (const auto& [id, c] : counts) {
    total_active += c.active;
    total_candidate += c.candidate;
    total_gained += c.gained;
    total_lost += c.lost;
  }
  return write_json([&](Writer& w) {
    w.StartObject();
    kv(w, "version", version);
    kv(w, "active", current->version);
    kv(w, "since", since == INT64_MIN ? std::string() : format_rfc3339(since));
    kv(w, "until", until == INT64_MAX ? std::string() : format_rfc3339(until));
    kv(w, "events", scanned);
    kv(w, "invalid_events", invalid);
    w.Key("partial");
    w.Bool(partial);
    kv(w, "correlations", "not evaluated (detections only)");
    w.Key("totals");
    w.StartObject();
    kv(w, "active_matches", total_active);
    kv(w, "candidate_matches", total_candidate);
    kv(w, "gained", total_gained);
    kv(w, "lost", total_lost);
    w.EndObject();
    w.Key("rules");
    w.StartArray();
    for (const auto& [id, c] : counts) {
      w.StartObject();
      kv(w, "id", id);
      kv(w, "title", c.title);
      const char* status = c.in_active && c.in_candidate
                               ? (c.gained || c.lost ? "changed" : "unchanged")
                           : c.in_candidate ? "new"
                                            : "vanished";
      kv(w, "status", status);
      kv(w, "active_matches", c.active);
      kv(w, "candidate_matches", c.candidate);
      kv(w, "gained", c.gained);
      kv(w, "lost", c.lost);
      w.Key("gained_samples");
      w.StartArray();
      for (const auto& x : c.gained_samples) w.String(x);
      w.EndArray();
      w.Key("lost_samples");
      w.StartArray();
      for (const auto& x : c.lost_samples) w.String(x);
      w.EndArray();
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  });
}

}  // namespace vigil::ingest
