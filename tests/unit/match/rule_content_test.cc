// Rule files as users write them: several documents per file (Sigma v1 collections with
// `action: global`, `reset`, `repeat`), Sigma filters applied to the rules they name, and rule
// selection by status, level, tags and logsource. Matching is checked with the compiled
// matcher and the reference matcher side by side.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "rule_match.h"
#include "vigil/match/bundle.h"
#include "vigil/match/matcher.h"
#include "vigil/match/reference_matcher.h"
#include "vigil/match/ruleset.h"

namespace vigil::match {
namespace {

using test_support::kMapping;  // two Windows logsources, selected by EventID 1 and 3

std::vector<SigmaRule> parse_all(const std::string& text,
                                 std::vector<std::string>* errors = nullptr) {
  std::vector<SigmaRule> out;
  for (auto& r : parse_sigma_documents(text, "f.yml")) {
    if (r)
      out.push_back(std::move(*r));
    else if (errors)
      errors->push_back(r.status().message());
    else
      ADD_FAILURE() << r.status().to_string();
  }
  return out;
}

bool contains(const std::string& s, std::string_view needle) {
  return s.find(needle) != std::string::npos;
}

using test_support::matches;

using Ids = std::vector<std::string>;

TEST(MultiDocument, AStreamOfRulesIsReadDocumentByDocument) {
  const auto rules = parse_all(R"(# leading comment
---
title: A
id: a
logsource: {product: windows, category: process_creation}
detection: {sel: {Image|endswith: '\a.exe'}, condition: sel}
--- # a comment on the marker line
title: B
id: b
logsource: {product: windows, category: process_creation}
detection:
  sel:
    CommandLine: |
      x
      --- not a marker: indented
  condition: sel
...
---
)");
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].id, "a");
  EXPECT_EQ(rules[1].id, "b");
  EXPECT_FALSE(parse_sigma("title: A\nid: a\n---\ntitle: B\nid: b\n", "two.yml"));
  EXPECT_TRUE(
      contains(parse_sigma("title: A\nid: a\n---\ntitle: B\nid: b\n", "two.yml").status().message(),
               "holds 2 rules"));
}

// Sigma v1 collections: the global document under every later one until a reset; a repeat is
// the previous rule with the document merged over it.
TEST(MultiDocument, SigmaV1CollectionActions) {
  const auto rules = parse_all(R"(action: global
title: Suspicious tools
status: test
logsource: {product: windows}
detection:
  tool: {Image|endswith: '\tool.exe'}
  condition: tool and sel
level: high
---
id: c1
logsource: {category: process_creation}
detection:
  sel: {CommandLine|contains: ' -dump '}
---
action: repeat
id: c2
detection:
  sel: {CommandLine|contains: ' -steal '}
---
action: reset
---
title: Plain
id: c3
logsource: {product: windows, category: process_creation}
detection: {sel: {Image|endswith: '\other.exe'}, condition: sel}
)");
  ASSERT_EQ(rules.size(), 3u);
  EXPECT_EQ(rules[0].title, "Suspicious tools");
  EXPECT_EQ(rules[0].logsource.product, "windows");
  EXPECT_EQ(rules[0].logsource.category, "process_creation");
  EXPECT_EQ(rules[1].id, "c2");
  EXPECT_EQ(rules[1].level, "high");
  EXPECT_EQ(rules[2].level, "");  // the global was reset
  const auto hits =
      matches(rules, {
                         R"({"EventID":1,"Image":"C:\\t\\tool.exe","CommandLine":"tool -dump x"})",
                         R"({"EventID":1,"Image":"C:\\t\\tool.exe","CommandLine":"tool -steal x"})",
                         R"({"EventID":1,"Image":"C:\\t\\nottool.exe","CommandLine":"a -steal x"})",
                         R"({"EventID":1,"Image":"C:\\t\\other.exe"})",
                     });
  EXPECT_EQ(hits, (std::vector<Ids>{{"c1"}, {"c2"}, {}, {"c3"}}));
}

