// Bundle validation: the rules parsed, compiled together, run over their tests, each measured
// alone (the manifest and the files it names: bundle_manifest.cc; the report: bundle_report.cc).

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "bundle_internal.h"
#include "vigil/core/event.h"
#include "vigil/match/bundle.h"
#include "vigil/match/matcher.h"

namespace vigil::match {

using namespace detail;

namespace {
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
    for (const auto& f : r.correlation->fields) out.insert(f);
  }
}

}  // namespace

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

}  // namespace vigil::match
