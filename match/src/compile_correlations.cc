// RuleSet::compile(), the correlations step.

#include <algorithm>
#include <functional>
#include <map>

#include "compiler.h"

namespace vigil::match {

// Each correlation rule over what it names (by id or name): compiled base rules, with the field
// slots of its group-by and value fields per rule, or other correlations (a chain), with the
// positions of its group-by values among theirs. Correlations are compiled inner first, so an
// inner one always has the lower index; a cycle is refused by name. A base rule (or an inner
// correlation) that only feeds correlations which do not `generate` it emits no alerts.
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
  // A correlation rule, by its id or its name: its position in correlation_rules.
  auto find_correlation = [&](const std::string& ref) -> int64_t {
    for (size_t i = 0; i < correlation_rules.size(); ++i) {
      if (correlation_rules[i]->id == ref ||
          (!correlation_rules[i]->name.empty() && correlation_rules[i]->name == ref))
        return static_cast<int64_t>(i);
    }
    return -1;
  };
  auto label = [](const SigmaRule* r) { return r->name.empty() ? r->id : r->name; };
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

  // Inner correlations first (depth-first over the references); a reference back to a
  // correlation still being visited closes a cycle, which every member of it reports.
  enum class Visit : uint8_t { kNew, kOpen, kDone };
  std::vector<Visit> visit(correlation_rules.size(), Visit::kNew);
  std::vector<size_t> order;
  std::map<size_t, std::string> cycle_of;
  std::vector<size_t> path;
  std::function<void(size_t)> walk = [&](size_t i) {
    visit[i] = Visit::kOpen;
    path.push_back(i);
    for (const auto& ref : correlation_rules[i]->correlation->rules) {
      if (find_base(ref) >= 0) continue;
      const int64_t j = find_correlation(ref);
      if (j < 0) continue;
      const auto next = static_cast<size_t>(j);
      if (visit[next] == Visit::kOpen) {
        const auto from = std::find(path.begin(), path.end(), next);
        std::string cycle;
        for (auto it = from; it != path.end(); ++it)
          cycle += label(correlation_rules[*it]) + " -> ";
        cycle += label(correlation_rules[next]);
        for (auto it = from; it != path.end(); ++it) cycle_of.emplace(*it, cycle);
      } else if (visit[next] == Visit::kNew) {
        walk(next);
      }
    }
    path.pop_back();
    visit[i] = Visit::kDone;
    order.push_back(i);
  };
  for (size_t i = 0; i < correlation_rules.size(); ++i) {
    if (visit[i] == Visit::kNew) walk(i);
  }

  std::vector<int64_t> compiled_as(correlation_rules.size(), -1);  // index in correlations_
  std::vector<bool> generated(set_->rules_.size(), false), referenced(set_->rules_.size(), false);
  std::vector<bool> inner_generated, inner_referenced;
  for (const size_t position : order) {
    const SigmaRule* rule = correlation_rules[position];
    RuleDiagnostic diag{rule->source, rule->id, rule->title, Status::ok(), rule->warnings};
    const Correlation& spec = *rule->correlation;
    CompiledCorrelation cc{{rule->id, rule->title, rule->level, rule->tags, rule->source, true},
                           spec,
                           {},
                           {},
                           {},
                           {},
                           {}};
    Status bad;
    if (auto c = cycle_of.find(position); c != cycle_of.end()) {
      bad = Status::invalid(rule->source +
                            ": correlations refer to each other in a cycle: " + c->second);
    }
    for (size_t b = 0; b < spec.rules.size() && bad.is_ok(); ++b) {
      const std::string& ref = spec.rules[b];
      if (const int64_t base = find_base(ref); base >= 0) {
        cc.bases.push_back(static_cast<uint32_t>(base));
        cc.inner.push_back(-1);
        continue;
      }
      const int64_t other = find_correlation(ref);
      if (other < 0) {
        bad = Status::invalid(rule->source + ": references rule '" + ref +
                              "', which is not a compiled rule of this set (by id or name)");
      } else if (compiled_as[static_cast<size_t>(other)] < 0) {
        bad = Status::invalid(rule->source + ": references correlation '" + ref +
                              "', which did not compile");
      } else if (spec.reads_values()) {
        bad = Status::unsupported(rule->source + ": " +
                                  std::string(correlation_type_name(spec.type)) +
                                  " reads a field of its matches' events; the alerts of "
                                  "correlation '" +
                                  ref + "' have none");
      } else {
        cc.bases.push_back(CompiledCorrelation::kCorrelationBase);
        cc.inner.push_back(static_cast<int32_t>(compiled_as[static_cast<size_t>(other)]));
      }
    }
    // Group-by names are fields, or aliases naming each base rule's own field (for a
    // correlation: one of its group-by names).
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
        std::vector<std::string> fields;
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
          fields.push_back(std::move(field));
        }
        std::vector<uint32_t> slots, positions, counted;
        if (cc.inner[b] >= 0) {
          const CompiledCorrelation& in = set_->correlations_[static_cast<size_t>(cc.inner[b])];
          for (const auto& f : fields) {
            const auto at = std::find(in.spec.group_by.begin(), in.spec.group_by.end(), f);
            if (at == in.spec.group_by.end()) {
              bad = Status::invalid(rule->source + ": group-by '" + f +
                                    "' is not among the group-by fields of correlation '" +
                                    spec.rules[b] + "'");
            }
            positions.push_back(static_cast<uint32_t>(at - in.spec.group_by.begin()));
          }
        } else {
          const Logsource& ls = pending_[cc.bases[b]].rule->logsource;
          for (const auto& f : fields) slots.push_back(slot_of(f, ls, bad));
          for (const auto& f : spec.fields) counted.push_back(slot_of(f, ls, bad));
        }
        cc.group_slots.push_back(std::move(slots));
        cc.value_slots.push_back(std::move(counted));
        cc.group_from_inner.push_back(std::move(positions));
      }
    }
    if (!bad.is_ok()) {
      diag.status = std::move(bad);
      report_.rules.push_back(std::move(diag));
      ++report_.unsupported;
      continue;
    }
    const uint32_t index = static_cast<uint32_t>(set_->correlations_.size());
    compiled_as[position] = index;
    set_->chained_of_.emplace_back();
    inner_generated.push_back(false);
    inner_referenced.push_back(false);
    for (uint32_t b = 0; b < cc.bases.size(); ++b) {
      if (cc.inner[b] >= 0) {
        const auto in = static_cast<size_t>(cc.inner[b]);
        set_->chained_of_[in].emplace_back(index, b);
        inner_referenced[in] = true;
        inner_generated[in] = inner_generated[in] || spec.generate;
        continue;
      }
      auto& of = set_->correlations_of_rule_[cc.bases[b]];
      if (std::find(of.begin(), of.end(), index) == of.end()) of.push_back(index);
      referenced[cc.bases[b]] = true;
      generated[cc.bases[b]] = generated[cc.bases[b]] || spec.generate;
    }
    set_->correlations_.push_back(std::move(cc));
    report_.rules.push_back(std::move(diag));
  }
  for (size_t i = 0; i < set_->rules_.size(); ++i) {
    if (referenced[i] && !generated[i]) set_->rules_[i].emit = false;
  }
  for (size_t i = 0; i < set_->correlations_.size(); ++i) {
    if (inner_referenced[i] && !inner_generated[i]) set_->correlations_[i].info.emit = false;
  }
}

}  // namespace vigil::match
