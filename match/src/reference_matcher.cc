#include "vigil/match/reference_matcher.h"

#include <arpa/inet.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <charconv>
#include <cstring>
#include <string>
#include <vector>

namespace vigil::match {
namespace {

constexpr uint32_t kRaw = 0xffffffffu;  // keywords: the raw event text

// The code points of UTF-8 text (valid: events and rule text are checked); a stray byte
// stands for itself.
std::vector<uint32_t> code_points(std::string_view s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
    uint32_t cp = extra == 0 ? c : c & (0x3f >> extra);
    size_t k = 1;
    for (; k <= static_cast<size_t>(extra) && i + k < s.size(); ++k)
      cp = cp << 6 | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    out.push_back(k == static_cast<size_t>(extra) + 1 ? cp : c);
    i += k == static_cast<size_t>(extra) + 1 ? k : 1;
  }
  return out;
}

void append_code_point(std::string& out, uint32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "\\x{%x}", static_cast<unsigned>(cp));
  out += buf;
}

// A Sigma string value as a PCRE2 pattern in UTF mode, written here rather than taken from the
// compiler: `*` any characters, `?` one character, Sigma's escapes; caseless: an ASCII letter
// as the class of its two cases (the compiled matcher's caseless flag folds ASCII only, so
// U+212A KELVIN SIGN is no `k` there), any other character under PCRE2's Unicode caseless
// matching (`(?i:é)` is é or É); windash: `-` and `/` as any of the dashes Windows accepts;
// a keyword (no field) is searched in the raw JSON text: its characters as a writer escapes them.
std::string sigma_pattern(const Predicate& p) {
  std::string out = p.anchor_start ? "\\A" : "";
  // One character of the value as the pattern matches it.
  auto literal = [&](uint32_t c) {
    if (p.caseless && c < 0x80 && std::isalpha(static_cast<int>(c))) {
      out += '[';
      out += static_cast<char>(std::tolower(static_cast<int>(c)));
      out += static_cast<char>(std::toupper(static_cast<int>(c)));
      out += ']';
    } else if (p.caseless && c >= 0x80) {
      out += "(?i:";
      append_code_point(out, c);
      out += ')';
    } else {
      append_code_point(out, c);
    }
  };
  // Keywords are searched in the raw JSON text, where a writer escapes some characters.
  const bool json = p.field.empty();
  auto json_escaped = [&](uint32_t c) {
    const char* shorthand = c == '"'    ? "\\\""
                            : c == '\\' ? "\\\\"
                            : c == '\n' ? "\\n"
                            : c == '\r' ? "\\r"
                            : c == '\t' ? "\\t"
                            : c == '\b' ? "\\b"
                            : c == '\f' ? "\\f"
                                        : nullptr;
    char buf[8];
    if (!shorthand && c < 0x20) {
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      shorthand = buf;
    }
    if (!shorthand) return false;
    for (const char* s = shorthand; *s; ++s) literal(static_cast<unsigned char>(*s));
    return true;
  };
  const std::vector<uint32_t> cps = code_points(p.value);
  for (size_t i = 0; i < cps.size(); ++i) {
    uint32_t c = cps[i];
    if (c == '\\' && i + 1 < cps.size() &&
        (cps[i + 1] == '*' || cps[i + 1] == '?' || cps[i + 1] == '\\')) {
      c = cps[++i];
    } else if (c == '*') {
      out += ".*";
      continue;
    } else if (c == '?') {
      out += ".";
      continue;
    }
    if (p.windash && (c == '-' || c == '/')) {
      out += "(?:-|/|\\x{2013}|\\x{2014}|\\x{2015})";
    } else if (!(json && json_escaped(c))) {
      literal(c);
    }
  }
  if (p.anchor_end) out += "\\z";
  return out;
}

