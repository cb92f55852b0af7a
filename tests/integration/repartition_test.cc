// Correlation across partitions (cluster mode) against a real Kafka protocol peer
// (librdkafka's mock cluster): two replicas with their own stores in one consumer group,
// events keyed by host, correlations grouped by user (each user's events spread over every
// partition). The base-rule matches go through the repartition topic keyed by user, so each
// group fires exactly once across the replicas; a replica that takes a partition of that
// topic over rebuilds its windows from it.

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "support/temp_dir.h"
#include "vigil/core/time.h"
#include "vigil/ingest/correlation_hit.h"
#include "vigil/ingest/embedded_kafka.h"
#include "vigil/ingest/pipeline.h"
#include "vigil/ingest/publisher.h"

namespace vigil::ingest {
namespace {

using namespace std::chrono_literals;

constexpr char kMapping[] = R"(
name: test
host_field: host
time_field: ts
logsources:
  - name: all
    match: {category: process_creation}
)";

constexpr int kUsers = 5;
constexpr int kHosts = 4;

std::shared_ptr<const match::RuleSet> rules() {
  auto m = match::FieldMapping::parse(kMapping, "m.yml");
  EXPECT_TRUE(m);
  std::vector<match::SigmaRule> rules;
  for (const char* def :
       {"title: Logon\nid: r-a\nname: logon\nlevel: low\nlogsource: {category: "
        "process_creation}\ndetection:\n  sel:\n    cmd|contains: logon\n  condition: sel\n",
        // Four logons of one user, wherever they came from.
        "title: Many logons\nid: c-count\nlevel: high\ncorrelation:\n  type: event_count\n"
        "  rules: [logon]\n  group-by: [user]\n  timespan: 1h\n  condition: {gte: 4}\n",
        // One user on four hosts.
        "title: Many hosts\nid: c-hosts\nlevel: high\ncorrelation:\n  type: value_count\n"
        "  rules: [logon]\n  group-by: [user]\n  timespan: 1h\n"
        "  condition: {field: host, gte: 4}\n",
        // Grouped by the partition key: stays on the local path.
        "title: Host busy\nid: c-local\nlevel: medium\ncorrelation:\n  type: event_count\n"
        "  rules: [logon]\n  group-by: [host]\n  timespan: 1h\n  condition: {gte: 5}\n"}) {
    auto r = match::parse_sigma(def, "r.yml");
    EXPECT_TRUE(r) << r.status().to_string();
    if (r) rules.push_back(*r);
  }
  match::CompileReport report;
  auto rs = match::RuleSet::compile(rules, *m, report);
  EXPECT_TRUE(rs);
  return rs ? *rs : nullptr;
}

bool wait_until(const std::function<bool()>& f, int seconds = 60) {
  for (int i = 0; i < seconds * 20; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return f();
}

// One vigild's ingest: a pipeline and its publisher over its own store.
struct Replica {
  test::TempDir dir{"repartition"};
  std::unique_ptr<store::Store> store;
  MetricsRegistry metrics;
  std::unique_ptr<Pipeline> pipeline;
  std::unique_ptr<Publisher> publisher;

  void start(const std::string& brokers, std::shared_ptr<const match::RuleSet> rs,
             const std::string& name) {
    if (!store) {
      auto s = store::Store::open({dir / "data"});
      ASSERT_TRUE(s) << s.status().to_string();
      store = std::move(*s);
    }
    PipelineOptions o;
    o.brokers = brokers;
    o.topic = "events";
    o.group = "vigil";
    o.client_id = name;
    o.workers = 2;
    o.batch_max_ms = 20;
    o.repartition_topic = "events.correlation";
    o.partition_key_fields = {"host"};
    o.kafka_properties = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
    auto p = Pipeline::create(o, std::move(rs), *store, metrics, SystemClock::instance());
    ASSERT_TRUE(p) << p.status().to_string();
    pipeline = std::move(*p);
    PublisherOptions po;
    po.brokers = brokers;
    po.repartition_topic = o.repartition_topic;
    auto pub = Publisher::create(po, *store, metrics);
    ASSERT_TRUE(pub) << pub.status().to_string();
    publisher = std::move(*pub);
    pipeline->set_on_outbox([p = publisher.get()] { p->notify(); });
    publisher->start();
    ASSERT_TRUE(pipeline->start().is_ok());
  }
  void stop() {
    pipeline->stop();
    pipeline->join();
    pipeline.reset();
    publisher->stop();
    publisher.reset();
  }
  // rule id -> group values -> alerts
  void correlation_alerts(std::map<std::string, std::map<std::string, int>>& out) const {
    for (const char* rule : {"c-count", "c-hosts", "c-local"}) {
      store::AlertQuery q;
      q.rule_id = rule;
      q.limit = 1000;
      auto page = store->query_alerts(q);
      ASSERT_TRUE(page);
      for (const auto& a : page->alerts) {
        const size_t g = a.find(R"("group":{)");
        ASSERT_NE(g, std::string::npos) << a;
        ++out[rule][a.substr(g, a.find('}', g) - g)];
      }
    }
  }
  uint64_t hits(const std::string& outcome) const {
    return metrics.counter_sum("vigil_correlation_hits_total", {{"outcome", outcome}});
  }
};

class RepartitionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::default_logger();  // made before the replicas' threads log at once (TSan)
    auto k = EmbeddedKafka::start(1, "events", 4);
    ASSERT_TRUE(k) << k.status().to_string();
    kafka_ = std::move(*k);
    ASSERT_TRUE(kafka_->create_topic("events.correlation", 4).is_ok());
    rules_ = rules();
    ASSERT_TRUE(rules_);
  }
  // One logon per (user, host) for the given hosts, keyed by host.
  void produce_logons(int host_from, int host_to) {
    char err[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", kafka_->bootstrap_servers().c_str(), err,
                      sizeof err);
    rd_kafka_t* p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    ASSERT_NE(p, nullptr) << err;
    const TimeMs now = SystemClock::instance().now_ms();
    for (int h = host_from; h < host_to; ++h) {
      for (int u = 0; u < kUsers; ++u) {
        const std::string host = "h" + std::to_string(h);
        const std::string payload = R"({"ts":")" + format_rfc3339(now + h * 1000 + u) +
                                    R"(","host":")" + host + R"(","user":"u)" + std::to_string(u) +
                                    R"(","cmd":"logon"})";
        ASSERT_EQ(
            rd_kafka_producev(p, RD_KAFKA_V_TOPIC("events"),
                              RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()),
                              RD_KAFKA_V_KEY(const_cast<char*>(host.data()), host.size()),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
            RD_KAFKA_RESP_ERR_NO_ERROR);
      }
    }
    ASSERT_EQ(rd_kafka_flush(p, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(p);
  }
  std::map<std::string, std::map<std::string, int>> alerts(const std::vector<Replica*>& rs) {
    std::map<std::string, std::map<std::string, int>> out;
    for (const Replica* r : rs) r->correlation_alerts(out);
    return out;
  }
  static uint64_t sum(const std::vector<Replica*>& rs, const std::string& outcome) {
    uint64_t n = 0;
    for (const Replica* r : rs) n += r->hits(outcome);
    return n;
  }

  std::unique_ptr<EmbeddedKafka> kafka_;
  std::shared_ptr<const match::RuleSet> rules_;
};

