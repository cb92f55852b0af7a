// The compiled rule cache (match/database_cache.h): a second compile of the same rules loads
// every Hyperscan database instead of compiling it and matches the same; an entry that is
// damaged, truncated, foreign or of other patterns is not trusted: logged, rebuilt.

#include "vigil/match/database_cache.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/temp_dir.h"
#include "vigil/match/matcher.h"
#include "vigil/match/ruleset.h"

namespace vigil::match {
namespace {

namespace fs = std::filesystem;

constexpr char kMapping[] = R"(
name: test
logsources:
  - name: all
    match: {category: process_creation}
)";

// Rules of every database kind: literals, regexes, a lazily checked string.
std::shared_ptr<const RuleSet> compile(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> defs = {
      "title: A\nid: a\nlogsource: {category: process_creation}\ndetection:\n  sel:\n"
      "    cmd|contains: [mimikatz, 'sekurlsa::']\n  condition: sel\n",
      "title: B\nid: b\nlogsource: {category: process_creation}\ndetection:\n  sel:\n"
      "    cmd|re: 'powershell(\\.exe)? -e(nc)? [A-Za-z0-9+/=]{20,}'\n  condition: sel\n",
      "title: C\nid: c\nlogsource: {category: process_creation}\ndetection:\n  sel:\n"
      "    image|endswith: '\\rundll32.exe'\n    cmd|contains: javascript\n  condition: sel\n"};
  defs.insert(defs.end(), extra.begin(), extra.end());
  std::vector<SigmaRule> rules;
  for (const auto& d : defs) {
    auto r = parse_sigma(d, "r.yml");
    EXPECT_TRUE(r) << r.status().to_string();
    rules.push_back(*r);
  }
  auto m = FieldMapping::parse(kMapping, "m.yml");
  CompileReport report;
  auto rs = RuleSet::compile(rules, *m, report);
  EXPECT_TRUE(rs);
  return *rs;
}

std::vector<std::string> matches(const std::shared_ptr<const RuleSet>& rs) {
  auto matcher = Matcher::create(rs);
  EXPECT_TRUE(matcher);
  EventParser parser;
  Event event;
  std::vector<std::string> out;
  for (const char* e :
       {R"({"cmd":"x sekurlsa::logonpasswords"})",
        R"({"cmd":"powershell.exe -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoA"})",
        R"({"image":"C:\\Windows\\rundll32.exe","cmd":"javascript:alert"})", R"({"cmd":"ls"})"}) {
    EXPECT_EQ(parser.parse(e, rs->fields(), event), ParseError::kNone);
    std::vector<uint32_t> hits;
    EXPECT_TRUE((*matcher)->match(event, hits).is_ok());
    for (uint32_t h : hits) out.push_back(std::string(e).substr(0, 12) + rs->rules()[h].id);
  }
  return out;
}

class DatabaseCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(DatabaseCache::configure(tmp_.path().string()).is_ok()); }
  void TearDown() override { (void)DatabaseCache::configure(""); }
  std::vector<fs::path> entries() const {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(tmp_.path()))
      if (e.path().extension() == ".hsdb") out.push_back(e.path());
    return out;
  }
  test::TempDir tmp_{"rule-cache"};
};

TEST_F(DatabaseCacheTest, ASecondCompileLoadsEveryDatabaseAndMatchesTheSame) {
  DatabaseCache::reset_stats();
  const auto first = matches(compile());
  const auto compiled = DatabaseCache::stats();
  EXPECT_GT(compiled.misses, 0u);
  ASSERT_EQ(first.size(), 3u);
  ASSERT_EQ(entries().size(), compiled.misses - compiled.hits);

  DatabaseCache::reset_stats();
  EXPECT_EQ(matches(compile()), first);
  const auto loaded = DatabaseCache::stats();
  EXPECT_EQ(loaded.misses, 0u);
  EXPECT_EQ(loaded.hits, compiled.misses);
  EXPECT_EQ(loaded.rejected, 0u);
  // The patterns' checks too.
  EXPECT_GT(compiled.checks_made, 0u);
  EXPECT_EQ(loaded.checks_made, 0u);
  EXPECT_EQ(loaded.checks_remembered, compiled.checks_made);

  // Other patterns: new entries beside the old ones, which are still used.
  DatabaseCache::reset_stats();
  (void)compile(
      {"title: D\nid: d\nlogsource: {category: process_creation}\ndetection:\n"
       "  sel:\n    cmd|contains: procdump\n  condition: sel\n"});
  EXPECT_GT(DatabaseCache::stats().misses, 0u);
}

TEST_F(DatabaseCacheTest, AnEntryThatCannotBeTrustedIsRebuilt) {
  const auto expected = matches(compile());
  auto files = entries();
  ASSERT_GE(files.size(), 2u);
  // One flipped byte in the serialized database, one truncated, one replaced by another
  // entry's content (right header, other patterns), the rest foreign bytes.
  for (size_t i = 0; i < files.size(); ++i) {
    std::fstream f(files[i], std::ios::in | std::ios::out | std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(f)), {});
    f.close();
    if (i == 0) {
      data[data.size() - 7] ^= 0x40;
    } else if (i == 1) {
      data.resize(data.size() / 2);
    } else if (i == 2) {
      std::ifstream other(files[0], std::ios::binary);
      data.assign((std::istreambuf_iterator<char>(other)), {});
    } else {
      data = "not a cache entry";
    }
    std::ofstream(files[i], std::ios::binary | std::ios::trunc) << data;
  }
  DatabaseCache::reset_stats();
  EXPECT_EQ(matches(compile()), expected);
  const auto st = DatabaseCache::stats();
  EXPECT_EQ(st.rejected, files.size());
  EXPECT_EQ(st.hits, 0u);
  // A damaged line of the pattern checks: that check is made again.
  const fs::path checks = tmp_.path() / "pattern-checks";
  std::string lines;
  {
    std::ifstream in(checks, std::ios::binary);
    lines.assign((std::istreambuf_iterator<char>(in)), {});
  }
  ASSERT_FALSE(lines.empty());
  lines[40] ^= 1;
  std::ofstream(checks, std::ios::binary | std::ios::trunc) << lines << "garbage\n";
  ASSERT_TRUE(DatabaseCache::configure(tmp_.path().string()).is_ok());  // read again
  DatabaseCache::reset_stats();
  EXPECT_EQ(matches(compile()), expected);
  EXPECT_EQ(DatabaseCache::stats().checks_made, 1u);
  // Rebuilt: trusted again at the next compile.
  DatabaseCache::reset_stats();
  EXPECT_EQ(matches(compile()), expected);
  EXPECT_EQ(DatabaseCache::stats().rejected, 0u);
  EXPECT_EQ(DatabaseCache::stats().misses, 0u);
  ASSERT_TRUE(DatabaseCache::configure(tmp_.path().string()).is_ok());
  DatabaseCache::reset_stats();
  (void)compile();
  EXPECT_EQ(DatabaseCache::stats().checks_made, 0u);
}

TEST_F(DatabaseCacheTest, TheCacheStaysUnderItsBound) {
  ASSERT_TRUE(DatabaseCache::configure(tmp_.path().string(), 1).is_ok());  // one byte
  (void)matches(compile());
  EXPECT_LE(entries().size(), 1u);  // the newest at most (removed past the bound)
  // A directory that cannot be made is refused (the caller runs without the cache).
  EXPECT_FALSE(DatabaseCache::configure("/proc/version/cache").is_ok());
}

}  // namespace
}  // namespace vigil::match
