// Rule bundles: loading (directories, archives, hostile archives), the content hash, and
// validation: strict manifest, the 21-fields case, rule tests, declared fields, scan cost.

#include "vigil/match/bundle.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <fstream>
#include <random>

namespace vigil::match {
namespace {

const std::string kBundles = VIGIL_SOURCE_DIR "/tests/data/bundles/";

class BundleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/vigil-sensor.yml");
    ASSERT_TRUE(m) << m.status().to_string();
    mapping_ = std::move(*m);
    options_.default_mapping = &mapping_;
    options_.reference_events = {
        R"({"Channel":"Microsoft-Windows-Sysmon/Operational","EventID":1,"Image":"C:\\Windows\\System32\\cmd.exe","CommandLine":"cmd /c dir"})"};
  }
  BundleReport validate(const std::string& name) {
    auto b = Bundle::load(kBundles + name);
    EXPECT_TRUE(b) << b.status().to_string();
    return validate_bundle(*b, options_);
  }
  static bool any_contains(const std::vector<std::string>& v, std::string_view needle) {
    for (const auto& s : v) {
      if (s.find(needle) != std::string::npos) return true;
    }
    return false;
  }
  FieldMapping mapping_;
  BundleValidationOptions options_;
};

TEST_F(BundleTest, AGoodBundleValidatesWithItsTestsAndCosts) {
  std::shared_ptr<const RuleSet> compiled;
  auto b = Bundle::load(kBundles + "good");
  ASSERT_TRUE(b);
  const BundleReport r = validate_bundle(*b, options_, &compiled);
  EXPECT_TRUE(r.ok()) << r.to_json();
  EXPECT_EQ(r.manifest.name, "good");
  EXPECT_EQ(r.manifest.label, "2026.11.25");
  ASSERT_EQ(r.rules.size(), 2u);
  size_t passed = 0;
  for (const auto& rule : r.rules) {
    EXPECT_TRUE(rule.errors.empty());
    EXPECT_EQ(rule.tests_failed, 0u);
    EXPECT_GT(rule.cost_ns_per_event, 0);
    passed += rule.tests_passed;
  }
  EXPECT_EQ(passed, 6u);  // 4 whoami events, 2 certutil events
  ASSERT_TRUE(compiled);
  EXPECT_EQ(compiled->rules().size(), 2u);
  rapidjson::Document d;
  d.Parse(r.to_json().c_str());
  ASSERT_FALSE(d.HasParseError());
  EXPECT_TRUE(d["ok"].GetBool());
  EXPECT_EQ(d["rules"].Size(), 2u);
}

TEST_F(BundleTest, TheTwentyFirstFieldIsRefusedByName) {
  const BundleReport r = validate("field21");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.rules_failed, 1u);
  EXPECT_TRUE(any_contains(r.all_errors(), "unknown modifier 'field21'")) << r.to_json();
  EXPECT_TRUE(any_contains(r.all_errors(), "rules/certutil_field21.yml")) << r.to_json();
}

TEST_F(BundleTest, ANewerFormatOrAnUnknownParameterIsRefused) {
  const BundleReport r = validate("newer_format");
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(
      any_contains(r.errors, "bundle format version 2 is newer than this engine understands (1)"))
      << r.to_json();
  EXPECT_TRUE(any_contains(r.errors, "unknown parameter 'template_fields'")) << r.to_json();
}

std::vector<BundleFile> good_files() {
  auto b = Bundle::load(VIGIL_SOURCE_DIR "/tests/data/bundles/good");
  EXPECT_TRUE(b);
  return b->files();
}

void set_file(std::vector<BundleFile>& files, const std::string& path, const std::string& content) {
  for (auto& f : files) {
    if (f.path == path) {
      f.content = content;
      return;
    }
  }
  files.push_back({path, content});
}

