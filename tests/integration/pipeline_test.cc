// The consumer pipeline against a real Kafka protocol peer (librdkafka's mock cluster):
// exact alerts, offsets positioned from RocksDB across a restart, nothing lost or doubled.

#include "vigil/ingest/pipeline.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <filesystem>
#include <random>
#include <thread>

#include "support/temp_dir.h"
#include "vigil/core/fault.h"
#include "vigil/ingest/embedded_kafka.h"
#include "vigil/ingest/simulator.h"

namespace vigil::ingest {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto k = EmbeddedKafka::start(1, "events", 4);
    ASSERT_TRUE(k) << k.status().to_string();
    kafka_ = std::move(*k);
    auto mapping =
        match::FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/vigil-sensor.yml");
    ASSERT_TRUE(mapping);
    match::CompileReport report;
    auto parsed = match::load_rules({VIGIL_SOURCE_DIR "/rules/sigma"}, report);
    auto rs = match::RuleSet::compile(parsed, *mapping, report);
    ASSERT_TRUE(rs);
    rules_ = *rs;
    open_store();
  }
  void TearDown() override {
    store_.reset();
    kafka_.reset();
  }
  void open_store() {
    store_.reset();
    auto s = store::Store::open({tmp_ / "data"});
    ASSERT_TRUE(s) << s.status().to_string();
    store_ = std::move(*s);
  }
  std::unique_ptr<Pipeline> make_pipeline(MetricsRegistry& metrics, PipelineOptions o = {},
                                          const std::string& topic = "events") {
    o.brokers = kafka_->bootstrap_servers();
    o.topic = topic;
    o.group = "test-group";
    o.batch_max_ms = 20;
    // The mock coordinator delays a join to a group that had members by the session
    // timeout (45 s by default); keep it short so the restart below rejoins quickly.
    o.kafka_properties.insert(o.kafka_properties.begin(),
                              {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}});
    auto p = Pipeline::create(o, rules_, *store_, metrics, SystemClock::instance());
    EXPECT_TRUE(p) << p.status().to_string();
    return p ? std::move(*p) : nullptr;
  }
  // Produces `n` simulator events; returns how many are malicious.
  size_t produce(SensorSimulator& sim, size_t n, const std::vector<std::string>& extra = {},
                 const std::string& topic = "events") {
    char err[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", kafka_->bootstrap_servers().c_str(), err,
                      sizeof err);
    rd_kafka_t* p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    SimulatedEvent ev;
    size_t malicious = 0;
    auto send = [&](const std::string& payload, const std::string& key) {
      EXPECT_EQ(
          rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic.c_str()),
                            RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()),
                            RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
          RD_KAFKA_RESP_ERR_NO_ERROR);
    };
    for (size_t i = 0; i < n; ++i) {
      sim.next(ev);
      malicious += !ev.expected_rule_id.empty();
      send(ev.json, ev.host);
    }
    for (const auto& e : extra) send(e, "x");
    EXPECT_EQ(rd_kafka_flush(p, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(p);
    return malicious;
  }
  static bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    return test::wait_for(done, timeout);
  }

  friend void run_with_tiny_inboxes(PipelineTest& t, int hold_before_pause_ms,
                                    MetricsRegistry& metrics);
  test::TempDir tmp_{"pipeline"};
  std::unique_ptr<EmbeddedKafka> kafka_;
  std::shared_ptr<const match::RuleSet> rules_;
  std::unique_ptr<store::Store> store_;
};

