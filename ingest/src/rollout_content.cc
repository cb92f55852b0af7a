// Rollout: storing, listing and loading bundles (content/bundle, info, report, hash and
// audit records).

#include <rapidjson/document.h>
#include <spdlog/spdlog.h>

#include <optional>

#include "rollout_internal.h"

namespace vigil::ingest {

using namespace content;
using Writer = JsonWriter;

namespace {

// Per rule id, the scan cost the validation report measured (ns per event).
std::map<std::string, double> rule_costs(const std::string& report_json) {
  std::map<std::string, double> out;
  rapidjson::Document d;
  d.Parse(report_json.data(), report_json.size());
  if (d.HasParseError() || !d.IsObject()) return out;
  auto rules = d.FindMember("rules");
  if (rules == d.MemberEnd() || !rules->value.IsArray()) return out;
  for (const auto& r : rules->value.GetArray()) {
    auto id = r.FindMember("id");
    auto cost = r.FindMember("cost_ns_per_event");
    if (id != r.MemberEnd() && id->value.IsString() && cost != r.MemberEnd() &&
        cost->value.IsNumber()) {
      out[id->value.GetString()] = cost->value.GetDouble();
    }
  }
  return out;
}

}  // namespace

Status set_bundle_status(store::Store& store, uint64_t version, const char* status) {
  const std::string key = num_key(kInfoPrefix, version);
  auto text = store.get_meta(key);
  if (!text || !*text) return Status::ok();
  auto info = BundleInfoRecord::from_json(**text);
  if (!info) return Status::ok();
  info->status = status;
  return store.put_meta({{key, info->to_json()}});
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
  std::optional<BundleInfoRecord> info;
  if (auto text = store_.get_meta(num_key(kInfoPrefix, version)); text && *text) {
    if (auto r = BundleInfoRecord::from_json(**text)) info = std::move(*r);
  }
  const bool lenient = info && info->lenient;
  auto rs = match::compile_bundle(*bundle, *options_.validation.default_mapping, lenient);
  if (!rs) return rs.status();
  auto c = std::make_shared<match::CompiledBundle>();
  c->version = version;
  c->hash = bundle->hash();
  if (info) c->name = info->name;
  if (auto report = store_.get_meta(num_key(kReportPrefix, version)); report && *report)
    c->cost_ns = rule_costs(**report);
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
  if (!r || !r->valid) return r;
  if (options_.clustered) {
    // The deployment's coordinator starts it once every replica has validated it.
    if (!lock.owns_lock()) lock.lock();
    const auto publish = on_stored_;
    lock.unlock();
    if (publish) publish(bundle, actor, lenient);
    return r;
  }
  if (!r->stored) return r;
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
      if (auto r = BundleInfoRecord::from_json(**info)) result.valid = r->status == "valid";
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
  BundleInfoRecord info_record;
  info_record.version = result.version;
  info_record.hash = bundle.hash();
  info_record.name = report.manifest.name;
  info_record.label = report.manifest.label;
  info_record.author = report.manifest.author;
  info_record.description = report.manifest.description;
  info_record.created_at = format_rfc3339(now);
  info_record.created_by = actor;
  info_record.status = result.valid ? "valid" : "refused";
  info_record.lenient = lenient;
  info_record.rules = report.rules.size();
  info_record.files = bundle.files().size();
  info_record.bytes = bundle.total_bytes();
  const std::string info = info_record.to_json();
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
  result.refused = why;
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

void Rollout::set_on_stored(
    std::function<void(const match::Bundle&, const std::string& actor, bool lenient)> on_stored) {
  std::lock_guard lock(mu_);
  on_stored_ = std::move(on_stored);
}

Expected<SubmitResult> Rollout::store_published(const match::Bundle& bundle,
                                                const std::string& actor, bool lenient) {
  std::unique_lock lock(mu_, std::defer_lock);
  return submit_locked(bundle, actor, lenient, lock);
}

uint64_t Rollout::version_of(const std::string& hash) const {
  auto v = store_.get_meta(std::string(kHashPrefix) + hash);
  return v && *v ? num_of_key(**v, "") : 0;
}

std::string Rollout::hash_of(uint64_t version) const {
  auto text = store_.get_meta(num_key(kInfoPrefix, version));
  if (!text || !*text) return {};
  auto info = BundleInfoRecord::from_json(**text);
  return info ? info->hash : std::string();
}

std::string Rollout::bundle_status(uint64_t version) const {
  auto text = store_.get_meta(num_key(kInfoPrefix, version));
  if (!text || !*text) return {};
  auto info = BundleInfoRecord::from_json(**text);
  return info ? info->status : std::string();
}

bool Rollout::lenient(uint64_t version) const {
  auto text = store_.get_meta(num_key(kInfoPrefix, version));
  if (!text || !*text) return false;
  auto info = BundleInfoRecord::from_json(**text);
  return info && info->lenient;
}

std::string Rollout::configured_hash() const {
  auto v = store_.get_meta(kSeedKey);
  return v && *v ? **v : std::string();
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
      auto info = BundleInfoRecord::from_json(v);
      if (!info) continue;
      const uint64_t version = info->version;
      w.StartObject();
      info->write_members(w);
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
  auto record = BundleInfoRecord::from_json(**info);
  if (!record) return record.status();
  std::vector<std::string> files;
  if (*tar) {
    if (auto b = match::Bundle::from_archive(**tar)) {
      for (const auto& f : b->files()) files.push_back(f.path);
    }
  }
  return write_json([&](Writer& w) {
    w.StartObject();
    record->write_members(w);
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

}  // namespace vigil::ingest
