#include "vigil/match/sigma.h"

#include <gtest/gtest.h>

namespace vigil::match {
namespace {

std::string rule_with(const std::string& detection, const std::string& extra = "") {
  return "title: T\nid: 11111111-1111-1111-1111-111111111111\nlevel: high\n" + extra +
         "logsource:\n  product: windows\n  category: process_creation\ndetection:\n" + detection;
}

TEST(SigmaParse, Metadata) {
  auto r = parse_sigma(rule_with("  sel:\n    Image: x\n  condition: sel\n",
                                 "tags:\n  - attack.t1\n  - attack.t2\n"),
                       "r.yml");
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->title, "T");
  EXPECT_EQ(r->id, "11111111-1111-1111-1111-111111111111");
  EXPECT_EQ(r->level, "high");
  EXPECT_EQ(r->tags, (std::vector<std::string>{"attack.t1", "attack.t2"}));
  EXPECT_EQ(r->logsource.category, "process_creation");
  ASSERT_EQ(r->predicates.size(), 1u);
  EXPECT_EQ(r->predicates[0].field, "Image");
  EXPECT_EQ(r->predicates[0].regex, "\\Ax\\z");
  EXPECT_TRUE(r->predicates[0].caseless);
}

TEST(SigmaParse, ValueToRegexEscapesAndWildcards) {
  // `?` is one UTF-8 character, whatever its length in bytes.
  EXPECT_EQ(sigma_value_to_regex("a*b?c", true, true),
            "\\Aa.*b(?:[\\x00-\\x7f]|[\\xc2-\\xdf][\\x80-\\xbf]|[\\xe0-\\xef][\\x80-\\xbf]{2}|"
            "[\\xf0-\\xf4][\\x80-\\xbf]{3})c\\z");
  EXPECT_EQ(sigma_value_to_regex("a\\*b", false, false), "a\\x2ab");
  EXPECT_EQ(sigma_value_to_regex("a\\?b", false, false), "a\\x3fb");
  EXPECT_EQ(sigma_value_to_regex("C:\\\\x", false, false), "C\\x3a\\x5cx");  // \\ is one backslash
  EXPECT_EQ(sigma_value_to_regex("C:\\Windows", false, false),
            "C\\x3a\\x5cWindows");  // lone \ is literal
  EXPECT_EQ(sigma_value_to_regex("a.b(c)", false, false), "a\\x2eb\\x28c\\x29");
}

TEST(SigmaParse, UnknownModifierIsNamed) {
  auto r = parse_sigma(rule_with("  sel:\n    CommandLine|contains|field21: x\n  condition: sel\n"),
                       "r.yml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("unknown modifier 'field21'"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("r.yml"), std::string::npos);
}

// The time modifiers (Sigma 2.1) take numbers; rule_content_test.cc matches with them.
TEST(SigmaParse, TimeModifiersTakeNumbers) {
  auto r = parse_sigma(rule_with("  sel:\n    CommandLine|minute: x\n  condition: sel\n"), "r.yml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'x' is not a number"), std::string::npos)
      << r.status().message();
  EXPECT_TRUE(
      parse_sigma(rule_with("  sel:\n    UtcTime|hour|lt: 6\n  condition: sel\n"), "r.yml"));
}

TEST(SigmaParse, ConditionErrors) {
  const std::pair<const char*, const char*> cases[] = {
      {"sel and", "expected an identifier"},
      {"sel or missing", "unknown search identifier 'missing'"},
      {"(sel", "missing ')'"},
      {"1 of nothing*", "matches no search identifier"},
      {"sel | count() > 5", "aggregation"},
      {"sel $", "unexpected character"},
      {"0 of sel*", "at least 1"},
  };
  for (const auto& [cond, why] : cases) {
    auto r = parse_sigma(
        rule_with(std::string("  sel:\n    Image: x\n  condition: ") + cond + "\n"), "r.yml");
    ASSERT_FALSE(r) << cond;
    EXPECT_NE(r.status().message().find(why), std::string::npos)
        << cond << ": " << r.status().message();
  }
}

TEST(SigmaParse, DeeplyNestedConditionIsRefusedNotAStackOverflow) {
  auto nested = [](int depth, const std::string& open, const std::string& close) {
    std::string c;
    for (int i = 0; i < depth; ++i) c += open;
    c += "sel";
    for (int i = 0; i < depth; ++i) c += close;
    return parse_sigma(rule_with("  sel:\n    Image: x\n  condition: " + c + "\n"), "r.yml");
  };
  EXPECT_TRUE(nested(60, "(", ")"));
  EXPECT_TRUE(nested(30, "not (", ")"));
  for (auto r : {nested(100000, "(", ")"), nested(100000, "not ", ""), nested(40, "not (", ")")}) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find("nested deeper than 64"), std::string::npos)
        << r.status().message().substr(0, 200);
  }
}

TEST(SigmaParse, StructuralErrors) {
  EXPECT_FALSE(parse_sigma("just a string", "r.yml"));
  EXPECT_FALSE(parse_sigma("title: [unclosed", "r.yml"));
  EXPECT_FALSE(parse_sigma(rule_with("  sel:\n    Image: x\n"), "r.yml"));  // no condition
  EXPECT_FALSE(parse_sigma(rule_with("  sel:\n    Image: []\n  condition: sel\n"), "r.yml"));
  EXPECT_FALSE(
      parse_sigma(rule_with("  sel:\n    Image:\n      a: b\n  condition: sel\n"), "r.yml"));
  EXPECT_FALSE(parse_sigma(
      rule_with("  sel:\n    Image|contains|startswith: x\n  condition: sel\n"), "r.yml"));
  EXPECT_FALSE(
      parse_sigma(rule_with("  sel:\n    Image|exists: maybe\n  condition: sel\n"), "r.yml"));
  // A correlation rule without its rules, timespan and condition is refused, naming what is
  // missing.
  auto corr = parse_sigma("title: c\nid: x\ncorrelation:\n  type: event_count\n", "c.yml");
  ASSERT_FALSE(corr);
  EXPECT_EQ(corr.status().code(), Code::kInvalidArgument);
  EXPECT_NE(corr.status().message().find("'rules'"), std::string::npos)
      << corr.status().to_string();
}

// Found by tests/fuzz/sigma_parser_fuzz: yaml-cpp 0.7's LoadAll never returns on these.
TEST(SigmaParse, InputsThatHangYamlCppLoadAllAreRefused) {
  for (const char* text : {",h", ",", "\n,\n", "- ,"}) {
    auto r = parse_sigma(text, "r.yml");
    EXPECT_FALSE(r) << text;
  }
}

// parse_sigma reads one rule; parse_sigma_documents (rule_content_test.cc) reads a stream.
TEST(SigmaParse, ParseSigmaRefusesAFileOfSeveralRules) {
  auto r = parse_sigma(
      rule_with("  sel:\n    Image: x\n  condition: sel\n") + "---\ntitle: second\n", "r.yml");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("holds 2 rules"), std::string::npos);
  // A trailing document separator alone is still one rule.
  EXPECT_TRUE(
      parse_sigma(rule_with("  sel:\n    Image: x\n  condition: sel\n") + "---\n", "r.yml"));
}

TEST(SigmaParse, UnknownMetadataIsAWarningNotAnError) {
  auto r = parse_sigma(rule_with("  sel:\n    Image: x\n  condition: sel\n", "new_doc_key: 1\n"),
                       "r.yml");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("new_doc_key"), std::string::npos);
}

}  // namespace
}  // namespace vigil::match
