// Macro bench of the ingest pipeline against librdkafka's mock cluster, in one run so the
// ratios hold on a noisy machine:
//
//   1. bare:      a bare librdkafka consumer reads the pre-produced events (assign, no
//                 group, touches every payload): the rate of just consuming.
//   2. vigil/N:   the Pipeline (consumer group, N shard workers, parse + match + RocksDB
//                 persistence of alerts and offsets, WAL on) reads the same events.
//   3. latency:   events produced at half the measured vigil rate for a while; for every
//                 alert, the time from the produce call to the alert being readable from
//                 the store (the query the API serves), p50 / p99 / max. With
//                 --find-sustained: first the highest rate the pipeline keeps up with for
//                 the whole run (binary search), then the latency at half of it.
//
// Rates are whole-run: from the assignment (fetching starts) to the last event read (bare)
// or persisted (vigil). The broker's prefetch makes a steady-state window meaningless: once
// librdkafka has prefetched, a bare consumer only reads memory.
//
// Run: ./build/release/bench/vigil_pipeline_bench [--events N] [--partitions P]
//      [--latency-seconds S] [--prefetch-kb K] [--latency-rate R | --find-sustained]
//      [--retain all|matched|none] [--otrf] [--memo-mb M]
//
// --otrf: the throughput rounds read the recorded lab intrusion of the shared corpus
// (corpus/otrf, 41,954 Windows events of ~2.1 KB in recorded order; tests/support/otrf.h)
// matched by the whole SigmaHQ tree (corpus/sigma_rules) under vigil-sensor.yml, instead of
// the simulator's events and the default pack; no latency runs. --memo-mb: each worker's scan
// memo (vigild's match.memo_mb; 0 turns it off).

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>
#include <rapidjson/document.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_set>

#include "support/corpus.h"
#include "support/otrf.h"
#include "vigil/core/allocator.h"
#include "vigil/core/thread_name.h"
#include "vigil/ingest/embedded_kafka.h"
#include "vigil/ingest/pipeline.h"
#include "vigil/ingest/simulator.h"
#include "vigil/match/ruleset.h"
#include "vigil/store/store.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

struct Sent {
  std::mutex mu;
  std::map<std::pair<int32_t, int64_t>, SteadyClock::time_point>
      at;  // (partition, offset) -> produce call
};

void delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  if (m->err || !m->_private) return;
  auto* ctx = static_cast<std::pair<Sent*, SteadyClock::time_point>*>(m->_private);
  {
    std::lock_guard lock(ctx->first->mu);
    ctx->first->at[{m->partition, m->offset}] = ctx->second;
  }
  delete ctx;
}

rd_kafka_t* make_producer(const std::string& brokers) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "linger.ms", "1", err, sizeof err);
  rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", err, sizeof err);
  rd_kafka_conf_set_dr_msg_cb(conf, &delivery);
  return rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
}

// Produces one message, waiting while the producer's queue is full.
void produce(rd_kafka_t* p, const std::string& topic, int32_t partition, std::string_view value) {
  while (rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                           RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                           RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
    rd_kafka_poll(p, 10);
  }
}

// Produces `n` simulator events as fast as the producer takes them.
void produce_all(const std::string& brokers, const std::string& topic, size_t n, uint64_t seed) {
  rd_kafka_t* p = make_producer(brokers);
  ManualClock clock(1795539600000);
  ingest::SensorSimulator sim({300, 0.01, seed}, clock);
  ingest::SimulatedEvent ev;
  for (size_t i = 0; i < n; ++i) {
    sim.next(ev);
    clock.advance_ms(1);
    produce(p, topic, RD_KAFKA_PARTITION_UA, ev.json);
  }
  rd_kafka_flush(p, 60000);
  rd_kafka_destroy(p);
}

// Produces `payloads` in order, as fast as the producer takes them, spread over the topic's
// `partitions` in turn (the mock keeps ~5 MB per partition: the sticky partitioner's uneven
// spread loses events of a large stream).
void produce_payloads(const std::string& brokers, const std::string& topic, int partitions,
                      const std::vector<std::string>& payloads) {
  rd_kafka_t* p = make_producer(brokers);
  for (size_t i = 0; i < payloads.size(); ++i)
    produce(p, topic, static_cast<int32_t>(i % static_cast<size_t>(partitions)), payloads[i]);
  rd_kafka_flush(p, 60000);
  rd_kafka_destroy(p);
}

