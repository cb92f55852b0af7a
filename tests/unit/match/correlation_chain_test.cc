// Chained correlations (Sigma correlation specification: `rules` may name correlations): the
// specification's own example (many failed logons followed by a successful one), a first level
// that fires twice in a window, refusals by name (cycles, group-by fields the inner correlation
// does not have), fed locally and, as cluster mode does, through observe_hit().

#include <gtest/gtest.h>

#include "correlation_harness.h"

namespace vigil::match {
namespace {

using test_support::Ev;
using test_support::fail;
using test_support::Harness;
using test_support::kMin;
using test_support::Lines;
constexpr auto both = test_support::local_and_remote;
using test_support::success;

// The specification's example: the inner correlation names its base rule, the outer one
// names the inner correlation and a rule, in order.
constexpr char kFailedThenSuccess[] = R"(title: Many failed logons then a successful one
id: corr-chain
correlation:
  type: temporal_ordered
  rules: [multiple_failed_logons, successful_logon]
  group-by: [user]
  timespan: 10m
---
title: Many failed logons
id: corr-failed
name: multiple_failed_logons
correlation:
  type: event_count
  rules: [failed_logon]
  group-by: [user]
  timespan: 10m
  condition: {gte: 3}
)";

TEST(CorrelationChain, ManyFailedLogonsFollowedByASuccessfulOne) {
  const Lines got = both(kFailedThenSuccess,
                         {fail(0, "a"), fail(1 * kMin, "a"), fail(2 * kMin, "a"),  // inner fires
                          success(3 * kMin, "a"),                                  // chain
                          success(4 * kMin, "b"), fail(5 * kMin, "b"), fail(6 * kMin, "b"),
                          fail(7 * kMin, "b"),     // b: success first: not in order
                          success(8 * kMin, "b"),  // now it is
                          success(9 * kMin, "c")});
  // The inner correlation does not alert on its own: the outer one does not generate it.
  EXPECT_EQ(got, (Lines{{3, "corr-chain"}, {8, "corr-chain"}}));

  // generate: true on the outer one: the inner alerts too.
  std::string generated = kFailedThenSuccess;
  generated.insert(generated.find("  timespan: 10m\n") + 16, "  generate: true\n");
  EXPECT_EQ(both(generated,
                 {fail(0, "a"), fail(1 * kMin, "a"), fail(2 * kMin, "a"), success(3 * kMin, "a")}),
            (Lines{{2, "corr-failed"}, {3, "corr-chain"}}));
}

// The first level fires twice within the second level's window: two matches of it.
TEST(CorrelationChain, AFirstLevelThatFiresTwiceInAWindowIsTwoMatches) {
  const std::string rules = R"(title: Twice
id: corr-twice
correlation:
  type: event_count
  rules: [multiple_failed_logons]
  group-by: [user]
  timespan: 30m
  condition: {gte: 2}
---
title: Many failed logons
id: corr-failed
name: multiple_failed_logons
correlation:
  type: event_count
  rules: [failed_logon]
  group-by: [user, host]
  timespan: 10m
  condition: {gte: 3}
)";
  std::vector<Ev> events;
  for (int i = 0; i < 6; ++i) events.push_back(fail(i * kMin, "a", i < 3 ? "h1" : "h2"));
  events.push_back(fail(6 * kMin, "b"));
  // a fires the inner one at 2 (on h1) and 5 (on h2): the second is the outer's second match;
  // the outer groups by user alone, taken from the inner's (user, host).
  EXPECT_EQ(both(rules, events), (Lines{{5, "corr-twice"}}));
}

TEST(CorrelationChain, RefusedByName) {
  auto refusal = [](const std::string& rules) {
    Harness h(rules);
    return h.error;
  };
  const std::string cycle = R"(title: X
id: corr-x
name: x
correlation: {type: event_count, rules: [y], group-by: [user], timespan: 5m, condition: {gte: 1}}
---
title: Y
id: corr-y
name: y
correlation: {type: event_count, rules: [x], group-by: [user], timespan: 5m, condition: {gte: 1}}
)";
  EXPECT_NE(refusal(cycle).find("in a cycle: "), std::string::npos) << refusal(cycle);
  EXPECT_NE(refusal(cycle).find("x -> y -> x"), std::string::npos) << refusal(cycle);
  const std::string self = R"(title: S
id: corr-s
name: s
correlation: {type: event_count, rules: [s], group-by: [user], timespan: 5m, condition: {gte: 1}}
)";
  EXPECT_NE(refusal(self).find("s -> s"), std::string::npos) << refusal(self);
  std::string by_host = kFailedThenSuccess;
  by_host.replace(by_host.find("group-by: [user]"), 16, "group-by: [host]");
  EXPECT_NE(refusal(by_host).find("group-by 'host' is not among the group-by fields of "
                                  "correlation 'multiple_failed_logons'"),
            std::string::npos)
      << refusal(by_host);
  std::string counted = kFailedThenSuccess;
  counted.replace(counted.find("type: temporal_ordered"), 22, "type: value_count");
  counted.replace(counted.find("  timespan: 10m\n") + 16, 0, "  condition: {gte: 2, field: x}\n");
  EXPECT_NE(refusal(counted).find("have none"), std::string::npos) << refusal(counted);
  // An outer correlation over an inner one that did not compile is refused with it.
  std::string broken = kFailedThenSuccess;
  broken.replace(broken.find("rules: [failed_logon]"), 21, "rules: [no_such_rule]");
  EXPECT_NE(refusal(broken).find("references correlation 'multiple_failed_logons', which did "
                                 "not compile"),
            std::string::npos)
      << refusal(broken);
}

// The outer correlation's window survives an encode and restore between the chain's levels.
TEST(CorrelationChain, WindowsOfEveryLevelSurviveAnEncodeAndRestore) {
  Harness h(kFailedThenSuccess);
  ASSERT_TRUE(h.error.empty()) << h.error;
  Correlator before(h.set), after(h.set);
  EventParser parser;
  Event event;
  std::vector<uint32_t> hits;
  std::vector<CorrelationHit> fired;
  auto matcher = std::move(*Matcher::create(h.set));
  auto feed = [&](Correlator& c, const Ev& e, size_t i) {
    ASSERT_EQ(parser.parse(e.json, h.set->fields(), event), ParseError::kNone);
    hits.clear();
    ASSERT_TRUE(matcher->match(event, hits).is_ok());
    for (uint32_t r : hits) c.observe(r, event, e.t, std::to_string(i), fired);
  };
  feed(before, fail(0, "a"), 0);
  feed(before, fail(1 * kMin, "a"), 1);
  feed(before, fail(2 * kMin, "a"), 2);  // the inner fires: a match of the outer
  ASSERT_EQ(fired.size(), 1u);
  fired.clear();
  for (const auto& key : before.take_dirty()) {
    if (const auto* w = before.window(key)) {
      ASSERT_TRUE(after.restore(key, Correlator::encode(*w)));
    }
  }
  feed(after, success(3 * kMin, "a"), 3);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(h.set->correlations()[fired[0].correlation].info.id, "corr-chain");
  EXPECT_EQ(fired[0].refs, (std::vector<std::string>{"2", "3"}));
}

}  // namespace
}  // namespace vigil::match
