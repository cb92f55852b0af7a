#pragma once
// A compiled rule set: Sigma rules resolved under a field mapping, ready to match.
//
// RuleSet::compile() resolves each rule's logsource and fields and compiles the rules'
// predicates and conditions (how, and why so: match/src/README.md). A rule that cannot be
// compiled is reported with its reason and left out; it never fails the compile of the
// others. A RuleSet is immutable and shared by all workers; each worker matches events with
// a Matcher of its own (matcher.h).

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "vigil/core/event.h"
#include "vigil/core/status.h"
#include "vigil/match/mapping.h"
#include "vigil/match/selection.h"
#include "vigil/match/sigma.h"

namespace vigil::match {

namespace detail {
struct CompiledRules;
}  // namespace detail

struct RuleInfo {
  std::string id;
  std::string title;
  std::string level;
  std::vector<std::string> tags;
  std::string source;
  // False for a base rule that only feeds correlations which do not `generate` its own
  // alerts: its matches are observed by the correlations, not reported.
  bool emit = true;
  // The Sigma filters ANDed into its condition ("id: title"), in the order applied.
  std::vector<std::string> filters;
};

// A correlation rule resolved against the compiled base rules and the field mapping.
// A base may be another correlation (a chain): its alerts are this one's matches, at the
// time of their window's last match, with this one's group-by values taken from its group.
struct CompiledCorrelation {
  static constexpr uint32_t kCorrelationBase = 0xffffffffu;  // bases[b] of a correlation
  RuleInfo info;
  Correlation spec;
  // Per base, in spec order: an index into RuleSet::rules(), or kCorrelationBase.
  std::vector<uint32_t> bases;
  std::vector<std::vector<uint32_t>> group_slots;  // per base: field slots of the group-by values
  std::vector<std::vector<uint32_t>> value_slots;  // per base: slots of the value_count fields
  // Per base: the correlation it names (an index into RuleSet::correlations(), always lower
  // than this one's), or -1 for a rule.
  std::vector<int32_t> inner;
  // Per base naming a correlation: for each group-by value of this one, its position among
  // that correlation's group-by values.
  std::vector<std::vector<uint32_t>> group_from_inner;
};

struct RuleDiagnostic {
  std::string source;
  std::string rule_id;  // empty if the rule did not parse far enough to have one
  std::string title;
  Status status;  // ok: compiled
  std::vector<std::string> warnings;
  // Compiled, but at risk at run time: a crafted value makes a regex of the rule hit PCRE2's
  // backtracking limit (the rule then fails on that event, the others do not). `rules
  // check` shows them; bundle validation refuses them.
  std::vector<std::string> risks;
  // Set: the rule was left out by the rule selection, and why (status stays ok).
  std::string left_out;
  // A filter document: the rules it was applied to (ids); its problems are in `status` and
  // `warnings` like a rule's.
  bool filter = false;
  std::vector<std::string> applies_to;
};

struct CompileReport {
  std::vector<RuleDiagnostic> rules;
  size_t compiled = 0;
  size_t unsupported = 0;  // rules, correlations and filters refused
  size_t left_out = 0;     // by the rule selection
  size_t filters = 0;      // applied to at least one rule
};

// Reads every *.yml / *.yaml under each path (files or directories, recursively, in a
// stable order) and parses every document of it (rules, correlations, filters). Unparseable
// documents become diagnostics in `report`.
std::vector<SigmaRule> load_rules(const std::vector<std::string>& paths, CompileReport& report);

// The rules `selection` keeps, and the base rules their correlations need (`selected` false);
// filters pass through. Each rule left out gets a diagnostic saying why.
std::vector<SigmaRule> select_rules(std::vector<SigmaRule> docs, const RuleSelection& selection,
                                    CompileReport& report);

// The rules with every filter of `docs` applied (and the filters taken out). A filter is
// refused, and applied to nothing, when it names a rule that is not in `docs` or
// `left_out_ids`, or a correlation, or when its values copied into every rule it applies to
// would pass `max_added_values` (all filters together: a filter of many values on `rules: any`
// multiplies them by the rules); a named rule whose logsource the filter's does not cover is a
// warning (not filtered). Each filter gets a diagnostic with the rules it applies to.
inline constexpr size_t kMaxFilterValues = 1'000'000;
std::vector<SigmaRule> apply_filters(std::vector<SigmaRule> docs,
                                     const std::vector<std::string>& left_out_ids,
                                     CompileReport& report,
                                     size_t max_added_values = kMaxFilterValues);

// select_rules, then apply_filters: what every loader compiles.
std::vector<SigmaRule> prepare_rules(std::vector<SigmaRule> docs, const RuleSelection& selection,
                                     CompileReport& report,
                                     size_t max_added_values = kMaxFilterValues);

class RuleSet {
 public:
  ~RuleSet();
  RuleSet(const RuleSet&) = delete;
  RuleSet& operator=(const RuleSet&) = delete;

  // Compiles `rules` under `mapping`. Per-rule outcomes are appended to `report`. Fails
  // only for errors of the whole set (Hyperscan unusable on this CPU, out of memory).
  static Expected<std::shared_ptr<const RuleSet>> compile(const std::vector<SigmaRule>& rules,
                                                          const FieldMapping& mapping,
                                                          CompileReport& report);

  const FieldSet& fields() const { return fields_; }
  const std::vector<RuleInfo>& rules() const { return rules_; }
  const std::vector<CompiledCorrelation>& correlations() const { return correlations_; }
  // Indexes into correlations() of those a base rule feeds (empty for most rules).
  const std::vector<uint32_t>& correlations_of(uint32_t rule) const {
    return correlations_of_rule_[rule];
  }
  // The correlations a correlation's alerts feed: (correlation index, base position) pairs.
  const std::vector<std::pair<uint32_t, uint32_t>>& chained_of(uint32_t correlation) const {
    return chained_of_[correlation];
  }
  // Slot of the mapping's host field in fields(), or -1.
  int32_t host_slot() const { return host_slot_; }
  int32_t time_slot() const { return time_slot_; }

  // The field slot of keyword patterns: they scan the raw event.
  static constexpr uint32_t kRawSlot = 0xffffffffu;

  // Sizes of the compiled form, for reports and benchmarks.
  size_t predicate_count() const;
  size_t database_count() const;
  size_t pattern_count() const;
  // Patterns Hyperscan runs as prefilters (lookaround, backreferences), confirmed by PCRE2.
  size_t confirmed_pattern_count() const;
  // Regex patterns scanned only when a rule using them is evaluated.
  size_t lazy_pattern_count() const;
  // Plain strings checked only when a rule using them is evaluated.
  size_t lazy_literal_count() const;

  // The compiled representation (match/src/compiled_rules.h), which a Matcher reads.
  const detail::CompiledRules& compiled() const { return *compiled_; }

 private:
  friend class RuleSetCompiler;
  RuleSet();

  FieldSet fields_;
  std::vector<RuleInfo> rules_;
  std::vector<CompiledCorrelation> correlations_;
  std::vector<std::vector<uint32_t>> correlations_of_rule_;
  std::vector<std::vector<std::pair<uint32_t, uint32_t>>> chained_of_;
  int32_t host_slot_ = -1;
  int32_t time_slot_ = -1;
  std::unique_ptr<detail::CompiledRules> compiled_;
};

}  // namespace vigil::match
