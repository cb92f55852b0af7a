// Bundle validation: manifest, rules, declared fields, rule tests, scan cost.

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "vigil/core/event.h"
#include "vigil/core/utf8.h"
#include "vigil/match/bundle.h"
#include "vigil/match/matcher.h"

namespace vigil::match {
namespace {

bool under(std::string_view path, std::string_view prefix) {
  return path == prefix ||
         (path.size() > prefix.size() && path.starts_with(prefix) && path[prefix.size()] == '/');
}

bool has_yaml_extension(std::string_view p) { return p.ends_with(".yml") || p.ends_with(".yaml"); }

std::string scalar(const YAML::Node& n) { return n && n.IsScalar() ? n.Scalar() : std::string(); }

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

bool is_test_file(const BundleManifest& m, std::string_view path) {
  return std::any_of(m.tests.begin(), m.tests.end(),
                     [&](const std::string& t) { return under(path, t); });
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

// Nanoseconds per event to extract `rs`'s fields and match, over `events`.
double measure_cost(const std::shared_ptr<const RuleSet>& rs,
                    const std::vector<std::string>& events, int64_t sample_ms) {
  auto matcher = Matcher::create(rs);
  if (!matcher || events.empty()) return -1;
  EventParser parser;
  Event event;
  std::vector<uint32_t> out;
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::milliseconds(sample_ms);
  size_t n = 0;
  do {
    for (const auto& e : events) {
      if (parser.parse(e, rs->fields(), event) == ParseError::kNone) {
        out.clear();
        (void)(*matcher)->match(event, out);
      }
      ++n;
    }
  } while (Clock::now() < deadline);
  return static_cast<double>(
             std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()) /
         static_cast<double>(n);
}

void collect_fields(const SigmaRule& r, std::set<std::string>& out) {
  for (const auto& p : r.predicates) {
    if (!p.field.empty()) out.insert(p.field);
    if (p.kind == Predicate::Kind::kFieldRef) out.insert(p.operand);
  }
  if (r.correlation) {
    for (const auto& g : r.correlation->group_by) out.insert(g);
    if (!r.correlation->field.empty()) out.insert(r.correlation->field);
  }
}

}  // namespace

std::vector<std::string> BundleReport::all_errors() const {
  std::vector<std::string> out = errors;
  for (const auto& r : rules) {
    for (const auto& e : r.errors) out.push_back(e);
  }
  return out;
}

namespace {

// validate_bundle in steps over the state they share: the bundle's rules parsed, compiled
// together, run over their test events, and each measured alone.
class BundleValidator {
 public:
  BundleValidator(const Bundle& bundle, const BundleValidationOptions& options)
      : bundle_(bundle), options_(options), started_(std::chrono::steady_clock::now()) {}

  BundleReport run(std::shared_ptr<const RuleSet>* compiled) {
    report_.hash = bundle_.hash();
    report_.manifest = parse_manifest(bundle_, report_.errors, report_.warnings);
    if (!report_.manifest.present)
      report_.warnings.push_back(
          "no manifest.yml: a plain directory of rules, with derived defaults");
    auto mapping = bundle_mapping(bundle_, report_.manifest, options_.default_mapping);
    if (!mapping) {
      report_.errors.push_back(mapping.status().message());
      return std::move(report_);
    }
    mapping_ = &*mapping;
    report_.mapping_name = mapping->name();
    // A step that stops validation leaves the report as it is (with the reason).
    if (!parse_rules() || !compile() || past_deadline("after compiling") || !run_tests() ||
        !measure_costs()) {
      return std::move(report_);
    }
    for (const auto& rv : report_.rules) {
      if (!rv.left_out.empty())
        ++report_.rules_left_out;
      else
        (rv.ok() ? report_.rules_ok : report_.rules_failed)++;
    }
    if (compiled && report_.ok()) *compiled = rs_;
    return std::move(report_);
  }

