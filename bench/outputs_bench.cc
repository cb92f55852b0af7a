// Macro bench of the alert outputs, in one run so the ratios hold on a noisy machine:
//
//   1. delivery: alerts queued in a store (~1 KB documents), drained by one output into a
//      sink on loopback in this process (vigil's own HTTP server answering 200 for the HTTP
//      outputs; a socket reader for syslog): alerts/s per output and format.
//   2. pipeline: simulator events through two ShardWorkers (parse, match, persist) with no
//      output; with a webhook, a Splunk HEC and a syslog output on (each alert queued three
//      times in the batch, the three deliverers draining to the sinks meanwhile); and with
//      the three pointed at destinations that are down (the queues grow, nothing is sent):
//      alternated rounds, events/s and the ratios.
//
// Run: ./build/release/bench/vigil_outputs_bench [--alerts N] [--events N] [--rounds R]

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "bench_rules.h"
#include "vigil/api/http.h"
#include "vigil/ingest/shard_worker.h"
#include "vigil/ingest/simulator.h"
#include "vigil/match/ruleset.h"
#include "vigil/output/deliverer.h"
#include "vigil/store/store.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;
namespace net = boost::asio;
using SteadyClock = std::chrono::steady_clock;

double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

// An HTTP sink: every POST answered 200; the alerts in it counted (one per webhook request;
// HEC's batch: one event object per alert, each starting {"time":).
struct HttpSink {
  std::atomic<uint64_t> requests{0};
  std::unique_ptr<api::HttpServer> server;
  HttpSink() {
    api::Router r;
    r.add(
        "POST", "/hook",
        [this](const api::HttpRequest&) {
          requests.fetch_add(1, std::memory_order_relaxed);
          return api::HttpResponse::json(R"({"ok":true})");
        },
        api::Access::kOpen);
    r.add(
        "POST", "/services/collector/event",
        [this](const api::HttpRequest& req) {
          uint64_t n = 0;
          for (size_t p = req.body.find(R"({"time":)"); p != std::string::npos;
               p = req.body.find(R"({"time":)", p + 1))
            ++n;
          requests.fetch_add(n, std::memory_order_relaxed);
          return api::HttpResponse::json(R"({"text":"Success","code":0})");
        },
        api::Access::kOpen);
    api::HttpServerOptions o;
    o.port = 0;
    o.threads = 1;
    o.max_body_bytes = 64 << 20;
    o.max_body_bytes_in_flight = 128 << 20;
    auto s = api::HttpServer::start(o, std::move(r));
    if (!s) throw std::runtime_error(s.status().to_string());
    server = std::move(*s);
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(server->port()) + path;
  }
};

