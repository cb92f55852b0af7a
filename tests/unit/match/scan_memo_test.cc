// The scan memo on its own (match/src/scan_memo.h), and through a Matcher: admission on the
// second sighting, whole-value keys, a bounded arena, and results equal with and without it.

#include "scan_memo.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "vigil/match/matcher.h"
#include "vigil/match/ruleset.h"
#include "vigil/match/sigma.h"

namespace vigil::match {
namespace {

using detail::ScanMemo;

std::vector<uint32_t> found(const ScanMemo& memo, uint32_t db, std::string_view value) {
  uint32_t n = 0;
  const uint32_t* p = memo.find(db, value, ScanMemo::hash(db, value), n);
  if (p == nullptr) return {999999};
  return std::vector<uint32_t>(p, p + n);
}

TEST(ScanMemo, BelowItsMinimumItIsOff) {
  EXPECT_FALSE(ScanMemo(0).enabled());
  EXPECT_FALSE(ScanMemo(1000).enabled());
  EXPECT_TRUE(ScanMemo(64 << 10).enabled());
}

TEST(ScanMemo, AdmitsAValueOnItsSecondSighting) {
  ScanMemo memo(1 << 20);
  const uint64_t h = ScanMemo::hash(3, "C:\\Windows\\System32\\lsass.exe");
  EXPECT_FALSE(memo.admit(h));
  EXPECT_TRUE(memo.admit(h));
}

TEST(ScanMemo, KeysAreTheDatabaseAndTheWholeValue) {
  ScanMemo memo(1 << 20);
  const uint32_t preds[] = {7, 9};
  memo.insert(1, "cmd.exe", ScanMemo::hash(1, "cmd.exe"), preds, 2);
  memo.insert(1, "none.exe", ScanMemo::hash(1, "none.exe"), nullptr, 0);
  EXPECT_EQ(found(memo, 1, "cmd.exe"), (std::vector<uint32_t>{7, 9}));
  EXPECT_EQ(found(memo, 1, "none.exe"), std::vector<uint32_t>{});       // remembered: nothing held
  EXPECT_EQ(found(memo, 2, "cmd.exe"), std::vector<uint32_t>{999999});  // another database
  EXPECT_EQ(found(memo, 1, "cmd.ex"), std::vector<uint32_t>{999999});
  // The same hash with other bytes is no hit: the value is compared, not only its hash.
  uint32_t n = 0;
  EXPECT_EQ(memo.find(1, "CMD.EXE", ScanMemo::hash(1, "cmd.exe"), n), nullptr);
}

TEST(ScanMemo, StaysInItsBudgetByDroppingEverything) {
  ScanMemo memo(1 << 20);
  const uint32_t pred = 1;
  const size_t first = memo.bytes_held();
  EXPECT_LT(first, size_t{128} << 10);  // it starts small
  for (int i = 0; i < 20000; ++i) {
    const std::string v = "C:\\Users\\bob\\AppData\\Local\\Temp\\" + std::to_string(i) + ".tmp";
    memo.insert(0, v, ScanMemo::hash(0, v), &pred, 1);
    ASSERT_LE(memo.bytes_held(), size_t{1} << 20);
  }
  EXPECT_GT(memo.bytes_held(), first);  // grew to its budget
  EXPECT_GT(memo.resets(), 0u);
  EXPECT_GT(memo.entries(), 0u);
  const std::string last = "C:\\Users\\bob\\AppData\\Local\\Temp\\19999.tmp";
  EXPECT_EQ(found(memo, 0, last), std::vector<uint32_t>{1});
  // Too long to remember: not kept.
  const std::string huge(ScanMemo::kMaxValueBytes + 1, 'a');
  memo.insert(0, huge, ScanMemo::hash(0, huge), &pred, 1);
  EXPECT_EQ(found(memo, 0, huge), std::vector<uint32_t>{999999});
}

// A unique value stream (an attacker's, or a field like TargetObject) is never admitted but by
// the doorkeeper's rare false positives.
TEST(ScanMemo, AFloodOfUniqueValuesIsAlmostNeverAdmitted) {
  ScanMemo memo(1 << 20);
  size_t admitted = 0;
  for (int i = 0; i < 200000; ++i) {
    const std::string v = "HKLM\\SOFTWARE\\Key" + std::to_string(i);
    admitted += memo.admit(ScanMemo::hash(0, v));
  }
  EXPECT_LT(admitted, 200000u / 50);  // under 2%
}

// One rule under vigil-sensor.yml, with a matcher that has the memo (the default) and one that
// has not.
struct TwoMatchers {
  std::shared_ptr<const RuleSet> rules;
  std::unique_ptr<Matcher> on, off;
};
TwoMatchers two_matchers(const std::string& rule_yaml) {
  TwoMatchers t;
  auto rule = parse_sigma(rule_yaml, "t.yml");
  EXPECT_TRUE(rule) << rule.status().to_string();
  auto mapping = FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/vigil-sensor.yml");
  EXPECT_TRUE(mapping);
  if (!rule || !mapping) return t;
  CompileReport report;
  auto rs = RuleSet::compile({*rule}, *mapping, report);
  EXPECT_TRUE(rs) << rs.status().to_string();
  if (!rs) return t;
  t.rules = *rs;
  MatcherOptions off;
  off.memo_bytes = 0;
  t.on = std::move(*Matcher::create(t.rules));
  t.off = std::move(*Matcher::create(t.rules, off));
  return t;
}

TEST(ScanMemo, AMatcherGivesTheSameAnswersWithAndWithoutIt) {
  TwoMatchers t = two_matchers(R"(title: t
id: 11111111-1111-1111-1111-111111111111
logsource: {category: process_creation, product: windows}
detection:
  a: {Image|endswith: '\rundll32.exe'}
  b: {CommandLine|re: 'comsvcs(\.dll)?,\s*(MiniDump|#24)'}
  c: {CommandLine|contains: 'full'}
  condition: a and (b or c)
)");
  ASSERT_TRUE(t.on && t.off);
  const auto& rs = t.rules;
  auto& on = t.on;
  auto& without = t.off;
  const std::vector<std::string> events = {
      R"({"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Image":"C:\\Windows\\System32\\rundll32.exe","CommandLine":"rundll32 comsvcs.dll, MiniDump 624 x full"})",
      R"({"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Image":"C:\\Windows\\System32\\rundll32.exe","CommandLine":"rundll32 shell32.dll,Control_RunDLL"})",
      R"({"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Image":"C:\\Windows\\System32\\notepad.exe","CommandLine":"rundll32 comsvcs.dll, MiniDump 624 x full"})",
      R"({"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Image":"C:\\Windows\\System32\\rundll32.exe","CommandLine":"x full"})"};
  EventParser parser;
  Event event;
  size_t fired = 0;
  for (int pass = 0; pass < 4; ++pass) {  // the first sighting, the admission, then hits
    for (const auto& e : events) {
      ASSERT_EQ(parser.parse(e, rs->fields(), event), ParseError::kNone);
      std::vector<uint32_t> a, b;
      ASSERT_TRUE(on->match(event, a).is_ok());
      ASSERT_TRUE(without->match(event, b).is_ok());
      EXPECT_EQ(a, b) << "pass " << pass << ": " << e;
      fired += a.size();
    }
  }
  EXPECT_EQ(fired, 8u);  // events 1 and 4, four times
  std::vector<MemoFieldStats> stats;
  on->memo_stats(stats);
  ASSERT_FALSE(stats.empty());
  uint64_t hits = 0;
  for (const auto& s : stats) hits += s.hits;
  EXPECT_GT(hits, 0u);
  without->memo_stats(stats);
  EXPECT_TRUE(stats.empty());
}

// A field whose values never repeat is looked up for one window of 256 values, then scanned
// without the memo for the next 4,096, then measured again; the answers stay the same.
TEST(ScanMemo, AFieldWhoseValuesNeverRepeatSkipsTheMemo) {
  TwoMatchers t = two_matchers(R"(title: t
id: 22222222-2222-2222-2222-222222222222
logsource: {category: process_creation, product: windows}
detection:
  a: {CommandLine|contains: 'comsvcs'}
  condition: a
)");
  ASSERT_TRUE(t.on && t.off);
  const auto& rs = t.rules;
  auto& on = t.on;
  auto& without = t.off;
  EventParser parser;
  Event event;
  auto lookups = [&] {
    std::vector<MemoFieldStats> stats;
    on->memo_stats(stats);
    uint64_t n = 0;
    for (const auto& s : stats) n += s.lookups;
    return n;
  };
  size_t fired = 0;
  for (int i = 0; i < 256 + 4096 + 10; ++i) {
    const std::string e = R"({"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational",)"
                          R"("CommandLine":"rundll32 )" +
                          std::string(i % 3 == 0 ? "comsvcs" : "shell32") + ".dll #" +
                          std::to_string(i) + "\"}";
    ASSERT_EQ(parser.parse(e, rs->fields(), event), ParseError::kNone) << e;
    std::vector<uint32_t> a, b;
    ASSERT_TRUE(on->match(event, a).is_ok());
    ASSERT_TRUE(without->match(event, b).is_ok());
    ASSERT_EQ(a, b) << e;
    fired += a.size();
    if (i == 255 || i == 256 + 4095) {
      EXPECT_EQ(lookups(), 256u) << "after " << i + 1 << " values";
    }
  }
  EXPECT_EQ(lookups(), 256u + 10u);  // measured again after the 4,096 skipped
  EXPECT_EQ(fired, (256u + 4096u + 10u + 2u) / 3u);
}

}  // namespace
}  // namespace vigil::match
