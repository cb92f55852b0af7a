#include "vigil/match/sigma.h"

#include <arpa/inet.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cassert>
#include <cctype>
#include <charconv>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>

#include "vigil/core/time.h"
#include "vigil/core/utf8.h"

namespace vigil::match {

std::string Logsource::to_string() const {
  std::string out;
  auto add = [&](const char* k, const std::string& v) {
    if (v.empty()) return;
    if (!out.empty()) out += ' ';
    out += k;
    out += '=';
    out += v;
  };
  add("product", product);
  add("category", category);
  add("service", service);
  return out.empty() ? "(none)" : out;
}

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
std::string to_regex(const std::string& value, bool anchor_start, bool anchor_end, bool windash,
                     bool json = false) {
  std::string out;
  out.reserve(value.size() * 2 + 8);
  if (anchor_start) out += "\\A";
  auto literal = [&](unsigned char c) {
    json ? append_json_literal(out, c) : append_literal(out, c);
  };
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c == '\\' && i + 1 < value.size() &&
        (value[i + 1] == '*' || value[i + 1] == '?' || value[i + 1] == '\\')) {
      literal(static_cast<unsigned char>(value[++i]));
    } else if (c == '*') {
      out += ".*";
    } else if (c == '?') {
      out += '.';
    } else if (windash && (c == '-' || c == '/')) {
      out += kWindashAlternatives;
    } else {
      literal(static_cast<unsigned char>(c));
    }
  }
  if (anchor_end) out += "\\z";
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

CondNode make_node(CondNode::Kind kind) {
  CondNode n;
  n.kind = kind;
  return n;
}

struct ParseContext {
  const std::string& source;
  SigmaRule& rule;

  Status error(const std::string& what) const { return Status::invalid(source + ": " + what); }
  Status unsupported(const std::string& what) const {
    return Status::unsupported(source + ": " + what);
  }

  // Equal predicates are stored once. Found by hash, not by a scan of the rule's
  // predicates: a rule of 100,000 values took 30 s to parse that way.
  uint32_t add_predicate(Predicate p) {
    std::string key;
    key.reserve(p.field.size() + p.regex.size() + p.operand.size() + 24);
    for (const std::string* part : {&p.field, &p.regex, &p.operand}) {
      key += std::to_string(part->size());
      key += ':';
      key += *part;
    }
    for (const bool flag : {p.caseless, p.dotall, p.multiline, p.user_regex, p.expand,
                            p.anchor_start, p.anchor_end, p.windash}) {
      key += flag ? '1' : '0';
    }
    key += static_cast<char>('a' + static_cast<int>(p.kind));
    const auto [it, added] =
        predicate_ids.emplace(std::move(key), static_cast<uint32_t>(rule.predicates.size()));
    assert(added || rule.predicates[it->second] == p);  // the key names every field of a Predicate
    if (added) rule.predicates.push_back(std::move(p));
    return it->second;
  }
  std::unordered_map<std::string, uint32_t> predicate_ids;
};

bool is_null_value(const YAML::Node& n) { return n.IsNull() && n.Tag() != "!"; }

// Keywords: values searched anywhere in the event, as a full-text search does. They are
// matched against the event's raw JSON text (Splunk's `_raw`), with Sigma's wildcards,
// case-insensitively unless `cased`. A list is any of its values; `|all` makes it all.
Expected<CondNode> parse_keywords(ParseContext& ctx, const std::string& key,
                                  const std::vector<std::string>& modifiers,
                                  const YAML::Node& value_node) {
  bool all = false, cased = false;
  for (size_t i = 1; i < modifiers.size(); ++i) {
    const std::string& m = modifiers[i];
    if (m == "all")
      all = true;
    else if (m == "cased")
      cased = true;
    else if (m != "contains") {
      return ctx.unsupported("keyword search '" + key + "': modifier '" + m +
                             "' is not supported on keywords");
    }
  }
  std::vector<YAML::Node> values;
  if (value_node.IsSequence()) {
    for (const auto& v : value_node) values.push_back(v);
  } else {
    values.push_back(value_node);
  }
  if (values.empty()) return ctx.error("keyword search '" + key + "': empty value list");
  CondNode group = make_node(all ? CondNode::Kind::kAnd : CondNode::Kind::kOr);
  for (const auto& v : values) {
    if (!v.IsScalar() || v.Scalar().empty()) {
      return ctx.error("keyword search '" + key + "': keywords must be non-empty strings");
    }
    if (only_star_wildcards(v.Scalar())) {  // any event
      CondNode yes = make_node(CondNode::Kind::kConst);
      yes.value = true;
      group.children.push_back(std::move(yes));
      continue;
    }
    Predicate p;  // an empty field: the raw event
    p.caseless = !cased;
    p.regex = to_regex(v.Scalar(), false, false, false, true);
    CondNode leaf = make_node(CondNode::Kind::kPred);
    leaf.index = ctx.add_predicate(std::move(p));
    group.children.push_back(std::move(leaf));
  }
  if (group.children.size() == 1) return std::move(group.children[0]);
  return group;
}