// A syslog sink: TCP connections read to the end (octet-counted frames counted), UDP
// datagrams counted.
struct SyslogSink {
  net::io_context ioc;
  net::ip::tcp::acceptor acceptor{ioc, {net::ip::make_address("127.0.0.1"), 0}};
  net::ip::udp::socket udp{ioc, {net::ip::make_address("127.0.0.1"), 0}};
  std::atomic<uint64_t> messages{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  SyslogSink() {
    threads.emplace_back([this] {
      while (!stop) {
        net::ip::tcp::socket s(ioc);
        boost::system::error_code ec;
        acceptor.accept(s, ec);
        if (ec || stop) return;
        threads.emplace_back([this, s = std::move(s)]() mutable {
          std::string buf;
          char chunk[65536];
          boost::system::error_code rec;
          while (true) {
            const size_t n = s.read_some(net::buffer(chunk), rec);
            if (rec) return;
            buf.append(chunk, n);
            size_t pos = 0;
            while (true) {  // "LEN SP MSG" frames
              const size_t sp = buf.find(' ', pos);
              if (sp == std::string::npos) break;
              const size_t len = std::stoul(buf.substr(pos, sp - pos));
              if (buf.size() < sp + 1 + len) break;
              pos = sp + 1 + len;
              messages.fetch_add(1, std::memory_order_relaxed);
            }
            buf.erase(0, pos);
          }
        });
      }
    });
    threads.emplace_back([this] {
      char d[65536];
      net::ip::udp::endpoint from;
      boost::system::error_code ec;
      while (!stop) {
        udp.receive_from(net::buffer(d), from, 0, ec);
        if (!ec && !stop) messages.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  ~SyslogSink() {
    stop = true;
    boost::system::error_code ec;
    acceptor.close(ec);
    udp.shutdown(net::socket_base::shutdown_both, ec);
    udp.close(ec);
    ::shutdown(acceptor.native_handle(), SHUT_RDWR);
    for (auto& t : threads)
      if (t.joinable()) t.detach();  // readers end with their connections
  }
  uint16_t tcp_port() const { return acceptor.local_endpoint().port(); }
  uint16_t udp_port() const { return udp.local_endpoint().port(); }
};

std::string alert_document(size_t i) {
  return R"({"id":")" + std::to_string(i) +
         R"(","time":"2026-12-07T05:00:00.000Z","detected_at":"2026-12-07T05:00:00.050Z",)"
         R"("rule":{"id":"5a1b7c2e-1f3d-4b6a-9c8e-0d2f4a6b8c10","title":"Suspicious Encoded PowerShell Command Line","level":"high",)"
         R"("tags":["attack.execution","attack.t1059.001"]},"bundle":1,"host":"WS-0042.corp.example",)"
         R"("source":{"cluster":"c","topic":"vigil.events","partition":3,"offset":)" +
         std::to_string(i) +
         R"(},"matched":[{"field":"CommandLine","value":"powershell.exe -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQA"}],)"
         R"("event":{"@timestamp":"2026-12-07T05:00:00.000Z","Hostname":"WS-0042.corp.example","Channel":"Microsoft-Windows-Sysmon/Operational",)"
         R"("EventID":1,"Image":"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe","CommandLine":"powershell.exe -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQA",)"
         R"("ParentImage":"C:\\Windows\\explorer.exe","User":"CORP\\alice","IntegrityLevel":"Medium","ProcessId":4242,)"
         R"("Hashes":"SHA256=9F2B5F9A0C2F1D8E7B6A5C4D3E2F1A0B9C8D7E6F5A4B3C2D1E0F9A8B7C6D5E4F"}})";
}

output::OutputConfig config_of(const std::string& yaml) {
  auto list = output::parse_outputs(YAML::Load(yaml), "bench");
  if (!list) throw std::runtime_error(list.status().to_string());
  return list->front();
}

// Queues `n` alerts for `c`, then times the drain.
double delivery_rate(const std::string& dir, const output::OutputConfig& c, size_t n,
                     const std::function<uint64_t()>& received) {
  fs::remove_all(dir);
  auto st = store::Store::open({dir});
  if (!st) throw std::runtime_error(st.status().to_string());
  std::vector<std::string> docs;
  for (size_t i = 0; i < n; ++i) docs.push_back(alert_document(i));
  for (size_t i = 0; i < n;) {
    std::vector<store::DeliveryRecord> batch;
    for (; i < n && batch.size() < 1000; ++i)
      batch.push_back({c.id, static_cast<TimeMs>(i),
                       store::AlertId::derive("b", 0, static_cast<int64_t>(i), "r"), docs[i]});
    if (auto s = (*st)->put_batch({}, {}, {}, {}, {}, batch); !s)
      throw std::runtime_error(s.to_string());
  }
  MetricsRegistry metrics;
  auto d = output::Deliverer::create(c, **st, metrics, SystemClock::instance());
  if (!d) throw std::runtime_error(d.status().to_string());
  const uint64_t before = received();
  const auto t0 = SteadyClock::now();
  (*d)->start();
  while ((*d)->status().delivered < n) {
    if (seconds_since(t0) > 120) throw std::runtime_error(c.name + ": not drained in 120 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const double rate = static_cast<double>(n) / seconds_since(t0);
  (*d)->stop();
  if (received() - before < n && c.transport != output::SyslogTransport::kUdp)
    throw std::runtime_error(c.name + ": the sink received fewer than delivered");
  return rate;
}

struct PipelineRound {
  double events_per_second = 0;
  uint64_t alerts = 0;
};

PipelineRound pipeline_round(const std::string& dir, std::shared_ptr<const match::RuleSet> rules,
                             const std::vector<std::string>& events,
                             std::shared_ptr<const std::vector<output::OutputConfig>> outputs) {
  fs::remove_all(dir);
  auto st = store::Store::open({dir});
  if (!st) throw std::runtime_error(st.status().to_string());
  MetricsRegistry metrics;
  std::vector<std::unique_ptr<output::Deliverer>> deliverers;
  if (outputs)
    for (const auto& c : *outputs) {
      auto d = output::Deliverer::create(c, **st, metrics, SystemClock::instance());
      if (!d) throw std::runtime_error(d.status().to_string());
      (*d)->start();
      deliverers.push_back(std::move(*d));
    }
  constexpr int kWorkers = 2;
  std::atomic<uint64_t> alerts{0};
  std::vector<std::thread> threads;
  const auto t0 = SteadyClock::now();
  for (int w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&, w] {
      ingest::ShardOptions o;
      o.shard = w;
      o.outputs = outputs;
      auto worker = ingest::ShardWorker::create(rules, **st, metrics, SystemClock::instance(), o);
      if (!worker) throw std::runtime_error(worker.status().to_string());
      (*worker)->set_cluster_id("bench");
      std::vector<ingest::MessageView> batch;
      const TimeMs now = SystemClock::instance().now_ms();
      for (size_t i = static_cast<size_t>(w); i < events.size();) {
        batch.clear();
        for (; i < events.size() && batch.size() < 2000; i += kWorkers)
          batch.push_back({"events", w, static_cast<int64_t>(i), now, events[i], {}});
        auto r = (*worker)->process(batch);
        if (!r) throw std::runtime_error(r.status().to_string());
        alerts += r->alerts;
        for (size_t o = 0; o < r->delivered_to.size(); ++o)
          deliverers[o]->queued(r->delivered_to[o]);
      }
    });
  }
  for (auto& t : threads) t.join();
  PipelineRound out;
  out.events_per_second = static_cast<double>(events.size()) / seconds_since(t0);
  out.alerts = alerts.load();
  for (auto& d : deliverers) d->stop();
  return out;
}

}  // namespace
}  // namespace vigil

int main(int argc, char** argv) {
  using namespace vigil;
  CLI::App cli{"vigil_outputs_bench: alert outputs on loopback"};
  size_t alerts = 20000, events = 200000;
  int rounds = 3;
  double malicious = 0.05;
  std::string dir = (fs::temp_directory_path() / "vigil-outputs-bench").string();
  cli.add_option("--alerts", alerts, "Alerts each output drains");
  cli.add_option("--events", events, "Simulator events per pipeline round");
  cli.add_option("--rounds", rounds, "Alternated pipeline rounds (none, three outputs)");
  cli.add_option("--malicious-ratio", malicious, "Simulator attack ratio (alerts per event)");
  cli.add_option("--dir", dir, "Scratch directory");
  CLI11_PARSE(cli, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  HttpSink http;
  SyslogSink syslog;
  auto http_count = [&] { return http.requests.load(); };
  auto syslog_count = [&] { return syslog.messages.load(); };
  const std::string tcp = "127.0.0.1:" + std::to_string(syslog.tcp_port());
  const std::string udp = "127.0.0.1:" + std::to_string(syslog.udp_port());
  struct Case {
    std::string label, yaml;
    size_t n;
    std::function<uint64_t()> received;
  };
  const std::vector<Case> cases = {
      {"webhook, vigil JSON (1 alert per request)",
       "- {name: w, type: webhook, url: '" + http.url("/hook") + "'}", alerts / 4, http_count},
      {"webhook, ECS", "- {name: we, type: webhook, format: ecs, url: '" + http.url("/hook") + "'}",
       alerts / 4, http_count},
      {"slack text", "- {name: s, type: slack, url: '" + http.url("/hook") + "'}", alerts / 4,
       http_count},
      {"splunk_hec, OCSF, batches of 100",
       "- {name: h, type: splunk_hec, format: ocsf, token: t, batch_size: 100, url: '" +
           http.url("") + "'}",
       alerts, http_count},
      {"syslog TCP, JSON, batches of 100", "- {name: st, type: syslog, address: '" + tcp + "'}",
       alerts, syslog_count},
      {"syslog TCP, CEF", "- {name: sc, type: syslog, message: cef, address: '" + tcp + "'}",
       alerts, syslog_count},
      {"syslog UDP, JSON", "- {name: su, type: syslog, transport: udp, address: '" + udp + "'}",
       alerts, syslog_count},
  };
  std::printf("delivery on loopback (alerts/s, one output at a time)\n");
  for (const auto& c : cases) {
    const double rate = delivery_rate(dir + "/d", config_of(c.yaml), c.n, c.received);
    std::printf("  %-42s %10.0f alerts/s  (%zu alerts)\n", c.label.c_str(), rate, c.n);
  }

  auto rules = bench::default_pack();
  ingest::SensorSimulator sim({300, malicious, 7}, SystemClock::instance());
  std::vector<std::string> evs;
  ingest::SimulatedEvent e;
  for (size_t i = 0; i < events; ++i) {
    sim.next(e);
    evs.push_back(e.json);
  }
  auto three =
      std::make_shared<const std::vector<output::OutputConfig>>(std::vector<output::OutputConfig>{
          config_of("- {name: pw, type: webhook, url: '" + http.url("/hook") + "'}"),
          config_of("- {name: ph, type: splunk_hec, token: t, url: '" + http.url("") + "'}"),
          config_of("- {name: ps, type: syslog, address: '" + tcp + "'}")});
  std::printf("\npipeline: %zu simulator events (attack ratio %.2f), 2 shard workers, persist\n",
              events, malicious);
  auto down =
      std::make_shared<const std::vector<output::OutputConfig>>(std::vector<output::OutputConfig>{
          config_of("- {name: dw, type: webhook, url: 'http://127.0.0.1:9/hook', retry: "
                    "{initial: 1s, max: 1s}}"),
          config_of("- {name: dh, type: splunk_hec, token: t, url: 'http://127.0.0.1:9', retry: "
                    "{initial: 1s, max: 1s}}"),
          config_of("- {name: ds, type: syslog, address: '127.0.0.1:9', retry: {initial: 1s, "
                    "max: 1s}}")});
  std::vector<double> none, on, dead;
  for (int r = 0; r < rounds; ++r) {
    const auto a = pipeline_round(dir + "/p", rules, evs, nullptr);
    const auto b = pipeline_round(dir + "/p", rules, evs, three);
    const auto c = pipeline_round(dir + "/p", rules, evs, down);
    none.push_back(a.events_per_second);
    on.push_back(b.events_per_second);
    dead.push_back(c.events_per_second);
    std::printf(
        "  round %d: no output %9.0f events/s; three outputs %9.0f (%.2fx); three down %9.0f "
        "(%.2fx); %llu alerts\n",
        r + 1, a.events_per_second, b.events_per_second, b.events_per_second / a.events_per_second,
        c.events_per_second, c.events_per_second / a.events_per_second,
        static_cast<unsigned long long>(b.alerts));
  }
  std::sort(none.begin(), none.end());
  std::sort(on.begin(), on.end());
  std::sort(dead.begin(), dead.end());
  const double m = none[none.size() / 2];
  std::printf(
      "  median: no output %.0f; three outputs %.0f (%.2fx); three down %.0f (%.2fx) events/s\n", m,
      on[on.size() / 2], on[on.size() / 2] / m, dead[dead.size() / 2], dead[dead.size() / 2] / m);
  fs::remove_all(dir);
  return 0;
}
