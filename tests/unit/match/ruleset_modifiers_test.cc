// RuleSet and Matcher: encodings, field references, networks, numbers, PCRE2 confirmations,
// keywords, placeholders, and rules that fail alone.

#include <gtest/gtest.h>

#include <algorithm>

#include "rule_match.h"
#include "vigil/match/matcher.h"
#include "vigil/match/ruleset.h"

namespace vigil::match {
namespace {

using test_support::kMapping;
using test_support::Paths;
using test_support::proc;
using test_support::RuleMatch;

std::string test_base64(const std::string& in) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -6;
  for (unsigned char c : in) {
    val = (val << 8) + c;
    bits += 8;
    while (bits >= 0) {
      out.push_back(a[(val >> bits) & 0x3f]);
      bits -= 6;
    }
  }
  if (bits > -6) out.push_back(a[((val << 8) >> (bits + 8)) & 0x3f]);
  while (out.size() % 4) out.push_back('=');
  return out;
}

std::string utf16le(const std::string& ascii) {
  std::string out;
  for (char c : ascii) {
    out += c;
    out += '\0';
  }
  return out;
}

TEST(RuleSet, Base64MatchesTheEncodedValue) {
  RuleMatch m("  sel:\n    CommandLine|base64: 'ping'\n  condition: sel\n");
  EXPECT_TRUE(m.matches(proc(R"("CommandLine":")" + test_base64("ping") + "\"")));
  EXPECT_FALSE(m.matches(proc(R"("CommandLine":")" + test_base64("pong") + "\"")));
}

TEST(RuleSet, Base64OffsetFindsTheValueAtEveryAlignment) {
  RuleMatch m("  sel:\n    CommandLine|base64offset|contains: 'http://'\n  condition: sel\n");
  for (const std::string prefix : {"", "a", "ab", "abc"}) {
    for (const std::string suffix : {"", "x", "xy"}) {
      const std::string encoded = test_base64(prefix + "http://" + suffix);
      EXPECT_TRUE(m.matches(proc(R"("CommandLine":"powershell -e )" + encoded + "\"")))
          << prefix << "|" << suffix << " " << encoded;
    }
  }
  EXPECT_FALSE(m.matches(proc(R"("CommandLine":")" + test_base64("ftp://host/file") + "\"")));
  // Base64 is case-sensitive: a case-folded encoding is another text.
  std::string lower = test_base64("xxhttp://");
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_FALSE(m.matches(proc(R"("CommandLine":")" + lower + "\"")));
}

TEST(RuleSet, WideBase64OffsetMatchesEncodedPowerShell) {
  RuleMatch m("  sel:\n    CommandLine|wide|base64offset|contains: 'IEX'\n  condition: sel\n");
  for (const std::string prefix : {"", "$a=1;", "x;"}) {
    const std::string encoded = test_base64(utf16le(prefix + "IEX (New-Object Net.WebClient)"));
    EXPECT_TRUE(m.matches(proc(R"("CommandLine":"powershell -enc )" + encoded + "\""))) << prefix;
  }
  EXPECT_FALSE(m.matches(
      proc(R"("CommandLine":"powershell -enc )" + test_base64("IEX (New-Object)") + "\"")));
  RuleMatch wide("  sel:\n    Data|wide|contains: 'ab'\n  condition: sel\n");
  EXPECT_TRUE(wide.matches(proc(R"("Data":"xa\u0000b\u0000y")")));
  EXPECT_FALSE(wide.matches(proc(R"("Data":"xaby")")));
}

TEST(RuleSet, FieldRef) {
  RuleMatch m("  sel:\n    SubjectUserName|fieldref: TargetUserName\n  condition: sel\n");
  EXPECT_TRUE(m.matches(proc(R"("SubjectUserName":"Alice","TargetUserName":"alice")")));
  EXPECT_FALSE(m.matches(proc(R"("SubjectUserName":"alice","TargetUserName":"bob")")));
  EXPECT_FALSE(m.matches(proc(R"("SubjectUserName":"alice")")));
}

