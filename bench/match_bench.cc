// Matching throughput: parse + match per event, on one core.
//
//   DefaultPack: the shipped rule pack over simulator events (what `make run` does).
//   SigmaTree:   every SigmaHQ rule that compiles today (../shared/corpus/sigma_rules) over
//                the corpus' real Sysmon events, under the windows-evtx-json mapping.
//   ParseOnly:   the simdjson field extraction alone, for the same events.
//
// Run: make bench   (or ./build/release/bench/vigil_match_bench)

#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>

#include "vigil/ingest/simulator.h"
#include "vigil/match/ruleset.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

struct Workload {
  std::shared_ptr<const match::RuleSet> rules;
  std::vector<std::string> events;
  size_t compiled = 0, unsupported = 0;
};

Workload default_pack() {
  Workload w;
  auto mapping = match::FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/vigil-sensor.yml");
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
  auto mapping = match::FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/windows-evtx-json.yml");
  match::CompileReport report;
  auto parsed = match::load_rules({(corpus / "sigma_rules").string()}, report);
  w.rules = *match::RuleSet::compile(parsed, *mapping, report);
  w.compiled = report.compiled;
  w.unsupported = report.unsupported;
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
  state.counters["matches_per_event"] = benchmark::Counter(static_cast<double>(matches) / static_cast<double>(state.iterations()));
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
  auto mapping = match::FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/windows-evtx-json.yml");
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
