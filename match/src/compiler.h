#pragma once
// RuleSet::compile() in named steps, over the state they share. Private to vigil_match; the
// pipeline, the cost model and what was tried are in match/src/README.md.
//
//   index_logsources     the mapping's logsources and the fields that select them
//   resolve_rules        per rule: placeholders, logsource, patterns checked, the condition
//                        over deduplicated global predicates (lists of values fused)
//   price_predicates     how often each predicate holds; each rule's trigger predicates
//   build_databases      direct predicates, lazy patterns, one Hyperscan database per
//                        (field, logsource), PCRE2 confirmations (compile_databases.cc)
//   build_programs       each condition as a prefix program; trigger runs; predicate users
//   compile_correlations correlation rules over the compiled base rules
//                        (compile_correlations.cc)
//   index_logsource_lookup  finding an event's logsources without testing each

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "compiled_rules.h"
#include "vigil/match/ruleset.h"

namespace vigil::match {

class RuleSetCompiler {
 public:
  RuleSetCompiler(const FieldMapping& mapping, CompileReport& report);

  // The steps in order; fails only for errors of the whole set.
  Expected<std::shared_ptr<const RuleSet>> run(const std::vector<SigmaRule>& rules);

 private:
  using CompiledRules = detail::CompiledRules;

  // A condition leaf's global predicate: a set of patterns on one field (their OR), or a
  // predicate evaluated without Hyperscan.
  struct PredDef {
    bool pattern = true;
    std::vector<uint32_t> patterns;  // sorted pattern ids
    // Direct predicates:
    uint32_t group = 0, slot = 0, ref_slot = 0;
    Predicate::Kind kind = Predicate::Kind::kPattern;
    std::string operand;
    std::string time_part;  // comparisons of a part of a date
  };
  struct PatternDef {
    uint32_t slot;
    std::string regex;
    unsigned flags;
    auto operator<=>(const PatternDef&) const = default;
  };
  struct DirectKey {
    uint32_t group, slot;
    Predicate::Kind kind;
    std::string operand;
    uint32_t ref_slot;
    std::string time_part;
    auto operator<=>(const DirectKey&) const = default;
  };
  struct PendingRule {
    const SigmaRule* rule;
    uint32_t group;
    CondNode condition;   // leaves are global predicate ids
    size_t report_index;  // its diagnostic in report.rules
  };
  // A Hyperscan database: (field slot, the logsources whose events scan it).
  using DbKey = std::pair<uint32_t, std::set<uint32_t>>;

  void index_logsources();
  void resolve_rules(const std::vector<SigmaRule>& rules);
  // One rule; on success it is pending (a base rule) or waits for compile_correlations.
  Status resolve_rule(const SigmaRule& original, const RuleDiagnostic& diag);
  // Per predicate of `rule`: whether Hyperscan takes its pattern only as a prefilter.
  Expected<std::vector<bool>> check_patterns(const SigmaRule& rule);
  // Per predicate of `rule`: its global predicate id.
  Expected<std::vector<uint32_t>> predicate_ids(const SigmaRule& rule, uint32_t group,
                                                const std::vector<bool>& needs_prefilter);
  void fuse_predicates();
  void price_predicates();
  void literal_chances();
  void choose_triggers();
  Status build_databases();
  void add_direct_predicates();
  void choose_lazy();
  std::vector<DbKey> db_keys(uint32_t pattern) const;
  Status place_patterns();
  void add_lazy_literal(uint32_t pattern, const std::string& literal, CompiledRules::Pattern& lit);
  Status compile_databases();
  Status compile_lazy_fields();
  void order_lazy_checks();
  void build_programs();
  void compile_correlations();
  void index_triggers();
  void index_predicate_users();
  void report_risks();
  void index_logsource_lookup();

  const FieldMapping& mapping_;
  CompileReport& report_;
  std::shared_ptr<RuleSet> set_;
  CompiledRules& c_;

  // resolve_rules
  std::map<PatternDef, uint32_t> pattern_ids_;
  std::unordered_map<std::string, Expected<bool>> checked_patterns_;  // regex '\0' flags
  std::vector<PatternDef> patterns_;
  std::vector<bool> prefilter_;  // per pattern: Hyperscan runs it as a prefilter
  // Confirmed patterns that a crafted value drives into PCRE2's backtracking limit, with why.
  std::vector<std::pair<uint32_t, std::string>> risky_patterns_;
  std::vector<PredDef> preds_;
  std::map<std::vector<uint32_t>, uint32_t> pattern_pred_ids_;
  std::map<DirectKey, uint32_t> direct_pred_ids_;
  std::map<std::vector<uint32_t>, uint32_t> group_ids_;
  std::vector<PendingRule> pending_;
  std::set<std::string> seen_ids_;
  std::vector<const SigmaRule*> correlation_rules_;
  std::vector<std::unique_ptr<SigmaRule>> resolved_rules_;  // with `expand` values resolved

  // price_predicates: per pattern, the plain strings it stands for (nullopt: a regex), their
  // anchors, and how likely it is to occur; per predicate, its cost as a trigger.
  std::vector<std::optional<std::vector<std::string>>> variants_of_;
  std::vector<uint8_t> anchors_of_;
  std::vector<bool> lazy_candidate_;  // a regex, not a prefilter
  std::vector<bool> plain_;           // plain strings
  std::vector<double> chance_;
  std::vector<double> cost_;
  std::vector<std::optional<std::vector<uint32_t>>> triggers_;  // per pending rule
  std::vector<bool> trigger_pred_;

  // build_databases
  std::vector<std::vector<uint32_t>> preds_of_pattern_;
  std::vector<bool> lazy_;                          // per pattern
  std::vector<std::set<uint32_t>> pattern_groups_;  // per pattern: the groups using it
  // Scan patterns (Hyperscan ids): one per regex, one per variant of a plain string.
  std::map<DbKey, std::vector<uint32_t>> regex_ids_, literal_ids_;  // database -> scan patterns
  std::map<uint32_t, uint32_t> regex_pattern_;                      // scan pattern -> pattern
  std::vector<std::string> literals_;  // per scan pattern, literals only
  std::vector<unsigned> literal_flags_;
  std::vector<std::vector<CompiledRules::LazyCheck>> lazy_checks_of_;  // per lazy pattern
  std::map<uint32_t, uint32_t> lazy_field_of_slot_;    // field slot -> index in lazy_fields
  std::vector<std::vector<uint32_t>> lazy_field_ids_;  // per lazy field: its scan patterns

  // build_programs
  std::vector<std::vector<uint32_t>> rules_of_predicate_;
};

}  // namespace vigil::match