// CPU time of the whole process (every thread: the mock broker, librdkafka, the workers,
// RocksDB's flushes): what reading one event costs on the machine, beside the wall rate;
// and its page faults (each costs ~13 µs of CPU on the development VM).
struct ProcessUsage {
  double cpu_seconds = 0;
  double page_faults = 0;
};
ProcessUsage process_usage() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return {sec(u.ru_utime) + sec(u.ru_stime), static_cast<double>(u.ru_minflt + u.ru_majflt)};
}

// CPU seconds of each live thread of the process, by thread id, with its name
// (/proc/self/task/<tid>/stat; clock-tick resolution, 10 ms).
std::map<std::string, std::pair<std::string, double>> thread_cpu() {
  std::map<std::string, std::pair<std::string, double>> out;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::error_code ec;
  for (const auto& task : fs::directory_iterator("/proc/self/task", ec)) {
    std::ifstream in(task.path() / "stat");
    std::string line;
    std::getline(in, line);
    const size_t open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close + 2 > line.size())
      continue;
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i >= 14) ticks += std::strtod(field.c_str(), nullptr);  // utime, stime
    }
    out[task.path().filename().string()] = {line.substr(open + 1, close - open - 1), ticks / tick};
  }
  return out;
}

// "name seconds, ..." for the threads that used the most CPU since `before`, same names summed.
std::string cpu_by_thread(const std::map<std::string, std::pair<std::string, double>>& before) {
  std::map<std::string, double> by_name;
  for (const auto& [tid, entry] : thread_cpu()) {
    auto it = before.find(tid);
    by_name[entry.first] += entry.second - (it == before.end() ? 0 : it->second.second);
  }
  std::vector<std::pair<double, std::string>> sorted;
  for (const auto& [name, seconds] : by_name) {
    if (seconds > 0) sorted.emplace_back(seconds, name);
  }
  std::sort(sorted.rbegin(), sorted.rend());
  std::string out;
  for (size_t i = 0; i < sorted.size() && i < 10; ++i) {
    out += fmt::format("{}{} {:.2f}s", i ? ", " : "", sorted[i].second, sorted[i].first);
  }
  return out;
}

// A throughput run: events/s, process CPU microseconds and page faults per event.
// `steady`: events/s from the first delivery on (the first batch a bare consumer polls, the
// first batch vigil persists), without the time to the first one (offset look-ups, the first
// fetch: ~150 ms of a 0.4 s run against the mock broker).
struct Throughput {
  double rate = 0;
  double cpu_us = 0;
  double faults = 0;
  double steady = 0;
};
Throughput throughput(double rate, const ProcessUsage& before, uint64_t events, double steady) {
  if (events == 0) return {rate, 0, 0, 0};
  const ProcessUsage after = process_usage();
  const auto n = static_cast<double>(events);
  return {rate, (after.cpu_seconds - before.cpu_seconds) * 1e6 / n,
          (after.page_faults - before.page_faults) / n, steady};
}
// Events/s between the first delivery (at `first_s`, `first_count` events) and the end.
double steady_rate(uint64_t first_count, double first_s, uint64_t count, double end_s) {
  return end_s > first_s && count > first_count
             ? static_cast<double>(count - first_count) / (end_s - first_s)
             : 0;
}

// --prefetch-kb: librdkafka's prefetch bound for vigil's consumer (and the bare one) instead of
// the Pipeline's.
std::string g_prefetch_kb;

