// A bundle's validation report: its errors and its JSON form (the API's, `vigil bundle validate
// --json`).

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "vigil/match/bundle.h"

namespace vigil::match {
std::vector<std::string> BundleReport::all_errors() const {
  std::vector<std::string> out = errors;
  for (const auto& r : rules) {
    for (const auto& e : r.errors) out.push_back(e);
  }
  return out;
}

std::string BundleReport::to_json() const {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto strs = [&](const char* key, const std::vector<std::string>& v) {
    w.Key(key);
    w.StartArray();
    for (const auto& s : v) w.String(s);
    w.EndArray();
  };
  w.StartObject();
  w.Key("ok");
  w.Bool(ok());
  w.Key("hash");
  w.String(hash);
  w.Key("manifest");
  w.StartObject();
  w.Key("present");
  w.Bool(manifest.present);
  w.Key("format_version");
  w.Int(manifest.format_version);
  w.Key("name");
  w.String(manifest.name);
  w.Key("label");
  w.String(manifest.label);
  w.Key("author");
  w.String(manifest.author);
  w.Key("description");
  w.String(manifest.description);
  w.EndObject();
  w.Key("mapping");
  w.String(mapping_name);
  strs("errors", errors);
  strs("warnings", warnings);
  w.Key("rules_ok");
  w.Uint64(rules_ok);
  w.Key("rules_failed");
  w.Uint64(rules_failed);
  w.Key("rules_left_out");
  w.Uint64(rules_left_out);
  w.Key("cost_ns_per_event");
  if (cost_ns_per_event < 0)
    w.Null();
  else
    w.Double(cost_ns_per_event);
  w.Key("reference_events");
  w.Uint64(reference_events);
  w.Key("rules");
  w.StartArray();
  for (const auto& r : rules) {
    w.StartObject();
    w.Key("source");
    w.String(r.source);
    w.Key("id");
    w.String(r.id);
    w.Key("title");
    w.String(r.title);
    w.Key("kind");
    w.String(r.filter ? "filter" : r.correlation ? "correlation" : "detection");
    w.Key("ok");
    w.Bool(r.ok());
    if (!r.left_out.empty()) {
      w.Key("left_out");
      w.String(r.left_out);
    }
    if (r.filter) strs("applies_to", r.applies_to);
    strs("errors", r.errors);
    strs("warnings", r.warnings);
    w.Key("tests_passed");
    w.Uint64(r.tests_passed);
    w.Key("tests_failed");
    w.Uint64(r.tests_failed);
    w.Key("cost_ns_per_event");
    if (r.cost_ns_per_event < 0)
      w.Null();
    else
      w.Double(r.cost_ns_per_event);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace vigil::match
