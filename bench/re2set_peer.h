#pragma once
// The RE2::Set peer of the matching benchmarks (match_bench.cc).

#include <re2/re2.h>
#include <re2/set.h>

#include <cctype>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "match_workload.h"
#include "vigil/core/event.h"

namespace vigil::bench {

// RE2::Set peer: the same rules, one RE2::Set per (logsource group, field) holding that
// group's patterns on the field, predicates set from the sets' hits, then the condition
// of every rule with a hit (or that holds with no predicate true). RE2 has no lookaround
// or backreferences: rules using them are left out and counted.
class Re2SetMatcher {
 public:
  explicit Re2SetMatcher(const Workload& w) {
    const auto& mapping = *w.mapping;
    for (const auto& ls : mapping.logsources()) {
      std::vector<std::pair<uint32_t, std::vector<std::string>>> where;
      for (const auto& [path, values] : ls.where) where.emplace_back(fields_.add(path), values);
      logsources_.push_back(std::move(where));
    }
    std::map<std::vector<uint32_t>, uint32_t> groups;
    std::map<std::pair<uint32_t, uint32_t>, uint32_t> set_of;  // (group, slot) -> set
    for (const auto& rule : w.parsed) {
      Rule r;
      const auto ls = mapping.logsources_for(rule.logsource);
      auto [g, fresh] = groups.emplace(ls, static_cast<uint32_t>(group_logsources_.size()));
      if (fresh) {
        group_logsources_.push_back(ls);
        group_rules_.emplace_back();
        group_sets_.emplace_back();
      }
      r.group = g->second;
      r.condition = rule.condition;
      bool ok = true;
      std::vector<std::pair<uint32_t, std::string>>
          patterns;  // local predicate -> (slot, RE2 pattern)
      for (const auto& p : rule.predicates) {
        const uint32_t slot = slot_of(mapping, p.field);
        r.preds.push_back(
            {p.kind, slot,
             p.kind == match::Predicate::Kind::kFieldRef ? slot_of(mapping, p.operand) : 0,
             p.operand});
        r.always = r.always || p.kind != match::Predicate::Kind::kPattern;
        if (p.kind != match::Predicate::Kind::kPattern) continue;
        std::string flags =
            std::string(p.caseless ? "i" : "") + (p.dotall ? "s" : "") + (p.multiline ? "m" : "");
        std::string re = flags.empty() ? p.regex : "(?" + flags + ")" + p.regex;
        ok = ok && RE2(re, latin1()).ok();
        patterns.emplace_back(static_cast<uint32_t>(r.preds.size() - 1), std::move(re));
      }
      if (!ok) {
        ++skipped_;
        continue;
      }
      const uint32_t index = static_cast<uint32_t>(rules_.size());
      for (auto& [local, re] : patterns) {
        auto [it, new_set] = set_of.emplace(std::make_pair(r.group, r.preds[local].slot),
                                            static_cast<uint32_t>(sets_.size()));
        if (new_set) {
          sets_.push_back(
              {r.preds[local].slot, std::make_unique<RE2::Set>(latin1(), RE2::UNANCHORED), {}});
          group_sets_[r.group].push_back(it->second);
        }
        Set& set = sets_[it->second];
        const int id = set.set->Add(re, nullptr);
        set.owners.push_back({index, local});
        (void)id;
      }
      r.hits.assign(r.preds.size(), 0);
      r.always = r.always || holds(r, r.condition, Event());
      group_rules_[r.group].push_back(index);
      rules_.push_back(std::move(r));
    }
    for (auto& s : sets_) s.set->Compile();
    active_.resize(logsources_.size());
  }

  const FieldSet& fields() const { return fields_; }
  size_t skipped() const { return skipped_; }
  size_t rules() const { return rules_.size(); }