TEST_F(BundleTest, ManifestIsStrict) {
  struct Case {
    std::string manifest, error;
  };
  const std::vector<Case> cases = {
      {"format_version: 1\nfieldz: [Image]\n", "unknown manifest key 'fieldz'"},
      {"format_version: one\n", "format_version must be a positive integer"},
      {"fields: [Image, CommandLine, OriginalFileName]\nfield_count: 21\n",
       "'field_count' is 21 but 3 fields are declared"},
      {"fields: [Image, OriginalFileName]\n",
       "uses field 'CommandLine' that the manifest does not declare"},
      {"parameters: {min_engine_version: '9.0'}\n", "needs engine version 9.0"},
      // A fuzz finding: a part of a hundred digits overflowed the comparison (UB).
      {"parameters: {min_engine_version: '1" + std::string(100, '1') + "'}\n",
       "needs engine version 1111"},
      {"parameters: {min_engine_version: '0.1.0000000000000000000000000000000000000001'}\n",
       "needs engine version 0.1.0"},
      {"mapping: mappings/none.yml\n", "mapping 'mappings/none.yml' is not in the bundle"},
      {"rules: [detections]\n", "rules path 'detections' names nothing"},
  };
  for (const auto& c : cases) {
    auto files = good_files();
    set_file(files, "manifest.yml", c.manifest);
    auto b = Bundle::from_files(files);
    ASSERT_TRUE(b);
    const BundleReport r = validate_bundle(*b, options_);
    EXPECT_FALSE(r.ok()) << c.manifest;
    EXPECT_TRUE(any_contains(r.all_errors(), c.error)) << c.manifest << " -> " << r.to_json();
  }
}

TEST_F(BundleTest, LongVersionPartsCompareAsNumbers) {
  // Leading zeros and length do not make a version newer: 0.0001.0 is 0.1.0, this engine.
  for (const std::string v : {"0.0001.0", "0.1", "00000000000000000000000000000000000000.1.0",
                              "0.0.99999999999999999999999"}) {
    auto files = good_files();
    set_file(files, "manifest.yml", "parameters: {min_engine_version: '" + v + "'}\n");
    auto b = Bundle::from_files(files);
    ASSERT_TRUE(b);
    const BundleReport r = validate_bundle(*b, options_);
    EXPECT_TRUE(r.ok()) << v << " -> " << r.to_json();
  }
}

TEST_F(BundleTest, AFailingRuleTestRefusesTheBundle) {
  auto files = good_files();
  set_file(files, "tests/whoami_all.yml",
           "rule: 2b3a5f2c-7c1b-4b8e-9d0a-1f6e3c9b8a11\n"
           "match:\n  - {Channel: Microsoft-Windows-Sysmon/Operational, EventID: 1, Image: "
           "'C:\\x\\cmd.exe', CommandLine: 'whoami /all'}\n");
  auto b = Bundle::from_files(files);
  ASSERT_TRUE(b);
  const BundleReport r = validate_bundle(*b, options_);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(any_contains(r.all_errors(), "does not match its 'match' test event 0"))
      << r.to_json();

  set_file(files, "tests/whoami_all.yml", "rule: no-such-rule\nmatch: []\n");
  b = Bundle::from_files(files);
  EXPECT_TRUE(any_contains(validate_bundle(*b, options_).all_errors(),
                           "tests rule 'no-such-rule' that is not in the bundle"));
  set_file(files, "tests/whoami_all.yml",
           "rule: 2b3a5f2c-7c1b-4b8e-9d0a-1f6e3c9b8a11\nexpect: []\n");
  b = Bundle::from_files(files);
  EXPECT_TRUE(
      any_contains(validate_bundle(*b, options_).all_errors(), "unknown rule test key 'expect'"));
}

