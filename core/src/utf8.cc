#include "vigil/core/utf8.h"

#include <simdjson.h>

namespace vigil::utf8 {

namespace {

// The length of the valid sequence at text[i], or 0 if the bytes there are not one.
size_t sequence_length(std::string_view text, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // the range of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;  // no overlong forms
    if (c == 0xed) hi = 0x9f;  // no surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;  // nothing past U+10FFFF
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (b(i + k) < 0x80 || b(i + k) > 0xbf) return 0;
  }
  return n;
}

}  // namespace

bool valid(std::string_view text) { return simdjson::validate_utf8(text.data(), text.size()); }

std::optional<size_t> first_invalid(std::string_view text) {
  if (valid(text)) return std::nullopt;
  for (size_t i = 0; i < text.size();) {
    const size_t n = sequence_length(text, i);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

std::string repaired(std::string_view text) {
  std::string out(text);
  repair(out);
  return out;
}

bool repair(std::string& text) {
  if (valid(text)) return false;
  std::string out;
  out.reserve(text.size() + 16);
  for (size_t i = 0; i < text.size();) {
    const size_t n = sequence_length(text, i);
    if (n == 0) {
      out += "\xef\xbf\xbd";
      ++i;
    } else {
      out.append(text, i, n);
      i += n;
    }
  }
  text = std::move(out);
  return true;
}

std::string describe_invalid(std::string_view text) {
  const auto at = first_invalid(text);
  if (!at) return {};
  size_t line = 1, line_start = 0;
  for (size_t i = 0; i < *at; ++i) {
    if (text[i] == '\n') ++line, line_start = i + 1;
  }
  std::string out = "not valid UTF-8 at line " + std::to_string(line);
  // The key of that line ("  title: ..." -> title), when it is a plain ASCII key.
  std::string_view rest = text.substr(line_start);
  rest = rest.substr(0, rest.find('\n'));
  size_t k = 0;
  while (k < rest.size() && (rest[k] == ' ' || rest[k] == '-')) ++k;
  const size_t colon = rest.find(':', k);
  if (colon != std::string_view::npos && colon > k && line_start + colon < *at) {
    const std::string_view key = rest.substr(k, colon - k);
    bool plain = true;
    for (const char c : key)
      plain =
          plain && static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x80;
    if (plain) out += " (key '" + std::string(key) + "')";
  }
  return out;
}

}  // namespace vigil::utf8
