// Sigma correlation rules: parsing (strict), resolution against base rules, and the window
// semantics of each type against hand-computed expectations.

#include <gtest/gtest.h>

#include "correlation_harness.h"

namespace vigil::match {
namespace {

// The harness, the base rules and their events (correlation_harness.h).
using test_support::Ev;
using test_support::fail;
using test_support::Harness;
using test_support::kCorrelationMapping;
using test_support::kMin;
using test_support::Lines;
using test_support::proc;
using test_support::success;

// Three failed logons of one user within five minutes.
constexpr char kBruteForce[] = R"(title: Brute force
id: corr-bf
correlation:
  type: event_count
  rules: [failed_logon]
  group-by: [user]
  timespan: 5m
  condition: {gte: 3}
)";

TEST(CorrelationTest, EventCountFiresOncePerWindowAndGroup) {
  Harness h(kBruteForce);
  ASSERT_TRUE(h.error.empty()) << h.error;
  // alice: 3 failures within 5 min (events 0, 1, 3) -> fires at 3; bob: 2 only; alice again:
  // 2 more after the firing do not fire (the window restarted); then a third one does.
  const Lines got =
      h.correlations_only({fail(0, "alice"), fail(1 * kMin, "alice"), fail(2 * kMin, "bob"),
                           fail(4 * kMin, "alice"), fail(5 * kMin, "bob"), fail(6 * kMin, "alice"),
                           fail(7 * kMin, "alice"), fail(8 * kMin, "alice")});
  EXPECT_EQ(got, (Lines{{3, "corr-bf"}, {7, "corr-bf"}}));
  // Spread wider than the timespan: never 3 within 5 minutes.
  EXPECT_TRUE(h.correlations_only(
                   {fail(0, "c"), fail(3 * kMin, "c"), fail(6 * kMin, "c"), fail(9 * kMin, "c")})
                  .empty());
  // The base rule does not alert on its own (generate: false).
  EXPECT_FALSE(h.set->rules()[0].emit);
  EXPECT_TRUE(h.set->rules()[1].emit);
}

// Grouping on a field the mapping marks unsupported refuses the correlation with the reason.
TEST(CorrelationTest, GroupingOnAnUnsupportedFieldIsRefused) {
  Harness h(kBruteForce, std::string(kCorrelationMapping) +
                             "fields: {user: {unsupported: 'the shipper drops it'}}\n");
  EXPECT_NE(h.error.find("field 'user' cannot be grouped on under mapping 'test': the shipper"),
            std::string::npos)
      << h.error;
}

TEST(CorrelationTest, ValueCountCountsDistinctValues) {
  Harness h(R"(title: Password spray
id: corr-spray
correlation:
  type: value_count
  rules: [base-failed]
  group-by: [host]
  timespan: 10m
  condition: {gte: 3, field: user}
  generate: true
)");
  ASSERT_TRUE(h.error.empty()) << h.error;
  const Lines got = h.run({fail(0, "a"), fail(1 * kMin, "a"), fail(2 * kMin, "b"),
                           fail(3 * kMin, "a", "h2"), fail(4 * kMin, "c")});
  // generate: true keeps the base alerts; the third distinct user on h1 completes it.
  EXPECT_EQ(got, (Lines{{0, "base-failed"},
                        {1, "base-failed"},
                        {2, "base-failed"},
                        {3, "base-failed"},
                        {4, "base-failed"},
                        {4, "corr-spray"}}));
}

TEST(CorrelationTest, TemporalNeedsEveryRuleInTheTimespanInAnyOrder) {
  Harness h(R"(title: Logon then process
id: corr-t
correlation:
  type: temporal
  rules: [successful_logon, proc_run]
  group-by: [host]
  timespan: 2m
)");
  ASSERT_TRUE(h.error.empty()) << h.error;
  const Lines got =
      h.correlations_only({proc(0, "h1"), success(1 * kMin, "u", "h1"),  // fires at 1 (any order)
                           success(2 * kMin, "u", "h2"), proc(5 * kMin, "h2"),  // too far apart
                           proc(6 * kMin, "h3"), success(7 * kMin, "u", "h3")});
  EXPECT_EQ(got, (Lines{{1, "corr-t"}, {5, "corr-t"}}));
}

TEST(CorrelationTest, TemporalOrderedNeedsTheListedOrder) {
  Harness h(R"(title: Failures then success
id: corr-o
correlation:
  type: temporal_ordered
  rules: [failed_logon, successful_logon]
  group-by: [user]
  timespan: 10m
)");
  ASSERT_TRUE(h.error.empty()) << h.error;
  const Lines got =
      h.correlations_only({success(0, "a"), fail(1 * kMin, "b"), success(2 * kMin, "b"),
                           fail(3 * kMin, "a"), fail(30 * kMin, "c"), success(45 * kMin, "c")});
  // a: success before failure (wrong order); b: in order -> fires at 2; c: 15 min apart.
  EXPECT_EQ(got, (Lines{{2, "corr-o"}}));
}

TEST(CorrelationTest, LessThanIsJudgedWhenTheWindowEnds) {
  Harness h(R"(title: Too few heartbeats
id: corr-lt
correlation:
  type: event_count
  rules: [base-proc]
  group-by: [host]
  timespan: 10m
  condition: {lt: 3}
)");
  ASSERT_TRUE(h.error.empty()) << h.error;
  // h1: 3 in its window (not < 3); h2: 2 in its window -> fires, completed by its last match
  // (event 3) once the window is over; h3's window is open at the end of the input and is
  // judged then.
  const Lines got =
      h.correlations_only({proc(0, "h1"), proc(0, "h2"), proc(1 * kMin, "h1"), proc(2 * kMin, "h2"),
                           proc(3 * kMin, "h1"), proc(11 * kMin, "h1"), proc(20 * kMin, "h3")});
  EXPECT_EQ(got, (Lines{{3, "corr-lt"}, {5, "corr-lt"}, {6, "corr-lt"}}));
}

// A range (the specification's "101 to 200": gt with lte) holds when both bounds do; with an
// upper bound it is judged when the window ends.
TEST(CorrelationTest, ARangeNeedsBothBounds) {
  Harness h(R"(title: Two or three
id: corr-range
correlation:
  type: event_count
  rules: [base-proc]
  group-by: [host]
  timespan: 10m
  condition: {gte: 2, lte: 3}
)");
  ASSERT_TRUE(h.error.empty()) << h.error;
  const Lines got =
      h.correlations_only({proc(0, "h1"), proc(0, "h2"), proc(0, "h3"), proc(1 * kMin, "h1"),
                           proc(1 * kMin, "h2"), proc(2 * kMin, "h2"), proc(3 * kMin, "h2")});
  EXPECT_EQ(got, (Lines{{3, "corr-range"}}));
  auto err = [](const std::string& cond) {
    auto r = parse_sigma(
        "title: C\nid: c\ncorrelation:\n  type: event_count\n  rules: [a]\n"
        "  timespan: 5m\n  condition: " +
            cond + "\n",
        "c.yml");
    return r ? std::string() : r.status().to_string();
  };
  EXPECT_TRUE(err("{gt: 100, lte: 200}").empty());
  EXPECT_TRUE(err("{lt: 5, gte: 1}").empty());
  for (const char* bad : {"{gte: 1, gt: 2}", "{eq: 1, lte: 3}", "{gt: 1, lt: 5, neq: 3}", "{}"}) {
    EXPECT_NE(err(bad).find("or a range of gt/gte with lt/lte"), std::string::npos) << bad;
  }
}

TEST(CorrelationTest, AliasesGroupDifferentFieldsTogether) {
  Harness h(R"(title: Same actor
id: corr-alias
correlation:
  type: temporal
  rules: [failed_logon, proc_run]
  group-by: [actor]
  timespan: 5m
  aliases:
    actor:
      failed_logon: user
      proc_run: host
)");
  ASSERT_TRUE(h.error.empty()) << h.error;
  EXPECT_EQ(h.correlations_only({fail(0, "srv1"), proc(1 * kMin, "srv1"), proc(2 * kMin, "srv2")}),
            (Lines{{1, "corr-alias"}}));
}

TEST(CorrelationTest, StrictParsingNamesWhatIsWrong) {
  auto err = [](const std::string& body) {
    auto r = parse_sigma("title: C\nid: c\ncorrelation:\n" + body, "c.yml");
    return r ? std::string() : r.status().to_string();
  };
  EXPECT_NE(err("  type: event_count\n  rules: [a]\n  timespan: 5m\n  condition: {gte: 2}\n  "
                "field21: x\n")
                .find("unknown key 'field21'"),
            std::string::npos);
  EXPECT_NE(
      err("  type: event_sum\n  rules: [a]\n  timespan: 5m\n").find("unknown type 'event_sum'"),
      std::string::npos);
  EXPECT_NE(err("  type: event_count\n  rules: [a]\n  timespan: soon\n  condition: {gte: 2}\n")
                .find("timespan"),
            std::string::npos);
  EXPECT_NE(err("  type: event_count\n  rules: [a]\n  timespan: 5m\n  condition: {approx: 2}\n")
                .find("unknown condition operator 'approx'"),
            std::string::npos);
  EXPECT_NE(err("  type: event_count\n  rules: [a]\n  timespan: 5m\n").find("needs a 'condition'"),
            std::string::npos);
  EXPECT_NE(err("  type: value_count\n  rules: [a]\n  timespan: 5m\n  condition: {gte: 2}\n")
                .find("condition.field"),
            std::string::npos);
  EXPECT_NE(err("  type: temporal\n  rules: [a]\n  timespan: 5m\n").find("at least two rules"),
            std::string::npos);

  Harness missing(R"(title: Dangling
id: corr-d
correlation:
  type: event_count
  rules: [no_such_rule]
  timespan: 5m
  condition: {gte: 2}
)");
  EXPECT_NE(missing.error.find("references rule 'no_such_rule'"), std::string::npos)
      << missing.error;
  // The base rules still compiled and alert on their own.
  EXPECT_EQ(missing.set->rules().size(), 3u);
  EXPECT_TRUE(missing.set->rules()[0].emit);
}

TEST(CorrelationTest, WindowsSurviveAnEncodeAndRestore) {
  Harness h(kBruteForce);
  ASSERT_TRUE(h.error.empty()) << h.error;
  auto matcher = Matcher::create(h.set);
  ASSERT_TRUE(matcher);
  EventParser parser;
  Event event;
  std::vector<uint32_t> hits;
  std::vector<CorrelationHit> fired;
  auto feed = [&](Correlator& c, const Ev& e, const std::string& ref) {
    ASSERT_EQ(parser.parse(e.json, h.set->fields(), event), ParseError::kNone);
    hits.clear();
    ASSERT_TRUE((*matcher)->match(event, hits).is_ok());
    for (uint32_t r : hits) c.observe(r, event, e.t, ref, fired);
  };
  Correlator before(h.set);
  feed(before, fail(0, "alice"), "a0");
  feed(before, fail(kMin, "alice"), "a1");
  const auto dirty = before.take_dirty();
  ASSERT_EQ(dirty.size(), 1u);
  ASSERT_NE(before.window(dirty[0]), nullptr);

  Correlator after(h.set);  // a restart
  ASSERT_TRUE(after.restore(dirty[0], Correlator::encode(*before.window(dirty[0]))));
  EXPECT_FALSE(after.restore(dirty[0], "garbage"));
  feed(after, fail(2 * kMin, "alice"), "a2");
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0].refs, (std::vector<std::string>{"a0", "a1", "a2"}));
  EXPECT_EQ(fired[0].value, 3);
}

}  // namespace
}  // namespace vigil::match