// A bare consumer: assigns every partition from the beginning and reads `n` messages.
Throughput bare_consume_rate(const std::string& brokers, const std::string& topic, int partitions,
                             size_t n) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", "bench-bare", err, sizeof err);
  rd_kafka_conf_set(conf, "fetch.wait.max.ms", "5", err, sizeof err);
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
  // The prefetch bounds vigil's consumer runs with (Pipeline::create), so that the ratio
  // measures what vigil adds, not a difference of librdkafka settings.
  rd_kafka_conf_set(conf, "queued.max.messages.kbytes",
                    g_prefetch_kb.empty() ? "131072" : g_prefetch_kb.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "queued.min.messages", "1000000", err, sizeof err);
  rd_kafka_t* c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  rd_kafka_poll_set_consumer(c);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p)
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  // Connections and metadata first, as the pipeline has them from its group join before
  // its clock starts at the assignment.
  const struct rd_kafka_metadata* md = nullptr;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(c, topic.c_str(), nullptr);
  if (rd_kafka_metadata(c, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
    rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);
  const SteadyClock::time_point first = SteadyClock::now();
  const ProcessUsage usage0 = process_usage();
  rd_kafka_assign(c, list);
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_queue_t* q = rd_kafka_queue_get_consumer(c);
  std::vector<rd_kafka_message_t*> msgs(1024);
  size_t got = 0;
  uint64_t checksum = 0;
  size_t first_count = 0;
  double first_s = -1;
  const auto deadline = SteadyClock::now() + std::chrono::seconds(120);
  while (got < n && SteadyClock::now() < deadline) {
    const ssize_t k = rd_kafka_consume_batch_queue(q, 100, msgs.data(), msgs.size());
    for (ssize_t i = 0; i < k; ++i) {
      if (!msgs[i]->err) {
        ++got;
        const auto* b = static_cast<const unsigned char*>(msgs[i]->payload);
        checksum += b[0] + b[msgs[i]->len - 1];
      }
      rd_kafka_message_destroy(msgs[i]);
    }
    if (got > 0 && first_s < 0) {
      first_s = seconds_since(first);
      first_count = got;
    }
  }
  const double end_s = seconds_since(first);
  const double rate = static_cast<double>(got) / end_s;
  const Throughput result =
      throughput(rate, usage0, got, steady_rate(first_count, first_s, got, end_s));
  rd_kafka_queue_destroy(q);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  if (got < n)
    std::fprintf(stderr, "bare consumer read only %zu of %zu (checksum %llu)\n", got, n,
                 static_cast<unsigned long long>(checksum));
  return result;
}

struct Rules {
  std::shared_ptr<const match::RuleSet> set;
};

// The rules under `dir` compiled under vigil-sensor.yml: the default pack, or the whole SigmaHQ
// tree of the shared corpus (the OTRF stream's layout).
Rules compile_rules(const std::string& dir) {
  auto mapping =
      match::FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/vigil-sensor.yml");
  match::CompileReport report;
  auto parsed = match::load_rules({dir}, report);
  return {*match::RuleSet::compile(parsed, *mapping, report)};
}

size_t g_memo_bytes = match::MatcherOptions{}.memo_bytes;  // --memo-mb

// A store in `dir` (emptied first) and a started Pipeline over it in its own group.
struct Running {
  std::unique_ptr<store::Store> store;
  std::unique_ptr<ingest::Pipeline> pipeline;
};
ingest::EventRetention g_retain = ingest::EventRetention::kAll;
// --latency-timeline: the latency runs also print, per 250 ms of send time, the slowest alert
// (ms) and the alerts sent in it, to tell a steady tail from stalls.
bool g_latency_timeline = false;
int g_batch_ms = 0;  // --batch-ms: PipelineOptions::batch_max_ms (0: vigild's default)

Running start_pipeline(const std::string& brokers, const std::string& topic, const Rules& rules,
                       int workers, const fs::path& dir, MetricsRegistry& metrics) {
  fs::remove_all(dir);
  Running r;
  auto store = store::Store::open({dir.string()});
  if (!store) return r;
  r.store = std::move(*store);
  ingest::PipelineOptions o;
  o.brokers = brokers;
  o.topic = topic;
  o.group = "bench-" + dir.filename().string();
  o.workers = workers;
  if (g_batch_ms > 0) o.batch_max_ms = g_batch_ms;
  // The mock broker answers a fetch it cannot fill only when fetch.wait.max.ms (500 ms by
  // default) has passed, where a real broker answers as soon as data arrives.
  o.kafka_properties = {{"fetch.wait.max.ms", "5"}};
  if (!g_prefetch_kb.empty())
    o.kafka_properties.emplace_back("queued.max.messages.kbytes", g_prefetch_kb);
  o.retain_events = g_retain;
  o.memo_bytes = g_memo_bytes;
  auto p = ingest::Pipeline::create(o, rules.set, *r.store, metrics, SystemClock::instance());
  if (p && (*p)->start()) r.pipeline = std::move(*p);
  return r;
}

