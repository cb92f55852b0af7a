// Rule content across replicas (ingest/content_sync.h) in one process: two replicas, each
// with its own store, rollout and pipeline, share the content topic of a mock cluster. A
// bundle submitted to one runs on both; operator actions given to either are answered by
// the coordinator; records that are malformed or name content that is not there are refused
// and counted, and both keep their bundle. ThreadSanitizer runs it (make test-tsan): the API's
// forwarding threads meet the content thread here.

#include "vigil/ingest/content_sync.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include "support/temp_dir.h"
#include "vigil/ingest/embedded_kafka.h"
#include "vigil/ingest/pipeline.h"

namespace vigil::ingest {
namespace {

using namespace std::chrono_literals;
const std::string kBundles = VIGIL_SOURCE_DIR "/tests/data/bundles/";
constexpr char kTopic[] = "events.content";

struct Replica {
  std::string name;
  test::TempDir tmp{"content-sync"};
  MetricsRegistry metrics;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<Rollout> rollout;
  std::unique_ptr<Pipeline> pipeline;
  std::unique_ptr<ContentSync> sync;

  // The hash every shard runs ("" while they differ).
  std::string running() const {
    std::string h;
    for (int i = 0; i < pipeline->workers(); ++i) {
      auto b = pipeline->bundle(i);
      if (!b || (i > 0 && b->hash != h)) return "";
      h = b->hash;
    }
    return h;
  }
};

class ContentSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto k = EmbeddedKafka::start(1, "events", 2);
    ASSERT_TRUE(k) << k.status().to_string();
    kafka_ = std::move(*k);
    ASSERT_TRUE(kafka_->create_topic(kTopic, 1));
    auto m = match::FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/vigil-sensor.yml");
    ASSERT_TRUE(m);
    mapping_ = std::make_unique<match::FieldMapping>(std::move(*m));
    options_.validation.default_mapping = mapping_.get();
    options_.policy = RolloutPolicy::kImmediate;
    options_.stage_ms = 300;
    options_.tick_ms = 20;
    options_.clustered = true;
    auto seed = match::Bundle::load(kBundles + "good");
    ASSERT_TRUE(seed);
    seed_ = std::make_unique<match::Bundle>(std::move(*seed));
  }
  void TearDown() override {
    for (auto& r : replicas_) stop(*r);
    replicas_.clear();
    kafka_.reset();
  }
  void stop(Replica& r) {
    if (r.sync) r.sync->stop();
    if (r.rollout) r.rollout->stop();
    if (r.pipeline) {
      r.pipeline->stop();
      r.pipeline->join();
    }
    r.sync.reset();
    r.pipeline.reset();
    r.rollout.reset();
  }
  Replica& start(const std::string& name) {
    auto r = std::make_unique<Replica>();
    r->name = name;
    auto s = store::Store::open({r->tmp.path() / "data"});
    EXPECT_TRUE(s) << s.status().to_string();
    r->store = std::move(*s);
    run(*r);
    replicas_.push_back(std::move(r));
    return *replicas_.back();
  }
  // Opens the rollout on the replica's store (a process start: one that did not stop
  // cleanly before is a crash), reads the content, starts the pipeline and the sync.
  void run(Replica& r) {
    auto ro = Rollout::open(*r.store, r.metrics, SystemClock::instance(), options_, *seed_);
    ASSERT_TRUE(ro) << ro.status().to_string();
    r.rollout = std::move(*ro);
    ContentSyncOptions co;
    co.brokers = kafka_->bootstrap_servers();
    co.topic = kTopic;
    co.group = "content-test.content";
    co.self = r.name;
    co.kafka_properties = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "300"}};
    co.rollout = options_;
    co.report_interval_ms = 200;
    co.tick_ms = 20;
    auto cs = ContentSync::create(co, *r.rollout, r.metrics, SystemClock::instance());
    ASSERT_TRUE(cs) << cs.status().to_string();
    r.sync = std::move(*cs);
    ASSERT_TRUE(r.sync->catch_up());
    PipelineOptions po;
    po.brokers = kafka_->bootstrap_servers();
    po.topic = "events";
    po.group = "content-test";
    po.workers = 1;
    po.kafka_properties = co.kafka_properties;
    auto p =
        Pipeline::create(po, r.rollout->active(), *r.store, r.metrics, SystemClock::instance());
    ASSERT_TRUE(p) << p.status().to_string();
    r.pipeline = std::move(*p);
    ASSERT_TRUE(r.pipeline->start());
    r.rollout->start(*r.pipeline);
    r.sync->start(*r.pipeline);
  }
  void produce(const std::string& key, const std::string& value, bool tombstone = false) {
    char err[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", kafka_->bootstrap_servers().c_str(), err,
                      sizeof err);
    rd_kafka_t* p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    ASSERT_NE(p, nullptr) << err;
    ASSERT_EQ(
        rd_kafka_producev(p, RD_KAFKA_V_TOPIC(kTopic), RD_KAFKA_V_PARTITION(0),
                          RD_KAFKA_V_KEY(key.data(), key.size()),
                          RD_KAFKA_V_VALUE(tombstone ? nullptr : const_cast<char*>(value.data()),
                                           tombstone ? 0 : value.size()),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
        RD_KAFKA_RESP_ERR_NO_ERROR);
    EXPECT_EQ(rd_kafka_flush(p, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(p);
  }
  // Whether both replicas run `hash` on every shard, with no rollout in progress.
  bool both_run(const std::string& hash, std::chrono::milliseconds timeout = 60s) {
    return test::wait_for(
        [&] {
          for (auto& r : replicas_)
            if (r->running() != hash || r->sync->applied_seq() == 0 ||
                r->rollout->status().state != "idle")
              return false;
          return true;
        },
        timeout);
  }

  std::unique_ptr<EmbeddedKafka> kafka_;
  std::unique_ptr<match::FieldMapping> mapping_;
  std::unique_ptr<match::Bundle> seed_;
  RolloutOptions options_;
  std::vector<std::unique_ptr<Replica>> replicas_;
};

TEST_F(ContentSyncTest, ABundleSubmittedToOneReplicaRunsOnBothAndActionsWorkFromEither) {
  Replica& a = start("a");
  Replica& b = start("b");
  ASSERT_TRUE(both_run(seed_->hash())) << a.sync->state_json();
  ASSERT_TRUE(test::wait_for([&] { return a.sync->coordinator() != b.sync->coordinator(); }, 30s));
  Replica& follower = a.sync->coordinator() ? b : a;

  // Submitted to the follower: validated there, published, validated by the other, rolled
  // out (immediate policy) on both.
  auto flood = match::Bundle::load(kBundles + "flood");
  ASSERT_TRUE(flood);
  auto sub = follower.rollout->submit(*flood, "alice");
  ASSERT_TRUE(sub) << sub.status().to_string();
  EXPECT_TRUE(sub->valid);
  EXPECT_FALSE(sub->rollout_started);  // the coordinator starts it
  ASSERT_TRUE(both_run(flood->hash())) << a.sync->state_json() << "\n" << b.sync->state_json();

  // Actions from either replica, answered by the coordinator; the same rules as on one.
  auto promote = follower.sync->forward("promote", 0, "", "bob", "");
  ASSERT_FALSE(promote);
  EXPECT_NE(promote.message().find("no rollout in progress"), std::string::npos)
      << promote.to_string();
  EXPECT_EQ(follower.sync->forward("start", 999, "", "bob", "").code(), Code::kNotFound);
  ASSERT_TRUE(follower.sync->forward("rollback", 0, "", "bob", "too loud"));
  ASSERT_TRUE(both_run(seed_->hash()));
  for (auto& r : replicas_) {
    const uint64_t v = r->rollout->version_of(flood->hash());
    ASSERT_NE(v, 0u) << r->name;
    EXPECT_EQ(r->rollout->bundle_status(v), "rolled_back") << r->name;
  }
  ASSERT_TRUE(follower.sync->forward("policy", 0, "pinned", "bob", ""));
  EXPECT_TRUE(test::wait_for(
      [&] {
        return a.rollout->status().policy == RolloutPolicy::kPinned &&
               b.rollout->status().policy == RolloutPolicy::kPinned;
      },
      30s));
}

TEST_F(ContentSyncTest, MalformedRecordsAndMissingContentAreRefusedAndCounted) {
  Replica& a = start("a");
  Replica& b = start("b");
  ASSERT_TRUE(both_run(seed_->hash()));
  const std::string fake(32, 'f');
  produce("decision", "{\"v\":1,\"seq\":");
  produce("bundle/" + fake,
          R"({"v":1,"hash":")" + fake + R"(","bytes":10,"compressed":10,"chunks":2,"time":1})");
  produce("report/a", "[]");
  produce("no/such/kind", "x");
  for (Replica* r : {&a, &b}) {
    EXPECT_TRUE(test::wait_for(
        [&] {
          const Labels chunks{{"reason", "chunks"}};
          return r->metrics.counter_value("vigil_content_records_invalid_total",
                                          {{"kind", "decision"}}) >= 1 &&
                 r->metrics.counter_value("vigil_content_records_invalid_total",
                                          {{"kind", "report"}}) >= 1 &&
                 r->metrics.counter_value("vigil_content_records_invalid_total",
                                          {{"kind", "unknown"}}) >= 1 &&
                 r->metrics.counter_value("vigil_content_bundles_refused_total", chunks) >= 1;
        },
        30s))
        << r->name;
  }
  // The coordinator wrote its decision again over the one that did not parse; both keep
  // their bundle and follow it.
  EXPECT_TRUE(both_run(seed_->hash()));
  // Refused by both, so by the deployment.
  std::string state;
  EXPECT_TRUE(test::wait_for(
      [&] {
        state = b.sync->state_json();
        return state.find("\"refused\":[\"" + fake + "\"]") != std::string::npos;
      },
      30s))
      << state;
}

TEST_F(ContentSyncTest, WhenTheCoordinatorStopsTheOtherReplicaTakesTheRolloutOver) {
  options_.policy = RolloutPolicy::kPinned;
  Replica& a = start("a");
  Replica& b = start("b");
  ASSERT_TRUE(both_run(seed_->hash()));
  ASSERT_TRUE(test::wait_for([&] { return a.sync->coordinator() != b.sync->coordinator(); }, 30s));
  Replica& coordinator = a.sync->coordinator() ? a : b;
  Replica& other = a.sync->coordinator() ? b : a;
  auto flood = match::Bundle::load(kBundles + "flood");
  ASSERT_TRUE(flood);
  ASSERT_TRUE(other.rollout->submit(*flood, "alice"));
  const uint64_t v = other.rollout->version_of(flood->hash());
  Status started = Status::ok();
  ASSERT_TRUE(test::wait_for(
      [&] {
        started = other.sync->forward("start", v, "", "bob", "");
        return started.is_ok();
      },
      30s))
      << started.to_string();
  // The coordinator stops (its membership leaves the group): the other replica is elected,
  // goes on from the last decision, and answers the next action.
  stop(coordinator);
  ASSERT_TRUE(test::wait_for([&] { return other.sync->coordinator(); }, 30s));
  Status promoted = Status::ok();
  ASSERT_TRUE(test::wait_for(
      [&] {
        promoted = other.sync->forward("promote", 0, "", "bob", "");
        return promoted.is_ok();
      },
      30s))
      << promoted.to_string();
  EXPECT_TRUE(test::wait_for(
      [&] { return other.running() == flood->hash() && other.rollout->status().state == "idle"; },
      30s))
      << other.sync->state_json();
  const std::string state = other.sync->state_json();
  EXPECT_NE(state.find("\"coordinator\":\"" + other.name + "\""), std::string::npos) << state;
  EXPECT_NE(state.find("\"last_action\":\"completed\""), std::string::npos) << state;
}

TEST_F(ContentSyncTest, AReplicaThatEndsAbnormallyDuringTheRolloutRollsItBackEverywhere) {
  options_.policy = RolloutPolicy::kPinned;
  Replica& a = start("a");
  Replica& b = start("b");
  ASSERT_TRUE(both_run(seed_->hash()));
  auto flood = match::Bundle::load(kBundles + "flood");
  ASSERT_TRUE(flood);
  ASSERT_TRUE(b.rollout->submit(*flood, "alice"));
  ASSERT_TRUE(test::wait_for([&] { return a.rollout->version_of(flood->hash()) != 0; }, 30s));
  const uint64_t v = b.rollout->version_of(flood->hash());
  // Pinned: started by an operator; no events yet, so the canary is the first shard, a/0.
  auto started = Status::ok();
  ASSERT_TRUE(test::wait_for(
      [&] {
        started = b.sync->forward("start", v, "", "bob", "");
        return started.is_ok();  // until a has validated it too
      },
      30s))
      << started.to_string();
  ASSERT_TRUE(test::wait_for([&] { return a.running() == flood->hash(); }, 30s))
      << a.sync->state_json();
  // a ends without a clean stop (mark_clean_stop is what vigild calls) and starts again: its
  // boot rules roll the bundle back there, its report says so, the coordinator rolls it back
  // for the deployment.
  stop(a);
  run(a);
  ASSERT_TRUE(both_run(seed_->hash())) << a.sync->state_json() << "\n" << b.sync->state_json();
  std::string state;
  EXPECT_TRUE(test::wait_for(
      [&] {
        state = b.sync->state_json();
        return state.find("\"rolled_back\":[\"" + flood->hash() + "\"]") != std::string::npos;
      },
      30s))
      << state;
  EXPECT_NE(state.find("crash: replica a"), std::string::npos) << state;
  // The deployment's decision is in the status as soon as b read it; b's own store records the
  // rollback when b follows it, a moment later (a CI run under load saw "valid" here).
  EXPECT_TRUE(test::wait_for([&] { return b.rollout->bundle_status(v) == "rolled_back"; }, 30s))
      << b.rollout->bundle_status(v);
}

}  // namespace
}  // namespace vigil::ingest