// Caseless equality of two values (fieldref), by PCRE2's Unicode caseless matching: b's
// characters as a pattern anchored at both ends.
bool same_text_unicode(std::string_view a, std::string_view b) {
  std::string pattern = "\\A";
  for (const uint32_t c : code_points(b)) append_code_point(pattern, c);
  pattern += "\\z";
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                 PCRE2_UTF | PCRE2_CASELESS, &err, &offset, nullptr);
  if (re == nullptr) return false;
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(re, nullptr);
  const int rc =
      pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(a.data()), a.size(), 0, 0, data, nullptr);
  pcre2_match_data_free(data);
  pcre2_code_free(re);
  return rc >= 0;
}

bool same_text(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

bool parse_number(std::string_view s, double& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// Whether `text` is an IP address inside `network` ("10.0.0.0/8", "fe80::/10", or one address).
bool in_network(std::string_view text, const std::string& network) {
  const size_t slash = network.find('/');
  const std::string net = network.substr(0, slash);
  const bool v6 = net.find(':') != std::string::npos;
  const int bits =
      slash == std::string::npos ? (v6 ? 128 : 32) : std::stoi(network.substr(slash + 1));
  unsigned char want[16] = {}, got[16] = {};
  if (inet_pton(v6 ? AF_INET6 : AF_INET, net.c_str(), want) != 1) return false;
  if (inet_pton(v6 ? AF_INET6 : AF_INET, std::string(text).c_str(), got) != 1) return false;
  for (int i = 0; i < bits; ++i) {
    const int mask = 0x80 >> (i % 8);
    if ((want[i / 8] & mask) != (got[i / 8] & mask)) return false;
  }
  return true;
}

}  // namespace

struct ReferenceMatcher::Pred {
  Predicate::Kind kind;
  uint32_t slot = 0, ref_slot = 0;
  pcre2_code* code = nullptr;
  std::string operand;
  std::string time_part;
};

struct ReferenceMatcher::Rule {
  std::vector<uint32_t> logsources;
  std::vector<Pred> preds;
  CondNode condition;
};

struct ReferenceMatcher::Logsource {
  std::vector<std::pair<uint32_t, std::vector<std::string>>> where;
};

ReferenceMatcher::ReferenceMatcher() = default;

ReferenceMatcher::~ReferenceMatcher() {
  for (auto& r : rules_) {
    for (auto& p : r.preds) pcre2_code_free(p.code);
  }
  pcre2_match_data_free(static_cast<pcre2_match_data*>(match_data_));
}

std::unique_ptr<ReferenceMatcher> ReferenceMatcher::compile(const std::vector<SigmaRule>& rules,
                                                            const FieldMapping& mapping) {
  std::unique_ptr<ReferenceMatcher> m(new ReferenceMatcher());
  m->match_data_ = pcre2_match_data_create(1, nullptr);
  for (const auto& ls : mapping.logsources()) {
    Logsource l;
    for (const auto& [path, values] : ls.where) l.where.emplace_back(m->fields_.add(path), values);
    m->logsources_.push_back(std::move(l));
  }
  auto slot_of = [&](const std::string& sigma_field, const match::Logsource& ls) {
    if (sigma_field.empty()) return kRaw;
    const auto paths = mapping.json_paths(sigma_field, ls);
    const uint32_t slot = m->fields_.add(paths[0]);
    for (size_t i = 1; i < paths.size(); ++i) (void)m->fields_.add_alias(paths[i], slot);
    return slot;
  };
  for (const auto& original : rules) {
    auto resolved = apply_mapping(original, mapping);
    if (!resolved) {
      m->skipped_.push_back(original.id);
      continue;
    }
    const SigmaRule& rule = *resolved;
    Rule r;
    r.logsources = mapping.logsources_for(rule.logsource);
    if (rule.correlation || r.logsources.empty()) {
      m->skipped_.push_back(rule.id);
      continue;
    }
    bool ok = true;
    for (const auto& p : rule.predicates) {
      const uint32_t slot = p.path.empty() || p.field.empty() ? slot_of(p.field, rule.logsource)
                                                              : m->fields_.add(p.path);
      Pred pred{p.kind, slot, 0, nullptr, p.operand, p.time_part};
      if (p.kind == Predicate::Kind::kFieldRef) pred.ref_slot = slot_of(p.operand, rule.logsource);
      if (p.kind == Predicate::Kind::kPattern) {
        // A plain Sigma value or a keyword: its own pattern, on characters. A `re` value: as
        // written, in UTF mode. Anything else (encoded bytes: base64, utf16): the compiler's
        // byte pattern.
        const bool plain = !p.value.empty() && !p.user_regex;
        const std::string pattern = plain ? sigma_pattern(p) : p.regex;
        uint32_t options = 0;
        if (plain) {
          options = PCRE2_UTF | PCRE2_DOTALL;
        } else {
          if (p.caseless) options |= PCRE2_CASELESS;
          if (p.dotall) options |= PCRE2_DOTALL;
          if (p.multiline) options |= PCRE2_MULTILINE;
          if (p.user_regex) options |= PCRE2_UTF;
        }
        int err = 0;
        PCRE2_SIZE offset = 0;
        pred.code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                  options, &err, &offset, nullptr);
        if (pred.code == nullptr)
          ok = false;
        else
          (void)pcre2_jit_compile(pred.code, PCRE2_JIT_COMPLETE);
      }
      r.preds.push_back(std::move(pred));
    }
    if (!ok) {
      for (auto& p : r.preds) pcre2_code_free(p.code);
      m->skipped_.push_back(rule.id);
      continue;
    }
    r.condition = rule.condition;
    m->ids_.push_back(rule.id);
    m->rules_.push_back(std::move(r));
  }
  return m;
}