TEST_F(PipelineTest, ConsumesEverythingOnceAcrossARestart) {
  ManualClock clock(1795539600000);
  SensorSimulator sim({50, 0.05, 3}, clock);
  const size_t first = 3000;
  const size_t malicious1 = produce(sim, first, {"{broken", "\"just a string\"", ""});
  ASSERT_GT(malicious1, 0u);

  {
    MetricsRegistry metrics;
    auto p = make_pipeline(metrics);
    ASSERT_TRUE(p->start().is_ok());
    ASSERT_TRUE(wait_for(
        [&] { return metrics.counter_sum("vigil_events_consumed_total") == first + 3; }, 30s))
        << metrics.counter_sum("vigil_events_consumed_total");
    p->stop();
    p->join();
    EXPECT_EQ(metrics.counter_sum("vigil_events_invalid_total", {{"reason", "malformed_json"}}),
              2u);  // "{broken" and ""
    EXPECT_EQ(metrics.counter_sum("vigil_events_invalid_total", {{"reason", "not_an_object"}}), 1u);
    EXPECT_EQ(metrics.counter_sum("vigil_alerts_total"), malicious1);
  }
  EXPECT_EQ(*store_->count_alerts(), malicious1);

  // Reopen everything: the pipeline resumes from the offsets in RocksDB and reads only the
  // new events; the alert set grows by exactly their detections.
  open_store();
  const size_t second = 1000;
  const size_t malicious2 = produce(sim, second);
  MetricsRegistry metrics;
  auto p = make_pipeline(metrics);
  ASSERT_TRUE(p->start().is_ok());
  ASSERT_TRUE(
      wait_for([&] { return metrics.counter_sum("vigil_events_consumed_total") >= second; }, 30s));
  std::this_thread::sleep_for(300ms);  // anything re-read would show up by now
  p->stop();
  p->join();
  EXPECT_EQ(metrics.counter_sum("vigil_events_consumed_total"), second);
  EXPECT_EQ(*store_->count_alerts(), malicious1 + malicious2);
}

// Regression: a second embedded cluster (a new `make run`) reused the data directory's
// offsets of the first, reset to the beginning, and wrote alerts whose ids collided with the
// first run's. Offsets and alert ids are now qualified by the Kafka cluster id.
TEST_F(PipelineTest, ANewClusterStartsFromItsOwnBeginningAndKeepsOldAlerts) {
  ManualClock clock(1795539600000);
  SensorSimulator sim({50, 0.05, 5}, clock);
  size_t total = 0;
  std::unique_ptr<EmbeddedKafka> first;
  for (int run = 0; run < 2; ++run) {
    if (run == 1) {
      // librdkafka names a mock cluster after its address, so the first one stays alive
      // for the second to get another id, as two real clusters have.
      first = std::move(kafka_);
      auto k = EmbeddedKafka::start(1, "events", 4);
      ASSERT_TRUE(k);
      kafka_ = std::move(*k);
    }
    const size_t events = 800;
    total += produce(sim, events);
    MetricsRegistry metrics;
    auto p = make_pipeline(metrics);
    ASSERT_TRUE(p->start().is_ok());
    ASSERT_TRUE(wait_for(
        [&] { return metrics.counter_sum("vigil_events_consumed_total") >= events; }, 30s));
    p->stop();
    p->join();
    EXPECT_EQ(metrics.counter_sum("vigil_events_consumed_total"), events) << "run " << run;
    EXPECT_EQ(*store_->count_alerts(), total) << "run " << run;
  }
}

