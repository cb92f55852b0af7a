#include "vigil/match/mapping.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "vigil/core/utf8.h"

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
  if (auto bad = utf8::describe_invalid(yaml_text); !bad.empty())
    return Status::invalid(source + ": " + bad);
  try {
    const YAML::Node doc = YAML::Load(yaml_text);
    if (!doc.IsMap()) return Status::invalid(source + ": a mapping must be a YAML map");
    if (auto s = check_keys(doc,
                            {"name", "description", "field_prefix", "fields", "host_field",
                             "time_field", "logsources", "placeholders"},
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
    if (const auto ph = doc["placeholders"]) {
      if (!ph.IsMap()) return Status::invalid(source + ": 'placeholders' must be a map");
      for (const auto& kv : ph) {
        auto values = strings(kv.second);
        if (values.empty())
          return Status::invalid(source + ": placeholder '" + kv.first.as<std::string>() +
                                 "' has no value");
        m.placeholders_.emplace_back(kv.first.as<std::string>(), std::move(values));
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

const std::vector<std::string>* FieldMapping::placeholder(const std::string& name) const {
  for (const auto& [n, values] : placeholders_) {
    if (n == name) return &values;
  }
  return nullptr;
}

namespace {

// Every text `value` stands for once each %placeholder% is replaced by one of its values.
Expected<std::vector<std::string>> expand_value(const std::string& value,
                                                const FieldMapping& mapping,
                                                const std::string& source) {
  constexpr size_t kMaxValues = 4096;
  std::vector<std::string> out{""};
  size_t i = 0;
  while (i < value.size()) {
    const size_t open = value.find('%', i);
    const size_t close = open == std::string::npos ? std::string::npos : value.find('%', open + 1);
    if (close == std::string::npos) {
      for (auto& o : out) o += value.substr(i);
      break;
    }
    for (auto& o : out) o += value.substr(i, open - i);
    const std::string name = value.substr(open + 1, close - open - 1);
    const auto* values = mapping.placeholder(name);
    if (values == nullptr) {
      return Status::unsupported(source + ": placeholder '%" + name +
                                 "%' has no values in mapping '" + mapping.name() +
                                 "' (add it under 'placeholders')");
    }
    if (out.size() * values->size() > kMaxValues) {
      return Status::unsupported(source + ": expanding '" + value +
                                 "' gives more than 4096 values");
    }
    std::vector<std::string> next;
    for (const auto& o : out) {
      for (const auto& v : *values) next.push_back(o + v);
    }
    out = std::move(next);
    i = close + 1;
  }
  return out;
}

Status expand_node(CondNode& n, SigmaRule& rule, const FieldMapping& mapping) {
  for (auto& c : n.children) {
    if (auto s = expand_node(c, rule, mapping); !s) return s;
  }
  if (n.kind != CondNode::Kind::kPred || !rule.predicates[n.index].expand) return Status::ok();
  const Predicate p = rule.predicates[n.index];
  auto values = expand_value(p.operand, mapping, rule.source);
  if (!values) return values.status();
  CondNode any;
  any.kind = CondNode::Kind::kOr;
  for (const auto& v : *values) {
    Predicate q = p;
    q.expand = false;
    q.operand.clear();
    q.regex = sigma_value_to_regex(v, p.anchor_start, p.anchor_end, p.windash);
    CondNode leaf;
    leaf.kind = CondNode::Kind::kPred;
    leaf.index = static_cast<uint32_t>(rule.predicates.size());
    rule.predicates.push_back(std::move(q));
    any.children.push_back(std::move(leaf));
  }
  n = std::move(any);
  return Status::ok();
}

}  // namespace

Expected<SigmaRule> resolve_placeholders(const SigmaRule& rule, const FieldMapping& mapping) {
  SigmaRule out = rule;
  if (std::none_of(rule.predicates.begin(), rule.predicates.end(),
                   [](const Predicate& p) { return p.expand; })) {
    return out;
  }
  if (auto s = expand_node(out.condition, out, mapping); !s) return s;
  // Drop the expanded predicates, which nothing refers to any more.
  std::vector<int64_t> index(out.predicates.size(), -1);
  std::vector<Predicate> kept;
  auto renumber = [&](auto&& self, CondNode& n) -> void {
    if (n.kind == CondNode::Kind::kPred) {
      if (index[n.index] < 0) {
        index[n.index] = static_cast<int64_t>(kept.size());
        kept.push_back(out.predicates[n.index]);
      }
      n.index = static_cast<uint32_t>(index[n.index]);
    }
    for (auto& c : n.children) self(self, c);
  };
  renumber(renumber, out.condition);
  out.predicates = std::move(kept);
  return out;
}

}  // namespace vigil::match
