// Faults, end to end: vigild killed with SIGKILL at random points, the broker taken down
// and partition leaders moved, partitions handed to a second instance and back. After each,
// the alerts must be exactly those the batch matcher (`vigil match`) finds in the input:
// none lost, none twice.

#include <atomic>
#include <iostream>
#include <mutex>
#include <random>

#include "e2e/e2e_support.h"

namespace vigil {
namespace {

using e2e::AlertKey;
using e2e::wait_for;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

class FaultsTest : public e2e::VigildFixture {
 protected:
  // Waits until `port` serves at least `expected.size()` alerts, lets stragglers (a
  // duplicate, a false positive) arrive, and checks the exact set.
  void expect_exactly(uint16_t port, const std::set<AlertKey>& expected, int run) {
    ASSERT_TRUE(wait_for([&] { return alerts(port).size() >= expected.size(); }, 90s))
        << alerts(port).size() << " of " << expected.size() << "\n"
        << log(run);
    std::this_thread::sleep_for(1s);
    const auto got = alerts(port);
    EXPECT_EQ(got.size(), expected.size());
    const std::set<AlertKey> got_set(got.begin(), got.end());
    EXPECT_TRUE(got_set == expected) << diff(got_set, expected);
  }
  // The symmetric difference, for a readable failure.
  static std::string diff(const std::set<AlertKey>& got, const std::set<AlertKey>& expected) {
    std::string out;
    for (const auto& k : expected) {
      if (!got.count(k)) out += "  missing " + k.first + " " + k.second + "\n";
    }
    for (const auto& k : got) {
      if (!expected.count(k)) out += "  extra " + k.first + " " + k.second + "\n";
    }
    return out;
  }
  // The consumer's lag, batches and errors as the instance reports them, for a failure.
  static std::string state(uint16_t port) {
    std::string out = "instance :" + std::to_string(port) + " alerts status " +
                      std::to_string(api_get(port, "/api/v1/alerts?limit=1").status) + "\n";
    const std::string body = test::http_get("127.0.0.1", port, "/metrics").body;
    size_t pos = 0;
    while (pos < body.size()) {
      size_t nl = body.find('\n', pos);
      if (nl == std::string::npos) nl = body.size();
      const std::string line = body.substr(pos, nl - pos);
      for (const char* name :
           {"vigil_consumer_lag_messages{", "vigil_batches_total", "vigil_store_errors_total",
            "vigil_messages_unowned_total", "vigil_backpressure", "vigil_kafka_errors_total",
            "vigil_events_consumed_total"}) {
        if (line.rfind(name, 0) == 0) out += "  " + line + "\n";
      }
      pos = nl + 1;
    }
    return out;
  }
  static size_t union_size(const std::vector<AlertKey>& a, const std::vector<AlertKey>& b) {
    std::set<AlertKey> both(a.begin(), a.end());
    both.insert(b.begin(), b.end());
    return both.size();
  }
  static double metric(uint16_t port, const std::string& name) {
    return test::prometheus_sum(test::http_get("127.0.0.1", port, "/metrics").body, name);
  }
};

TEST_F(FaultsTest, KillNineAndTermRestartsLoseAndDuplicateNothing) {
  session_timeout_ms_ = 3000;  // a killed member leaves the group after this
  e2e::Broker broker(4);
  ASSERT_FALSE(broker.bootstrap().empty());
  const std::string brokers = broker.bootstrap();
  std::mt19937 rng(20261124);
  std::vector<std::string> all;
  e2e::StreamingProducer producer(brokers, dir_, all, 1);
  std::unique_ptr<test::Subprocess> vigild;
  for (int round = 0; round < 12; ++round) {
    ASSERT_NE(start(vigild, {"--kafka-brokers", brokers, "--batch-size", "200"}), 0) << log(runs_);
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(1000, 6000)(rng)));
    // Mostly SIGKILL; every fourth stop is a SIGTERM mid-stream, which must exit cleanly.
    if (round % 4 == 3) {
      vigild->signal(SIGTERM);
      ASSERT_EQ(vigild->wait(30s), 0) << log(runs_);
    } else {
      vigild->signal(SIGKILL);
      ASSERT_TRUE(vigild->wait(10s));
    }
  }
  EXPECT_EQ(producer.stop(), 0);
  const auto expected = expected_by_batch_match(all);
  ASSERT_GT(expected.size(), 300u);

