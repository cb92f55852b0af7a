// Sigma filters (specification v2): apply_filters() (ruleset.h).

#include <algorithm>
#include <unordered_map>

#include "vigil/match/ruleset.h"

namespace vigil::match {
namespace {

void offset_leaves(CondNode& n, uint32_t offset) {
  if (n.kind == CondNode::Kind::kPred) n.index += offset;
  for (auto& c : n.children) offset_leaves(c, offset);
}

// `rule` AND the filter's condition, over the rule's predicates and the filter's.
void apply(const SigmaRule& filter, SigmaRule& rule) {
  const auto offset = static_cast<uint32_t>(rule.predicates.size());
  rule.predicates.insert(rule.predicates.end(), filter.predicates.begin(), filter.predicates.end());
  CondNode cond = filter.condition;
  offset_leaves(cond, offset);
  CondNode both;
  both.kind = CondNode::Kind::kAnd;
  both.children.push_back(std::move(rule.condition));
  both.children.push_back(std::move(cond));
  rule.condition = std::move(both);
  rule.filters.push_back((filter.id.empty() ? filter.source : filter.id) + ": " + filter.title);
}

}  // namespace

std::vector<SigmaRule> apply_filters(std::vector<SigmaRule> docs,
                                     const std::vector<std::string>& left_out_ids,
                                     CompileReport& report, size_t max_added_values) {
  size_t added = 0;  // values copied into rules so far
  std::vector<SigmaRule> rules, filters;
  for (auto& d : docs) (d.filter ? filters : rules).push_back(std::move(d));
  std::unordered_map<std::string, std::vector<size_t>> by_ref;  // id or name -> rules
  for (size_t i = 0; i < rules.size(); ++i) {
    by_ref[rules[i].id].push_back(i);
    if (!rules[i].name.empty() && rules[i].name != rules[i].id) by_ref[rules[i].name].push_back(i);
  }
  for (const SigmaRule& f : filters) {
    RuleDiagnostic d{f.source, f.id, f.title, Status::ok(), f.warnings};
    d.filter = true;
    const std::string who = f.source + ": filter '" + (f.id.empty() ? f.title : f.id) + "'";
    std::vector<size_t> targets;
    if (f.filter->rules.empty()) {  // `rules: any`: every rule of its logsource
      for (size_t i = 0; i < rules.size(); ++i) {
        if (!rules[i].correlation && f.logsource.covers(rules[i].logsource)) targets.push_back(i);
      }
    }
    for (const auto& ref : f.filter->rules) {
      auto it = by_ref.find(ref);
      if (it == by_ref.end()) {
        if (std::find(left_out_ids.begin(), left_out_ids.end(), ref) != left_out_ids.end()) {
          d.warnings.push_back("rule '" + ref + "' is left out by the rule selection");
          continue;
        }
        d.status = Status::invalid(who + " names rule '" + ref +
                                   "', which is not a rule of this set (by id or name)");
        break;
      }
      for (size_t i : it->second) {
        const SigmaRule& r = rules[i];
        if (r.correlation) {
          d.status = Status::invalid(who + " names correlation rule '" + ref +
                                     "'; filters apply to detection rules");
          break;
        }
        if (!f.logsource.covers(r.logsource)) {
          d.warnings.push_back("not applied to rule '" + ref + "': its logsource (" +
                               r.logsource.to_string() + ") is outside the filter's (" +
                               f.logsource.to_string() + ")");
          continue;
        }
        targets.push_back(i);
      }
      if (!d.status.is_ok()) break;
    }
    if (d.status.is_ok()) {
      std::sort(targets.begin(), targets.end());
      targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
      const size_t cost = f.predicates.size() * targets.size();
      if (cost > max_added_values - added) {
        d.status = Status::invalid(who + " would add " + std::to_string(cost) + " values to " +
                                   std::to_string(targets.size()) + " rules, past the limit of " +
                                   std::to_string(max_added_values) + " values filters may add");
        targets.clear();
      } else {
        added += cost;
      }
    }
    if (d.status.is_ok()) {
      for (size_t i : targets) {
        apply(f, rules[i]);
        d.applies_to.push_back(rules[i].id);
      }
      if (targets.empty())
        d.warnings.push_back("applies to no rule of this set");
      else
        ++report.filters;
    } else {
      ++report.unsupported;
    }
    report.rules.push_back(std::move(d));
  }
  return rules;
}

}  // namespace vigil::match