TEST(MultiDocument, OneBrokenDocumentIsNamedAndTheOthersLoad) {
  std::vector<std::string> errors;
  const auto rules = parse_all(R"(title: A
id: a
logsource: {product: windows, category: process_creation}
detection: {sel: {Image: x}, condition: sel}
---
title: B
id: b
logsource: {product: windows, category: process_creation}
detection: {sel: {Image|nosuchmodifier: x}, condition: sel}
---
title: C
id: c
detection: [unclosed
---
action: replay
---
action: repeat
id: d
)",
                               &errors);
  // d repeats the last rule document, b, and inherits its problem.
  ASSERT_EQ(rules.size(), 1u);
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_TRUE(contains(errors[0], "f.yml, document 2 (line 6)")) << errors[0];
  EXPECT_TRUE(contains(errors[0], "nosuchmodifier")) << errors[0];
  EXPECT_TRUE(contains(errors[1], "f.yml, document 3 (line 11): YAML error")) << errors[1];
  EXPECT_TRUE(contains(errors[2], "document 4")) << errors[2];
  EXPECT_TRUE(contains(errors[2], "unknown collection action 'replay'")) << errors[2];
  EXPECT_TRUE(contains(errors[3], "f.yml, document 5 (line 17)")) << errors[3];
  // A single broken document is named by its file alone.
  const auto one = parse_sigma("title: [unclosed\n", "one.yml");
  ASSERT_FALSE(one);
  EXPECT_EQ(one.status().message().rfind("one.yml: YAML error", 0), 0u) << one.status().message();
}

// Sigma 2.1 time modifiers, each value checked by the compiled matcher and the reference
// matcher (which computes the parts with the C library): hour 23 against 0, an ISO week across
// a year's end, epoch milliseconds, equality as a number.
TEST(TimeModifiers, APartOfADateComparedAsANumber) {
  // A Sigma v1 collection: the global document holds what the five rules share.
  const auto rules = parse_all(R"(action: global
title: Time of day
logsource: {product: windows, category: process_creation}
detection: {condition: sel}
---
id: night
detection: {sel: {UtcTime|hour|lt: 6}}
---
id: late
detection: {sel: {UtcTime|hour|gte: 23}}
---
id: week1
detection: {sel: {UtcTime|week: 1}}
---
id: notdec
detection: {sel: {UtcTime|month|neq: 12}}
---
id: recent
detection: {sel: {UtcTime|year|gte: 2025, UtcTime|minute: [0, 30]}}
)");
  ASSERT_EQ(rules.size(), 5u);
  auto ev = [](const std::string& t) { return R"({"EventID":1,"UtcTime":")" + t + "\"}"; };
  const auto hits = matches(
      rules,
      {
          ev("2024-12-30 23:00:00.000"),    // Monday of ISO week 1 of 2025
          ev("2024-12-29T05:59:59Z"),       // Sunday of week 52
          ev("2021-01-03T00:30:00+02:00"),  // week 53 of 2020, as written (no zone conversion)
          ev("2025-06-01T12:00:00Z"),
          R"({"EventID":1,"UtcTime":1735603200000})",  // 2024-12-31T00:00:00Z
          ev("not a date"),
          ev("2023-02-29T01:00:00Z"),  // no such day
          ev("2024-12-30 2x:00"),      // no such time
      });
  EXPECT_EQ(hits, (std::vector<Ids>{{"late", "week1"},
                                    {"night"},
                                    {"night", "notdec"},
                                    {"notdec", "recent"},
                                    {"night", "week1"},
                                    {"notdec"},
                                    {"notdec"},
                                    {"notdec"}}));
  for (const char* bad :
       {"{UtcTime|hour|contains: 3}", "{UtcTime|hour|day: 3}", "{UtcTime|hour: noon}"}) {
    std::vector<std::string> errors;
    parse_all(std::string("title: T\nid: t\nlogsource: {product: windows}\ndetection: {sel: ") +
                  bad + ", condition: sel}\n",
              &errors);
    EXPECT_EQ(errors.size(), 1u) << bad;
  }
}

constexpr char kTwoRules[] = R"(title: Dump tool
id: 11111111-1111-4111-8111-111111111111
name: dump_tool
status: test
level: high
tags: [attack.credential-access, attack.t1003.001]
logsource: {product: windows, category: process_creation}
detection: {sel: {CommandLine|contains: ' -dump '}, condition: sel}
---
title: Beacon
id: 22222222-2222-4222-8222-222222222222
status: experimental
level: medium
tags: [attack.command-and-control]
logsource: {product: windows, category: network_connection}
detection: {sel: {DestinationPort: 4444}, condition: sel}
)";

