#include "date_parts.h"

#include <charconv>

namespace vigil::match::detail {
namespace {

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

struct Civil {
  int64_t year;
  unsigned month, day, hour, minute;
};

Civil civil_from_ms(int64_t ms) {
  int64_t days = ms / 86'400'000;
  int64_t rem = ms % 86'400'000;
  if (rem < 0) {
    rem += 86'400'000;
    --days;
  }
  const int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2);
  return {y, m, d, static_cast<unsigned>(rem / 3'600'000),
          static_cast<unsigned>(rem / 60'000 % 60)};
}

bool digits(std::string_view s, size_t at, size_t n, unsigned& out) {
  if (at + n > s.size()) return false;
  out = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + static_cast<unsigned>(s[i] - '0');
  }
  return true;
}

std::optional<Civil> parse(std::string_view s) {
  Civil c{};
  unsigned y = 0;
  if (digits(s, 0, 4, y) && s.size() >= 10 && s[4] == '-' && s[7] == '-' &&
      digits(s, 5, 2, c.month) && digits(s, 8, 2, c.day)) {
    c.year = y;
    static constexpr unsigned kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (c.month < 1 || c.month > 12 || c.day < 1 || c.day > kDays[c.month - 1] ||
        (c.month == 2 && c.day == 29 && !leap))
      return std::nullopt;
    if (s.size() >= 16 && (s[10] == 'T' || s[10] == 't' || s[10] == ' ') && s[13] == ':') {
      if (!digits(s, 11, 2, c.hour) || !digits(s, 14, 2, c.minute) || c.hour > 23 || c.minute > 59)
        return std::nullopt;
    }
    return c;
  }
  int64_t ms = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), ms);
  if (ec == std::errc() && end == s.data() + s.size() && !s.empty()) return civil_from_ms(ms);
  return std::nullopt;
}

// ISO 8601 week number: the week (Monday first) holding the year's first Thursday is 1.
int iso_week(const Civil& c) {
  const int64_t days = days_from_civil(c.year, c.month, c.day);
  const int weekday = static_cast<int>(((days % 7) + 7 + 3) % 7) + 1;  // Monday 1 .. Sunday 7
  const int ordinal = static_cast<int>(days - days_from_civil(c.year, 1, 1)) + 1;
  const int week = (ordinal - weekday + 10) / 7;
  auto weeks_in = [](int64_t year) {
    const int64_t jan1 = days_from_civil(year, 1, 1);
    const int jan1_weekday = static_cast<int>(((jan1 % 7) + 7 + 3) % 7) + 1;
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return jan1_weekday == 4 || (leap && jan1_weekday == 3) ? 53 : 52;
  };
  if (week < 1) return weeks_in(c.year - 1);
  if (week > weeks_in(c.year)) return 1;
  return week;
}

}  // namespace

TimePart time_part_named(std::string_view name) {
  if (name == "minute") return TimePart::kMinute;
  if (name == "hour") return TimePart::kHour;
  if (name == "day") return TimePart::kDay;
  if (name == "week") return TimePart::kWeek;
  if (name == "month") return TimePart::kMonth;
  if (name == "year") return TimePart::kYear;
  return TimePart::kNone;
}

std::optional<int> date_part(std::string_view text, TimePart part) {
  const auto c = parse(text);
  if (!c) return std::nullopt;
  switch (part) {
    case TimePart::kMinute:
      return static_cast<int>(c->minute);
    case TimePart::kHour:
      return static_cast<int>(c->hour);
    case TimePart::kDay:
      return static_cast<int>(c->day);
    case TimePart::kWeek:
      return iso_week(*c);
    case TimePart::kMonth:
      return static_cast<int>(c->month);
    case TimePart::kYear:
      return static_cast<int>(c->year);
    case TimePart::kNone:
      break;
  }
  return std::nullopt;
}

}  // namespace vigil::match::detail
