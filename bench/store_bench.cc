// Macro bench of the store, in one run so the ratios hold on a noisy machine:
//
//   1. persist:  simulator events (~600 bytes) through ShardWorkers (parse + match + one
//                WriteBatch per batch, WAL on), one thread per worker on its own partitions,
//                with every event retained (events cf) and with none retained: events/s
//                and the ratio. Retention (expire_events) runs every second meanwhile.
//   2. disk:     bytes per retained event after flush and compaction (zstd), beside the
//                raw payload bytes.
//   3. queries:  a store of --alerts alerts (~1.2 KB documents shaped as ShardWorker writes
//                them, ~450 bytes of summary; 300 hosts, 40 rules);
//                pages of 100 newest-first from a random point in time, by time only, by
//                rule and by host (index + MultiGet): p50 / p99 / max in ms, on the
//                store compacted after its bulk load.
//
// Run: ./build/release/bench/vigil_store_bench [--events N] [--workers W] [--alerts M] [--dir D]
//      [--keep]: leave the query store in D (bench/api_bench.sh serves it with vigild)

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include "bench_rules.h"
#include "vigil/ingest/shard_worker.h"
#include "vigil/ingest/simulator.h"
#include "vigil/match/ruleset.h"
#include "vigil/store/retention.h"
#include "vigil/store/store.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

struct PersistResult {
  double rate = 0;
  uint64_t payload_bytes = 0;
  uint64_t events_bytes = 0;
};

PersistResult persist(const std::string& dir, std::shared_ptr<const match::RuleSet> rules,
                      const std::vector<std::string>& events, int workers,
                      ingest::EventRetention retain) {
  fs::remove_all(dir);
  store::StoreOptions so;
  so.path = dir;
  so.retention.max_age_ms = 7LL * 24 * 3600 * 1000;
  auto st = store::Store::open(so);
  if (!st) throw std::runtime_error(st.status().to_string());
  MetricsRegistry metrics;
  store::RetentionTask retention(**st, metrics, SystemClock::instance(), std::chrono::seconds(1));
  retention.start();
  std::vector<std::thread> threads;
  const auto t0 = SteadyClock::now();
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      ingest::ShardOptions o;
      o.shard = w;
      o.retain_events = retain;
      auto worker = ingest::ShardWorker::create(rules, **st, metrics, SystemClock::instance(), o);
      if (!worker) throw std::runtime_error(worker.status().to_string());
      (*worker)->set_cluster_id("bench");
      std::vector<ingest::MessageView> batch;
      const TimeMs now = SystemClock::instance().now_ms();
      for (size_t i = static_cast<size_t>(w); i < events.size();) {
        batch.clear();
        for (; i < events.size() && batch.size() < 2000; i += static_cast<size_t>(workers)) {
          batch.push_back({"events", w, static_cast<int64_t>(i), now, events[i], {}});
        }
        if (auto r = (*worker)->process(batch); !r)
          throw std::runtime_error(r.status().to_string());
      }
    });
  }
  for (auto& t : threads) t.join();
  PersistResult out;
  out.rate = static_cast<double>(events.size()) / seconds_since(t0);
  retention.stop();
  for (const auto& e : events) out.payload_bytes += e.size();
  (void)(*st)->flush();
  (void)(*st)->compact_events();
  out.events_bytes = (*st)->events_bytes();
  return out;
}

struct Latency {
  double p50 = 0, p99 = 0, max = 0;
};

Latency percentiles(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[ms.size() * 99 / 100], ms.back()};
}

// An alert shaped as ShardWorker writes it: summary members, then matched fields and the
// event (~1 KB in all, ~450 bytes of summary).
std::string alert_document(const store::AlertRecord& a, size_t i, const std::string& event_pad) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  const std::string time = format_rfc3339(a.time);
  const std::string cmd = "powershell.exe -enc " + event_pad;
  w.StartObject();
  w.Key("id");
  w.String(a.id.hex().c_str());
  w.Key("time");
  w.String(time.c_str());
  w.Key("detected_at");
  w.String(time.c_str());
  w.Key("rule");
  w.StartObject();
  w.Key("id");
  w.String(a.rule_id.c_str());
  w.Key("title");
  w.String(a.title.data(), static_cast<rapidjson::SizeType>(a.title.size()));
  w.Key("level");
  w.String("high");
  w.Key("tags");
  w.StartArray();
  for (const auto& t : a.tags) w.String(t.c_str());
  w.EndArray();
  w.EndObject();
  w.Key("bundle");
  w.Uint64(1);
  w.Key("host");
  w.String(a.host.c_str());
  w.Key("source");
  w.StartObject();
  w.Key("cluster");
  w.String("bench-cluster-0000000000");
  w.Key("topic");
  w.String("events");
  w.Key("partition");
  w.Uint64(i % 8);
  w.Key("offset");
  w.Uint64(i);
  w.EndObject();
  w.Key("matched");
  w.StartArray();
  w.StartObject();
  w.Key("field");
  w.String("process.command_line");
  w.Key("value");
  w.String(cmd.c_str());
  w.EndObject();
  w.EndArray();
  w.Key("event");
  w.StartObject();
  w.Key("n");
  w.Uint64(i);
  w.Key("host");
  w.String(a.host.c_str());
  w.Key("process");
  w.StartObject();
  w.Key("command_line");
  w.String(cmd.c_str());
  w.EndObject();
  w.EndObject();
  w.EndObject();
  return {sb.GetString(), sb.GetSize()};
}

