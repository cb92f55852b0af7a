// Matching throughput: parse + match per event, on one core.
//
//   DefaultPack: the shipped rule pack over simulator events (what `make run` does).
//   SigmaTree:   every SigmaHQ rule that compiles today (../shared/corpus/sigma_rules) over
//                the corpus' real Sysmon events, under the windows-evtx-json mapping.
//   SigmaTree_Re2Set:   the same rules and events on RE2::Set, one set per logsource group
//                       and field, rules evaluated when one of their predicates holds.
//   SigmaTree_Pcre2Loop: the same rules and events, rule after rule, one PCRE2 (JIT)
//                       program per predicate (vigil::match::ReferenceMatcher).
//   ParseOnly:   the simdjson field extraction alone, for the same events.
//
// Run: make bench   (or ./build/release/bench/vigil_match_bench)

#include <benchmark/benchmark.h>
#include <re2/re2.h>
#include <re2/set.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "vigil/ingest/simulator.h"
#include "vigil/match/reference_matcher.h"
#include "vigil/match/ruleset.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

struct Workload {
  std::shared_ptr<const match::RuleSet> rules;
  std::vector<match::SigmaRule> parsed;  // the rules `rules` compiled, for the peers
  std::optional<match::FieldMapping> mapping;
  std::vector<std::string> events;
  size_t compiled = 0, unsupported = 0;
};

Workload default_pack() {
  Workload w;
  auto mapping =
      match::FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/vigil-sensor.yml");
  match::CompileReport report;
  auto parsed = match::load_rules({VIGIL_SOURCE_DIR "/rules/sigma"}, report);
  w.rules = *match::RuleSet::compile(parsed, *mapping, report);
  ManualClock clock(1795539600000);
  ingest::SensorSimulator sim({300, 0.01, 1}, clock);
  ingest::SimulatedEvent ev;
  for (int i = 0; i < 20000; ++i) {
    sim.next(ev);
    w.events.push_back(ev.json);
  }
  return w;
}

Workload sigma_tree() {
  Workload w;
  const fs::path corpus = fs::path(VIGIL_SOURCE_DIR) / ".." / "shared" / "corpus";
  auto mapping =
      match::FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/windows-evtx-json.yml");
  match::CompileReport report;
  auto parsed = match::load_rules({(corpus / "sigma_rules").string()}, report);
  w.rules = *match::RuleSet::compile(parsed, *mapping, report);
  w.compiled = report.compiled;
  w.unsupported = report.unsupported;
  std::set<std::string> ids;
  for (const auto& r : w.rules->rules()) ids.insert(r.id);
  for (auto& r : parsed) {
    if (ids.count(r.id) && !r.correlation) w.parsed.push_back(std::move(r));
  }
  w.mapping = std::move(*mapping);
  for (const auto& f : fs::directory_iterator(corpus / "sigma_public" / "events")) {
    std::ifstream in(f.path());
    for (std::string line; std::getline(in, line);) w.events.push_back(line);
  }
  return w;
}

void run_match(benchmark::State& state, const Workload& w) {
  auto matcher = std::move(*match::Matcher::create(w.rules));
  EventParser parser;
  Event event;
  std::vector<uint32_t> out;
  size_t i = 0, bytes = 0, matches = 0;
  for (auto _ : state) {
    const std::string& e = w.events[i];
    if (++i == w.events.size()) i = 0;
    parser.parse(e, w.rules->fields(), event);
    out.clear();
    (void)matcher->match(event, out);
    matches += out.size();
    bytes += e.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["rules"] = static_cast<double>(w.rules->rules().size());
  state.counters["matches_per_event"] =
      benchmark::Counter(static_cast<double>(matches) / static_cast<double>(state.iterations()));
}

void BM_DefaultPack(benchmark::State& state) {
  static const Workload w = default_pack();
  run_match(state, w);
}
BENCHMARK(BM_DefaultPack);

void BM_SigmaTree(benchmark::State& state) {
  static const Workload w = sigma_tree();
  run_match(state, w);
  state.counters["unsupported"] = static_cast<double>(w.unsupported);
}
BENCHMARK(BM_SigmaTree);

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

void BM_SigmaTree_Re2Set(benchmark::State& state) {
  static const Workload w = sigma_tree();
  static Re2SetMatcher m(w);
  EventParser parser;
  Event event;
  size_t i = 0, bytes = 0, matches = 0;
  for (auto _ : state) {
    const std::string& e = w.events[i];
    if (++i == w.events.size()) i = 0;
    parser.parse(e, m.fields(), event);
    matches += m.match(event);
    bytes += e.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["rules"] = static_cast<double>(m.rules());
  state.counters["left_out"] = static_cast<double>(m.skipped());
  state.counters["matches_per_event"] =
      benchmark::Counter(static_cast<double>(matches) / static_cast<double>(state.iterations()));
}
BENCHMARK(BM_SigmaTree_Re2Set);

void BM_SigmaTree_Pcre2Loop(benchmark::State& state) {
  static const Workload w = sigma_tree();
  static auto m = match::ReferenceMatcher::compile(w.parsed, *w.mapping);
  EventParser parser;
  Event event;
  std::vector<uint32_t> out;
  size_t i = 0, bytes = 0, matches = 0;
  for (auto _ : state) {
    const std::string& e = w.events[i];
    if (++i == w.events.size()) i = 0;
    parser.parse(e, m->fields(), event);
    out.clear();
    m->match(event, out);
    matches += out.size();
    bytes += e.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["rules"] = static_cast<double>(m->rule_ids().size());
  state.counters["matches_per_event"] =
      benchmark::Counter(static_cast<double>(matches) / static_cast<double>(state.iterations()));
}
BENCHMARK(BM_SigmaTree_Pcre2Loop);

void BM_ParseOnly_SigmaTreeFields(benchmark::State& state) {
  static const Workload w = sigma_tree();
  EventParser parser;
  Event event;
  size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const std::string& e = w.events[i];
    if (++i == w.events.size()) i = 0;
    benchmark::DoNotOptimize(parser.parse(e, w.rules->fields(), event));
    bytes += e.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_ParseOnly_SigmaTreeFields);

void BM_CompileSigmaTree(benchmark::State& state) {
  const fs::path corpus = fs::path(VIGIL_SOURCE_DIR) / ".." / "shared" / "corpus";
  auto mapping =
      match::FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/windows-evtx-json.yml");
  for (auto _ : state) {
    match::CompileReport report;
    auto parsed = match::load_rules({(corpus / "sigma_rules").string()}, report);
    auto rs = match::RuleSet::compile(parsed, *mapping, report);
    benchmark::DoNotOptimize(rs);
    state.counters["compiled"] = static_cast<double>(report.compiled);
  }
}
BENCHMARK(BM_CompileSigmaTree)->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace
}  // namespace vigil

BENCHMARK_MAIN();