// The steps of validation: a rule that does not parse refuses a bundle but only warns in the
// configured rules (lenient), a rule without test events is a warning, and every rule is
// counted once validation has run to its end.
TEST_F(BundleTest, LenientValidationWarnsWhereStrictRefusesAndRulesAreCounted) {
  auto files = good_files();
  files.push_back({"rules/broken.yml", "title: broken\nid: 7\ndetection: [\n"});
  std::vector<BundleFile> untested;
  for (const auto& f : files) {
    if (f.path != "tests/certutil_urlcache.yml") untested.push_back(f);
  }
  auto b = Bundle::from_files(untested);
  ASSERT_TRUE(b);
  const BundleReport strict = validate_bundle(*b, options_);
  EXPECT_FALSE(strict.ok());
  EXPECT_EQ(strict.rules.size(), 3u);
  EXPECT_EQ(strict.rules_ok + strict.rules_failed, 3u);
  EXPECT_EQ(strict.rules_failed, 1u) << strict.to_json();

  BundleValidationOptions lenient = options_;
  lenient.require_all_rules = false;
  std::shared_ptr<const RuleSet> compiled;
  const BundleReport r = validate_bundle(*b, lenient, &compiled);
  EXPECT_TRUE(r.ok()) << r.to_json();
  ASSERT_TRUE(compiled);
  EXPECT_EQ(compiled->rules().size(), 2u);
  bool not_loaded = false, no_tests = false;
  for (const auto& rule : r.rules) {
    not_loaded = not_loaded || any_contains(rule.warnings, "not loaded: ");
    no_tests = no_tests || any_contains(rule.warnings, "the rule has no test events");
  }
  EXPECT_TRUE(not_loaded) << r.to_json();
  EXPECT_TRUE(no_tests) << r.to_json();
}

TEST_F(BundleTest, DuplicateRuleIdsAreRefused) {
  auto files = good_files();
  std::string copy;
  for (const auto& f : files) {
    if (f.path == "rules/whoami_all.yml") copy = f.content;
  }
  files.push_back({"rules/whoami_copy.yml", copy});
  auto b = Bundle::from_files(files);
  ASSERT_TRUE(b);
  EXPECT_TRUE(any_contains(validate_bundle(*b, options_).all_errors(),
                           "is used by another rule of the bundle"));
}

TEST_F(BundleTest, UnknownDescriptiveMetadataIsAWarningNotAnError) {
  auto files = good_files();
  for (auto& f : files) {
    if (f.path == "rules/whoami_all.yml") f.content += "x_review_board: approved\n";
  }
  auto b = Bundle::from_files(files);
  const BundleReport r = validate_bundle(*b, options_);
  EXPECT_TRUE(r.ok()) << r.to_json();
  bool warned = false;
  for (const auto& rule : r.rules)
    warned |= any_contains(rule.warnings, "unknown top-level key 'x_review_board'");
  EXPECT_TRUE(warned);
}

// Long command lines, as PowerShell and script hosts produce them.
std::vector<std::string> long_command_lines(size_t n) {
  std::mt19937 rng(7);
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) {
    std::string cl;
    while (cl.size() < 40000) {
      const size_t len = 3 + rng() % 10;
      for (size_t k = 0; k < len; ++k) cl += alphabet[rng() % alphabet.size()];
      cl += ' ';
    }
    out.push_back(
        R"({"Channel":"Microsoft-Windows-Sysmon/Operational","EventID":1,"Image":"C:\\p\\powershell.exe","CommandLine":")" +
        cl + "\"}");
  }
  return out;
}

TEST_F(BundleTest, ARuleOverTheCostBudgetIsRefused) {
  // Measured here: plain rules cost ~10 us per such event (mostly parsing), the slow rule
  // ~1 ms; the budget sits between with an order of magnitude either side.
  options_.reference_events = long_command_lines(8);
  options_.max_rule_cost_ns = 100000;
  const BundleReport slow = validate("slow");
  EXPECT_FALSE(slow.ok()) << slow.to_json();
  EXPECT_TRUE(any_contains(slow.all_errors(), "over the budget of 100000 ns")) << slow.to_json();
  ASSERT_EQ(slow.rules.size(), 1u);
  const BundleReport good = validate("good");
  EXPECT_TRUE(good.ok()) << good.to_json();
  for (const auto& r : good.rules) {
    EXPECT_LT(r.cost_ns_per_event * 3, slow.rules[0].cost_ns_per_event)
        << "the slow rule is not slow here";
  }
  // A manifest may lower the budget, never raise it.
  auto files = good_files();
  set_file(files, "manifest.yml", "parameters: {max_rule_cost_ns: 1}\n");
  auto b = Bundle::from_files(files);
  EXPECT_TRUE(any_contains(validate_bundle(*b, options_).all_errors(), "over the budget of 1 ns"));
}

