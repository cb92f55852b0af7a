#pragma once
// End-to-end test support: vigild processes against a standalone broker (`vigil dev kafka`
// in its own process), fed by an independent client (kcat), judged through the HTTP API
// and through what kcat reads back from the alerts and dead-letter topics.

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/http_client.h"
#include "support/subprocess.h"
#include "support/temp_dir.h"

namespace vigil::e2e {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using AlertKey = std::pair<std::string, std::string>;  // (rule id, event test_id)

inline bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  return test::wait_for(done, timeout, 100ms);
}

// A `vigil dev kafka` process: the broker outlives the vigild processes under test.
class Broker {
 public:
  explicit Broker(int partitions, int brokers = 1)
      : proc_({VIGIL_CLI_PATH, "dev", "kafka", "--partitions", std::to_string(partitions),
               "--brokers", std::to_string(brokers), "--topic", "vigil.events"}) {
    auto line = proc_.read_line(10s);
    if (line && line->rfind("127.0.0.1:", 0) == 0) bootstrap_ = *line;
  }
  const std::string& bootstrap() const { return bootstrap_; }
  // Sends a control command (down 1, up 1, leader vigil.events 0 2); true on "ok".
  bool control(const std::string& command) {
    if (!proc_.write_line(command)) return false;
    auto reply = proc_.read_line(10s);
    return reply && *reply == "ok";
  }

 private:
  test::Subprocess proc_;
  std::string bootstrap_;
};

