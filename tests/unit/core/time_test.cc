#include "vigil/core/time.h"

#include <gtest/gtest.h>

namespace vigil {
namespace {

TEST(Rfc3339, ParsesUtcAndOffsets) {
  EXPECT_EQ(parse_rfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_rfc3339("2026-11-24T17:00:00Z"), 1795539600000);
  EXPECT_EQ(parse_rfc3339("2026-11-24T17:00:00.123Z"), 1795539600123);
  EXPECT_EQ(parse_rfc3339("2026-11-24T18:00:00+01:00"), 1795539600000);
  EXPECT_EQ(parse_rfc3339("2026-11-24T16:30:00-00:30"), 1795539600000);
  // Sysmon's UtcTime and evtx's SystemTime forms.
  EXPECT_EQ(parse_rfc3339("2025-10-25 13:44:33.433"), parse_rfc3339("2025-10-25T13:44:33.433Z"));
  EXPECT_EQ(parse_rfc3339("2025-10-25T13:44:33.440907Z"),
            parse_rfc3339("2025-10-25T13:44:33.440Z"));
  EXPECT_EQ(parse_rfc3339("2024-02-29T00:00:00Z"), 1709164800000);
}

TEST(Rfc3339, RejectsMalformed) {
  for (const char* bad :
       {"", "2026", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z",
        "2026-11-24T24:00:00Z", "2026-11-24T17:00:00.Z", "2026-11-24T17:00:00+1:00",
        "2026-11-24T17:00:00Zjunk", "2026-11-24X17:00:00Z", "yesterday"}) {
    EXPECT_FALSE(parse_rfc3339(bad).has_value()) << bad;
  }
}

TEST(Rfc3339, FormatRoundTrips) {
  for (TimeMs t : {TimeMs{0}, TimeMs{1795539600123}, TimeMs{951782400000}, TimeMs{-1000}}) {
    EXPECT_EQ(parse_rfc3339(format_rfc3339(t)), t) << format_rfc3339(t);
  }
  EXPECT_EQ(format_rfc3339(1795539600123), "2026-11-24T17:00:00.123Z");
}

TEST(Duration, Units) {
  EXPECT_EQ(parse_duration_ms("250ms"), 250);
  EXPECT_EQ(parse_duration_ms("90s"), 90000);
  EXPECT_EQ(parse_duration_ms("15m"), 900000);
  EXPECT_EQ(parse_duration_ms("1h"), 3600000);
  EXPECT_EQ(parse_duration_ms("7d"), 604800000);
  for (const char* bad : {"", "h", "1", "1w", "-1h", "1.5h", "99999999999999999999d"}) {
    EXPECT_FALSE(parse_duration_ms(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace vigil
