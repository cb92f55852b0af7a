#include "vigil/output/alert_format.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <array>
#include <set>
#include <string>
#include <vector>

#include "vigil/core/time.h"

#ifndef VIGIL_VERSION
#define VIGIL_VERSION "0.0.0"
#endif

namespace vigil::output {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;
constexpr char kEcsVersion[] = "8.11.0";
constexpr char kOcsfVersion[] = "1.3.0";
constexpr char kAttackVersion[] = "v16";

struct Level {
  std::string_view name;
  int ocsf;  // severity_id: 1 informational .. 5 critical, 0 unknown
  int risk;  // ECS event.risk_score, as Elastic maps rule severities
  int cef;   // CEF severity 0-10
};
constexpr std::array<Level, 5> kLevels{{{"informational", 1, 21, 1},
                                        {"low", 2, 21, 3},
                                        {"medium", 3, 47, 5},
                                        {"high", 4, 73, 8},
                                        {"critical", 5, 99, 10}}};
Level level_of(std::string_view name) {
  for (const Level& l : kLevels)
    if (l.name == name) return l;
  return {"unknown", 0, 0, 0};
}
constexpr std::array<std::string_view, 6> kOcsfSeverity{"Unknown", "Informational", "Low",
                                                        "Medium",  "High",          "Critical"};

struct Tactic {
  std::string_view tag, id, name;
};
constexpr std::array<Tactic, 14> kTactics{{
    {"reconnaissance", "TA0043", "Reconnaissance"},
    {"resource-development", "TA0042", "Resource Development"},
    {"initial-access", "TA0001", "Initial Access"},
    {"execution", "TA0002", "Execution"},
    {"persistence", "TA0003", "Persistence"},
    {"privilege-escalation", "TA0004", "Privilege Escalation"},
    {"defense-evasion", "TA0005", "Defense Evasion"},
    {"credential-access", "TA0006", "Credential Access"},
    {"discovery", "TA0007", "Discovery"},
    {"lateral-movement", "TA0008", "Lateral Movement"},
    {"collection", "TA0009", "Collection"},
    {"command-and-control", "TA0011", "Command and Control"},
    {"exfiltration", "TA0010", "Exfiltration"},
    {"impact", "TA0040", "Impact"},
}};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// The parsed alert and its members (empty when absent or of another type).
struct Alert {
  rapidjson::Document doc;
  std::string_view id, time, detected_at, rule_id, title, level, host;
  std::vector<std::string_view> tags;
  const rapidjson::Value* rule = nullptr;
  const rapidjson::Value* matched = nullptr;
  const rapidjson::Value* event = nullptr;
  const rapidjson::Value* source = nullptr;
  const rapidjson::Value* bundle = nullptr;
  const rapidjson::Value* correlation = nullptr;
};

std::string_view str(const rapidjson::Value& o, const char* key) {
  if (!o.IsObject()) return {};
  const auto it = o.FindMember(key);
  if (it == o.MemberEnd() || !it->value.IsString()) return {};
  return {it->value.GetString(), it->value.GetStringLength()};
}
const rapidjson::Value* member(const rapidjson::Value& o, const char* key) {
  if (!o.IsObject()) return nullptr;
  const auto it = o.FindMember(key);
  return it == o.MemberEnd() ? nullptr : &it->value;
}

Expected<Alert> parse(std::string_view json) {
  Alert a;
  a.doc.Parse(json.data(), json.size());
  if (a.doc.HasParseError() || !a.doc.IsObject())
    return Status::invalid("not an alert document: not a JSON object");
  a.id = str(a.doc, "id");
  a.time = str(a.doc, "time");
  a.detected_at = str(a.doc, "detected_at");
  a.host = str(a.doc, "host");
  a.rule = member(a.doc, "rule");
  if (a.id.empty() || !a.rule || !a.rule->IsObject())
    return Status::invalid("not an alert document: no id or rule");
  a.rule_id = str(*a.rule, "id");
  a.title = str(*a.rule, "title");
  a.level = str(*a.rule, "level");
  if (const auto* t = member(*a.rule, "tags"); t && t->IsArray())
    for (const auto& v : t->GetArray())
      if (v.IsString()) a.tags.emplace_back(v.GetString(), v.GetStringLength());
  a.matched = member(a.doc, "matched");
  a.event = member(a.doc, "event");
  a.source = member(a.doc, "source");
  a.bundle = member(a.doc, "bundle");
  a.correlation = member(a.doc, "correlation");
  if (a.detected_at.empty()) a.detected_at = a.time;
  return a;
}

void key(Writer& w, std::string_view k) {
  w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
}
void string(Writer& w, std::string_view v) {
  w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
}
void kv(Writer& w, std::string_view k, std::string_view v) {
  key(w, k);
  string(w, v);
}
std::string to_json(const rapidjson::Value& v) {
  rapidjson::StringBuffer b;
  Writer w(b);
  v.Accept(w);
  return {b.GetString(), b.GetSize()};
}
int64_t epoch_ms(std::string_view rfc3339) {
  const auto t = parse_rfc3339(rfc3339);
  return t ? *t : 0;
}

struct Attack {
  std::vector<AttackTactic> tactics;
  std::vector<std::string> techniques;
};
Attack attack_of(const Alert& a) {
  Attack out;
  std::set<std::string> seen;
  for (std::string_view t : a.tags) {
    if (auto tactic = attack_tactic(t); tactic && seen.insert(std::string(tactic->id)).second)
      out.tactics.push_back(*tactic);
    if (auto tech = attack_technique(t); tech && seen.insert(*tech).second)
      out.techniques.push_back(*tech);
  }
  return out;
}

// True for an event already in ECS (Winlogbeat, Elastic Agent): its fields join the alert.
bool is_ecs(const rapidjson::Value* e) {
  if (!e || !e->IsObject()) return false;
  const auto* ecs = member(*e, "ecs");
  const auto* ev = member(*e, "event");
  return (ecs && ecs->IsObject()) || (ev && ev->IsObject() && member(*e, "@timestamp"));
}

void write_ecs(Writer& w, const Alert& a) {
  const Level lvl = level_of(a.level);
  const Attack att = attack_of(a);
  const bool ecs_event = is_ecs(a.event);
  static const std::set<std::string_view> kOwn{"@timestamp", "ecs",  "event", "rule",
                                               "threat",     "tags", "vigil", "host"};
  w.StartObject();
  kv(w, "@timestamp", a.time.empty() ? a.detected_at : a.time);
  key(w, "ecs");
  w.StartObject();
  kv(w, "version", kEcsVersion);
  w.EndObject();
  key(w, "event");
  w.StartObject();
  kv(w, "kind", "signal");
  kv(w, "id", a.id);
  kv(w, "created", a.detected_at);
  kv(w, "module", "vigil");
  kv(w, "dataset", "vigil.alert");
  key(w, "category");
  w.StartArray();
  string(w, "intrusion_detection");
  w.EndArray();
  key(w, "type");
  w.StartArray();
  string(w, "info");
  w.EndArray();
  key(w, "severity");
  w.Int(lvl.ocsf);
  key(w, "risk_score");
  w.Double(lvl.risk);
  if (a.event) {
    key(w, "original");
    string(w, to_json(*a.event));
  }
  if (ecs_event) {  // the source event's event.* (action, code, provider...), never ours
    static const std::set<std::string_view> kEventOwn{
        "kind",     "id",   "created",  "module",     "dataset",
        "category", "type", "severity", "risk_score", "original"};
    if (const auto* ev = member(*a.event, "event"); ev && ev->IsObject())
      for (const auto& m : ev->GetObject())
        if (!kEventOwn.count({m.name.GetString(), m.name.GetStringLength()})) {
          w.Key(m.name.GetString(), m.name.GetStringLength());
          m.value.Accept(w);
        }
  }
  w.EndObject();
  key(w, "rule");
  w.StartObject();
  kv(w, "id", a.rule_id);
  kv(w, "uuid", a.rule_id);
  kv(w, "name", a.title);
  kv(w, "ruleset", "sigma");
  if (a.bundle && a.bundle->IsUint64()) kv(w, "version", std::to_string(a.bundle->GetUint64()));
  if (const auto d = str(*a.rule, "description"); !d.empty()) kv(w, "description", d);
  w.EndObject();
  key(w, "host");
  w.StartObject();
  bool host_named = false;
  if (ecs_event)
    if (const auto* h = member(*a.event, "host"); h && h->IsObject())
      for (const auto& m : h->GetObject()) {
        host_named |= std::string_view(m.name.GetString(), m.name.GetStringLength()) == "name";
        w.Key(m.name.GetString(), m.name.GetStringLength());
        m.value.Accept(w);
      }
  if (!host_named) kv(w, "name", a.host);
  w.EndObject();
  if (!att.tactics.empty() || !att.techniques.empty()) {
    key(w, "threat");
    w.StartObject();
    kv(w, "framework", "MITRE ATT&CK");
    if (!att.tactics.empty()) {
      key(w, "tactic");
      w.StartObject();
      key(w, "id");
      w.StartArray();
      for (const auto& t : att.tactics) string(w, t.id);
      w.EndArray();
      key(w, "name");
      w.StartArray();
      for (const auto& t : att.tactics) string(w, t.name);
      w.EndArray();
      w.EndObject();
    }
    if (!att.techniques.empty()) {
      key(w, "technique");
      w.StartObject();
      key(w, "id");
      w.StartArray();
      std::set<std::string> parents;
      for (const auto& t : att.techniques) {
        const std::string parent = t.substr(0, t.find('.'));
        if (parents.insert(parent).second) string(w, parent);
      }
      w.EndArray();
      std::vector<std::string_view> subs;
      for (const auto& t : att.techniques)
        if (t.find('.') != std::string::npos) subs.push_back(t);
      if (!subs.empty()) {
        key(w, "subtechnique");
        w.StartObject();
        key(w, "id");
        w.StartArray();
        for (auto s : subs) string(w, s);
        w.EndArray();
        w.EndObject();
      }
      w.EndObject();
    }
    w.EndObject();
  }
  key(w, "tags");
  w.StartArray();
  for (auto t : a.tags) string(w, t);
  w.EndArray();
  key(w, "vigil");
  w.StartObject();
  if (a.bundle) {
    key(w, "bundle");
    a.bundle->Accept(w);
  }
  if (a.source) {
    key(w, "source");
    a.source->Accept(w);
  }
  if (a.matched) {
    key(w, "matched");
    a.matched->Accept(w);
  }
  if (a.correlation) {
    key(w, "correlation");
    a.correlation->Accept(w);
  }
  w.EndObject();
  if (ecs_event)  // the event's other fields: process.*, user.*, winlog.*, ...
    for (const auto& m : a.event->GetObject())
      if (!kOwn.count({m.name.GetString(), m.name.GetStringLength()})) {
        w.Key(m.name.GetString(), m.name.GetStringLength());
        m.value.Accept(w);
      }
  w.EndObject();
}

void write_ocsf(Writer& w, const Alert& a) {
  const Level lvl = level_of(a.level);
  const Attack att = attack_of(a);
  const int64_t created = epoch_ms(a.detected_at);
  const int64_t seen = a.time.empty() ? created : epoch_ms(a.time);
  w.StartObject();
  key(w, "activity_id");
  w.Int(1);
  kv(w, "activity_name", "Create");
  key(w, "category_uid");
  w.Int(2);
  kv(w, "category_name", "Findings");
  key(w, "class_uid");
  w.Int(2004);
  kv(w, "class_name", "Detection Finding");
  key(w, "type_uid");
  w.Int64(200401);
  kv(w, "type_name", "Detection Finding: Create");
  key(w, "severity_id");
  w.Int(lvl.ocsf);
  kv(w, "severity", kOcsfSeverity[static_cast<size_t>(lvl.ocsf)]);
  key(w, "status_id");
  w.Int(1);
  kv(w, "status", "New");
  key(w, "is_alert");
  w.Bool(true);
  key(w, "time");
  w.Int64(created);
  key(w, "start_time");
  w.Int64(seen);
  key(w, "end_time");
  w.Int64(seen);
  kv(w, "message", std::string(a.title) + (a.host.empty() ? "" : " on " + std::string(a.host)));
  key(w, "metadata");
  w.StartObject();
  kv(w, "version", kOcsfVersion);
  kv(w, "uid", a.id);
  key(w, "product");
  w.StartObject();
  kv(w, "vendor_name", "vigil");
  kv(w, "name", "vigil");
  kv(w, "version", VIGIL_VERSION);
  w.EndObject();
  w.EndObject();
  key(w, "finding_info");
  w.StartObject();
  kv(w, "uid", a.id);
  kv(w, "title", a.title);
  if (const auto d = str(*a.rule, "description"); !d.empty()) kv(w, "desc", d);
  key(w, "created_time");
  w.Int64(created);
  key(w, "first_seen_time");
  w.Int64(seen);
  key(w, "last_seen_time");
  w.Int64(seen);
  key(w, "types");
  w.StartArray();
  string(w, a.correlation ? "Sigma correlation" : "Sigma");
  w.EndArray();
  key(w, "analytic");
  w.StartObject();
  kv(w, "uid", a.rule_id);
  kv(w, "name", a.title);
  key(w, "type_id");
  w.Int(1);
  kv(w, "type", "Rule");
  if (a.bundle && a.bundle->IsUint64()) kv(w, "version", std::to_string(a.bundle->GetUint64()));
  w.EndObject();
  if (!att.tactics.empty() || !att.techniques.empty()) {
    key(w, "attacks");
    w.StartArray();
    // One attack per technique with the rule's first tactic; tactics alone when no technique.
    const AttackTactic* first = att.tactics.empty() ? nullptr : &att.tactics.front();
    auto tactic = [&](const AttackTactic& t) {
      key(w, "tactic");
      w.StartObject();
      kv(w, "uid", t.id);
      kv(w, "name", t.name);
      w.EndObject();
    };
    for (const auto& tech : att.techniques) {
      w.StartObject();
      if (first) tactic(*first);
      const size_t dot = tech.find('.');
      key(w, "technique");
      w.StartObject();
      kv(w, "uid", tech.substr(0, dot));
      w.EndObject();
      if (dot != std::string::npos) {
        key(w, "sub_technique");
        w.StartObject();
        kv(w, "uid", tech);
        w.EndObject();
      }
      kv(w, "version", kAttackVersion);
      w.EndObject();
    }
    if (att.techniques.empty())
      for (const auto& t : att.tactics) {
        w.StartObject();
        tactic(t);
        kv(w, "version", kAttackVersion);
        w.EndObject();
      }
    w.EndArray();
  }
  w.EndObject();
  key(w, "evidences");
  w.StartArray();
  w.StartObject();
  key(w, "data");
  w.StartObject();
  if (a.matched) {
    key(w, "matched");
    a.matched->Accept(w);
  }
  if (a.source) {
    key(w, "source");
    a.source->Accept(w);
  }
  if (a.correlation) {
    key(w, "correlation");
    a.correlation->Accept(w);
  }
  w.EndObject();
  w.EndObject();
  w.EndArray();
  if (!a.host.empty()) {
    key(w, "device");
    w.StartObject();
    kv(w, "hostname", a.host);
    key(w, "type_id");
    w.Int(0);
    kv(w, "type", "Unknown");
    w.EndObject();
  }
  if (a.event) kv(w, "raw_data", to_json(*a.event));
  key(w, "unmapped");
  w.StartObject();
  key(w, "vigil");
  w.StartObject();
  if (a.bundle) {
    key(w, "bundle");
    a.bundle->Accept(w);
  }
  key(w, "tags");
  w.StartArray();
  for (auto t : a.tags) string(w, t);
  w.EndArray();
  w.EndObject();
  w.EndObject();
  w.EndObject();
}

// CEF escaping: header fields escape '\' and '|'; extension values escape '\' and '=' and
// write line breaks as \n and \r.
std::string cef_header(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '|') out += '\\';
    if (c == '\n' || c == '\r') c = ' ';
    out += c;
  }
  return out;
}
std::string cef_value(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '=') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += c;
    }
  }
  return out;
}