// One `field|mod|mod: value(s)` entry of a detection map.
Expected<CondNode> parse_field_term(ParseContext& ctx, const std::string& key,
                                    const YAML::Node& value_node) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i <= key.size(); ++i) {
    if (i == key.size() || key[i] == '|') {
      parts.push_back(key.substr(start, i - start));
      start = i + 1;
    }
  }
  const std::string field = parts[0];
  if (field.empty()) return parse_keywords(ctx, key, parts, value_node);

  enum class Mode {
    kEquals,
    kContains,
    kStartsWith,
    kEndsWith,
    kRegex,
    kExists,
    kFieldRef,
    kCidr,
    kCompare
  } mode = Mode::kEquals;
  Predicate::Kind compare = Predicate::Kind::kLess;
  bool all = false, cased = false, windash = false, expand = false;
  std::vector<std::string> transforms;  // utf16*/wide/base64/base64offset, in order
  bool re_i = false, re_m = false, re_s = false;
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& m = parts[i];
    auto set_mode = [&](Mode next) -> Status {
      if (mode != Mode::kEquals)
        return ctx.error("detection key '" + key + "': modifier '" + m +
                         "' conflicts with an earlier one");
      mode = next;
      return Status::ok();
    };
    Status s;
    if (m == "contains")
      s = set_mode(Mode::kContains);
    else if (m == "startswith")
      s = set_mode(Mode::kStartsWith);
    else if (m == "endswith")
      s = set_mode(Mode::kEndsWith);
    else if (m == "re")
      s = set_mode(Mode::kRegex);
    else if (m == "exists")
      s = set_mode(Mode::kExists);
    else if (m == "fieldref")
      s = set_mode(Mode::kFieldRef);
    else if (m == "cidr")
      s = set_mode(Mode::kCidr);
    else if (m == "lt" || m == "lte" || m == "gt" || m == "gte") {
      s = set_mode(Mode::kCompare);
      compare = m == "lt"    ? Predicate::Kind::kLess
                : m == "lte" ? Predicate::Kind::kLessEqual
                : m == "gt"  ? Predicate::Kind::kGreater
                             : Predicate::Kind::kGreaterEqual;
    } else if (m == "base64" || m == "base64offset" || m == "utf16le" || m == "utf16be" ||
               m == "utf16" || m == "wide") {
      transforms.push_back(m);
    } else if (m == "all")
      all = true;
    else if (m == "cased")
      cased = true;
    else if (m == "windash")
      windash = true;
    else if (m == "i" || m == "ignorecase")
      re_i = true;
    else if (m == "m" || m == "multiline")
      re_m = true;
    else if (m == "s" || m == "dotall")
      re_s = true;
    else if (m == "expand")
      expand = true;
    else if (m == "minute" || m == "hour" || m == "day" || m == "week" || m == "month" ||
             m == "year") {
      return ctx.unsupported("detection key '" + key + "': modifier '" + m +
                             "' is not supported yet");
    } else {
      return ctx.error("detection key '" + key + "': unknown modifier '" + m + "'");
    }
    if (!s) return s;
  }
  if (expand && (!transforms.empty() || (mode != Mode::kEquals && mode != Mode::kContains &&
                                         mode != Mode::kStartsWith && mode != Mode::kEndsWith))) {
    return ctx.error("detection key '" + key +
                     "': 'expand' applies to plain, contains, startswith or endswith values");
  }
  if ((re_i || re_m || re_s) && mode != Mode::kRegex) {
    return ctx.error("detection key '" + key + "': regex flags need the 're' modifier");
  }
  if (mode == Mode::kRegex && (windash || cased)) {
    return ctx.error("detection key '" + key + "': 're' cannot be combined with windash or cased");
  }
  const bool string_mode = mode == Mode::kEquals || mode == Mode::kContains ||
                           mode == Mode::kStartsWith || mode == Mode::kEndsWith;
  if (!transforms.empty() && (!string_mode || windash)) {
    return ctx.error("detection key '" + key + "': '" + transforms[0] +
                     "' applies to plain, contains, startswith or endswith values without windash");
  }
  if (!string_mode && mode != Mode::kRegex && (windash || cased)) {
    return ctx.error("detection key '" + key + "': windash and cased apply to string values only");
  }

  std::vector<YAML::Node> values;
  if (value_node.IsSequence()) {
    for (const auto& v : value_node) values.push_back(v);
    if (values.empty()) return ctx.error("detection key '" + key + "': empty value list");
  } else if (value_node.IsMap()) {
    return ctx.error("detection key '" + key +
                     "': a value must be a scalar or a list of scalars, not a map");
  } else {
    values.push_back(value_node);
  }

  CondNode group = make_node(all ? CondNode::Kind::kAnd : CondNode::Kind::kOr);
  for (const auto& v : values) {
    if (!v.IsScalar() && !is_null_value(v)) {
      return ctx.error("detection key '" + key + "': list items must be scalars");
    }
    if (!transforms.empty() && v.IsScalar()) {
      // Encoded values: each original value becomes one or more literal byte strings.
      std::vector<std::string> variants = {v.Scalar()};
      bool encoded = false;
      for (const auto& t : transforms) {
        std::vector<std::string> next;
        for (const auto& x : variants) {
          if (t == "base64") {
            next.push_back(base64(x));
          } else if (t == "base64offset") {
            for (auto& y : base64_offsets(x)) next.push_back(std::move(y));
          } else {
            auto u = utf16(x, t != "utf16be");
            if (!u) return ctx.error("detection key '" + key + "': value is not valid UTF-8");
            next.push_back(t == "utf16" ? std::string("\xff\xfe", 2) + *u : *u);
          }
        }
        variants = std::move(next);
        encoded |= t == "base64" || t == "base64offset";
      }
      CondNode any = make_node(CondNode::Kind::kOr);
      for (const auto& x : variants) {
        Predicate p;
        p.field = field;
        p.caseless = !cased && !encoded;  // base64 text is case-sensitive
        const bool anchor_start = mode == Mode::kEquals || mode == Mode::kStartsWith;
        const bool anchor_end = mode == Mode::kEquals || mode == Mode::kEndsWith;
        p.regex = literal_regex(x, anchor_start, anchor_end);
        if (x.empty())
          p.kind = mode == Mode::kEquals ? Predicate::Kind::kEmpty : Predicate::Kind::kExists;
        CondNode leaf = make_node(CondNode::Kind::kPred);
        leaf.index = ctx.add_predicate(std::move(p));
        any.children.push_back(std::move(leaf));
      }
      if (any.children.empty())
        return ctx.error("detection key '" + key + "': value encodes to nothing");
      group.children.push_back(any.children.size() == 1 ? std::move(any.children[0])
                                                        : std::move(any));
      continue;
    }
    Predicate p;
    p.field = field;
    if (mode == Mode::kExists) {
      const std::string s = v.IsScalar() ? v.Scalar() : "";
      if (s != "true" && s != "false")
        return ctx.error("detection key '" + key + "': 'exists' takes true or false");
      p.kind = s == "true" ? Predicate::Kind::kExists : Predicate::Kind::kMissing;
    } else if (is_null_value(v)) {
      if (mode != Mode::kEquals)
        return ctx.error("detection key '" + key + "': null cannot take a modifier");
      p.kind = Predicate::Kind::kMissing;
    } else if (mode == Mode::kFieldRef) {
      if (v.Scalar().empty())
        return ctx.error("detection key '" + key + "': fieldref needs a field name");
      p.kind = Predicate::Kind::kFieldRef;
      p.operand = v.Scalar();
    } else if (mode == Mode::kCidr) {
      const std::string& c = v.Scalar();
      const size_t slash = c.find('/');
      unsigned char buf[16];
      const std::string addr = c.substr(0, slash);
      const bool v6 = addr.find(':') != std::string::npos;
      int bits = -1;
      if (slash != std::string::npos) {
        auto [end, ec] = std::from_chars(c.data() + slash + 1, c.data() + c.size(), bits);
        if (ec != std::errc() || end != c.data() + c.size()) bits = -1;
      } else {
        bits = v6 ? 128 : 32;
      }
      if (inet_pton(v6 ? AF_INET6 : AF_INET, addr.c_str(), buf) != 1 || bits < 0 ||
          bits > (v6 ? 128 : 32)) {
        return ctx.error("detection key '" + key + "': '" + c + "' is not a CIDR network");
      }
      p.kind = Predicate::Kind::kCidr;
      p.operand = c;
    } else if (mode == Mode::kCompare) {
      if (!valid_number(v.Scalar()))
        return ctx.error("detection key '" + key + "': '" + v.Scalar() + "' is not a number");
      p.kind = compare;
      p.operand = v.Scalar();
    } else if (mode == Mode::kRegex) {
      p.kind = Predicate::Kind::kPattern;
      p.regex = v.Scalar();
      p.caseless = re_i;
      p.multiline = re_m;
      p.dotall = re_s;
      p.user_regex = true;
    } else {
      const std::string& s = v.Scalar();
      p.caseless = !cased;
      if (expand) {
        p.kind = Predicate::Kind::kPattern;
        p.expand = true;
        p.operand = s;
        p.anchor_start = mode == Mode::kEquals || mode == Mode::kStartsWith;
        p.anchor_end = mode == Mode::kEquals || mode == Mode::kEndsWith;
        p.windash = windash;
      } else if (s.empty() && mode == Mode::kEquals) {
        p.kind = Predicate::Kind::kEmpty;
      } else if (only_star_wildcards(s)) {
        p.kind = Predicate::Kind::kExists;
      } else {
        p.kind = Predicate::Kind::kPattern;
        const bool anchor_start = mode == Mode::kEquals || mode == Mode::kStartsWith;
        const bool anchor_end = mode == Mode::kEquals || mode == Mode::kEndsWith;
        p.regex = to_regex(s, anchor_start, anchor_end, windash);
      }
    }
    CondNode leaf = make_node(CondNode::Kind::kPred);
    leaf.index = ctx.add_predicate(std::move(p));
    group.children.push_back(std::move(leaf));
  }
  if (group.children.size() == 1) return std::move(group.children[0]);
  return group;
}

