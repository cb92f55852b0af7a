#pragma once
// What the Sigma parser's files share (match/src/sigma*.cc). Private to vigil_match.
//
//   sigma.cc              parse_sigma(_documents): the stream, each document's keys,
//                         logsource and detection (or filter)
//   sigma_values.cc       values as patterns: wildcards, modifiers' encodings (base64, utf16)
//   sigma_detection.cc    detection maps and lists: field terms with their modifiers, keywords
//   sigma_condition.cc    the condition grammar
//   sigma_correlation.cc  correlation rules

#include <yaml-cpp/yaml.h>

#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "vigil/core/check.h"
#include "vigil/match/sigma.h"

namespace vigil::match::detail {

// Sigma's value syntax: a backslash escapes `*`, `?` and itself (before anything else it is
// itself); an unescaped `*` or `?` is a wildcard. Calls f(c, wildcard) per character.
template <class F>
void for_each_sigma_char(const std::string& value, F&& f) {
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c == '\\' && i + 1 < value.size() &&
        (value[i + 1] == '*' || value[i + 1] == '?' || value[i + 1] == '\\')) {
      f(value[++i], false);
    } else {
      f(c, c == '*' || c == '?');
    }
  }
}

// A Sigma value as characters, and characters written back as a Sigma value.
struct SigmaChar {
  char c;
  bool wildcard;
};
std::vector<SigmaChar> sigma_chars(const std::string& value);
std::string sigma_text(const std::vector<SigmaChar>& chars, size_t from, size_t to);

// Values as regexes (sigma_values.cc).
// `caseless`: a non-ASCII letter becomes the group of its case variants (Unicode simple case
// folding), ASCII letters are left to Hyperscan's caseless flag.
// `json`: the value is searched in raw JSON text (keywords), so its special characters are
// matched as JSON escapes them.
std::string to_regex(const std::string& value, bool anchor_start, bool anchor_end, bool windash,
                     bool caseless, bool json = false);
std::string literal_regex(const std::string& bytes, bool anchor_start, bool anchor_end);
std::string base64(const std::string& in);
std::vector<std::string> base64_offsets(const std::string& in);
std::optional<std::string> utf16(const std::string& in, bool little_endian);
bool valid_number(const std::string& s);
bool only_star_wildcards(const std::string& value);

inline CondNode make_node(CondNode::Kind kind) {
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
    key.reserve(p.field.size() + p.regex.size() + p.operand.size() + p.value.size() + 32);
    for (const std::string* part :
         {&p.field, &p.regex, &p.operand, &p.value, &p.path, &p.time_part}) {
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
    // The key names every field of a Predicate.
    VIGIL_DCHECK(added || rule.predicates[it->second] == p);
    if (added) rule.predicates.push_back(std::move(p));
    return it->second;
  }
  std::unordered_map<std::string, uint32_t> predicate_ids;
};

inline bool is_null_value(const YAML::Node& n) { return n.IsNull() && n.Tag() != "!"; }

// A named search of the detection: a map, or a list of maps or of keywords
// (sigma_detection.cc).
Expected<CondNode> parse_search(ParseContext& ctx, const std::string& name, const YAML::Node& node);

// One condition over the named searches (sigma_condition.cc).
Expected<CondNode> parse_condition(ParseContext& ctx,
                                   const std::map<std::string, CondNode>& searches,
                                   const std::string& text);

// A scalar's text, or "" for anything else; a scalar or a list of them as a list.
std::string scalar_or_empty(const YAML::Node& n);
std::vector<std::string> string_or_list(const YAML::Node& n);

// The correlation section of a correlation rule (sigma_correlation.cc).
Status parse_correlation(ParseContext& ctx, const YAML::Node& doc, Correlation& c);

}  // namespace vigil::match::detail
