#include "vigil/match/mapping.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

namespace vigil::match {
namespace {

Status check_keys(const YAML::Node& map, const std::set<std::string>& allowed,
                  const std::string& where) {
  for (const auto& kv : map) {
    const std::string k = kv.first.as<std::string>();
    if (!allowed.count(k)) return Status::invalid(where + ": unknown key '" + k + "'");
  }
  return Status::ok();
}

}  // namespace

Expected<FieldMapping> FieldMapping::parse(const std::string& yaml_text,
                                           const std::string& source) {
  FieldMapping m;
  try {
    const YAML::Node doc = YAML::Load(yaml_text);
    if (!doc.IsMap()) return Status::invalid(source + ": a mapping must be a YAML map");
    if (auto s = check_keys(doc,
                            {"name", "description", "field_prefix", "fields", "host_field",
                             "time_field", "logsources"},
                            source);
        !s) {
      return s;
    }
    m.name_ = doc["name"] ? doc["name"].as<std::string>() : source;
    auto strings = [](const YAML::Node& n) {
      std::vector<std::string> out;
      if (n.IsSequence()) {
        for (const auto& x : n) out.push_back(x.as<std::string>());
      } else {
        out.push_back(n.as<std::string>());
      }
      return out;
    };
    if (doc["field_prefix"]) {
      m.field_prefixes_ = strings(doc["field_prefix"]);
      if (m.field_prefixes_.empty())
        return Status::invalid(source + ": 'field_prefix' is an empty list");
    }
    if (doc["host_field"]) m.host_field_ = doc["host_field"].as<std::string>();
    if (doc["time_field"]) m.time_field_ = doc["time_field"].as<std::string>();
    if (const auto f = doc["fields"]) {
      if (!f.IsMap()) return Status::invalid(source + ": 'fields' must be a map");
      for (const auto& kv : f) {
        auto paths = strings(kv.second);
        if (paths.empty())
          return Status::invalid(source + ": field '" + kv.first.as<std::string>() +
                                 "' maps to no path");
        m.fields_.emplace_back(kv.first.as<std::string>(), std::move(paths));
      }
    }
    const auto ls = doc["logsources"];
    if (!ls || !ls.IsSequence() || ls.size() == 0)
      return Status::invalid(source + ": 'logsources' must be a non-empty list");
    for (const auto& entry : ls) {
      if (!entry.IsMap()) return Status::invalid(source + ": each logsource must be a map");
      LogsourceMapping lm;
      lm.name = entry["name"] ? entry["name"].as<std::string>() : "";
      const std::string where = source + ": logsource '" + lm.name + "'";
      if (lm.name.empty()) return Status::invalid(source + ": a logsource has no 'name'");
      if (auto s = check_keys(entry, {"name", "match", "where"}, where); !s) return s;
      const auto match = entry["match"];
      if (!match || !match.IsMap()) return Status::invalid(where + ": 'match' must be a map");
      if (auto s = check_keys(match, {"product", "category", "service"}, where + " match"); !s)
        return s;
      if (match["product"]) lm.match.product = match["product"].as<std::string>();
      if (match["category"]) lm.match.category = match["category"].as<std::string>();
      if (match["service"]) lm.match.service = match["service"].as<std::string>();
      if (const auto w = entry["where"]) {
        if (!w.IsMap()) return Status::invalid(where + ": 'where' must be a map");
        for (const auto& kv : w) {
          std::vector<std::string> values;
          if (kv.second.IsSequence()) {
            for (const auto& v : kv.second) values.push_back(v.as<std::string>());
          } else {
            values.push_back(kv.second.as<std::string>());
          }
          if (values.empty())
            return Status::invalid(where + ": empty value list for '" + kv.first.as<std::string>() +
                                   "'");
          lm.where.emplace_back(kv.first.as<std::string>(), std::move(values));
        }
      }
      m.logsources_.push_back(std::move(lm));
    }
  } catch (const YAML::Exception& e) {
    return Status::invalid(source + ": YAML error: " + e.what());
  }
  return m;
}

Expected<FieldMapping> FieldMapping::load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::io_error("cannot read mapping '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path);
}

std::vector<std::string> FieldMapping::json_paths(const std::string& sigma_field) const {
  for (const auto& [from, to] : fields_) {
    if (from == sigma_field) return to;
  }
  // A Sigma field name is one key: escape dots so they are not read as path separators.
  std::string key;
  for (char c : sigma_field) {
    if (c == '.') key += '\\';
    key += c;
  }
  std::vector<std::string> out;
  for (const auto& prefix : field_prefixes_) out.push_back(prefix + key);
  return out;
}

std::vector<uint32_t> FieldMapping::logsources_for(const Logsource& ls) const {
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < logsources_.size(); ++i) {
    const Logsource& m = logsources_[i].match;
    auto agrees = [](const std::string& rule, const std::string& entry) {
      return rule.empty() || rule == entry;
    };
    if (agrees(ls.product, m.product) && agrees(ls.category, m.category) &&
        agrees(ls.service, m.service)) {
      out.push_back(i);
    }
  }
  return out;
}

}  // namespace vigil::match