// Filters are ANDed into the rules they name, as pySigma applies them: the filter's
// condition is what may still alert (`not selection` excludes).
TEST(SigmaFilters, AFilterExcludesWhatItSelectsFromTheRulesItNames) {
  const auto docs = parse_all(std::string(kTwoRules) + R"(---
title: Backup agent dumps on purpose
id: f1
logsource: {product: windows, category: process_creation}
filter:
  rules: [dump_tool]
  backup: {ParentImage|endswith: '\backupagent.exe'}
  condition: not backup
)");
  ASSERT_EQ(docs.size(), 3u);
  ASSERT_TRUE(docs[2].filter);
  CompileReport report;
  const auto rules = apply_filters(docs, {}, report);
  ASSERT_EQ(rules.size(), 2u);
  ASSERT_EQ(report.rules.size(), 1u);
  EXPECT_TRUE(report.rules[0].filter);
  EXPECT_EQ(report.rules[0].applies_to, Ids{"11111111-1111-4111-8111-111111111111"});
  EXPECT_EQ(rules[0].filters, Ids{"f1: Backup agent dumps on purpose"});
  const auto hits = matches(
      rules,
      {
          R"({"EventID":1,"ParentImage":"C:\\b\\backupagent.exe","CommandLine":"x -dump y"})",
          R"({"EventID":1,"ParentImage":"C:\\w\\cmd.exe","CommandLine":"x -dump y"})",
          R"({"EventID":1,"CommandLine":"x -dump y"})",
          R"({"EventID":3,"DestinationPort":4444})",
      });
  EXPECT_EQ(hits, (std::vector<Ids>{{},
                                    {"11111111-1111-4111-8111-111111111111"},
                                    {"11111111-1111-4111-8111-111111111111"},
                                    {"22222222-2222-4222-8222-222222222222"}}));
}

TEST(SigmaFilters, AnyAppliesToEveryRuleOfTheFiltersLogsource) {
  const auto docs = parse_all(std::string(kTwoRules) + R"(---
title: Lab hosts
logsource: {product: windows}
filter:
  rules: any
  lab: {Computer|startswith: 'LAB-'}
  condition: not lab
)");
  CompileReport report;
  const auto rules = apply_filters(docs, {}, report);
  EXPECT_EQ(report.rules[0].applies_to.size(), 2u);
  const auto hits = matches(rules, {R"({"EventID":3,"DestinationPort":4444,"Computer":"LAB-7"})",
                                    R"({"EventID":3,"DestinationPort":4444,"Computer":"WS-7"})"});
  EXPECT_EQ(hits, (std::vector<Ids>{{}, {"22222222-2222-4222-8222-222222222222"}}));
}

TEST(SigmaFilters, BadFiltersAreRefusedOrWarnedWithTheirReason) {
  auto filter = [](const std::string& rules, const std::string& logsource) {
    return std::string(kTwoRules) + "---\ntitle: F\nid: f\nlogsource: " + logsource +
           "\nfilter:\n  rules: " + rules + "\n  s: {User: svc}\n  condition: not s\n";
  };
  {
    CompileReport report;
    const auto rules =
        apply_filters(parse_all(filter("[no-such-rule]", "{product: windows}")), {}, report);
    ASSERT_EQ(report.rules.size(), 1u);
    EXPECT_FALSE(report.rules[0].status.is_ok());
    EXPECT_TRUE(contains(report.rules[0].status.message(),
                         "filter 'f' names rule 'no-such-rule', which is not a rule of this set"));
    EXPECT_EQ(report.unsupported, 1u);
    EXPECT_TRUE(rules[0].filters.empty());
  }
  {
    CompileReport report;
    const auto rules = apply_filters(
        parse_all(filter("[dump_tool]", "{category: network_connection}")), {}, report);
    EXPECT_TRUE(report.rules[0].status.is_ok());
    EXPECT_TRUE(report.rules[0].applies_to.empty());
    ASSERT_FALSE(report.rules[0].warnings.empty());
    EXPECT_TRUE(contains(report.rules[0].warnings[0], "is outside the filter's"));
    EXPECT_TRUE(rules[0].filters.empty());
  }
  {
    // The values a filter copies into its rules are bounded: `any` multiplies them.
    CompileReport report;
    const auto rules = apply_filters(parse_all(filter("any", "{product: windows}")), {}, report, 1);
    EXPECT_TRUE(contains(report.rules[0].status.message(),
                         "would add 2 values to 2 rules, past the limit of 1"))
        << report.rules[0].status.message();
    EXPECT_TRUE(rules[0].filters.empty() && rules[1].filters.empty());
  }
  {
    CompileReport report;
    (void)apply_filters(parse_all(filter("[gone]", "{product: windows}")), {"gone"}, report);
    EXPECT_TRUE(report.rules[0].status.is_ok());
    EXPECT_TRUE(contains(report.rules[0].warnings[0], "left out by the rule selection"));
  }
  for (const char* bad :
       {"title: F\nlogsource: {product: windows}\nfilter: {s: {A: b}, condition: s}\n",
        "title: F\nlogsource: {product: windows}\nfilter: {rules: [], s: {A: b}, condition: s}\n",
        "title: F\nlogsource: {product: windows}\nfilter: {rules: [x], s: {A: b}, condition: "
        "[s]}\n",
        "title: F\nfilter: {rules: [x], s: {A: b}, condition: s}\n"}) {
    EXPECT_FALSE(parse_sigma(bad, "f.yml")) << bad;
  }
  // A filter is never compiled as if it were a rule.
  auto mapping = FieldMapping::parse(kMapping, "m.yml");
  CompileReport report;
  auto rs =
      RuleSet::compile(parse_all(filter("[dump_tool]", "{product: windows}")), *mapping, report);
  ASSERT_TRUE(rs);
  EXPECT_EQ(report.unsupported, 1u);
}

