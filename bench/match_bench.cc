// Matching throughput: parse + match per event, on one core.
//
//   DefaultPack: the shipped rule pack over simulator events (what `make run` does).
//   SigmaTree/windows: every SigmaHQ rule (../shared/corpus/sigma_rules) that compiles under
//                the windows-evtx-json mapping, over the corpus' real events as recorded.
//   SigmaTree/all: the whole tree under the vigil-sensor mapping (every logsource), over the
//                same events in the flat layout.
//   SigmaTree/ecs: the Windows rules under the ecs-windows mapping, over the same events as
//                Winlogbeat 8 writes them in ECS (tests/support/evtx_layouts.h).
//   SigmaTree_Re2Set:   the same rules and events on RE2::Set, one set per logsource group
//                       and field, rules evaluated when one of their predicates holds.
//   SigmaTree_Pcre2Loop: the same rules and events, rule after rule, one PCRE2 (JIT)
//                       program per predicate (vigil::match::ReferenceMatcher).
//   ParseOnly:   the simdjson field extraction alone, for the same events.
//   Stages_*:    SigmaTree's parse and match stopped before the condition programs: what
//                every event pays however cheap the rules' evaluation became.
//   Floor_*:     simdjson and Hyperscan alone over the same events (see there).
//   Otrf/stage:N, Otrf_Re2Set: the whole tree over the recorded lab intrusion
//                (../shared/corpus/otrf/, flat layout), one pass in recorded order per
//                iteration with a fresh matcher, by stage; RE2::Set on the same stream.
//   CaselessValues, Regex: the cost of characters over bytes (match_values_bench.cc).
//
// Run: make bench   (or ./build/release/bench/vigil_match_bench)

#include <benchmark/benchmark.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "match_workload.h"
#include "re2set_peer.h"
#include "support/evtx_layouts.h"
#include "support/otrf.h"
#include "vigil/ingest/simulator.h"
#include "vigil/match/matcher.h"
#include "vigil/match/reference_matcher.h"
#include "vigil/match/ruleset.h"
// The matcher's stages, private to vigil_match.
#include "matcher_impl.h"

namespace vigil::match {

// The stages of Matcher::match() before the condition programs (match/src/matcher_impl.h).
struct MatcherStages {
  // Logsources, direct predicates and the eager scans: what every event pays.
  static void scan(Matcher& matcher, const Event& event) {
    Matcher::Impl& m = matcher.impl();
    if (m.begin(event)) (void)m.scan(event);
  }
  // And the candidate rules those scans trigger, still without running a condition.
  static size_t candidates(Matcher& matcher, const Event& event) {
    Matcher::Impl& m = matcher.impl();
    if (!m.begin(event) || !m.scan(event).is_ok()) return 0;
    m.add_triggered();
    return m.candidate_count();
  }
};

}  // namespace vigil::match