bool ReferenceMatcher::test(const Pred& p, const Event& event) {
  const FieldValue fv =
      p.slot == kRaw ? FieldValue{ValueType::kObject, event.raw()} : event.field(p.slot);
  switch (p.kind) {
    case Predicate::Kind::kPattern:
      return fv.present() &&
             pcre2_match(p.code, reinterpret_cast<PCRE2_SPTR>(fv.text.data()), fv.text.size(), 0, 0,
                         static_cast<pcre2_match_data*>(match_data_), nullptr) >= 0;
    case Predicate::Kind::kExists:
      return fv.present();
    case Predicate::Kind::kMissing:
      return !fv.present();
    case Predicate::Kind::kPresent:  // a JSON null is there: only an absent field is not
      return !(fv.type == ValueType::kMissing);
    case Predicate::Kind::kAbsent:
      return !(fv.type != ValueType::kMissing);
    case Predicate::Kind::kEmpty:
      return fv.present() && fv.text.empty();
    case Predicate::Kind::kFieldRef: {
      const FieldValue& ref = event.field(p.ref_slot);
      return fv.present() && ref.present() && same_text_unicode(fv.text, ref.text);
    }
    case Predicate::Kind::kCidr:
      return fv.present() && in_network(fv.text, p.operand);
    case Predicate::Kind::kLess:
    case Predicate::Kind::kLessEqual:
    case Predicate::Kind::kGreater:
    case Predicate::Kind::kGreaterEqual: {
      double v = 0, bound = 0;
      if (!p.time_part.empty()) {  // a part of the field's date
        const auto part = date_part_libc(fv, p.time_part);
        if (!part || !parse_number(p.operand, bound)) return false;
        v = *part;
      } else if (!fv.present() || !parse_number(fv.text, v) || !parse_number(p.operand, bound)) {
        return false;
      }
      if (p.kind == Predicate::Kind::kLess) return v < bound;
      if (p.kind == Predicate::Kind::kLessEqual) return v <= bound;
      if (p.kind == Predicate::Kind::kGreater) return v > bound;
      return v >= bound;
    }
  }
  return false;
}