  const uint16_t port = start(vigild, {"--kafka-brokers", brokers});
  ASSERT_NE(port, 0) << log(runs_);
  expect_exactly(port, expected, runs_);
  EXPECT_TRUE(wait_for([&] { return metric(port, "vigil_consumer_lag_messages") == 0; }, 30s))
      << log(runs_);

  // The alerts topic got every alert at least once (an alert persisted just before a kill
  // may be published twice, under the same key).
  std::set<std::string> published;
  EXPECT_TRUE(wait_for(
      [&] {
        auto keys = kcat_consume(brokers, "vigil.alerts", "%k");
        published = std::set<std::string>(keys.begin(), keys.end());
        return published.size() >= expected.size();
      },
      60s));
  EXPECT_EQ(published.size(), expected.size());
  vigild->signal(SIGTERM);
  EXPECT_EQ(vigild->wait(30s), 0) << log(runs_);
}

TEST_F(FaultsTest, BrokerDownAndLeaderChangesLoseNothing) {
  e2e::Broker broker(4, 3);
  ASSERT_FALSE(broker.bootstrap().empty());
  const std::string brokers = broker.bootstrap();
  std::unique_ptr<test::Subprocess> vigild;
  const uint16_t port = start(vigild, {"--kafka-brokers", brokers});
  ASSERT_NE(port, 0) << log(1);
  ASSERT_TRUE(
      wait_for([&] { return test::http_get("127.0.0.1", port, "/readyz").status == 200; }, 30s))
      << log(1);

  std::vector<std::string> all = e2e::simulated_events(0, 2000, 7);
  kcat_produce(brokers, all);
  expect_exactly(port, expected_by_batch_match(all), 1);

  // Every partition's leader moves while new events arrive.
  auto b = e2e::simulated_events(all.size(), 2000, 8);
  for (int p = 0; p < 4; ++p)
    ASSERT_TRUE(broker.control("leader vigil.events " + std::to_string(p) + " " +
                               std::to_string(p % 3 + 1)));
  kcat_produce(brokers, b);
  all.insert(all.end(), b.begin(), b.end());
  for (int p = 0; p < 4; ++p)
    ASSERT_TRUE(broker.control("leader vigil.events " + std::to_string(p) + " " +
                               std::to_string((p + 1) % 3 + 1)));
  expect_exactly(port, expected_by_batch_match(all), 1);

  // A broker (a partition leader, perhaps the group coordinator) goes down and comes back.
  ASSERT_TRUE(broker.control("down 2"));
  std::this_thread::sleep_for(3s);
  ASSERT_TRUE(broker.control("up 2"));
  auto c = e2e::simulated_events(all.size(), 2000, 9);
  kcat_produce(brokers, c);
  all.insert(all.end(), c.begin(), c.end());
  expect_exactly(port, expected_by_batch_match(all), 1);
  EXPECT_EQ(test::http_get("127.0.0.1", port, "/readyz").status, 200);
  vigild->signal(SIGTERM);
  EXPECT_EQ(vigild->wait(30s), 0) << log(1);
}

