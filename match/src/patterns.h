#pragma once
// The patterns of Sigma predicates as Hyperscan and PCRE2 take them, and the ASCII case
// helpers the compiler and the matcher share. Private to vigil_match.

#include <hs/hs.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/core/status.h"
#include "vigil/match/sigma.h"

namespace vigil::match {

// PCRE2 options with the meaning of Hyperscan flags (UTF-8 mode for HS_FLAG_UTF8, else bytes).
uint32_t pcre2_options(unsigned hs_flags);

// The Hyperscan flags of a pattern predicate.
unsigned hs_flags(const Predicate& p);

// Checks that Hyperscan accepts a pattern, without building a database. True: only as a
// prefilter (lookaround, backreferences), so every prefilter match is confirmed by PCRE2.
Expected<bool> check_pattern(const Predicate& p);

// The PCRE2 program that confirms a Hyperscan prefilter match of `regex`.
Expected<pcre2_code*> compile_confirm(const std::string& regex, unsigned hs_flags);

// A value on which `re` hits the confirmation limits, described, if one of the classic
// catastrophic-backtracking shapes finds one (see patterns.cc).
std::optional<std::string> backtracking_probe(pcre2_code* re, std::string_view regex,
                                              uint32_t match_limit, uint32_t depth_limit);

// The plain strings a pattern stands for: `\A`? literal bytes and groups of literal
// alternatives (windash) `\z`?, at most 64 variants; `anchors` gets 1 for `\A`, 2 for `\z`.
// nullopt for anything else.
std::optional<std::vector<std::string>> literal_variants(const std::string& r, uint8_t& anchors);

inline char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

inline bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

}  // namespace vigil::match
