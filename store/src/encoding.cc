#include "encoding.h"

#include <xxhash.h>

#include <algorithm>

namespace vigil::store::encoding {

uint32_t stream_hash(std::string_view stream) { return XXH32(stream.data(), stream.size(), 0); }

namespace {

void put_str(std::string& out, std::string_view s) {
  const size_t n = std::min<size_t>(s.size(), UINT16_MAX);
  put_u16(out, static_cast<uint16_t>(n));
  out.append(s.data(), n);
}

bool get_str(std::string_view in, size_t& pos, std::string_view& s) {
  if (in.size() - pos < 2) return false;
  const uint16_t n = get_u16(in.data() + pos);
  pos += 2;
  if (in.size() - pos < n) return false;
  s = in.substr(pos, n);
  pos += n;
  return true;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

}  // namespace

void encode_alert_value(std::string& out, const AlertRecord& a) {
  out.clear();
  out.reserve(8 + a.rule_id.size() + a.host.size() + a.title.size() + a.tags.size() * 24 +
              a.json.size());
  out += kAlertValueVersion;
  out += static_cast<char>(a.level);
  put_str(out, a.rule_id);
  put_str(out, a.host);
  put_str(out, a.title);
  const size_t n = std::min<size_t>(a.tags.size(), UINT16_MAX);
  put_u16(out, static_cast<uint16_t>(n));
  for (size_t i = 0; i < n; ++i) put_str(out, a.tags[i]);
  // A summary must be a proper prefix that leaves the document open: "{...".
  const bool summary =
      a.summary_size > 1 && a.summary_size < a.json.size() && a.summary_size <= UINT32_MAX;
  put_u32(out, summary ? static_cast<uint32_t>(a.summary_size) : 0);
  out += a.json;
}

bool decode_alert_value(std::string_view in, AlertValue& out) {
  out = AlertValue{};
  if (in.empty()) return false;
  if (in[0] == '{') {  // format 1
    out.json = in;
    return true;
  }
  if ((in[0] != kAlertValueVersion && in[0] != kAlertValueVersionNoSummary) || in.size() < 2)
    return false;
  const auto level = static_cast<uint8_t>(in[1]);
  if (level > static_cast<uint8_t>(AlertLevel::kCritical)) return false;
  out.level = static_cast<AlertLevel>(level);
  size_t pos = 2;
  if (!get_str(in, pos, out.rule_id) || !get_str(in, pos, out.host) || !get_str(in, pos, out.title))
    return false;
  const size_t tags_begin = pos;
  if (in.size() - pos < 2) return false;
  uint16_t n = get_u16(in.data() + pos);
  pos += 2;
  std::string_view tag;
  while (n--) {
    if (!get_str(in, pos, tag)) return false;
  }
  out.tags = in.substr(tags_begin, pos - tags_begin);
  uint32_t summary_size = 0;
  if (in[0] == kAlertValueVersion) {
    if (in.size() - pos < 4) return false;
    summary_size = get_u32(in.data() + pos);
    pos += 4;
  }
  out.json = in.substr(pos);
  if (summary_size != 0) {
    if (summary_size >= out.json.size()) return false;
    out.summary_head = out.json.substr(0, summary_size);
  }
  out.has_header = true;
  return true;
}

std::string encode_position(const EventEntry& e) {
  std::string k;
  k.reserve(kEventKeySize);
  put_u64(k, time_key(e.time));
  put_u32(k, e.hash);
  put_u32(k, static_cast<uint32_t>(e.partition));
  put_u64(k, static_cast<uint64_t>(e.offset));
  return k;
}

std::optional<EventEntry> decode_position(std::string_view key) {
  if (key.size() != kEventKeySize) return std::nullopt;
  EventEntry e;
  e.time = time_from_key(key.data());
  e.hash = get_u32(key.data() + 8);
  e.partition = static_cast<int32_t>(get_u32(key.data() + 12));
  e.offset = static_cast<int64_t>(get_u64(key.data() + 16));
  return e;
}

bool decode_events_record(std::string_view key, std::string_view value,
                          std::vector<EventEntry>& out) {
  if (key.size() == kEventKeySize) {  // format 2: one event
    auto e = decode_position(key);
    size_t pos = 0;
    if (!get_str(value, pos, e->stream)) return false;
    e->payload = value.substr(pos);
    out.push_back(*e);
    return true;
  }
  if (key.size() != kEventBlockKeySize || value.empty() || value[0] != kEventBlockVersion)
    return false;
  const uint32_t hash = get_u32(key.data() + 8);
  const auto partition = static_cast<int32_t>(get_u32(key.data() + 12));
  const TimeMs window = time_from_key(key.data());
  size_t pos = 1;
  std::string_view stream;
  if (!get_str(value, pos, stream) || value.size() - pos < 4) return false;
  const uint32_t n = get_u32(value.data() + pos);
  pos += 4;
  if (n == 0 || (value.size() - pos) / kEventBlockEntrySize < n) return false;
  const char* index = value.data() + pos;
  size_t payload = pos + static_cast<size_t>(n) * kEventBlockEntrySize;
  const size_t first = out.size();
  for (uint32_t i = 0; i < n; ++i) {
    const char* p = index + static_cast<size_t>(i) * kEventBlockEntrySize;
    EventEntry e;
    e.hash = hash;
    e.partition = partition;
    e.stream = stream;
    e.offset = static_cast<int64_t>(get_u64(p));
    e.time = time_from_key(p + 8);
    const uint32_t size = get_u32(p + 16);
    if (value.size() - payload < size || window_of(e.time) != window) {
      out.resize(first);
      return false;
    }
    e.payload = value.substr(payload, size);
    payload += size;
    out.push_back(e);
  }
  if (payload != value.size()) {
    out.resize(first);
    return false;
  }
  return true;
}

void encode_event_block(std::string& key, std::string& value, TimeMs window,
                        std::string_view stream, int32_t partition,
                        const EventRecord* const* entries, size_t n) {
  event_key(key, window, stream, partition, entries[0]->offset);  // the window start's format-2 key
  key += '\x01';
  value.clear();
  value += kEventBlockVersion;
  put_str(value, stream);
  put_u32(value, static_cast<uint32_t>(n));
  for (size_t i = 0; i < n; ++i) {
    put_u64(value, static_cast<uint64_t>(entries[i]->offset));
    put_u64(value, time_key(entries[i]->time));
    put_u32(value, static_cast<uint32_t>(entries[i]->payload.size()));
  }
  for (size_t i = 0; i < n; ++i) value.append(entries[i]->payload);
}

std::string to_hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nib(hex[i]), lo = nib(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi << 4 | lo);
  }
  return out;
}

Status from_rocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::ok();
  if (s.IsCorruption()) return Status::corruption(what + ": " + s.ToString());
  if (s.IsNoSpace() || s.IsIOError()) return Status::io_error(what + ": " + s.ToString());
  return Status::internal(what + ": " + s.ToString());
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool icontains(std::string_view haystack, std::string_view needle) {
  if (needle.empty()) return true;
  if (needle.size() > haystack.size()) return false;
  const auto it = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(),
                              [](char x, char y) { return lower(x) == lower(y); });
  return it != haystack.end();
}

}  // namespace vigil::store::encoding
