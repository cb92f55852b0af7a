#include "vigil/match/mapping.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_set>

#include "patterns.h"
#include "sigma_internal.h"
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

std::vector<std::string> scalars(const YAML::Node& n) {
  std::vector<std::string> out;
  if (n.IsSequence()) {
    for (const auto& x : n) out.push_back(x.as<std::string>());
  } else {
    out.push_back(n.as<std::string>());
  }
  return out;
}

Expected<Logsource> parse_match(const YAML::Node& match, const std::string& where) {
  if (!match || !match.IsMap()) return Status::invalid(where + ": 'match' must be a map");
  if (auto s = check_keys(match, {"product", "category", "service"}, where + " match"); !s)
    return s;
  Logsource ls;
  if (match["product"]) ls.product = match["product"].as<std::string>();
  if (match["category"]) ls.category = match["category"].as<std::string>();
  if (match["service"]) ls.service = match["service"].as<std::string>();
  return ls;
}

// Hex digits of a hash algorithm's digest; 0: not a known algorithm.
size_t hash_length(const std::string& algo) {
  if (algo == "md5" || algo == "imphash") return 32;
  if (algo == "sha1") return 40;
  if (algo == "sha256") return 64;
  if (algo == "sha384") return 96;
  if (algo == "sha512") return 128;
  return 0;
}

// Conversions a field entry may ask for (one); any other name is refused.
Status parse_conversions(const YAML::Node& convert, const std::string& where, FieldSpec& spec) {
  if (!convert.IsMap()) return Status::invalid(where + ": 'convert' must be a map");
  if (convert.size() != 1) return Status::invalid(where + ": 'convert' takes one conversion");
  for (const auto& kv : convert) {
    const std::string name = kv.first.as<std::string>();
    if (name == "values") {
      if (!kv.second.IsMap() || kv.second.size() == 0)
        return Status::invalid(where + ": conversion 'values' must be a non-empty map");
      for (const auto& v : kv.second) {
        if (!v.first.IsScalar() || !v.second.IsScalar())
          return Status::invalid(where + ": conversion 'values' maps one value to one value");
        spec.values.emplace_back(v.first.Scalar(), v.second.Scalar());
      }
    } else if (name == "registry_dword") {
      if (!kv.second.IsScalar() || kv.second.Scalar() != "true")
        return Status::invalid(where + ": conversion 'registry_dword' takes true");
      spec.registry_dword = true;
    } else if (name == "split_domain") {
      if (!kv.second.IsScalar() || kv.second.Scalar().empty())
        return Status::invalid(where + ": conversion 'split_domain' takes the domain's path");
      spec.domain_path = kv.second.Scalar();
    } else if (name == "hashes") {
      if (!kv.second.IsMap() || kv.second.size() == 0)
        return Status::invalid(where + ": conversion 'hashes' maps algorithms to paths");
      for (const auto& h : kv.second) {
        const std::string algo = h.first.IsScalar() ? ascii_lower(h.first.Scalar()) : "";
        if (!hash_length(algo))
          return Status::invalid(where + ": conversion 'hashes': unknown algorithm '" + algo +
                                 "' (known: md5, sha1, sha256, sha384, sha512, imphash)");
        if (!h.second.IsScalar() || h.second.Scalar().empty())
          return Status::invalid(where + ": conversion 'hashes': '" + algo + "' needs a path");
        spec.hashes.emplace_back(algo, h.second.Scalar());
      }
    } else {
      return Status::invalid(where + ": unknown conversion '" + name +
                             "' (known: values, registry_dword, split_domain, hashes)");
    }
  }
  return Status::ok();
}

}  // namespace

