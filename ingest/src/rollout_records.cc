#include "rollout_records.h"

#include <rapidjson/document.h>

#include <cstdio>

#include "json_util.h"

namespace vigil::ingest::content {
namespace {

using Writer = JsonWriter;

Expected<rapidjson::Document> parse_record(std::string_view text, const char* what) {
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  if (d.HasParseError() || !d.IsObject())
    return Status::corruption(std::string(what) + " record is damaged");
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

}  // namespace

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

std::string RolloutRecord::to_json() const {
  return write_json([&](Writer& w) {
    w.StartObject();
    kv(w, "policy", rollout_policy_name(policy));
    w.Key("policy_from_api");
    w.Bool(policy_from_api);
    kv(w, "active", active);
    kv(w, "lkg", lkg);
    kv(w, "target", target);
    kv(w, "from", from);
    kv(w, "phase", phase_name(phase));
    kv(w, "stage", stage);
    w.Key("active_since");
    w.Int64(active_since);
    w.EndObject();
  });
}

Expected<RolloutRecord> RolloutRecord::from_json(std::string_view text) {
  auto d = parse_record(text, "rollout");
  if (!d) return d.status();
  RolloutRecord r;
  // A policy the operator did not set is the configured one; an unknown name is ignored.
  if (get_bool(*d, "policy_from_api", false)) {
    if (auto p = parse_rollout_policy(get_str(*d, "policy"))) {
      r.policy = *p;
      r.policy_from_api = true;
    }
  } else if (auto p = parse_rollout_policy(get_str(*d, "policy"))) {
    r.policy = *p;
  }
  r.active = get_u64(*d, "active");
  r.lkg = get_u64(*d, "lkg");
  r.target = get_u64(*d, "target");
  r.from = get_u64(*d, "from");
  r.phase = parse_phase(get_str(*d, "phase"));
  r.stage = get_u64(*d, "stage");
  r.active_since = get_i64(*d, "active_since");
  return r;
}

std::string ActivationRecord::to_json() const {
  return write_json([&](Writer& w) {
    w.StartObject();
    kv(w, "version", version);
    kv(w, "time", static_cast<uint64_t>(time));
    kv(w, "crashes", static_cast<uint64_t>(crashes));
    w.EndObject();
  });
}

Expected<ActivationRecord> ActivationRecord::from_json(std::string_view text) {
  auto d = parse_record(text, "activation");
  if (!d) return d.status();
  ActivationRecord r;
  r.version = get_u64(*d, "version");
  r.time = get_i64(*d, "time");
  r.crashes = get_i64(*d, "crashes");
  return r;
}

std::string BundleInfoRecord::to_json() const {
  return write_json([&](Writer& w) {
    w.StartObject();
    write_members(w);
    w.EndObject();
  });
}

void BundleInfoRecord::write_members(JsonWriter& w) const {
  kv(w, "version", version);
  kv(w, "hash", hash);
  kv(w, "name", name);
  kv(w, "label", label);
  kv(w, "author", author);
  kv(w, "description", description);
  kv(w, "created_at", created_at);
  kv(w, "created_by", created_by);
  kv(w, "status", status);
  w.Key("lenient");
  w.Bool(lenient);
  kv(w, "rules", rules);
  kv(w, "files", files);
  kv(w, "bytes", bytes);
}

Expected<BundleInfoRecord> BundleInfoRecord::from_json(std::string_view text) {
  auto d = parse_record(text, "bundle info");
  if (!d) return d.status();
  BundleInfoRecord r;
  r.version = get_u64(*d, "version");
  r.hash = get_str(*d, "hash");
  r.name = get_str(*d, "name");
  r.label = get_str(*d, "label");
  r.author = get_str(*d, "author");
  r.description = get_str(*d, "description");
  r.created_at = get_str(*d, "created_at");
  r.created_by = get_str(*d, "created_by");
  r.status = get_str(*d, "status");
  r.lenient = get_bool(*d, "lenient", false);
  r.rules = get_u64(*d, "rules");
  r.files = get_u64(*d, "files");
  r.bytes = get_u64(*d, "bytes");
  return r;
}

std::string AuditRecord::to_json() const {
  return write_json([&](Writer& w) {
    w.StartObject();
    kv(w, "seq", seq);
    kv(w, "time", time);
    kv(w, "actor", actor);
    kv(w, "action", action);
    kv(w, "version", version);
    if (from) kv(w, "from", from);
    kv(w, "reason", reason);
    w.EndObject();
  });
}

Expected<AuditRecord> AuditRecord::from_json(std::string_view text) {
  auto d = parse_record(text, "audit");
  if (!d) return d.status();
  AuditRecord r;
  r.seq = get_u64(*d, "seq");
  r.time = get_str(*d, "time");
  r.actor = get_str(*d, "actor");
  r.action = get_str(*d, "action");
  r.version = get_u64(*d, "version");
  r.from = get_u64(*d, "from");
  r.reason = get_str(*d, "reason");
  return r;
}

std::string BootRecord::to_json() const {
  return write_json([&](Writer& w) {
    w.StartObject();
    w.Key("clean");
    w.Bool(clean);
    kv(w, "path", path);
    if (started > 0) kv(w, "started", static_cast<uint64_t>(started));
    if (stopped > 0) kv(w, "stopped", static_cast<uint64_t>(stopped));
    w.EndObject();
  });
}

Expected<BootRecord> BootRecord::from_json(std::string_view text) {
  auto d = parse_record(text, "boot");
  if (!d) return d.status();
  BootRecord r;
  r.clean = get_bool(*d, "clean", true);
  r.path = get_str(*d, "path");
  r.started = get_i64(*d, "started");
  r.stopped = get_i64(*d, "stopped");
  return r;
}

}  // namespace vigil::ingest::content
