// The correlation specification's and pySigma's forms beyond counts: a temporal condition
// written as an expression over the rules, and documents in the shapes the specification
// repository's tests/ use (no id, a taxonomy, metric types), each parsed or refused by name.

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
using test_support::proc;
using test_support::success;

std::string temporal(const std::string& type, const std::string& condition,
                     const std::string& rules = "[failed_logon, successful_logon, proc_run]") {
  return "title: T\nid: corr-t\ncorrelation:\n  type: " + type + "\n  rules: " + rules +
         "\n  group-by: [host]\n  timespan: 10m\n  condition: " + condition + "\n";
}

TEST(CorrelationSpec, ATemporalConditionWrittenAsAnExpression) {
  // Keywords in any case, as the specification's test writes them; `and` binds before `or`.
  EXPECT_EQ(both(temporal("temporal", "'failed_logon AND (successful_logon Or proc_run)'"),
                 {fail(0, "u", "h1"), proc(1 * kMin, "h1"),                 // fires
                  success(2 * kMin, "u", "h2"), fail(3 * kMin, "u", "h2"),  // fires
                  proc(4 * kMin, "h3"), success(5 * kMin, "u", "h3")}),     // no failure
            (Lines{{1, "corr-t"}, {3, "corr-t"}}));
  // A `not` can only be judged when the window ends.
  EXPECT_EQ(both(temporal("temporal", "'failed_logon and not successful_logon'",
                          "[failed_logon, successful_logon]"),
                 {fail(0, "u", "h1"), fail(1 * kMin, "u", "h2"), success(2 * kMin, "u", "h2")}),
            (Lines{{0, "corr-t"}}));
  // temporal_ordered: every rule joined by `and` is its default, anything else is refused.
  Harness ordered(temporal("temporal_ordered", "'failed_logon AND successful_logon'",
                           "[failed_logon, successful_logon]"));
  EXPECT_TRUE(ordered.error.empty()) << ordered.error;
  EXPECT_EQ(
      ordered.correlations_only({success(0, "u"), fail(1 * kMin, "u"), success(2 * kMin, "u")}),
      (Lines{{2, "corr-t"}}));
}

TEST(CorrelationSpec, ExpressionsAreRefusedByName) {
  auto err = [](const std::string& doc) {
    auto r = parse_sigma(doc, "c.yml");
    return r ? std::string() : r.status().to_string();
  };
  const std::string rules2 = "[failed_logon, successful_logon]";
  EXPECT_NE(err(temporal("temporal", "'failed_logon and nope'", rules2))
                .find("'nope' is not one of the correlation's rules"),
            std::string::npos);
  EXPECT_NE(err(temporal("temporal", "'failed_logon and successful_logon'"))
                .find("rule 'proc_run' is listed but not used"),
            std::string::npos);
  EXPECT_NE(err(temporal("temporal", "'(failed_logon or successful_logon'", rules2))
                .find("a '(' is not closed"),
            std::string::npos);
  EXPECT_NE(err(temporal("temporal", "'failed_logon successful_logon'", rules2))
                .find("unexpected 'successful_logon'"),
            std::string::npos);
  EXPECT_NE(err(temporal("temporal_ordered", "'failed_logon or successful_logon'", rules2))
                .find("must name every rule joined by 'and'"),
            std::string::npos);
  EXPECT_NE(err(temporal("event_count", "'failed_logon'", "[failed_logon]"))
                .find("is for temporal and temporal_ordered correlations"),
            std::string::npos);
  std::string deep(100, '(');
  EXPECT_NE(err(temporal("temporal", "'" + deep + "failed_logon'", rules2))
                .find("nested deeper than 64 levels"),
            std::string::npos);
}

// Documents in the shapes of the specification repository's tests/ (written here): each parses,
// or is refused with the reason it is invalid.
TEST(CorrelationSpec, DocumentsOfTheSpecificationsShapes) {
  auto docs = parse_sigma_documents(R"(title: Application error
related:
    - id: 0b8e7c1d-2f3a-4b5c-8d9e-0f1a2b3c4d5e
      type: similar
status: test
taxonomy: sigma
license: DRL-1.1
author: Someone
date: 2017-05-09
modified: 2023-04-14
tags: [attack.defense-evasion, attack.t1211]
logsource: {product: windows, service: application}
detection: {selection: {Provider_Name: 'Application Error'}, condition: selection}
falsepositives: [a string]
level: high
---
title: Average traffic
taxonomy: ecs
correlation:
    type: value_avg
    rules: [some_rule]
    group-by: [source.ip, user.name]
    timespan: 24h
    condition: {field: destination.bytes, gt: 500}
---
title: Recon in any order
correlation:
    type: temporal
    rules: [recon_a, recon_b, recon_c]
    group-by: [ComputerName, User]
    timespan: 5m
    condition: recon_a AND recon_b AND recon_c
---
title: Filter an account
description: admin accounts start with adm_
taxonomy: ecs
logsource: {category: process_creation, product: windows}
filter:
    rules: [0b8e7c1d-2f3a-4b5c-8d9e-0f1a2b3c4d5e]
    selection: {user.name|startswith: 'adm_'}
    condition: selection
---
title: Rare process names
correlation:
    type: value_percentile
    rules: [process_creation]
    group-by: [ComputerName]
    timespan: 24h
    condition: {field: Image, lte: 1}
)",
                                    "spec.yml");
  ASSERT_EQ(docs.size(), 5u);
  for (size_t i = 0; i < 4; ++i) EXPECT_TRUE(docs[i]) << i << ": " << docs[i].status().to_string();
  // No id: one derived from the title (a UUID's shape), said in a warning.
  ASSERT_TRUE(docs[0]);
  EXPECT_EQ(docs[0]->id.size(), 36u) << docs[0]->id;
  EXPECT_NE(docs[0]->warnings.back().find("no 'id'"), std::string::npos);
  ASSERT_TRUE(docs[1]);
  EXPECT_EQ(docs[1]->correlation->type, Correlation::Type::kValueAvg);
  // The one invalid by design (pySigma: value_percentile needs which percentile).
  ASSERT_FALSE(docs[4]);
  EXPECT_NE(docs[4].status().message().find("needs 'condition.percentile'"), std::string::npos);
}

}  // namespace
}  // namespace vigil::match
