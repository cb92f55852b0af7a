#include "content_topic.h"

#include <rapidjson/document.h>

#include <cstdio>

#include "json_util.h"

namespace vigil::ingest::ctopic {
namespace {

using Writer = JsonWriter;

// Reads the members of one record, strictly: the first problem is kept as the reason.
class Fields {
 public:
  Fields(std::string_view text, const char* what) : what_(what) {
    doc_.Parse(text.data(), text.size());
    if (doc_.HasParseError() || !doc_.IsObject()) {
      fail("is not a JSON object");
      return;
    }
    if (u64("v") != kFormat) fail("has format version " + std::to_string(u64("v")) + ", not 1");
  }

  Status status() const {
    return error_.empty() ? Status::ok()
                          : Status::invalid(std::string(what_) + " record " + error_);
  }

  std::string str(const char* k, bool required = false) {
    const rapidjson::Value* v = find(k);
    if (!v) {
      if (required) fail("has no '" + std::string(k) + "'");
      return {};
    }
    if (!v->IsString()) {
      fail("has a '" + std::string(k) + "' that is not a string");
      return {};
    }
    return {v->GetString(), v->GetStringLength()};
  }
  uint64_t u64(const char* k, bool required = false) {
    const rapidjson::Value* v = find(k);
    if (!v) {
      if (required) fail("has no '" + std::string(k) + "'");
      return 0;
    }
    if (!v->IsUint64()) {
      fail("has a '" + std::string(k) + "' that is not a count");
      return 0;
    }
    return v->GetUint64();
  }
  int64_t i64(const char* k) {
    const rapidjson::Value* v = find(k);
    if (!v) return 0;
    if (!v->IsInt64()) {
      fail("has a '" + std::string(k) + "' that is not an integer");
      return 0;
    }
    return v->GetInt64();
  }
  double num(const char* k, double dflt) {
    const rapidjson::Value* v = find(k);
    if (!v) return dflt;
    if (!v->IsNumber()) {
      fail("has a '" + std::string(k) + "' that is not a number");
      return dflt;
    }
    return v->GetDouble();
  }
  bool boolean(const char* k, bool required = false) {
    const rapidjson::Value* v = find(k);
    if (!v) {
      if (required) fail("has no '" + std::string(k) + "'");
      return false;
    }
    if (!v->IsBool()) {
      fail("has a '" + std::string(k) + "' that is not true or false");
      return false;
    }
    return v->GetBool();
  }
  std::vector<std::string> strs(const char* k) {
    std::vector<std::string> out;
    const rapidjson::Value* v = find(k);
    if (!v) return out;
    if (!v->IsArray()) {
      fail("has a '" + std::string(k) + "' that is not a list");
      return out;
    }
    for (const auto& e : v->GetArray()) {
      if (!e.IsString()) {
        fail("has a '" + std::string(k) + "' with an entry that is not a string");
        return {};
      }
      out.emplace_back(e.GetString(), e.GetStringLength());
    }
    return out;
  }
  template <typename T, typename F>
  std::vector<T> list(const rapidjson::Value* v, const char* k, F&& each) {
    std::vector<T> out;
    if (!v) return out;
    if (!v->IsArray()) {
      fail("has a '" + std::string(k) + "' that is not a list");
      return out;
    }
    for (const auto& e : v->GetArray()) {
      T item{};
      if (!each(e, item)) {
        fail("has a '" + std::string(k) + "' with a malformed entry");
        return {};
      }
      out.push_back(std::move(item));
    }
    return out;
  }
  const rapidjson::Value* find(const char* k) const {
    if (!doc_.IsObject()) return nullptr;
    auto it = doc_.FindMember(k);
    return it == doc_.MemberEnd() ? nullptr : &it->value;
  }
  void fail(const std::string& why) {
    if (error_.empty()) error_ = why;
  }
  bool ok() const { return error_.empty(); }

 private:
  rapidjson::Document doc_;
  const char* what_;
  std::string error_;
};

void strs(Writer& w, const char* k, const std::vector<std::string>& v) {
  w.Key(k);
  w.StartArray();
  for (const auto& s : v) w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  w.EndArray();
}
void i64(Writer& w, const char* k, int64_t v) {
  w.Key(k);
  w.Int64(v);
}
void head(Writer& w) {
  w.StartObject();
  kv(w, "v", kFormat);
}

}  // namespace

std::string chunk_key(std::string_view hash, uint32_t n) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%06u", n);
  return std::string(kChunk) + std::string(hash) + "/" + buf;
}

std::string verdict_key(std::string_view hash, std::string_view replica) {
  return std::string(kVerdict) + std::string(hash) + "/" + std::string(replica);
}