void query_bench(const std::string& dir, size_t alerts) {
  fs::remove_all(dir);
  auto st = store::Store::open({dir});
  if (!st) throw std::runtime_error(st.status().to_string());
  const TimeMs t0 = 1795539600000;
  const TimeMs span = 30LL * 24 * 3600 * 1000;  // a month of alerts
  std::mt19937_64 rng(42);
  const std::vector<std::string> tags = {"attack.execution", "attack.t1059.001"};
  std::vector<std::string> rule_ids, titles;
  for (int r = 0; r < 40; ++r) {
    rule_ids.push_back("00000000-0000-4000-8000-" + std::to_string(100000000000 + r));
    titles.push_back("Suspicious Process Pattern " + std::to_string(r));
  }
  const std::string event_pad(300, 'e');
  const auto fill0 = SteadyClock::now();
  std::vector<store::AlertRecord> batch;
  for (size_t i = 0; i < alerts;) {
    batch.clear();
    for (size_t n = 0; n < 5000 && i < alerts; ++n, ++i) {
      store::AlertRecord& a = batch.emplace_back();
      const size_t r = rng() % rule_ids.size();
      a.time = t0 + static_cast<TimeMs>(i * static_cast<size_t>(span) / alerts);
      a.id = store::AlertId::derive("bench/events", static_cast<int32_t>(i % 8),
                                    static_cast<int64_t>(i), rule_ids[r]);
      a.rule_id = rule_ids[r];
      a.host = "host-" + std::to_string(rng() % 300);
      a.level = store::AlertLevel::kHigh;
      a.title = titles[r];
      a.tags = tags;
      a.json = alert_document(a, i, event_pad);
      a.summary_size = a.json.find(R"(,"matched":)");
    }
    if (auto s = (*st)->put_batch(batch, {}); !s) throw std::runtime_error(s.to_string());
  }
  (void)(*st)->flush();
  std::printf("queries: %zu alerts written in %.1f s\n", alerts, seconds_since(fill0));
  const auto compact0 = SteadyClock::now();
  (void)(*st)->compact_all();  // a settled store, not one in the middle of its bulk load
  std::printf("queries: compacted in %.1f s\n", seconds_since(compact0));

  auto run = [&](const char* name, auto&& make_query) {
    std::vector<double> ms;
    size_t rows = 0;
    for (int q = 0; q < 3000; ++q) {
      store::AlertQuery query = make_query();
      query.limit = 100;
      query.until = t0 + static_cast<TimeMs>(rng() % static_cast<uint64_t>(span));
      const auto q0 = SteadyClock::now();
      auto page = (*st)->query_alerts(query);
      ms.push_back(seconds_since(q0) * 1000);
      if (!page) throw std::runtime_error(page.status().to_string());
      rows += page->alerts.size();
    }
    const Latency l = percentiles(ms);
    std::printf(
        "queries: %-8s page of 100: p50 %.3f ms  p99 %.3f ms  max %.3f ms  (%.1f rows/page)\n",
        name, l.p50, l.p99, l.max, static_cast<double>(rows) / 3000);
  };
  run("time", [] { return store::AlertQuery{}; });
  run("rule", [&] {
    store::AlertQuery q;
    q.rule_id = rule_ids[rng() % rule_ids.size()];
    return q;
  });
  run("host", [&] {
    store::AlertQuery q;
    q.host = "host-" + std::to_string(rng() % 300);
    return q;
  });
}

int run(int argc, char** argv) {
  size_t n_events = 500000, n_alerts = 10000000;
  int workers = 2;
  std::string dir = (fs::temp_directory_path() / "vigil-store-bench").string();
  CLI::App cli{"vigil store bench"};
  cli.add_option("--events", n_events, "Events persisted per run");
  cli.add_option("--workers", workers, "Shard workers (threads)");
  cli.add_option("--alerts", n_alerts, "Alerts in the query store (0: skip the query bench)");
  cli.add_option("--dir", dir, "Scratch directory (removed unless --keep)");
  bool keep = false;
  cli.add_flag("--keep", keep, "Keep the query store in --dir");
  CLI11_PARSE(cli, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  auto rules = bench::default_pack();
  ManualClock clock(1795539600000);
  ingest::SensorSimulator sim({300, 0.01, 1}, clock);
  std::vector<std::string> events(n_events);
  ingest::SimulatedEvent ev;
  uint64_t bytes = 0;
  for (auto& e : events) {
    sim.next(ev);
    e = ev.json;
    bytes += e.size();
  }
  if (n_events == 0) {
    if (n_alerts) query_bench(dir, n_alerts);
    if (!keep) fs::remove_all(dir);
    return 0;
  }
  std::printf("persist: %zu events, %.0f bytes on average, %d workers, WAL on\n", n_events,
              static_cast<double>(bytes) / static_cast<double>(n_events), workers);
  const auto none = persist(dir, rules, events, workers, ingest::EventRetention::kNone);
  const auto all = persist(dir, rules, events, workers, ingest::EventRetention::kAll);
  std::printf("persist: match + alerts only     %9.0f events/s\n", none.rate);
  std::printf("persist: match + retain every event %6.0f events/s  (ratio %.2f)\n", all.rate,
              all.rate / none.rate);
  std::printf("disk: %.1f bytes per retained event after compaction (raw payload %.1f; %.1fx)\n",
              static_cast<double>(all.events_bytes) / static_cast<double>(n_events),
              static_cast<double>(all.payload_bytes) / static_cast<double>(n_events),
              static_cast<double>(all.payload_bytes) /
                  static_cast<double>(std::max<uint64_t>(all.events_bytes, 1)));
  if (n_alerts) query_bench(dir, n_alerts);
  if (!keep) fs::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace vigil

int main(int argc, char** argv) {
  try {
    return vigil::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "store bench: %s\n", e.what());
    return 1;
  }
}