class VigildFixture : public ::testing::Test {
 protected:
  // librdkafka's mock coordinator delays a join to a group that had members by the session
  // timeout (45 s by default), where a real broker starts an emptied group afresh; a short
  // session timeout keeps restarts quick. This also exercises --config.
  fs::path config_file() {
    const fs::path p = dir_ / "vigild.yml";
    if (!fs::exists(p)) {
      std::ofstream out(p);
      out << "kafka:\n  properties:\n    session.timeout.ms: \"" << session_timeout_ms_
          << "\"\n    heartbeat.interval.ms: \"300\"\n";
      if (api_tokens_) {
        std::ofstream(dir_ / "tokens")
            << "admin " << kAdminToken << "\nreader " << kReaderToken << "\n";
        out << "api:\n  tokens_file: " << (dir_ / "tokens").string() << "\n";
      }
    }
    return p;
  }
  static constexpr char kAdminToken[] = "e2e-admin-0123456789abcdef";
  static constexpr char kReaderToken[] = "e2e-reader-0123456789abcdef";
  // A GET of the API with the reader token.
  static test::HttpResult api_get(uint16_t port, const std::string& target) {
    return test::http_get("127.0.0.1", port, target,
                          {{"Authorization", std::string("Bearer ") + kReaderToken}});
  }
  // Starts vigild and returns its API port (0 on failure). Logs go to vigild-<run>.log.
  uint16_t start(std::unique_ptr<test::Subprocess>& proc, std::vector<std::string> extra,
                 const std::string& data = "data") {
    std::vector<std::string> argv = {VIGILD_PATH,
                                     "--data-dir",
                                     (dir_ / data).string(),
                                     "--listen",
                                     listen_,
                                     "--rules",
                                     VIGIL_SOURCE_DIR "/rules/sigma",
                                     "--mapping",
                                     VIGIL_SOURCE_DIR "/rules/mappings/vigil-sensor.yml",
                                     "--batch-ms",
                                     "20",
                                     "--config",
                                     config_file().string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    // To debug a flaky run: VIGIL_E2E_LOG_LEVEL=debug with VIGIL_KEEP_TEST_DIRS=1 keeps the logs.
    if (const char* level = std::getenv("VIGIL_E2E_LOG_LEVEL"))
      argv.insert(argv.end(), {"--log-level", level});
    proc = std::make_unique<test::Subprocess>(
        argv, (dir_ / ("vigild-" + std::to_string(++runs_) + ".log")).string());
    auto line = proc->wait_for_line("  api: http://127.0.0.1:", 30s);
    if (!line) return 0;
    return static_cast<uint16_t>(std::stoi(line->substr(line->rfind(':') + 1)));
  }
  std::string log(int run) {
    std::ifstream in(dir_ / ("vigild-" + std::to_string(run) + ".log"));
    std::string text(std::istreambuf_iterator<char>(in), {});
    return text.size() > 20000 ? "..." + text.substr(text.size() - 20000) : text;
  }
  // All alerts, following cursors.
  static std::vector<AlertKey> alerts(uint16_t port) {
    std::vector<AlertKey> out;
    std::string target = "/api/v1/alerts?limit=1000&view=full";  // with events
    for (int page = 0; page < 1000; ++page) {
      auto r = api_get(port, target);
      if (r.status != 200) return out;
      rapidjson::Document d;
      d.Parse(r.body.c_str());
      if (d.HasParseError()) return out;
      for (const auto& a : d["alerts"].GetArray()) {
        std::string id = a.HasMember("event") && a["event"].HasMember("test_id")
                             ? a["event"]["test_id"].GetString()
                             : "";
        out.emplace_back(a["rule"]["id"].GetString(), id);
      }
      if (d["next_cursor"].IsNull()) break;
      target =
          std::string("/api/v1/alerts?limit=1000&view=full&cursor=") + d["next_cursor"].GetString();
    }
    return out;
  }
  void kcat_produce(const std::string& brokers, const std::vector<std::string>& lines) {
    const fs::path file = dir_ / "produce.jsonl";
    std::ofstream out(file);
    for (const auto& l : lines) out << l << "\n";
    out.close();
    std::string output;
    const int rc = test::run_command(std::string(KCAT_PATH) + " -P -b " + brokers +
                                         " -t vigil.events -l " + file.string() + " 2>&1",
                                     &output);
    ASSERT_EQ(rc, 0) << output;
  }
  // Everything in `topic`, one line per message formatted by kcat's `format`.
  std::vector<std::string> kcat_consume(const std::string& brokers, const std::string& topic,
                                        const std::string& format) {
    std::string output;
    test::run_command(std::string(KCAT_PATH) + " -C -b " + brokers + " -t " + topic +
                          " -e -q -f '" + format + "\\n' 2>/dev/null",
                      &output);
    std::vector<std::string> lines;
    size_t pos = 0;
    while (pos < output.size()) {
      size_t nl = output.find('\n', pos);
      if (nl == std::string::npos) nl = output.size();
      if (nl > pos) lines.push_back(output.substr(pos, nl - pos));
      pos = nl + 1;
    }
    return lines;
  }
  // The alerts `vigil match` (the batch path: no Kafka, no store) finds in `events`, as
  // (rule id, test_id) with test_id "e<index>" — what the pipeline must give, exactly.
  std::set<AlertKey> expected_by_batch_match(const std::vector<std::string>& events) {
    const fs::path file = dir_ / "expected.jsonl";
    std::ofstream out(file);
    for (const auto& l : events) out << l << "\n";
    out.close();
    std::string output;
    const int rc = test::run_command(std::string(VIGIL_CLI_PATH) +
                                         " match --rules " VIGIL_SOURCE_DIR
                                         "/rules/sigma --mapping " VIGIL_SOURCE_DIR
                                         "/rules/mappings/vigil-sensor.yml --events " +
                                         file.string() + " 2>/dev/null",
                                     &output);
    EXPECT_EQ(rc, 0);
    std::set<AlertKey> expected;
    size_t pos = 0;
    while (pos < output.size()) {
      size_t nl = output.find('\n', pos);
      if (nl == std::string::npos) nl = output.size();
      rapidjson::Document d;
      d.Parse(output.c_str() + pos, nl - pos);
      if (!d.HasParseError()) {
        const size_t index = d["event"].GetUint64();
        rapidjson::Document ev;
        ev.Parse(events[index].c_str());
        expected.insert({d["rule_id"].GetString(), ev["test_id"].GetString()});
      }
      pos = nl + 1;
    }
    return expected;
  }

  test::TempDir tmp_{"e2e"};
  const fs::path& dir_ = tmp_.path();
  int runs_ = 0;
  int session_timeout_ms_ = 6000;
  bool api_tokens_ = true;
  std::string listen_ = "127.0.0.1:0";  // the API address of the next start()  // the config names
                                        // a token file with kAdminToken and kReaderToken
};

// `n` simulated sensor events (a larger malicious share than the default), each tagged with
// a unique "test_id" (e<first + i>).
std::vector<std::string> simulated_events(size_t first, size_t n, uint64_t seed);

// The current time in RFC 3339, for the @timestamp of crafted events: vigild's retention
// (7 days by default) drops older events at start and every minute, so a fixed date in a
// test expires with the calendar (a test read its retained events back from a restarted
// vigild, and failed from the day its dates turned 7 days old).
std::string now_rfc3339();

// An independent producer (kcat) streaming simulated events in the background: 100 events
// every 200 ms (the mock broker keeps only about 5 MB per partition), so that faults land
// while batches are being read, matched and persisted. Events get test_ids after `events`.
class StreamingProducer {
 public:
  StreamingProducer(std::string brokers, fs::path dir, std::vector<std::string>& events,
                    uint64_t seed);
  ~StreamingProducer() { stop(); }
  // Stops; returns the number of kcat runs that failed (their events are not in `events`).
  int stop();

 private:
  std::string brokers_;
  fs::path file_;
  std::vector<std::string>& events_;
  std::mutex mu_;
  std::atomic<bool> done_{false};
  std::atomic<int> failures_{0};
  std::thread thread_;
};

}  // namespace vigil::e2e
