#pragma once
// Validation of JSON documents that vigil copies into its own output (stored events and
// alerts embedded in API answers, API answers read by the CLI): valid JSON, valid UTF-8,
// and nested no deeper than a bound, checked without recursion so that no document can
// exhaust the stack or the memory of whoever reads it next.
// Thread safety: pure functions.

#include <cstddef>
#include <string_view>

namespace vigil {

// Vigil's bound for documents it writes or reads back: events are refused past 64 levels
// (EventParser), an alert adds three, an API answer a few more.
inline constexpr size_t kMaxJsonDepth = 128;

// Whether `text` is one valid JSON value (RFC 8259, UTF-8) nested at most `max_depth` deep.
bool is_valid_json(std::string_view text, size_t max_depth = kMaxJsonDepth);

}  // namespace vigil
