#include "case_fold.h"

#include <algorithm>
#include <iterator>

namespace vigil::match {
namespace {

struct CaseFold {
  uint32_t from, to;
};

constexpr CaseFold kCaseFolds[] = {
#include "case_folding.inc"
};

static_assert(std::size(kCaseFolds) > 1000, "the generated table is missing");

inline uint32_t ascii_fold(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

}  // namespace

uint32_t fold_case(uint32_t cp) {
  if (cp < 0x80) return ascii_fold(cp);
  const auto* it = std::lower_bound(std::begin(kCaseFolds), std::end(kCaseFolds), cp,
                                    [](const CaseFold& f, uint32_t c) { return f.from < c; });
  return it != std::end(kCaseFolds) && it->from == cp ? it->to : cp;
}

std::vector<uint32_t> case_variants(uint32_t cp) {
  const uint32_t folded = fold_case(cp);
  std::vector<uint32_t> out{folded};
  for (const auto& f : kCaseFolds) {
    if (f.to == folded) out.push_back(f.from);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

uint32_t next_code_point(std::string_view s, size_t& i) {
  const auto c = static_cast<uint8_t>(s[i]);
  size_t len = c < 0x80             ? 1
               : (c & 0xe0) == 0xc0 ? 2
               : (c & 0xf0) == 0xe0 ? 3
               : (c & 0xf8) == 0xf0 ? 4
                                    : 1;
  if (len == 1 || i + len > s.size()) {
    ++i;
    return c;
  }
  uint32_t cp = c & (0x7f >> len);
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    if ((b & 0xc0) != 0x80) {  // not a sequence: the lead byte alone
      ++i;
      return c;
    }
    cp = cp << 6 | (b & 0x3f);
  }
  i += len;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

bool fold_equals(std::string_view a, std::string_view b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const auto x = static_cast<uint8_t>(a[i]), y = static_cast<uint8_t>(b[j]);
    if ((x | y) < 0x80) {  // ASCII on both sides, the common case
      if (ascii_fold(x) != ascii_fold(y)) return false;
      ++i, ++j;
      continue;
    }
    if (fold_case(next_code_point(a, i)) != fold_case(next_code_point(b, j))) return false;
  }
  return i == a.size() && j == b.size();
}

}  // namespace vigil::match