Expected<CondNode> parse_map(ParseContext& ctx, const YAML::Node& map) {
  CondNode node = make_node(CondNode::Kind::kAnd);
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) return ctx.error("detection map key is not a string");
    auto term = parse_field_term(ctx, kv.first.Scalar(), kv.second);
    if (!term) return term.status();
    node.children.push_back(std::move(*term));
  }
  if (node.children.empty()) return ctx.error("empty detection map");
  if (node.children.size() == 1) return std::move(node.children[0]);
  return node;
}

Expected<CondNode> parse_search(ParseContext& ctx, const std::string& name,
                                const YAML::Node& node) {
  if (node.IsMap()) return parse_map(ctx, node);
  if (node.IsSequence()) {
    CondNode any = make_node(CondNode::Kind::kOr);
    for (const auto& item : node) {
      if (item.IsMap()) {
        auto m = parse_map(ctx, item);
        if (!m) return m.status();
        any.children.push_back(std::move(*m));
      } else if (item.IsScalar()) {
        auto k = parse_keywords(ctx, name, {""}, item);
        if (!k) return k.status();
        any.children.push_back(std::move(*k));
      } else {
        return ctx.error("search identifier '" + name + "': list items must be maps");
      }
    }
    if (any.children.empty()) return ctx.error("search identifier '" + name + "' is an empty list");
    if (any.children.size() == 1) return std::move(any.children[0]);
    return any;
  }
  if (node.IsScalar()) return parse_keywords(ctx, name, {""}, node);
  return ctx.error("search identifier '" + name + "' must be a map, a list or a keyword");
}