namespace vigil::match {
namespace {

// Cluster mode feeds correlations with matches computed elsewhere (the repartition topic):
// the windows judge them exactly as they judge matches observed here.
TEST(CorrelationTest, MatchesFedFromElsewhereAreJudgedAsLocalOnes) {
  const std::vector<Ev> events = {
      fail(0, "alice"),          fail(1 * kMin, "alice"),    fail(2 * kMin, "bob", "h2"),
      fail(4 * kMin, "alice"),   fail(5 * kMin, "bob"),      success(5 * kMin + 1, "bob"),
      fail(6 * kMin, "c", "h2"), fail(7 * kMin, "alice"),    fail(8 * kMin, "alice"),
      fail(8 * kMin, "d", "h2"), success(9 * kMin, "alice"), proc(9 * kMin, "h1")};
  for (const char* correlation : {kBruteForce, R"(title: Spray
id: corr-spray
correlation:
  type: value_count
  rules: [base-failed]
  group-by: [host]
  timespan: 10m
  condition: {gte: 3, field: user}
)",
                                  R"(title: Failed then success
id: corr-fs
correlation:
  type: temporal_ordered
  rules: [failed_logon, successful_logon]
  group-by: [user]
  timespan: 10m
)",
                                  R"(title: Few
id: corr-few
correlation:
  type: event_count
  rules: [failed_logon]
  group-by: [host]
  timespan: 3m
  condition: {lt: 2}
)"}) {
    Harness local(correlation), remote(correlation);
    ASSERT_TRUE(local.error.empty()) << local.error;
    remote.remote = true;
    const Lines expected = local.correlations_only(events);
    EXPECT_FALSE(expected.empty()) << correlation;
    EXPECT_EQ(remote.correlations_only(events), expected) << correlation;
  }
}

}  // namespace
}  // namespace vigil::match