std::string matched_text(const Alert& a) {
  std::string out;
  if (!a.matched || !a.matched->IsArray()) return out;
  for (const auto& m : a.matched->GetArray()) {
    if (!out.empty()) out += "; ";
    out += str(m, "field");
    out += '=';
    out += str(m, "value");
  }
  return out;
}

}  // namespace

std::optional<AlertFormat> parse_alert_format(std::string_view name) {
  if (name == "vigil") return AlertFormat::kVigil;
  if (name == "ecs") return AlertFormat::kEcs;
  if (name == "ocsf") return AlertFormat::kOcsf;
  return std::nullopt;
}

std::string_view alert_format_name(AlertFormat f) {
  switch (f) {
    case AlertFormat::kVigil:
      return "vigil";
    case AlertFormat::kEcs:
      return "ecs";
    case AlertFormat::kOcsf:
      return "ocsf";
  }
  return "vigil";
}

std::optional<AttackTactic> attack_tactic(std::string_view tag) {
  if (!tag.starts_with("attack.")) return std::nullopt;
  std::string name = lower(tag.substr(7));
  for (char& c : name)
    if (c == '_') c = '-';
  for (const Tactic& t : kTactics)
    if (t.tag == name) return AttackTactic{t.id, t.name};
  return std::nullopt;
}