  size_t match(const Event& event) {
    for (size_t i = 0; i < logsources_.size(); ++i) {
      bool all = true;
      for (const auto& [slot, values] : logsources_[i]) {
        const FieldValue& fv = event.field(slot);
        bool any = false;
        for (const auto& v : values) any = any || (fv.present() && iequals(fv.text, v));
        all = all && any;
      }
      active_[i] = all;
    }
    size_t matches = 0;
    for (size_t g = 0; g < group_logsources_.size(); ++g) {
      bool on = false;
      for (uint32_t ls : group_logsources_[g]) on = on || active_[ls];
      if (!on) continue;
      for (uint32_t r : group_rules_[g]) {
        auto& rule = rules_[r];
        std::fill(rule.hits.begin(), rule.hits.end(), 0);
        rule.any_hit = false;
      }
      for (uint32_t si : group_sets_[g]) {
        const FieldValue& fv = event.field(sets_[si].slot);
        if (!fv.present()) continue;
        hit_ids_.clear();
        if (!sets_[si].set->Match(re2::StringPiece(fv.text.data(), fv.text.size()), &hit_ids_))
          continue;
        for (int id : hit_ids_) {
          auto [rule, local] = sets_[si].owners[static_cast<size_t>(id)];
          rules_[rule].hits[local] = 1;
          rules_[rule].any_hit = true;
        }
      }
      for (uint32_t r : group_rules_[g]) {
        auto& rule = rules_[r];
        if ((rule.any_hit || rule.always) && holds(rule, rule.condition, event)) ++matches;
      }
    }
    return matches;
  }

 private:
  struct Pred {
    match::Predicate::Kind kind;
    uint32_t slot, ref_slot;
    std::string operand;
  };
  struct Rule {
    uint32_t group = 0;
    std::vector<Pred> preds;
    match::CondNode condition;
    std::vector<uint8_t> hits;
    bool any_hit = false;
    bool always =
        false;  // evaluated without a pattern hit: has other predicates, or holds with none
  };
  struct Set {
    uint32_t slot;
    std::unique_ptr<RE2::Set> set;
    std::vector<std::pair<uint32_t, uint32_t>> owners;  // set index -> (rule, local predicate)
  };
  static RE2::Options latin1() {
    RE2::Options o;
    o.set_encoding(RE2::Options::EncodingLatin1);
    o.set_log_errors(false);
    o.set_max_mem(256 << 20);
    return o;
  }
  static bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(a[i])) !=
          std::tolower(static_cast<unsigned char>(b[i])))
        return false;
    }
    return true;
  }
  uint32_t slot_of(const match::FieldMapping& mapping, const std::string& field) {
    const auto paths = mapping.json_paths(field);
    const uint32_t slot = fields_.add(paths[0]);
    for (size_t i = 1; i < paths.size(); ++i) (void)fields_.add_alias(paths[i], slot);
    return slot;
  }
  // Non-pattern predicates (exists, null, numbers, cidr, fieldref) decide few rules of the
  // tree; this peer evaluates presence tests and leaves the rest false.
  bool test(const Rule& rule, uint32_t local, const Event& event) const {
    const Pred& p = rule.preds[local];
    if (p.kind == match::Predicate::Kind::kPattern) return rule.hits[local] != 0;
    const FieldValue& fv = event.field(p.slot);
    switch (p.kind) {
      case match::Predicate::Kind::kExists:
        return fv.present();
      case match::Predicate::Kind::kMissing:
        return !fv.present();
      case match::Predicate::Kind::kPresent:
        return fv.type != ValueType::kMissing;
      case match::Predicate::Kind::kAbsent:
        return fv.type == ValueType::kMissing;
      case match::Predicate::Kind::kEmpty:
        return fv.present() && fv.text.empty();
      default:
        return false;
    }
  }
  bool holds(const Rule& rule, const match::CondNode& n, const Event& event) const {
    using K = match::CondNode::Kind;
    switch (n.kind) {
      case K::kPred:
        return test(rule, n.index, event);
      case K::kConst:
        return n.value;
      case K::kNot:
        return !holds(rule, n.children[0], event);
      case K::kAnd:
        for (const auto& c : n.children) {
          if (!holds(rule, c, event)) return false;
        }
        return true;
      case K::kOr:
        for (const auto& c : n.children) {
          if (holds(rule, c, event)) return true;
        }
        return false;
      case K::kAtLeast: {
        uint32_t count = 0;
        for (const auto& c : n.children) count += holds(rule, c, event) ? 1 : 0;
        return count >= n.index;
      }
    }
    return false;
  }

  FieldSet fields_;
  std::vector<std::vector<std::pair<uint32_t, std::vector<std::string>>>> logsources_;
  std::vector<std::vector<uint32_t>> group_logsources_, group_rules_, group_sets_;
  std::vector<Rule> rules_;
  std::vector<Set> sets_;
  std::vector<uint8_t> active_;
  std::vector<int> hit_ids_;
  size_t skipped_ = 0;
};

}  // namespace vigil::bench
