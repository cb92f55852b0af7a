// Rule bundle rollouts on a running pipeline (librdkafka's mock cluster, RocksDB on a temp
// dir): a hot swap under load gives exactly the old bundle's alerts before each partition's
// switch offset and the new one's after; an alert flood and processing errors roll back by
// themselves; a pinned policy never switches by itself; a staged rollout promotes to the
// end; a crash during a rollout and a crash loop after an activation come back on the
// last known good.

#include "vigil/ingest/rollout.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <rapidjson/document.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "support/temp_dir.h"
#include "vigil/core/fault.h"
#include "vigil/ingest/embedded_kafka.h"
#include "vigil/ingest/pipeline.h"
#include "vigil/ingest/simulator.h"
#include "vigil/match/matcher.h"

namespace vigil::ingest {
namespace {

using namespace std::chrono_literals;
const std::string kBundles = VIGIL_SOURCE_DIR "/tests/data/bundles/";

rapidjson::Document parse(const std::string& json) {
  rapidjson::Document d;
  d.Parse(json.c_str());
  EXPECT_FALSE(d.HasParseError()) << json;
  return d;
}

class RolloutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto k = EmbeddedKafka::start(1, "events", 4);
    ASSERT_TRUE(k) << k.status().to_string();
    kafka_ = std::move(*k);
    auto m = match::FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/vigil-sensor.yml");
    ASSERT_TRUE(m);
    mapping_ = std::make_unique<match::FieldMapping>(std::move(*m));
    options_.validation.default_mapping = mapping_.get();
    options_.tick_ms = 20;
    options_.stage_ms = 60000;
    options_.min_events_for_flood = 200;
    options_.min_alerts_for_flood = 50;
    options_.max_alert_ratio = 5;
    open_store();
  }
  void TearDown() override {
    stop();
    rollout_.reset();
    store_.reset();
    kafka_.reset();
    set_faults("");
  }
  void open_store() {
    auto s = store::Store::open({tmp_ / "data"});
    ASSERT_TRUE(s) << s.status().to_string();
    store_ = std::move(*s);
  }
  std::unique_ptr<Rollout> open_rollout() {
    auto seed = match::Bundle::load(VIGIL_SOURCE_DIR "/rules/sigma");
    EXPECT_TRUE(seed);
    auto r = Rollout::open(*store_, metrics_, SystemClock::instance(), options_, *seed);
    EXPECT_TRUE(r) << r.status().to_string();
    return r ? std::move(*r) : nullptr;
  }
  // Starts the pipeline and the controller.
  void start() {
    rollout_ = open_rollout();
    ASSERT_TRUE(rollout_);
    PipelineOptions o;
    o.brokers = kafka_->bootstrap_servers();
    o.topic = "events";
    o.group = "rollout-test";
    o.workers = 2;
    o.batch_max_ms = 10;
    o.batch_max_messages = 200;
    o.kafka_properties = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
    auto p = Pipeline::create(o, rollout_->active(), *store_, metrics_, SystemClock::instance());
    ASSERT_TRUE(p) << p.status().to_string();
    pipeline_ = std::move(*p);
    ASSERT_TRUE(pipeline_->start().is_ok());
    rollout_->start(*pipeline_);
  }
  void stop() {
    if (rollout_) rollout_->stop();
    if (pipeline_) {
      pipeline_->stop();
      pipeline_->join();
      pipeline_.reset();
    }
  }
  void produce(SensorSimulator& sim, size_t n, int per_second = 0) {
    char err[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", kafka_->bootstrap_servers().c_str(), err,
                      sizeof err);
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err);
    rd_kafka_t* p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    SimulatedEvent ev;
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < n; ++i) {
      sim.next(ev);
      EXPECT_EQ(
          rd_kafka_producev(p, RD_KAFKA_V_TOPIC("events"),
                            RD_KAFKA_V_VALUE(const_cast<char*>(ev.json.data()), ev.json.size()),
                            RD_KAFKA_V_KEY(const_cast<char*>(ev.host.data()), ev.host.size()),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
          RD_KAFKA_RESP_ERR_NO_ERROR);
      rd_kafka_poll(p, 0);
      if (per_second > 0 && i % 50 == 49) {
        std::this_thread::sleep_until(
            t0 + std::chrono::microseconds(1000000LL * static_cast<int64_t>(i + 1) / per_second));
      }
    }
    EXPECT_EQ(rd_kafka_flush(p, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(p);
    produced_ += n;
  }
  bool consumed_all(std::chrono::milliseconds timeout = 60s) {
    return test::wait_for(
        [&] { return metrics_.counter_sum("vigil_events_consumed_total") >= produced_; }, timeout);
  }
  rapidjson::Document state() {
    auto s = rollout_->state_json();
    EXPECT_TRUE(s);
    return parse(*s);
  }
  uint64_t submit(const std::string& name, bool expect_valid = true) {
    auto b = match::Bundle::load(kBundles + name);
    EXPECT_TRUE(b) << b.status().to_string();
    auto r = rollout_->submit(*b, "test");
    EXPECT_TRUE(r) << r.status().to_string();
    EXPECT_EQ(r->valid, expect_valid) << r->json;
    return r->version;
  }
  std::string audit() {
    auto a = rollout_->audit_json(100);
    EXPECT_TRUE(a);
    return *a;
  }
  std::set<std::string> stored_alert_ids() {
    std::set<std::string> ids;
    store::AlertQuery q;
    q.limit = 1000;
    for (;;) {
      auto page = store_->query_alerts(q);
      EXPECT_TRUE(page);
      for (const auto& a : page->alerts) ids.insert(parse(a)["id"].GetString());
      if (page->next_cursor.empty()) break;
      q.cursor = page->next_cursor;
    }
    return ids;
  }

  test::TempDir tmp_{"rollout"};
  std::unique_ptr<EmbeddedKafka> kafka_;
  std::unique_ptr<match::FieldMapping> mapping_;
  std::unique_ptr<store::Store> store_;
  MetricsRegistry metrics_;
  RolloutOptions options_;
  std::unique_ptr<Rollout> rollout_;
  std::unique_ptr<Pipeline> pipeline_;
  size_t produced_ = 0;
};

TEST_F(RolloutTest, HotSwapUnderLoadGivesTheOldAlertsBeforeTheSwitchAndTheNewAfter) {
  options_.policy = RolloutPolicy::kImmediate;
  options_.stage_ms = 300;
  options_.max_alert_ratio = 1e9;  // this test is about exactness, not gates
  start();
  ManualClock clock(1795539600000);
  SensorSimulator sim({40, 0.2, 11}, clock);
  // Events stream at 4000/s throughout: before, during and after the switch.
  std::atomic<bool> done{false};
  std::atomic<size_t> streamed{0};
  std::thread producer([&] {
    while (!done) {
      produce(sim, 400, 4000);
      streamed += 400;
    }
  });
  ASSERT_TRUE(test::wait_for(
      [&] { return metrics_.counter_sum("vigil_events_consumed_total") > 3000; }, 60s));
  const uint64_t v1 = state()["active"].GetUint64();
  const uint64_t v2 = submit("good");
  ASSERT_TRUE(test::wait_for([&] { return state()["active"].GetUint64() == v2; }, 30s))
      << *rollout_->state_json();
  const size_t at_switch = streamed;
  ASSERT_TRUE(test::wait_for([&] { return streamed > at_switch + 4000; }, 60s));
  done = true;
  producer.join();
  ASSERT_TRUE(consumed_all());
  const auto switches = pipeline_->bundle_switches();
  stop();
  EXPECT_EQ(metrics_.counter_sum("vigil_events_consumed_total"), produced_)
      << "an event was dropped or read twice";

  // Per partition, the offsets from which each version ran: the old bundle first, then the
  // new one, once.
  std::map<int32_t, std::vector<std::pair<int64_t, uint64_t>>> runs;
  for (const auto& s : switches) runs[s.partition].push_back({s.offset, s.version});
  size_t switched = 0;
  for (auto& [partition, r] : runs) {
    std::sort(r.begin(), r.end());
    ASSERT_FALSE(r.empty());
    EXPECT_EQ(r.front().second, v1) << "partition " << partition;
    if (r.size() > 1) {
      ++switched;
      EXPECT_EQ(r.size(), 2u) << "partition " << partition << " switched back and forth";
      EXPECT_EQ(r.back().second, v2);
    }
  }
  EXPECT_EQ(switched, 4u) << "every partition had events after the switch";

  auto compile = [&](const std::string& path) {
    auto b = match::Bundle::load(path);
    EXPECT_TRUE(b);
    auto rs = match::compile_bundle(*b, *mapping_, true);
    EXPECT_TRUE(rs) << rs.status().to_string();
    return *rs;
  };
  const std::map<uint64_t, std::shared_ptr<const match::RuleSet>> rules = {
      {v1, compile(VIGIL_SOURCE_DIR "/rules/sigma")}, {v2, compile(kBundles + "good")}};
  std::set<std::string> expected;
  size_t events = 0, by_new = 0;
  EventParser parser;
  Event event;
  std::vector<uint32_t> hits;
  ASSERT_TRUE(
      store_
          ->scan_events(INT64_MIN, INT64_MAX,
                        [&](const store::StoredEvent& e) {
                          ++events;
                          const auto& r = runs[e.partition];
                          auto it = std::upper_bound(r.begin(), r.end(),
                                                     std::make_pair(e.offset, UINT64_MAX));
                          EXPECT_NE(it, r.begin()) << "offset " << e.offset << " of partition "
                                                   << e.partition << " before any recorded run";
                          if (it == r.begin()) return true;
                          const uint64_t version = std::prev(it)->second;
                          by_new += version == v2;
                          const auto& rs = *rules.at(version);
                          EXPECT_EQ(parser.parse(e.payload, rs.fields(), event), ParseError::kNone);
                          auto m = match::Matcher::create(rules.at(version));
                          hits.clear();
                          EXPECT_TRUE((*m)->match(event, hits).is_ok());
                          for (uint32_t h : hits)
                            expected.insert(store::AlertId::derive(e.stream, e.partition, e.offset,
                                                                   rs.rules()[h].id)
                                                .hex());
                          return true;
                        })
          .is_ok());
  EXPECT_EQ(events, produced_);
  EXPECT_GT(by_new, 1000u);
  EXPECT_GT(events - by_new, 1000u);
  const auto stored = stored_alert_ids();
  EXPECT_GT(stored.size(), 100u);
  EXPECT_EQ(stored, expected);
}

TEST_F(RolloutTest, AnAlertFloodOnTheCanaryRollsBackByItself) {
  options_.policy = RolloutPolicy::kStaged;
  start();
  ManualClock clock(1795539600000);
  SensorSimulator sim({40, 0.01, 5}, clock);
  produce(sim, 3000);
  ASSERT_TRUE(consumed_all());
  const uint64_t v1 = state()["active"].GetUint64();
  const uint64_t flood = submit("flood");
  auto st = state();
  EXPECT_STREQ(st["state"].GetString(), "rolling");
  EXPECT_EQ(st["target"].GetUint64(), flood);
  EXPECT_EQ(st["stage"]["shards"].GetUint64(), 1u);  // the canary
  produce(sim, 4000);
  ASSERT_TRUE(
      test::wait_for([&] { return std::string(state()["state"].GetString()) == "idle"; }, 30s))
      << *rollout_->state_json();
  st = state();
  EXPECT_EQ(st["active"].GetUint64(), v1);
  EXPECT_NE(std::string(st["last_breach"].GetString()).find("alert flood"), std::string::npos)
      << *rollout_->state_json();
  ASSERT_TRUE(test::wait_for(
      [&] { return pipeline_->bundle(0)->version == v1 && pipeline_->bundle(1)->version == v1; },
      5s));
  const std::string log = audit();
  EXPECT_NE(log.find(R"("action":"rolled_back")"), std::string::npos) << log;
  EXPECT_NE(log.find("gate: alert flood"), std::string::npos) << log;
  auto info = rollout_->bundle_json(flood);
  EXPECT_NE(info->find(R"("status":"rolled_back")"), std::string::npos);
  ASSERT_TRUE(consumed_all());
  EXPECT_EQ(metrics_.counter_sum("vigil_events_consumed_total"), produced_);
  EXPECT_EQ(metrics_.counter_value("vigil_rollout_rollbacks_total"), 1u);
  // A rolled back bundle may be started again by an operator; nothing starts it by itself.
  EXPECT_EQ(state()["active"].GetUint64(), v1);
}

TEST_F(RolloutTest, ProcessingErrorsOnTheCanaryRollBack) {
  set_faults("match_error=good");
  options_.policy = RolloutPolicy::kStaged;
  start();
  ManualClock clock(1795539600000);
  SensorSimulator sim({40, 0.01, 6}, clock);
  produce(sim, 500);
  ASSERT_TRUE(consumed_all());
  const uint64_t v1 = state()["active"].GetUint64();
  submit("good");
  produce(sim, 2000);
  ASSERT_TRUE(
      test::wait_for([&] { return std::string(state()["state"].GetString()) == "idle"; }, 30s))
      << *rollout_->state_json();
  EXPECT_EQ(state()["active"].GetUint64(), v1);
  EXPECT_NE(std::string(state()["last_breach"].GetString()).find("processing errors"),
            std::string::npos)
      << *rollout_->state_json();
  EXPECT_GT(metrics_.counter_sum("vigil_match_errors_total"), 0u);
  ASSERT_TRUE(consumed_all());
}

TEST_F(RolloutTest, SlowBatchesOnTheCanaryRollBack) {
  set_faults("slow_batch=good");
  options_.policy = RolloutPolicy::kStaged;
  options_.max_batch_p99_ms = 10;
  options_.min_batches_for_latency = 5;
  start();
  ManualClock clock(1795539600000);
  SensorSimulator sim({40, 0.01, 7}, clock);
  produce(sim, 500);
  ASSERT_TRUE(consumed_all());
  const uint64_t v1 = state()["active"].GetUint64();
  submit("good");
  std::atomic<bool> done{false};
  std::thread producer([&] {
    while (!done) produce(sim, 400, 4000);
  });
  const bool back =
      test::wait_for([&] { return std::string(state()["state"].GetString()) == "idle"; }, 30s);
  done = true;
  producer.join();
  ASSERT_TRUE(back) << *rollout_->state_json();
  EXPECT_EQ(state()["active"].GetUint64(), v1);
  EXPECT_NE(std::string(state()["last_breach"].GetString()).find("latency: p99 batch duration"),
            std::string::npos)
      << *rollout_->state_json();
  ASSERT_TRUE(consumed_all());
}

TEST_F(RolloutTest, APinnedPolicyNeverSwitchesByItself) {
  options_.policy = RolloutPolicy::kPinned;
  options_.stage_ms = 200;
  start();
  ManualClock clock(1795539600000);
  SensorSimulator sim({40, 0.01, 8}, clock);
  produce(sim, 1000);
  ASSERT_TRUE(consumed_all());
  const uint64_t v1 = state()["active"].GetUint64();
  const uint64_t good = submit("good");
  std::this_thread::sleep_for(600ms);  // three stage windows: nothing may happen by itself
  EXPECT_STREQ(state()["state"].GetString(), "idle");
  EXPECT_EQ(pipeline_->bundle(0)->version, v1);
  EXPECT_EQ(pipeline_->bundle(1)->version, v1);

  // Started by an operator, the canary stage holds until promoted.
  ASSERT_TRUE(rollout_->start_rollout(good, "operator", "change 42").is_ok());
  ASSERT_TRUE(test::wait_for([&] { return pipeline_->bundle(0)->version == good; }, 5s));
  produce(sim, 1000);
  std::this_thread::sleep_for(600ms);
  auto st = state();
  EXPECT_STREQ(st["state"].GetString(), "rolling");
  EXPECT_EQ(st["stage"]["index"].GetUint64(), 0u);
  EXPECT_EQ(pipeline_->bundle(1)->version, v1);
  ASSERT_TRUE(rollout_->promote("operator", "canary looks fine").is_ok());
  ASSERT_TRUE(test::wait_for([&] { return pipeline_->bundle(1)->version == good; }, 5s));
  EXPECT_STREQ(state()["state"].GetString(), "rolling");  // the last stage, still to be promoted
  ASSERT_TRUE(rollout_->promote("operator", "").is_ok());
  st = state();
  EXPECT_STREQ(st["state"].GetString(), "idle");
  EXPECT_EQ(st["active"].GetUint64(), good);

  // A gate breach under pinned pauses instead of switching.
  const uint64_t flood = submit("flood");
  ASSERT_TRUE(rollout_->start_rollout(flood, "operator", "").is_ok());
  produce(sim, 4000);
  ASSERT_TRUE(
      test::wait_for([&] { return std::string(state()["state"].GetString()) == "paused"; }, 30s))
      << *rollout_->state_json();
  EXPECT_EQ(pipeline_->bundle(0)->version, flood);
  EXPECT_NE(std::string(state()["last_breach"].GetString()).find("alert flood"), std::string::npos);
  ASSERT_TRUE(rollout_->rollback("operator", "flood on the canary").is_ok());
  ASSERT_TRUE(test::wait_for([&] { return pipeline_->bundle(0)->version == good; }, 5s));
  EXPECT_EQ(state()["active"].GetUint64(), good);
  const std::string log = audit();
  EXPECT_NE(log.find(R"("actor":"operator","action":"promoted")"), std::string::npos) << log;
  EXPECT_NE(log.find("change 42"), std::string::npos) << log;
  ASSERT_TRUE(consumed_all());
  EXPECT_EQ(metrics_.counter_sum("vigil_events_consumed_total"), produced_);
}

TEST_F(RolloutTest, AStagedRolloutPromotesThroughItsStages) {
  options_.policy = RolloutPolicy::kStaged;
  options_.stage_ms = 300;
  start();
  ManualClock clock(1795539600000);
  SensorSimulator sim({40, 0.01, 9}, clock);
  produce(sim, 500);
  ASSERT_TRUE(consumed_all());
  const uint64_t good = submit("good");
  ASSERT_TRUE(test::wait_for([&] { return state()["active"].GetUint64() == good; }, 20s))
      << *rollout_->state_json();
  EXPECT_EQ(pipeline_->bundle(0)->version, good);
  ASSERT_TRUE(test::wait_for([&] { return pipeline_->bundle(1)->version == good; }, 5s));
  const std::string log = audit();
  EXPECT_NE(log.find(R"("action":"promoted")"), std::string::npos) << log;
  EXPECT_NE(log.find(R"("action":"completed")"), std::string::npos) << log;
  // The same content again is not a new version, and a refused bundle never rolls out.
  auto again = rollout_->submit(*match::Bundle::load(kBundles + "good"), "test");
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->stored);
  EXPECT_EQ(again->version, good);
  const uint64_t refused = submit("field21", false);
  EXPECT_STREQ(state()["state"].GetString(), "idle");
  EXPECT_FALSE(rollout_->start_rollout(refused, "operator", "").is_ok());
}

