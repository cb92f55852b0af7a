// The deployment-wide rollout of cluster mode as a state machine over content topic records
// (ingest/src/content_coordinator.h), and the records' JSON forms (content_topic.h): stages
// over every replica's shards, gates from the replicas' reports, verdicts, crashes, actions,
// a coordinator taking over another's decision; records that are malformed are refused.

#include "content_coordinator.h"

#include <gtest/gtest.h>

#include "content_topic.h"

namespace vigil::ingest {
namespace {

using content::Phase;
using ctopic::Decision;

const std::string kOld(32, 'a');
const std::string kNew(32, 'b');
const std::string kOther(32, 'c');

class CoordinatorTest : public ::testing::Test {
 protected:
  CoordinatorTest() {
    options_.stage_ms = 1000;
    options_.stages_percent = {50, 100};
    options_.good_after_ms = 60000;
    coord_ = std::make_unique<ContentCoordinator>(options_, "r1", 5000, 30000);
  }

  // Every replica reports its two shards running `bundle` with these counters.
  void report(const std::string& replica, uint64_t events, uint64_t alerts,
              const std::map<uint32_t, std::string>& bundles, TimeMs boot = 1,
              const std::set<uint32_t>& flooding = {}) {
    ctopic::Report r;
    r.replica = replica;
    r.time = now_;
    r.boot = boot;
    r.bounds = {0.1, 1.0};
    for (uint32_t i = 0; i < 2; ++i) {
      ctopic::ShardReport s;
      s.shard = i;
      s.bundle = bundles.count(i) ? bundles.at(i) : kOld;
      s.events = events;
      s.alerts = flooding.count(i) ? events : alerts;
      s.batches = events / 10;
      s.latency = {s.batches, s.batches, s.batches};
      r.shards.push_back(s);
    }
    coord_->on_report(r);
  }
  // Each replica runs what the decision says, with `events` and `alerts` per shard so far;
  // `flood` replicas' target shards raise an alert per event.
  void run_all(uint64_t events, const std::set<std::string>& flood = {}) {
    const Decision& d = coord_->decision();
    for (const std::string r : {"r1", "r2", "r3"}) {
      std::map<uint32_t, std::string> b;
      std::set<uint32_t> flooding;
      for (uint32_t i = 0; i < 2; ++i) {
        const std::string name = r + "/" + std::to_string(i);
        const bool on = std::find(d.target_shards.begin(), d.target_shards.end(), name) !=
                        d.target_shards.end();
        b[i] = on && !d.target.empty() ? d.target : d.active;
        if (on && flood.count(r)) flooding.insert(i);
      }
      report(r, events, events / 100, b, 1, flooding);
    }
  }
  void publish(const std::string& hash, int64_t offset) {
    ctopic::BundleHeader h;
    h.hash = hash;
    h.bytes = h.compressed = 10;
    h.chunks = 1;
    h.actor = "alice";
    h.time = now_;
    coord_->on_bundle(h, offset);
  }
  void verdict(const std::string& hash, const std::string& replica, bool valid,
               const std::string& reason = "") {
    coord_->on_verdict({hash, replica, valid, reason, now_});
  }
  std::optional<Decision> tick() { return coord_->tick(now_, kOld); }
  ctopic::Action action(const std::string& what, const std::string& hash = "") {
    ctopic::Action a;
    a.id = "a1";
    a.action = what;
    a.hash = hash;
    a.actor = "bob";
    a.time = now_;
    return a;
  }
  // Three replicas of two shards, all on kOld, and the first decision made.
  void deploy() {
    run_all(0);
    ASSERT_TRUE(tick());
    publish(kNew, 10);
  }