TEST_F(BundleTest, ArchivesRoundTripAndKeepTheHash) {
  auto b = Bundle::load(kBundles + "good");
  ASSERT_TRUE(b);
  const std::string tar = b->to_tar();
  auto back = Bundle::from_archive(tar);
  ASSERT_TRUE(back) << back.status().to_string();
  EXPECT_EQ(back->hash(), b->hash());
  EXPECT_EQ(back->files().size(), b->files().size());
  // A folder inside the archive ("good/manifest.yml", ...) is the same bundle.
  std::vector<BundleFile> nested = b->files();
  for (auto& f : nested) f.path = "good/" + f.path;
  auto n = Bundle::from_files(nested);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->hash(), b->hash());
  // Any change of content changes the hash.
  auto files = b->files();
  files[0].content += " ";
  EXPECT_NE(Bundle::from_files(files)->hash(), b->hash());
}

TEST_F(BundleTest, HostileArchivesAreRefusedWithAReason) {
  EXPECT_FALSE(Bundle::from_archive("not an archive at all"));
  EXPECT_FALSE(Bundle::from_archive(""));
  auto escape = Bundle::from_files({{"../etc/passwd", "x"}});
  ASSERT_FALSE(escape);
  EXPECT_NE(escape.status().message().find("not a relative path"), std::string::npos);
  EXPECT_FALSE(Bundle::from_files({{"/etc/passwd", "x"}}));
  EXPECT_FALSE(Bundle::from_files({{"a.yml", "x"}, {"./a.yml", "y"}}));
  BundleLimits tiny;
  tiny.max_file_bytes = 10;
  EXPECT_FALSE(Bundle::from_files({{"a.yml", std::string(11, 'x')}}, tiny));
  tiny = {};
  tiny.max_files = 1;
  EXPECT_FALSE(Bundle::from_files({{"a.yml", "x"}, {"b.yml", "y"}}, tiny));
  // A truncated tar.
  auto b = Bundle::load(kBundles + "good");
  const std::string tar = b->to_tar();
  EXPECT_FALSE(Bundle::from_archive(std::string_view(tar).substr(0, 700)));
}

// Paths that are relative here but a traversal or an absolute path on Windows, and names
// that are not UTF-8, are refused like "../".
TEST_F(BundleTest, WindowsPathsAndNonUtf8NamesAreRefused) {
  for (const char* path : {"..\\..\\Windows\\evil.yml", "rules\\a.yml", "C:\\x.yml", "C:x.yml",
                           "c:/x.yml", "a\x01.yml", "bad\xff.yml"}) {
    auto b = Bundle::from_files({{path, "x"}});
    ASSERT_FALSE(b) << path;
    EXPECT_NE(b.status().message().find(path[0] == 'b' ? "not valid UTF-8" : "not a relative path"),
              std::string::npos)
        << b.status().message();
  }
  EXPECT_TRUE(Bundle::from_files({{"rules/a:b.yml", "x"}}));  // a colon elsewhere is a plain name
}

