// Detection maps and lists: `field|modifier...: value(s)` terms and keywords.

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <set>

#include "sigma_internal.h"
#include "vigil/core/time.h"

namespace vigil::match::detail {
namespace {

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
    p.regex = to_regex(v.Scalar(), false, false, false, p.caseless, true);
    p.value = v.Scalar();  // the reference matcher builds its own pattern from it
    CondNode leaf = make_node(CondNode::Kind::kPred);
    leaf.index = ctx.add_predicate(std::move(p));
    group.children.push_back(std::move(leaf));
  }
  if (group.children.size() == 1) return std::move(group.children[0]);
  return group;
}

// A `field|modifier...` key, parsed: the match mode and the modifiers that shape its values.
struct FieldTerm {
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
  };
  std::string field;
  Mode mode = Mode::kEquals;
  Predicate::Kind compare = Predicate::Kind::kLess;
  bool all = false, cased = false, windash = false, expand = false;
  bool neq = false;       // the field is none of the values (Sigma 2.1)
  std::string time_part;  // minute, hour, day, week, month, year of a date field (Sigma 2.1)
  std::vector<std::string> transforms;  // utf16*/wide/base64/base64offset, in order
  bool re_i = false, re_m = false, re_s = false;

  bool string_mode() const {
    return mode == Mode::kEquals || mode == Mode::kContains || mode == Mode::kStartsWith ||
           mode == Mode::kEndsWith;
  }
  bool anchor_start() const { return mode == Mode::kEquals || mode == Mode::kStartsWith; }
  bool anchor_end() const { return mode == Mode::kEquals || mode == Mode::kEndsWith; }
};
using Mode = FieldTerm::Mode;

// The modifiers of `key` (parts[0] is the field), each known and none in conflict.
Expected<FieldTerm> parse_modifiers(ParseContext& ctx, const std::string& key,
                                    const std::vector<std::string>& parts) {
  FieldTerm t;
  t.field = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& m = parts[i];
    auto set_mode = [&](Mode next) -> Status {
      if (t.mode != Mode::kEquals)
        return ctx.error("detection key '" + key + "': modifier '" + m +
                         "' conflicts with an earlier one");
      t.mode = next;
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
      t.compare = m == "lt"    ? Predicate::Kind::kLess
                  : m == "lte" ? Predicate::Kind::kLessEqual
                  : m == "gt"  ? Predicate::Kind::kGreater
                               : Predicate::Kind::kGreaterEqual;
    } else if (m == "base64" || m == "base64offset" || m == "utf16le" || m == "utf16be" ||
               m == "utf16" || m == "wide") {
      t.transforms.push_back(m);
    } else if (m == "all")
      t.all = true;
    else if (m == "neq")
      t.neq = true;
    else if (m == "cased")
      t.cased = true;
    else if (m == "windash")
      t.windash = true;
    else if (m == "i" || m == "ignorecase")
      t.re_i = true;
    else if (m == "m" || m == "multiline")
      t.re_m = true;
    else if (m == "s" || m == "dotall")
      t.re_s = true;
    else if (m == "expand")
      t.expand = true;
    else if (m == "minute" || m == "hour" || m == "day" || m == "week" || m == "month" ||
             m == "year") {
      if (!t.time_part.empty()) return ctx.error("detection key '" + key + "': two time modifiers");
      t.time_part = m;
    } else {
      return ctx.error("detection key '" + key + "': unknown modifier '" + m + "'");
    }
    if (!s) return s;
  }
  if (!t.time_part.empty() && ((t.mode != Mode::kEquals && t.mode != Mode::kCompare) || t.all ||
                               t.expand || t.cased || t.windash || !t.transforms.empty())) {
    return ctx.error("detection key '" + key + "': '" + t.time_part +
                     "' takes a number, alone or with lt, lte, gt, gte or neq");
  }
  if (t.neq && ((t.mode != Mode::kEquals && t.mode != Mode::kFieldRef) || t.all || t.expand ||
                !t.transforms.empty())) {
    return ctx.error("detection key '" + key +
                     "': 'neq' compares whole values (plain or fieldref, with cased or windash); "
                     "it takes no other match mode, all, expand or encoding");
  }
  if (t.expand && (!t.transforms.empty() || !t.string_mode())) {
    return ctx.error("detection key '" + key +
                     "': 'expand' applies to plain, contains, startswith or endswith values");
  }
  if ((t.re_i || t.re_m || t.re_s) && t.mode != Mode::kRegex) {
    return ctx.error("detection key '" + key + "': regex flags need the 're' modifier");
  }
  if (t.mode == Mode::kRegex && (t.windash || t.cased)) {
    return ctx.error("detection key '" + key + "': 're' cannot be combined with windash or cased");
  }
  if (!t.transforms.empty() && (!t.string_mode() || t.windash)) {
    return ctx.error("detection key '" + key + "': '" + t.transforms[0] +
                     "' applies to plain, contains, startswith or endswith values without windash");
  }
  if (!t.string_mode() && t.mode != Mode::kRegex && (t.windash || t.cased)) {
    return ctx.error("detection key '" + key + "': windash and cased apply to string values only");
  }
  return t;
}