TEST(RuleSet, Cidr) {
  RuleMatch m(
      "  sel:\n    DestinationIp|cidr:\n      - '10.0.0.0/8'\n      - '192.168.1.0/25'\n      - "
      "'fe80::/10'\n  condition: sel\n");
  EXPECT_TRUE(m.matches(proc(R"("DestinationIp":"10.200.3.4")")));
  EXPECT_TRUE(m.matches(proc(R"("DestinationIp":"192.168.1.127")")));
  EXPECT_FALSE(m.matches(proc(R"("DestinationIp":"192.168.1.128")")));
  EXPECT_FALSE(m.matches(proc(R"("DestinationIp":"11.0.0.1")")));
  EXPECT_TRUE(m.matches(proc(R"("DestinationIp":"fe80::1")")));
  EXPECT_FALSE(m.matches(proc(R"("DestinationIp":"fec0::1")")));
  EXPECT_FALSE(m.matches(proc(R"("DestinationIp":"not an ip")")));
  EXPECT_FALSE(m.matches(proc(R"("DestinationIp":")" + std::string(100, '1') + "\"")));
  RuleMatch bad("  sel:\n    DestinationIp|cidr: '10.0.0.0/33'\n  condition: sel\n");
  EXPECT_NE(bad.error().find("not a CIDR network"), std::string::npos) << bad.error();
}

// Sigma 2.1 `neq`: the field is none of the values (strings or numbers, cased, fieldref); a
// missing field is not equal to anything, as pySigma's `not field=value`.
TEST(RuleSet, NeqIsNoneOfTheValues) {
  RuleMatch one("  sel:\n    User|neq: 'CORP\\admin'\n  condition: sel\n");
  ASSERT_TRUE(one.error().empty()) << one.error();
  EXPECT_TRUE(one.matches(proc(R"("User":"CORP\\alice")")));
  EXPECT_FALSE(one.matches(proc(R"("User":"corp\\ADMIN")")));
  EXPECT_TRUE(one.matches(proc(R"("Image":"x")")));
  RuleMatch list(
      "  sel:\n    EventType|neq: [4624, 4625]\n    Image|endswith: '\\x.exe'\n"
      "  condition: sel\n");
  EXPECT_TRUE(list.matches(proc(R"("EventType":4634,"Image":"C:\\x.exe")")));
  EXPECT_FALSE(list.matches(proc(R"("EventType":"4625","Image":"C:\\x.exe")")));
  EXPECT_FALSE(list.matches(proc(R"("EventType":4624,"Image":"C:\\x.exe")")));
  RuleMatch cased("  sel:\n    User|neq|cased: Admin\n  condition: sel\n");
  EXPECT_TRUE(cased.matches(proc(R"("User":"admin")")));
  EXPECT_FALSE(cased.matches(proc(R"("User":"Admin")")));
  RuleMatch ref("  sel:\n    SubjectUserName|fieldref|neq: TargetUserName\n  condition: sel\n");
  EXPECT_TRUE(ref.matches(proc(R"("SubjectUserName":"alice","TargetUserName":"bob")")));
  EXPECT_FALSE(ref.matches(proc(R"("SubjectUserName":"Alice","TargetUserName":"alice")")));
  for (const char* bad : {"User|contains|neq: adm", "User|neq|all: [a, b]", "Count|gt|neq: 3",
                          "User|re|neq: 'a.*'"}) {
    RuleMatch m(std::string("  sel:\n    ") + bad + "\n  condition: sel\n");
    EXPECT_NE(m.error().find("'neq' compares whole values"), std::string::npos) << bad;
  }
}