// ---- condition grammar ----

struct Token {
  enum class Kind { kWord, kLParen, kRParen, kEnd } kind;
  std::string text;
};

Expected<std::vector<Token>> tokenize(ParseContext& ctx, const std::string& cond) {
  std::vector<Token> out;
  for (size_t i = 0; i < cond.size();) {
    const char c = cond[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '(') {
      out.push_back({Token::Kind::kLParen, "("});
      ++i;
    } else if (c == ')') {
      out.push_back({Token::Kind::kRParen, ")"});
      ++i;
    } else if (c == '|') {
      return ctx.unsupported(
          "condition '" + cond +
          "': aggregation expressions ('|') are deprecated; use a correlation rule");
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '*' || c == '?' ||
               c == '-' || c == '.') {
      size_t j = i;
      while (j < cond.size() &&
             (std::isalnum(static_cast<unsigned char>(cond[j])) || cond[j] == '_' ||
              cond[j] == '*' || cond[j] == '?' || cond[j] == '-' || cond[j] == '.')) {
        ++j;
      }
      out.push_back({Token::Kind::kWord, cond.substr(i, j - i)});
      i = j;
    } else {
      return ctx.error("condition: unexpected character '" + std::string(1, c) + "' in '" + cond +
                       "'");
    }
  }
  out.push_back({Token::Kind::kEnd, ""});
  return out;
}

