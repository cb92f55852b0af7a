// The outbox publisher against a real Kafka protocol peer (librdkafka's mock cluster):
// every record reaches its topic once acknowledged and leaves the outbox; a record Kafka
// refuses for good is dropped with a counter instead of blocking the others.

#include "vigil/ingest/publisher.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <set>
#include <string>

#include "support/temp_dir.h"
#include "vigil/ingest/embedded_kafka.h"

namespace vigil::ingest {
namespace {

using namespace std::chrono_literals;

store::OutboxRecord record(store::OutboxRecord::Kind kind, int64_t offset, std::string value) {
  store::OutboxRecord r;
  r.kind = kind;
  r.time = 1795539600000 + offset;
  r.id = store::AlertId::derive("c/events", 0, offset, "rule");
  r.message_key = r.id.hex();
  r.value = std::move(value);
  r.headers = {{"vigil.reason", "test"}};
  return r;
}

// Reads every message of `topic` partition 0 until `want` arrived or 20 s passed.
std::multiset<std::string> read_topic(const std::string& brokers, const std::string& topic,
                                      size_t want) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", "publisher-test-reader", err,
                    sizeof err);  // assign() without joining
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(parts, topic.c_str(), 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(rk, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  std::multiset<std::string> keys;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (keys.size() < want && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (!m) continue;
    if (!m->err) keys.emplace(static_cast<const char*>(m->key), m->key_len);
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return keys;
}

TEST(PublisherTest, PublishesEachRecordToItsTopicAndDropsOneKafkaRefuses) {
  auto kafka = EmbeddedKafka::start(1, "vigil.alerts", 1);
  ASSERT_TRUE(kafka) << kafka.status().to_string();
  ASSERT_TRUE((*kafka)->create_topic("vigil.deadletter", 1).is_ok());
  test::TempDir tmp("publisher");
  auto st = store::Store::open({tmp / "data"});
  ASSERT_TRUE(st) << st.status().to_string();

  using Kind = store::OutboxRecord::Kind;
  const auto a1 = record(Kind::kAlert, 1, R"({"rule_id":"a"})");
  const auto huge = record(Kind::kAlert, 2, std::string(2 << 20, 'x'));  // over message.max.bytes
  const auto a3 = record(Kind::kAlert, 3, R"({"rule_id":"b"})");
  const auto d4 = record(Kind::kDeadLetter, 4, "{broken");
  ASSERT_TRUE((*st)->put_batch({}, {}, {a1, huge, a3, d4}).is_ok());

  MetricsRegistry metrics;
  PublisherOptions o;
  o.brokers = (*kafka)->bootstrap_servers();
  o.alerts_topic = "vigil.alerts";
  o.dead_letter_topic = "vigil.deadletter";
  auto p = Publisher::create(o, **st, metrics);
  ASSERT_TRUE(p) << p.status().to_string();
  (*p)->start();
  ASSERT_TRUE(
      test::wait_for([&] { return metrics.counter_sum("vigil_published_total") == 3; }, 20s))
      << metrics.counter_sum("vigil_published_total");
  (*p)->stop();

  EXPECT_EQ(metrics.counter_sum("vigil_published_total", {{"kind", "alert"}}), 2u);
  EXPECT_EQ(metrics.counter_sum("vigil_published_total", {{"kind", "dead_letter"}}), 1u);
  EXPECT_EQ(metrics.counter_sum("vigil_publish_rejected_total"), 1u);
  // The refused record left the outbox too: nothing is retried for ever.
  auto left = (*st)->read_outbox("", 10);
  ASSERT_TRUE(left);
  EXPECT_TRUE(left->empty());

  EXPECT_EQ(read_topic((*kafka)->bootstrap_servers(), "vigil.alerts", 2),
            (std::multiset<std::string>{a1.id.hex(), a3.id.hex()}));
  EXPECT_EQ(read_topic((*kafka)->bootstrap_servers(), "vigil.deadletter", 1),
            (std::multiset<std::string>{d4.id.hex()}));
}

}  // namespace
}  // namespace vigil::ingest
