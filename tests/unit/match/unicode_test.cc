// Characters, not bytes (Sigma 2.1): `?` is one character, caseless values fold Unicode letters
// by simple case folding, `re` runs on UTF-8 characters, fieldref compares folded values. Each
// event is matched by the compiled matcher and by the reference matcher, which builds its own
// PCRE2 patterns in UTF mode; they must agree.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "case_fold.h"  // match/src: the folding table
#include "rule_match.h"
#include "vigil/match/sigma.h"

namespace vigil::match {
namespace {

using test_support::matches;
using Ids = std::vector<std::string>;

std::vector<SigmaRule> rules_of(const std::vector<std::pair<std::string, std::string>>& defs) {
  std::vector<SigmaRule> out;
  for (const auto& [id, detection] : defs) {
    auto r = parse_sigma("title: " + id + "\nid: " + id +
                             "\nlogsource: {product: windows, category: process_creation}\n"
                             "detection: {sel: " +
                             detection + ", condition: sel}\n",
                         id + ".yml");
    EXPECT_TRUE(r) << r.status().to_string();
    if (r) out.push_back(std::move(*r));
  }
  return out;
}

std::string ev(const std::string& field, const std::string& utf8) {
  return R"({"EventID":1,")" + field + R"(":")" + utf8 + "\"}";
}

TEST(CaseFolding, TableAndVariants) {
  EXPECT_EQ(fold_case(U'É'), U'é');
  EXPECT_EQ(fold_case(U'Д'), U'д');
  EXPECT_EQ(fold_case(U'ς'), U'σ');
  EXPECT_EQ(fold_case(0x1E9E), U'ß');     // LATIN CAPITAL LETTER SHARP S
  EXPECT_EQ(fold_case(0x212A), U'k');     // KELVIN SIGN
  EXPECT_EQ(fold_case(0x0130), 0x0130u);  // İ: only Turkic and full folding map it
  EXPECT_EQ(fold_case(0x0131), 0x0131u);  // ı has no case partner in simple folding
  EXPECT_EQ(case_variants(U'σ'), (std::vector<uint32_t>{0x3a3, 0x3c2, 0x3c3}));
  EXPECT_EQ(case_variants(U'k'), (std::vector<uint32_t>{'K', 'k', 0x212A}));
  EXPECT_EQ(case_variants(0x1F600), (std::vector<uint32_t>{0x1F600}));  // no case
  EXPECT_TRUE(fold_equals("Straße", "STRAẞE"));
  EXPECT_TRUE(
      fold_equals("\xe2\x84\xaa"
                  "ILL",
                  "kill"));
  EXPECT_FALSE(fold_equals("Straße", "STRASSE"));  // full folding only
  EXPECT_FALSE(fold_equals("ı", "i"));
  EXPECT_FALSE(fold_equals("é", "éé"));
  // Variants are spelled out for non-ASCII letters only; ASCII is left to the caseless flag.
  EXPECT_EQ(sigma_value_to_regex("aé", false, false), "a(?:\\xc3\\x89|\\xc3\\xa9)");
  EXPECT_EQ(sigma_value_to_regex("aé", false, false, false, false), "a\\xc3\\xa9");
  EXPECT_EQ(sigma_value_to_regex("\xe2\x84\xaa", false, false), "(?:K|\\xe2\\x84\\xaa)");
}

// Every string modifier and keywords fold Unicode letters; `cased` does not.
TEST(CaseFolding, CaselessValuesFoldUnicodeLetters) {
  const auto rules = rules_of({
      {"pw", "{CommandLine|contains: 'contraseña'}"},
      {"cyr", "{CommandLine|contains: 'д'}"},
      {"greek", "{CommandLine|endswith: 'σ'}"},
      {"sharp", "{CommandLine|startswith: 'straße'}"},
      {"eq", "{CommandLine: 'Ä'}"},
      {"cased", "{CommandLine|contains|cased: 'é'}"},
      {"long", "{CommandLine|contains: 'администраторы'}"},  // over 64 variants: a regex
      {"dotless", "{CommandLine: 'ı'}"},
      {"dotted", "{CommandLine: 'İ'}"},
      {"i", "{CommandLine: 'i'}"},
      {"kelvin", "{CommandLine: 'k'}"},
  });
  ASSERT_EQ(rules.size(), 11u);
  const auto hits = matches(rules, {
                                       ev("CommandLine", "net user CONTRASEÑA"),
                                       ev("CommandLine", "Д"),
                                       ev("CommandLine", "ΟΔΥΣΣΕΥΣ"),
                                       ev("CommandLine", "ὀδυσσεύς"),  // final sigma
                                       ev("CommandLine", "STRAẞE 1"),
                                       ev("CommandLine", "STRASSE 1"),
                                       ev("CommandLine", "ä"),
                                       ev("CommandLine", "äx"),
                                       ev("CommandLine", "É"),
                                       ev("CommandLine", "é"),
                                       ev("CommandLine", "АДМИНИСТРАТОРЫ домена"),
                                       ev("CommandLine", "I"),
                                       ev("CommandLine", "ı"),
                                       ev("CommandLine", "İ"),
                                       ev("CommandLine", "K"),
                                       ev("CommandLine", "\xe2\x84\xaa"),
                                   });
  EXPECT_EQ(hits, (std::vector<Ids>{{"pw"},
                                    {"cyr"},
                                    {"greek"},  // Greek Δ is not Cyrillic Д
                                    {"greek"},
                                    {"sharp"},
                                    {},
                                    {"eq"},
                                    {},
                                    {},
                                    {"cased"},
                                    {"cyr", "long"},
                                    {"i"},
                                    {"dotless"},
                                    {"dotted"},
                                    {"kelvin"},
                                    // U+212A folds to k, but ASCII letters in a value match
                                    // ASCII letters only (README: "Characters, not bytes").
                                    {}}));
}

// `?` is one character of one to four bytes; in a `not` filter too.
TEST(CaseFolding, QuestionMarkAndFiltersOnCharacters) {
  const auto rules = rules_of({
      {"one", "{CommandLine: 'a?c'}"},
      {"two", "{CommandLine|contains: 'x??y'}"},
      {"word", "{CommandLine|endswith: 'Gr?ppe'}"},
  });
  const auto hits = matches(rules, {
                                       ev("CommandLine", "aéc"),
                                       ev("CommandLine", "a€c"),
                                       ev("CommandLine", "a😀c"),
                                       ev("CommandLine", "aééc"),
                                       ev("CommandLine", "-xÉÉy-"),
                                       ev("CommandLine", "-xÉy-"),
                                       ev("CommandLine", "GRÜPPE"),
                                   });
  EXPECT_EQ(hits, (std::vector<Ids>{{"one"}, {"one"}, {"one"}, {}, {"two"}, {}, {"word"}}));
}

// `re` runs in UTF-8 mode: `.` and `[^...]` are one character, `i` folds Unicode letters.
TEST(CaseFolding, RegexesRunOnCharacters) {
  const auto rules = rules_of({
      {"dot", "{CommandLine|re: '^a.c$'}"},
      {"neg", "{CommandLine|re: '^a[^x]c$'}"},
      {"fold", "{CommandLine|re|i: 'straße'}"},
      {"inline", "{CommandLine|re: '(?i)пароль'}"},
      {"word", "{CommandLine|re: '^\\w+$'}"},  // \w stays ASCII
  });
  const auto hits = matches(rules, {
                                       ev("CommandLine", "aéc"),
                                       ev("CommandLine", "a😀c"),
                                       ev("CommandLine", "STRAẞE"),
                                       ev("CommandLine", "ПАРОЛЬ"),
                                       ev("CommandLine", "abc"),
                                       ev("CommandLine", "é"),
                                   });
  EXPECT_EQ(hits,
            (std::vector<Ids>{
                {"dot", "neg"}, {"dot", "neg"}, {"fold"}, {"inline"}, {"dot", "neg", "word"}, {}}));
}

// fieldref compares the two values case-folded.
TEST(CaseFolding, FieldReferencesCompareFoldedValues) {
  const auto rules = rules_of({{"same", "{User|fieldref: TargetUser}"}});
  auto two = [](const std::string& a, const std::string& b) {
    return R"({"EventID":1,"User":")" + a + R"(","TargetUser":")" + b + "\"}";
  };
  const auto hits =
      matches(rules, {two("Straße", "STRAẞE"), two("Straße", "STRASSE"), two("админ", "АДМИН"),
                      two("kill", "\xe2\x84\xaaILL"), two("é", "ée")});
  EXPECT_EQ(hits, (std::vector<Ids>{{"same"}, {}, {"same"}, {"same"}, {}}));
}

// Keywords search the raw event: a caseless keyword folds its Unicode letters too.
TEST(CaseFolding, KeywordsFoldUnicodeLetters) {
  auto r = parse_sigma(
      "title: k\nid: kw\nlogsource: {product: windows, category: process_creation}\n"
      "detection: {keywords: ['contraseña'], condition: keywords}\n",
      "k.yml");
  ASSERT_TRUE(r) << r.status().to_string();
  const auto hits =
      matches({*r}, {ev("CommandLine", "CONTRASEÑA"), ev("CommandLine", "CONTRASENA")});
  EXPECT_EQ(hits, (std::vector<Ids>{{"kw"}, {}}));
}

}  // namespace
}  // namespace vigil::match
