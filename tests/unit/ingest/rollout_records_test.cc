// The rollout's records: each type's JSON written and read back is the same record; what
// older versions wrote (fields missing) reads with defaults; a damaged record is refused.

#include "rollout_records.h"

#include <gtest/gtest.h>

namespace vigil::ingest::content {
namespace {

TEST(RolloutRecords, ARolloutRecordRoundTrips) {
  RolloutRecord r;
  r.policy = RolloutPolicy::kPinned;
  r.policy_from_api = true;
  r.active = 7;
  r.lkg = 5;
  r.target = 9;
  r.from = 7;
  r.phase = Phase::kPaused;
  r.stage = 2;
  r.active_since = 1'733'000'000'123;
  auto back = RolloutRecord::from_json(r.to_json());
  ASSERT_TRUE(back) << back.status().to_string();
  EXPECT_EQ(*back, r);
  EXPECT_EQ(RolloutRecord::from_json(RolloutRecord{}.to_json()).value(), RolloutRecord{});
}

TEST(RolloutRecords, EveryPhaseAndPolicyRoundTrips) {
  for (const Phase phase : {Phase::kIdle, Phase::kRolling, Phase::kPaused}) {
    for (const auto policy :
         {RolloutPolicy::kStaged, RolloutPolicy::kImmediate, RolloutPolicy::kPinned}) {
      RolloutRecord r;
      r.phase = phase;
      r.policy = policy;
      EXPECT_EQ(RolloutRecord::from_json(r.to_json()).value(), r);
      EXPECT_EQ(parse_phase(phase_name(phase)), phase);
    }
  }
  EXPECT_EQ(parse_phase("bogus"), Phase::kIdle);
}

TEST(RolloutRecords, AnOlderRecordReadsWithDefaults) {
  // As written before the stage and the operator's policy were recorded.
  auto r = RolloutRecord::from_json(R"({"active":3,"lkg":2,"phase":"rolling","target":4})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->active, 3u);
  EXPECT_EQ(r->lkg, 2u);
  EXPECT_EQ(r->target, 4u);
  EXPECT_EQ(r->phase, Phase::kRolling);
  EXPECT_FALSE(r->policy_from_api);
  EXPECT_EQ(r->stage, 0u);
  // A policy name nobody knows is not an operator's choice.
  auto odd = RolloutRecord::from_json(R"({"policy":"sometimes","policy_from_api":true})");
  ASSERT_TRUE(odd);
  EXPECT_FALSE(odd->policy_from_api);
}

TEST(RolloutRecords, AnActivationRecordRoundTrips) {
  const ActivationRecord a{12, 1'733'000'000'000, 2};
  EXPECT_EQ(ActivationRecord::from_json(a.to_json()).value(), a);
  EXPECT_EQ(a.to_json(), R"({"version":12,"time":1733000000000,"crashes":2})");
}

TEST(RolloutRecords, BootRecordsRoundTripRunningAndStopped) {
  BootRecord running;
  running.clean = false;
  running.path = "/var/lib/vigil";
  running.started = 1000;
  EXPECT_EQ(BootRecord::from_json(running.to_json()).value(), running);
  EXPECT_EQ(running.to_json().find("stopped"), std::string::npos);
  BootRecord stopped;
  stopped.path = "/var/lib/vigil";
  stopped.stopped = 2000;
  EXPECT_EQ(BootRecord::from_json(stopped.to_json()).value(), stopped);
  // A record without `clean` says nothing against the previous run.
  EXPECT_TRUE(BootRecord::from_json(R"({"path":"/x"})").value().clean);
}

TEST(RolloutRecords, BundleInfoAndAuditRecordsRoundTrip) {
  BundleInfoRecord info;
  info.version = 4;
  info.hash = "ab12";
  info.name = "prod";
  info.label = "2026-12";
  info.author = "soc \"team\"";
  info.description = "line\nbreak";
  info.created_at = "2026-12-06T20:00:00.000Z";
  info.created_by = "api:admin";
  info.status = "quarantined";
  info.lenient = true;
  info.rules = 3755;
  info.files = 3757;
  info.bytes = 12'345'678;
  EXPECT_EQ(BundleInfoRecord::from_json(info.to_json()).value(), info);

  const AuditRecord with_from{9, "2026-12-06T20:00:00.000Z", "vigil", "rolled_back", 4,
                              3, "gate: alert flood"};
  EXPECT_EQ(AuditRecord::from_json(with_from.to_json()).value(), with_from);
  AuditRecord without_from = with_from;
  without_from.from = 0;
  EXPECT_EQ(without_from.to_json().find("\"from\""), std::string::npos);
  EXPECT_EQ(AuditRecord::from_json(without_from.to_json()).value(), without_from);
}

TEST(RolloutRecords, DamagedRecordsAreRefusedNotGuessed) {
  for (const std::string_view text : {"", "{", "[1,2]", "\"rolling\"", "{\"active\":"}) {
    SCOPED_TRACE(text);
    auto r = RolloutRecord::from_json(text);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.status().code(), Code::kCorruption);
    EXPECT_FALSE(ActivationRecord::from_json(text));
    EXPECT_FALSE(BootRecord::from_json(text));
    EXPECT_FALSE(BundleInfoRecord::from_json(text));
    EXPECT_FALSE(AuditRecord::from_json(text));
  }
}

TEST(RolloutRecords, KeysOrderNumerically) {
  EXPECT_LT(num_key(kInfoPrefix, 9), num_key(kInfoPrefix, 10));
  EXPECT_EQ(num_of_key(num_key(kInfoPrefix, 12345), kInfoPrefix), 12345u);
}

TEST(RolloutStatusDocument, IdleHasNoTargetNorStageRollingHasBoth) {
  RolloutStatus idle;
  idle.state = "idle";
  idle.active = 3;
  idle.shards = {{0, 3, 3}, {1, 3, 3}};
  const std::string a = idle.to_json();
  EXPECT_NE(a.find(R"("target":null,"stage":null)"), std::string::npos) << a;
  EXPECT_NE(a.find(R"("active_since":"")"), std::string::npos) << a;
  EXPECT_NE(a.find(R"({"shard":1,"bundle":3,"assigned":3})"), std::string::npos) << a;

  RolloutStatus rolling = idle;
  rolling.state = "rolling";
  rolling.target = 4;
  rolling.stage = RolloutStatus::Stage{0, 3, 1, 1'733'000'000'000, 60000};
  const std::string b = rolling.to_json();
  EXPECT_NE(b.find(R"("target":4,"stage":{"index":0,"stages":3,"shards":1,"started":")"),
            std::string::npos)
      << b;
  EXPECT_NE(b.find(R"("hold_ms":60000})"), std::string::npos) << b;
}

}  // namespace
}  // namespace vigil::ingest::content
