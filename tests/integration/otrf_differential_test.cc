// The whole SigmaHQ tree over the recorded lab intrusion (corpus/otrf: real machines, all
// their background noise, most referenced values repeating), in recorded order: the matcher
// with its scan memo, the matcher without it, and the reference matcher must report the same
// rules for every event; and the memo must have served most lookups (or this test would
// prove nothing about it).

#include <gtest/gtest.h>

#include <set>

#include "support/corpus.h"
#include "support/otrf.h"
#include "vigil/match/matcher.h"
#include "vigil/match/reference_matcher.h"

namespace vigil::match {
namespace {

namespace fs = std::filesystem;

struct Tree {
  std::vector<SigmaRule> parsed;
  std::shared_ptr<const RuleSet> rules;
  std::unique_ptr<ReferenceMatcher> reference;
  std::vector<std::string> events;
};

const Tree& tree() {
  static const Tree t = [] {
    Tree t;
    const fs::path corpus = test::corpus_dir();
    auto mapping = FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/vigil-sensor.yml");
    if (!mapping) return t;
    CompileReport report;
    t.parsed = load_rules({(corpus / "sigma_rules").string()}, report);
    auto compiled = RuleSet::compile(t.parsed, *mapping, report);
    if (!compiled) return t;
    t.rules = std::move(*compiled);
    t.reference = ReferenceMatcher::compile(t.parsed, *mapping);
    t.events = test::otrf_events(corpus);
    return t;
  }();
  return t;
}

std::vector<std::string> ids(const RuleSet& rs, const std::vector<uint32_t>& matched) {
  std::vector<std::string> out;
  for (uint32_t r : matched) out.push_back(rs.rules()[r].id);
  return out;
}

TEST(OtrfDifferential, MemoOnEqualsMemoOffEqualsTheReferenceRuleForRule) {
  const Tree& t = tree();
  ASSERT_TRUE(t.rules && t.reference) << "the tree did not compile";
  ASSERT_GT(t.events.size(), 10000u) << "no OTRF events under " << test::corpus_dir() / "otrf";
  const RuleSet& rs = *t.rules;
  std::set<std::string> compiled_ids;
  for (const auto& r : rs.rules()) compiled_ids.insert(r.id);

  MatcherOptions off;
  off.memo_bytes = 0;
  MatcherOptions small;  // the smallest memo: full often, so dropped and refilled many times
  small.memo_bytes = 64 << 10;
  auto with_memo = std::move(*Matcher::create(t.rules));
  auto tight_memo = std::move(*Matcher::create(t.rules, small));
  auto without = std::move(*Matcher::create(t.rules, off));
  EventParser parser, ref_parser;
  Event event, ref_event;
  std::vector<uint32_t> a, b, c, r;
  size_t matched = 0;
  for (size_t i = 0; i < t.events.size(); ++i) {
    const std::string& e = t.events[i];
    ASSERT_EQ(parser.parse(e, rs.fields(), event), ParseError::kNone) << e;
    a.clear();
    b.clear();
    c.clear();
    ASSERT_TRUE(with_memo->match(event, a).is_ok());
    ASSERT_TRUE(tight_memo->match(event, b).is_ok());
    ASSERT_TRUE(without->match(event, c).is_ok());
    ASSERT_EQ(ids(rs, a), ids(rs, c)) << "memo on/off, event " << i << ": " << e;
    ASSERT_EQ(ids(rs, b), ids(rs, c)) << "64 KiB memo/off, event " << i << ": " << e;
    ASSERT_EQ(ref_parser.parse(e, t.reference->fields(), ref_event), ParseError::kNone);
    r.clear();
    t.reference->match(ref_event, r);
    std::vector<std::string> want;
    for (uint32_t k : r) {
      if (compiled_ids.count(t.reference->rule_ids()[k]))
        want.push_back(t.reference->rule_ids()[k]);
    }
    std::vector<std::string> got = ids(rs, c);
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    ASSERT_EQ(got, want) << "compiled/reference, event " << i << ": " << e;
    matched += got.empty() ? 0 : 1;
  }
  std::vector<MemoFieldStats> stats;
  with_memo->memo_stats(stats);
  uint64_t lookups = 0, hits = 0;
  for (const auto& s : stats) {
    lookups += s.lookups;
    hits += s.hits;
  }
  std::cout << t.events.size() << " events, " << matched << " matched; memo " << hits << " of "
            << lookups << " lookups hit, " << tight_memo->memo_resets()
            << " resets of the 64 KiB memo\n";
  EXPECT_GT(matched, 0u);
  EXPECT_GT(hits * 10, lookups * 8) << "the memo served less than 80% of the lookups";
  EXPECT_GT(tight_memo->memo_resets(), 0u);
}

}  // namespace
}  // namespace vigil::match
