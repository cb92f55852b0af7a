#pragma once
// Key and value encoding of the store's column families (see store.h for the layout).
// Private to store/.

#include <rocksdb/status.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "vigil/core/status.h"
#include "vigil/core/time.h"
#include "vigil/store/store.h"

namespace vigil::store::encoding {

inline void put_u64(std::string& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out += static_cast<char>((v >> (i * 8)) & 0xff);
}
inline void put_u32(std::string& out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out += static_cast<char>((v >> (i * 8)) & 0xff);
}
inline void put_u16(std::string& out, uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}
inline uint64_t get_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
inline uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
inline uint16_t get_u16(const char* p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) << 8 | static_cast<uint8_t>(p[1]));
}

// Order-preserving encoding of a signed time.
inline uint64_t time_key(TimeMs t) { return static_cast<uint64_t>(t) ^ (1ULL << 63); }
inline TimeMs time_from_key(const char* p) {
  return static_cast<TimeMs>(get_u64(p) ^ (1ULL << 63));
}

inline std::string alert_key(TimeMs t, const AlertId& id) {
  std::string k;
  k.reserve(24);
  put_u64(k, time_key(t));
  k.append(reinterpret_cast<const char*>(id.bytes), 16);
  return k;
}

inline std::string index_prefix(std::string_view value) {
  std::string k(value);
  k += '\0';
  return k;
}

// events: time:u64 | stream_hash:u32 | partition:u32 | offset:u64
constexpr size_t kEventKeySize = 24;
uint32_t stream_hash(std::string_view stream);
inline void event_key(std::string& k, TimeMs t, std::string_view stream, int32_t partition,
                      int64_t offset) {
  k.clear();
  put_u64(k, time_key(t));
  put_u32(k, stream_hash(stream));
  put_u32(k, static_cast<uint32_t>(partition));
  put_u64(k, static_cast<uint64_t>(offset));
}
inline std::string time_prefix(TimeMs t) {
  std::string k;
  put_u64(k, time_key(t));
  return k;
}

// Since format 3, retained events are kept in blocks: the events of one stream's partition
// whose times fall in one window of kEventWindowMs, from one batch:
//   window start:u64 | stream_hash:u32 | partition:u32 | first offset:u64 | 0x01 (25 bytes)
//     -> 0xB1 | len:u16 stream | n:u32 | n x (offset:u64 | time:u64 | size:u32) | n payloads
// entries in offset order. Format 2 wrote one record per event (event_key above ->
// len:u16 stream | payload); both are read. A block key sorts with the window's start, so
// readers take a window's records together and order its events by position.
constexpr int64_t kEventWindowMs = kEventBlockWindowMs;
constexpr size_t kEventBlockKeySize = 25;
constexpr char kEventBlockVersion = '\xB1';
constexpr size_t kEventBlockEntrySize = 20;

inline int64_t floor_div(int64_t a, int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}
// Start of the window holding t, and of the one after it (saturating at the ends of time).
inline TimeMs window_of(TimeMs t) {
  return t < INT64_MIN + kEventWindowMs ? INT64_MIN : floor_div(t, kEventWindowMs) * kEventWindowMs;
}
inline TimeMs window_after(TimeMs t) {
  const TimeMs w = window_of(t);
  return w > INT64_MAX - kEventWindowMs ? INT64_MAX : w + kEventWindowMs;
}

// An event as a record of the events cf holds it; views point into the record.
struct EventEntry {
  TimeMs time = 0;
  uint32_t hash = 0;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string_view stream;
  std::string_view payload;
  // Position: the order of hunts and cursors (a format-2 key's byte order).
  auto position() const {
    return std::tuple(time, hash, static_cast<uint32_t>(partition), static_cast<uint64_t>(offset));
  }
};
// A position as a cursor holds it: a format-2 event key.
std::string encode_position(const EventEntry& e);
std::optional<EventEntry> decode_position(std::string_view key);

// Appends the events of one record (a block, or a format-2 single event) to `out`.
// False: the record cannot be decoded (nothing is appended).
bool decode_events_record(std::string_view key, std::string_view value,
                          std::vector<EventEntry>& out);
// Block key and value for `entries` (one stream and partition, one window, offsets ascending).
void encode_event_block(std::string& key, std::string& value, TimeMs window,
                        std::string_view stream, int32_t partition,
                        const EventRecord* const* entries, size_t n);

// Alert values: 0x02 | level:u8 | str rule_id | str host | str title | n:u16 (str tag)*n |
// summary_size:u32 | JSON, str = len:u16 bytes (longer strings are cut at 65535 bytes);
// summary_size 0: no summary. 0x01 values (before summaries) lack summary_size. A value
// starting with '{' is a format-1 value: the bare JSON.
constexpr char kAlertValueVersion = 0x02;
constexpr char kAlertValueVersionNoSummary = 0x01;
void encode_alert_value(std::string& out, const AlertRecord& a);
struct AlertValue {
  AlertLevel level = AlertLevel::kUnknown;
  std::string_view rule_id, host, title;
  std::string_view tags;  // the encoded tag list: n:u16 (str)*n
  std::string_view json;
  std::string_view summary_head;  // a prefix of json (see AlertRecord::summary_size), or empty
  bool has_header = false;
};
bool decode_alert_value(std::string_view in, AlertValue& out);
// Calls f(tag) per tag of an encoded tag list until it returns true; returns whether it did.
template <typename F>
bool any_tag(std::string_view tags, F&& f) {
  if (tags.size() < 2) return false;
  uint16_t n = get_u16(tags.data());
  size_t pos = 2;
  while (n--) {
    if (tags.size() - pos < 2) return false;
    const uint16_t len = get_u16(tags.data() + pos);
    pos += 2;
    if (tags.size() - pos < len) return false;
    if (f(tags.substr(pos, len))) return true;
    pos += len;
  }
  return false;
}

std::string to_hex(std::string_view bytes);
std::optional<std::string> from_hex(std::string_view hex);

Status from_rocks(const rocksdb::Status& s, const std::string& what);

bool iequals(std::string_view a, std::string_view b);
bool icontains(std::string_view haystack, std::string_view needle);

}  // namespace vigil::store::encoding
