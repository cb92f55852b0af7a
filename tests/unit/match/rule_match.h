#pragma once
// Compiling one rule under a two-logsource test mapping (or a test's own) and matching events
// with it: the helpers of ruleset_test.cc, ruleset_modifiers_test.cc and mapping_test.cc.

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "vigil/match/matcher.h"
#include "vigil/match/reference_matcher.h"
#include "vigil/match/ruleset.h"

namespace vigil::match::test_support {

inline constexpr char kMapping[] = R"(
name: test
host_field: host
logsources:
  - name: proc
    match: {product: windows, category: process_creation}
    where: {EventID: 1}
  - name: net
    match: {product: windows, category: network_connection}
    where: {EventID: 3}
)";

// Compiles one rule (detection block given) and matches events against it.
class RuleMatch {
 public:
  // `mapping`: the mapping's YAML text (kMapping unless a test needs its own).
  explicit RuleMatch(const std::string& detection, const std::string& category = "process_creation",
                     const std::string& mapping_text = kMapping) {
    const std::string yaml =
        "title: T\nid: r1\nlogsource:\n  product: windows\n  category: " + category +
        "\ndetection:\n" + detection;
    auto rule = parse_sigma(yaml, "r.yml");
    if (!rule) {
      error_ = rule.status().to_string();
      return;
    }
    auto mapping = FieldMapping::parse(mapping_text, "m.yml");
    EXPECT_TRUE(mapping) << mapping.status().to_string();
    std::vector<SigmaRule> rules{*rule};
    auto rs = RuleSet::compile(rules, *mapping, report_);
    EXPECT_TRUE(rs) << rs.status().to_string();
    if (!report_.rules.empty() && !report_.rules[0].status.is_ok()) {
      error_ = report_.rules[0].status.to_string();
      return;
    }
    rules_ = *rs;
    matcher_ = std::move(*Matcher::create(rules_));
  }
  const std::string& error() const { return error_; }
  const RuleSet& rule_set() const { return *rules_; }
  const Matcher& matcher() const { return *matcher_; }
  const CompileReport& report() const { return report_; }
  Status match_status(const std::string& json) {
    EXPECT_EQ(parser_.parse(json, rules_->fields(), event_), ParseError::kNone) << json;
    std::vector<uint32_t> out;
    return matcher_->match(event_, out);
  }
  bool matches(const std::string& json) {
    EXPECT_TRUE(error_.empty()) << error_;
    if (!error_.empty()) return false;
    EXPECT_EQ(parser_.parse(json, rules_->fields(), event_), ParseError::kNone) << json;
    std::vector<uint32_t> out;
    EXPECT_TRUE(matcher_->match(event_, out).is_ok());
    return !out.empty();
  }
  // The matched fields of the rule for `json` (paths; "*" for a keyword), or {"no match"}.
  std::vector<std::string> matched_fields(const std::string& json) {
    EXPECT_EQ(parser_.parse(json, rules_->fields(), event_), ParseError::kNone) << json;
    std::vector<uint32_t> out;
    EXPECT_TRUE(matcher_->match(event_, out).is_ok());
    if (out.empty()) return {"no match"};
    std::vector<uint32_t> slots;
    matcher_->matched_fields(out[0], slots);
    std::vector<std::string> paths;
    for (uint32_t s : slots)
      paths.push_back(s == RuleSet::kRawSlot ? "*" : rules_->fields().path(s));
    std::sort(paths.begin(), paths.end());
    return paths;
  }

 private:
  CompileReport report_;
  std::shared_ptr<const RuleSet> rules_;
  std::unique_ptr<Matcher> matcher_;
  EventParser parser_;
  Event event_;
  std::string error_;
};

inline std::string proc(const std::string& fields) { return R"({"EventID":1,)" + fields + "}"; }

using Paths = std::vector<std::string>;

// The rules (by id) each of `events` matches, with the compiled matcher; the reference
// matcher must agree event for event.
inline std::vector<std::vector<std::string>> matches(const std::vector<SigmaRule>& rules,
                                                     const std::vector<std::string>& events) {
  auto mapping = FieldMapping::parse(kMapping, "m.yml");
  EXPECT_TRUE(mapping);
  CompileReport report;
  auto rs = RuleSet::compile(rules, *mapping, report);
  EXPECT_TRUE(rs);
  for (const auto& d : report.rules) EXPECT_TRUE(d.status.is_ok()) << d.status.to_string();
  auto matcher = Matcher::create(*rs);
  auto reference = ReferenceMatcher::compile(rules, *mapping);
  std::vector<std::vector<std::string>> out;
  EventParser parser, ref_parser;
  Event event, ref_event;
  for (const auto& json : events) {
    EXPECT_EQ(parser.parse(json, (*rs)->fields(), event), ParseError::kNone);
    std::vector<uint32_t> hits, ref_hits;
    (void)(*matcher)->match(event, hits);
    std::vector<std::string> ids, ref_ids;
    for (uint32_t h : hits) ids.push_back((*rs)->rules()[h].id);
    EXPECT_EQ(ref_parser.parse(json, reference->fields(), ref_event), ParseError::kNone);
    reference->match(ref_event, ref_hits);
    for (uint32_t h : ref_hits) ref_ids.push_back(reference->rule_ids()[h]);
    std::sort(ids.begin(), ids.end());
    std::sort(ref_ids.begin(), ref_ids.end());
    EXPECT_EQ(ids, ref_ids) << json;
    out.push_back(std::move(ids));
  }
  return out;
}

}  // namespace vigil::match::test_support
