// RuleSet::compile() in steps (see compiler.h for the list, match/src/README.md for why).
// The databases step is in compile_databases.cc, correlations in compile_correlations.cc.

#include <hs/hs.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <string_view>

#include "compiler.h"
#include "patterns.h"
#include "vigil/match/database_cache.h"

namespace vigil::match {

namespace {

using CompiledRules = detail::CompiledRules;
constexpr uint32_t kRawSlot = CompiledRules::kRawSlot;
constexpr uint32_t kNoSlot = CompiledRules::kNoSlot;
constexpr uint8_t kAnchorStart = CompiledRules::kAnchorStart;
constexpr uint8_t kAnchorEnd = CompiledRules::kAnchorEnd;
using Op = CompiledRules::Op;

// Trigger set of a condition: predicates at least one of which is true whenever the
// condition holds; nullopt when there is none (the condition can hold with every
// predicate false, as `not filter` does). Under `and`, the cheapest child's set is enough.
std::optional<std::vector<uint32_t>> trigger_set(const CondNode& n,
                                                 const std::vector<double>& cost) {
  switch (n.kind) {
    case CondNode::Kind::kPred:
      return std::vector<uint32_t>{n.index};
    case CondNode::Kind::kConst:
      return n.value ? std::nullopt : std::optional(std::vector<uint32_t>{});
    case CondNode::Kind::kNot:
      return std::nullopt;
    case CondNode::Kind::kOr:
    case CondNode::Kind::kAtLeast: {
      if (n.kind == CondNode::Kind::kAtLeast && n.index == 0) return std::nullopt;
      if (n.kind == CondNode::Kind::kAtLeast && n.index > n.children.size())
        return std::vector<uint32_t>{};
      std::vector<uint32_t> all;
      for (const auto& c : n.children) {
        auto t = trigger_set(c, cost);
        if (!t) return std::nullopt;
        all.insert(all.end(), t->begin(), t->end());
      }
      std::sort(all.begin(), all.end());
      all.erase(std::unique(all.begin(), all.end()), all.end());
      return all;
    }
    case CondNode::Kind::kAnd: {
      std::optional<std::vector<uint32_t>> best;
      double best_cost = 0;
      for (const auto& c : n.children) {
        auto t = trigger_set(c, cost);
        if (!t) continue;
        double sum = 0;
        for (uint32_t p : *t) sum += cost[p];
        if (!best || sum < best_cost) {
          best = std::move(t);
          best_cost = sum;
        }
      }
      return best;
    }
  }
  return std::nullopt;
}

// Flattens nested ORs and fuses the pattern leaves of an OR that test one field into one
// predicate (a list of values is one bit, one program instruction, not one per value).
template <typename PredDef, typename PatternDef>
void fuse_or_leaves(CondNode& n, std::vector<PredDef>& preds,
                    std::map<std::vector<uint32_t>, uint32_t>& pattern_preds,
                    const std::vector<PatternDef>& patterns) {
  for (auto& c : n.children) fuse_or_leaves(c, preds, pattern_preds, patterns);
  const bool any_of =
      n.kind == CondNode::Kind::kOr || (n.kind == CondNode::Kind::kAtLeast && n.index == 1);
  if (!any_of) return;
  std::vector<CondNode> flat;
  for (auto& c : n.children) {
    if (c.kind == CondNode::Kind::kOr) {
      for (auto& g : c.children) flat.push_back(std::move(g));
    } else {
      flat.push_back(std::move(c));
    }
  }
  std::map<uint32_t, std::vector<uint32_t>> by_slot;  // field slot -> patterns
  std::vector<CondNode> rest;
  for (auto& c : flat) {
    if (c.kind == CondNode::Kind::kPred && preds[c.index].pattern) {
      const auto& ps = preds[c.index].patterns;
      auto& into = by_slot[patterns[ps[0]].slot];
      into.insert(into.end(), ps.begin(), ps.end());
    } else {
      rest.push_back(std::move(c));
    }
  }
  for (auto& [slot, ps] : by_slot) {
    std::sort(ps.begin(), ps.end());
    ps.erase(std::unique(ps.begin(), ps.end()), ps.end());
    auto [it, fresh] = pattern_preds.emplace(ps, static_cast<uint32_t>(preds.size()));
    if (fresh) {
      PredDef d;
      d.patterns = ps;
      preds.push_back(std::move(d));
    }
    CondNode leaf;
    leaf.kind = CondNode::Kind::kPred;
    leaf.index = it->second;
    rest.push_back(std::move(leaf));
  }
  if (rest.size() == 1) {
    CondNode only = std::move(rest[0]);
    n = std::move(only);
    return;
  }
  n.kind = CondNode::Kind::kOr;
  n.index = 0;
  n.children = std::move(rest);
}

CondNode remap_leaves(const CondNode& n, const std::vector<uint32_t>& ids) {
  CondNode out;
  out.kind = n.kind;
  out.index = n.kind == CondNode::Kind::kPred ? ids[n.index] : n.index;
  out.value = n.value;
  for (const auto& c : n.children) out.children.push_back(remap_leaves(c, ids));
  return out;
}

}  // namespace

Expected<std::shared_ptr<const RuleSet>> RuleSet::compile(const std::vector<SigmaRule>& rules,
                                                          const FieldMapping& mapping,
                                                          CompileReport& report) {
  if (hs_valid_platform() != HS_SUCCESS)
    return Status::unsupported("Hyperscan needs a CPU with SSSE3");
  return RuleSetCompiler(mapping, report).run(rules);
}

RuleSet::RuleSet() : compiled_(std::make_unique<detail::CompiledRules>()) {}
RuleSet::~RuleSet() = default;

size_t RuleSet::predicate_count() const { return compiled_->predicate_count; }
size_t RuleSet::database_count() const { return compiled_->databases.size(); }
size_t RuleSet::pattern_count() const { return compiled_->patterns.size(); }
size_t RuleSet::confirmed_pattern_count() const { return compiled_->confirms.size(); }
size_t RuleSet::lazy_pattern_count() const { return compiled_->lazy_databases.size(); }
size_t RuleSet::lazy_literal_count() const { return compiled_->lazy_literals.size(); }

RuleSetCompiler::RuleSetCompiler(const FieldMapping& mapping, CompileReport& report)
    : mapping_(mapping), report_(report), set_(new RuleSet()), c_(*set_->compiled_) {}

Expected<std::shared_ptr<const RuleSet>> RuleSetCompiler::run(const std::vector<SigmaRule>& rules) {
  index_logsources();
  resolve_rules(rules);
  price_predicates();
  if (Status s = build_databases(); !s.is_ok()) return s;
  build_programs();
  compile_correlations();
  index_triggers();
  index_predicate_users();
  report_risks();
  report_.compiled += c_.compiled.size() + set_->correlations_.size();
  index_logsource_lookup();
  return std::shared_ptr<const RuleSet>(std::move(set_));
}

// The fields logsources are selected by, with the values each logsource accepts.
void RuleSetCompiler::index_logsources() {
  for (const auto& ls : mapping_.logsources()) {
    for (const auto& [path, values] : ls.where) {
      const uint32_t slot = set_->fields_.add(path);
      auto it = std::find_if(c_.where_fields.begin(), c_.where_fields.end(),
                             [&](const auto& w) { return w.slot == slot; });
      if (it == c_.where_fields.end())
        it = c_.where_fields.insert(it, CompiledRules::WhereField{slot, {}});
      for (const auto& v : values) it->values.push_back(ascii_lower(v));
    }
  }
  for (auto& w : c_.where_fields) {
    std::sort(w.values.begin(), w.values.end());
    w.values.erase(std::unique(w.values.begin(), w.values.end()), w.values.end());
    for (size_t i = 0; i < w.values.size(); ++i) {
      w.ids.emplace(w.values[i], static_cast<int32_t>(i));
      w.longest = std::max(w.longest, w.values[i].size());
    }
  }
  for (const auto& ls : mapping_.logsources()) {
    CompiledRules::LogsourceCheck check;
    for (const auto& [path, values] : ls.where) {
      const uint32_t slot = set_->fields_.add(path);
      const auto& wf = c_.where_fields;
      const auto w =
          std::find_if(wf.begin(), wf.end(), [&](const auto& x) { return x.slot == slot; }) -
          wf.begin();
      std::vector<int32_t> ids;
      for (const auto& v : values) {
        const auto& all = wf[static_cast<size_t>(w)].values;
        ids.push_back(static_cast<int32_t>(
            std::lower_bound(all.begin(), all.end(), ascii_lower(v)) - all.begin()));
      }
      check.where.emplace_back(static_cast<uint32_t>(w), std::move(ids));
    }
    c_.logsources.push_back(std::move(check));
  }
  if (!mapping_.host_field().empty())
    set_->host_slot_ = static_cast<int32_t>(set_->fields_.add(mapping_.host_field()));
  if (!mapping_.time_field().empty())
    set_->time_slot_ = static_cast<int32_t>(set_->fields_.add(mapping_.time_field()));
}

// Pass 1: per rule, resolve logsource and fields, check its own patterns, and turn its
// condition into a tree over global predicates.
void RuleSetCompiler::resolve_rules(const std::vector<SigmaRule>& rules) {
  for (const SigmaRule& original : rules) {
    RuleDiagnostic diag{original.source, original.id, original.title, Status::ok(),
                        original.warnings};
    if (Status s = resolve_rule(original, diag); !s.is_ok()) {
      diag.status = std::move(s);
      report_.rules.push_back(std::move(diag));
      ++report_.unsupported;
    }
  }
  fuse_predicates();
}

Status RuleSetCompiler::resolve_rule(const SigmaRule& original, const RuleDiagnostic& diag) {
  if (!seen_ids_.insert(original.id).second)
    return Status::invalid(original.source + ": duplicate rule id '" + original.id + "'");
  if (original.filter)
    return Status::invalid(original.source + ": filter '" + original.title +
                           "' is not a rule; apply_filters() applies it to the rules it names");
  if (original.correlation) {
    correlation_rules_.push_back(&original);  // resolved once the base rules are compiled
    return Status::ok();
  }
  auto resolved = apply_mapping(original, mapping_);
  if (!resolved) return resolved.status();
  resolved_rules_.push_back(std::make_unique<SigmaRule>(std::move(*resolved)));
  const SigmaRule& rule = *resolved_rules_.back();
  auto ls = mapping_.logsources_for(rule.logsource);
  if (ls.empty()) {
    return Status::unsupported(rule.source + ": logsource '" + rule.logsource.to_string() +
                               "' has no entry in mapping '" + mapping_.name() + "'");
  }
  auto needs_prefilter = check_patterns(rule);
  if (!needs_prefilter) return needs_prefilter.status();
  auto [git, inserted] = group_ids_.emplace(ls, static_cast<uint32_t>(c_.groups.size()));
  if (inserted) {
    c_.groups.emplace_back();
    c_.groups.back().logsources = ls;
  }
  const uint32_t group = git->second;
  auto ids = predicate_ids(rule, group, *needs_prefilter);
  if (!ids) return ids.status();
  pending_.push_back({&rule, group, remap_leaves(rule.condition, *ids), report_.rules.size()});
  report_.rules.push_back(diag);
  return Status::ok();
}

Expected<std::vector<bool>> RuleSetCompiler::check_patterns(const SigmaRule& rule) {
  std::vector<bool> needs_prefilter(rule.predicates.size(), false);
  for (size_t i = 0; i < rule.predicates.size(); ++i) {
    const auto& p = rule.predicates[i];
    if (p.kind != Predicate::Kind::kPattern) continue;
    // Many rules share patterns, and each hs_expression_info call costs several cpuid
    // instructions inside Hyperscan (its target detection), which trap to the hypervisor
    // on a VM: one check per distinct pattern.
    std::string check_key = p.regex;
    check_key.push_back('\0');
    check_key += std::to_string(hs_flags(p));
    auto checked_it = checked_patterns_.find(check_key);
    if (checked_it == checked_patterns_.end()) {
      checked_it =
          checked_patterns_
              .emplace(std::move(check_key),
                       DatabaseCache::check_pattern(
                           p.regex, hs_flags(p), [&p] { return vigil::match::check_pattern(p); }))
              .first;
    }
    const Expected<bool>& mode = checked_it->second;
    if (!mode)
      return Status(mode.status().code(),
                    rule.source + ": field '" + p.field + "': " + mode.status().message());
    needs_prefilter[i] = *mode;
  }
  return needs_prefilter;
}

Expected<std::vector<uint32_t>> RuleSetCompiler::predicate_ids(
    const SigmaRule& rule, uint32_t group, const std::vector<bool>& needs_prefilter) {
  Status bad;
  std::vector<uint32_t> ids;  // local predicate index -> global predicate id
  for (size_t i = 0; i < rule.predicates.size(); ++i) {
    const auto& p = rule.predicates[i];
    const auto paths = p.field.empty()   ? std::vector<std::string>{}
                       : !p.path.empty() ? std::vector<std::string>{p.path}
                                         : mapping_.json_paths(p.field, rule.logsource);
    const uint32_t slot = p.field.empty() ? kRawSlot : set_->fields_.add(paths[0]);
    for (size_t j = 1; j < paths.size(); ++j) {
      if (!set_->fields_.add_alias(paths[j], slot)) {
        bad = Status::invalid(rule.source + ": field '" + p.field + "' maps to '" + paths[j] +
                              "', which another field already uses");
      }
    }
    if (p.kind == Predicate::Kind::kPattern) {
      const unsigned flags = hs_flags(p) | (needs_prefilter[i] ? HS_FLAG_PREFILTER : 0);
      auto [pit, fresh_pattern] = pattern_ids_.emplace(PatternDef{slot, p.regex, flags},
                                                       static_cast<uint32_t>(patterns_.size()));
      if (fresh_pattern) {
        patterns_.push_back(pit->first);
        prefilter_.push_back(needs_prefilter[i]);
      }
      const std::vector<uint32_t> key{pit->second};
      auto [it, fresh] = pattern_pred_ids_.emplace(key, static_cast<uint32_t>(preds_.size()));
      if (fresh) {
        PredDef d;
        d.patterns = key;
        preds_.push_back(std::move(d));
      }
      ids.push_back(it->second);
      continue;
    }
    uint32_t ref_slot = 0;
    if (p.kind == Predicate::Kind::kFieldRef) {
      const auto ref_paths = mapping_.json_paths(p.operand, rule.logsource);
      ref_slot = set_->fields_.add(ref_paths[0]);
      for (size_t j = 1; j < ref_paths.size(); ++j)
        (void)set_->fields_.add_alias(ref_paths[j], ref_slot);
    }
    auto [it, fresh] =
        direct_pred_ids_.emplace(DirectKey{group, slot, p.kind, p.operand, ref_slot, p.time_part},
                                 static_cast<uint32_t>(preds_.size()));
    if (fresh) {
      PredDef d;
      d.pattern = false;
      d.group = group;
      d.slot = slot;
      d.kind = p.kind;
      d.operand = p.operand;
      d.time_part = p.time_part;
      d.ref_slot = ref_slot;
      preds_.push_back(std::move(d));
    }
    ids.push_back(it->second);
  }
  if (!bad.is_ok()) return bad;
  return ids;
}

// Lists of values on one field become one predicate; each predicate's field slot.
void RuleSetCompiler::fuse_predicates() {
  for (auto& pr : pending_) fuse_or_leaves(pr.condition, preds_, pattern_pred_ids_, patterns_);
  c_.predicate_count = preds_.size();
  c_.predicate_slot.resize(preds_.size());
  for (uint32_t id = 0; id < preds_.size(); ++id) {
    const PredDef& d = preds_[id];
    // kMissing holds when the field is absent: it points at nothing in the event.
    c_.predicate_slot[id] =
        d.pattern ? patterns_[d.patterns[0]].slot
        : d.kind == Predicate::Kind::kMissing || d.kind == Predicate::Kind::kAbsent ? kNoSlot
                                                                                    : d.slot;
  }
}

// Regexes that are not plain strings cost a Hyperscan database every event of their field
// scans whatever the rest of the rule says (the tree's `CommandLine` regexes alone were a
// ninth of an event's matching time). A regex whose rules can be triggered by another
// predicate is lazy: it is left out of the field's database and, in a database of its own,
// scanned only when a rule using it is evaluated (see Matcher::Impl::resolve).
void RuleSetCompiler::price_predicates() {
  literal_chances();
  choose_triggers();
}

// A plain string's chance of occurring in a value falls with its length: a short one
// (`/c`, or a two-byte homoglyph) is found in many events and, as a trigger, makes its
// rules candidates for most of them. Its price is weighed by that chance, halved for
// every two bytes (an anchor counts as two bytes; 12 bytes weigh 1), and by its number
// of variants.
// Length is a poor guide for pieces of what nearly every Windows event holds (`\Windows\`
// in a path, `Microsoft Corporation` as the company, `.exe`): those are priced as a
// one-byte string, whatever their anchors.
void RuleSetCompiler::literal_chances() {
  static constexpr std::string_view kCommonText[] = {"c:\\windows\\system32\\",
                                                     "c:\\windows\\syswow64\\",
                                                     "c:\\program files (x86)\\",
                                                     "c:\\programdata\\",
                                                     "c:\\users\\",
                                                     "\\appdata\\local\\temp\\",
                                                     "\\appdata\\roaming\\",
                                                     "microsoft corporation",
                                                     "nt authority\\system",
                                                     "\\device\\harddiskvolume",
                                                     ".exe",
                                                     ".dll"};
  auto common = [](const std::string& literal) {
    const std::string lower = ascii_lower(literal);
    return std::any_of(std::begin(kCommonText), std::end(kCommonText),
                       [&](std::string_view t) { return t.find(lower) != std::string_view::npos; });
  };
  variants_of_.assign(patterns_.size(), std::nullopt);
  anchors_of_.assign(patterns_.size(), 0);
  lazy_candidate_.assign(patterns_.size(), false);
  plain_.assign(patterns_.size(), false);
  chance_.assign(patterns_.size(), 1);
  for (uint32_t pat = 0; pat < patterns_.size(); ++pat) {
    if (!prefilter_[pat])
      variants_of_[pat] = literal_variants(patterns_[pat].regex, anchors_of_[pat]);
    const auto& variants = variants_of_[pat];
    const uint8_t anchors = anchors_of_[pat];
    lazy_candidate_[pat] = !prefilter_[pat] && !variants;
    plain_[pat] = variants.has_value();
    if (variants) {
      size_t shortest = SIZE_MAX;
      bool any_common = false;
      for (const auto& v : *variants) {
        shortest = std::min(shortest, v.size());
        any_common = any_common || common(v);
      }
      const size_t bytes =
          shortest + (anchors & kAnchorStart ? 2 : 0) + (anchors & kAnchorEnd ? 2 : 0);
      chance_[pat] = static_cast<double>(variants->size()) *
                     (any_common ? 64.0 : std::exp2((12.0 - static_cast<double>(bytes)) / 2));
    }
  }
}

// Trigger sets: a rule is evaluated for an event only when one of its trigger predicates
// holds. The cost of a predicate estimates how often it holds: patterns shared by many
// rules (`\cmd.exe`) are common, field presence tests are nearly always true.
void RuleSetCompiler::choose_triggers() {
  // A lazy-able regex as a trigger costs a scan of its field for every event: it is chosen
  // only over predicates that hold for nearly every event.
  constexpr double kRegexTriggerCost = 1e4;  // above other patterns and comparisons, below `exists`
  std::vector<double> pattern_users(patterns_.size(), 0);
  cost_.assign(preds_.size(), 0);
  for (const auto& pr : pending_) {
    auto count = [&](auto&& self, const CondNode& n) -> void {
      if (n.kind == CondNode::Kind::kPred && preds_[n.index].pattern) {
        for (uint32_t pat : preds_[n.index].patterns) pattern_users[pat] += 1;
      }
      for (const auto& c : n.children) self(self, c);
    };
    count(count, pr.condition);
  }
  for (uint32_t id = 0; id < preds_.size(); ++id) {
    const PredDef& d = preds_[id];
    if (d.pattern) {
      for (uint32_t pat : d.patterns) {
        cost_[id] +=
            lazy_candidate_[pat] ? kRegexTriggerCost : (1 + pattern_users[pat]) * chance_[pat];
      }
    } else if (d.kind == Predicate::Kind::kExists || d.kind == Predicate::Kind::kMissing ||
               d.kind == Predicate::Kind::kPresent || d.kind == Predicate::Kind::kAbsent ||
               d.kind == Predicate::Kind::kEmpty) {
      cost_[id] = 1e6;
    } else {
      cost_[id] = 1e3;
    }
  }
  trigger_pred_.assign(preds_.size(), false);
  for (const PendingRule& pr : pending_) {
    triggers_.push_back(trigger_set(pr.condition, cost_));
    if (triggers_.back()) {
      for (uint32_t p : *triggers_.back()) trigger_pred_[p] = true;
    }
  }
}

// Each condition as a prefix program; each rule under its trigger predicates, or evaluated
// for every event of its group when it has none.
void RuleSetCompiler::build_programs() {
  rules_of_predicate_.assign(preds_.size(), {});
  for (const PendingRule& pr : pending_) {
    const uint32_t rule_index = static_cast<uint32_t>(set_->rules_.size());
    CompiledRules::CompiledRule cr{pr.group, static_cast<uint32_t>(c_.program.size()), 0};
    cr.positive_begin = static_cast<uint32_t>(c_.positive_preds.size());
    // The predicates that can have made the rule match: those outside any `not`, in the
    // condition's order.
    auto positives = [&](auto&& self, const CondNode& n, bool negated) -> void {
      if (n.kind == CondNode::Kind::kPred && !negated) {
        const auto first = c_.positive_preds.begin() + cr.positive_begin;
        if (std::find(first, c_.positive_preds.end(), n.index) == c_.positive_preds.end())
          c_.positive_preds.push_back(n.index);
      }
      const bool child_negated = n.kind == CondNode::Kind::kNot ? !negated : negated;
      for (const auto& c : n.children) self(self, c, child_negated);
    };
    positives(positives, pr.condition, false);
    // Whether a subtree reads a lazy predicate, which evaluating it may have to check.
    auto reads_lazy = [&](auto&& self, const CondNode& n) -> bool {
      if (n.kind == CondNode::Kind::kPred) {
        const auto [begin, end] = c_.lazy_of_predicate[n.index];
        return begin != end;
      }
      return std::any_of(n.children.begin(), n.children.end(),
                         [&](const CondNode& c) { return self(self, c); });
    };
    // Prefix order, each instruction with the end of its subtree, so that evaluation can
    // stop at the first child that decides and skip the rest. An operator's children that
    // read no lazy predicate come first: they often decide it, and cost no check.
    auto emit = [&](auto&& self, const CondNode& n) -> void {
      const auto at = static_cast<uint32_t>(c_.program.size());
      switch (n.kind) {
        case CondNode::Kind::kPred:
          c_.program.push_back({Op::kPred, n.index, reads_lazy(reads_lazy, n) ? 1u : 0u, 0});
          break;
        case CondNode::Kind::kConst:
          c_.program.push_back({n.value ? Op::kTrue : Op::kFalse, 0, 0, 0});
          break;
        case CondNode::Kind::kNot:
          c_.program.push_back({Op::kNot, 0, 0, 0});
          self(self, n.children[0]);
          break;
        case CondNode::Kind::kAnd:
        case CondNode::Kind::kOr:
        case CondNode::Kind::kAtLeast: {
          const Op op = n.kind == CondNode::Kind::kAnd  ? Op::kAnd
                        : n.kind == CondNode::Kind::kOr ? Op::kOr
                                                        : Op::kAtLeast;
          c_.program.push_back({op, static_cast<uint32_t>(n.children.size()), n.index, 0});
          std::vector<const CondNode*> order;
          for (const auto& c : n.children) order.push_back(&c);
          std::stable_partition(order.begin(), order.end(),
                                [&](const CondNode* c) { return !reads_lazy(reads_lazy, *c); });
          for (const CondNode* c : order) self(self, *c);
          break;
        }
      }
      c_.program[at].end = static_cast<uint32_t>(c_.program.size());
    };
    emit(emit, pr.condition);
    cr.program_end = static_cast<uint32_t>(c_.program.size());
    cr.positive_end = static_cast<uint32_t>(c_.positive_preds.size());
    c_.compiled.push_back(cr);
    set_->rules_.push_back({pr.rule->id, pr.rule->title, pr.rule->level, pr.rule->tags,
                            pr.rule->source, pr.rule->selected, pr.rule->filters});
    if (const auto& rule_triggers = triggers_[rule_index]) {
      for (uint32_t p : *rule_triggers) rules_of_predicate_[p].push_back(rule_index);
    } else {
      c_.groups[pr.group].always_evaluate.push_back(rule_index);
    }
  }
}

// Per predicate, the rules it triggers, in runs of one group each.
void RuleSetCompiler::index_triggers() {
  c_.trigger_runs_of_predicate.reserve(preds_.size() + 1);
  for (auto& users : rules_of_predicate_) {
    c_.trigger_runs_of_predicate.push_back(static_cast<uint32_t>(c_.trigger_runs.size()));
    std::sort(users.begin(), users.end(), [&](uint32_t a, uint32_t b) {
      return std::pair(c_.compiled[a].group, a) < std::pair(c_.compiled[b].group, b);
    });
    users.erase(std::unique(users.begin(), users.end()), users.end());
    for (const uint32_t r : users) {
      const uint32_t group = c_.compiled[r].group;
      if (c_.trigger_runs.empty() ||
          c_.trigger_runs_of_predicate.back() == c_.trigger_runs.size() ||
          c_.trigger_runs.back().group != group) {
        const auto at = static_cast<uint32_t>(c_.trigger_rules.size());
        c_.trigger_runs.push_back({group, at, at});
      }
      c_.trigger_rules.push_back(r);
      ++c_.trigger_runs.back().end;
    }
  }
  c_.trigger_runs_of_predicate.push_back(static_cast<uint32_t>(c_.trigger_runs.size()));
  VIGIL_DCHECK(c_.trigger_runs_of_predicate.size() == preds_.size() + 1);
}

// Per predicate, the rules whose condition reads it.
void RuleSetCompiler::index_predicate_users() {
  std::vector<std::vector<uint32_t>> users(c_.predicate_count);
  for (uint32_t r = 0; r < c_.compiled.size(); ++r) {
    for (uint32_t pc = c_.compiled[r].program_begin; pc < c_.compiled[r].program_end; ++pc) {
      if (c_.program[pc].op == CompiledRules::Op::kPred) users[c_.program[pc].arg].push_back(r);
    }
  }
  c_.users_begin.clear();
  c_.predicate_users.clear();
  for (auto& u : users) {
    c_.users_begin.push_back(static_cast<uint32_t>(c_.predicate_users.size()));
    std::sort(u.begin(), u.end());
    u.erase(std::unique(u.begin(), u.end()), u.end());
    c_.predicate_users.insert(c_.predicate_users.end(), u.begin(), u.end());
  }
  c_.users_begin.push_back(static_cast<uint32_t>(c_.predicate_users.size()));
}

// A rule with a confirmed pattern that a crafted value drives into PCRE2's backtracking limit
// says so in its diagnostic.
void RuleSetCompiler::report_risks() {
  for (const auto& [pattern, why] : risky_patterns_) {
    const CompiledRules::Pattern& pat = c_.patterns[pattern];
    for (uint32_t i = pat.preds_begin; i < pat.preds_end; ++i) {
      const uint32_t pred = c_.pattern_preds[i];
      for (uint32_t u = c_.users_begin[pred]; u < c_.users_begin[pred + 1]; ++u) {
        auto& risks = report_.rules[pending_[c_.predicate_users[u]].report_index].risks;
        if (std::find(risks.begin(), risks.end(), why) == risks.end()) risks.push_back(why);
      }
    }
  }
}

// Finding an event's logsources without testing each: by the value of the first field that
// selects them, and the groups of each logsource.
void RuleSetCompiler::index_logsource_lookup() {
  size_t where_ids = 0;
  for (const auto& w : c_.where_fields) {
    c_.first_where_base.push_back(static_cast<uint32_t>(where_ids));
    where_ids += w.values.size();
  }
  c_.logsources_by_first_where.assign(where_ids, {});
  for (uint32_t ls = 0; ls < c_.logsources.size(); ++ls) {
    const auto& where = c_.logsources[ls].where;
    if (where.empty()) {
      c_.unconditional_logsources.push_back(ls);
      continue;
    }
    for (const int32_t id : where.front().second) {
      c_.logsources_by_first_where[c_.first_where_base[where.front().first] +
                                   static_cast<uint32_t>(id)]
          .push_back(ls);
    }
  }
  c_.groups_of_logsource.assign(c_.logsources.size(), {});
  for (uint32_t g = 0; g < c_.groups.size(); ++g) {
    for (const uint32_t ls : c_.groups[g].logsources) c_.groups_of_logsource[ls].push_back(g);
  }
}

}  // namespace vigil::match