std::optional<std::string> attack_technique(std::string_view tag) {
  if (!tag.starts_with("attack.t") && !tag.starts_with("attack.T")) return std::nullopt;
  std::string_view id = tag.substr(8);
  const size_t dot = id.find('.');
  const std::string_view main = id.substr(0, dot);
  if (main.size() != 4) return std::nullopt;
  for (char c : main)
    if (c < '0' || c > '9') return std::nullopt;
  if (dot != std::string_view::npos) {
    const std::string_view sub = id.substr(dot + 1);
    if (sub.size() != 3) return std::nullopt;
    for (char c : sub)
      if (c < '0' || c > '9') return std::nullopt;
  }
  return "T" + std::string(id);
}

Expected<std::string> format_alert(std::string_view vigil_json, AlertFormat format) {
  if (format == AlertFormat::kVigil) {
    auto a = parse(vigil_json);  // refuse what is not an alert, as the other formats do
    if (!a) return a.status();
    return std::string(vigil_json);
  }
  auto a = parse(vigil_json);
  if (!a) return a.status();
  rapidjson::StringBuffer b;
  Writer w(b);
  if (format == AlertFormat::kEcs)
    write_ecs(w, *a);
  else
    write_ocsf(w, *a);
  return std::string(b.GetString(), b.GetSize());
}