// Sigma 2.1 `exists` checks presence only, "be it empty or null"; `field: null` is a null or
// absent field, `field: '*'` any value.
TEST(RuleSet, ExistsIsPresenceEvenOfNull) {
  RuleMatch present("  sel:\n    Field|exists: true\n  condition: sel\n");
  EXPECT_TRUE(present.matches(proc(R"("Field":null)")));
  EXPECT_TRUE(present.matches(proc(R"("Field":"")")));
  EXPECT_TRUE(present.matches(proc(R"("Field":"x")")));
  EXPECT_FALSE(present.matches(proc(R"("Other":1)")));
  RuleMatch absent("  sel:\n    Field|exists: false\n  condition: sel\n");
  EXPECT_FALSE(absent.matches(proc(R"("Field":null)")));
  EXPECT_TRUE(absent.matches(proc(R"("Other":1)")));
  RuleMatch null_value("  sel:\n    Field: null\n  condition: sel\n");
  EXPECT_TRUE(null_value.matches(proc(R"("Field":null)")));
  EXPECT_TRUE(null_value.matches(proc(R"("Other":1)")));
  EXPECT_FALSE(null_value.matches(proc(R"("Field":"")")));
  RuleMatch any("  sel:\n    Field: '*'\n  condition: sel\n");
  EXPECT_FALSE(any.matches(proc(R"("Field":null)")));
  EXPECT_TRUE(any.matches(proc(R"("Field":"x")")));
}

// `?` is one character (two-, three- and four-byte UTF-8 ones too), not one byte.
TEST(RuleSet, QuestionMarkIsOneCharacter) {
  RuleMatch one("  sel:\n    F: 'a?c'\n  condition: sel\n");
  for (const char* hit : {"abc",
                          "a\xc3\xa9"
                          "c",
                          "a\xc3\x89"
                          "c",
                          "a\xe2\x82\xac"
                          "c",
                          "a\xf0\x9f\x98\x80"
                          "c"}) {
    EXPECT_TRUE(one.matches(proc(R"("F":")" + std::string(hit) + "\""))) << hit;
  }
  for (const char* miss : {"ac", "abbc",
                           "a\xc3\xa9\xc3\xa9"
                           "c"}) {
    EXPECT_FALSE(one.matches(proc(R"("F":")" + std::string(miss) + "\""))) << miss;
  }
  RuleMatch two("  sel:\n    F|contains: 'a??c'\n  condition: sel\n");
  EXPECT_FALSE(two.matches(proc(R"("F":"xa\u00c9cx")")));
  EXPECT_TRUE(two.matches(proc(R"("F":"xa\u00c9\u00c9cx")")));
  // In a `not` branch: a `?` over a non-ASCII character must still exclude.
  RuleMatch excluded(
      "  sel: {F|startswith: 'C:\\'}\n  filter: {F|endswith: '\\Gr?ppe'}\n"
      "  condition: sel and not filter\n");
  EXPECT_FALSE(excluded.matches(proc(R"("F":"C:\\x\\Gr\u00fcppe")")));
  EXPECT_TRUE(excluded.matches(proc(R"("F":"C:\\x\\Gruuppe")")));
}

TEST(RuleSet, NumericComparisons) {
  RuleMatch lt("  sel:\n    Count|lt: 10\n  condition: sel\n");
  EXPECT_TRUE(lt.matches(proc(R"("Count":9)")));
  EXPECT_TRUE(lt.matches(proc(R"("Count":"9.5")")));
  EXPECT_FALSE(lt.matches(proc(R"("Count":10)")));
  EXPECT_FALSE(lt.matches(proc(R"("Count":"ten")")));
  RuleMatch gte("  sel:\n    Count|gte: 10\n  condition: sel\n");
  EXPECT_TRUE(gte.matches(proc(R"("Count":10)")));
  EXPECT_FALSE(gte.matches(proc(R"("Count":-3)")));
  RuleMatch bad("  sel:\n    Count|gt: many\n  condition: sel\n");
  EXPECT_NE(bad.error().find("not a number"), std::string::npos) << bad.error();
}