// Rule text that is not UTF-8 is refused, naming the file and the key; nothing of it can
// reach a JSON answer or the alerts topic.
TEST_F(BundleTest, RuleTextThatIsNotUtf8IsRefusedNamingFileAndKey) {
  auto files = good_files();
  for (auto& f : files) {
    if (f.path == "rules/whoami_all.yml") {
      const size_t at = f.content.find("title: ");
      ASSERT_NE(at, std::string::npos);
      f.content.insert(at + 7, "Bad \xff\xfe ");
    }
  }
  auto b = Bundle::from_files(files);
  ASSERT_TRUE(b);
  const BundleReport r = validate_bundle(*b, options_);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(any_contains(r.all_errors(), "rules/whoami_all.yml: not valid UTF-8 at line"))
      << r.to_json();
  EXPECT_TRUE(any_contains(r.all_errors(), "(key 'title')")) << r.to_json();
}

// What one validation may cost is bounded before compiling: a rule of 100,000 values (108 s
// and 320 MB before) is refused at once, and so is a bundle past its total.
TEST_F(BundleTest, ValidationIsBoundedInValuesAndTime) {
  std::string big =
      "title: Big\nid: 6f0e1d2c-0000-4000-8000-000000000001\nlogsource: {product: windows, "
      "category: "
      "process_creation}\ndetection:\n  sel:\n    CommandLine|contains:\n";
  for (int i = 0; i < 100000; ++i) big += "      - 'value" + std::to_string(i) + "'\n";
  big += "  condition: sel\n";
  auto b = Bundle::from_files({{"big.yml", big}});
  ASSERT_TRUE(b);
  const BundleReport r = validate_bundle(*b, options_);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(
      any_contains(r.all_errors(), "has 100000 values, more than the limit of 20000 per rule"))
      << r.to_json();

  BundleValidationOptions small = options_;
  small.max_values_per_bundle = 3;
  auto good = Bundle::load(kBundles + "good");
  ASSERT_TRUE(good);
  EXPECT_TRUE(any_contains(validate_bundle(*good, small).all_errors(),
                           "more than the limit of 3 per bundle"));
  small = options_;
  small.max_validation_ms = 1;
  small.cost_sample_ms = 5;
  const BundleReport slow = validate_bundle(*good, small);
  EXPECT_TRUE(any_contains(slow.all_errors(), "took longer than its limit")) << slow.to_json();
}

// A regex that a crafted value drives into PCRE2's backtracking limit would leave its rule
// blind to such events: refused at validation, saying on what input.
TEST_F(BundleTest, ARegexThatCanHitTheBacktrackingLimitIsRefused) {
  const std::string rule =
      "title: Lookahead\nid: 6f0e1d2c-0000-4000-8000-000000000002\nlogsource: {product: windows, "
      "category: "
      "process_creation}\ndetection:\n  sel:\n    CommandLine|re: '(?=(a+)+$)a'\n  condition: "
      "sel\n";
  auto b = Bundle::from_files({{"evil.yml", rule}});
  ASSERT_TRUE(b);
  const BundleReport r = validate_bundle(*b, options_);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(any_contains(r.all_errors(), "hits PCRE2's backtracking limit on 30 x 'a' then '!'"))
      << r.to_json();
}

TEST_F(BundleTest, FuzzFindingsStayFixed) {
  // libarchive reports an error without a message for this damaged pax header: refused,
  // not a null dereference.
  std::ifstream in(VIGIL_SOURCE_DIR "/tests/data/fuzz/bundle_archive_null_error.tar",
                   std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(bytes.empty());
  auto b = Bundle::from_archive(bytes);
  if (b) (void)validate_bundle(*b, options_);
}

TEST_F(BundleTest, YamlTestEventsBecomeTypedJson) {
  auto j = yaml_event_to_json(
      "{EventID: 1, Image: 'C:\\x.exe', Quoted: '1', Flag: true, None: null, Ratio: 1.5, List: [a, "
      "2]}");
  ASSERT_TRUE(j);
  EXPECT_EQ(
      *j,
      R"({"EventID":1,"Image":"C:\\x.exe","Quoted":"1","Flag":true,"None":null,"Ratio":1.5,"List":["a",2]})");
  EXPECT_FALSE(yaml_event_to_json("{unclosed"));
}

}  // namespace
}  // namespace vigil::match