Expected<std::string> alert_text(std::string_view vigil_json) {
  auto a = parse(vigil_json);
  if (!a) return a.status();
  std::string out = "[" + std::string(a->level.empty() ? "unknown" : a->level) + "] ";
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  out += a->title;
  if (!a->host.empty()) out += " on " + std::string(a->host);
  out += " (rule " + std::string(a->rule_id) + ", alert " + std::string(a->id) + ")";
  if (const std::string m = matched_text(*a); !m.empty()) out += ": " + m;
  return out;
}

Expected<std::string> alert_cef(std::string_view vigil_json, std::string_view version) {
  auto a = parse(vigil_json);
  if (!a) return a.status();
  const Level lvl = level_of(a->level);
  std::string out = "CEF:0|vigil|vigil|" + cef_header(version) + "|" + cef_header(a->rule_id) +
                    "|" + cef_header(a->title) + "|" + std::to_string(lvl.cef) + "|";
  out += "rt=" + std::to_string(epoch_ms(a->time.empty() ? a->detected_at : a->time));
  if (!a->host.empty()) out += " dhost=" + cef_value(a->host);
  out += " cs1Label=alertId cs1=" + cef_value(a->id);
  std::string tags;
  for (auto t : a->tags) tags += (tags.empty() ? "" : ",") + std::string(t);
  if (!tags.empty()) out += " cs2Label=tags cs2=" + cef_value(tags);
  if (const std::string m = matched_text(*a); !m.empty()) out += " msg=" + cef_value(m);
  return out;
}

}  // namespace vigil::output
