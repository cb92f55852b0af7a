#pragma once
// Unicode simple case folding (CaseFolding.txt, statuses C and S) for Sigma's case-insensitive
// values: the case variants a caseless pattern spells out for a non-ASCII letter, and caseless
// equality of two event values (fieldref). Private to vigil_match.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vigil::match {

// The simple case folding of a code point (itself when it has none).
uint32_t fold_case(uint32_t cp);

// Every code point whose simple case folding is `cp`'s, `cp` included, ascending: {é, É},
// {k, K, U+212A KELVIN SIGN}, {σ, ς, Σ}. One element for a code point without case.
std::vector<uint32_t> case_variants(uint32_t cp);

// Decodes the UTF-8 sequence at s[i] (well-formed: events and rule text are validated) and
// advances i past it; a stray byte is returned as itself.
uint32_t next_code_point(std::string_view s, size_t& i);

// Appends `cp` as UTF-8.
void append_utf8(std::string& out, uint32_t cp);

// Whether a and b are equal once each code point is case-folded (ASCII compared directly).
bool fold_equals(std::string_view a, std::string_view b);

}  // namespace vigil::match