 private:
  // Parses every rule file; false if the bundle's size stops validation.
  bool parse_rules() {
    const BundleManifest& m = report_.manifest;
    BundleReport& report = report_;
    const BundleValidationOptions& options = options_;
    size_t values = 0;  // predicates of all rules
    const auto files = rule_files(bundle_, m, report.errors);
    if (files.empty()) report.errors.push_back("the bundle holds no rule");
    std::set<std::string> ids;
    std::set<std::string> declared;
    if (m.fields) declared.insert(m.fields->begin(), m.fields->end());
    size_t documents = 0;
    for (const BundleFile* f : files) {
      auto parsed = parse_sigma_documents(f->content, f->path);
      if ((documents += parsed.size()) > options.max_documents) {
        report.errors.push_back("the bundle holds more than " +
                                std::to_string(options.max_documents) +
                                " rule documents (rules, correlations, filters)");
        return false;
      }
      for (auto& r : parsed) {
        RuleValidation rv;
        rv.source = f->path;
        if (!r) {
          if (options.require_all_rules)
            rv.errors.push_back(r.status().message());
          else
            rv.warnings.push_back("not loaded: " + r.status().message());
          report.rules.push_back(std::move(rv));
          continue;
        }
        if (check_rule(*r, rv, ids, declared, values)) parsed_.push_back(std::move(*r));
        report.rules.push_back(std::move(rv));
      }
    }
    // The compile's time and memory grow with the values: bounded before it starts, the
    // values filters copy into the rules they apply to included.
    if (values <= options.max_values_per_bundle)
      values = select_and_filter(options.max_values_per_bundle - values);
    if (values > options.max_values_per_bundle) {
      report.errors.push_back("the bundle's rules have " + std::to_string(values) +
                              " values, more than the limit of " +
                              std::to_string(options.max_values_per_bundle) + " per bundle");
      return false;
    }
    return true;
  }

  // The checks of one parsed document; false if it is refused before compiling.
  bool check_rule(const SigmaRule& r, RuleValidation& rv, std::set<std::string>& ids,
                  const std::set<std::string>& declared, size_t& values) {
    const BundleManifest& m = report_.manifest;
    const std::string& path = rv.source;
    rv.id = r.id;
    rv.title = r.title;
    rv.correlation = r.correlation.has_value();
    rv.filter = r.filter.has_value();
    rv.warnings = r.warnings;
    if (r.id.empty()) {
      if (!rv.filter)
        rv.errors.push_back(path + ": the rule has no 'id' (a bundle's rules need one each)");
    } else if (!ids.insert(r.id).second) {
      rv.errors.push_back(path + ": id '" + r.id + "' is used by another rule of the bundle");
    }
    if (m.fields) {
      std::set<std::string> used;
      collect_fields(r, used);
      for (const auto& u : used) {
        if (!declared.count(u)) {
          rv.errors.push_back(path + ": rule '" + r.id + "' uses field '" + u +
                              "' that the manifest does not declare");
        }
      }
    }
    if (r.predicates.size() > options_.max_values_per_rule) {
      rv.errors.push_back(path + ": rule '" + r.id + "' has " +
                          std::to_string(r.predicates.size()) + " values, more than the limit of " +
                          std::to_string(options_.max_values_per_rule) +
                          " per rule (the whole SigmaHQ tree has about 46,000)");
      return false;
    }
    values += r.predicates.size();
    return true;
  }

  // The manifest's rule selection, then the filters (copying at most `max_added_values`
  // values into rules), over the parsed rules; each rule's report says if it was left out (and
  // why) and each filter's which rules it applies to. Returns the values of the rules to
  // compile.
  size_t select_and_filter(size_t max_added_values) {
    CompileReport cr;
    std::vector<SigmaRule> prepared =
        prepare_rules(std::move(parsed_), report_.manifest.select, cr, max_added_values);
    auto find = [&](const std::string& source, const std::string& id, bool filter) {
      return std::find_if(report_.rules.begin(), report_.rules.end(),
                          [&](const RuleValidation& rv) {
                            return rv.source == source && rv.id == id && rv.filter == filter;
                          });
    };
    for (const auto& d : cr.rules) {
      auto rv = find(d.source, d.rule_id, d.filter);
      if (rv == report_.rules.end()) continue;
      if (!d.left_out.empty()) rv->left_out = d.left_out;
      rv->applies_to = d.applies_to;
      rv->warnings = d.warnings;  // the rule's own, then the selection's and the filter's
      if (!d.status.is_ok()) {
        if (options_.require_all_rules)
          rv->errors.push_back(d.status.message());
        else
          rv->warnings.push_back("not applied: " + d.status.message());
      }
    }
    parsed_.clear();
    report_of_.clear();
    size_t values = 0;
    for (auto& r : prepared) {
      auto rv = find(r.source, r.id, false);
      if (rv == report_.rules.end()) continue;
      if (!r.selected) rv->warnings = r.warnings;
      values += r.predicates.size();
      report_of_.push_back(static_cast<size_t>(rv - report_.rules.begin()));
      parsed_.push_back(std::move(r));
    }
    return values;
  }

