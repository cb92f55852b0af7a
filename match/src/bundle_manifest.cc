// A bundle's manifest and the files it names: rule files, the mapping, rule tests.

#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "bundle_internal.h"
#include "vigil/core/utf8.h"

namespace vigil::match::detail {

std::string scalar(const YAML::Node& n) { return n && n.IsScalar() ? n.Scalar() : std::string(); }

namespace {

bool under(std::string_view path, std::string_view prefix) {
  return path == prefix ||
         (path.size() > prefix.size() && path.starts_with(prefix) && path[prefix.size()] == '/');
}

bool has_yaml_extension(std::string_view p) { return p.ends_with(".yml") || p.ends_with(".yaml"); }

std::vector<std::string> string_list(const YAML::Node& n, const std::string& key,
                                     std::vector<std::string>& errors) {
  std::vector<std::string> out;
  if (n.IsScalar()) {
    out.push_back(n.Scalar());
  } else if (n.IsSequence()) {
    for (const auto& v : n) {
      if (!v.IsScalar()) {
        errors.push_back("manifest.yml: '" + key + "' must be a list of strings");
        return {};
      }
      out.push_back(v.Scalar());
    }
  } else {
    errors.push_back("manifest.yml: '" + key + "' must be a string or a list of strings");
  }
  return out;
}

// "0.1.0" < "0.2"; each part compares by the number its digits spell (non-digits are
// skipped, no digits is 0), of any length: a manifest's version is outside input, and a
// hundred-digit part must not overflow an integer (a fuzz finding).
int compare_versions(std::string_view a, std::string_view b) {
  auto next = [](std::string_view& s) {
    std::string digits;
    size_t i = 0;
    for (; i < s.size() && s[i] != '.'; ++i) {
      if (std::isdigit(static_cast<unsigned char>(s[i])) && !(digits.empty() && s[i] == '0'))
        digits += s[i];
    }
    s.remove_prefix(std::min(s.size(), i + 1));
    return digits;  // without leading zeros: a longer one is a larger number
  };
  while (!a.empty() || !b.empty()) {
    const std::string x = next(a), y = next(b);
    if (x.size() != y.size()) return x.size() < y.size() ? -1 : 1;
    if (const int c = x.compare(y); c != 0) return c < 0 ? -1 : 1;
  }
  return 0;
}

const BundleFile* manifest_file(const Bundle& b) {
  if (const auto* f = b.file("manifest.yml")) return f;
  return b.file("manifest.yaml");
}

bool is_test_file(const BundleManifest& m, std::string_view path) {
  return std::any_of(m.tests.begin(), m.tests.end(),
                     [&](const std::string& t) { return under(path, t); });
}

}  // namespace

BundleManifest parse_manifest(const Bundle& b, std::vector<std::string>& errors,
                              std::vector<std::string>& warnings) {
  BundleManifest m;
  const BundleFile* f = manifest_file(b);
  if (!f) return m;
  m.present = true;
  if (auto bad = utf8::describe_invalid(f->content); !bad.empty()) {
    errors.push_back(f->path + ": " + bad);
    return m;
  }
  YAML::Node doc;
  try {
    doc = YAML::Load(f->content);
  } catch (const std::exception& e) {
    errors.push_back(f->path + ": not YAML: " + e.what());
    return m;
  }
  if (!doc.IsMap()) {
    errors.push_back(f->path + ": the manifest is not a YAML map");
    return m;
  }
  try {
    for (const auto& kv : doc) {
      const std::string k = scalar(kv.first);
      const YAML::Node& v = kv.second;
      if (k == "format_version") {
        const std::string s = scalar(v);
        int fv = 0;
        if (s.empty() || s.size() > 6 ||
            !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
            (fv = std::stoi(s)) < 1) {
          errors.push_back(f->path + ": format_version must be a positive integer, not '" + s +
                           "'");
        } else if (fv > kBundleFormatVersion) {
          errors.push_back(f->path + ": bundle format version " + s +
                           " is newer than this engine understands (" +
                           std::to_string(kBundleFormatVersion) + ")");
        } else {
          m.format_version = fv;
        }
      } else if (k == "name") {
        m.name = scalar(v);
      } else if (k == "label" || k == "version") {
        m.label = scalar(v);
      } else if (k == "author") {
        m.author = scalar(v);
      } else if (k == "description") {
        m.description = scalar(v);
      } else if (k == "mapping") {
        m.mapping = scalar(v);
        if (m.mapping.empty())
          errors.push_back(f->path + ": 'mapping' must name a file of the bundle");
      } else if (k == "rules") {
        m.rules = string_list(v, k, errors);
      } else if (k == "tests") {
        m.tests = string_list(v, k, errors);
      } else if (k == "fields") {
        m.fields = string_list(v, k, errors);
      } else if (k == "field_count") {
        m.field_count = v.as<int64_t>();
      } else if (k == "select") {
        auto sel = RuleSelection::parse(v, f->path);
        if (sel)
          m.select = std::move(*sel);
        else
          errors.push_back(sel.status().message());
      } else if (k == "parameters") {
        if (!v.IsMap()) {
          errors.push_back(f->path + ": 'parameters' must be a map");
          continue;
        }
        for (const auto& p : v) {
          const std::string pk = scalar(p.first);
          if (pk == "min_engine_version") {
            m.min_engine_version = scalar(p.second);
            if (compare_versions(m.min_engine_version, kEngineVersion) > 0) {
              errors.push_back(f->path + ": the bundle needs engine version " +
                               m.min_engine_version + ", this is " + std::string(kEngineVersion));
            }
          } else if (pk == "max_rule_cost_ns") {
            m.max_rule_cost_ns = p.second.as<int64_t>();
            if (m.max_rule_cost_ns <= 0)
              errors.push_back(f->path + ": parameter max_rule_cost_ns must be positive");
          } else {
            errors.push_back(f->path + ": unknown parameter '" + pk +
                             "' (this engine knows min_engine_version, max_rule_cost_ns)");
          }
        }
      } else {
        errors.push_back(f->path + ": unknown manifest key '" + k + "'");
      }
    }
  } catch (const std::exception& e) {
    errors.push_back(f->path + ": " + e.what());
  }
  if (m.field_count) {
    if (!m.fields) {
      errors.push_back(f->path + ": 'field_count' is " + std::to_string(*m.field_count) +
                       " but no 'fields' are declared");
    } else if (static_cast<int64_t>(m.fields->size()) != *m.field_count) {
      errors.push_back(f->path + ": 'field_count' is " + std::to_string(*m.field_count) + " but " +
                       std::to_string(m.fields->size()) + " fields are declared");
    }
  }
  (void)warnings;
  return m;
}

// The rule files of the bundle, by the manifest's `rules` or by default.
std::vector<const BundleFile*> rule_files(const Bundle& b, const BundleManifest& m,
                                          std::vector<std::string>& errors) {
  std::vector<const BundleFile*> out;
  const BundleFile* mf = manifest_file(b);
  for (const auto& f : b.files()) {
    if (&f == mf || f.path == m.mapping || !has_yaml_extension(f.path) || is_test_file(m, f.path))
      continue;
    if (!m.rules.empty() && !std::any_of(m.rules.begin(), m.rules.end(),
                                         [&](const std::string& r) { return under(f.path, r); }))
      continue;
    out.push_back(&f);
  }
  for (const auto& r : m.rules) {
    if (!std::any_of(b.files().begin(), b.files().end(),
                     [&](const BundleFile& f) { return under(f.path, r); })) {
      errors.push_back("manifest.yml: rules path '" + r + "' names nothing in the bundle");
    }
  }
  return out;
}

Expected<FieldMapping> bundle_mapping(const Bundle& b, const BundleManifest& m,
                                      const FieldMapping* fallback) {
  if (m.mapping.empty()) {
    if (!fallback) return Status::invalid("the bundle names no mapping and the server has none");
    return *fallback;
  }
  const BundleFile* f = b.file(m.mapping);
  if (!f) return Status::invalid("manifest.yml: mapping '" + m.mapping + "' is not in the bundle");
  return FieldMapping::parse(f->content, m.mapping);
}

std::vector<RuleTest> parse_tests(const Bundle& b, const BundleManifest& m,
                                  std::vector<std::string>& errors) {
  std::vector<RuleTest> out;
  for (const auto& f : b.files()) {
    if (!is_test_file(m, f.path) || !has_yaml_extension(f.path)) continue;
    if (auto bad = utf8::describe_invalid(f.content); !bad.empty()) {
      errors.push_back(f.path + ": " + bad);
      continue;
    }
    try {
      const YAML::Node doc = YAML::Load(f.content);
      std::vector<YAML::Node> entries;
      if (doc.IsSequence()) {
        for (const auto& e : doc) entries.push_back(e);
      } else {
        entries.push_back(doc);
      }
      for (const auto& e : entries) {
        if (!e.IsMap()) {
          errors.push_back(f.path + ": a rule test is a map with 'rule', 'match' and 'no_match'");
          continue;
        }
        RuleTest t;
        t.source = f.path;
        bool bad = false;
        for (const auto& kv : e) {
          const std::string k = scalar(kv.first);
          if (k == "rule") {
            t.rule_id = scalar(kv.second);
          } else if (k == "match" || k == "no_match") {
            if (!kv.second.IsSequence()) {
              errors.push_back(f.path + ": '" + k + "' must be a list of events");
              bad = true;
              continue;
            }
            for (const auto& ev : kv.second) {
              std::string json;
              if (ev.IsScalar()) {
                json = ev.Scalar();
              } else if (ev.IsMap()) {
                YAML::Emitter em;
                em << ev;
                auto j = yaml_event_to_json(em.c_str());
                if (!j) {
                  errors.push_back(f.path + ": " + j.status().message());
                  bad = true;
                  continue;
                }
                json = std::move(*j);
              } else {
                errors.push_back(f.path + ": a test event must be a map or a JSON string");
                bad = true;
                continue;
              }
              (k == "match" ? t.match : t.no_match).push_back(std::move(json));
            }
          } else {
            errors.push_back(f.path + ": unknown rule test key '" + k + "'");
            bad = true;
          }
        }
        if (t.rule_id.empty()) {
          errors.push_back(f.path + ": a rule test names no 'rule'");
          bad = true;
        }
        if (!bad) out.push_back(std::move(t));
      }
    } catch (const std::exception& ex) {
      errors.push_back(f.path + ": not YAML: " + ex.what());
    }
  }
  return out;
}

}  // namespace vigil::match::detail
