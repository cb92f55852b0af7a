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
  out.reserve(8 + a.rule_id.size() + a.host.size() + a.title.size() + a.tags.size() * 24 + a.json.size());
  out += kAlertValueVersion;
  out += static_cast<char>(a.level);
  put_str(out, a.rule_id);
  put_str(out, a.host);
  put_str(out, a.title);
  const size_t n = std::min<size_t>(a.tags.size(), UINT16_MAX);
  put_u16(out, static_cast<uint16_t>(n));
  for (size_t i = 0; i < n; ++i) put_str(out, a.tags[i]);
  // A summary must be a proper prefix that leaves the document open: "{...".
  const bool summary = a.summary_size > 1 && a.summary_size < a.json.size() && a.summary_size <= UINT32_MAX;
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
  if ((in[0] != kAlertValueVersion && in[0] != kAlertValueVersionNoSummary) || in.size() < 2) return false;
  const auto level = static_cast<uint8_t>(in[1]);
  if (level > static_cast<uint8_t>(AlertLevel::kCritical)) return false;
  out.level = static_cast<AlertLevel>(level);
  size_t pos = 2;
  if (!get_str(in, pos, out.rule_id) || !get_str(in, pos, out.host) || !get_str(in, pos, out.title)) return false;
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
