#include "vigil/ingest/simulator.h"

#include <gtest/gtest.h>

#include <set>

#include "vigil/match/matcher.h"

namespace vigil::ingest {
namespace {

class SimulatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto mapping =
        match::FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/vigil-sensor.yml");
    ASSERT_TRUE(mapping) << mapping.status().to_string();
    match::CompileReport report;
    auto parsed = match::load_rules({VIGIL_SOURCE_DIR "/rules/sigma"}, report);
    auto rs = match::RuleSet::compile(parsed, *mapping, report);
    ASSERT_TRUE(rs);
    ASSERT_EQ(report.unsupported, 0u);
    rules_ = *rs;
    matcher_ = std::move(*match::Matcher::create(rules_));
  }
  // The ids of the rules an event matches.
  std::set<std::string> matched(const std::string& json) {
    EXPECT_EQ(parser_.parse(json, rules_->fields(), event_), ParseError::kNone) << json;
    std::vector<uint32_t> out;
    EXPECT_TRUE(matcher_->match(event_, out).is_ok());
    std::set<std::string> ids;
    for (uint32_t r : out) ids.insert(rules_->rules()[r].id);
    return ids;
  }
  std::shared_ptr<const match::RuleSet> rules_;
  std::unique_ptr<match::Matcher> matcher_;
  EventParser parser_;
  Event event_;
  ManualClock clock_{1795539600000};
};

TEST_F(SimulatorTest, EveryEventTriggersExactlyTheRuleItDeclares) {
  SensorSimulator sim({300, 0.05, 42}, clock_);
  SimulatedEvent ev;
  size_t malicious = 0;
  for (int i = 0; i < 20000; ++i) {
    sim.next(ev);
    const auto ids = matched(ev.json);
    if (ev.expected_rule_id.empty()) {
      EXPECT_TRUE(ids.empty()) << "benign event matched " << *ids.begin() << ": " << ev.json;
    } else {
      ++malicious;
      EXPECT_EQ(ids, std::set<std::string>{ev.expected_rule_id}) << ev.json;
    }
  }
  // About 5% malicious (binomial, n=20000: 1000 +- 31 at one sigma).
  EXPECT_GT(malicious, 850u);
  EXPECT_LT(malicious, 1150u);
}

TEST_F(SimulatorTest, AttacksCoverEveryDefaultRule) {
  SensorSimulator sim({300, 0.01, 7}, clock_);
  SimulatedEvent ev;
  std::set<std::string> covered;
  for (int i = 0; i < 2000; ++i) {
    sim.next_malicious(ev);
    covered.insert(ev.expected_rule_id);
  }
  std::set<std::string> all;
  for (const auto& r : rules_->rules()) all.insert(r.id);
  EXPECT_EQ(covered, all);
}

TEST_F(SimulatorTest, DeterministicForASeedAndStampedWithTheClock) {
  SensorSimulator a({300, 0.01, 9}, clock_), b({300, 0.01, 9}, clock_);
  SimulatedEvent ea, eb;
  for (int i = 0; i < 100; ++i) {
    a.next(ea);
    b.next(eb);
    ASSERT_EQ(ea.json, eb.json);
  }
  EXPECT_NE(ea.json.find(R"("@timestamp":"2026-11-24T17:00:00.000Z")"), std::string::npos)
      << ea.json;
  EXPECT_NE(ea.json.find(R"("Hostname":")" + ea.host + "\""), std::string::npos);
}

}  // namespace
}  // namespace vigil::ingest
