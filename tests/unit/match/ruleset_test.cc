// RuleSet and Matcher: values, modifiers, conditions, lazy checks (see also
// ruleset_modifiers_test.cc).

#include "vigil/match/ruleset.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "rule_match.h"
#include "vigil/match/matcher.h"

namespace vigil::match {
namespace {

using test_support::kMapping;
using test_support::Paths;
using test_support::proc;
using test_support::RuleMatch;

TEST(RuleSet, MatchedFieldsAreThoseThatHeldOutsideNot) {
  RuleMatch m(R"(  sel_img:
    Image|endswith: '\cmd.exe'
  sel_cli:
    CommandLine|contains: ['/c ', '/k ']
  sel_parent:
    ParentImage|endswith: '\winword.exe'
  filter:
    User: SYSTEM
  condition: 1 of sel_* and not filter
)");
  // Two of the three selections hold: both fields are reported, not the third.
  EXPECT_EQ(
      m.matched_fields(proc(
          R"("Image":"C:\\Windows\\cmd.exe","CommandLine":"cmd /c whoami","ParentImage":"explorer.exe")")),
      (Paths{"CommandLine", "Image"}));
  EXPECT_EQ(m.matched_fields(proc(R"("ParentImage":"C:\\Office\\WINWORD.EXE","CommandLine":"x")")),
            (Paths{"ParentImage"}));
  // The filter's field is not a reason for the match, even when it holds in another
  // branch: under `not` it can only have prevented one.
  EXPECT_EQ(m.matched_fields(proc(R"("Image":"C:\\Windows\\cmd.exe","User":"SYSTEM")")),
            (Paths{"no match"}));
  EXPECT_EQ(m.matched_fields(proc(R"("Image":"C:\\Windows\\cmd.exe","User":"bob")")),
            (Paths{"Image"}));
}

TEST(RuleSet, MatchedFieldsOfKeywordsNumbersAndNullChecks) {
  RuleMatch keywords(R"(  kw:
    - 'mimikatz'
  condition: kw
)");
  EXPECT_EQ(keywords.matched_fields(proc(R"("CommandLine":"run MimiKatz now")")), (Paths{"*"}));
  RuleMatch mixed(R"(  sel:
    Image|endswith: '.exe'
    Port|gte: 4444
    Hashes: null
  condition: sel
)");
  // `Hashes: null` holds because the field is absent: nothing in the event to point at.
  EXPECT_EQ(mixed.matched_fields(proc(R"("Image":"a.exe","Port":4444)")), (Paths{"Image", "Port"}));
}

TEST(RuleSet, PlainValueIsCaseInsensitiveEquality) {
  RuleMatch m("  sel:\n    Image: 'C:\\Windows\\cmd.exe'\n  condition: sel\n");
  EXPECT_TRUE(m.matches(proc(R"("Image":"c:\\windows\\CMD.EXE")")));
  EXPECT_FALSE(m.matches(proc(R"("Image":"C:\\Windows\\cmd.exe2")")));
  EXPECT_FALSE(m.matches(proc(R"("Image":"xC:\\Windows\\cmd.exe")")));
  EXPECT_FALSE(m.matches(proc(R"("Other":"C:\\Windows\\cmd.exe")")));
}

TEST(RuleSet, LogsourceGatesRules) {
  RuleMatch m("  sel:\n    Image: a\n  condition: sel\n");
  EXPECT_TRUE(m.matches(R"({"EventID":1,"Image":"a"})"));
  EXPECT_TRUE(m.matches(R"({"EventID":"1","Image":"a"})"));
  EXPECT_FALSE(m.matches(R"({"EventID":3,"Image":"a"})"));
  EXPECT_FALSE(m.matches(R"({"Image":"a"})"));
}

TEST(RuleSet, ContainsStartsEndsWith) {
  RuleMatch c("  sel:\n    CommandLine|contains: 'mimikatz'\n  condition: sel\n");
  EXPECT_TRUE(c.matches(proc(R"("CommandLine":"run MimiKatz.exe now")")));
  EXPECT_FALSE(c.matches(proc(R"("CommandLine":"mimi katz")")));
  RuleMatch s("  sel:\n    CommandLine|startswith: 'cmd /c'\n  condition: sel\n");
  EXPECT_TRUE(s.matches(proc(R"("CommandLine":"CMD /C dir")")));
  EXPECT_FALSE(s.matches(proc(R"("CommandLine":"x cmd /c dir")")));
  RuleMatch e("  sel:\n    Image|endswith: '\\whoami.exe'\n  condition: sel\n");
  EXPECT_TRUE(e.matches(proc(R"("Image":"C:\\Windows\\System32\\WHOAMI.exe")")));
  EXPECT_FALSE(e.matches(proc(R"("Image":"C:\\whoami.exe.bak")")));
  // A trailing newline is text, not an end anchor.
  EXPECT_FALSE(e.matches(proc(R"("Image":"C:\\whoami.exe\n")")));
}

TEST(RuleSet, WildcardsAndEscapes) {
  RuleMatch w("  sel:\n    CommandLine: '*-enc*'\n  condition: sel\n");
  EXPECT_TRUE(w.matches(proc(R"("CommandLine":"powershell -enc AAA")")));
  RuleMatch q("  sel:\n    Image: 'a?c'\n  condition: sel\n");
  EXPECT_TRUE(q.matches(proc(R"("Image":"abc")")));
  EXPECT_FALSE(q.matches(proc(R"("Image":"ac")")));
  RuleMatch lit("  sel:\n    Image: 'a\\*c'\n  condition: sel\n");
  EXPECT_TRUE(lit.matches(proc(R"("Image":"a*c")")));
  EXPECT_FALSE(lit.matches(proc(R"("Image":"abc")")));
  RuleMatch star("  sel:\n    Image: '*'\n  condition: sel\n");
  EXPECT_TRUE(star.matches(proc(R"("Image":"")")));
  EXPECT_FALSE(star.matches(proc(R"("Other":"x")")));
  EXPECT_FALSE(star.matches(proc(R"("Image":null)")));
}

TEST(RuleSet, ListsAreOrAndAllMakesThemAnd) {
  RuleMatch any("  sel:\n    CommandLine|contains:\n      - aaa\n      - bbb\n  condition: sel\n");
  EXPECT_TRUE(any.matches(proc(R"("CommandLine":"xx bbb")")));
  EXPECT_FALSE(any.matches(proc(R"("CommandLine":"ccc")")));
  RuleMatch all(
      "  sel:\n    CommandLine|contains|all:\n      - aaa\n      - bbb\n  condition: sel\n");
  EXPECT_TRUE(all.matches(proc(R"("CommandLine":"bbb then aaa")")));
  EXPECT_FALSE(all.matches(proc(R"("CommandLine":"only aaa")")));
}

TEST(RuleSet, MapIsAndListOfMapsIsOr) {
  RuleMatch map(
      "  sel:\n    Image|endswith: x.exe\n    CommandLine|contains: y\n  condition: sel\n");
  EXPECT_TRUE(map.matches(proc(R"("Image":"a\\x.exe","CommandLine":"yy")")));
  EXPECT_FALSE(map.matches(proc(R"("Image":"a\\x.exe","CommandLine":"zz")")));
  RuleMatch list(
      "  sel:\n    - Image|endswith: x.exe\n    - CommandLine|contains: y\n  condition: sel\n");
  EXPECT_TRUE(list.matches(proc(R"("Image":"a\\x.exe","CommandLine":"zz")")));
  EXPECT_TRUE(list.matches(proc(R"("Image":"a","CommandLine":"y")")));
  EXPECT_FALSE(list.matches(proc(R"("Image":"a","CommandLine":"z")")));
}

TEST(RuleSet, ConditionGrammar) {
  const std::string searches =
      "  selection_a:\n    A: '1'\n  selection_b:\n    B: '1'\n  filter_c:\n    C: '1'\n  "
      "_hidden:\n    D: '1'\n";
  struct Case {
    const char* condition;
    const char* event;
    bool expected;
  };
  const Case cases[] = {
      {"selection_a and not filter_c", R"("A":"1")", true},
      {"selection_a and not filter_c", R"("A":"1","C":"1")", false},
      {"selection_a or selection_b and filter_c", R"("A":"1")", true},  // and binds tighter
      {"(selection_a or selection_b) and filter_c", R"("A":"1")", false},
      {"1 of selection_*", R"("B":"1")", true},
      {"all of selection_*", R"("B":"1")", false},
      {"all of selection_*", R"("A":"1","B":"1")", true},
      {"1 of selection_* and not 1 of filter_*", R"("A":"1","C":"1")", false},
      {"all of them", R"("A":"1","B":"1","C":"1")", true},  // _hidden is not part of 'them'
      {"1 of them", R"("D":"1")", false},
      {"2 of them", R"("A":"1","C":"1")", true},
      {"2 of them", R"("A":"1")", false},
      {"not selection_a", R"("X":"1")", true},  // holds with no predicate true
      {"not not selection_a", R"("A":"1")", true},
      {"selection_a AND NOT filter_c", R"("A":"1")", true},
  };
  for (const auto& c : cases) {
    RuleMatch m(searches + "  condition: " + c.condition + "\n");
    EXPECT_EQ(m.matches(proc(c.event)), c.expected) << c.condition << " on " << c.event;
  }
}

TEST(RuleSet, ConditionListIsOr) {
  RuleMatch m("  a:\n    A: '1'\n  b:\n    B: '1'\n  condition:\n    - a\n    - b\n");
  EXPECT_TRUE(m.matches(proc(R"("B":"1")")));
  EXPECT_FALSE(m.matches(proc(R"("C":"1")")));
}

TEST(RuleSet, NullExistsAndEmpty) {
  RuleMatch null("  sel:\n    Image: x\n    ParentImage: null\n  condition: sel\n");
  EXPECT_TRUE(null.matches(proc(R"("Image":"x")")));
  EXPECT_TRUE(null.matches(proc(R"("Image":"x","ParentImage":null)")));
  EXPECT_FALSE(null.matches(proc(R"("Image":"x","ParentImage":"p")")));
  RuleMatch exists("  sel:\n    Image|exists: true\n  condition: sel\n");
  EXPECT_TRUE(exists.matches(proc(R"("Image":"")")));
  EXPECT_FALSE(exists.matches(proc(R"("Other":"")")));
  RuleMatch absent("  sel:\n    Image|exists: false\n  condition: sel\n");
  EXPECT_TRUE(absent.matches(proc(R"("Other":"")")));
  RuleMatch empty("  sel:\n    Image: ''\n  condition: sel\n");
  EXPECT_TRUE(empty.matches(proc(R"("Image":"")")));
  EXPECT_FALSE(empty.matches(proc(R"("Image":"a")")));
  EXPECT_FALSE(empty.matches(proc(R"("Other":"")")));
}

TEST(RuleSet, NumbersMatchTheirText) {
  RuleMatch m("  sel:\n    DestinationPort: 4444\n  condition: sel\n", "network_connection");
  EXPECT_TRUE(m.matches(R"({"EventID":3,"DestinationPort":4444})"));
  EXPECT_TRUE(m.matches(R"({"EventID":3,"DestinationPort":"4444"})"));
  EXPECT_FALSE(m.matches(R"({"EventID":3,"DestinationPort":44444})"));
}

TEST(RuleSet, CasedAndRegex) {
  RuleMatch cased("  sel:\n    Image|cased|contains: Abc\n  condition: sel\n");
  EXPECT_TRUE(cased.matches(proc(R"("Image":"xAbcx")")));
  EXPECT_FALSE(cased.matches(proc(R"("Image":"xabcx")")));
  RuleMatch re("  sel:\n    CommandLine|re: '^cmd\\.exe /[cC] [a-z]+$'\n  condition: sel\n");
  EXPECT_TRUE(re.matches(proc(R"("CommandLine":"cmd.exe /c dir")")));
  EXPECT_FALSE(re.matches(proc(R"("CommandLine":"CMD.exe /c dir")")));  // re is case-sensitive
  RuleMatch rei("  sel:\n    CommandLine|re|i: '^cmd\\.exe'\n  condition: sel\n");
  EXPECT_TRUE(rei.matches(proc(R"("CommandLine":"CMD.EXE /c")")));
}

// A regex in a rule that a cheaper predicate can trigger is left out of its field's database
// and scanned only when the rule is evaluated; it decides the match as before. A regex that
// is a rule's only trigger stays in the database.
TEST(RuleSet, RegexesOtherPredicatesTriggerAreScannedOnDemand) {
  RuleMatch m(R"(  sel_img:
    Image|endswith: '\powershell.exe'
  sel_re:
    CommandLine|re: '-[eE][ncodema]*\s+[A-Za-z0-9+/=]{8,}'
  condition: sel_img and sel_re
)");
  ASSERT_TRUE(m.error().empty()) << m.error();
  EXPECT_EQ(m.rule_set().lazy_pattern_count(), 1u);
  const std::string ps = R"("Image":"C:\\x\\powershell.exe",)";
  EXPECT_EQ(m.matched_fields(proc(ps + R"("CommandLine":"powershell -enc SQBFAFgAIAAo")")),
            (Paths{"CommandLine", "Image"}));
  EXPECT_FALSE(m.matches(proc(ps + R"("CommandLine":"powershell -enc abc")")));
  EXPECT_FALSE(
      m.matches(proc(R"("Image":"C:\\x\\cmd.exe","CommandLine":"powershell -enc SQBFAFgAIAAo")")));
  EXPECT_FALSE(m.matches(proc(ps.substr(0, ps.size() - 1))));  // no CommandLine at all
  EXPECT_TRUE(m.matches(proc(ps + R"("CommandLine":"x -e QUJDREVGR0g=")")));  // not a stale result
  EXPECT_FALSE(m.matches(proc(ps + R"("CommandLine":"x -e QUJD")")));

  RuleMatch negated(R"(  sel:
    Image|endswith: '\x.exe'
  filter:
    CommandLine|re: 'a[0-9]+b'
  condition: sel and not filter
)");
  EXPECT_EQ(negated.rule_set().lazy_pattern_count(), 1u);
  EXPECT_TRUE(negated.matches(proc(R"("Image":"C:\\x.exe","CommandLine":"zz")")));
  EXPECT_FALSE(negated.matches(proc(R"("Image":"C:\\x.exe","CommandLine":"za12bz")")));
  EXPECT_TRUE(negated.matches(proc(R"("Image":"C:\\x.exe")")));

  RuleMatch alone("  sel:\n    CommandLine|re: 'a[0-9]+b'\n  condition: sel\n");
  EXPECT_EQ(alone.rule_set().lazy_pattern_count(), 0u);
  EXPECT_TRUE(alone.matches(proc(R"("CommandLine":"a1b")")));
  EXPECT_FALSE(alone.matches(proc(R"("CommandLine":"ab")")));
}

TEST(RuleSet, StringsOtherPredicatesTriggerAreCheckedOnDemand) {
  // The long, anchored Image string is the trigger; the other strings are compared only when
  // the rule is evaluated, in the condition's order.
  RuleMatch m(R"(  sel_img:
    Image|endswith: '\rundll32.exe'
  sel_cli:
    CommandLine|contains:
      - 'javascript:'
      - ',#1'
  sel_start:
    CommandLine|startswith: 'rundll32'
  filter:
    User: 'SYSTEM'
  condition: sel_img and sel_cli and sel_start and not filter
)");
  ASSERT_TRUE(m.error().empty()) << m.error();
  EXPECT_EQ(m.rule_set().lazy_literal_count(), 4u);
  const std::string img = R"("Image":"C:\\Windows\\rundll32.exe",)";
  auto ev = [&](const std::string& cli, const std::string& user) {
    return proc(img + R"("CommandLine":")" + cli + R"(","User":")" + user + R"(")");
  };
  EXPECT_EQ(m.matched_fields(ev("RUNDLL32 a.dll,#1", "bob")), (Paths{"CommandLine", "Image"}));
  EXPECT_FALSE(m.matches(ev("x rundll32 a.dll,#1", "bob")));       // not at the start
  EXPECT_FALSE(m.matches(ev("rundll32 JavaScript:x", "system")));  // equals, caseless
  EXPECT_TRUE(m.matches(ev("rundll32 JavaScript:x", "systemx")));  // equals is whole
  EXPECT_FALSE(m.matches(ev("rundll32 a.dll", "bob")));            // not a stale result
  EXPECT_FALSE(m.matches(proc(img + R"("User":"bob")")));          // no CommandLine
  EXPECT_FALSE(m.matches(proc(R"("Image":"C:\\cmd.exe","CommandLine":"rundll32 ,#1")")));

  // A value too long to compare string by string is scanned once, with a database of the
  // field's lazy strings, which then answers for all of them (anchors included).
  const std::string pad(5000, 'p');
  EXPECT_TRUE(m.matches(ev("rundll32 " + pad + ",#1", "bob")));
  EXPECT_FALSE(m.matches(ev("x rundll32 " + pad + ",#1", "bob")));
  EXPECT_FALSE(m.matches(ev("rundll32 " + pad + ",#", "bob")));
  EXPECT_TRUE(m.matches(ev("RunDll32 " + pad + "JAVASCRIPT:" + pad, "bob")));
  EXPECT_FALSE(m.matches(ev("RunDll32 " + pad + "JAVASCRIPT:" + pad, "System")));

  // `cased` strings are compared as they are, directly and by the field's database.
  RuleMatch cased(R"(  sel:
    Image|endswith: '\tool_with_a_long_name.exe'
  marker:
    CommandLine|contains|cased: 'Zq'
  condition: sel and marker
)");
  ASSERT_TRUE(cased.error().empty()) << cased.error();
  EXPECT_EQ(cased.rule_set().lazy_literal_count(), 1u);
  const std::string tool = R"("Image":"C:\\tool_with_a_long_name.exe","CommandLine":")";
  EXPECT_TRUE(cased.matches(proc(tool + R"(aZqb")")));
  EXPECT_FALSE(cased.matches(proc(tool + R"(azqb")")));
  EXPECT_TRUE(cased.matches(proc(tool + pad + R"(Zq")")));
  EXPECT_FALSE(cased.matches(proc(tool + pad + R"(ZQ")")));

  // `1 of` over lazy strings, and a rule that holds with none of them checked.
  RuleMatch any(R"(  sel:
    Image|endswith: '\another_long_tool.exe'
  opt_a:
    CommandLine|contains: 'aa'
  opt_b:
    CommandLine|endswith: 'bb'
  condition: sel and (1 of opt_* or not opt_a)
)");
  ASSERT_TRUE(any.error().empty()) << any.error();
  const std::string another = R"("Image":"x\\another_long_tool.exe","CommandLine":")";
  EXPECT_TRUE(any.matches(proc(another + R"(xbb")")));
  EXPECT_TRUE(any.matches(proc(another + R"(aab")")));
  EXPECT_TRUE(any.matches(proc(another + R"(xyz")")));
}

TEST(RuleSet, LazyStringsAreFoundWhateverTheirBytePairs) {
  // Lazy `contains` strings are searched for only if the value has their byte pairs (see
  // RuleSet::PairFilter): each must still be found, in any case, anywhere in the value, and
  // a value holding a string's pairs but not the string must not match.
  const std::vector<std::string> strings = {"ab",
                                            "x.Y",
                                            "-EncodedCommand",
                                            "Invoke-WebRequest",
                                            "//127.0.0.1/c$",
                                            "%COMSPEC%",
                                            "\xc3\xa9t\xc3\xa9",
                                            "zz_last_one_with_a_rather_long_text_zz"};
  std::string list;
  for (const auto& s : strings) list += "      - '" + s + "'\n";
  RuleMatch m(
      "  sel:\n    Image|endswith: 'a_tool_with_a_long_name.exe'\n"
      "  cli:\n    CommandLine|contains:\n" +
      list + "  condition: sel and cli\n");
  ASSERT_TRUE(m.error().empty()) << m.error();
  // One lazy literal per string, but four for "été": a caseless value spells out the case
  // variants of its non-ASCII letters (é, É at each of two places).
  EXPECT_EQ(m.rule_set().lazy_literal_count(), strings.size() + 3);
  auto ev = [](const std::string& cli) {
    return proc(R"("Image":"C:\\a_tool_with_a_long_name.exe","CommandLine":")" + cli + "\"");
  };
  auto upper = [](std::string s) {
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
  };
  for (const auto& s : strings) {
    SCOPED_TRACE(s);
    EXPECT_TRUE(m.matches(ev(s)));                             // the whole value
    EXPECT_TRUE(m.matches(ev("cmd /c " + upper(s))));          // at the end
    EXPECT_TRUE(m.matches(ev(upper(s) + " then more text")));  // at the start
  }
  // Every pair of "Invoke-WebRequest" and of "ab", but neither string.
  EXPECT_FALSE(m.matches(ev("invoke-we bre bquest a_b a")));
  EXPECT_FALSE(m.matches(ev("nothing here at all")));
}

TEST(RuleSet, Windash) {
  RuleMatch m("  sel:\n    CommandLine|windash|contains: ' -enc '\n  condition: sel\n");
  EXPECT_TRUE(m.matches(proc(R"("CommandLine":"powershell -enc AAA")")));
  EXPECT_TRUE(m.matches(proc(R"("CommandLine":"powershell /enc AAA")")));
  // An en dash (U+2013), which cmd.exe and PowerShell accept in place of "-".
  EXPECT_TRUE(
      m.matches(proc("\"CommandLine\":\"powershell \xe2\x80\x93"
                     "enc AAA\"")));
  EXPECT_FALSE(m.matches(proc(R"("CommandLine":"powershell enc AAA")")));
}

}  // namespace
}  // namespace vigil::match