// Plain strings run on Hyperscan's literal API with anchors checked per occurrence: the
// first occurrence of an endswith value may be in the middle, the last at the end.
TEST(RuleSet, AnchoredLiteralsLookAtEveryOccurrence) {
  RuleMatch ends("  sel:\n    Image|endswith: '\\a.exe'\n  condition: sel\n");
  EXPECT_TRUE(ends.matches(proc(R"("Image":"C:\\a.exe\\b\\A.EXE")")));
  EXPECT_FALSE(ends.matches(proc(R"("Image":"C:\\a.exe\\b")")));
  RuleMatch starts("  sel:\n    CommandLine|startswith: 'ab'\n  condition: sel\n");
  EXPECT_TRUE(starts.matches(proc(R"("CommandLine":"abab")")));
  EXPECT_FALSE(starts.matches(proc(R"("CommandLine":"xabab")")));
  RuleMatch equals("  sel:\n    User: 'ab'\n  condition: sel\n");
  EXPECT_TRUE(equals.matches(proc(R"("User":"AB")")));
  EXPECT_FALSE(equals.matches(proc(R"("User":"abab")")));
  EXPECT_FALSE(equals.matches(proc(R"("User":"a")")));
  RuleMatch cased("  sel:\n    CommandLine|cased|contains: 'Ab'\n  condition: sel\n");
  EXPECT_TRUE(cased.matches(proc(R"("CommandLine":"xAby")")));
  EXPECT_FALSE(cased.matches(proc(R"("CommandLine":"xaby")")));
  RuleMatch dashes("  sel:\n    CommandLine|windash|endswith: ' -enc'\n  condition: sel\n");
  EXPECT_TRUE(dashes.matches(proc(R"("CommandLine":"x /enc")")));
  EXPECT_TRUE(dashes.matches(proc("\"CommandLine\":\"x \u2014enc\"")));
  EXPECT_FALSE(dashes.matches(proc(R"("CommandLine":"x -enc ")")));
}

// A lookahead after an ambiguous repetition backtracks exponentially in PCRE2. The
// confirmation is bounded (200,000 steps), well below PCRE2's default (10,000,000, ~30 ms
// for 36 characters): on 30 characters the default would search to the end and say no match,
// the bound stops it and fails the rule on that event. A hostile field never stalls a worker,
// and the compile report says the regex is at risk.
TEST(RuleSet, PcreConfirmationIsBoundedOnHostileInput) {
  RuleMatch m("  sel:\n    CommandLine|re: '^(a|aa)+(?=b)'\n  condition: sel\n");
  ASSERT_TRUE(m.error().empty()) << m.error();
  EXPECT_TRUE(m.matches(proc(R"("CommandLine":"aaab")")));
  EXPECT_FALSE(m.matches(proc(R"("CommandLine":"aaac")")));
  const Status s = m.match_status(proc(R"("CommandLine":")" + std::string(30, 'a') + "\""));
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  ASSERT_EQ(m.matcher().failed_rules(), std::vector<uint32_t>{0});
  EXPECT_NE(
      m.matcher().last_failure().find("field 'CommandLine' stopped at its backtracking limit"),
      std::string::npos)
      << m.matcher().last_failure();
  ASSERT_EQ(m.report().rules.size(), 1u);
  ASSERT_EQ(m.report().rules[0].risks.size(), 1u);
  EXPECT_NE(m.report().rules[0].risks[0].find("hits PCRE2's backtracking limit on 30 x 'a'"),
            std::string::npos)
      << m.report().rules[0].risks[0];
  // The next event is evaluated normally again.
  EXPECT_TRUE(m.matches(proc(R"("CommandLine":"aaab")")));
  EXPECT_TRUE(m.matcher().failed_rules().empty());
}