// The Pipeline with `workers` shard workers reads `n` events: events/s from its assignment
// to the last event persisted (the group join is not counted).
Throughput pipeline_rate(const std::string& brokers, const std::string& topic, const Rules& rules,
                         int workers, size_t n, const fs::path& dir) {
  MetricsRegistry metrics;
  Running r = start_pipeline(brokers, topic, rules, workers, dir, metrics);
  auto* p = &r.pipeline;
  if (!*p) return {};
  // From the assignment (the moment the bare consumer starts from) to the last event persisted.
  while (!(*p)->assigned()) std::this_thread::sleep_for(std::chrono::microseconds(200));
  const SteadyClock::time_point first = SteadyClock::now();
  const ProcessUsage usage0 = process_usage();
  const auto threads0 = thread_cpu();
  const auto deadline = first + std::chrono::seconds(120);
  uint64_t consumed = 0;
  double first_batch_s = -1;  // when the first batch was persisted
  uint64_t first_count = 0;
  while (consumed < n && SteadyClock::now() < deadline) {
    consumed = metrics.counter_sum("vigil_events_consumed_total");
    if (consumed > 0 && first_batch_s < 0) {
      first_batch_s = seconds_since(first);
      first_count = consumed;
    }
    // 1 ms: finer polling costs the process CPU (a wake-up every 100 µs was 10% of the
    // samples in a profile of this bench) for a timing error under 0.5% of a run.
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const double end_s = seconds_since(first);
  const double rate = static_cast<double>(consumed) / end_s;
  const Throughput result =
      throughput(rate, usage0, consumed, steady_rate(first_count, first_batch_s, consumed, end_s));
  std::fprintf(stderr, "  workers=%d first batch persisted after %.0f ms; cpu by thread: %s\n",
               workers, first_batch_s * 1000, cpu_by_thread(threads0).c_str());
  double busy = 0;
  for (int w = 0; w < workers; ++w)
    busy +=
        metrics.histogram("vigil_batch_duration_seconds", "", {}, {{"shard", std::to_string(w)}})
            .sum();
  std::fprintf(
      stderr, "  workers=%d wall=%.2fs worker-busy=%.2fs batches=%llu pauses=%llu\n", workers,
      seconds_since(first), busy,
      static_cast<unsigned long long>(metrics.counter_sum("vigil_batches_total")),
      static_cast<unsigned long long>(metrics.counter_sum("vigil_backpressure_pauses_total")));
  (*p)->stop();
  (*p)->join();
  if (consumed < n)
    std::fprintf(stderr, "pipeline read only %llu of %zu\n",
                 static_cast<unsigned long long>(consumed), n);
  return result;
}

struct Latency {
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  size_t alerts = 0;
  size_t expected = 0;  // malicious events produced in the measured window
  // Whether the pipeline kept up: events produced but not yet persisted when the producer
  // stopped, and the time it then took to persist them all (-1: not within 10 s).
  uint64_t backlog = 0;
  double drain_ms = -1;
  // The most events produced and not yet persisted, sampled every millisecond of the run, in
  // seconds of the offered rate.
  double max_lag_s = 0;
  // The rate the generator reached: on two cores shared with the pipeline it falls behind
  // its schedule above ~120-150 k events/s and then sends in bursts.
  double sent_rate = 0;
};

Latency alert_latency(const std::string& brokers, const std::string& topic, const Rules& rules,
                      int workers, double rate, double seconds, const fs::path& dir) {
  MetricsRegistry metrics;
  Running r = start_pipeline(brokers, topic, rules, workers, dir, metrics);
  auto* p = &r.pipeline;
  auto* store = &r.store;
  if (!*p) return {};
  while (!(*p)->assigned()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto threads0 = thread_cpu();

  Sent sent;
  std::atomic<bool> done{false};
  std::map<std::pair<int32_t, int64_t>, SteadyClock::time_point> seen;
  std::thread poller([&] {
    set_thread_name("bench:poller");
    store::AlertQuery q;
    q.limit = 200;
    // Documents already seen are recognised by a hash instead of parsed again: parsing the
    // whole page every millisecond took about a third of a core from the pipeline it measures.
    std::unordered_set<size_t> parsed;
    while (!done.load()) {
      auto page = (*store)->query_alerts(q);
      const auto now = SteadyClock::now();
      if (page) {
        for (const auto& a : page->alerts) {
          if (!parsed.insert(std::hash<std::string>{}(a)).second) continue;
          rapidjson::Document d;
          d.Parse(a.c_str());
          if (d.HasParseError()) continue;
          seen.try_emplace({d["source"]["partition"].GetInt(), d["source"]["offset"].GetInt64()},
                           now);
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });

  rd_kafka_t* producer = make_producer(brokers);
  ManualClock clock(1795539600000);
  ingest::SensorSimulator sim({300, 0.01, 99}, clock);
  ingest::SimulatedEvent ev;
  // Warm-up (connections, metadata), not measured: no send time is recorded for these.
  for (int i = 0; i < 200; ++i) {
    sim.next(ev);
    rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic.c_str()),
                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                      RD_KAFKA_V_VALUE(ev.json.data(), ev.json.size()), RD_KAFKA_V_END);
  }
  rd_kafka_flush(producer, 10000);
  // The events to send, made before the clock starts and sent in turn with their time
  // stamps moved on (alert pages are ordered by event time): generating each one while
  // sending took the load generator ~3 µs of CPU per event, more than the pipeline spends on
  // it, on the same two cores. (Alerts are told apart by partition and offset.)
  std::vector<ingest::SimulatedEvent> pool(50000);
  std::vector<std::string> pool_time(pool.size());
  for (size_t i = 0; i < pool.size(); ++i) {
    sim.next(pool[i]);
    clock.advance_ms(1);
    const std::string_view tag = "\"@timestamp\":\"";
    const size_t at = pool[i].json.find(tag);
    if (at != std::string::npos)
      pool_time[i] = pool[i].json.substr(at + tag.size(), format_rfc3339(0).size());
  }
  std::string payload;
  std::this_thread::sleep_for(std::chrono::seconds(1));
  size_t expected = 0;
  const auto t0 = SteadyClock::now();
  // Paced in 1 ms steps: the events due by now are produced, then the producer sleeps. A
  // sleep per event (every 5-10 µs at these rates) cost more CPU in the kernel than the
  // pipeline's own consumer, on the two cores the pipeline needs.
  size_t i = 0;
  uint64_t max_lag = 0;
  // Only events that raise an alert carry a send time: a delivery report with a map insertion
  // per event took the generator about as much CPU as the rest of its work.
  while (seconds_since(t0) < seconds) {
    const auto due = static_cast<size_t>(seconds_since(t0) * rate);
    for (; i < due; ++i) {
      const ingest::SimulatedEvent& ev = pool[i % pool.size()];
      const bool alerting = !ev.expected_rule_id.empty();
      expected += alerting;
      payload = ev.json;
      if (const std::string& old_time = pool_time[i % pool.size()]; !old_time.empty()) {
        const std::string now = format_rfc3339(clock.now_ms());
        for (size_t at = payload.find(old_time); at != std::string::npos;
             at = payload.find(old_time, at + now.size())) {
          payload.replace(at, old_time.size(), now);
        }
      }
      clock.advance_ms(1);
      auto* ctx = alerting
                      ? new std::pair<Sent*, SteadyClock::time_point>(&sent, SteadyClock::now())
                      : nullptr;
      if (rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic.c_str()),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_VALUE(payload.data(), payload.size()),
                            RD_KAFKA_V_OPAQUE(ctx), RD_KAFKA_V_END)) {
        delete ctx;
      }
    }
    rd_kafka_poll(producer, 0);
    const uint64_t persisted = metrics.counter_sum("vigil_events_consumed_total");
    if (200 + i > persisted) max_lag = std::max(max_lag, 200 + i - persisted);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const uint64_t sent_total = 200 + i;  // the warm-up's events are consumed too
  const auto stopped = SteadyClock::now();
  const double sent_rate = static_cast<double>(i) / seconds_since(t0);
  const uint64_t consumed_at_stop = metrics.counter_sum("vigil_events_consumed_total");
  rd_kafka_flush(producer, 30000);
  rd_kafka_destroy(producer);
  double drain_ms = -1;
  while (SteadyClock::now() - stopped < std::chrono::seconds(10)) {
    if (metrics.counter_sum("vigil_events_consumed_total") >= sent_total) {
      drain_ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - stopped).count();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  done = true;
  poller.join();
  std::fprintf(stderr, "  latency run at %.0f events/s: cpu by thread: %s\n", rate,
               cpu_by_thread(threads0).c_str());

  (*p)->stop();
  (*p)->join();

  std::vector<double> ms;
  for (const auto& [key, when] : seen) {
    auto it = sent.at.find(key);
    if (it != sent.at.end())
      ms.push_back(std::chrono::duration<double, std::milli>(when - it->second).count());
  }
  if (g_latency_timeline) {
    std::vector<std::pair<double, double>> timeline;  // (sent after t0 in s, latency in ms)
    for (const auto& [key, when] : seen) {
      auto it = sent.at.find(key);
      if (it == sent.at.end()) continue;
      timeline.emplace_back(std::chrono::duration<double>(it->second - t0).count(),
                            std::chrono::duration<double, std::milli>(when - it->second).count());
    }
    std::sort(timeline.begin(), timeline.end());
    std::string line =
        fmt::format("  latency timeline at {:.0f} events/s (from s: slowest ms, alerts):", rate);
    double window = 0, slowest = 0;
    size_t count = 0;
    for (const auto& [t, ms_taken] : timeline) {
      for (; t >= window + 0.25; window += 0.25, slowest = 0, count = 0) {
        line += fmt::format(" {:.2f}: {:.0f}, {}", window, slowest, count);
      }
      slowest = std::max(slowest, ms_taken);
      ++count;
    }
    line += fmt::format(" {:.2f}: {:.0f}, {}", window, slowest, count);
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::sort(ms.begin(), ms.end());
  Latency l;
  l.alerts = ms.size();
  l.expected = expected;
  l.backlog = sent_total > consumed_at_stop ? sent_total - consumed_at_stop : 0;
  l.drain_ms = drain_ms;
  l.max_lag_s = static_cast<double>(max_lag) / rate;
  l.sent_rate = sent_rate;
  if (!ms.empty()) {
    l.p50_ms = ms[ms.size() / 2];
    l.p99_ms = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
    l.max_ms = ms.back();
  }
  return l;
}

}  // namespace
}  // namespace vigil

int main(int argc, char** argv) {
  using namespace vigil;
  adopt_allocator_settings(argv);
  CLI::App cli{"vigil pipeline macro bench"};
  size_t events = 100000;
  int partitions = 32;
  double latency_seconds = 10;
  double latency_rate = 0;
  int rounds = 1;
  cli.add_option(
      "--events", events,
      "Events pre-produced for the throughput runs (the mock keeps ~5 MB per partition)");
  cli.add_option("--partitions", partitions, "Partitions of the topic");
  cli.add_option("--latency-seconds", latency_seconds, "Duration of the latency run");
  cli.add_option("--rounds", rounds,
                 "Throughput rounds (bare, 1 worker, 2 workers, bare), with the median ratios")
      ->check(CLI::Range(1, 50));
  cli.add_option("--prefetch-kb", g_prefetch_kb,
                 "queued.max.messages.kbytes of vigil's consumer (default: the Pipeline's)");
  std::string retain = "all";
  cli.add_option("--retain", retain,
                 "Events vigil keeps in its store: all (vigild's default), matched or none")
      ->check(CLI::IsMember({"all", "matched", "none"}));
  cli.add_option("--latency-rate", latency_rate,
                 "One latency run at this rate (events/s) instead of 50% and 25% of max");
  cli.add_option("--batch-ms", g_batch_ms, "The pipeline's batch_max_ms (default: vigild's)");
  bool find_sustained = false;
  cli.add_flag("--find-sustained", find_sustained,
               "Search the highest rate the pipeline sustains for --latency-seconds, then measure "
               "the latency at half of it");
  cli.add_flag("--latency-timeline", g_latency_timeline,
               "Print the slowest alert of every 250 ms of the latency runs (stderr)");
  bool otrf = false;
  cli.add_flag("--otrf", otrf,
               "Throughput over the corpus' recorded intrusion with the whole SigmaHQ tree (no "
               "latency runs)");
  int memo_mb = static_cast<int>(g_memo_bytes >> 20);
  cli.add_option("--memo-mb", memo_mb, "Each worker's scan memo in MiB (0: off)")
      ->check(CLI::Range(0, 1024));
  CLI11_PARSE(cli, argc, argv);
  g_memo_bytes = static_cast<size_t>(memo_mb) << 20;
  g_retain = *ingest::parse_event_retention(retain);
  spdlog::set_level(spdlog::level::warn);

  auto kafka = ingest::EmbeddedKafka::start(1, "bench", partitions);
  if (!kafka) {
    std::fprintf(stderr, "%s\n", kafka.status().to_string().c_str());
    return 1;
  }
  const std::string brokers = (*kafka)->bootstrap_servers();
  const fs::path tmp =
      fs::temp_directory_path() / ("vigil-pipeline-bench-" + std::to_string(getpid()));
  const Rules rules = compile_rules(otrf ? (test::corpus_dir() / "sigma_rules").string()
                                         : std::string(VIGIL_SOURCE_DIR "/rules/sigma"));
  double event_bytes = 560;
  if (otrf) {
    const std::vector<std::string> stream = test::otrf_events(test::corpus_dir());
    if (stream.empty()) {
      std::fprintf(stderr, "no OTRF events under %s\n",
                   (test::corpus_dir() / "otrf").string().c_str());
      return 1;
    }
    events = stream.size();
    size_t total = 0;
    for (const auto& e : stream) total += e.size();
    event_bytes = static_cast<double>(total) / static_cast<double>(events);
    produce_payloads(brokers, "bench", partitions, stream);
  } else {
    produce_all(brokers, "bench", events, 1);
  }

  // Bare consumer before and after the pipelines (the broker's state changes little, but the
  // machine's does): the better of the two is the round's reference. --rounds N repeats the
  // round and reports the median ratio: on a noisy machine one round's ratio can move by
  // a third either way.
  // cpu us/event: the whole process's CPU time (broker, clients, workers, RocksDB) per event
  // read; on two cores, a rate cannot exceed 2e6 / that. faults/event: page faults of the
  // process per event read.
  // steady: events/s once the first batch was delivered (see Throughput).
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  std::printf(
      "events: %zu (~%.0f B each%s), partitions: %d, rules: %zu (%s), memo: %zu MiB per worker, "
      "allocator: %s\n",
      events, event_bytes, otrf ? ", the OTRF stream" : "", partitions, rules.set->rules().size(),
      otrf ? "the SigmaHQ tree" : "default pack", g_memo_bytes >> 20,
      tunables ? tunables : "glibc defaults");
  std::vector<double> two_ratios, one_ratios, max_rates, scalings;
  for (int round = 0; round < rounds; ++round) {
    const std::string suffix = rounds > 1 ? "-r" + std::to_string(round) : "";
    const Throughput bare_before = bare_consume_rate(brokers, "bench", partitions, events);
    const Throughput one_run =
        pipeline_rate(brokers, "bench", rules, 1, events, tmp / ("w1" + suffix));
    const Throughput two_run =
        pipeline_rate(brokers, "bench", rules, 2, events, tmp / ("w2" + suffix));
    const Throughput bare_after = bare_consume_rate(brokers, "bench", partitions, events);
    const Throughput bare_run = bare_before.rate >= bare_after.rate ? bare_before : bare_after;
    const double bare = bare_run.rate, one = one_run.rate, two = two_run.rate;
    if (rounds > 1) std::printf("round %d of %d\n", round + 1, rounds);
    std::printf("%-28s %12s %10s %16s %14s %12s %10s\n", "reader", "events/s", "vs bare",
                "cpu us/event", "faults/event", "steady ev/s", "vs bare");
    auto row = [&](const char* name, const Throughput& t) {
      std::printf("%-28s %12.0f %10.2f %16.2f %14.3f %12.0f %10.2f\n", name, t.rate, t.rate / bare,
                  t.cpu_us, t.faults, t.steady,
                  bare_run.steady > 0 ? t.steady / bare_run.steady : 0);
    };
    row("bare librdkafka consumer", bare_run);
    row("vigil pipeline, 1 worker", one_run);
    row("vigil pipeline, 2 workers", two_run);
    std::printf("scaling 2 workers / 1 worker: %.2f\n", two / one);
    std::fflush(stdout);
    two_ratios.push_back(two / bare);
    one_ratios.push_back(one / bare);
    scalings.push_back(two / one);
    max_rates.push_back(std::max(two, one));
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  if (rounds > 1) {
    auto summary = [&](const char* what, const std::vector<double>& v) {
      std::printf("%s over %d rounds: median %.2f, min %.2f, max %.2f\n", what, rounds, median(v),
                  *std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()));
    };
    summary("2 workers / bare", two_ratios);
    summary("1 worker / bare", one_ratios);
    summary("scaling 2 workers / 1 worker", scalings);
  }

  // The producer runs on the same two cores, so the latency runs are made at a half and at
  // a quarter of the maximum measured without it.
  // --latency-rate R: one run at R events/s instead, to compare builds at the same load.
  const double max_rate = median(max_rates);
  if (otrf) {
    fs::remove_all(tmp);
    return 0;
  }
  int run = 0;
  auto latency_at = [&](double rate, const char* what) -> std::optional<Latency> {
    const std::string topic = "latency-" + std::to_string(run++);
    if (auto s = (*kafka)->create_topic(topic, partitions); !s) return std::nullopt;
    const Latency l = alert_latency(brokers, topic, rules, 2, rate, latency_seconds, tmp / topic);
    const std::string drained =
        l.drain_ms < 0 ? "not within 10 s" : fmt::format("in {:.0f} ms", l.drain_ms);
    std::printf(
        "alert latency at %.0f events/s (%.0f%% of max%s; sent %.0f/s) for %.0f s, produce -> "
        "readable in the store: "
        "p50 %.1f ms, p99 %.1f ms, max %.1f ms over %zu alerts (of %zu expected); most behind %.0f "
        "ms of "
        "events, %llu events behind at the end, persisted %s\n",
        rate, rate / max_rate * 100, what, l.sent_rate, latency_seconds, l.p50_ms, l.p99_ms,
        l.max_ms, l.alerts, l.expected, l.max_lag_s * 1000,
        static_cast<unsigned long long>(l.backlog), drained.c_str());
    std::fflush(stdout);
    return l;
  };
  if (find_sustained) {
    // The short runs above read a backlog held in memory: RocksDB's flushes and compactions of
    // a sustained load fall mostly outside them. The sustained maximum is the highest rate at
    // which the pipeline stays less than 250 ms of events behind the producer through the whole
    // run (--latency-seconds) and has persisted everything 250 ms after it: five steps of a
    // binary search between 0 and the short-run maximum.
    double lo = 0, hi = max_rate, generator_limit = 0;
    for (int step = 0; step < 5; ++step) {
      const double rate = (lo + hi) / 2;
      auto l = latency_at(rate, ", sustained search");
      if (!l) return 1;
      if (l->sent_rate < 0.95 * rate) {
        // Not a verdict on the pipeline: the search goes lower, and says so at the end.
        std::printf("the generator reached only %.0f of %.0f events/s\n", l->sent_rate, rate);
        generator_limit = std::max(generator_limit, l->sent_rate);
        hi = rate;
        continue;
      }
      if (l->drain_ms >= 0 && l->drain_ms <= 250 && l->max_lag_s <= 0.25)
        lo = rate;
      else
        hi = rate;
    }
    std::printf("sustained maximum: %.0f events/s (%.0f%% of the short-run maximum)%s\n", lo,
                lo / max_rate * 100,
                generator_limit > 0
                    ? fmt::format("; bounded by the generator, which could send {:.0f}/s at most",
                                  generator_limit)
                          .c_str()
                    : "");
    if (lo > 0 && !latency_at(lo / 2, ", half of the sustained maximum")) return 1;
  } else if (latency_rate > 0) {
    if (!latency_at(latency_rate, "")) return 1;
  } else {
    for (const double share : {0.5, 0.25}) {
      if (!latency_at(max_rate * share, "")) return 1;
    }
  }
  fs::remove_all(tmp);
  return 0;
}
