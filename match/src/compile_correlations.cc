// RuleSet::compile(), the correlations step.

#include <algorithm>

#include "compiler.h"

namespace vigil::match {

// Each correlation rule over the compiled base rules it names (by id or name), with the
// field slots of its group-by and value fields per base rule. A base rule that only feeds
// correlations which do not `generate` it emits no alerts of its own.
void RuleSetCompiler::compile_correlations() {
  std::vector<std::string> names;
  for (const auto& pr : pending_) names.push_back(pr.rule->name);
  const std::vector<const SigmaRule*>& correlation_rules = correlation_rules_;
  set_->correlations_of_rule_.assign(set_->rules_.size(), {});
  // A base rule is found by its id or its name.
  auto find_base = [&](const std::string& ref) -> int64_t {
    for (size_t i = 0; i < set_->rules_.size(); ++i) {
      if (set_->rules_[i].id == ref || (!names[i].empty() && names[i] == ref))
        return static_cast<int64_t>(i);
    }
    return -1;
  };
  // A field of a base rule lives where the mapping puts it for that rule's logsource.
  auto slot_of = [&](const std::string& sigma_field, const Logsource& ls, Status& bad) {
    const FieldSpec where = mapping_.field(sigma_field, ls);
    if (!where.unsupported.empty()) {
      bad = Status::unsupported("field '" + sigma_field + "' cannot be grouped on under mapping '" +
                                mapping_.name() + "': " + where.unsupported);
    }
    const auto& paths = where.paths;
    const uint32_t slot = set_->fields_.add(paths[0]);
    for (size_t i = 1; i < paths.size(); ++i) (void)set_->fields_.add_alias(paths[i], slot);
    return slot;
  };
  std::vector<bool> generated(set_->rules_.size(), false), referenced(set_->rules_.size(), false);
  for (const SigmaRule* rule : correlation_rules) {
    RuleDiagnostic diag{rule->source, rule->id, rule->title, Status::ok(), rule->warnings};
    const Correlation& spec = *rule->correlation;
    CompiledCorrelation cc{
        {rule->id, rule->title, rule->level, rule->tags, rule->source, true}, spec, {}, {}, {}};
    Status bad;
    for (const auto& ref : spec.rules) {
      const int64_t base = find_base(ref);
      if (base < 0) {
        const bool other =
            std::any_of(correlation_rules.begin(), correlation_rules.end(),
                        [&](const SigmaRule* c) { return c->id == ref || c->name == ref; });
        bad = other
                  ? Status::unsupported(rule->source + ": references correlation rule '" + ref +
                                        "'; chained correlations are not supported")
                  : Status::invalid(rule->source + ": references rule '" + ref +
                                    "', which is not a compiled rule of this set (by id or name)");
        break;
      }
      cc.bases.push_back(static_cast<uint32_t>(base));
    }
    // Group-by names are fields, or aliases naming each base rule's own field.
    for (const auto& [alias, per_rule] : spec.aliases) {
      if (std::find(spec.group_by.begin(), spec.group_by.end(), alias) == spec.group_by.end()) {
        bad = Status::invalid(rule->source + ": alias '" + alias + "' is not used in group-by");
      }
      for (const auto& [ref, field] : per_rule) {
        if (std::find(spec.rules.begin(), spec.rules.end(), ref) == spec.rules.end()) {
          bad = Status::invalid(rule->source + ": alias '" + alias + "' names rule '" + ref +
                                "', which the correlation does not use");
        }
      }
    }
    if (bad.is_ok()) {
      for (size_t b = 0; b < cc.bases.size(); ++b) {
        const Logsource& ls = pending_[cc.bases[b]].rule->logsource;
        std::vector<uint32_t> slots;
        for (const auto& g : spec.group_by) {
          std::string field = g;
          for (const auto& [alias, per_rule] : spec.aliases) {
            if (alias != g) continue;
            auto it = std::find_if(per_rule.begin(), per_rule.end(),
                                   [&](const auto& pr) { return pr.first == spec.rules[b]; });
            if (it == per_rule.end()) {
              bad = Status::invalid(rule->source + ": alias '" + alias +
                                    "' has no field for rule '" + spec.rules[b] + "'");
            } else {
              field = it->second;
            }
          }
          slots.push_back(slot_of(field, ls, bad));
        }
        cc.group_slots.push_back(std::move(slots));
        std::vector<uint32_t> counted;
        for (const auto& f : spec.fields) counted.push_back(slot_of(f, ls, bad));
        cc.value_slots.push_back(std::move(counted));
      }
    }
    if (!bad.is_ok()) {
      diag.status = std::move(bad);
      report_.rules.push_back(std::move(diag));
      ++report_.unsupported;
      continue;
    }
    const uint32_t index = static_cast<uint32_t>(set_->correlations_.size());
    for (uint32_t b : cc.bases) {
      auto& of = set_->correlations_of_rule_[b];
      if (std::find(of.begin(), of.end(), index) == of.end()) of.push_back(index);
      referenced[b] = true;
      generated[b] = generated[b] || spec.generate;
    }
    set_->correlations_.push_back(std::move(cc));
    report_.rules.push_back(std::move(diag));
  }
  for (size_t i = 0; i < set_->rules_.size(); ++i) {
    if (referenced[i] && !generated[i]) set_->rules_[i].emit = false;
  }
}

}  // namespace vigil::match