  // The report of the rule (not filter) a compile diagnostic is about.
  std::vector<RuleValidation>::iterator rule_report(const RuleDiagnostic& d) {
    return std::find_if(report_.rules.begin(), report_.rules.end(), [&](const RuleValidation& rv) {
      return rv.source == d.source && !rv.filter && (d.rule_id.empty() || rv.id == d.rule_id);
    });
  }

  // Whether validation has run past its time limit (then said in the report).
  bool past_deadline(const char* step) {
    const auto spent = std::chrono::steady_clock::now() - started_;
    if (options_.max_validation_ms <= 0 ||
        spent <= std::chrono::milliseconds(options_.max_validation_ms))
      return false;
    report_.errors.push_back("validation stopped " + std::string(step) +
                             ": it took longer than its limit of " +
                             std::to_string(options_.max_validation_ms) + " ms");
    return true;
  }

  // Compiles the whole set; each rule that does not compile, or compiles at risk, says so.
  bool compile() {
    BundleReport& report = report_;
    const BundleValidationOptions& options = options_;
    CompileReport cr;
    auto rs = RuleSet::compile(parsed_, *mapping_, cr);
    if (!rs) {
      report.errors.push_back("the bundle cannot be compiled: " + rs.status().message());
      return false;
    }
    rs_ = *rs;
    for (const auto& d : cr.rules) {
      if (d.status.is_ok()) {
        if (d.risks.empty()) continue;
        // A regex a hostile event can drive into the backtracking limit: that rule would be
        // blind to such events. Refused, so it is rewritten before it runs.
        auto it = rule_report(d);
        for (const auto& risk : d.risks) {
          const std::string why = d.source + ": rule '" + d.rule_id + "': " + risk;
          if (it == report.rules.end())
            report.errors.push_back(why);
          else
            it->errors.push_back(why);
        }
        continue;
      }
      auto it = rule_report(d);
      if (it == report.rules.end()) {
        report.errors.push_back(d.status.message());
      } else if (options.require_all_rules) {
        it->errors.push_back(d.status.message());
      } else {
        it->warnings.push_back("not loaded: " + d.status.message());
      }
    }
    if (rs_->rules().empty()) report.errors.push_back("no rule of the bundle compiles");
    return true;
  }

  // Runs each rule's test events; false if validation stopped.
  bool run_tests() {
    BundleReport& report = report_;
    const auto tests = parse_tests(bundle_, report_.manifest, report.errors);
    std::set<std::string> tested;
    auto matcher = Matcher::create(rs_);
    if (!matcher) {
      report.errors.push_back("cannot run the bundle: " + matcher.status().message());
      return false;
    }
    EventParser parser;
    Event event;
    std::vector<uint32_t> out;
    for (const auto& t : tests) {
      if (past_deadline("while running the rules' tests")) return false;
      auto rv = std::find_if(report.rules.begin(), report.rules.end(),
                             [&](const RuleValidation& r) { return r.id == t.rule_id; });
      if (rv == report.rules.end()) {
        report.errors.push_back(t.source + ": tests rule '" + t.rule_id +
                                "' that is not in the bundle");
        continue;
      }
      tested.insert(t.rule_id);
      const auto& infos = rs_->rules();
      auto idx = std::find_if(infos.begin(), infos.end(),
                              [&](const RuleInfo& i) { return i.id == t.rule_id; });
      if (idx == infos.end()) {
        if (!rv->correlation)
          rv->errors.push_back(t.source + ": rule '" + t.rule_id +
                               "' did not compile, its tests cannot run");
        else
          rv->warnings.push_back(t.source + ": tests of correlation rules are not run yet");
        continue;
      }
      const uint32_t rule_index = static_cast<uint32_t>(idx - infos.begin());
      for (int want = 1; want >= 0; --want) {
        const auto& evs = want ? t.match : t.no_match;
        for (size_t i = 0; i < evs.size(); ++i) {
          test_events_.push_back(evs[i]);
          bool hit = false;
          const ParseError pe = parser.parse(evs[i], rs_->fields(), event);
          if (pe != ParseError::kNone) {
            rv->errors.push_back(t.source + ": test event " + std::to_string(i) + " of '" +
                                 (want ? "match" : "no_match") + "' is not a valid event (" +
                                 std::string(parse_error_name(pe)) + ")");
            ++rv->tests_failed;
            continue;
          }
          out.clear();
          (void)(*matcher)->match(event, out);
          hit = std::find(out.begin(), out.end(), rule_index) != out.end();
          if (hit == (want == 1)) {
            ++rv->tests_passed;
          } else {
            ++rv->tests_failed;
            rv->errors.push_back(
                t.source + ": rule '" + t.rule_id + "' " + (want ? "does not match" : "matches") +
                " its '" + (want ? "match" : "no_match") + "' test event " + std::to_string(i));
          }
        }
      }
    }
    for (auto& rv : report.rules) {
      if (rv.errors.empty() && !rv.correlation && !rv.filter && rv.left_out.empty() &&
          !tested.count(rv.id))
        rv.warnings.push_back("the rule has no test events");
    }
    return true;
  }

