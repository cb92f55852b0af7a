#pragma once
// UTF-8 checks for what vigil reads (rule files, mappings, configs) and repair for what it
// writes: every JSON document vigil emits is valid UTF-8 (RFC 8259 section 8.1).
// Thread safety: pure functions.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace vigil::utf8 {

// Whether `text` is valid UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF).
bool valid(std::string_view text);

// The byte offset of the first invalid sequence, if any.
std::optional<size_t> first_invalid(std::string_view text);

// `text` with every invalid sequence replaced by U+FFFD; valid text is returned unchanged.
std::string repaired(std::string_view text);
// Repairs `text` in place; returns whether anything was replaced. Repairing a JSON
// document keeps it JSON: invalid bytes can only stand inside its strings.
bool repair(std::string& text);

// For a YAML (or any line-based) file that is not valid UTF-8: "not valid UTF-8 at line L
// (key 'title')", naming the key of that line when it has one. Empty if `text` is valid.
std::string describe_invalid(std::string_view text);

}  // namespace vigil::utf8