TEST_F(RepartitionTest, GroupsSpreadOverPartitionsAndReplicasFireExactlyOnce) {
  Replica a, b;
  a.start(kafka_->bootstrap_servers(), rules_, "a");
  b.start(kafka_->bootstrap_servers(), rules_, "b");
  ASSERT_TRUE(wait_until([&] { return a.pipeline->assigned() && b.pipeline->assigned(); }));
  produce_logons(0, kHosts);
  const std::vector<Replica*> both = {&a, &b};
  // Every logon feeds the two user-grouped correlations once each.
  ASSERT_TRUE(wait_until([&] { return sum(both, "observed") == 2u * kUsers * kHosts; }))
      << sum(both, "observed");
  ASSERT_TRUE(wait_until([&] {
    auto al = alerts(both);
    return al["c-count"].size() == kUsers && al["c-hosts"].size() == kUsers;
  }));
  std::this_thread::sleep_for(500ms);  // nothing more comes
  auto al = alerts(both);
  for (const char* rule : {"c-count", "c-hosts"}) {
    ASSERT_EQ(al[rule].size(), static_cast<size_t>(kUsers)) << rule;
    for (const auto& [group, n] : al[rule]) EXPECT_EQ(n, 1) << rule << " " << group;
  }
  // Grouped by the key, on the local path: each host's five logons, once.
  ASSERT_EQ(al["c-local"].size(), static_cast<size_t>(kHosts));
  for (const auto& [group, n] : al["c-local"]) EXPECT_EQ(n, 1) << group;
  EXPECT_EQ(sum(both, "duplicate") + sum(both, "late") + sum(both, "invalid") +
                sum(both, "unknown_correlation"),
            0u);
  // Only the user-grouped correlations went through the topic.
  EXPECT_EQ(a.metrics.counter_sum("vigil_correlation_hits_queued_total") +
                b.metrics.counter_sum("vigil_correlation_hits_queued_total"),
            2u * kUsers * kHosts);
  a.stop();
  b.stop();
}