// One `fields` map: Sigma field -> a path, a list of paths, or
// {path|paths|same_as|unsupported, convert}.
Expected<FieldMapping::FieldTable> FieldMapping::parse_fields(const YAML::Node& f,
                                                              const std::string& where) {
  if (!f.IsMap()) return Status::invalid(where + " must be a map");
  FieldTable out;
  for (const auto& kv : f) {
    FieldEntry e;
    e.sigma_field = kv.first.as<std::string>();
    const std::string here = where + ": field '" + e.sigma_field + "'";
    if (out.by_name.count(e.sigma_field)) return Status::invalid(here + " is listed twice");
    const YAML::Node& v = kv.second;
    if (v.IsMap()) {
      if (auto s = check_keys(v, {"path", "paths", "same_as", "convert", "unsupported"}, here); !s)
        return s;
      const int targets = (v["path"] ? 1 : 0) + (v["paths"] ? 1 : 0) + (v["same_as"] ? 1 : 0) +
                          (v["unsupported"] ? 1 : 0);
      if (targets != 1) {
        return Status::invalid(
            here + ": give exactly one of 'path', 'paths', 'same_as' and 'unsupported'");
      }
      if (v["unsupported"]) {
        e.spec.unsupported = v["unsupported"].as<std::string>();
        if (e.spec.unsupported.empty())
          return Status::invalid(here + ": 'unsupported' needs the reason");
      }
      if (v["path"]) e.spec.paths = {v["path"].as<std::string>()};
      if (v["paths"]) e.spec.paths = scalars(v["paths"]);
      if (v["same_as"]) e.same_as = v["same_as"].as<std::string>();
      if (v["convert"]) {
        if (e.spec.paths.empty())
          return Status::invalid(here + ": 'convert' needs the field's own 'path' or 'paths'");
        if (auto s = parse_conversions(v["convert"], here, e.spec); !s) return s;
        if (!e.spec.domain_path.empty() && e.spec.paths.size() != 1)
          return Status::invalid(here + ": 'split_domain' takes one path for the name");
      }
    } else {
      e.spec.paths = scalars(v);
    }
    if (e.same_as.empty() && e.spec.unsupported.empty() && e.spec.paths.empty())
      return Status::invalid(here + " maps to no path");
    for (const auto& p : e.spec.paths) {
      if (p.empty()) return Status::invalid(here + " maps to an empty path");
    }
    out.by_name.emplace(e.sigma_field, out.entries.size());
    out.entries.push_back(std::move(e));
  }
  return out;
}