bool glob_match(std::string_view pattern, std::string_view text) {
  size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

class ConditionParser {
 public:
  ConditionParser(ParseContext& ctx, const std::map<std::string, CondNode>& searches,
                  std::vector<Token> tokens, const std::string& text)
      : ctx_(ctx), searches_(searches), tokens_(std::move(tokens)), text_(text) {}

  Expected<CondNode> parse() {
    auto e = parse_or();
    if (!e) return e;
    if (peek().kind != Token::Kind::kEnd)
      return ctx_.error("condition '" + text_ + "': unexpected '" + peek().text + "'");
    return e;
  }

 private:
  const Token& peek() const { return tokens_[pos_]; }
  bool is_word(const char* w) const {
    return peek().kind == Token::Kind::kWord && lower(peek().text) == w;
  }

  Expected<CondNode> parse_or() {
    auto left = parse_and();
    if (!left) return left;
    if (!is_word("or")) return left;
    CondNode n = make_node(CondNode::Kind::kOr);
    n.children.push_back(std::move(*left));
    while (is_word("or")) {
      ++pos_;
      auto right = parse_and();
      if (!right) return right;
      n.children.push_back(std::move(*right));
    }
    return n;
  }

  Expected<CondNode> parse_and() {
    auto left = parse_not();
    if (!left) return left;
    if (!is_word("and")) return left;
    CondNode n = make_node(CondNode::Kind::kAnd);
    n.children.push_back(std::move(*left));
    while (is_word("and")) {
      ++pos_;
      auto right = parse_not();
      if (!right) return right;
      n.children.push_back(std::move(*right));
    }
    return n;
  }

  // Parentheses and `not` nest; a hostile condition must not exhaust the stack of this
  // parser, of the compiler's passes or of the evaluation, all recursive.
  static constexpr int kMaxDepth = 64;
  struct Nested {
    explicit Nested(int& d) : depth(++d) {}
    ~Nested() { --depth; }
    bool too_deep() const { return depth > kMaxDepth; }
    int& depth;
  };
  Expected<CondNode> too_deep_error() {
    return ctx_.error("condition '" + text_ + "': nested deeper than " + std::to_string(kMaxDepth));
  }

  Expected<CondNode> parse_not() {
    if (is_word("not")) {
      ++pos_;
      Nested nested(depth_);
      if (nested.too_deep()) return too_deep_error();
      auto inner = parse_not();
      if (!inner) return inner;
      CondNode n = make_node(CondNode::Kind::kNot);
      n.children.push_back(std::move(*inner));
      return n;
    }
    return parse_primary();
  }

  Expected<CondNode> parse_primary() {
    const Token& t = peek();
    if (t.kind == Token::Kind::kLParen) {
      ++pos_;
      Nested nested(depth_);
      if (nested.too_deep()) return too_deep_error();
      auto inner = parse_or();
      if (!inner) return inner;
      if (peek().kind != Token::Kind::kRParen)
        return ctx_.error("condition '" + text_ + "': missing ')'");
      ++pos_;
      return inner;
    }
    if (t.kind != Token::Kind::kWord) {
      return ctx_.error("condition '" + text_ + "': expected an identifier, got '" + t.text + "'");
    }
    const std::string word = t.text;
    const std::string lw = lower(word);
    if (lw == "and" || lw == "or" || lw == "of" || lw == "them") {
      return ctx_.error("condition '" + text_ + "': unexpected '" + word + "'");
    }
    // quantifier: "1 of x*", "all of them", "N of ..."
    if (tokens_[pos_ + 1].kind == Token::Kind::kWord && lower(tokens_[pos_ + 1].text) == "of") {
      pos_ += 2;
      const Token& target = peek();
      if (target.kind != Token::Kind::kWord)
        return ctx_.error("condition '" + text_ + "': expected a pattern after 'of'");
      ++pos_;
      return quantifier(lw, target.text);
    }
    ++pos_;
    auto it = searches_.find(word);
    if (it == searches_.end()) {
      return ctx_.error("condition '" + text_ + "': unknown search identifier '" + word + "'");
    }
    return it->second;
  }

  Expected<CondNode> quantifier(const std::string& q, const std::string& target) {
    std::vector<const CondNode*> matched;
    const bool them = lower(target) == "them";
    for (const auto& [name, node] : searches_) {
      if (them ? name.rfind('_', 0) != 0 : glob_match(target, name)) matched.push_back(&node);
    }
    if (matched.empty()) {
      return ctx_.error("condition '" + text_ + "': '" + target + "' matches no search identifier");
    }
    CondNode n;
    if (q == "all") {
      n = make_node(CondNode::Kind::kAnd);
    } else if (q == "any" || q == "1") {
      n = make_node(CondNode::Kind::kOr);
    } else {
      uint32_t k = 0;
      for (char c : q) {
        if (c < '0' || c > '9' || k > 100000)
          return ctx_.error("condition '" + text_ + "': bad quantifier '" + q + "'");
        k = k * 10 + static_cast<uint32_t>(c - '0');
      }
      if (k == 0) return ctx_.error("condition '" + text_ + "': quantifier must be at least 1");
      n = make_node(CondNode::Kind::kAtLeast);
      n.index = k;
    }
    for (const CondNode* m : matched) n.children.push_back(*m);
    if (n.children.size() == 1 && n.kind != CondNode::Kind::kAtLeast)
      return std::move(n.children[0]);
    return n;
  }

  ParseContext& ctx_;
  const std::map<std::string, CondNode>& searches_;
  std::vector<Token> tokens_;
  const std::string& text_;
  size_t pos_ = 0;
  int depth_ = 0;  // of parentheses and `not` around the current position
};

// Counts the documents of a YAML stream without building them. Debian 12's yaml-cpp 0.7
// loops forever in YAML::LoadAll on input such as ",h" (fixed upstream in jbeder/yaml-cpp
// PR #1319): the parser keeps reporting a document holding one bare null. So documents are
// counted here, stopping at the second, and one that is only a root null is not counted.
class DocumentCounter final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override { events_ = 0; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override { ++events_; }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { events_ += 2; }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {
    events_ += 2;
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    events_ += 2;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    events_ += 2;
  }
  void OnMapEnd() override {}
  // True if the last document had content beyond a single root null.
  bool had_content() const { return events_ > 1; }

 private:
  int events_ = 0;
};

// Number of documents with content in `text`, counting at most two.
size_t count_documents(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentCounter counter;
  size_t docs = 0;
  while (docs < 2 && parser.HandleNextDocument(counter)) {
    if (!counter.had_content()) break;
    ++docs;
  }
  return docs;
}

std::string scalar_or_empty(const YAML::Node& n) {
  return n && n.IsScalar() ? n.Scalar() : std::string();
}

const std::set<std::string>& known_top_level_keys() {
  static const std::set<std::string> keys = {"title",
                                             "id",
                                             "name",
                                             "status",
                                             "description",
                                             "references",
                                             "author",
                                             "date",
                                             "modified",
                                             "tags",
                                             "logsource",
                                             "detection",
                                             "fields",
                                             "falsepositives",
                                             "level",
                                             "related",
                                             "license",
                                             "taxonomy",
                                             "scope",
                                             "simulation",
                                             "regression_tests_path",
                                             "tests"};
  return keys;
}

const std::set<std::string>& known_correlation_top_level_keys() {
  static const std::set<std::string> keys = {
      "title",       "id",      "name",     "status",   "description", "references",
      "author",      "date",    "modified", "tags",     "level",       "falsepositives",
      "correlation", "related", "license",  "taxonomy", "scope",       "generate"};
  return keys;
}

std::vector<std::string> string_or_list(const YAML::Node& n) {
  std::vector<std::string> out;
  if (!n) return out;
  if (n.IsScalar()) {
    out.push_back(n.Scalar());
  } else if (n.IsSequence()) {
    for (const auto& x : n) out.push_back(scalar_or_empty(x));
  }
  return out;
}

// The `correlation` section. Every key that decides what is detected must be known.
Status parse_correlation(ParseContext& ctx, const YAML::Node& doc, Correlation& c) {
  const YAML::Node node = doc["correlation"];
  if (!node.IsMap()) return ctx.error("'correlation' must be a map");
  static const std::set<std::string> keys = {"type",      "rules",     "group-by", "timespan",
                                             "timeframe", "condition", "aliases",  "generate"};
  for (const auto& kv : node) {
    const std::string k = scalar_or_empty(kv.first);
    if (!keys.count(k)) return ctx.error("correlation: unknown key '" + k + "'");
  }
  const std::string type = scalar_or_empty(node["type"]);
  if (type == "event_count")
    c.type = Correlation::Type::kEventCount;
  else if (type == "value_count")
    c.type = Correlation::Type::kValueCount;
  else if (type == "temporal")
    c.type = Correlation::Type::kTemporal;
  else if (type == "temporal_ordered")
    c.type = Correlation::Type::kTemporalOrdered;
  else
    return ctx.error("correlation: unknown type '" + type +
                     "' (event_count, value_count, temporal, temporal_ordered)");

  c.rules = string_or_list(node["rules"]);
  if (c.rules.empty()) return ctx.error("correlation: 'rules' must name at least one rule");
  for (const auto& r : c.rules) {
    if (r.empty()) return ctx.error("correlation: an entry of 'rules' is empty");
  }
  const bool temporal =
      c.type == Correlation::Type::kTemporal || c.type == Correlation::Type::kTemporalOrdered;
  if (temporal && c.rules.size() < 2)
    return ctx.error("correlation: a " + type + " correlation needs at least two rules");
  c.group_by = string_or_list(node["group-by"]);

  const YAML::Node span = node["timespan"] ? node["timespan"] : node["timeframe"];
  const std::string span_text = scalar_or_empty(span);
  const auto ms = parse_duration_ms(span_text);
  if (!ms || *ms <= 0)
    return ctx.error("correlation: 'timespan' must be a duration such as 5m or 1h, not '" +
                     span_text + "'");
  c.timespan_ms = *ms;

  if (const YAML::Node cond = node["condition"]) {
    if (!cond.IsMap()) return ctx.error("correlation: 'condition' must be a map such as {gte: 10}");
    static const std::map<std::string, Correlation::Op> ops = {
        {"gt", Correlation::Op::kGt}, {"gte", Correlation::Op::kGte},
        {"lt", Correlation::Op::kLt}, {"lte", Correlation::Op::kLte},
        {"eq", Correlation::Op::kEq}, {"neq", Correlation::Op::kNeq}};
    size_t n_ops = 0;
    for (const auto& kv : cond) {
      const std::string k = scalar_or_empty(kv.first);
      if (k == "field") {
        c.field = scalar_or_empty(kv.second);
        continue;
      }
      auto op = ops.find(k);
      if (op == ops.end()) return ctx.error("correlation: unknown condition operator '" + k + "'");
      const std::string v = scalar_or_empty(kv.second);
      int64_t n = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || end != v.data() + v.size() || n < 0) {
        return ctx.error("correlation: condition '" + k + "' needs a non-negative integer, not '" +
                         v + "'");
      }
      c.op = op->second;
      c.threshold = n;
      ++n_ops;
    }
    if (n_ops != 1)
      return ctx.error("correlation: 'condition' needs exactly one of gt, gte, lt, lte, eq, neq");
    c.has_condition = true;
  } else if (!temporal) {
    return ctx.error("correlation: an " + type + " correlation needs a 'condition'");
  }
  if (c.type == Correlation::Type::kValueCount && c.field.empty()) {
    return ctx.error("correlation: value_count needs the counted field in 'condition.field'");
  }
  if (c.type != Correlation::Type::kValueCount && !c.field.empty()) {
    return ctx.error("correlation: 'condition.field' is only meaningful for value_count");
  }
  if (const YAML::Node aliases = node["aliases"]) {
    if (!aliases.IsMap()) return ctx.error("correlation: 'aliases' must be a map");
    for (const auto& kv : aliases) {
      auto& [alias, per_rule] = c.aliases.emplace_back();
      alias = scalar_or_empty(kv.first);
      if (!kv.second.IsMap())
        return ctx.error("correlation: alias '" + alias + "' must map rule names to fields");
      for (const auto& r : kv.second)
        per_rule.emplace_back(scalar_or_empty(r.first), scalar_or_empty(r.second));
    }
  }
  const YAML::Node gen = node["generate"] ? node["generate"] : doc["generate"];
  if (gen) {
    const std::string g = scalar_or_empty(gen);
    if (g != "true" && g != "false")
      return ctx.error("correlation: 'generate' must be true or false");
    c.generate = g == "true";
  }
  return Status::ok();
}

}  // namespace