TEST_F(RolloutTest, AStageWaitsForItsMinimumEventsBeforePromoting) {
  options_.policy = RolloutPolicy::kStaged;
  options_.stage_ms = 200;
  options_.min_stage_events = 500;
  start();
  ManualClock clock(1795539600000);
  SensorSimulator sim({40, 0.01, 13}, clock);
  produce(sim, 200);
  ASSERT_TRUE(consumed_all());
  const uint64_t good = submit("good");
  std::this_thread::sleep_for(800ms);  // four windows, no traffic: the canary proved nothing
  auto st = state();
  EXPECT_STREQ(st["state"].GetString(), "rolling");
  EXPECT_EQ(st["stage"]["index"].GetUint64(), 0u);
  // Traffic: each stage promotes once its new-bundle shards have seen enough events.
  std::atomic<bool> done{false};
  std::thread producer([&] {
    while (!done) produce(sim, 400, 4000);
  });
  const bool completed = test::wait_for([&] { return state()["active"].GetUint64() == good; }, 30s);
  done = true;
  producer.join();
  EXPECT_TRUE(completed) << *rollout_->state_json();
  ASSERT_TRUE(consumed_all());
}

TEST_F(RolloutTest, ADryRunComparesABundleWithTheActiveOneOverStoredEvents) {
  options_.policy = RolloutPolicy::kPinned;
  start();
  ManualClock clock(1795539600000);
  SensorSimulator sim({40, 0.3, 12}, clock);
  produce(sim, 2000);
  ASSERT_TRUE(consumed_all());
  const uint64_t v1 = state()["active"].GetUint64();
  const uint64_t good = submit("good");
  auto report = rollout_->dry_run(good, INT64_MIN, INT64_MAX, 1000000);
  ASSERT_TRUE(report) << report.status().to_string();
  const auto d = parse(*report);
  EXPECT_EQ(d["events"].GetUint64(), 2000u);
  EXPECT_FALSE(d["partial"].GetBool());
  EXPECT_EQ(d["active"].GetUint64(), v1);

  // The same counts, computed here by matching every stored event with each bundle.
  std::map<std::string, std::pair<uint64_t, uint64_t>> want;  // rule id -> (active, candidate)
  auto count = [&](const std::string& path, bool candidate) {
    auto rs = *match::compile_bundle(*match::Bundle::load(path), *mapping_, true);
    auto m = *match::Matcher::create(rs);
    EventParser parser;
    Event ev;
    std::vector<uint32_t> hits;
    ASSERT_TRUE(store_
                    ->scan_events(INT64_MIN, INT64_MAX,
                                  [&](const store::StoredEvent& e) {
                                    if (parser.parse(e.payload, rs->fields(), ev) !=
                                        ParseError::kNone)
                                      return true;
                                    hits.clear();
                                    EXPECT_TRUE(m->match(ev, hits).is_ok());
                                    for (uint32_t h : hits)
                                      (candidate ? want[rs->rules()[h].id].second
                                                 : want[rs->rules()[h].id].first)++;
                                    return true;
                                  })
                    .is_ok());
  };
  count(VIGIL_SOURCE_DIR "/rules/sigma", false);
  count(kBundles + "good", true);
  size_t checked = 0;
  uint64_t active_total = 0;
  for (const auto& r : d["rules"].GetArray()) {
    const std::string id = r["id"].GetString();
    EXPECT_EQ(r["active_matches"].GetUint64(), want[id].first) << id;
    EXPECT_EQ(r["candidate_matches"].GetUint64(), want[id].second) << id;
    active_total += r["active_matches"].GetUint64();
    const std::string status = r["status"].GetString();
    if (id == "6f0a2b7e-2d0d-4a4c-8d1b-5e2f3a1c9d22") {
      EXPECT_EQ(status, "new");
      EXPECT_EQ(r["gained"].GetUint64(), want[id].second);
    }
    if (id == "600b4d6f-49fb-4e4b-a78d-6352d47d7b7f") {
      EXPECT_EQ(status, "vanished");
      EXPECT_EQ(r["lost"].GetUint64(), want[id].first);
      EXPECT_GT(r["lost"].GetUint64(), 0u);
      EXPECT_GT(r["lost_samples"].Size(), 0u);
    }
    ++checked;
  }
  EXPECT_EQ(checked, 13u);  // 11 default rules and the 2 of "good"
  EXPECT_GT(active_total, 100u);
  // A window with nothing in it, a bounded scan, a refused bundle.
  auto empty = parse(*rollout_->dry_run(good, 0, 1000, 1000000));
  EXPECT_EQ(empty["events"].GetUint64(), 0u);
  auto bounded = parse(*rollout_->dry_run(good, INT64_MIN, INT64_MAX, 10));
  EXPECT_EQ(bounded["events"].GetUint64(), 10u);
  EXPECT_TRUE(bounded["partial"].GetBool());
  const uint64_t refused = submit("field21", false);
  EXPECT_FALSE(rollout_->dry_run(refused, INT64_MIN, INT64_MAX, 10));
  EXPECT_FALSE(rollout_->dry_run(999, INT64_MIN, INT64_MAX, 10));

  // A bundle of the default rules and a Sigma filter silencing one of them: the dry run runs
  // the filtered rule (it loses every match), the others match as before.
  std::vector<match::BundleFile> files;
  for (const auto& f : std::filesystem::directory_iterator(VIGIL_SOURCE_DIR "/rules/sigma")) {
    std::ifstream in(f.path());
    std::stringstream text;
    text << in.rdbuf();
    files.push_back({"rules/" + f.path().filename().string(), text.str()});
  }
  files.push_back({"filters/mf_whoami.yml",
                   "title: Whoami is expected here\nid: 3c5e0a8e-0f4f-4c55-9f3a-2a8a1f0b7c11\n"
                   "logsource: {product: windows, category: process_creation}\nfilter:\n"
                   "  rules: [1fc0eb53-c7e0-4dbf-8eb6-dddb8f1a094e]\n"
                   "  any_image: {Image|exists: true}\n  condition: not any_image\n"});
  auto filtered_bundle = match::Bundle::from_files(files);
  ASSERT_TRUE(filtered_bundle);
  auto submitted = rollout_->submit(*filtered_bundle, "test");
  ASSERT_TRUE(submitted && submitted->valid) << (submitted ? submitted->json : "");
  auto filtered = parse(*rollout_->dry_run(submitted->version, INT64_MIN, INT64_MAX, 1000000));
  bool whoami_seen = false;
  for (const auto& r : filtered["rules"].GetArray()) {
    const std::string id = r["id"].GetString();
    if (id == "1fc0eb53-c7e0-4dbf-8eb6-dddb8f1a094e") {
      whoami_seen = true;
      EXPECT_GT(r["active_matches"].GetUint64(), 0u);
      EXPECT_EQ(r["candidate_matches"].GetUint64(), 0u);
    } else {
      EXPECT_EQ(r["candidate_matches"].GetUint64(), r["active_matches"].GetUint64()) << id;
    }
  }
  EXPECT_TRUE(whoami_seen);
}