// A value under encoding modifiers (base64, base64offset, utf16*, wide): each original value
// becomes one or more literal byte strings, any of which matches.
Expected<CondNode> encoded_value(ParseContext& ctx, const std::string& key, const FieldTerm& t,
                                 const YAML::Node& v) {
  std::vector<std::string> variants = {v.Scalar()};
  bool encoded = false;
  for (const auto& transform : t.transforms) {
    std::vector<std::string> next;
    for (const auto& x : variants) {
      if (transform == "base64") {
        next.push_back(base64(x));
      } else if (transform == "base64offset") {
        for (auto& y : base64_offsets(x)) next.push_back(std::move(y));
      } else {
        auto u = utf16(x, transform != "utf16be");
        if (!u) return ctx.error("detection key '" + key + "': value is not valid UTF-8");
        next.push_back(transform == "utf16" ? std::string("\xff\xfe", 2) + *u : *u);
      }
    }
    variants = std::move(next);
    encoded |= transform == "base64" || transform == "base64offset";
  }
  CondNode any = make_node(CondNode::Kind::kOr);
  for (const auto& x : variants) {
    Predicate p;
    p.field = t.field;
    p.caseless = !t.cased && !encoded;  // base64 text is case-sensitive
    p.regex = literal_regex(x, t.anchor_start(), t.anchor_end());
    if (x.empty())
      p.kind = t.mode == Mode::kEquals ? Predicate::Kind::kEmpty : Predicate::Kind::kExists;
    CondNode leaf = make_node(CondNode::Kind::kPred);
    leaf.index = ctx.add_predicate(std::move(p));
    any.children.push_back(std::move(leaf));
  }
  if (any.children.empty())
    return ctx.error("detection key '" + key + "': value encodes to nothing");
  if (any.children.size() == 1) return std::move(any.children[0]);
  return any;
}

