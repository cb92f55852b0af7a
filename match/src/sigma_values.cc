// Sigma values as the patterns the engine compiles: wildcards, escapes and the encodings of
// the base64, base64offset, utf16/wide and windash modifiers.

#include <charconv>
#include <string>

#include "case_fold.h"
#include "sigma_internal.h"

namespace vigil::match::detail {
namespace {

void append_literal(std::string& out, unsigned char c) {
  if (std::isalnum(c) || c == '_') {
    out += static_cast<char>(c);
  } else {
    static constexpr char kHex[] = "0123456789abcdef";
    out += "\\x";
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
}

// The dash characters Windows command lines accept in place of '-' (Sigma's windash).
constexpr const char* kWindashAlternatives =
    "(?:\\x2d|\\x2f|\\xe2\\x80\\x93|\\xe2\\x80\\x94|\\xe2\\x80\\x95)";

// Appends `c` as it appears inside a JSON string written by a common JSON writer.
void append_json_literal(std::string& out, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  const char* shorthand = c == '"'    ? "\\\""
                          : c == '\\' ? "\\\\"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t"
                          : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f"
                                      : nullptr;
  if (shorthand) {
    for (const char* p = shorthand; *p; ++p) append_literal(out, static_cast<unsigned char>(*p));
  } else if (c < 0x20) {
    for (char x : std::string{'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]})
      append_literal(out, static_cast<unsigned char>(x));
  } else {
    append_literal(out, c);
  }
}

// `json`: the value is searched in an event's raw JSON text (keywords), so its characters are
// matched in their escaped JSON form.
}  // namespace

constexpr const char* kUtf8Char =
    "(?:[\\x00-\\x7f]|[\\xc2-\\xdf][\\x80-\\xbf]|[\\xe0-\\xef][\\x80-\\xbf]{2}|"
    "[\\xf0-\\xf4][\\x80-\\xbf]{3})";

std::string to_regex(const std::string& value, bool anchor_start, bool anchor_end, bool windash,
                     bool caseless, bool json) {
  std::string out;
  out.reserve(value.size() * 2 + 8);
  if (anchor_start) out += "\\A";
  auto literal = [&](unsigned char c) {
    json ? append_json_literal(out, c) : append_literal(out, c);
  };
  std::string pending;  // the bytes of a non-ASCII character read so far
  auto character = [&](const std::string& bytes) {
    // A caseless non-ASCII letter: its case variants spelled out (the patterns run in byte
    // mode, where Hyperscan's caseless flag folds ASCII only); ASCII letters fold by the flag.
    size_t at = 0;
    const std::vector<uint32_t> variants =
        caseless ? case_variants(next_code_point(bytes, at)) : std::vector<uint32_t>{};
    if (variants.size() < 2) {
      for (const char b : bytes) literal(static_cast<unsigned char>(b));
      return;
    }
    out += "(?:";
    bool first = true, ascii_done = false;
    for (const uint32_t v : variants) {
      if (v < 0x80) {  // k and K of U+212A KELVIN SIGN: the flag folds them, one is enough
        if (ascii_done) continue;
        ascii_done = true;
      }
      if (!first) out += '|';
      first = false;
      std::string utf8;
      append_utf8(utf8, v);
      for (const char b : utf8) literal(static_cast<unsigned char>(b));
    }
    out += ')';
  };
  for_each_sigma_char(value, [&](char c, bool wildcard) {
    const auto byte = static_cast<unsigned char>(c);
    if (!pending.empty() || (!wildcard && byte >= 0x80)) {
      pending += c;
      const auto lead = static_cast<unsigned char>(pending[0]);
      const size_t length = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
      if (pending.size() >= length) {
        character(pending);
        pending.clear();
      }
    } else if (wildcard) {
      // `?` is "a single mandatory character" (rules specification): one UTF-8 sequence,
      // not one byte (events are valid UTF-8; patterns run in byte mode).
      out += c == '*' ? ".*" : kUtf8Char;
    } else if (windash && (c == '-' || c == '/')) {
      out += kWindashAlternatives;
    } else {
      literal(byte);
    }
  });
  for (const char b : pending) literal(static_cast<unsigned char>(b));  // a truncated sequence
  if (anchor_end) out += "\\z";
  return out;
}

std::vector<SigmaChar> sigma_chars(const std::string& value) {
  std::vector<SigmaChar> out;
  for_each_sigma_char(value, [&](char c, bool wildcard) { out.push_back({c, wildcard}); });
  return out;
}

std::string sigma_text(const std::vector<SigmaChar>& chars, size_t from, size_t to) {
  std::string out;
  for (size_t i = from; i < to; ++i) {
    if (!chars[i].wildcard && (chars[i].c == '*' || chars[i].c == '?' || chars[i].c == '\\'))
      out += '\\';
    out += chars[i].c;
  }
  return out;
}

// A regex matching `bytes` literally (used once a value was transformed into bytes).
std::string literal_regex(const std::string& bytes, bool anchor_start, bool anchor_end) {
  std::string out = anchor_start ? "\\A" : "";
  for (unsigned char c : bytes) append_literal(out, c);
  if (anchor_end) out += "\\z";
  return out;
}

std::string base64(const std::string& in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = static_cast<uint8_t>(in[i]) << 16 | static_cast<uint8_t>(in[i + 1]) << 8 |
                       static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < in.size()) {
    const uint32_t v = static_cast<uint8_t>(in[i]) << 16 |
                       (i + 1 < in.size() ? static_cast<uint8_t>(in[i + 1]) << 8 : 0);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Sigma's base64offset: the value's base64 form at each of the three alignments it can have
// inside a longer encoded text, without the characters that depend on the neighbours
// (as pySigma's SigmaBase64OffsetModifier).
std::vector<std::string> base64_offsets(const std::string& in) {
  static constexpr size_t kStart[] = {0, 2, 3};
  static constexpr int kEnd[] = {0, -3, -2};  // 0: to the end
  std::vector<std::string> out;
  for (size_t i = 0; i < 3; ++i) {
    const std::string enc = base64(std::string(i, ' ') + in);
    const int end_trim = kEnd[(in.size() + i) % 3];
    const size_t end = end_trim == 0 ? enc.size() : enc.size() - static_cast<size_t>(-end_trim);
    if (end > kStart[i]) out.push_back(enc.substr(kStart[i], end - kStart[i]));
  }
  return out;
}

// UTF-8 to UTF-16 (little or big endian); nullopt for invalid UTF-8.
std::optional<std::string> utf16(const std::string& in, bool little_endian) {
  std::string out;
  auto put = [&](uint16_t u) {
    out += static_cast<char>(little_endian ? (u & 0xff) : (u >> 8));
    out += static_cast<char>(little_endian ? (u >> 8) : (u & 0xff));
  };
  for (size_t i = 0; i < in.size();) {
    const auto c = static_cast<uint8_t>(in[i]);
    uint32_t cp;
    size_t len;
    if (c < 0x80)
      cp = c, len = 1;
    else if ((c & 0xe0) == 0xc0)
      cp = c & 0x1f, len = 2;
    else if ((c & 0xf0) == 0xe0)
      cp = c & 0x0f, len = 3;
    else if ((c & 0xf8) == 0xf0)
      cp = c & 0x07, len = 4;
    else
      return std::nullopt;
    if (i + len > in.size()) return std::nullopt;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<uint8_t>(in[i + k]) & 0xc0) != 0x80) return std::nullopt;
      cp = cp << 6 | (static_cast<uint8_t>(in[i + k]) & 0x3f);
    }
    i += len;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      put(static_cast<uint16_t>(0xd800 | (cp >> 10)));
      put(static_cast<uint16_t>(0xdc00 | (cp & 0x3ff)));
    } else {
      put(static_cast<uint16_t>(cp));
    }
  }
  return out;
}

bool valid_number(const std::string& s) {
  double d;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  return ec == std::errc() && end == s.data() + s.size();
}

// True when the Sigma value is made of unescaped '*' only (or is empty).
bool only_star_wildcards(const std::string& value) {
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '*') return false;
  }
  return true;
}

}  // namespace vigil::match::detail
