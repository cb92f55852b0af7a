// Soak (make soak; not part of make test): vigild under a steady, high event rate for
// SOAK_SECONDS (600 by default), with bundle swaps and restarts (SIGTERM, and one SIGKILL)
// in its first half and one uninterrupted run in its second. At the end: the exact alert set
// the batch matcher finds, no matching or store errors, no skipped offsets, and a resident
// set that stays flat after warm-up (at most 20% + 64 MB above its size after the first
// minute of the last run).
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>

#include "e2e/e2e_support.h"

namespace vigil {
namespace {

using e2e::AlertKey;
using e2e::wait_for;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Resident set of a process, in bytes (0 if it is gone).
uint64_t rss_bytes(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

// Produces simulated events at `rate` per second from its own thread (a real Kafka client,
// independent of vigild), appending each acknowledged one to `events`.
class RateProducer {
 public:
  RateProducer(const std::string& brokers, double rate) : rate_(rate) {
    char err[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "linger.ms", "20", err, sizeof err);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    thread_ = std::thread([this] { run(); });
  }
  ~RateProducer() { stop(); }
  void stop() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
    if (rk_) {
      rd_kafka_flush(rk_, 30000);
      rd_kafka_destroy(rk_);
      rk_ = nullptr;
    }
  }
  std::vector<std::string> events() {
    std::lock_guard lock(mu_);
    return events_;
  }

 private:
  void run() {
    uint64_t seed = 1000;
    const auto start = std::chrono::steady_clock::now();
    size_t sent = 0;
    while (!done_.load()) {
      const auto due = static_cast<size_t>(
          rate_ * std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      if (sent >= due) {
        std::this_thread::sleep_for(10ms);
        continue;
      }
      std::vector<std::string> chunk;
      {
        std::lock_guard lock(mu_);
        chunk = e2e::simulated_events(events_.size(), std::min<size_t>(due - sent, 1000), seed++);
      }
      bool ok = true;
      for (const auto& e : chunk) {
        ok = ok && rd_kafka_producev(rk_, RD_KAFKA_V_TOPIC("vigil.events"),
                                     RD_KAFKA_V_VALUE(const_cast<char*>(e.data()), e.size()),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                     RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR;
      }
      // Acknowledged before it counts as input: an event the broker never took is not owed.
      if (ok && rd_kafka_flush(rk_, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        std::lock_guard lock(mu_);
        events_.insert(events_.end(), chunk.begin(), chunk.end());
      }
      sent += chunk.size();
    }
  }
  double rate_;
  rd_kafka_t* rk_ = nullptr;
  std::atomic<bool> done_{false};
  std::mutex mu_;
  std::vector<std::string> events_;
  std::thread thread_;
};

class SoakTest : public e2e::VigildFixture {
 protected:
  static double metric(uint16_t port, const std::string& name) {
    return test::prometheus_sum(test::http_get("127.0.0.1", port, "/metrics").body, name);
  }
  // A copy of the default rule pack with a comment that makes it a new bundle (same rules).
  fs::path bundle_variant(int n) {
    const fs::path dir = dir_ / ("bundle-" + std::to_string(n));
    fs::create_directories(dir);
    fs::copy(VIGIL_SOURCE_DIR "/rules/sigma", dir, fs::copy_options::recursive);
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      if (e.path().extension() == ".yml") {
        std::ofstream(e.path(), std::ios::app) << "# soak variant " << n << "\n";
        break;
      }
    }
    return dir;
  }
};

TEST_F(SoakTest, SteadyRateWithSwapsAndRestarts) {
  const char* seconds_env = std::getenv("SOAK_SECONDS");
  const int seconds = seconds_env ? std::max(120, std::atoi(seconds_env)) : 600;
  const double rate = std::getenv("SOAK_RATE") ? std::atof(std::getenv("SOAK_RATE")) : 5000;
  session_timeout_ms_ = 3000;
  config_file();
  std::ofstream(dir_ / "vigild.yml", std::ios::app) << "rollout:\n  policy: immediate\n";
  e2e::Broker broker(8);
  ASSERT_FALSE(broker.bootstrap().empty());
  const std::string brokers = broker.bootstrap();
  RateProducer producer(brokers, rate);
  std::unique_ptr<test::Subprocess> vigild;
  const auto start_time = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::steady_clock::now() - start_time; };
  const auto half = std::chrono::seconds(seconds / 2);
  int swaps = 0, restarts = 0;
  uint16_t port = 0;
  std::mt19937 rng(20261203);

  // First half: runs of 40-80 s, each with a bundle swap; every third ends in SIGKILL.
  while (elapsed() < half) {
    port = start(vigild, {"--kafka-brokers", brokers});
    ASSERT_NE(port, 0) << log(runs_);
    const auto run_end = std::chrono::steady_clock::now() +
                         std::chrono::seconds(std::uniform_int_distribution<int>(40, 80)(rng));
    std::this_thread::sleep_for(15s);
    std::string output;
    const int rc = test::run_command(std::string(VIGIL_CLI_PATH) + " bundle push " +
                                         bundle_variant(++swaps).string() +
                                         " --server http://127.0.0.1:" + std::to_string(port) +
                                         " --token " + kAdminToken + " 2>&1",
                                     &output);
    EXPECT_EQ(rc, 0) << output;
    while (std::chrono::steady_clock::now() < run_end && elapsed() < half)
      std::this_thread::sleep_for(1s);
    EXPECT_EQ(metric(port, "vigil_match_errors_total"), 0) << log(runs_);
    ++restarts;
    if (restarts % 3 == 0) {
      vigild->signal(SIGKILL);
      ASSERT_TRUE(vigild->wait(10s));
    } else {
      vigild->signal(SIGTERM);
      ASSERT_EQ(vigild->wait(30s), 0) << log(runs_);
    }
  }

  // Second half: one run, its resident set sampled every 5 s after a minute of warm-up.
  port = start(vigild, {"--kafka-brokers", brokers});
  ASSERT_NE(port, 0) << log(runs_);
  std::this_thread::sleep_for(60s);
  const uint64_t warm = rss_bytes(vigild->pid());
  uint64_t peak = warm;
  while (elapsed() < std::chrono::seconds(seconds)) {
    std::this_thread::sleep_for(5s);
    peak = std::max(peak, rss_bytes(vigild->pid()));
  }
  producer.stop();
  const auto all = producer.events();
  const auto expected = expected_by_batch_match(all);
  std::cout << "soak: " << seconds << " s, " << all.size() << " events (" << rate << "/s asked), "
            << swaps << " bundle swaps, " << restarts << " restarts, " << expected.size()
            << " alerts expected; RSS after warm-up " << warm / (1 << 20) << " MB, peak "
            << peak / (1 << 20) << " MB" << std::endl;
  ASSERT_TRUE(wait_for([&] { return alerts(port).size() >= expected.size(); }, 180s))
      << alerts(port).size() << " of " << expected.size() << "\n"
      << log(runs_);
  std::this_thread::sleep_for(2s);
  const auto got = alerts(port);
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(std::set<AlertKey>(got.begin(), got.end()) == expected);
  EXPECT_EQ(metric(port, "vigil_match_errors_total"), 0);
  EXPECT_EQ(metric(port, "vigil_store_errors_total"), 0);
  EXPECT_EQ(metric(port, "vigil_kafka_skipped_offsets_total"), 0);
  EXPECT_EQ(metric(port, "vigil_publish_rejected_total"), 0);
  EXPECT_LE(peak, warm + warm / 5 + (64u << 20)) << "resident set grew after warm-up";
  vigild->signal(SIGTERM);
  EXPECT_EQ(vigild->wait(30s), 0) << log(runs_);
}

}  // namespace
}  // namespace vigil