TEST_F(RepartitionTest, AReplicaTakingAPartitionOverRebuildsItsWindows) {
  Replica a, b;
  a.start(kafka_->bootstrap_servers(), rules_, "a");
  ASSERT_TRUE(wait_until([&] { return a.pipeline->assigned(); }));
  produce_logons(0, 2);  // half of each user's logons, on replica a
  ASSERT_TRUE(wait_until([&] { return a.hits("observed") == 2u * kUsers * 2; }));
  a.stop();  // its partitions go to b, whose store has never seen them

  b.start(kafka_->bootstrap_servers(), rules_, "b");
  ASSERT_TRUE(wait_until([&] { return b.pipeline->assigned(); }));
  produce_logons(2, kHosts);
  ASSERT_TRUE(wait_until([&] {
    auto al = alerts({&b});
    return al["c-count"].size() == kUsers && al["c-hosts"].size() == kUsers;
  })) << "replayed="
      << b.hits("replayed") << " observed=" << b.hits("observed");
  std::this_thread::sleep_for(500ms);
  auto al = alerts({&a, &b});
  for (const char* rule : {"c-count", "c-hosts"}) {
    ASSERT_EQ(al[rule].size(), static_cast<size_t>(kUsers)) << rule;
    for (const auto& [group, n] : al[rule]) EXPECT_EQ(n, 1) << rule << " " << group;
  }
  // b read a's matches again to rebuild the windows, and counted each once.
  EXPECT_EQ(b.hits("replayed"), 2u * kUsers * 2);
  EXPECT_EQ(b.hits("observed"), 2u * kUsers * 2);
  b.stop();
}

TEST_F(RepartitionTest, RepeatedMatchesCountOnceAndBadRecordsAreCountedNotFatal) {
  // What the topic may hold besides well-formed first copies: a match the publisher sent
  // again after a crash (same id), a record that does not parse, one for a correlation this
  // bundle does not have, one of another version.
  // A repeat is the same record again: same id, same time.
  const TimeMs t0 = SystemClock::instance().now_ms();
  auto hit = [t0](int u, int h) {
    CorrelationHitRecord r;
    r.id = store::AlertId::derive("c/events", h, u, "c-count/r-a/0").hex();
    r.correlation = "c-count";
    r.rule = "r-a";
    r.base = 0;
    r.group = "u" + std::to_string(u);
    r.time = t0 + h * 1000;
    r.ref = r.id;
    return r;
  };
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", kafka_->bootstrap_servers().c_str(), err,
                    sizeof err);
  rd_kafka_t* p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  ASSERT_NE(p, nullptr);
  auto send = [&](const std::string& key, const std::string& value) {
    ASSERT_EQ(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("events.correlation"),
                                RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  };
  for (int round = 0; round < 2; ++round) {  // every match twice
    for (int u = 0; u < kUsers; ++u)
      for (int h = 0; h < kHosts; ++h)
        send(correlation_hit_key("c-count", "u" + std::to_string(u)),
             encode_correlation_hit(hit(u, h)));
  }
  send("x", "{not json");
  auto other = hit(0, 0);
  other.correlation = "c-gone";
  other.id[0] = other.id[0] == 'a' ? 'b' : 'a';
  send("x", encode_correlation_hit(other));
  std::string v2 = encode_correlation_hit(hit(1, 1));
  v2.replace(v2.find(R"("v":1)"), 5, R"("v":2)");
  send("x", v2);
  ASSERT_EQ(rd_kafka_flush(p, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(p);

  Replica a;
  a.start(kafka_->bootstrap_servers(), rules_, "a");
  ASSERT_TRUE(wait_until([&] {
    return a.hits("observed") + a.hits("duplicate") + a.hits("invalid") +
               a.hits("unknown_correlation") ==
           2u * kUsers * kHosts + 3;
  })) << a.hits("observed")
      << " " << a.hits("duplicate");
  EXPECT_EQ(a.hits("observed"), static_cast<uint64_t>(kUsers * kHosts));
  EXPECT_EQ(a.hits("duplicate"), static_cast<uint64_t>(kUsers * kHosts));
  EXPECT_EQ(a.hits("invalid"), 2u);
  EXPECT_EQ(a.hits("unknown_correlation"), 1u);
  ASSERT_TRUE(wait_until([&] { return alerts({&a})["c-count"].size() == kUsers; }));
  auto al = alerts({&a});
  for (const auto& [group, n] : al["c-count"]) EXPECT_EQ(n, 1) << group;
  a.stop();
}

}  // namespace
}  // namespace vigil::ingest