namespace vigil {
namespace {

namespace fs = std::filesystem;
using bench::Re2SetMatcher;
using bench::Workload;

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

// The corpus' events as recorded (EVTX layout), one per line of its event files.
std::vector<std::string> corpus_events() {
  const fs::path dir =
      fs::path(VIGIL_SOURCE_DIR) / ".." / "shared" / "corpus" / "sigma_public" / "events";
  std::vector<std::string> events;
  std::error_code ec;  // no corpus: no events (the default pack's benchmarks still run)
  for (const auto& f : fs::directory_iterator(dir, ec)) {
    std::ifstream in(f.path());
    for (std::string line; std::getline(in, line);) events.push_back(line);
  }
  return events;
}

// The SigmaHQ tree over the corpus' events in one layout, compiled with that layout's mapping:
//   kEvtx: the Windows rules (windows-evtx-json.yml) over the events as recorded;
//   kFlat: the whole tree (every logsource, vigil-sensor.yml) over the events in the flat layout;
//   kEcs:  the Windows rules (ecs-windows.yml) over the events as Winlogbeat 8 writes them
//          (tests/support/evtx_layouts.h).
enum class Layout { kEvtx, kFlat, kEcs };
Workload sigma_tree(Layout layout) {
  Workload w;
  const fs::path corpus = fs::path(VIGIL_SOURCE_DIR) / ".." / "shared" / "corpus";
  const char* mapping_file = layout == Layout::kFlat  ? "vigil-sensor.yml"
                             : layout == Layout::kEcs ? "ecs-windows.yml"
                                                      : "windows-evtx-json.yml";
  auto mapping = match::FieldMapping::load_file(std::string(VIGIL_SOURCE_DIR "/rules/mappings/") +
                                                mapping_file);
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
  for (const std::string& line : corpus_events()) {
    w.events.push_back(layout == Layout::kFlat  ? test::evtx_to_flat(line)
                       : layout == Layout::kEcs ? test::evtx_to_ecs(line)
                                                : line);
  }
  return w;
}

const Workload& windows_tree() {
  static const Workload w = sigma_tree(Layout::kEvtx);
  return w;
}
const Workload& whole_tree() {
  static const Workload w = sigma_tree(Layout::kFlat);
  return w;
}
const Workload& ecs_tree() {
  static const Workload w = sigma_tree(Layout::kEcs);
  return w;
}

// Replays `events` round-robin through parse + `match(event)` (which returns its matches),
// one event per iteration, and reports events/s, bytes/s and matches per event.
template <typename Match>
void replay(benchmark::State& state, const std::vector<std::string>& events, const FieldSet& fields,
            Match&& match) {
  EventParser parser;
  Event event;
  size_t i = 0, bytes = 0, matches = 0;
  for (auto _ : state) {
    const std::string& e = events[i];
    if (++i == events.size()) i = 0;
    parser.parse(e, fields, event);
    matches += match(event);
    bytes += e.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["matches_per_event"] =
      benchmark::Counter(static_cast<double>(matches) / static_cast<double>(state.iterations()));
}

void run_match(benchmark::State& state, const Workload& w, bool memo = true) {
  match::MatcherOptions options;
  if (!memo) options.memo_bytes = 0;
  auto matcher = std::move(*match::Matcher::create(w.rules, options));
  std::vector<uint32_t> out;
  replay(state, w.events, w.rules->fields(), [&](const Event& event) {
    out.clear();
    (void)matcher->match(event, out);
    return out.size();
  });
  state.counters["rules"] = static_cast<double>(w.rules->rules().size());
  state.counters["lazy_regexes"] = static_cast<double>(w.rules->lazy_pattern_count());
  state.counters["lazy_strings"] = static_cast<double>(w.rules->lazy_literal_count());
}

void BM_DefaultPack(benchmark::State& state) {
  static const Workload w = default_pack();
  run_match(state, w);
}
BENCHMARK(BM_DefaultPack);

const Workload& tree(bool all) { return all ? whole_tree() : windows_tree(); }

void BM_SigmaTree(benchmark::State& state, const Workload& (*workload)()) {
  const Workload& w = workload();
  run_match(state, w);
  state.counters["unsupported"] = static_cast<double>(w.unsupported);
}
BENCHMARK_CAPTURE(BM_SigmaTree, windows, &windows_tree);
BENCHMARK_CAPTURE(BM_SigmaTree, all, &whole_tree);
// The Windows rules again, the same events as Winlogbeat 8 ships them in ECS: compare with
// SigmaTree/windows of the same run.
BENCHMARK_CAPTURE(BM_SigmaTree, ecs, &ecs_tree);
// The whole tree without the scan memo: the corpus' 84 events replayed in turn repeat every
// value each round, which the memo serves from the second round on.
void BM_SigmaTree_NoMemo(benchmark::State& state) {
  run_match(state, whole_tree(), false);
  state.counters["unsupported"] = static_cast<double>(whole_tree().unsupported);
}
BENCHMARK(BM_SigmaTree_NoMemo);

void BM_SigmaTree_Re2Set(benchmark::State& state, bool all) {
  const Workload& w = tree(all);
  static std::unique_ptr<Re2SetMatcher> peers[2];
  if (!peers[all]) peers[all] = std::make_unique<Re2SetMatcher>(w);
  Re2SetMatcher& m = *peers[all];
  replay(state, w.events, m.fields(), [&](const Event& event) { return m.match(event); });
  state.counters["rules"] = static_cast<double>(m.rules());
  state.counters["left_out"] = static_cast<double>(m.skipped());
}
BENCHMARK_CAPTURE(BM_SigmaTree_Re2Set, windows, false);
BENCHMARK_CAPTURE(BM_SigmaTree_Re2Set, all, true);

void BM_SigmaTree_Pcre2Loop(benchmark::State& state, bool all) {
  const Workload& w = tree(all);
  static std::unique_ptr<match::ReferenceMatcher> peers[2];
  if (!peers[all]) peers[all] = match::ReferenceMatcher::compile(w.parsed, *w.mapping);
  auto& m = peers[all];
  std::vector<uint32_t> out;
  replay(state, w.events, m->fields(), [&](const Event& event) {
    out.clear();
    m->match(event, out);
    return out.size();
  });
  state.counters["rules"] = static_cast<double>(m->rule_ids().size());
}
BENCHMARK_CAPTURE(BM_SigmaTree_Pcre2Loop, windows, false);
BENCHMARK_CAPTURE(BM_SigmaTree_Pcre2Loop, all, true);

// The recorded lab intrusion (tests/support/otrf.h), in recorded order.
std::vector<std::string> otrf_events() {
  return test::otrf_events(fs::path(VIGIL_SOURCE_DIR) / ".." / "shared" / "corpus");
}

// The whole tree under vigil-sensor.yml (SigmaTree/all's rules) over the OTRF stream.
const Workload& otrf_tree() {
  static const Workload w = [] {
    const Workload& all = whole_tree();
    Workload o;
    o.rules = all.rules;
    o.parsed = all.parsed;
    o.mapping = all.mapping;
    o.compiled = all.compiled;
    o.unsupported = all.unsupported;
    o.events = otrf_events();
    return o;
  }();
  return w;
}

// Stages of one pass over the OTRF stream (issue 31's baseline): what an event costs as the
// stream is recorded (most referenced values repeat), by stage.
enum class OtrfStage : int64_t { kParse, kScans, kCandidates, kMatch };

// One pass over the stream in recorded order per iteration, the matcher made anew before each
// (its state reset, so that every first sighting pays as it would live).
// One pass over `w.events` in order per iteration, a matcher made anew before each.
void run_passes(benchmark::State& state, const Workload& w, OtrfStage stage, bool memo) {
  if (w.events.empty()) {
    state.SkipWithError("no OTRF events (../shared/corpus/otrf)");
    return;
  }
  match::MatcherOptions options;
  if (!memo) options.memo_bytes = 0;
  EventParser parser;
  Event event;
  std::vector<uint32_t> out;
  size_t bytes = 0, matches = 0, events = 0;
  double lookups = 0, hits = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto matcher = std::move(*match::Matcher::create(w.rules, options));
    state.ResumeTiming();
    for (const std::string& e : w.events) {
      parser.parse(e, w.rules->fields(), event);
      if (stage == OtrfStage::kScans) {
        match::MatcherStages::scan(*matcher, event);
      } else if (stage == OtrfStage::kCandidates) {
        matches += match::MatcherStages::candidates(*matcher, event);
      } else if (stage == OtrfStage::kMatch) {
        out.clear();
        (void)matcher->match(event, out);
        matches += out.size();
      }
      bytes += e.size();
    }
    events += w.events.size();
    state.PauseTiming();
    std::vector<match::MemoFieldStats> stats;
    matcher->memo_stats(stats);
    for (const auto& f : stats) {
      lookups += static_cast<double>(f.lookups);
      hits += static_cast<double>(f.hits);
    }
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(events));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["events_per_pass"] = static_cast<double>(w.events.size());
  state.counters["rules"] = static_cast<double>(w.rules->rules().size());
  if (stage != OtrfStage::kParse)
    state.counters["memo_hit_rate"] = lookups > 0 ? hits / lookups : 0;
  state.counters[stage == OtrfStage::kCandidates ? "candidates_per_event" : "matches_per_event"] =
      benchmark::Counter(static_cast<double>(matches) / static_cast<double>(events));
}

void BM_Otrf(benchmark::State& state) {
  run_passes(state, otrf_tree(), static_cast<OtrfStage>(state.range(0)), state.range(1) != 0);
}
// Stage 0 parse, 1 + logsources and eager scans, 2 + candidates, 3 all; memo 1 with the
// matcher's default scan memo (MatcherOptions::memo_bytes), 0 without.
BENCHMARK(BM_Otrf)
    ->ArgNames({"stage", "memo"})
    ->ArgsProduct({{0, 1, 2, 3}, {0, 1}})
    ->Unit(benchmark::kMillisecond);

// What the memo costs where it cannot help: the OTRF stream with every string value made
// unique (a counter appended to each, but to the fields that choose an event's logsources),
// so nothing repeats. Compare memo:1 with memo:0.
const Workload& otrf_unique() {
  static const Workload w = [] {
    Workload u = otrf_tree();
    std::set<std::string> where;
    for (const auto& ls : u.mapping->logsources()) {
      for (const auto& [path, values] : ls.where) where.insert(path);
    }
    size_t n = 0;
    for (std::string& e : u.events) {
      rapidjson::Document d;
      d.Parse(e.data(), e.size());
      if (!d.IsObject()) continue;
      for (auto& m : d.GetObject()) {
        if (!m.value.IsString() || where.count(m.name.GetString())) continue;
        const std::string v =
            std::string(m.value.GetString(), m.value.GetStringLength()) + "~" + std::to_string(n++);
        m.value.SetString(v.data(), static_cast<rapidjson::SizeType>(v.size()), d.GetAllocator());
      }
      rapidjson::StringBuffer buf;
      rapidjson::Writer<rapidjson::StringBuffer> writer(buf);
      d.Accept(writer);
      e.assign(buf.GetString(), buf.GetSize());
    }
    return u;
  }();
  return w;
}
void BM_OtrfUnique(benchmark::State& state) {
  run_passes(state, otrf_unique(), OtrfStage::kMatch, state.range(0) != 0);
}
BENCHMARK(BM_OtrfUnique)->ArgName("memo")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// The RE2::Set peer over the same stream, in the same run.
void BM_Otrf_Re2Set(benchmark::State& state) {
  const Workload& w = otrf_tree();
  if (w.events.empty()) {
    state.SkipWithError("no OTRF events (../shared/corpus/otrf)");
    return;
  }
  static Re2SetMatcher peer(w);
  EventParser parser;
  Event event;
  size_t bytes = 0, matches = 0, events = 0;
  for (auto _ : state) {
    for (const std::string& e : w.events) {
      parser.parse(e, peer.fields(), event);
      matches += peer.match(event);
      bytes += e.size();
    }
    events += w.events.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(events));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["rules"] = static_cast<double>(peer.rules());
  state.counters["left_out"] = static_cast<double>(peer.skipped());
  state.counters["matches_per_event"] =
      benchmark::Counter(static_cast<double>(matches) / static_cast<double>(events));
}
BENCHMARK(BM_Otrf_Re2Set)->Unit(benchmark::kMillisecond);

void BM_ParseOnly_SigmaTreeFields(benchmark::State& state, bool all) {
  const Workload& w = tree(all);
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
BENCHMARK_CAPTURE(BM_ParseOnly_SigmaTreeFields, windows, false);
BENCHMARK_CAPTURE(BM_ParseOnly_SigmaTreeFields, all, true);

// SigmaTree without its last stages: parse, logsources, direct predicates and the eager
// Hyperscan scans (ParseAndScans); and the candidate rules they trigger as well
// (ParseScansCandidates, counter candidates_per_event). No condition program runs and no
// lazy predicate is checked: the time every event pays before the rules are evaluated.
void BM_Stages_ParseAndScans(benchmark::State& state, bool all) {
  const Workload& w = tree(all);
  auto matcher = std::move(*match::Matcher::create(w.rules));
  replay(state, w.events, w.rules->fields(), [&](const Event& event) {
    match::MatcherStages::scan(*matcher, event);
    return size_t{0};
  });
}
BENCHMARK_CAPTURE(BM_Stages_ParseAndScans, windows, false);
BENCHMARK_CAPTURE(BM_Stages_ParseAndScans, all, true);

void BM_Stages_ParseScansCandidates(benchmark::State& state, bool all) {
  const Workload& w = tree(all);
  auto matcher = std::move(*match::Matcher::create(w.rules));
  size_t candidates = 0;
  replay(state, w.events, w.rules->fields(), [&](const Event& event) {
    candidates += match::MatcherStages::candidates(*matcher, event);
    return size_t{0};
  });
  state.counters["candidates_per_event"] =
      benchmark::Counter(static_cast<double>(candidates) / static_cast<double>(state.iterations()));
}
BENCHMARK_CAPTURE(BM_Stages_ParseScansCandidates, windows, false);
BENCHMARK_CAPTURE(BM_Stages_ParseScansCandidates, all, true);

// Floors, for reading the figures above: what simdjson and Hyperscan cost on their own over
// the same events, whatever a matcher does around them.
//   Floor_DomParse: simdjson's DOM parse of each corpus event (every value materialized).
//   Floor_OnDemandIndex: simdjson On-Demand's structural index (stage 1) alone.
//   Floor_MimikatzKeywords: one scan of each raw event with the keywords of
//     win_alert_mimikatz_keywords.yml, whose logsource (product: windows) makes every Windows
//     event scan its whole raw text with them; caseless, one regex database.
//   Floor_ShortScan: one scan of a 57-byte path with a database of one plain string.
// The Windows events padded for simdjson, given to `parse` one per iteration in turn.
template <typename Parse>
void replay_padded(benchmark::State& state, Parse&& parse) {
  std::vector<simdjson::padded_string> events;
  for (const std::string& e : windows_tree().events) events.emplace_back(e);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(parse(events[i]));
    if (++i == events.size()) i = 0;
  }
}

void BM_Floor_DomParse(benchmark::State& state) {
  simdjson::dom::parser parser;
  replay_padded(state, [&](const simdjson::padded_string& e) { return parser.parse(e).error(); });
}
BENCHMARK(BM_Floor_DomParse);

void BM_Floor_OnDemandIndex(benchmark::State& state) {
  simdjson::ondemand::parser parser;
  replay_padded(state, [&](const simdjson::padded_string& e) { return parser.iterate(e).error(); });
}
BENCHMARK(BM_Floor_OnDemandIndex);

int count_match(unsigned, unsigned long long, unsigned long long, unsigned, void* ctx) {
  ++*static_cast<size_t*>(ctx);
  return 0;
}

// A block-mode database of `patterns` (Hyperscan regexes) with `flags` each, or null.
hs_database_t* compile_floor(const std::vector<std::string>& patterns, unsigned flags) {
  std::vector<const char*> exprs;
  for (const auto& p : patterns) exprs.push_back(p.c_str());
  std::vector<unsigned> all_flags(patterns.size(), flags), ids(patterns.size(), 0);
  hs_database_t* db = nullptr;
  hs_compile_error_t* err = nullptr;
  if (hs_compile_multi(exprs.data(), all_flags.data(), ids.data(),
                       static_cast<unsigned>(exprs.size()), HS_MODE_BLOCK, nullptr, &db,
                       &err) != HS_SUCCESS) {
    hs_free_compile_error(err);
    return nullptr;
  }
  return db;
}

void BM_Floor_MimikatzKeywords(benchmark::State& state) {
  const fs::path rule = fs::path(VIGIL_SOURCE_DIR) / ".." / "shared" / "corpus" / "sigma_rules" /
                        "rules" / "windows" / "builtin" / "win_alert_mimikatz_keywords.yml";
  std::ifstream in(rule);
  const std::string yaml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto parsed = match::parse_sigma(yaml, rule.string());
  std::vector<std::string> keywords;
  if (parsed) {
    for (const auto& p : parsed->predicates) {
      if (p.field.empty() && p.kind == match::Predicate::Kind::kPattern)
        keywords.push_back(p.regex);
    }
  }
  hs_database_t* db =
      keywords.empty() ? nullptr : compile_floor(keywords, HS_FLAG_CASELESS | HS_FLAG_SINGLEMATCH);
  hs_scratch_t* scratch = nullptr;
  if (db == nullptr || hs_alloc_scratch(db, &scratch) != HS_SUCCESS) {
    state.SkipWithError("no corpus rule to compile");
    hs_free_database(db);
    return;
  }
  const auto& events = windows_tree().events;
  size_t i = 0, matches = 0;
  for (auto _ : state) {
    const std::string& e = events[i];
    if (++i == events.size()) i = 0;
    hs_scan(db, e.data(), static_cast<unsigned>(e.size()), 0, scratch, count_match, &matches);
  }
  state.counters["keywords"] = static_cast<double>(keywords.size());
  hs_free_scratch(scratch);
  hs_free_database(db);
}
BENCHMARK(BM_Floor_MimikatzKeywords);

void BM_Floor_ShortScan(benchmark::State& state) {
  const char* literal = R"(\\evil\.exe)";  // `\evil.exe`, escaped as a regex
  hs_database_t* db = compile_floor({literal}, HS_FLAG_CASELESS | HS_FLAG_SINGLEMATCH);
  hs_scratch_t* scratch = nullptr;
  if (db == nullptr || hs_alloc_scratch(db, &scratch) != HS_SUCCESS) {
    state.SkipWithError("Hyperscan compile failed");
    hs_free_database(db);
    return;
  }
  const std::string path = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe";
  size_t matches = 0;
  for (auto _ : state) {
    hs_scan(db, path.data(), static_cast<unsigned>(path.size()), 0, scratch, count_match, &matches);
  }
  hs_free_scratch(scratch);
  hs_free_database(db);
}
BENCHMARK(BM_Floor_ShortScan);

void BM_CompileSigmaTree(benchmark::State& state, bool all) {
  const fs::path corpus = fs::path(VIGIL_SOURCE_DIR) / ".." / "shared" / "corpus";
  auto mapping =
      match::FieldMapping::load_file(std::string(VIGIL_SOURCE_DIR "/rules/mappings/") +
                                     (all ? "vigil-sensor.yml" : "windows-evtx-json.yml"));
  for (auto _ : state) {
    match::CompileReport report;
    auto parsed = match::load_rules({(corpus / "sigma_rules").string()}, report);
    auto rs = match::RuleSet::compile(parsed, *mapping, report);
    benchmark::DoNotOptimize(rs);
    state.counters["compiled"] = static_cast<double>(report.compiled);
  }
}
BENCHMARK_CAPTURE(BM_CompileSigmaTree, windows, false)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK_CAPTURE(BM_CompileSigmaTree, all, true)->Unit(benchmark::kMillisecond)->Iterations(1);

// One corpus event at a time (SigmaTreeEvent/windows/<index>), parse + match with caches
// warm: which events cost what. A process creation event with a long command line costs
// several times a file or registry event. Labelled with the event's EventID, channel and
// size; registered in main() (the count is the corpus').
void BM_SigmaTreeEvent(benchmark::State& state, size_t index) {
  const Workload& w = windows_tree();
  auto matcher = std::move(*match::Matcher::create(w.rules));
  EventParser parser;
  Event event;
  std::vector<uint32_t> out;
  const std::string& e = w.events[index];
  for (auto _ : state) {
    parser.parse(e, w.rules->fields(), event);
    out.clear();
    (void)matcher->match(event, out);
  }
  FieldSet header;
  const uint32_t id = header.add("Event.System.EventID");
  const uint32_t channel = header.add("Event.System.Channel");
  (void)parser.parse(e, header, event);
  state.SetLabel("EventID " + std::string(event.field(id).text) + " " +
                 std::string(event.field(channel).text) + ", " + std::to_string(e.size()) + " B");
  state.counters["matches"] = static_cast<double>(out.size());
}

}  // namespace
}  // namespace vigil

int main(int argc, char** argv) {
  const size_t events = vigil::corpus_events().size();
  for (size_t i = 0; i < events; ++i) {
    benchmark::RegisterBenchmark(("BM_SigmaTreeEvent/windows/" + std::to_string(i)).c_str(),
                                 vigil::BM_SigmaTreeEvent, i)
        ->MinTime(0.05);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