TEST_F(FaultsTest, PartitionsMoveToASecondInstanceAndBack) {
  e2e::Broker broker(6);
  ASSERT_FALSE(broker.bootstrap().empty());
  const std::string brokers = broker.bootstrap();
  std::unique_ptr<test::Subprocess> a, b;
  const uint16_t port_a =
      start(a, {"--kafka-brokers", brokers, "--group-instance-id", "vigil-0"}, "data-a");
  ASSERT_NE(port_a, 0) << log(1);
  ASSERT_TRUE(
      wait_for([&] { return test::http_get("127.0.0.1", port_a, "/readyz").status == 200; }, 30s))
      << log(1);
  std::vector<std::string> all = e2e::simulated_events(0, 2000, 11);
  kcat_produce(brokers, all);
  expect_exactly(port_a, expected_by_batch_match(all), 1);

  // A second instance (its own store, as a second pod) joins while events stream in: the
  // group splits the partitions mid-stream.
  auto streaming = std::make_unique<e2e::StreamingProducer>(brokers, dir_, all, 100);
  const uint16_t port_b =
      start(b, {"--kafka-brokers", brokers, "--group-instance-id", "vigil-1"}, "data-b");
  ASSERT_NE(port_b, 0) << log(2);
  ASSERT_TRUE(
      wait_for([&] { return test::http_get("127.0.0.1", port_b, "/readyz").status == 200; }, 60s))
      << log(2);
  // Wait for A to hand partitions over (cooperative: A keeps the rest meanwhile).
  ASSERT_TRUE(wait_for([&] { return log(1).find("partitions revoked") != std::string::npos; }, 60s))
      << log(1);
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(streaming->stop(), 0);
  auto expected = expected_by_batch_match(all);
  std::vector<AlertKey> from_b;
  // Distinct alerts, so that one created by both instances cannot end the wait early.
  ASSERT_TRUE(wait_for(
      [&] {
        from_b = alerts(port_b);
        return union_size(alerts(port_a), from_b) >= expected.size();
      },
      90s))
      << alerts(port_a).size() << " + " << from_b.size() << " of " << expected.size() << "\n"
      << state(port_a) << state(port_b) << log(1) << log(2);
  EXPECT_FALSE(from_b.empty()) << "the second instance received no partition";

  // It leaves again mid-stream (SIGTERM: it persists what it holds and commits before
  // leaving), and the first takes its partitions back from the group's committed offsets.
  // What B persisted until it left is read back from its store afterwards.
  const size_t before_leaving = all.size();
  streaming = std::make_unique<e2e::StreamingProducer>(brokers, dir_, all, 200);
  std::this_thread::sleep_for(1s);
  b->signal(SIGTERM);
  ASSERT_EQ(b->wait(30s), 0) << log(2);
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(streaming->stop(), 0);
  ASSERT_GT(all.size(), before_leaving);
  // B's store, served by an instance that consumes an idle topic in another group.
  ASSERT_TRUE(broker.control("topic vigil.idle 1"));
  const uint16_t port_b_store =
      start(b,
            {"--kafka-brokers", brokers, "--topic", "vigil.idle", "--group", "idle",
             "--alerts-topic", "", "--dead-letter-topic", ""},
            "data-b");
  ASSERT_NE(port_b_store, 0) << log(3);
  from_b = alerts(port_b_store);
  b->signal(SIGTERM);
  ASSERT_EQ(b->wait(30s), 0) << log(3);
  expected = expected_by_batch_match(all);
  std::vector<AlertKey> from_a;
  ASSERT_TRUE(wait_for(
      [&] {
        from_a = alerts(port_a);
        return union_size(from_a, from_b) >= expected.size();
      },
      90s))
      << from_a.size() << " + " << from_b.size() << " of " << expected.size() << "\n"
      << state(port_a) << log(1);
  std::this_thread::sleep_for(1s);
  from_a = alerts(port_a);
  std::set<AlertKey> both(from_a.begin(), from_a.end());
  both.insert(from_b.begin(), from_b.end());
  EXPECT_TRUE(both == expected) << diff(both, expected);
  // Each store holds an alert once (its ids come from topic/partition/offset/rule).
  EXPECT_EQ(std::set<AlertKey>(from_a.begin(), from_a.end()).size(), from_a.size())
      << "an alert twice in A's store";
  EXPECT_EQ(std::set<AlertKey>(from_b.begin(), from_b.end()).size(), from_b.size())
      << "an alert twice in B's store";
  // The committed offsets a member leaves when it hands partitions over are where the next
  // owner starts: an alert in both stores means they were behind what it had persisted.
  // That is allowed only when the group refused the hand-over commit, which the member
  // counts and logs. The mock coordinator (librdkafka 2.0.2, rdkafka_mock_cgrp.c) does so
  // now and then: its leader is the first member (A), the group is up once the leader's
  // SyncGroup has set every assignment, and a follower's SyncGroup arriving after that is
  // refused (INVALID_REQUEST); B rejoins and the group refuses every commit until the next
  // election, 5 s later, A's commit before revoking included. A Kafka broker answers a
  // late follower with its assignment. Seen under ASan in CI (stop 20, and a rehearsal of
  // this fix): A's log "commit before revocation failed", B without an assignment in that
  // round, 55 alerts in both stores.
  const double refused = metric(port_a, "vigil_kafka_hand_over_commit_failures_total");
  const bool b_refused = log(2).find("commit before leaving failed") != std::string::npos;
  if (refused == 0 && !b_refused) {
    EXPECT_EQ(from_a.size() + from_b.size(), expected.size())
        << "an alert was created by both instances\n"
        << log(1) << log(2);
  } else {
    std::cerr << "a hand-over commit was refused (A: " << refused
              << ", B: " << (b_refused ? "yes" : "no")
              << "); alerts in both stores: " << from_a.size() + from_b.size() - expected.size()
              << "\n";
  }
  a->signal(SIGTERM);
  EXPECT_EQ(a->wait(30s), 0) << log(1);
}

}  // namespace
}  // namespace vigil
