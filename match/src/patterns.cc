#include "patterns.h"

#include <cctype>
#include <cstdlib>
#include <string>

namespace vigil::match {

uint32_t pcre2_options(unsigned hs_flags) {
  uint32_t o = 0;
  if (hs_flags & HS_FLAG_CASELESS) o |= PCRE2_CASELESS;
  if (hs_flags & HS_FLAG_DOTALL) o |= PCRE2_DOTALL;
  if (hs_flags & HS_FLAG_MULTILINE) o |= PCRE2_MULTILINE;
  if (hs_flags & HS_FLAG_UTF8) o |= PCRE2_UTF;  // the subject is checked at each match
  return o;
}

unsigned hs_flags(const Predicate& p) {
  unsigned flags = HS_FLAG_SINGLEMATCH;
  if (p.caseless) flags |= HS_FLAG_CASELESS;
  if (p.dotall) flags |= HS_FLAG_DOTALL;
  if (p.multiline) flags |= HS_FLAG_MULTILINE;
  // A `re` value runs on characters: `.` and `[^...]` take one UTF-8 sequence and `i` folds
  // Unicode letters (events are valid UTF-8). \w, \d, \s stay ASCII, as without PCRE2_UCP.
  if (p.user_regex) flags |= HS_FLAG_ALLOWEMPTY | HS_FLAG_UTF8;
  return flags;
}

Expected<bool> check_pattern(const Predicate& p) {
  hs_expr_info_t* info = nullptr;
  hs_compile_error_t* err = nullptr;
  if (hs_expression_info(p.regex.c_str(), hs_flags(p), &info, &err) == HS_SUCCESS) {
    std::free(info);
    return false;
  }
  std::string msg = err ? err->message : "unknown error";
  hs_free_compile_error(err);
  err = nullptr;
  if (hs_expression_info(p.regex.c_str(), hs_flags(p) | HS_FLAG_PREFILTER, &info, &err) ==
      HS_SUCCESS) {
    std::free(info);
    int code = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.regex.data()), p.regex.size(),
                                   pcre2_options(hs_flags(p)), &code, &offset, nullptr);
    if (re != nullptr) {
      pcre2_code_free(re);
      return true;
    }
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(code, buf, sizeof buf);
    msg += "; PCRE2: " + std::string(reinterpret_cast<const char*>(buf));
  } else {
    hs_free_compile_error(err);
  }
  return Status::unsupported("pattern '" + p.regex + "' is not supported (Hyperscan: " + msg + ")");
}

Expected<pcre2_code*> compile_confirm(const std::string& regex, unsigned hs_flags) {
  int code = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(regex.data()), regex.size(),
                                 pcre2_options(hs_flags), &code, &offset, nullptr);
  if (re == nullptr) return Status::internal("PCRE2 compile of '" + regex + "' failed");
  (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);  // the interpreter is the fallback
  return re;
}

// A value on which `re` hits the confirmation limits, described, if one of the classic
// catastrophic-backtracking shapes finds one: runs of each character the pattern names (and
// of the usual class members), of several lengths, followed by a character that makes the
// match fail at the end. Not a proof of safety, a net for the patterns (nested quantifiers,
// lookaheads over repeats) that a hostile event can exploit.
std::optional<std::string> backtracking_probe(pcre2_code* re, std::string_view regex,
                                              uint32_t match_limit, uint32_t depth_limit) {
  std::string chars = "a0 _-./\\";
  for (const char c : regex) {
    if (std::isalnum(static_cast<unsigned char>(c)) && chars.find(c) == std::string::npos)
      chars += c;
  }
  pcre2_match_context* limits = pcre2_match_context_create(nullptr);
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  if (limits == nullptr || data == nullptr) {
    pcre2_match_context_free(limits);
    pcre2_match_data_free(data);
    return std::nullopt;
  }
  pcre2_set_match_limit(limits, match_limit);
  pcre2_set_depth_limit(limits, depth_limit);
  std::optional<std::string> found;
  std::string subject;
  for (const size_t length : {30, 300, 3000}) {
    for (const char c : chars) {
      for (const char end : {'!', '\n', '\0'}) {
        subject.assign(length, c);
        subject += end;
        const int rc = pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(),
                                   0, 0, data, limits);
        if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT) {
          const std::string shown = c == ' ' ? "a space" : std::string("'") + c + "'";
          found = std::to_string(length) + " x " + shown + " then " +
                  (end == '!'    ? "'!'"
                   : end == '\n' ? "a newline"
                                 : "a NUL byte");
          break;
        }
      }
      if (found) break;
    }
    if (found) break;
  }
  pcre2_match_data_free(data);
  pcre2_match_context_free(limits);
  return found;
}

std::optional<std::vector<std::string>> literal_variants(const std::string& r, uint8_t& anchors) {
  constexpr size_t kMaxVariants = 64;
  anchors = 0;
  size_t i = 0, n = r.size();
  if (r.compare(0, 2, "\\A") == 0) {
    anchors |= 1;
    i = 2;
  }
  if (n >= i + 2 && r.compare(n - 2, 2, "\\z") == 0 && (n < 3 || r[n - 3] != '\\')) {
    anchors |= 2;
    n -= 2;
  }
  // One literal element at r[j]: a byte, written plainly or as \xNN.
  auto element = [&](size_t& j, std::string& out) {
    if (r.compare(j, 2, "\\x") == 0 && j + 4 <= n &&
        std::isxdigit(static_cast<unsigned char>(r[j + 2])) &&
        std::isxdigit(static_cast<unsigned char>(r[j + 3]))) {
      out += static_cast<char>(std::stoi(r.substr(j + 2, 2), nullptr, 16));
      j += 4;
      return true;
    }
    if (std::isalnum(static_cast<unsigned char>(r[j])) || r[j] == '_') {
      out += r[j++];
      return true;
    }
    return false;
  };
  std::vector<std::string> variants{""};
  while (i < n) {
    if (r.compare(i, 3, "(?:") == 0) {
      std::vector<std::string> alts{""};
      size_t j = i + 3;
      while (j < n && r[j] != ')') {
        if (r[j] == '|') {
          alts.emplace_back();
          ++j;
        } else if (!element(j, alts.back())) {
          return std::nullopt;
        }
      }
      if (j >= n) return std::nullopt;
      if (variants.size() * alts.size() > kMaxVariants) return std::nullopt;
      std::vector<std::string> next;
      for (const auto& v : variants) {
        for (const auto& a : alts) next.push_back(v + a);
      }
      variants = std::move(next);
      i = j + 1;
    } else {
      std::string one;
      if (!element(i, one)) return std::nullopt;
      for (auto& v : variants) v += one;
    }
  }
  for (const auto& v : variants) {
    if (v.empty()) return std::nullopt;
  }
  return variants;
}

}  // namespace vigil::match