bool Correlation::holds(int64_t v) const {
  switch (op) {
    case Op::kGt:
      return v > threshold;
    case Op::kGte:
      return v >= threshold;
    case Op::kLt:
      return v < threshold;
    case Op::kLte:
      return v <= threshold;
    case Op::kEq:
      return v == threshold;
    case Op::kNeq:
      return v != threshold;
  }
  return false;
}

std::string_view correlation_type_name(Correlation::Type t) {
  switch (t) {
    case Correlation::Type::kEventCount:
      return "event_count";
    case Correlation::Type::kValueCount:
      return "value_count";
    case Correlation::Type::kTemporal:
      return "temporal";
    case Correlation::Type::kTemporalOrdered:
      return "temporal_ordered";
  }
  return "?";
}

std::string sigma_value_to_regex(const std::string& value, bool anchor_start, bool anchor_end,
                                 bool windash) {
  return to_regex(value, anchor_start, anchor_end, windash);
}

Expected<SigmaRule> parse_sigma(const std::string& yaml_text, const std::string& source) {
  SigmaRule rule;
  rule.source = source;
  ParseContext ctx{source, rule};
  // Rule text reaches the API, alerts and reports: it must be valid UTF-8 to be written as JSON.
  if (auto bad = utf8::describe_invalid(yaml_text); !bad.empty()) return ctx.error(bad);
  try {
    if (count_documents(yaml_text) > 1) {
      return ctx.unsupported("multi-document rule files (rule collections) are not supported yet");
    }
    const YAML::Node doc = YAML::Load(yaml_text);
    if (!doc.IsMap()) return ctx.error("not a Sigma rule: the document is not a YAML map");

    if (doc["action"])
      return ctx.unsupported("rule collection actions ('action') are not supported");

    rule.title = scalar_or_empty(doc["title"]);
    rule.id = scalar_or_empty(doc["id"]);
    rule.name = scalar_or_empty(doc["name"]);
    if (doc["correlation"]) {
      rule.status = scalar_or_empty(doc["status"]);
      rule.level = scalar_or_empty(doc["level"]);
      rule.description = scalar_or_empty(doc["description"]);
      if (rule.title.empty()) return ctx.error("missing 'title'");
      if (rule.id.empty()) return ctx.error("missing 'id'");
      if (const auto tags = doc["tags"]; tags && tags.IsSequence()) {
        for (const auto& t : tags) rule.tags.push_back(scalar_or_empty(t));
      }
      if (doc["detection"] || doc["logsource"])
        return ctx.error("a correlation rule has no 'detection' or 'logsource'");
      for (const auto& kv : doc) {
        const std::string k = scalar_or_empty(kv.first);
        if (!known_correlation_top_level_keys().count(k))
          rule.warnings.push_back("unknown top-level key '" + k + "' kept as metadata");
      }
      Correlation c;
      if (auto s = parse_correlation(ctx, doc, c); !s) return s;
      rule.correlation = std::move(c);
      return rule;
    }
    rule.status = scalar_or_empty(doc["status"]);
    rule.level = scalar_or_empty(doc["level"]);
    rule.description = scalar_or_empty(doc["description"]);
    if (rule.title.empty()) return ctx.error("missing 'title'");
    if (rule.id.empty()) return ctx.error("missing 'id'");
    if (const auto tags = doc["tags"]; tags && tags.IsSequence()) {
      for (const auto& t : tags) rule.tags.push_back(scalar_or_empty(t));
    }
    for (const auto& kv : doc) {
      const std::string k = scalar_or_empty(kv.first);
      if (!known_top_level_keys().count(k))
        rule.warnings.push_back("unknown top-level key '" + k + "' kept as metadata");
    }

    const YAML::Node ls = doc["logsource"];
    if (!ls || !ls.IsMap()) return ctx.error("missing 'logsource' map");
    rule.logsource.product = scalar_or_empty(ls["product"]);
    rule.logsource.category = scalar_or_empty(ls["category"]);
    rule.logsource.service = scalar_or_empty(ls["service"]);

    const YAML::Node det = doc["detection"];
    if (!det || !det.IsMap()) return ctx.error("missing 'detection' map");
    std::map<std::string, CondNode> searches;
    YAML::Node condition;
    for (const auto& kv : det) {
      const std::string name = scalar_or_empty(kv.first);
      if (name == "condition") {
        condition = kv.second;
        continue;
      }
      if (name == "timeframe")
        return ctx.unsupported(
            "'timeframe' (deprecated aggregation) is not supported; use a correlation rule");
      auto node = parse_search(ctx, name, kv.second);
      if (!node) return node.status();
      searches.emplace(name, std::move(*node));
    }
    if (!condition) return ctx.error("detection has no 'condition'");

    std::vector<std::string> conditions;
    if (condition.IsScalar()) {
      conditions.push_back(condition.Scalar());
    } else if (condition.IsSequence()) {
      for (const auto& c : condition) {
        if (!c.IsScalar()) return ctx.error("condition list items must be strings");
        conditions.push_back(c.Scalar());
      }
    } else {
      return ctx.error("'condition' must be a string or a list of strings");
    }
    if (conditions.empty()) return ctx.error("empty condition list");

    CondNode any = make_node(CondNode::Kind::kOr);
    for (const auto& text : conditions) {
      auto tokens = tokenize(ctx, text);
      if (!tokens) return tokens.status();
      ConditionParser parser(ctx, searches, std::move(*tokens), text);
      auto tree = parser.parse();
      if (!tree) return tree.status();
      any.children.push_back(std::move(*tree));
    }
    rule.condition = any.children.size() == 1 ? std::move(any.children[0]) : std::move(any);
  } catch (const YAML::Exception& e) {
    return ctx.error(std::string("YAML error: ") + e.what());
  }
  return rule;
}

}  // namespace vigil::match