  RolloutOptions options_;
  std::unique_ptr<ContentCoordinator> coord_;
  TimeMs now_ = 1'000'000;
};

TEST_F(CoordinatorTest, TheFirstDecisionIsTheCoordinatorsActiveBundle) {
  EXPECT_FALSE(coord_->tick(now_, "not a hash"));
  auto d = tick();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->active, kOld);
  EXPECT_EQ(d->lkg, kOld);
  EXPECT_EQ(d->seq, 1u);
  EXPECT_EQ(d->coordinator, "r1");
  EXPECT_EQ(d->phase, Phase::kIdle);
  EXPECT_FALSE(tick());  // nothing changed
}

TEST_F(CoordinatorTest, ANewBundleStartsOnOneShardOfTheDeploymentOnceEveryReplicaValidatedIt) {
  deploy();
  verdict(kNew, "r1", true);
  verdict(kNew, "r2", true);
  EXPECT_FALSE(tick());  // r3 has not said
  verdict(kNew, "r3", true);
  auto d = tick();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->phase, Phase::kRolling);
  EXPECT_EQ(d->target, kNew);
  EXPECT_EQ(d->from, kOld);
  EXPECT_EQ(d->actor, "alice");
  EXPECT_EQ(d->target_shards, std::vector<std::string>{"r1/0"});
  EXPECT_EQ(d->stages, 3u);  // 1, 3 (50% of 6), 6
}

TEST_F(CoordinatorTest, TheCanaryIsAShardThatConsumesEventsAndStaysWhileItDoes) {
  run_all(0);
  ASSERT_TRUE(tick());
  publish(kNew, 10);
  for (const char* r : {"r1", "r2", "r3"}) verdict(kNew, r, true);
  // r1 holds no partition of the events topic: its shards see nothing.
  report("r1", 0, 0, {});
  report("r2", 500, 0, {});
  report("r3", 500, 0, {});
  auto d = tick();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->target_shards, std::vector<std::string>{"r2/0"});
  // r1 gets partitions later: the canary stays where it is.
  report("r1", 100, 0, {});
  EXPECT_FALSE(tick());
  EXPECT_EQ(coord_->decision().target_shards, std::vector<std::string>{"r2/0"});
}

TEST_F(CoordinatorTest, StagesCountEveryReplicasShardsThenTheBundleIsActiveEverywhere) {
  deploy();
  for (const char* r : {"r1", "r2", "r3"}) verdict(kNew, r, true);
  ASSERT_TRUE(tick());
  uint64_t events = 0;
  std::vector<size_t> sizes;
  for (int round = 0; round < 10 && coord_->decision().phase != Phase::kIdle; ++round) {
    sizes.push_back(coord_->decision().target_shards.size());
    events += 1000;
    run_all(events);
    EXPECT_FALSE(tick()) << "held for less than stage_ms";
    now_ += 1000;
    run_all(events += 1000);
    ASSERT_TRUE(tick());
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{1, 3, 6}));  // the canary, 50%, 100% of 6 shards
  const Decision& d = coord_->decision();
  EXPECT_EQ(d.phase, Phase::kIdle);
  EXPECT_EQ(d.active, kNew);
  EXPECT_EQ(d.previous, kOld);
  EXPECT_EQ(d.action, "completed");
  EXPECT_TRUE(d.target_shards.empty());
  EXPECT_EQ(d.lkg, kOld);  // not yet known good
  now_ += options_.good_after_ms;
  run_all(events);
  ASSERT_TRUE(tick());
  EXPECT_EQ(coord_->decision().lkg, kNew);
}

TEST_F(CoordinatorTest, AStageDoesNotPromoteBeforeItsShardsRunTheBundle) {
  deploy();
  for (const char* r : {"r1", "r2", "r3"}) verdict(kNew, r, true);
  ASSERT_TRUE(tick());
  now_ += 5000;
  for (const std::string r : {"r1", "r2", "r3"}) report(r, 1000, 0, {});  // all still on kOld
  EXPECT_FALSE(tick());
  EXPECT_EQ(coord_->decision().stage, 0u);
}