// Regression: a vigild stopped while its group rebalanced had its last commit refused
// (REBALANCE_IN_PROGRESS), and the instance that took its partitions over (with a store of
// its own) started from older committed offsets and created those alerts a second time
// (FaultsTest.PartitionsMoveToASecondInstanceAndBack, now and then under ASan). A commit
// refused on the way out is now retried while the group protocol is served.
TEST_F(PipelineTest, CommitsRefusedWhileLeavingAreRetriedUntilTheGroupHasEverything) {
  ManualClock clock(1795539600000);
  SensorSimulator sim({50, 0.05, 7}, clock);
  const size_t events = 2000;
  produce(sim, events);
  MetricsRegistry metrics;
  PipelineOptions o;
  o.kafka_properties = {{"auto.commit.interval.ms", "600000"}};  // only the commits on the way out
  auto p = make_pipeline(metrics, o);
  ASSERT_TRUE(p->start().is_ok());
  ASSERT_TRUE(
      wait_for([&] { return metrics.counter_sum("vigil_events_consumed_total") == events; }, 30s));
  // The coordinator refuses the next commits as if the group were rebalancing (every commit
  // on the way out: the one after draining, the revocation's, the close's).
  kafka_->fail_next_requests(8 /* OffsetCommit */, 3, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS);
  p->stop();
  p->join();
  EXPECT_EQ(metrics.counter_sum("vigil_kafka_hand_over_commit_failures_total"), 0u);

  // What the group has committed is everything this member persisted.
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", kafka_->bootstrap_servers().c_str(), err,
                    sizeof err);
  rd_kafka_conf_set(conf, "group.id", "test-group", err, sizeof err);
  rd_kafka_t* reader = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  ASSERT_NE(reader, nullptr) << err;
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(4);
  for (int i = 0; i < 4; ++i) rd_kafka_topic_partition_list_add(parts, "events", i);
  ASSERT_EQ(rd_kafka_committed(reader, parts, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  int64_t committed = 0;
  for (int i = 0; i < parts->cnt; ++i) {
    int64_t low = 0, high = 0;
    ASSERT_EQ(rd_kafka_query_watermark_offsets(reader, "events", i, &low, &high, 10000),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    EXPECT_EQ(parts->elems[i].offset, high) << "partition " << i;
    committed += std::max<int64_t>(parts->elems[i].offset, 0);
  }
  EXPECT_EQ(committed, static_cast<int64_t>(events));
  rd_kafka_topic_partition_list_destroy(parts);
  rd_kafka_destroy(reader);
}

// Runs 6000 events through two workers whose inboxes hold 100 messages, far below what
// one fetch brings, and checks that nothing is lost or doubled.
void run_with_tiny_inboxes(PipelineTest& t, int hold_before_pause_ms, MetricsRegistry& metrics);

TEST_F(PipelineTest, FullInboxesHoldTheConsumerAndLoseNothing) {
  MetricsRegistry metrics;
  run_with_tiny_inboxes(*this, 60000, metrics);
  EXPECT_GT(metrics.counter_sum("vigil_backpressure_holds_total"), 0u);
  EXPECT_EQ(metrics.counter_sum("vigil_backpressure_pauses_total"), 0u);
}

TEST_F(PipelineTest, InboxesFullForLongPausePartitionsAndLoseNothing) {
  MetricsRegistry metrics;
  run_with_tiny_inboxes(*this, 0, metrics);
  EXPECT_GT(metrics.counter_sum("vigil_backpressure_pauses_total"), 0u);
}

// librdkafka 2.0 can deliver a partition again from an older offset (after pause/resume or an
// incremental assignment: confluentinc/librdkafka#4637, #4686); here a seek back to offset 0
// in the middle of the run (test fault rewind_partition) does the same. What the pipeline had
// taken already is dropped and counted, never processed twice.
TEST_F(PipelineTest, MessagesKafkaDeliversAgainAreDroppedNotProcessedTwice) {
  set_faults("rewind_partition=events");
  MetricsRegistry metrics;
  ManualClock clock(1795539600000);
  SensorSimulator sim({50, 0.05, 8}, clock);
  const size_t events = 3000;
  const size_t malicious = produce(sim, events);
  PipelineOptions o;
  o.workers = 2;
  auto p = make_pipeline(metrics, o);
  ASSERT_TRUE(p->start().is_ok());
  const auto consumed = [&] { return metrics.counter_sum("vigil_events_consumed_total"); };
  const auto redelivered = [&] {
    return metrics.counter_sum("vigil_kafka_redelivered_messages_total");
  };
  EXPECT_TRUE(wait_for([&] { return consumed() >= events && redelivered() >= 100; }, 60s))
      << "consumed " << consumed() << ", delivered again " << redelivered();
  p->stop();
  p->join();
  set_faults("");
  EXPECT_EQ(consumed(), events);
  EXPECT_EQ(*store_->count_alerts(), malicious);
}

// A partition whose start is past its end (the group's committed offset from a topic since
// deleted and created again): librdkafka resets it to the beginning and reports the reset;
// the pipeline reads it from there instead of taking the messages for ones delivered again.
TEST_F(PipelineTest, APartitionKafkaResetsIsReadFromWhereItWasReset) {
  ManualClock clock(1795539600000);
  SensorSimulator sim({50, 0.05, 9}, clock);
  const size_t events = 800;
  const size_t malicious = produce(sim, events);
  {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    ASSERT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", kafka_->bootstrap_servers().c_str(), err,
                                sizeof err),
              RD_KAFKA_CONF_OK);
    ASSERT_EQ(rd_kafka_conf_set(conf, "group.id", "test-group", err, sizeof err), RD_KAFKA_CONF_OK);
    rd_kafka_t* committer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    ASSERT_NE(committer, nullptr) << err;
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, "events", 0)->offset = 1000000;
    EXPECT_EQ(rd_kafka_commit(committer, list, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(committer);
  }
  MetricsRegistry metrics;
  auto p = make_pipeline(metrics);
  ASSERT_TRUE(p->start().is_ok());
  EXPECT_TRUE(
      wait_for([&] { return metrics.counter_sum("vigil_events_consumed_total") >= events; }, 30s))
      << metrics.counter_sum("vigil_events_consumed_total") << " consumed, "
      << metrics.counter_sum("vigil_kafka_redelivered_messages_total")
      << " dropped as delivered again";
  p->stop();
  p->join();
  EXPECT_EQ(metrics.counter_sum("vigil_events_consumed_total"), events);
  EXPECT_EQ(*store_->count_alerts(), malicious);
}

// A group with no committed offset and a store with none start where the consumer's
// auto.offset.reset says. The pipeline sets that start itself from the group's answer it
// already holds (librdkafka 2.0 would ask the coordinator again and then wait out a retry
// backoff); "latest" must still skip what the topic held before the assignment.
TEST_F(PipelineTest, AFreshGroupStartsWhereAutoOffsetResetSays) {
  ManualClock clock(1795539600000);
  SensorSimulator sim({50, 0.05, 10}, clock);
  produce(sim, 500);
  MetricsRegistry metrics;
  PipelineOptions o;
  o.kafka_properties = {{"auto.offset.reset", "latest"}};
  auto p = make_pipeline(metrics, o);
  ASSERT_TRUE(p->start().is_ok());
  ASSERT_TRUE(wait_for([&] { return p->assigned(); }, 30s));
  // The end offsets are looked up right after the assignment (a few ms on loopback).
  std::this_thread::sleep_for(2s);
  // What came before the start is not owed: no lag is reported for it (the lag is read every
  // second).
  for (int partition = 0; partition < 4; ++partition) {
    const Labels labels = {{"topic", "events"}, {"partition", std::to_string(partition)}};
    EXPECT_EQ(metrics.gauge("vigil_consumer_lag_messages", "", labels).value(), 0)
        << "partition " << partition << ": lag counted from the partition's beginning";
  }
  const size_t later = 300;
  const size_t malicious = produce(sim, later);
  EXPECT_TRUE(
      wait_for([&] { return metrics.counter_sum("vigil_events_consumed_total") >= later; }, 30s))
      << metrics.counter_sum("vigil_events_consumed_total");
  std::this_thread::sleep_for(300ms);  // anything read from before the assignment shows by now
  p->stop();
  p->join();
  EXPECT_EQ(metrics.counter_sum("vigil_events_consumed_total"), later);
  EXPECT_EQ(*store_->count_alerts(), malicious);
}

// vigild started before its topic exists (a new deployment, the topic made later): the
// pipeline, which holds a handle on the topic from its start, consumes it from the beginning
// once it is there.
TEST_F(PipelineTest, ATopicCreatedAfterTheStartIsConsumedFromItsBeginning) {
  ManualClock clock(1795539600000);
  SensorSimulator sim({50, 0.05, 11}, clock);
  MetricsRegistry metrics;
  auto p = make_pipeline(metrics, {}, "later");
  ASSERT_TRUE(p->start().is_ok());
  std::this_thread::sleep_for(2s);
  // The mock cluster may have made the topic already, at the consumer's first metadata
  // request for it (as a broker with auto.create.topics.enable does): either way it exists now.
  (void)kafka_->create_topic("later", 3);
  const size_t events = 400;
  const size_t malicious = produce(sim, events, {}, "later");
  EXPECT_TRUE(
      wait_for([&] { return metrics.counter_sum("vigil_events_consumed_total") >= events; }, 60s))
      << metrics.counter_sum("vigil_events_consumed_total") << " consumed";
  p->stop();
  p->join();
  EXPECT_EQ(metrics.counter_sum("vigil_events_consumed_total"), events);
  EXPECT_EQ(*store_->count_alerts(), malicious);
}

// A record larger than the broker keeps (the mock cluster retains about 5 MB per partition)
// is gone before it is fetched: librdkafka resets the partition's position past it (and
// past whatever else retention dropped). Every offset is still accounted for: consumed
// (an oversized one as a too_large dead letter) or counted as skipped, with a log line.
TEST_F(PipelineTest, EveryOffsetIsConsumedOrCountedAsSkipped) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", kafka_->bootstrap_servers().c_str(), err,
                    sizeof err);
  rd_kafka_conf_set(conf, "message.max.bytes", "20000000", err, sizeof err);
  rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  ASSERT_NE(producer, nullptr) << err;
  auto send = [&](const std::string& payload) {
    ASSERT_EQ(rd_kafka_producev(producer, RD_KAFKA_V_TOPIC("events"), RD_KAFKA_V_PARTITION(0),
                                RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    ASSERT_EQ(rd_kafka_flush(producer, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  };
  const std::string small = R"({"EventID":1,"Image":"C:\\x.exe"})";
  MetricsRegistry metrics;
  PipelineOptions o;
  o.dead_letters = true;
  auto p = make_pipeline(metrics, o);
  ASSERT_TRUE(p->start().is_ok());
  send(small);
  ASSERT_TRUE(
      wait_for([&] { return metrics.counter_sum("vigil_events_consumed_total") == 1; }, 30s));
  send(R"({"EventID":1,"Image":")" + std::string(10 << 20, 'a') + R"("})");
  send(small);
  send(small);
  ASSERT_TRUE(wait_for(
      [&] {
        return metrics.counter_sum("vigil_events_consumed_total") +
                   metrics.counter_sum("vigil_kafka_skipped_offsets_total") ==
               4;
      },
      30s))
      << "consumed " << metrics.counter_sum("vigil_events_consumed_total") << ", skipped "
      << metrics.counter_sum("vigil_kafka_skipped_offsets_total");
  // The large record is a too_large dead letter (a broker that keeps it), or counted among
  // the skipped offsets (the mock, whose retention deletes it, and with it the record after
  // it, before the consumer gets there).
  const uint64_t oversized =
      metrics.counter_sum("vigil_dead_letters_total", {{"reason", "too_large"}});
  EXPECT_GE(oversized + metrics.counter_sum("vigil_kafka_skipped_offsets_total"), 1u);
  EXPECT_EQ(metrics.counter_sum("vigil_events_consumed_total"),
            4u - metrics.counter_sum("vigil_kafka_skipped_offsets_total"));
  p->stop();
  p->join();
  rd_kafka_destroy(producer);
}

TEST_F(PipelineTest, RejectsBadConfiguration) {
  MetricsRegistry metrics;
  PipelineOptions o;
  EXPECT_FALSE(Pipeline::create(o, rules_, *store_, metrics, SystemClock::instance()));
  o.brokers = kafka_->bootstrap_servers();
  o.kafka_properties = {{"no.such.property", "1"}};
  auto p = Pipeline::create(o, rules_, *store_, metrics, SystemClock::instance());
  ASSERT_FALSE(p);
  EXPECT_NE(p.status().message().find("no.such.property"), std::string::npos);
}

void run_with_tiny_inboxes(PipelineTest& t, int hold_before_pause_ms, MetricsRegistry& metrics) {
  ManualClock clock(1795539600000);
  SensorSimulator sim({50, 0.05, 8}, clock);
  const size_t events = 6000;
  const size_t malicious = t.produce(sim, events);
  PipelineOptions o;
  o.workers = 2;
  o.batch_max_messages = 50;
  o.inbox_max_messages = 100;
  o.hold_before_pause_ms = hold_before_pause_ms;
  auto p = t.make_pipeline(metrics, o);
  ASSERT_TRUE(p->start().is_ok());
  ASSERT_TRUE(PipelineTest::wait_for(
      [&] { return metrics.counter_sum("vigil_events_consumed_total") >= events; }, 60s))
      << metrics.counter_sum("vigil_events_consumed_total");
  p->stop();
  p->join();
  EXPECT_EQ(metrics.counter_sum("vigil_events_consumed_total"), events);
  EXPECT_EQ(*t.store_->count_alerts(), malicious);
  // Both workers took part, each with its own partitions.
  EXPECT_GT(metrics.counter_value("vigil_events_consumed_total", {{"shard", "0"}}), 0u);
  EXPECT_GT(metrics.counter_value("vigil_events_consumed_total", {{"shard", "1"}}), 0u);
}

}  // namespace
}  // namespace vigil::ingest