// A part of a date, by the C library (independently of the compiled matcher's arithmetic):
// the text's own fields ("YYYY-MM-DD[T ]hh:mm..."), or epoch milliseconds in UTC.
std::optional<int> ReferenceMatcher::date_part_libc(const FieldValue& fv, const std::string& part) {
  if (!fv.present()) return std::nullopt;
  const std::string text(fv.text);
  std::tm tm{};
  int y = 0, mo = 0, d = 0, h = 0, mi = 0;
  char sep = 0;
  int used = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%n", &y, &mo, &d, &used) == 3 && used == 10 &&
      mo >= 1 && mo <= 12 && d >= 1 && d <= 31) {
    auto digit = [&](size_t i) {
      return i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]));
    };
    if (std::sscanf(text.c_str() + 10, "%c%2d:%2d", &sep, &h, &mi) == 3 &&
        (sep == 'T' || sep == 't' || sep == ' ') && digit(11) && digit(12) && digit(14) &&
        digit(15)) {
      if (h > 23 || mi > 59) return std::nullopt;
    } else if (text.size() >= 14 && (text[10] == 'T' || text[10] == 't' || text[10] == ' ') &&
               text[13] == ':') {
      return std::nullopt;  // a time that is not hh:mm
    } else {
      h = mi = 0;
    }
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    const time_t t = timegm(&tm);  // normalises, and fills the weekday and day of year
    gmtime_r(&t, &tm);
    if (tm.tm_mday != d) return std::nullopt;  // 2024-02-30 is no date
  } else {
    char* end = nullptr;
    const long long ms = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0') return std::nullopt;
    const time_t t = static_cast<time_t>(ms / 1000 - (ms % 1000 < 0 ? 1 : 0));
    gmtime_r(&t, &tm);
  }
  if (part == "minute") return tm.tm_min;
  if (part == "hour") return tm.tm_hour;
  if (part == "day") return tm.tm_mday;
  if (part == "month") return tm.tm_mon + 1;
  if (part == "year") return tm.tm_year + 1900;
  if (part == "week") {
    char buf[8];
    std::strftime(buf, sizeof buf, "%V", &tm);
    return std::atoi(buf);
  }
  return std::nullopt;
}

bool ReferenceMatcher::holds(const Rule& rule, const CondNode& n, const Event& event) {
  switch (n.kind) {
    case CondNode::Kind::kPred:
      return test(rule.preds[n.index], event);
    case CondNode::Kind::kConst:
      return n.value;
    case CondNode::Kind::kNot:
      return !holds(rule, n.children[0], event);
    case CondNode::Kind::kAnd:
      for (const auto& c : n.children) {
        if (!holds(rule, c, event)) return false;
      }
      return true;
    case CondNode::Kind::kOr:
      for (const auto& c : n.children) {
        if (holds(rule, c, event)) return true;
      }
      return false;
    case CondNode::Kind::kAtLeast: {
      uint32_t count = 0;
      for (const auto& c : n.children) {
        if (count >= n.index) break;
        count += holds(rule, c, event) ? 1 : 0;
      }
      return count >= n.index;
    }
  }
  return false;
}

void ReferenceMatcher::match(const Event& event, std::vector<uint32_t>& out) {
  std::vector<uint8_t>& active = active_;
  active.assign(logsources_.size(), 0);
  for (size_t i = 0; i < logsources_.size(); ++i) {
    bool all = true;
    for (const auto& [slot, values] : logsources_[i].where) {
      const FieldValue& fv = event.field(slot);
      bool any = false;
      for (const auto& v : values) any = any || (fv.present() && same_text(fv.text, v));
      all = all && any;
    }
    active[i] = all;
  }
  for (uint32_t r = 0; r < rules_.size(); ++r) {
    bool applies = false;
    for (uint32_t ls : rules_[r].logsources) applies = applies || active[ls];
    if (applies && holds(rules_[r], rules_[r].condition, event)) out.push_back(r);
  }
}

}  // namespace vigil::match