  // Each rule's scan cost, alone, over the reference corpus and the test events; false if
  // validation stopped.
  bool measure_costs() {
    BundleReport& report = report_;
    const BundleValidationOptions& options = options_;
    const BundleManifest& m = report_.manifest;
    // Each rule's scan cost, alone, over the reference corpus and the test events.
    int64_t budget = options.max_rule_cost_ns;
    if (m.max_rule_cost_ns > 0 && (budget == 0 || m.max_rule_cost_ns < budget))
      budget = m.max_rule_cost_ns;
    std::vector<std::string> corpus = options.reference_events;
    corpus.insert(corpus.end(), test_events_.begin(), test_events_.end());
    report.reference_events = corpus.size();
    if (budget > 0 && !corpus.empty()) {
      report.cost_ns_per_event = measure_cost(rs_, corpus, options.cost_sample_ms);
      const bool alone = parsed_.size() <= options.max_rules_measured_alone ||
                         report.cost_ns_per_event > static_cast<double>(budget);
      for (size_t i = 0; alone && i < parsed_.size(); ++i) {
        if (past_deadline("while measuring the rules' costs")) return false;
        RuleValidation& rv = report.rules[report_of_[i]];
        if (!rv.errors.empty() || parsed_[i].correlation) continue;
        CompileReport one;
        auto single = RuleSet::compile({parsed_[i]}, *mapping_, one);
        if (!single || (*single)->rules().empty()) continue;
        rv.cost_ns_per_event = measure_cost(*single, corpus, options.cost_sample_ms);
        if (rv.cost_ns_per_event > static_cast<double>(budget)) {
          rv.errors.push_back(rv.source + ": rule '" + rv.id + "' costs " +
                              std::to_string(static_cast<int64_t>(rv.cost_ns_per_event)) +
                              " ns per event, over the budget of " + std::to_string(budget) +
                              " ns");
        }
      }
    } else if (budget > 0) {
      report.warnings.push_back("no reference events: scan costs not measured");
    }
    return true;
  }

  const Bundle& bundle_;
  const BundleValidationOptions& options_;
  const std::chrono::steady_clock::time_point started_;
  BundleReport report_;
  const FieldMapping* mapping_ = nullptr;
  std::vector<SigmaRule> parsed_;
  std::vector<size_t> report_of_;  // parsed_[i] -> report_.rules index
  std::shared_ptr<const RuleSet> rs_;
  std::vector<std::string> test_events_;
};

}  // namespace

BundleReport validate_bundle(const Bundle& bundle, const BundleValidationOptions& options,
                             std::shared_ptr<const RuleSet>* compiled) {
  return BundleValidator(bundle, options).run(compiled);
}

Expected<std::shared_ptr<const RuleSet>> compile_bundle(const Bundle& bundle,
                                                        const FieldMapping& default_mapping,
                                                        bool lenient) {
  std::vector<std::string> errors, warnings;
  const BundleManifest m = parse_manifest(bundle, errors, warnings);
  if (!errors.empty()) return Status::invalid(errors.front());
  auto mapping = bundle_mapping(bundle, m, &default_mapping);
  if (!mapping) return mapping.status();
  std::vector<SigmaRule> parsed;
  for (const BundleFile* f : rule_files(bundle, m, errors)) {
    for (auto& r : parse_sigma_documents(f->content, f->path)) {
      if (!r) {
        if (lenient) continue;
        return r.status();
      }
      parsed.push_back(std::move(*r));
    }
  }
  if (parsed.empty()) return Status::invalid("the bundle holds no rule");
  CompileReport cr;
  parsed = prepare_rules(std::move(parsed), m.select, cr);
  auto rs = RuleSet::compile(parsed, *mapping, cr);
  if (!rs) return rs.status();
  for (const auto& d : cr.rules) {
    if (!d.status.is_ok() && !lenient) return d.status;
  }
  if ((*rs)->rules().empty()) return Status::invalid("no rule of the bundle compiles");
  return *rs;
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
