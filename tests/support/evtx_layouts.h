#pragma once
// The corpus' EVTX-JSON events (SigmaHQ's regression layout) written in two other layouts a
// shipper produces, for tests/integration/layouts_test.cc and bench/match_bench.cc:
//
// Flat (NXLog, Logstash; rules/mappings/vigil-sensor.yml): Channel, EventID, Hostname,
// Provider_Name, @timestamp and every EventData / UserData field as a top-level key.
//
// ECS: made by the table below, written from
// Winlogbeat 8's Sysmon ingest pipeline (x-pack/winlogbeat/module/sysmon/ingest/sysmon.yml),
// not from the mapping under test:
//   System        Channel -> winlog.channel, EventID -> event.code (a string) and
//                 winlog.event_id, Computer -> winlog.computer_name and host.name,
//                 Provider Name -> winlog.provider_name, TimeCreated -> @timestamp
//   Sysmon        moved: ProcessGuid, ProcessId, Image, CommandLine, CurrentDirectory,
//                 Parent* -> process.* (kMoved below); TargetFilename, ImageLoaded -> file.path;
//                 PipeName -> file.name; TargetObject -> registry.path (12-14);
//                 OriginalFileName -> process.pe / file.pe (7) original_file_name
//                 copied: Company, Description, FileVersion, Product -> process.pe.* (file.pe.*
//                 for 7); Signature, SignatureStatus -> file.code_signature.*
//                 rewritten: User -> user.domain + user.name; Details (13) ->
//                 registry.data.strings, a DWORD as its decimal value; Initiated ->
//                 network.direction egress/ingress
//                 split: Hashes -> process.hash.<algo> (1, 23-26) or file.hash.<algo> (6, 7,
//                 15, 29), lowercase, imphash -> *.pe.imphash
//                 removed: UtcTime, RuleName (-> rule.name)
//   Security      ProcessName -> process.executable, IpAddress/IpPort -> source.ip/port,
//                 SubjectUserName/DomainName/UserSid -> user.name/domain/id (copied)
//   everything else stays under winlog.event_data; UserData's fields go to winlog.user_data.

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace vigil::test {
namespace layouts_detail {

using rapidjson::Value;

// A JSON object built by dotted path.
class Doc {
 public:
  Doc() { d_.SetObject(); }
  void set(const std::string& path, const Value& v) {
    Value* cur = &d_;
    size_t start = 0;
    for (;;) {
      const size_t dot = path.find('.', start);
      const std::string key = path.substr(start, dot == std::string::npos ? dot : dot - start);
      if (dot == std::string::npos) {
        Value k(key.c_str(), d_.GetAllocator());
        Value copy(v, d_.GetAllocator());
        if (cur->HasMember(key.c_str()))
          (*cur)[key.c_str()] = copy;
        else
          cur->AddMember(k, copy, d_.GetAllocator());
        return;
      }
      if (!cur->HasMember(key.c_str())) {
        Value k(key.c_str(), d_.GetAllocator());
        cur->AddMember(k, Value(rapidjson::kObjectType), d_.GetAllocator());
      }
      cur = &(*cur)[key.c_str()];
      start = dot + 1;
    }
  }
  void set_string(const std::string& path, const std::string& s) {
    Value v(s.c_str(), static_cast<rapidjson::SizeType>(s.size()), d_.GetAllocator());
    set(path, v);
  }
  std::string json() const {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    d_.Accept(w);
    return buf.GetString();
  }
  rapidjson::Document::AllocatorType& alloc() { return d_.GetAllocator(); }

 private:
  rapidjson::Document d_;
};

inline std::string text_of(const Value& v) {
  if (v.IsString()) return v.GetString();
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  return buf.GetString();
}

// The fields of an event's UserData element (`Event.UserData.<element>.<field>`).
inline std::vector<std::pair<std::string, const Value*>> user_data(
    const rapidjson::Document& evtx) {
  std::vector<std::pair<std::string, const Value*>> out;
  if (!evtx["Event"].HasMember("UserData") || !evtx["Event"]["UserData"].IsObject()) return out;
  for (const auto& element : evtx["Event"]["UserData"].GetObject()) {
    if (!element.value.IsObject()) continue;
    for (const auto& f : element.value.GetObject()) out.emplace_back(f.name.GetString(), &f.value);
  }
  return out;
}

inline const std::map<std::string, std::string> kMoved = {
    {"ProcessGuid", "process.entity_id"},
    {"ProcessId", "process.pid"},
    {"Image", "process.executable"},
    {"CommandLine", "process.command_line"},
    {"CurrentDirectory", "process.working_directory"},
    {"ParentProcessGuid", "process.parent.entity_id"},
    {"ParentProcessId", "process.parent.pid"},
    {"ParentImage", "process.parent.executable"},
    {"ParentCommandLine", "process.parent.command_line"},
    {"SourceProcessGuid", "process.entity_id"},
    {"SourceProcessId", "process.pid"},
    {"SourceImage", "process.executable"},
    {"TargetFilename", "file.path"},
    {"ImageLoaded", "file.path"},
    {"Device", "file.path"},
    {"PipeName", "file.name"},
    {"QueryName", "dns.question.name"},
    {"Protocol", "network.transport"},
    {"SourceIp", "source.ip"},
    {"SourcePort", "source.port"},
    {"SourceHostname", "source.domain"},
    {"DestinationIp", "destination.ip"},
    {"DestinationPort", "destination.port"},
    {"DestinationHostname", "destination.domain"},
};

// One EVTX-JSON event as Winlogbeat 8 writes it (the table at the top).
inline std::string evtx_to_ecs_doc(const rapidjson::Document& evtx) {
  const Value& sys = evtx["Event"]["System"];
  Doc out;
  const std::string channel = sys["Channel"].GetString();
  const std::string code = text_of(sys["EventID"]);
  out.set_string("winlog.channel", channel);
  out.set_string("event.code", code);
  out.set_string("winlog.event_id", code);
  out.set_string("winlog.computer_name", sys["Computer"].GetString());
  out.set_string("host.name", sys["Computer"].GetString());
  out.set_string("winlog.provider_name", sys["Provider"]["#attributes"]["Name"].GetString());
  out.set_string("@timestamp", sys["TimeCreated"]["#attributes"]["SystemTime"].GetString());
  // UserData's one element holds the provider's fields (WMI-Activity): winlog.user_data.
  for (const auto& [key, v] : user_data(evtx)) out.set("winlog.user_data." + key, *v);
  if (!evtx["Event"].HasMember("EventData") || !evtx["Event"]["EventData"].IsObject())
    return out.json();
  const bool sysmon = channel == "Microsoft-Windows-Sysmon/Operational";
  const bool image_load = sysmon && code == "7";
  for (const auto& m : evtx["Event"]["EventData"].GetObject()) {
    const std::string key = m.name.GetString();
    const Value& v = m.value;
    const std::string text = text_of(v);
    if (sysmon) {
      if (auto it = kMoved.find(key); it != kMoved.end()) {
        out.set(it->second, v);
        continue;
      }
      if (key == "OriginalFileName") {
        out.set(image_load ? "file.pe.original_file_name" : "process.pe.original_file_name", v);
        continue;
      }
      if (key == "Company" || key == "Description" || key == "FileVersion" || key == "Product") {
        std::string ecs = key == "FileVersion" ? "file_version" : key;
        for (auto& c : ecs) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        out.set((image_load ? "file.pe." : "process.pe.") + ecs, v);
      }
      if (key == "Signature") out.set("file.code_signature.subject_name", v);
      if (key == "SignatureStatus") out.set("file.code_signature.status", v);
      if (key == "TargetObject") {
        out.set("registry.path", v);
        continue;
      }
      if (key == "Details") {
        std::string data = text;
        if (data.rfind("DWORD (0x", 0) == 0 && data.size() == 18)
          data = std::to_string(std::stoul(data.substr(9, 8), nullptr, 16));
        Value arr(rapidjson::kArrayType);
        arr.PushBack(Value(data.c_str(), out.alloc()), out.alloc());
        out.set("registry.data.strings", arr);
        continue;
      }
      if (key == "User") {
        const size_t slash = text.find('\\');
        if (slash != std::string::npos) {
          out.set_string("user.domain", text.substr(0, slash));
          out.set_string("user.name", text.substr(slash + 1));
        }
        continue;
      }
      if (key == "Initiated") {
        out.set_string("network.direction", text == "true" ? "egress" : "ingress");
        continue;
      }
      if (key == "Hashes" || key == "Hash") {
        // Split per algorithm, lowercase, zero digests dropped; imphash under *.pe.
        const bool file = code == "6" || code == "7" || code == "15" || code == "29";
        const std::string base = file ? "file." : "process.";
        size_t pos = 0;
        while (pos <= text.size()) {
          const size_t comma = std::min(text.find(',', pos), text.size());
          const std::string kv = text.substr(pos, comma - pos);
          pos = comma + 1;
          const size_t eq = kv.find('=');
          if (eq == std::string::npos) continue;
          std::string algo = kv.substr(0, eq), hex = kv.substr(eq + 1);
          for (auto& c : algo) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          for (auto& c : hex) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          if (hex.find_first_not_of('0') == std::string::npos) continue;
          out.set_string(algo == "imphash" ? base + "pe.imphash" : base + "hash." + algo, hex);
        }
        continue;
      }
      if (key == "UtcTime") continue;
      if (key == "RuleName") {
        out.set("rule.name", v);
        continue;
      }
    } else if (channel == "Security") {
      if (key == "ProcessName") out.set("process.executable", v);
      if (key == "IpAddress") out.set("source.ip", v);
      if (key == "IpPort") out.set("source.port", v);
      if (key == "SubjectUserName") out.set("user.name", v);
      if (key == "SubjectDomainName") out.set("user.domain", v);
      if (key == "SubjectUserSid") out.set("user.id", v);
    }
    out.set("winlog.event_data." + key, v);
  }
  return out.json();
}

// The flat layout: the System header's fields and every EventData field as top-level keys.
inline std::string evtx_to_flat_doc(const rapidjson::Document& evtx) {
  const Value& sys = evtx["Event"]["System"];
  Doc out;
  out.set_string("Channel", sys["Channel"].GetString());
  out.set("EventID", sys["EventID"]);
  out.set_string("Hostname", sys["Computer"].GetString());
  out.set_string("Provider_Name", sys["Provider"]["#attributes"]["Name"].GetString());
  out.set_string("@timestamp", sys["TimeCreated"]["#attributes"]["SystemTime"].GetString());
  for (const auto& [key, v] : user_data(evtx)) out.set(key, *v);
  if (evtx["Event"].HasMember("EventData") && evtx["Event"]["EventData"].IsObject()) {
    for (const auto& m : evtx["Event"]["EventData"].GetObject()) {
      out.set(m.name.GetString(), m.value);
    }
  }
  return out.json();
}

}  // namespace layouts_detail

// One EVTX-JSON event (a line of the corpus) in the flat layout, or in ECS as Winlogbeat 8
// writes it; the input as is when it is not an EVTX-JSON event.
inline std::string evtx_to_flat(const std::string& line) {
  rapidjson::Document d;
  d.Parse(line.c_str());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("Event")) return line;
  return layouts_detail::evtx_to_flat_doc(d);
}
inline std::string evtx_to_ecs(const std::string& line) {
  rapidjson::Document d;
  d.Parse(line.c_str());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("Event")) return line;
  return layouts_detail::evtx_to_ecs_doc(d);
}

}  // namespace vigil::test
