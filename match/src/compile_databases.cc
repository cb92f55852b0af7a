// RuleSet::compile(), the databases step: direct predicates, lazy patterns, one Hyperscan
// database per (field, logsource) and PCRE2 confirmations (match/src/README.md).

#include <arpa/inet.h>
#include <hs/hs.h>

#include <algorithm>
#include <charconv>
#include <iterator>

#include "compiler.h"
#include "patterns.h"
#include "vigil/match/database_cache.h"

namespace vigil::match {

namespace {

using CompiledRules = detail::CompiledRules;
constexpr uint32_t kRawSlot = CompiledRules::kRawSlot;

}  // namespace

// Pass 2: the patterns' predicates, one Hyperscan database per field, PCRE2 for prefilters.
Status RuleSetCompiler::build_databases() {
  add_direct_predicates();
  choose_lazy();
  if (Status s = place_patterns(); !s.is_ok()) return s;
  if (Status s = compile_databases(); !s.is_ok()) return s;
  if (Status s = compile_lazy_fields(); !s.is_ok()) return s;
  order_lazy_checks();
  return Status::ok();
}

// The predicates evaluated without Hyperscan, in their groups; the predicates of each pattern.
void RuleSetCompiler::add_direct_predicates() {
  preds_of_pattern_.assign(patterns_.size(), {});
  for (uint32_t id = 0; id < preds_.size(); ++id) {
    const PredDef& d = preds_[id];
    if (d.pattern) {
      for (uint32_t pat : d.patterns) preds_of_pattern_[pat].push_back(id);
      continue;
    }
    CompiledRules::DirectPredicate dp{id, d.slot, d.kind};
    dp.ref_slot = d.ref_slot;
    if (d.kind == Predicate::Kind::kCidr) {
      // The parser validated the network; keep the address and prefix length.
      const size_t slash = d.operand.find('/');
      const std::string addr = d.operand.substr(0, slash);
      dp.v6 = addr.find(':') != std::string::npos;
      inet_pton(dp.v6 ? AF_INET6 : AF_INET, addr.c_str(), dp.network);
      dp.prefix_bits =
          slash == std::string::npos ? (dp.v6 ? 128 : 32) : std::stoi(d.operand.substr(slash + 1));
    } else if (d.kind != Predicate::Kind::kFieldRef) {
      dp.time_part = detail::time_part_named(d.time_part);
      std::from_chars(d.operand.data(), d.operand.data() + d.operand.size(), dp.number);
    }
    c_.groups[d.group].direct.push_back(dp);
  }
}

// Lazy: regexes and plain strings no rule needs as a trigger (see Matcher::Impl::resolve).
void RuleSetCompiler::choose_lazy() {
  lazy_.assign(patterns_.size(), false);
  for (uint32_t pat = 0; pat < patterns_.size(); ++pat) {
    lazy_[pat] = (lazy_candidate_[pat] || plain_[pat]) &&
                 std::none_of(preds_of_pattern_[pat].begin(), preds_of_pattern_[pat].end(),
                              [&](uint32_t pred) { return trigger_pred_[pred]; });
  }
  pattern_groups_.assign(patterns_.size(), {});
  for (const auto& pr : pending_) {
    auto collect = [&](auto&& self, const CondNode& n) -> void {
      if (n.kind == CondNode::Kind::kPred && preds_[n.index].pattern) {
        for (uint32_t pat : preds_[n.index].patterns) pattern_groups_[pat].insert(pr.group);
      }
      for (const auto& c : n.children) self(self, c);
    };
    collect(collect, pr.condition);
  }
}

// One database per (field, mapping logsource): an event scans the databases of its active
// logsources, which hold only the patterns of rules that apply to them (a process creation
// event does not scan Image with the patterns of image_load rules, nor its raw text with
// the keywords of Linux rules). A pattern of several logsources is in each one's database.
// A database is keyed by (field slot, the logsources whose events scan it).
//
// Keywords are the exception: they scan the whole raw event, and the same keywords (those
// of rules for a whole product) would be scanned once per active logsource. A keyword is
// in one database for its set of logsources, which every event of any of them scans once.
std::vector<RuleSetCompiler::DbKey> RuleSetCompiler::db_keys(uint32_t pat) const {
  std::set<uint32_t> ls;
  for (uint32_t g : pattern_groups_[pat])
    ls.insert(c_.groups[g].logsources.begin(), c_.groups[g].logsources.end());
  if (patterns_[pat].slot == kRawSlot) return std::vector<DbKey>{{kRawSlot, std::move(ls)}};
  std::vector<DbKey> keys;
  for (uint32_t l : ls) keys.push_back({patterns_[pat].slot, {l}});
  return keys;
}

// Each pattern as scan patterns (Hyperscan ids) in the databases of its field, or as a lazy
// check; prefilters with their PCRE2 confirmation.
Status RuleSetCompiler::place_patterns() {
  lazy_checks_of_.assign(patterns_.size(), {});
  for (uint32_t pat = 0; pat < patterns_.size(); ++pat) {
    CompiledRules::Pattern p{static_cast<uint32_t>(c_.pattern_preds.size()), 0, -1};
    c_.pattern_preds.insert(c_.pattern_preds.end(), preds_of_pattern_[pat].begin(),
                            preds_of_pattern_[pat].end());
    p.preds_end = static_cast<uint32_t>(c_.pattern_preds.size());
    const PatternDef& def = patterns_[pat];
    const uint8_t anchors = anchors_of_[pat];
    auto& variants = variants_of_[pat];  // moved from: its strings become scan patterns
    const auto keys = db_keys(pat);
    if (variants) {
      for (auto& v : *variants) {
        const auto scan_id = static_cast<uint32_t>(c_.patterns.size());
        CompiledRules::Pattern lit = p;
        lit.anchors = anchors;
        lit.length = static_cast<uint32_t>(v.size());
        if (lazy_[pat]) {
          add_lazy_literal(pat, v, lit);
        } else {
          for (const auto& k : keys) literal_ids_[k].push_back(scan_id);
        }
        literals_.resize(scan_id);
        literal_flags_.resize(scan_id);
        literals_.push_back(std::move(v));
        // Anchored literals need every occurrence: the first may not be at the anchor.
        literal_flags_.push_back((def.flags & HS_FLAG_CASELESS) |
                                 (anchors ? 0 : HS_FLAG_SINGLEMATCH));
        c_.patterns.push_back(lit);
      }
      continue;
    }
    if (lazy_[pat]) {
      hs_compile_error_t* err = nullptr;
      hs_database_t* db = nullptr;
      if (DatabaseCache::compile(def.regex.c_str(), def.flags, HS_MODE_BLOCK, &db, &err) !=
          HS_SUCCESS) {
        const std::string msg = err ? err->message : "unknown error";
        hs_free_compile_error(err);
        return Status::internal("Hyperscan compile of pattern '" + def.regex + "' failed: " + msg);
      }
      lazy_checks_of_[pat].push_back(
          {-1, static_cast<int32_t>(c_.lazy_databases.size()), def.slot});
      c_.lazy_databases.push_back(db);
      continue;
    }
    if (prefilter_[pat]) {
      auto code = compile_confirm(def.regex, def.flags);
      if (!code) return code.status();
      if (auto sample = backtracking_probe(*code, def.regex, CompiledRules::kConfirmMatchLimit,
                                           CompiledRules::kConfirmDepthLimit)) {
        risky_patterns_.emplace_back(
            static_cast<uint32_t>(c_.patterns.size()),
            "regex '" + def.regex + "' hits PCRE2's backtracking limit on " + *sample +
                ": an event holding such a value could not be matched by this rule");
      }
      p.confirm = static_cast<int32_t>(c_.confirms.size());
      c_.confirms.push_back(*code);
      if (c_.confirm_limits == nullptr) {
        c_.confirm_limits = pcre2_match_context_create(nullptr);
        if (c_.confirm_limits == nullptr)
          return Status::internal("PCRE2 match context allocation failed");
        pcre2_set_match_limit(c_.confirm_limits, CompiledRules::kConfirmMatchLimit);
        pcre2_set_depth_limit(c_.confirm_limits, CompiledRules::kConfirmDepthLimit);
      }
    }
    for (const auto& k : keys) regex_ids_[k].push_back(static_cast<uint32_t>(c_.patterns.size()));
    regex_pattern_[c_.patterns.size()] = pat;
    c_.patterns.push_back(p);
  }
  return Status::ok();
}

// A plain string no rule needs as a trigger: compared directly, or found by a scan of its
// field's lazy strings (CompiledRules::LazyLiteral).
void RuleSetCompiler::add_lazy_literal(uint32_t pat, const std::string& literal,
                                       CompiledRules::Pattern& lit) {
  const PatternDef& def = patterns_[pat];
  const uint8_t anchors = anchors_of_[pat];
  const auto scan_id = static_cast<uint32_t>(c_.patterns.size());
  auto [field, fresh_field] =
      lazy_field_of_slot_.emplace(def.slot, static_cast<uint32_t>(c_.lazy_fields.size()));
  if (fresh_field) {
    c_.lazy_fields.push_back({def.slot, nullptr});
    lazy_field_ids_.emplace_back();
  }
  const bool caseless = (def.flags & HS_FLAG_CASELESS) != 0;
  lit.lazy_literal = static_cast<int32_t>(c_.lazy_literals.size());
  CompiledRules::LazyLiteral ll{static_cast<uint32_t>(c_.lazy_text.size()),
                                static_cast<uint32_t>(literal.size()), field->second, anchors,
                                caseless};
  const std::string lower = ascii_lower(literal);
  if (caseless && anchors == 0 && lower.size() >= 2) {
    // Pairs spread over the string (fewer if it is short).
    const size_t last = lower.size() - 2;
    constexpr size_t kPairs = std::size(CompiledRules::LazyLiteral{}.pairs);
    for (size_t k = 0; k < kPairs; ++k) {
      const size_t at = k * last / (kPairs - 1);
      const uint16_t pr = CompiledRules::PairFilter::pair(
          static_cast<unsigned char>(lower[at]), static_cast<unsigned char>(lower[at + 1]));
      if (std::find(ll.pairs, ll.pairs + ll.pair_count, pr) == ll.pairs + ll.pair_count) {
        ll.pairs[ll.pair_count++] = pr;
      }
    }
  }
  c_.lazy_literals.push_back(ll);
  c_.lazy_text += caseless ? lower : literal;
  lazy_field_ids_[field->second].push_back(scan_id);
  lazy_checks_of_[pat].push_back({lit.lazy_literal, -1, def.slot});
}

// One Hyperscan database (regexes) and one of the literal API (plain strings) per key.
Status RuleSetCompiler::compile_databases() {
  c_.logsource_databases.assign(c_.logsources.size(), {});
  std::set<DbKey> dbs;
  for (const auto& [key, ids] : regex_ids_) dbs.insert(key);
  for (const auto& [key, ids] : literal_ids_) dbs.insert(key);
  for (const DbKey& key : dbs) {
    const uint32_t slot = key.first;
    const std::string name = slot == kRawSlot ? "keywords" : set_->fields_.path(slot);
    CompiledRules::Database database{slot, nullptr, nullptr};
    hs_compile_error_t* err = nullptr;
    // Every pattern passed hs_expression_info, so a failure is one of resources.
    auto failed = [&]() {
      std::string msg = err ? err->message : "unknown error";
      hs_free_compile_error(err);
      hs_free_database(database.db);
      hs_free_database(database.literal_db);
      return Status::internal("Hyperscan compile of field '" + name + "' failed: " + msg);
    };
    if (auto it = regex_ids_.find(key); it != regex_ids_.end()) {
      std::vector<const char*> exprs;
      std::vector<unsigned> flags;
      for (uint32_t id : it->second) {
        exprs.push_back(patterns_[regex_pattern_[id]].regex.c_str());
        flags.push_back(patterns_[regex_pattern_[id]].flags);
      }
      if (DatabaseCache::compile_multi(exprs.data(), flags.data(), it->second.data(),
                                       static_cast<unsigned>(exprs.size()), HS_MODE_BLOCK,
                                       &database.db, &err) != HS_SUCCESS) {
        return failed();
      }
    }
    if (auto it = literal_ids_.find(key); it != literal_ids_.end()) {
      std::vector<const char*> exprs;
      std::vector<size_t> lengths;
      std::vector<unsigned> flags;
      for (uint32_t id : it->second) {
        exprs.push_back(literals_[id].data());
        lengths.push_back(literals_[id].size());
        flags.push_back(literal_flags_[id]);
      }
      if (DatabaseCache::compile_lit_multi(exprs.data(), flags.data(), it->second.data(),
                                           lengths.data(), static_cast<unsigned>(exprs.size()),
                                           HS_MODE_BLOCK, &database.literal_db,
                                           &err) != HS_SUCCESS) {
        return failed();
      }
    }
    const uint32_t index = static_cast<uint32_t>(c_.databases.size());
    c_.databases.push_back(std::move(database));
    for (const uint32_t ls : key.second) c_.logsource_databases[ls].push_back(index);
  }

  return Status::ok();
}

// Per field with lazy plain strings, a database of all of them (for when comparing each
// directly would cost more).
Status RuleSetCompiler::compile_lazy_fields() {
  for (uint32_t f = 0; f < c_.lazy_fields.size(); ++f) {
    std::vector<const char*> exprs;
    std::vector<size_t> lengths;
    std::vector<unsigned> flags;
    for (uint32_t id : lazy_field_ids_[f]) {
      exprs.push_back(literals_[id].data());
      lengths.push_back(literals_[id].size());
      flags.push_back(literal_flags_[id]);
    }
    hs_compile_error_t* err = nullptr;
    if (DatabaseCache::compile_lit_multi(exprs.data(), flags.data(), lazy_field_ids_[f].data(),
                                         lengths.data(), static_cast<unsigned>(exprs.size()),
                                         HS_MODE_BLOCK, &c_.lazy_fields[f].db,
                                         &err) != HS_SUCCESS) {
      const std::string msg = err ? err->message : "unknown error";
      hs_free_compile_error(err);
      const uint32_t slot = c_.lazy_fields[f].slot;
      return Status::internal(
          "Hyperscan compile of the lazy_ strings of " +
          (slot == kRawSlot ? std::string("keywords") : set_->fields_.path(slot)) +
          " failed: " + msg);
    }
  }
  return Status::ok();
}

// Per predicate, its lazy plain strings first: a direct comparison is cheaper than a scan.
void RuleSetCompiler::order_lazy_checks() {
  c_.lazy_of_predicate.assign(preds_.size(), {0, 0});
  for (uint32_t id = 0; id < preds_.size(); ++id) {
    const auto begin = static_cast<uint32_t>(c_.lazy_checks.size());
    for (const bool strings : {true, false}) {
      for (uint32_t pat : preds_[id].patterns) {
        if (!preds_[id].pattern || !lazy_[pat] || plain_[pat] != strings) continue;
        c_.lazy_checks.insert(c_.lazy_checks.end(), lazy_checks_of_[pat].begin(),
                              lazy_checks_of_[pat].end());
      }
    }
    c_.lazy_of_predicate[id] = {begin, static_cast<uint32_t>(c_.lazy_checks.size())};
  }
}

}  // namespace vigil::match