bool is_hash(std::string_view s) {
  if (s.size() != 32) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool is_name(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string short_name(std::string_view hash) { return "bundle " + std::string(hash.substr(0, 8)); }

std::string BundleHeader::to_json() const {
  return write_json([&](Writer& w) {
    head(w);
    kv(w, "hash", hash);
    kv(w, "bytes", bytes);
    kv(w, "compressed", compressed);
    kv(w, "chunks", uint64_t{chunks});
    kv(w, "actor", actor);
    kv(w, "origin", origin);
    w.Key("lenient");
    w.Bool(lenient);
    i64(w, "time", time);
    w.EndObject();
  });
}

Expected<BundleHeader> BundleHeader::from_json(std::string_view text) {
  Fields f(text, "bundle");
  BundleHeader h;
  h.hash = f.str("hash", true);
  h.bytes = f.u64("bytes", true);
  h.compressed = f.u64("compressed", true);
  const uint64_t chunks = f.u64("chunks", true);
  h.actor = f.str("actor");
  h.origin = f.str("origin");
  h.lenient = f.boolean("lenient");
  h.time = f.i64("time");
  if (f.ok() && !is_hash(h.hash)) f.fail("has a hash that is not 32 hexadecimal digits");
  if (f.ok() && (chunks == 0 || chunks > 1u << 20)) f.fail("has a chunk count out of range");
  if (!f.ok()) return f.status();
  h.chunks = static_cast<uint32_t>(chunks);
  return h;
}

std::string Verdict::to_json() const {
  return write_json([&](Writer& w) {
    head(w);
    kv(w, "hash", hash);
    kv(w, "replica", replica);
    w.Key("valid");
    w.Bool(valid);
    kv(w, "reason", reason);
    i64(w, "time", time);
    w.EndObject();
  });
}

Expected<Verdict> Verdict::from_json(std::string_view text) {
  Fields f(text, "verdict");
  Verdict v;
  v.hash = f.str("hash", true);
  v.replica = f.str("replica", true);
  v.valid = f.boolean("valid", true);
  v.reason = f.str("reason");
  v.time = f.i64("time");
  if (f.ok() && (!is_hash(v.hash) || !is_name(v.replica))) f.fail("names no bundle or replica");
  if (!f.ok()) return f.status();
  return v;
}

std::string Report::to_json() const {
  return write_json([&](Writer& w) {
    head(w);
    kv(w, "replica", replica);
    i64(w, "time", time);
    i64(w, "boot", boot);
    kv(w, "applied", applied);
    w.Key("bounds");
    w.StartArray();
    for (double b : bounds) w.Double(b);
    w.EndArray();
    w.Key("shards");
    w.StartArray();
    for (const auto& s : shards) {
      w.StartObject();
      kv(w, "shard", uint64_t{s.shard});
      kv(w, "bundle", s.bundle);
      kv(w, "events", s.events);
      kv(w, "alerts", s.alerts);
      kv(w, "errors", s.errors);
      kv(w, "batches", s.batches);
      w.Key("latency");
      w.StartArray();
      for (uint64_t n : s.latency) w.Uint64(n);
      w.EndArray();
      w.EndObject();
    }
    w.EndArray();
    kv(w, "crashed", crashed);
    kv(w, "crash_kind", crash_kind);
    kv(w, "crash_reason", crash_reason);
    kv(w, "api", api);
    w.EndObject();
  });
}

Expected<Report> Report::from_json(std::string_view text) {
  Fields f(text, "report");
  Report r;
  r.replica = f.str("replica", true);
  r.time = f.i64("time");
  r.boot = f.i64("boot");
  r.applied = f.u64("applied");
  r.bounds = f.list<double>(f.find("bounds"), "bounds", [](const rapidjson::Value& e, double& out) {
    if (!e.IsNumber()) return false;
    out = e.GetDouble();
    return true;
  });
  r.shards = f.list<ShardReport>(
      f.find("shards"), "shards", [](const rapidjson::Value& e, ShardReport& s) {
        if (!e.IsObject()) return false;
        auto u = [&](const char* k, uint64_t& out) {
          auto it = e.FindMember(k);
          if (it == e.MemberEnd() || !it->value.IsUint64()) return false;
          out = it->value.GetUint64();
          return true;
        };
        uint64_t shard = 0;
        if (!u("shard", shard) || shard > 65535 || !u("events", s.events) ||
            !u("alerts", s.alerts) || !u("errors", s.errors) || !u("batches", s.batches))
          return false;
        s.shard = static_cast<uint32_t>(shard);
        auto b = e.FindMember("bundle");
        if (b == e.MemberEnd() || !b->value.IsString()) return false;
        s.bundle.assign(b->value.GetString(), b->value.GetStringLength());
        auto l = e.FindMember("latency");
        if (l == e.MemberEnd() || !l->value.IsArray()) return false;
        for (const auto& n : l->value.GetArray()) {
          if (!n.IsUint64()) return false;
          s.latency.push_back(n.GetUint64());
        }
        return true;
      });
  r.crashed = f.str("crashed");
  r.crash_kind = f.str("crash_kind");
  r.crash_reason = f.str("crash_reason");
  r.api = f.str("api");
  if (f.ok() && !is_name(r.replica)) f.fail("names no replica");
  if (!f.ok()) return f.status();
  return r;
}

std::string Decision::to_json() const {
  return write_json([&](Writer& w) {
    head(w);
    kv(w, "seq", seq);
    kv(w, "coordinator", coordinator);
    i64(w, "time", time);
    kv(w, "policy", rollout_policy_name(policy));
    kv(w, "phase", content::phase_name(phase));
    kv(w, "active", active);
    kv(w, "lkg", lkg);
    kv(w, "target", target);
    kv(w, "from", from);
    kv(w, "previous", previous);
    i64(w, "active_since", active_since);
    kv(w, "stage", stage);
    kv(w, "stages", stages);
    i64(w, "stage_started", stage_started);
    i64(w, "started", started);
    strs(w, "target_shards", target_shards);
    strs(w, "quarantined", quarantined);
    strs(w, "rolled_back", rolled_back);
    strs(w, "refused", refused);
    i64(w, "bundles_seen", bundles_seen);
    w.Key("rate_before");
    w.Double(rate_before);
    kv(w, "action", action);
    kv(w, "actor", actor);
    kv(w, "reason", reason);
    kv(w, "last_breach", last_breach);
    w.EndObject();
  });
}

Expected<Decision> Decision::from_json(std::string_view text) {
  Fields f(text, "decision");
  Decision d;
  d.seq = f.u64("seq", true);
  d.coordinator = f.str("coordinator");
  d.time = f.i64("time");
  const std::string policy = f.str("policy", true);
  const std::string phase = f.str("phase", true);
  d.active = f.str("active", true);
  d.lkg = f.str("lkg");
  d.target = f.str("target");
  d.from = f.str("from");
  d.previous = f.str("previous");
  d.active_since = f.i64("active_since");
  d.stage = f.u64("stage");
  d.stages = f.u64("stages");
  d.stage_started = f.i64("stage_started");
  d.started = f.i64("started");
  d.target_shards = f.strs("target_shards");
  d.quarantined = f.strs("quarantined");
  d.rolled_back = f.strs("rolled_back");
  d.refused = f.strs("refused");
  d.bundles_seen = f.find("bundles_seen") ? f.i64("bundles_seen") : -1;
  d.rate_before = f.num("rate_before", -1);
  d.action = f.str("action");
  d.actor = f.str("actor");
  d.reason = f.str("reason");
  d.last_breach = f.str("last_breach");
  if (!f.ok()) return f.status();
  auto p = parse_rollout_policy(policy);
  if (!p) return Status::invalid("decision record has an unknown policy '" + policy + "'");
  d.policy = *p;
  if (phase != "idle" && phase != "rolling" && phase != "paused")
    return Status::invalid("decision record has an unknown phase '" + phase + "'");
  d.phase = content::parse_phase(phase);
  if (!is_hash(d.active)) return Status::invalid("decision record names no active bundle");
  for (const std::string* h : {&d.lkg, &d.target, &d.from, &d.previous}) {
    if (!h->empty() && !is_hash(*h))
      return Status::invalid("decision record names a bundle that is not a hash");
  }
  if (d.phase != content::Phase::kIdle && d.target.empty())
    return Status::invalid("decision record rolls out no bundle");
  return d;
}

std::string Action::to_json() const {
  return write_json([&](Writer& w) {
    head(w);
    kv(w, "id", id);
    kv(w, "action", action);
    kv(w, "hash", hash);
    kv(w, "policy", policy);
    kv(w, "actor", actor);
    kv(w, "reason", reason);
    kv(w, "replica", replica);
    i64(w, "time", time);
    w.EndObject();
  });
}

Expected<Action> Action::from_json(std::string_view text) {
  Fields f(text, "action");
  Action a;
  a.id = f.str("id", true);
  a.action = f.str("action", true);
  a.hash = f.str("hash");
  a.policy = f.str("policy");
  a.actor = f.str("actor");
  a.reason = f.str("reason");
  a.replica = f.str("replica");
  a.time = f.i64("time");
  if (f.ok() && !is_name(a.id)) f.fail("has no usable id");
  if (f.ok() && a.action == "start" && !is_hash(a.hash)) f.fail("starts no bundle (no hash)");
  if (!f.ok()) return f.status();
  return a;
}

std::string ActionResult::to_json() const {
  return write_json([&](Writer& w) {
    head(w);
    kv(w, "id", id);
    w.Key("ok");
    w.Bool(ok);
    kv(w, "error", error);
    kv(w, "coordinator", coordinator);
    w.EndObject();
  });
}

Expected<ActionResult> ActionResult::from_json(std::string_view text) {
  Fields f(text, "result");
  ActionResult r;
  r.id = f.str("id", true);
  r.ok = f.boolean("ok", true);
  r.error = f.str("error");
  r.coordinator = f.str("coordinator");
  if (!f.ok()) return f.status();
  return r;
}

}  // namespace vigil::ingest::ctopic
