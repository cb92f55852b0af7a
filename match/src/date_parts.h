#pragma once
// Sigma 2.1 time modifiers: a number taken from a date field's value (minute, hour, day, ISO
// week, month, year). Private to vigil_match: the compiler and the matcher.

#include <cstdint>
#include <optional>
#include <string_view>

namespace vigil::match::detail {

enum class TimePart : uint8_t { kNone, kMinute, kHour, kDay, kWeek, kMonth, kYear };

TimePart time_part_named(std::string_view name);

// The part of a date as its text writes it ("2024-12-30T23:05:00Z", "2024-12-30 23:05:00.123",
// any offset left as written: the modifiers convert no time zone), or of a number of epoch
// milliseconds (UTC); nullopt for anything else. The week is ISO 8601's (1-53).
std::optional<int> date_part(std::string_view text, TimePart part);

}  // namespace vigil::match::detail