TEST(RuleSelectionTest, StatusLevelTagsAndLogsourceEachSayWhy) {
  const std::string deprecated =
      "---\ntitle: Old\nid: old\nstatus: deprecated\nlevel: critical\nlogsource: {product: "
      "windows, category: process_creation}\ndetection: {s: {Image: x}, condition: s}\n";
  auto run = [&](const std::string& select) {
    auto sel = RuleSelection::parse(YAML::Load(select), "manifest.yml");
    EXPECT_TRUE(sel) << sel.status().to_string();
    CompileReport report;
    auto kept = select_rules(parse_all(std::string(kTwoRules) + deprecated), *sel, report);
    Ids ids, why;
    for (const auto& r : kept) ids.push_back(r.id.substr(0, 3));
    for (const auto& d : report.rules) why.push_back(d.rule_id.substr(0, 3) + " " + d.left_out);
    EXPECT_EQ(report.left_out, report.rules.size());
    return std::make_pair(ids, why);
  };
  EXPECT_EQ(run("{}").first, (Ids{"111", "222"}));
  EXPECT_EQ(run("{}").second,
            Ids{"old status deprecated (left out by default; select its status to load it)"});
  EXPECT_EQ(run("{status: [deprecated]}").first, Ids{"old"});
  EXPECT_EQ(run("{min_level: high}").second, (Ids{"222 level medium is below the minimum high",
                                                  "old status deprecated (left out "
                                                  "by default; select its status "
                                                  "to load it)"}));
  EXPECT_EQ(run("{tags: ['attack.t1003*']}").first, Ids{"111"});
  EXPECT_EQ(run("{exclude_tags: [attack.command-and-control]}").second[0],
            "222 tag attack.command-and-control is excluded");
  EXPECT_EQ(run("{category: [network_connection]}").first, Ids{"222"});
  EXPECT_EQ(run("{product: [linux]}").second[0], "111 product 'windows' is not one of linux");

  for (const char* bad : {"{level: high}", "{status: [stabel]}", "{min_level: severe}", "[high]"}) {
    auto sel = RuleSelection::parse(YAML::Load(bad), "manifest.yml");
    EXPECT_FALSE(sel) << bad;
  }
}

// A base rule left out by the selection that a selected correlation needs is compiled as
// its input only: the correlation works, the base rule raises nothing of its own.
TEST(RuleSelectionTest, BaseRulesOfASelectedCorrelationAreKeptAsInputsOnly) {
  const auto docs = parse_all(std::string(kTwoRules) + R"(---
title: Many dumps
id: corr
level: critical
correlation:
  type: event_count
  rules: [dump_tool]
  group-by: [Computer]
  timespan: 5m
  condition: {gte: 3}
generate: true
)");
  RuleSelection sel;
  sel.min_level = "critical";
  CompileReport report;
  auto kept = prepare_rules(docs, sel, report);
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_FALSE(kept[0].selected);
  EXPECT_EQ(report.left_out, 1u);  // the beacon rule
  auto mapping = FieldMapping::parse(kMapping, "m.yml");
  auto rs = RuleSet::compile(kept, *mapping, report);
  ASSERT_TRUE(rs);
  ASSERT_EQ((*rs)->rules().size(), 1u);
  EXPECT_FALSE((*rs)->rules()[0].emit);
  EXPECT_EQ((*rs)->correlations().size(), 1u);
}

