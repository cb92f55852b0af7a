// Sigma 2.1 correlations over values: value_count over a list of fields, and the metric types
// (value_sum, value_avg, value_min, value_max, value_median, value_percentile) against
// hand-computed expectations, fed locally and, as cluster mode does, through observe_hit().

#include <gtest/gtest.h>

#include <cmath>

#include "correlation_harness.h"

namespace vigil::match {
namespace {

using test_support::Ev;
using test_support::fail;
using test_support::Harness;
using test_support::kMin;
using test_support::Lines;
constexpr auto both = test_support::local_and_remote;

// A failed logon moving `bytes` (a JSON number, or the text given).
Ev sent(TimeMs t, const std::string& user, const std::string& bytes) {
  return {t, R"({"outcome":"failure","user":")" + user + R"(","host":"h1","bytes":)" + bytes + "}"};
}

std::string metric(const std::string& type, const std::string& condition) {
  return "title: Metric\nid: corr-m\ncorrelation:\n  type: " + type +
         "\n  rules: [base-failed]\n  group-by: [user]\n  timespan: 10m\n  condition: " +
         condition + "\n";
}

// `condition.field` as a list: distinct combinations of the fields' values are counted (the
// schema's "field(s)"); an event lacking one of them counts nothing. Fed locally and, as in
// cluster mode, through observe_hit(): the same lines.
TEST(CorrelationTest, ValueCountOverAListOfFieldsCountsCombinations) {
  const std::string rule = R"(title: Spray over users and hosts
id: corr-pairs
correlation:
  type: value_count
  rules: [base-failed]
  group-by: [outcome]
  timespan: 10m
  condition: {gte: 3, field: [user, host]}
)";
  const std::vector<Ev> events = {
      fail(0, "a", "h1"),
      fail(1 * kMin, "a", "h2"),
      fail(2 * kMin, "a", "h1"),                          // 2 pairs
      {3 * kMin, R"({"outcome":"failure","user":"b"})"},  // no host
      fail(4 * kMin, "b", "h1"),                          // the third
  };
  for (const bool remote : {false, true}) {
    Harness h(rule);
    ASSERT_TRUE(h.error.empty()) << h.error;
    h.remote = remote;
    EXPECT_EQ(h.correlations_only(events), (Lines{{4, "corr-pairs"}})) << remote;
  }
  Harness one(std::string(rule).replace(rule.find("[user, host]"), 12, "user"));
  EXPECT_EQ(one.correlations_only(events), Lines{});  // two users only
  auto err = [](const std::string& field) {
    auto r = parse_sigma(
        "title: C\nid: c\ncorrelation:\n  type: value_count\n  rules: [a]\n"
        "  timespan: 5m\n  condition: {gte: 2, field: " +
            field + "}\n",
        "c.yml");
    return r ? std::string() : r.status().to_string();
  };
  EXPECT_NE(err("[]").find("'condition.field' must be a field name or a list"), std::string::npos);
  EXPECT_NE(err("[user, {a: b}]").find("each entry of 'condition.field'"), std::string::npos);
  EXPECT_EQ(err("[user, host]"), "");
}

// The specification's own example: an average of BytesOut above 500 per group. A mean can fall
// as matches come, so it is judged over the whole window, when it ends: a first large value
// alone does not fire.
TEST(CorrelationMetrics, AverageIsJudgedOverTheWholeWindow) {
  const Lines got =
      both(metric("value_avg", "{field: bytes, gt: 500}"),
           {sent(0, "a", "600"), sent(1 * kMin, "a", "10"), sent(2 * kMin, "a", "10"),
            sent(3 * kMin, "b", "600"), sent(4 * kMin, "b", "500.5"), sent(30 * kMin, "c", "1")});
  // a: 206.7; b: 550.25, its window (from 3m) ends at 13m, judged when c's event passes it.
  EXPECT_EQ(got, (Lines{{4, "corr-m"}}));
}

TEST(CorrelationMetrics, SumMinAndMax) {
  const std::vector<Ev> events = {sent(0, "a", "600"), sent(1 * kMin, "a", "300"),
                                  sent(2 * kMin, "b", "900"), sent(3 * kMin, "a", "200"),
                                  sent(4 * kMin, "b", "-5")};
  EXPECT_EQ(both(metric("value_sum", "{field: bytes, gt: 1000}"), events),
            (Lines{{3, "corr-m"}}));  // a: 1100 at the window's end; b: 895
  EXPECT_EQ(both(metric("value_sum", "{field: bytes, gte: 890, lt: 900}"), events),
            (Lines{{4, "corr-m"}}));  // b's range
  // A maximum only grows: above a bound it fires at once, on the match that passes it.
  EXPECT_EQ(both(metric("value_max", "{field: bytes, gte: 900}"), events), (Lines{{2, "corr-m"}}));
  EXPECT_EQ(both(metric("value_min", "{field: bytes, lt: 0}"), events), (Lines{{4, "corr-m"}}));
  // Below a bound, a maximum is judged when the window ends: a's is 600, b's 900.
  EXPECT_EQ(both(metric("value_max", "{field: bytes, lt: 650}"), events), (Lines{{3, "corr-m"}}));
}

// Median and percentiles interpolate between the closest ranks (1, 2, 3, 100: median 2.5).
TEST(CorrelationMetrics, MedianAndPercentiles) {
  std::vector<Ev> four;
  for (const char* v : {"1", "2", "100", "3"})
    four.push_back(sent(static_cast<TimeMs>(four.size()) * kMin, "a", v));
  EXPECT_EQ(both(metric("value_median", "{field: bytes, gt: 2.4}"), four), (Lines{{3, "corr-m"}}));
  EXPECT_EQ(both(metric("value_median", "{field: bytes, gt: 2.5}"), four), Lines{});
  std::vector<Ev> hundred;
  for (int i = 1; i <= 100; ++i)
    hundred.push_back(sent(static_cast<TimeMs>(i) * 1000, "a", std::to_string(i)));
  // p90 of 1..100 is 90.1, p99 is 99.01.
  EXPECT_EQ(both(metric("value_percentile", "{field: bytes, percentile: 90, gte: 90.15}"), hundred),
            Lines{});
  EXPECT_EQ(both(metric("value_percentile", "{field: bytes, percentile: 90, gte: 90.05}"), hundred),
            (Lines{{99, "corr-m"}}));
  EXPECT_EQ(both(metric("value_percentile", "{field: bytes, percentile: 99, gt: 99}"), hundred),
            (Lines{{99, "corr-m"}}));
}

// A value that is no finite number is left out of the metric and counted; a missing one is
// simply not there.
TEST(CorrelationMetrics, ValuesThatAreNoNumbersAreLeftOutAndCounted) {
  Harness h(metric("value_sum", "{field: bytes, gte: 10}"));
  ASSERT_TRUE(h.error.empty()) << h.error;
  const Lines got = h.correlations_only({sent(0, "a", "5"), sent(1 * kMin, "a", R"("many")"),
                                         fail(2 * kMin, "a"), sent(3 * kMin, "a", R"("5.0")")});
  EXPECT_EQ(got, (Lines{{3, "corr-m"}}));  // "5.0" as a JSON string is a number's text
  EXPECT_EQ(h.non_numeric, 1u);
}

TEST(CorrelationMetrics, StrictParsing) {
  auto err = [](const std::string& type, const std::string& condition) {
    auto r = parse_sigma(metric(type, condition), "c.yml");
    return r ? std::string() : r.status().to_string();
  };
  EXPECT_EQ(err("value_avg", "{field: bytes, gt: 500}"), "");
  EXPECT_EQ(err("value_sum", "{field: bytes, gt: -1.5e3}"), "");
  EXPECT_NE(err("value_avg", "{gt: 500}").find("needs its field"), std::string::npos);
  EXPECT_NE(err("value_avg", "{field: [a, b], gt: 500}").find("one numeric field"),
            std::string::npos);
  EXPECT_NE(err("value_percentile", "{field: bytes, lte: 1}").find("'condition.percentile'"),
            std::string::npos);
  EXPECT_NE(
      err("value_percentile", "{field: bytes, percentile: 101, lte: 1}").find("from 0 to 100"),
      std::string::npos);
  EXPECT_NE(err("value_avg", "{field: bytes, percentile: 50, gt: 1}").find("only meaningful"),
            std::string::npos);
  EXPECT_NE(err("value_avg", "{field: bytes, gt: .nan}").find("needs a number"), std::string::npos);
  EXPECT_NE(err("event_count", "{gt: 1.5}").find("non-negative integer"), std::string::npos);
  EXPECT_NE(err("value_mode", "{field: bytes, gt: 1}").find("unknown type 'value_mode'"),
            std::string::npos);
}

// A metric's window survives an encode and restore like the others (its numbers as text).
TEST(CorrelationMetrics, WindowsSurviveAnEncodeAndRestore) {
  Harness h(metric("value_avg", "{field: bytes, gt: 500}"));
  ASSERT_TRUE(h.error.empty()) << h.error;
  Correlator before(h.set), after(h.set);
  EventParser parser;
  Event event;
  std::vector<CorrelationHit> fired;
  auto observe = [&](Correlator& c, const Ev& e, const std::string& ref) {
    ASSERT_EQ(parser.parse(e.json, h.set->fields(), event), ParseError::kNone);
    c.observe(0, event, e.t, ref, fired);  // rule 0: base-failed
  };
  observe(before, sent(0, "a", "900"), "0");
  const auto dirty = before.take_dirty();
  ASSERT_EQ(dirty.size(), 1u);
  ASSERT_TRUE(after.restore(dirty[0], Correlator::encode(*before.window(dirty[0]))));
  observe(after, sent(1 * kMin, "a", "200"), "1");
  after.advance(INT64_MAX, fired);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_DOUBLE_EQ(fired[0].value, 550);
  EXPECT_EQ(fired[0].refs, (std::vector<std::string>{"0", "1"}));
}

}  // namespace
}  // namespace vigil::match