Expected<FieldMapping> FieldMapping::parse(const std::string& yaml_text,
                                           const std::string& source) {
  FieldMapping m;
  if (auto bad = utf8::describe_invalid(yaml_text); !bad.empty())
    return Status::invalid(source + ": " + bad);
  try {
    const YAML::Node doc = YAML::Load(yaml_text);
    if (!doc.IsMap()) return Status::invalid(source + ": a mapping must be a YAML map");
    if (auto s = check_keys(doc,
                            {"name", "description", "field_prefix", "fields", "fields_by_logsource",
                             "host_field", "time_field", "logsources", "placeholders"},
                            source);
        !s) {
      return s;
    }
    m.name_ = doc["name"] ? doc["name"].as<std::string>() : source;
    if (doc["field_prefix"]) {
      m.field_prefixes_ = scalars(doc["field_prefix"]);
      if (m.field_prefixes_.empty())
        return Status::invalid(source + ": 'field_prefix' is an empty list");
    }
    if (doc["host_field"]) m.host_field_ = doc["host_field"].as<std::string>();
    if (doc["time_field"]) m.time_field_ = doc["time_field"].as<std::string>();
    if (const auto f = doc["fields"]) {
      auto entries = parse_fields(f, source + ": 'fields'");
      if (!entries) return entries.status();
      m.fields_ = std::move(*entries);
    }
    if (const auto sets = doc["fields_by_logsource"]) {
      if (!sets.IsSequence())
        return Status::invalid(source + ": 'fields_by_logsource' must be a list");
      for (size_t i = 0; i < sets.size(); ++i) {
        const auto& entry = sets[i];
        const std::string where = source + ": fields_by_logsource[" + std::to_string(i) + "]";
        if (!entry.IsMap()) return Status::invalid(where + " must be a map");
        if (auto s = check_keys(entry, {"match", "fields"}, where); !s) return s;
        FieldSet set;
        auto match = parse_match(entry["match"], where);
        if (!match) return match.status();
        set.match = *match;
        if (!entry["fields"]) return Status::invalid(where + ": no 'fields'");
        auto entries = parse_fields(entry["fields"], where + " fields");
        if (!entries) return entries.status();
        set.fields = std::move(*entries);
        m.fields_by_logsource_.push_back(std::move(set));
      }
    }
    if (const auto ph = doc["placeholders"]) {
      if (!ph.IsMap()) return Status::invalid(source + ": 'placeholders' must be a map");
      for (const auto& kv : ph) {
        auto values = scalars(kv.second);
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
      auto match = parse_match(entry["match"], where);
      if (!match) return match.status();
      lm.match = *match;
      if (const auto w = entry["where"]) {
        if (!w.IsMap()) return Status::invalid(where + ": 'where' must be a map");
        for (const auto& kv : w) {
          std::vector<std::string> values = scalars(kv.second);
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
  if (auto s = m.check_same_as_chains(source); !s) return s;
  return m;
}

Expected<FieldMapping> FieldMapping::load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::io_error("cannot read mapping '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path);
}

const FieldMapping::FieldEntry* FieldMapping::FieldTable::find(
    const std::string& sigma_field) const {
  const auto it = by_name.find(sigma_field);
  return it == by_name.end() ? nullptr : &entries[it->second];
}

const FieldMapping::FieldEntry* FieldMapping::find_entry(const std::string& sigma_field,
                                                         const Logsource* rule_ls) const {
  if (rule_ls != nullptr) {
    for (const auto& set : fields_by_logsource_) {
      if (!set.match.covers(*rule_ls)) continue;
      if (const FieldEntry* e = set.fields.find(sigma_field)) return e;
    }
  }
  return fields_.find(sigma_field);
}

FieldSpec FieldMapping::field(const std::string& sigma_field, const Logsource& rule_ls) const {
  std::string name = sigma_field;
  const FieldEntry* e = find_entry(name, &rule_ls);
  // parse() refused same_as cycles, so the chain ends.
  while (e != nullptr && !e->same_as.empty()) {
    name = e->same_as;
    e = find_entry(name, &rule_ls);
  }
  FieldSpec out;
  if (e != nullptr) {
    out = e->spec;
    if (out.unsupported.empty()) return out;
  }
  // A Sigma field name is one key: escape dots so they are not read as path separators.
  std::string key;
  for (char c : name) {
    if (c == '.') key += '\\';
    key += c;
  }
  for (const auto& prefix : field_prefixes_) out.paths.push_back(prefix + key);
  return out;
}

// A same_as chain must end for a rule of any logsource: walked in the context of each
// fields_by_logsource entry's own match and of a rule none applies to, each field once per
// context (a chain met again is known to end).
Status FieldMapping::check_same_as_chains(const std::string& source) const {
  std::vector<const Logsource*> contexts{nullptr};
  for (const auto& set : fields_by_logsource_) contexts.push_back(&set.match);
  std::vector<const FieldTable*> tables{&fields_};
  for (const auto& set : fields_by_logsource_) tables.push_back(&set.fields);
  for (const Logsource* ctx : contexts) {
    std::unordered_set<std::string> ends;  // fields whose chain is known to end
    for (const FieldTable* table : tables) {
      for (const auto& start : table->entries) {
        std::vector<std::string> chain;
        std::unordered_set<std::string> on_chain;
        const FieldEntry* e = &start;
        std::string name = start.sigma_field;
        while (e != nullptr && !e->same_as.empty() && !ends.count(name)) {
          if (!on_chain.insert(name).second) {
            std::string path;
            for (const auto& c : chain) path += c + " -> ";
            return Status::invalid(source + ": field mapping cycle: " + path + name);
          }
          chain.push_back(name);
          name = e->same_as;
          e = find_entry(name, ctx);
        }
        ends.insert(chain.begin(), chain.end());
      }
    }
  }
  return Status::ok();
}

std::vector<uint32_t> FieldMapping::logsources_for(const Logsource& ls) const {
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < logsources_.size(); ++i) {
    if (ls.covers(logsources_[i].match)) out.push_back(i);
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

// Drops the predicates the condition no longer refers to (replaced by others).
void drop_unused_predicates(SigmaRule& out) {
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
    q.regex = sigma_value_to_regex(v, p.anchor_start, p.anchor_end, p.windash, p.caseless);
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
  drop_unused_predicates(out);
  return out;
}

}  // namespace vigil::match

namespace vigil::match {
namespace {

using detail::for_each_sigma_char;
using detail::sigma_chars;
using detail::sigma_text;
using detail::SigmaChar;

std::string sigma_literal(const std::string& text) {
  std::vector<SigmaChar> chars;
  for (char c : text) chars.push_back({c, false});
  return sigma_text(chars, 0, chars.size());
}

// The text a Sigma value stands for when it has no wildcard.
std::optional<std::string> literal_text(const std::string& sigma_value) {
  std::string out;
  bool wildcard = false;
  for_each_sigma_char(sigma_value, [&](char c, bool w) {
    wildcard = wildcard || w;
    out += c;
  });
  if (wildcard) return std::nullopt;
  return out;
}

std::string test_name(const Predicate& p) {
  switch (p.kind) {
    case Predicate::Kind::kPattern:
      if (p.user_regex) return "a regular expression";
      if (p.expand) return "an expanded placeholder";
      if (p.windash) return "a windash value";
      if (p.value.empty()) return "an encoded value";
      if (!p.anchor_start && !p.anchor_end) return "a 'contains' value";
      if (!p.anchor_end) return "a 'startswith' value";
      if (!p.anchor_start) return "an 'endswith' value";
      return "a wildcard value";
    case Predicate::Kind::kFieldRef:
      return "fieldref";
    case Predicate::Kind::kCidr:
      return "cidr";
    default:
      return "a numeric comparison";
  }
}

// Rewrites the tests of one rule on fields whose sensor writes them differently.
class ValueConverter {
 public:
  ValueConverter(SigmaRule& rule, const FieldMapping& mapping) : rule_(rule), mapping_(mapping) {}

  Status convert(CondNode& n) {
    for (auto& c : n.children) {
      if (auto s = convert(c); !s) return s;
    }
    if (n.kind != CondNode::Kind::kPred) return Status::ok();
    const Predicate p = rule_.predicates[n.index];
    if (p.field.empty()) return Status::ok();
    const FieldSpec spec = mapping_.field(p.field, rule_.logsource);
    if (!spec.unsupported.empty()) return refuse_unsupported(p.field, spec);
    if (p.kind == Predicate::Kind::kFieldRef) {
      // Two fields compared as the event holds them: neither may need its values converted.
      const FieldSpec ref = mapping_.field(p.operand, rule_.logsource);
      if (!ref.unsupported.empty()) return refuse_unsupported(p.operand, ref);
      if (ref.converts()) return refuse(p.operand, ref, "fieldref");
    }
    if (!spec.converts()) return Status::ok();
    if (p.kind == Predicate::Kind::kExists || p.kind == Predicate::Kind::kMissing ||
        p.kind == Predicate::Kind::kPresent || p.kind == Predicate::Kind::kAbsent) {
      if (spec.hashes.empty()) return Status::ok();
      return refuse(p.field, spec, "a test of whether it exists");
    }
    // A regular expression about anything but a DWORD tests string data, which is unchanged.
    if (spec.registry_dword && p.kind == Predicate::Kind::kPattern && p.user_regex &&
        ascii_lower(p.regex).find("word") == std::string::npos) {
      return Status::ok();
    }
    const bool plain = p.kind == Predicate::Kind::kEmpty ||
                       (p.kind == Predicate::Kind::kPattern && !p.value.empty() && !p.windash &&
                        !p.expand && !p.user_regex);
    if (!plain) return refuse(p.field, spec, test_name(p));
    const std::string value = p.kind == Predicate::Kind::kEmpty ? "" : p.value;
    const auto text = literal_text(value);  // none: the value has wildcards
    if (!spec.values.empty()) {
      if (!text || !p.anchor_start || !p.anchor_end) return refuse(p.field, spec, test_name(p));
      for (const auto& [from, to] : spec.values) {
        if (ascii_iequals(from, *text)) return replace(n, literal(p, "", to, true, true));
      }
      return Status::ok();
    }
    if (!spec.hashes.empty()) return convert_hash(n, p, spec, value, text);
    if (spec.registry_dword) return convert_dword(n, p, spec, value, text);
    return split_domain(n, p, spec, value);
  }

 private:
  Status refuse(const std::string& field, const FieldSpec& spec, const std::string& what) {
    return Status::unsupported(rule_.source + ": field '" + field +
                               "' has a value conversion in mapping '" + mapping_.name() +
                               "' (to " + spec.paths[0] + ") that cannot convert " + what);
  }
  Status refuse_unsupported(const std::string& field, const FieldSpec& spec) {
    return Status::unsupported(rule_.source + ": field '" + field +
                               "' cannot be tested under mapping '" + mapping_.name() +
                               "': " + spec.unsupported);
  }

  // A plain test of `path` (a JSON path; empty: the predicate's own field) for `text`.
  Predicate literal(const Predicate& like, const std::string& path, const std::string& text,
                    bool anchor_start, bool anchor_end) {
    return pattern(like, path, sigma_literal(text), anchor_start, anchor_end);
  }
  Predicate pattern(const Predicate& like, const std::string& path, const std::string& sigma_value,
                    bool anchor_start, bool anchor_end) {
    Predicate q;
    q.field = like.field;
    q.path = path;
    q.caseless = like.caseless;
    if (sigma_value.empty() && anchor_start && anchor_end) {
      q.kind = Predicate::Kind::kEmpty;
      return q;
    }
    q.kind = Predicate::Kind::kPattern;
    q.value = sigma_value;
    q.anchor_start = anchor_start;
    q.anchor_end = anchor_end;
    q.regex = sigma_value_to_regex(sigma_value, anchor_start, anchor_end, false, q.caseless);
    return q;
  }
  CondNode leaf(Predicate q) {
    CondNode l;
    l.kind = CondNode::Kind::kPred;
    l.index = static_cast<uint32_t>(rule_.predicates.size());
    rule_.predicates.push_back(std::move(q));
    return l;
  }
  Status replace(CondNode& n, Predicate q) {
    n = leaf(std::move(q));
    return Status::ok();
  }

  // Registry data as Winlogbeat writes it: a DWORD as its decimal value. Sysmon writes a
  // DWORD as exactly `DWORD (0x%08x)`: a test for that whole text, whatever its match mode, is
  // a test for the whole value. Any other test naming a DWORD or QWORD cannot be carried.
  Status convert_dword(CondNode& n, const Predicate& p, const FieldSpec& spec,
                       const std::string& value, const std::optional<std::string>& text) {
    const std::string lower = ascii_lower(value);
    if (lower.find("dword") == std::string::npos && lower.find("qword") == std::string::npos)
      return Status::ok();
    if (text && text->size() == 18 && ascii_lower(*text).rfind("dword (0x", 0) == 0 &&
        text->back() == ')') {
      unsigned long number = 0;
      const char* hex = text->data() + 9;
      auto [end, ec] = std::from_chars(hex, hex + 8, number, 16);
      if (ec == std::errc() && end == hex + 8)
        return replace(n, literal(p, "", std::to_string(number), true, true));
    }
    return refuse(p.field, spec,
                  "'" + value + "' (a DWORD is converted only as the whole `DWORD (0x........)`)");
  }

  // Sysmon's `Hashes` (`SHA1=...,MD5=...,IMPHASH=...`) as one field per algorithm, as
  // Winlogbeat writes it (process.hash.sha1, process.pe.imphash, lowercase hex). A test for
  // one whole `ALGORITHM=HEX` (or a bare digest, its algorithm known by its length, as pySigma's
  // hashes_fields does) in any match mode is a test of that algorithm's field for the digest.
  Status convert_hash(CondNode& n, const Predicate& p, const FieldSpec& spec,
                      const std::string& value, const std::optional<std::string>& text) {
    const std::string why = "'" + value + "' (a hash converts as one whole ALGORITHM=HEX)";
    if (!text) return refuse(p.field, spec, why);
    const size_t eq = text->find('=');
    std::string algo = eq == std::string::npos ? "" : ascii_lower(text->substr(0, eq));
    const std::string hex = ascii_lower(eq == std::string::npos ? *text : text->substr(eq + 1));
    if (hex.empty() || hex.find_first_not_of("0123456789abcdef") != std::string::npos)
      return refuse(p.field, spec, why);
    if (algo.empty()) {
      for (const char* a : {"md5", "sha1", "sha256", "sha384", "sha512"}) {
        if (hash_length(a) == hex.size()) algo = a;
      }
    }
    if (hash_length(algo) != hex.size()) return refuse(p.field, spec, why);
    for (const auto& [a, path] : spec.hashes) {
      if (a == algo) return replace(n, literal(p, path, hex, true, true));
    }
    return refuse(p.field, spec, "'" + value + "' (the mapping places no " + algo + " hash)");
  }

  // `DOMAIN\name` written as two fields: the name at the field's path, the domain at
  // `domain_path`. Each test becomes tests of the two parts around the value's backslash.
  Status split_domain(CondNode& n, const Predicate& p, const FieldSpec& spec,
                      const std::string& value) {
    const auto chars = sigma_chars(value);
    std::vector<size_t> slashes;
    for (size_t i = 0; i < chars.size(); ++i) {
      if (!chars[i].wildcard && chars[i].c == '\\') slashes.push_back(i);
    }
    if (slashes.size() > 1)
      return refuse(p.field, spec, "'" + value + "' (more than one backslash)");
    const bool as = p.anchor_start, ae = p.anchor_end;
    const std::string& name_path = spec.paths[0];
    const std::string& domain_path = spec.domain_path;
    if (slashes.empty()) {
      // A `*` could stand for the backslash: the two fields cannot be tested apart.
      if (std::any_of(chars.begin(), chars.end(),
                      [](const SigmaChar& c) { return c.wildcard && c.c == '*'; }))
        return refuse(p.field, spec, "'" + value + "' (a wildcard where the backslash may be)");
      const std::string v = sigma_text(chars, 0, chars.size());
      if (as && ae) return replace(n, pattern(p, name_path, v, true, true));  // a bare name
      if (as) return replace(n, pattern(p, domain_path, v, true, false));
      if (ae) return replace(n, pattern(p, name_path, v, false, true));
      CondNode any;
      any.kind = CondNode::Kind::kOr;
      any.children.push_back(leaf(pattern(p, domain_path, v, false, false)));
      any.children.push_back(leaf(pattern(p, name_path, v, false, false)));
      n = std::move(any);
      return Status::ok();
    }
    const std::string domain = sigma_text(chars, 0, slashes[0]);
    const std::string name = sigma_text(chars, slashes[0] + 1, chars.size());
    CondNode both;
    both.kind = CondNode::Kind::kAnd;
    // Empty sides hold anything but must be present: `NT AUTHORITY\` is a domain test alone.
    if (!domain.empty() || as)
      both.children.push_back(leaf(pattern(p, domain_path, domain, as, true)));
    if (!name.empty() || ae) both.children.push_back(leaf(pattern(p, name_path, name, true, ae)));
    if (both.children.size() == 1) {
      n = std::move(both.children[0]);
    } else {
      n = std::move(both);
    }
    return Status::ok();
  }

  SigmaRule& rule_;
  const FieldMapping& mapping_;
};

}  // namespace

Expected<SigmaRule> apply_mapping(const SigmaRule& rule, const FieldMapping& mapping) {
  SigmaRule out = rule;
  if (auto s = ValueConverter(out, mapping).convert(out.condition); !s) return s;
  drop_unused_predicates(out);
  return resolve_placeholders(out, mapping);
}

}  // namespace vigil::match