// A regex that one hostile value drives into the backtracking limit fails only the rules
// that read it: every other rule still matches that event (issue: one rule muted every rule).
TEST(RuleSet, FailedConfirmationFailsOnlyTheRulesThatReadIt) {
  auto mapping = FieldMapping::parse(kMapping, "m.yml");
  ASSERT_TRUE(mapping) << mapping.status().to_string();
  auto rule = [](const std::string& id, const std::string& detection) {
    auto r = parse_sigma(
        "title: " + id + "\nid: " + id +
            "\nlogsource:\n  product: windows\n  category: process_creation\ndetection:\n" +
            detection,
        id + ".yml");
    EXPECT_TRUE(r) << r.status().to_string();
    return *r;
  };
  std::vector<SigmaRule> rules{
      rule("evil", "  sel:\n    CommandLine|re: '(?=(a+)+$)a'\n  condition: sel\n"),
      rule("plain", "  sel:\n    CommandLine|contains: 'aaaa'\n  condition: sel\n"),
      rule("filtered",
           "  sel:\n    Image|endswith: '\\cmd.exe'\n  f:\n    CommandLine|re: '(?=(a+)+$)a'\n"
           "  condition: sel and not f\n"),
      rule("other", "  sel:\n    Image|endswith: '\\cmd.exe'\n  condition: sel\n")};
  CompileReport report;
  auto rs = RuleSet::compile(rules, *mapping, report);
  ASSERT_TRUE(rs) << rs.status().to_string();
  ASSERT_EQ((*rs)->rules().size(), 4u);
  auto matcher = Matcher::create(*rs);
  ASSERT_TRUE(matcher);
  EventParser parser;
  Event event;
  const std::string hostile =
      proc(R"("Image":"C:\\Windows\\cmd.exe","CommandLine":")" + std::string(30, 'a') + "!\"");
  ASSERT_EQ(parser.parse(hostile, (*rs)->fields(), event), ParseError::kNone);
  std::vector<uint32_t> out;
  ASSERT_TRUE((*matcher)->match(event, out).is_ok());
  std::vector<std::string> matched, failed;
  for (uint32_t r : out) matched.push_back((*rs)->rules()[r].id);
  for (uint32_t r : (*matcher)->failed_rules()) failed.push_back((*rs)->rules()[r].id);
  EXPECT_EQ(matched, (std::vector<std::string>{"plain", "other"}));
  EXPECT_EQ(failed, (std::vector<std::string>{"evil", "filtered"}));
  size_t risky = 0;
  for (const auto& d : report.rules) risky += d.risks.empty() ? 0 : 1;
  EXPECT_EQ(risky, 2u);
}

