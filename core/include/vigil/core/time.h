#pragma once
// Time: a Clock seam for tests, and the one timestamp format vigil speaks (RFC 3339, UTC).

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vigil {

// Milliseconds since the Unix epoch, UTC.
using TimeMs = int64_t;

// Clock is the seam through which components read time; tests inject ManualClock.
// Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeMs now_ms() const = 0;
  // Monotonic nanoseconds, for measuring durations.
  virtual int64_t steady_ns() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimeMs now_ms() const override;
  int64_t steady_ns() const override;
  static const SystemClock& instance();
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimeMs start) : now_(start) {}
  TimeMs now_ms() const override { return now_.load(); }
  int64_t steady_ns() const override { return now_.load() * 1'000'000; }
  void advance_ms(int64_t ms) { now_ += ms; }
  void set_ms(TimeMs t) { now_ = t; }

 private:
  std::atomic<TimeMs> now_;
};

// Parses an RFC 3339 / ISO 8601 timestamp ("2026-11-24T17:00:00Z",
// "2026-11-24T17:00:00.123+01:00", "2025-11-26 05:11:27.927") into epoch ms.
// A timestamp without a zone is UTC. Returns nullopt for anything else.
std::optional<TimeMs> parse_rfc3339(std::string_view text);

// Parses a duration such as "90s", "15m", "1h", "7d", "250ms".
std::optional<int64_t> parse_duration_ms(std::string_view text);

// "2026-11-24T17:00:00.123Z"
std::string format_rfc3339(TimeMs t);

}  // namespace vigil