TEST_F(CoordinatorTest, AnAlertFloodOnTheCanaryOfAnotherReplicaRollsBackEverywhere) {
  deploy();
  for (const char* r : {"r1", "r2", "r3"}) verdict(kNew, r, true);
  ASSERT_TRUE(tick());
  run_all(1000);
  EXPECT_FALSE(tick());
  run_all(2000, {"r1"});  // the canary r1/0 raises an alert per event
  auto d = tick();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->phase, Phase::kIdle);
  EXPECT_EQ(d->active, kOld);
  EXPECT_TRUE(d->target.empty());
  EXPECT_EQ(d->action, "rolled_back");
  EXPECT_NE(d->last_breach.find("alert flood"), std::string::npos) << d->last_breach;
  EXPECT_EQ(d->rolled_back, std::vector<std::string>{kNew});
  // It is not started again by itself.
  run_all(3000);
  EXPECT_FALSE(tick());
}

TEST_F(CoordinatorTest, ARefusalByAnyReplicaRefusesTheBundleForTheDeployment) {
  deploy();
  verdict(kNew, "r1", true);
  verdict(kNew, "r2", false, "validation: rule x: unknown modifier 'foo'");
  auto d = tick();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->phase, Phase::kIdle);
  EXPECT_EQ(d->refused, std::vector<std::string>{kNew});
  EXPECT_NE(d->reason.find("refused by replica r2"), std::string::npos) << d->reason;
  auto start = coord_->act(action("start", kNew), now_);
  ASSERT_FALSE(start);
  EXPECT_NE(start.status().message().find("refused"), std::string::npos);
}

TEST_F(CoordinatorTest, AVerdictNeverGivenRefusesTheBundleAfterTheWait) {
  deploy();
  verdict(kNew, "r1", true);
  verdict(kNew, "r2", true);
  EXPECT_FALSE(tick());
  now_ += 30000;
  run_all(0);
  auto d = tick();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->refused, std::vector<std::string>{kNew});
  EXPECT_NE(d->reason.find("r3 has not validated it"), std::string::npos) << d->reason;
}

TEST_F(CoordinatorTest, AReplicaThatCrashedDuringTheRolloutRollsItBack) {
  deploy();
  for (const char* r : {"r1", "r2", "r3"}) verdict(kNew, r, true);
  ASSERT_TRUE(tick());
  now_ += 100;
  ctopic::Report r;
  r.replica = "r2";
  r.time = now_;
  r.boot = now_;  // restarted after the rollout began
  r.crashed = kNew;
  r.crash_kind = "quarantined";
  r.crash_reason = "the process ended abnormally 3 times";
  coord_->on_report(r);
  auto d = tick();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->action, "quarantined");
  EXPECT_EQ(d->quarantined, std::vector<std::string>{kNew});
  EXPECT_NE(d->reason.find("replica r2"), std::string::npos);
  EXPECT_FALSE(coord_->act(action("start", kNew), now_));
}

TEST_F(CoordinatorTest, PinnedWaitsForTheOperatorAndABreachPauses) {
  options_.policy = RolloutPolicy::kPinned;
  coord_ = std::make_unique<ContentCoordinator>(options_, "r1", 5000, 30000);
  deploy();
  for (const char* r : {"r1", "r2", "r3"}) verdict(kNew, r, true);
  auto d = tick();
  ASSERT_TRUE(d);  // judged (bundles_seen moved), not started
  EXPECT_EQ(d->phase, Phase::kIdle);
  EXPECT_EQ(d->bundles_seen, 10);
  auto started = coord_->act(action("start", kNew), now_);
  ASSERT_TRUE(started) << started.status().to_string();
  EXPECT_EQ(started->phase, Phase::kRolling);
  EXPECT_EQ(started->actor, "bob");
  run_all(1000);
  (void)tick();
  run_all(2000, {"r1"});
  d = tick();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->phase, Phase::kPaused);
  EXPECT_FALSE(tick());  // the same breach pauses once
  ASSERT_TRUE(coord_->act(action("promote"), now_));
  EXPECT_EQ(coord_->decision().stage, 1u);
  EXPECT_EQ(coord_->decision().target_shards.size(), 3u);
}