// Keywords (field-less values) search the raw event text, JSON escapes included.
TEST(RuleSet, KeywordsSearchTheRawEvent) {
  RuleMatch any(
      "  keywords:\n    - 'rm -rf /'\n    - 'C:\\Windows\\Temp\\\\*.ps1'\n  condition: keywords\n");
  EXPECT_TRUE(any.matches(proc(R"("msg":"ran RM -RF / now")")));
  EXPECT_TRUE(any.matches(proc(R"("a":{"b":["x","C:\\Windows\\Temp\\run.ps1"]})")));
  EXPECT_FALSE(any.matches(proc(R"("msg":"C:\\Windows\\Temp\\run.ps2")")));
  EXPECT_FALSE(any.matches(proc(R"("msg":"rm -r /")")));
  RuleMatch all("  kw:\n    '|all':\n      - foo\n      - 'say \"bar\"'\n  condition: kw\n");
  EXPECT_TRUE(all.matches(proc(R"("x":"foo","y":"they say \"bar\"")")));
  EXPECT_FALSE(all.matches(proc(R"("x":"foo","y":"they say bar")")));
  RuleMatch cased("  kw:\n    '|cased': Mimikatz\n  condition: kw\n");
  EXPECT_TRUE(cased.matches(proc(R"("x":"Mimikatz")")));
  EXPECT_FALSE(cased.matches(proc(R"("x":"mimikatz")")));
  RuleMatch scalar("  kw: sekurlsa\n  filter:\n    User: admin\n  condition: kw and not filter\n");
  EXPECT_TRUE(scalar.matches(proc(R"("x":"sekurlsa::logonpasswords","User":"bob")")));
  EXPECT_FALSE(scalar.matches(proc(R"("x":"sekurlsa::logonpasswords","User":"admin")")));
  RuleMatch bad("  kw:\n    '|re': 'a.*b'\n  condition: kw\n");
  EXPECT_NE(bad.error().find("modifier 're' is not supported on keywords"), std::string::npos)
      << bad.error();
}

// `expand` values take the mapping's placeholder values; without them the rule is refused
// with the placeholder named.
TEST(RuleSet, ExpandTakesPlaceholderValuesFromTheMapping) {
  const std::string with =
      std::string(kMapping) + "placeholders:\n  known_dcs: [DC01, 'dc*.corp']\n  pfx: [a, b]\n";
  auto mapping = FieldMapping::parse(with, "m.yml");
  ASSERT_TRUE(mapping) << mapping.status().to_string();
  auto rule = parse_sigma(
      "title: T\nid: r1\nlogsource:\n  product: windows\n  category: process_creation\ndetection:\n"
      "  sel:\n    CommandLine|contains: cdc\n  filter:\n    Host|expand: '%known_dcs%'\n"
      "  two:\n    User|startswith|expand: '%pfx%-%pfx%'\n  condition: sel and not filter or two\n",
      "r.yml");
  ASSERT_TRUE(rule) << rule.status().to_string();
  CompileReport report;
  auto rs = RuleSet::compile({*rule}, *mapping, report);
  ASSERT_TRUE(rs);
  ASSERT_EQ((*rs)->rules().size(), 1u) << report.rules[0].status.to_string();
  auto m = std::move(*Matcher::create(*rs));
  EventParser parser;
  Event event;
  auto matches = [&](const std::string& fields) {
    EXPECT_EQ(parser.parse(proc(fields), (*rs)->fields(), event), ParseError::kNone);
    std::vector<uint32_t> out;
    EXPECT_TRUE(m->match(event, out).is_ok());
    return !out.empty();
  };
  EXPECT_TRUE(matches(R"("CommandLine":"x cdc y","Host":"WS1")"));
  EXPECT_FALSE(matches(R"("CommandLine":"x cdc y","Host":"dc01")"));
  EXPECT_FALSE(matches(R"("CommandLine":"x cdc y","Host":"DC7.corp")"));
  EXPECT_TRUE(matches(R"("User":"b-a-admin")"));
  EXPECT_FALSE(matches(R"("User":"c-a")"));

  auto without = FieldMapping::parse(kMapping, "m.yml");
  CompileReport refused;
  auto none = RuleSet::compile({*rule}, *without, refused);
  ASSERT_TRUE(none);
  EXPECT_EQ(refused.unsupported, 1u);
  EXPECT_NE(refused.rules[0].status.message().find("placeholder '%known_dcs%' has no values"),
            std::string::npos)
      << refused.rules[0].status.to_string();
}

TEST(RuleSet, UnsupportedPatternIsReportedPerRule) {
  RuleMatch m("  sel:\n    CommandLine|re: 'a(b'\n  condition: sel\n");
  EXPECT_NE(m.error().find("is not supported (Hyperscan: "), std::string::npos) << m.error();
}

// Backreferences and lookaround run as Hyperscan prefilters, each hit confirmed by PCRE2.
TEST(RuleSet, PatternsHyperscanCannotRunExactlyAreConfirmedByPcre2) {
  RuleMatch backref("  sel:\n    CommandLine|re: '(ab)\\1'\n  condition: sel\n");
  EXPECT_TRUE(backref.matches(proc(R"("CommandLine":"xxababyy")")));
  EXPECT_FALSE(backref.matches(proc(R"("CommandLine":"xxabacyy")")));
  EXPECT_FALSE(backref.matches(proc(R"("CommandLine":"xxABABxx")")));  // re is cased unless |i
  RuleMatch caseless("  sel:\n    CommandLine|re|i: '(ab)\\1'\n  condition: sel\n");
  EXPECT_TRUE(caseless.matches(proc(R"("CommandLine":"xxABabxx")")));
  RuleMatch lookahead("  sel:\n    CommandLine|re: 'powershell(?!\\.exe)'\n  condition: sel\n");
  EXPECT_TRUE(lookahead.matches(proc(R"("CommandLine":"powershell -enc")")));
  EXPECT_FALSE(lookahead.matches(proc(R"("CommandLine":"powershell.exe -enc")")));
  RuleMatch lookbehind(
      "  sel:\n    CommandLine|re: '(?<!\\\\)rundll32'\n  other:\n    Image|endswith: '.exe'\n"
      "  condition: sel and other\n");
  EXPECT_TRUE(lookbehind.matches(proc(R"("CommandLine":"rundll32 x","Image":"a.exe")")));
  EXPECT_FALSE(lookbehind.matches(proc(R"("CommandLine":"C:\\rundll32 x","Image":"a.exe")")));
  EXPECT_FALSE(lookbehind.matches(proc(R"("CommandLine":"rundll32 x","Image":"a.dll")")));
}

TEST(RuleSet, BadRulesDoNotStopTheOthers) {
  auto mapping = FieldMapping::parse(kMapping, "m.yml");
  ASSERT_TRUE(mapping);
  auto make = [](const std::string& id, const std::string& category, const std::string& value) {
    auto r = parse_sigma("title: " + id + "\nid: " + id +
                             "\nlogsource:\n  product: windows\n  category: " + category +
                             "\ndetection:\n  sel:\n    CommandLine|re: '" + value +
                             "'\n  condition: sel\n",
                         id + ".yml");
    EXPECT_TRUE(r) << r.status().to_string();
    return *r;
  };
  std::vector<SigmaRule> rules = {
      make("good1", "process_creation", "abc"), make("badre", "process_creation", "a(b"),
      make("nols", "file_event", "abc"), make("good2", "network_connection", "abc"),
      make("good1", "process_creation", "dup")};
  CompileReport report;
  auto rs = RuleSet::compile(rules, *mapping, report);
  ASSERT_TRUE(rs);
  EXPECT_EQ(report.compiled, 2u);
  EXPECT_EQ(report.unsupported, 3u);
  ASSERT_EQ((*rs)->rules().size(), 2u);
  EXPECT_EQ((*rs)->rules()[0].id, "good1");
  EXPECT_EQ((*rs)->rules()[1].id, "good2");
  std::string reasons;
  for (const auto& d : report.rules) reasons += d.status.to_string() + "\n";
  EXPECT_NE(reasons.find("badre.yml"), std::string::npos) << reasons;
  EXPECT_NE(reasons.find("logsource 'product=windows category=file_event' has no entry"),
            std::string::npos)
      << reasons;
  EXPECT_NE(reasons.find("duplicate rule id 'good1'"), std::string::npos) << reasons;
}

// Keywords of rules for a whole product are in one database for all its logsources; an event
// in several of them gets each keyword rule once, and no rule of a logsource it is not in.
TEST(RuleSet, KeywordsSharedByLogsourcesAreFoundOnceForEachRule) {
  // The test mapping and a Sysmon logsource beside its process-creation and network ones.
  auto mapping = FieldMapping::parse(std::string(kMapping) + R"(  - name: sysmon
    match: {product: windows, service: sysmon}
    where: {Channel: Sysmon}
)",
                                     "m.yml");
  ASSERT_TRUE(mapping) << mapping.status().to_string();
  auto make = [](const std::string& id, const std::string& logsource, const std::string& word) {
    auto r =
        parse_sigma("title: " + id + "\nid: " + id + "\nlogsource:\n  product: windows\n" +
                        logsource + "detection:\n  kw:\n    - '" + word + "'\n  condition: kw\n",
                    id + ".yml");
    EXPECT_TRUE(r) << r.status().to_string();
    return *r;
  };
  std::vector<SigmaRule> rules = {make("any", "", "mimikatz"),
                                  make("proc", "  category: process_creation\n", "sekurlsa"),
                                  make("sysmon", "  service: sysmon\n", "lsadump")};
  CompileReport report;
  auto rs = RuleSet::compile(rules, *mapping, report);
  ASSERT_TRUE(rs);
  ASSERT_EQ(report.compiled, 3u);
  auto matcher = Matcher::create(*rs);
  ASSERT_TRUE(matcher);
  EventParser parser;
  Event event;
  auto ids = [&](const std::string& json) {
    EXPECT_EQ(parser.parse(json, (*rs)->fields(), event), ParseError::kNone) << json;
    std::vector<uint32_t> out;
    EXPECT_TRUE((*matcher)->match(event, out).is_ok());
    std::vector<std::string> names;
    for (uint32_t r : out) names.push_back((*rs)->rules()[r].id);
    return names;
  };
  using Ids = std::vector<std::string>;
  const std::string words = R"("CommandLine":"MimiKatz sekurlsa::x lsadump::y")";
  EXPECT_EQ(ids(R"({"EventID":1,"Channel":"Sysmon",)" + words + "}"),
            (Ids{"any", "proc", "sysmon"}));
  EXPECT_EQ(ids(R"({"EventID":3,"Channel":"Sysmon",)" + words + "}"), (Ids{"any", "sysmon"}));
  EXPECT_EQ(ids(R"({"EventID":3,)" + words + "}"), (Ids{"any"}));
  EXPECT_EQ(ids(R"({"EventID":2,)" + words + "}"), (Ids{}));
  EXPECT_EQ(ids(R"({"EventID":1,"Channel":"Sysmon","CommandLine":"lsadump"})"), (Ids{"sysmon"}));
}

TEST(RuleSet, MatchesManyRulesAtOnceInOrder) {
  auto mapping = FieldMapping::parse(kMapping, "m.yml");
  ASSERT_TRUE(mapping);
  std::vector<SigmaRule> rules;
  for (int i = 0; i < 50; ++i) {
    auto r = parse_sigma("title: t\nid: id" + std::to_string(i) +
                             "\nlogsource:\n  category: process_creation\ndetection:\n  sel:\n    "
                             "CommandLine|contains: 'tok" +
                             std::to_string(i % 10) + "'\n  condition: sel\n",
                         "r.yml");
    ASSERT_TRUE(r);
    rules.push_back(*r);
  }
  CompileReport report;
  auto rs = RuleSet::compile(rules, *mapping, report);
  ASSERT_TRUE(rs);
  auto matcher = Matcher::create(*rs);
  ASSERT_TRUE(matcher);
  EventParser parser;
  Event event;
  ASSERT_EQ(parser.parse(R"({"EventID":1,"CommandLine":"tok3 tok7"})", (*rs)->fields(), event),
            ParseError::kNone);
  std::vector<uint32_t> out;
  ASSERT_TRUE((*matcher)->match(event, out).is_ok());
  std::vector<uint32_t> expected;
  for (uint32_t i = 0; i < 50; ++i) {
    if (i % 10 == 3 || i % 10 == 7) expected.push_back(i);
  }
  EXPECT_EQ(out, expected);
  // Bits are cleared between events.
  ASSERT_EQ(parser.parse(R"({"EventID":1,"CommandLine":"nothing"})", (*rs)->fields(), event),
            ParseError::kNone);
  out.clear();
  ASSERT_TRUE((*matcher)->match(event, out).is_ok());
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace vigil::match