class RuleContentBundle : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = FieldMapping::parse(kMapping, "m.yml");
    ASSERT_TRUE(m);
    mapping_ = std::move(*m);
    options_.default_mapping = &mapping_;
    options_.max_rule_cost_ns = 0;
  }
  BundleReport validate(std::vector<BundleFile> files) {
    auto b = Bundle::from_files(std::move(files));
    EXPECT_TRUE(b) << b.status().to_string();
    return validate_bundle(*b, options_);
  }
  FieldMapping mapping_;
  BundleValidationOptions options_;
};

// In a bundle: filters from their own files apply (the rules' tests run on the filtered
// rules), the manifest selects, and each problem is listed with the others.
TEST_F(RuleContentBundle, FiltersAndSelectionInABundle) {
  const std::string filter =
      "title: Backup agent\nid: f1\nlogsource: {product: windows}\nfilter:\n  rules: "
      "[dump_tool]\n  b: {ParentImage|endswith: '\\backupagent.exe'}\n  condition: not b\n";
  const std::string test =
      "rule: 11111111-1111-4111-8111-111111111111\nmatch:\n  - {EventID: 1, CommandLine: 'a "
      "-dump b'}\nno_match:\n  - {EventID: 1, CommandLine: 'a -dump b', ParentImage: "
      "'C:\\\\b\\\\backupagent.exe'}\n";
  std::vector<BundleFile> files = {{"manifest.yml", "name: t\nselect: {min_level: high}\n"},
                                   {"rules/two.yml", kTwoRules},
                                   {"filters/mf_backup.yml", filter},
                                   {"tests/dump.yml", test}};
  BundleReport r = validate(files);
  EXPECT_TRUE(r.ok()) << r.to_json();
  EXPECT_EQ(r.rules_ok, 2u) << r.to_json();  // the dump rule and the filter
  EXPECT_EQ(r.rules_left_out, 1u);
  const auto f = std::find_if(r.rules.begin(), r.rules.end(),
                              [](const RuleValidation& v) { return v.filter; });
  ASSERT_NE(f, r.rules.end());
  EXPECT_EQ(f->applies_to, Ids{"11111111-1111-4111-8111-111111111111"});
  EXPECT_TRUE(contains(r.to_json(), R"("kind":"filter")"));
  EXPECT_TRUE(contains(r.to_json(), R"("left_out":"level medium is below the minimum high")"));

  // Without the filter the no_match test event alerts.
  files[2].content = filter;
  files[2].content.replace(files[2].content.find("[dump_tool]"), 11, "[no_such_rule]");
  files.push_back({"rules/broken.yml", "title: x\nid: y\n---\ntitle: z\n"});
  r = validate(files);
  EXPECT_FALSE(r.ok());
  const auto errors = r.all_errors();
  auto has = [&](std::string_view needle) {
    return std::any_of(errors.begin(), errors.end(),
                       [&](const std::string& e) { return contains(e, needle); });
  };
  EXPECT_TRUE(has("names rule 'no_such_rule'")) << r.to_json();
  EXPECT_TRUE(has("rules/broken.yml, document 1 (line 1): missing 'logsource'")) << r.to_json();
  // `id` is optional (the rule gets one from its title, with a warning); logsource is not.
  EXPECT_TRUE(has("rules/broken.yml, document 2 (line 4): missing 'logsource'")) << r.to_json();
  EXPECT_TRUE(has("matches its 'no_match' test event 0")) << r.to_json();

  // Documents are bounded per file and per bundle, before they cost their parse.
  std::string many;
  for (int i = 0; i < 10'001; ++i) many += "---\nx: 1\n";
  EXPECT_TRUE(contains(validate({{"rules/many.yml", many}}).to_json(),
                       "holds 10001 documents, more than the limit of 10000 per file"));
  options_.max_documents = 2;
  EXPECT_TRUE(
      contains(validate({{"rules/two.yml", kTwoRules}, {"rules/more.yml", kTwoRules}}).to_json(),
               "the bundle holds more than 2 rule documents"));
  options_.max_documents = BundleValidationOptions().max_documents;

  // A manifest selection with an unknown key is refused by name.
  files = {{"manifest.yml", "name: t\nselect: {levels: high}\n"}, {"rules/two.yml", kTwoRules}};
  EXPECT_TRUE(contains(validate(files).to_json(), "unknown key 'select.levels'"));
}

}  // namespace
}  // namespace vigil::match