TEST_F(CoordinatorTest, OperatorActionsAreCheckedAsOnOneReplica) {
  deploy();
  auto missing = coord_->act(action("start", kOther), now_);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_FALSE(coord_->act(action("promote"), now_));
  EXPECT_FALSE(coord_->act(action("rollback"), now_));  // nothing earlier
  EXPECT_FALSE(coord_->act(action("explode"), now_));
  auto p = action("policy");
  p.policy = "immediate";
  ASSERT_TRUE(coord_->act(p, now_));
  EXPECT_EQ(coord_->decision().policy, RolloutPolicy::kImmediate);
  for (const char* r : {"r1", "r2", "r3"}) verdict(kNew, r, true);
  auto d = tick();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->target_shards.size(), 6u);  // immediate: every shard at once
  EXPECT_FALSE(coord_->act(p, now_));      // not during a rollout
  ASSERT_TRUE(coord_->act(action("promote"), now_));
  EXPECT_EQ(coord_->decision().active, kNew);
  // Idle: a rollback goes back to the bundle before.
  auto back = coord_->act(action("rollback"), now_);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->active, kOld);
  EXPECT_EQ(back->rolled_back, std::vector<std::string>{kNew});
}

TEST_F(CoordinatorTest, AReplicaThatStopsReportingLeavesTheStage) {
  deploy();
  for (const char* r : {"r1", "r2", "r3"}) verdict(kNew, r, true);
  ASSERT_TRUE(tick());
  ASSERT_TRUE(coord_->act(action("promote"), now_));
  EXPECT_EQ(coord_->decision().target_shards, (std::vector<std::string>{"r1/0", "r1/1", "r2/0"}));
  now_ += 6000;  // past the report timeout: only r2 and r3 report
  for (const std::string r : {"r2", "r3"}) report(r, 10, 0, {});
  auto d = tick();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->target_shards, (std::vector<std::string>{"r2/0", "r2/1"}));  // 50% of 4
  coord_->forget("r3");
  EXPECT_EQ(coord_->live_shards(now_), (std::vector<std::string>{"r2/0", "r2/1"}));
}

TEST_F(CoordinatorTest, ANewCoordinatorGoesOnFromTheLastDecision) {
  deploy();
  for (const char* r : {"r1", "r2", "r3"}) verdict(kNew, r, true);
  auto d = tick();
  ASSERT_TRUE(d);
  // r2 takes over with the same records read from the topic.
  ContentCoordinator next(options_, "r2", 5000, 30000);
  for (const std::string r : {"r1", "r2", "r3"}) {
    ctopic::Report rep;
    rep.replica = r;
    rep.time = now_;
    rep.shards = {{0, kOld, 0, 0, 0, 0, {}}, {1, kOld, 0, 0, 0, 0, {}}};
    next.on_report(rep);
  }
  next.on_bundle(ctopic::BundleHeader{kNew, 10, 10, 1, "alice", "r1", false, now_}, 10);
  for (const char* r : {"r1", "r2", "r3"}) next.on_verdict({kNew, r, true, "", now_});
  next.on_decision(*d);
  next.on_decision(Decision{});  // an older one read late: ignored
  EXPECT_EQ(next.decision().seq, d->seq);
  auto p = next.act(action("promote"), now_);
  ASSERT_TRUE(p) << p.status().to_string();
  EXPECT_EQ(p->seq, d->seq + 1);
  EXPECT_EQ(p->coordinator, "r2");
  EXPECT_EQ(p->stage, 1u);
}

