// The built-in sensor simulator against the whole SigmaHQ tree (../shared/corpus): its benign
// traffic must look benign to real rules (under 1% of events alerting, as on the recorded lab
// traffic in corpus/otrf/), and its attacks must still be caught by them. A demo of vigil with
// SigmaHQ then shows a believable alert rate, and the pipeline bench's stream is realistic.

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <set>

#include "support/corpus.h"
#include "vigil/ingest/simulator.h"
#include "vigil/match/matcher.h"

namespace vigil::ingest {
namespace {

class SimulatorSigmaTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto mapping =
        match::FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/vigil-sensor.yml");
    ASSERT_TRUE(mapping) << mapping.status().to_string();
    match::CompileReport report;
    auto parsed = match::load_rules({(test::corpus_dir() / "sigma_rules").string()}, report);
    auto rs = match::RuleSet::compile(parsed, *mapping, report);
    ASSERT_TRUE(rs);
    ASSERT_GT((*rs)->rules().size(), 3000u);
    rules_ = new std::shared_ptr<const match::RuleSet>(*rs);
  }
  static void TearDownTestSuite() {
    delete rules_;
    rules_ = nullptr;
  }
  void SetUp() override { matcher_ = std::move(*match::Matcher::create(*rules_)); }
  // The titles of the rules an event matches.
  std::set<std::string> matched(const std::string& json) {
    EXPECT_EQ(parser_.parse(json, (*rules_)->fields(), event_), ParseError::kNone) << json;
    std::vector<uint32_t> out;
    EXPECT_TRUE(matcher_->match(event_, out).is_ok());
    std::set<std::string> titles;
    for (uint32_t r : out) titles.insert((*rules_)->rules()[r].title);
    return titles;
  }
  static std::shared_ptr<const match::RuleSet>* rules_;
  std::unique_ptr<match::Matcher> matcher_;
  EventParser parser_;
  Event event_;
  ManualClock clock_{1795539600000};
};
std::shared_ptr<const match::RuleSet>* SimulatorSigmaTest::rules_ = nullptr;

TEST_F(SimulatorSigmaTest, BenignTrafficAlertsOnUnderOnePercentOfEvents) {
  SensorSimulator sim({300, 0.0, 7}, clock_);
  SimulatedEvent ev;
  constexpr int kEvents = 20000;
  int alerting = 0;
  std::map<std::string, int> by_rule;
  for (int i = 0; i < kEvents; ++i) {
    sim.next(ev);
    clock_.advance_ms(10);
    const auto titles = matched(ev.json);
    if (!titles.empty()) ++alerting;
    for (const auto& t : titles) ++by_rule[t];
  }
  std::string top;
  for (const auto& [t, n] : by_rule) top += "  " + std::to_string(n) + "  " + t + "\n";
  std::printf("benign events alerting with the SigmaHQ tree: %d of %d (%.2f%%)\n%s", alerting,
              kEvents, 100.0 * alerting / kEvents, top.c_str());
  EXPECT_LT(alerting, kEvents / 100) << alerting << " of " << kEvents << " alert:\n" << top;
}

TEST_F(SimulatorSigmaTest, EveryKindOfAttackIsCaughtBySigmaHQRules) {
  SensorSimulator sim({300, 1.0, 11}, clock_);
  SimulatedEvent ev;
  std::map<std::string, int> missed;  // by the default rule that catches it
  std::map<std::string, std::string> example;
  std::set<std::string> kinds;
  for (int i = 0; i < 2000; ++i) {
    sim.next_malicious(ev);
    kinds.insert(ev.expected_rule_id);
    if (matched(ev.json).empty()) {
      ++missed[ev.expected_rule_id];
      example[ev.expected_rule_id] = ev.json;
    }
  }
  EXPECT_GE(kinds.size(), 10u);
  std::string list;
  for (const auto& [k, n] : missed)
    list += "  " + std::to_string(n) + "  " + k + " " + example[k] + "\n";
  EXPECT_TRUE(missed.empty()) << "attacks no SigmaHQ rule catches:\n" << list;
}

}  // namespace
}  // namespace vigil::ingest