TEST_F(RolloutTest, ACrashDuringARolloutComesBackRolledBack) {
  options_.policy = RolloutPolicy::kStaged;
  start();
  const uint64_t v1 = state()["active"].GetUint64();
  const uint64_t good = submit("good");
  EXPECT_STREQ(state()["state"].GetString(), "rolling");
  // The process dies: no clean stop is recorded.
  stop();
  rollout_.reset();
  rollout_ = open_rollout();
  ASSERT_TRUE(rollout_);
  auto st = state();
  EXPECT_STREQ(st["state"].GetString(), "idle");
  EXPECT_EQ(st["active"].GetUint64(), v1);
  EXPECT_NE(rollout_->boot_notice().find("ended abnormally during its rollout"), std::string::npos)
      << rollout_->boot_notice();
  EXPECT_NE(rollout_->bundle_json(good)->find(R"("status":"rolled_back")"), std::string::npos);
  // A clean restart after that is quiet.
  rollout_->mark_clean_stop();
  rollout_.reset();
  rollout_ = open_rollout();
  EXPECT_EQ(rollout_->boot_notice(), "");
}

TEST_F(RolloutTest, ACrashLoopAfterActivationBootsOnTheLastKnownGood) {
  options_.policy = RolloutPolicy::kImmediate;
  options_.stage_ms = 100;
  options_.crash_limit = 3;
  start();
  const uint64_t v1 = state()["active"].GetUint64();
  const uint64_t good = submit("good");
  ASSERT_TRUE(test::wait_for([&] { return state()["active"].GetUint64() == good; }, 10s));
  EXPECT_EQ(state()["last_known_good"].GetUint64(), v1);
  stop();
  rollout_->mark_clean_stop();  // a clean stop, then three starts that die
  for (int crash = 1; crash <= 3; ++crash) {
    rollout_.reset();
    rollout_ = open_rollout();
    ASSERT_TRUE(rollout_);
    // Each of these boots dies (no mark_clean_stop); the third death is the limit.
    if (crash < 3) {
      EXPECT_EQ(rollout_->active()->version, good) << "crash " << crash;
    }
  }
  rollout_.reset();
  rollout_ = open_rollout();
  ASSERT_TRUE(rollout_);
  EXPECT_EQ(rollout_->active()->version, v1);
  EXPECT_NE(rollout_->boot_notice().find("quarantined"), std::string::npos)
      << rollout_->boot_notice();
  EXPECT_NE(rollout_->bundle_json(good)->find(R"("status":"quarantined")"), std::string::npos);
  EXPECT_FALSE(rollout_->start_rollout(good, "operator", "").is_ok());
  EXPECT_NE(audit().find(R"("action":"quarantined")"), std::string::npos);
}

}  // namespace
}  // namespace vigil::ingest