// The predicate of one value of a term without encoding modifiers.
Expected<Predicate> value_predicate(ParseContext& ctx, const std::string& key, const FieldTerm& t,
                                    const YAML::Node& v) {
  Predicate p;
  p.field = t.field;
  if (t.mode == Mode::kExists) {
    const std::string s = v.IsScalar() ? v.Scalar() : "";
    if (s != "true" && s != "false")
      return ctx.error("detection key '" + key + "': 'exists' takes true or false");
    // Presence only, "be it empty or null" (modifiers appendix 2.1).
    p.kind = s == "true" ? Predicate::Kind::kPresent : Predicate::Kind::kAbsent;
  } else if (is_null_value(v)) {
    if (t.mode != Mode::kEquals)
      return ctx.error("detection key '" + key + "': null cannot take a modifier");
    p.kind = Predicate::Kind::kMissing;
  } else if (t.mode == Mode::kFieldRef) {
    if (v.Scalar().empty())
      return ctx.error("detection key '" + key + "': fieldref needs a field name");
    p.kind = Predicate::Kind::kFieldRef;
    p.operand = v.Scalar();
  } else if (t.mode == Mode::kCidr) {
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
  } else if (t.mode == Mode::kCompare || !t.time_part.empty()) {
    if (!valid_number(v.Scalar()))
      return ctx.error("detection key '" + key + "': '" + v.Scalar() + "' is not a number");
    p.kind = t.compare;
    p.operand = v.Scalar();
    p.time_part = t.time_part;
  } else if (t.mode == Mode::kRegex) {
    p.kind = Predicate::Kind::kPattern;
    p.regex = v.Scalar();
    p.caseless = t.re_i;
    p.multiline = t.re_m;
    p.dotall = t.re_s;
    p.user_regex = true;
  } else {
    const std::string& s = v.Scalar();
    p.caseless = !t.cased;
    if (t.expand) {
      p.kind = Predicate::Kind::kPattern;
      p.expand = true;
      p.operand = s;
      p.anchor_start = t.anchor_start();
      p.anchor_end = t.anchor_end();
      p.windash = t.windash;
    } else if (s.empty() && t.mode == Mode::kEquals) {
      p.kind = Predicate::Kind::kEmpty;
    } else if (only_star_wildcards(s)) {
      p.kind = Predicate::Kind::kExists;
    } else {
      p.kind = Predicate::Kind::kPattern;
      p.regex = to_regex(s, t.anchor_start(), t.anchor_end(), t.windash, p.caseless);
      p.value = s;
      p.anchor_start = t.anchor_start();
      p.anchor_end = t.anchor_end();
      p.windash = t.windash;
    }
  }
  return p;
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
  if (parts[0].empty()) return parse_keywords(ctx, key, parts, value_node);
  auto term = parse_modifiers(ctx, key, parts);
  if (!term) return term.status();
  const FieldTerm& t = *term;

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

  CondNode group = make_node(t.all ? CondNode::Kind::kAnd : CondNode::Kind::kOr);
  for (const auto& v : values) {
    if (!v.IsScalar() && !is_null_value(v)) {
      return ctx.error("detection key '" + key + "': list items must be scalars");
    }
    if (!t.transforms.empty() && v.IsScalar()) {
      auto any = encoded_value(ctx, key, t, v);
      if (!any) return any.status();
      group.children.push_back(std::move(*any));
      continue;
    }
    if (!t.time_part.empty() && t.mode == Mode::kEquals && v.IsScalar()) {
      // A date part equal to a number: at least it and at most it.
      CondNode both = make_node(CondNode::Kind::kAnd);
      for (auto kind : {Predicate::Kind::kGreaterEqual, Predicate::Kind::kLessEqual}) {
        FieldTerm bound = t;
        bound.compare = kind;
        auto p = value_predicate(ctx, key, bound, v);
        if (!p) return p.status();
        CondNode leaf = make_node(CondNode::Kind::kPred);
        leaf.index = ctx.add_predicate(std::move(*p));
        both.children.push_back(std::move(leaf));
      }
      group.children.push_back(std::move(both));
      continue;
    }
    auto p = value_predicate(ctx, key, t, v);
    if (!p) return p.status();
    CondNode leaf = make_node(CondNode::Kind::kPred);
    leaf.index = ctx.add_predicate(std::move(*p));
    group.children.push_back(std::move(leaf));
  }
  if (group.children.size() == 1) {
    CondNode only = std::move(group.children[0]);
    group = std::move(only);
  }
  if (t.neq) {  // none of the values: not (any of them)
    CondNode n = make_node(CondNode::Kind::kNot);
    n.children.push_back(std::move(group));
    return n;
  }
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

}  // namespace

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

}  // namespace vigil::match::detail