TEST(ContentTopicRecords, EachRecordReadsBackAsWritten) {
  ctopic::Decision d;
  d.seq = 7;
  d.coordinator = "vigil-0";
  d.phase = Phase::kRolling;
  d.active = kOld;
  d.target = kNew;
  d.lkg = kOld;
  d.target_shards = {"vigil-1/0"};
  d.quarantined = {kOther};
  d.bundles_seen = 42;
  d.rate_before = 0.25;
  d.reason = "a \"quoted\" reason";
  auto back = ctopic::Decision::from_json(d.to_json());
  ASSERT_TRUE(back) << back.status().to_string();
  EXPECT_EQ(*back, d);

  ctopic::Report r;
  r.replica = "vigil-2";
  r.time = 5;
  r.bounds = {0.5};
  r.shards = {{0, kNew, 1, 2, 3, 4, {5, 6}}};
  r.crashed = kNew;
  auto rb = ctopic::Report::from_json(r.to_json());
  ASSERT_TRUE(rb) << rb.status().to_string();
  EXPECT_EQ(*rb, r);

  ctopic::BundleHeader h{kNew, 100, 50, 1, "alice", "vigil-0", true, 9};
  EXPECT_EQ(*ctopic::BundleHeader::from_json(h.to_json()), h);
  ctopic::Verdict v{kNew, "vigil-1", false, "because", 3};
  EXPECT_EQ(*ctopic::Verdict::from_json(v.to_json()), v);
  ctopic::Action a{"id1", "start", kNew, "", "bob", "why", "vigil-0", 4};
  EXPECT_EQ(*ctopic::Action::from_json(a.to_json()), a);
  ctopic::ActionResult res{"id1", false, "no", "vigil-0"};
  EXPECT_EQ(*ctopic::ActionResult::from_json(res.to_json()), res);
}

TEST(ContentTopicRecords, MalformedRecordsAreRefusedWithAReason) {
  auto why = [](const Status& s) { return s.message(); };
  EXPECT_NE(why(ctopic::Decision::from_json("{").status()).find("not a JSON object"),
            std::string::npos);
  EXPECT_NE(why(ctopic::Decision::from_json("[]").status()).find("not a JSON object"),
            std::string::npos);
  EXPECT_NE(why(ctopic::Decision::from_json(R"({"v":2})").status()).find("format version 2"),
            std::string::npos);
  EXPECT_NE(why(ctopic::Decision::from_json(R"({"v":1,"policy":"staged","phase":"idle"})").status())
                .find("'seq'"),
            std::string::npos);
  const std::string bad_phase =
      R"({"v":1,"seq":1,"policy":"staged","phase":"dancing","active":")" + kOld + "\"}";
  EXPECT_FALSE(ctopic::Decision::from_json(bad_phase));
  const std::string no_target =
      R"({"v":1,"seq":1,"policy":"staged","phase":"rolling","active":")" + kOld + "\"}";
  EXPECT_FALSE(ctopic::Decision::from_json(no_target));
  EXPECT_FALSE(ctopic::Decision::from_json(
      R"({"v":1,"seq":1,"policy":"staged","phase":"idle","active":"not-a-hash"})"));
  EXPECT_FALSE(ctopic::BundleHeader::from_json(
      R"({"v":1,"hash":"xyz","bytes":1,"compressed":1,"chunks":1})"));
  EXPECT_FALSE(ctopic::BundleHeader::from_json(R"({"v":1,"hash":")" + kNew +
                                               R"(","bytes":1,"compressed":1,"chunks":0})"));
  EXPECT_FALSE(ctopic::Report::from_json(R"({"v":1,"replica":"r1","shards":[{"shard":-1}]})"));
  EXPECT_FALSE(ctopic::Report::from_json(R"({"v":1,"replica":"../etc"})"));
  EXPECT_FALSE(ctopic::Verdict::from_json(R"({"v":1,"hash":")" + kNew + R"(","replica":"r"})"));
  EXPECT_FALSE(ctopic::Action::from_json(R"({"v":1,"id":"x","action":"start"})"));
  EXPECT_FALSE(ctopic::ActionResult::from_json(R"({"v":1,"id":"x","ok":"yes"})"));
}

}  // namespace
}  // namespace vigil::ingest
