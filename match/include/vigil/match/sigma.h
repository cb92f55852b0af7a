#pragma once
// Sigma rule intermediate representation and its parser.
//
// parse_sigma() turns one Sigma rule (YAML text) into a SigmaRule: metadata, a flat list of
// field predicates, and the condition as a tree over those predicates (search identifiers
// are resolved and inlined). Anything that decides what is detected and that the engine
// does not understand (an unknown modifier, a deprecated aggregation, a dangling
// identifier) makes the parse fail with a message naming it; nothing is silently ignored.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/core/status.h"

namespace vigil::match {

// The Sigma specification this parser implements (SigmaHQ/sigma-specification): rules and the
// modifiers appendix 2.1.0, correlations (with the 2.1 schema's value_* metric types, chains and
// pySigma's expression conditions for temporal types) and filters; docs/rules.md lists what
// differs.
inline constexpr std::string_view kSigmaSpecificationVersion = "2.1.0";

struct Logsource {
  std::string product, category, service;
  std::string to_string() const;
  // Whether every key this one sets equals the one of `other` (an unset key agrees with any):
  // a mapping entry's or a filter's logsource covering a rule's.
  bool covers(const Logsource& other) const;
};

// One test on one field of an event.
struct Predicate {
  enum class Kind : uint8_t {
    kPattern,   // `regex` (Hyperscan syntax) matches the field's text
    kExists,    // the field is present and not null (Sigma `field: '*'`)
    kMissing,   // the field is absent or null (Sigma `field: null`)
    kPresent,   // the field is present, null included (Sigma 2.1 `exists: true`)
    kAbsent,    // the field is absent (Sigma 2.1 `exists: false`)
    kEmpty,     // the field is present with an empty text
    kFieldRef,  // the field equals the field named by `operand` (fieldref)
    kCidr,      // the field is an IP address inside the network `operand` (cidr)
    kLess,
    kLessEqual,
    kGreater,
    kGreaterEqual,  // the field is a number compared with `operand`
  };
  std::string
      field;  // the Sigma field name, before mapping; empty: a keyword, searched in the raw event
  Kind kind = Kind::kPattern;
  std::string regex;
  std::string operand;
  // Comparisons: the part of the field's date compared (minute, hour, day, week, month, year:
  // Sigma 2.1 time modifiers); empty: the field's number itself.
  std::string time_part;
  bool caseless = true;
  bool dotall = true;
  bool multiline = false;
  bool user_regex = false;  // from the `re` modifier: may match an empty text
  // `expand`: `operand` is the Sigma value with %placeholders%, turned into patterns by
  // resolve_placeholders() once a mapping gives the placeholders' values.
  bool expand = false;
  bool anchor_start = false, anchor_end = false, windash = false;  // expand and `value`
  // The Sigma value of a plain string test (equals, contains, startswith, endswith, no
  // encoding), kept so a mapping's value conversion can rewrite it (apply_mapping()).
  std::string value;
  // The JSON path itself, set by a mapping's conversion (apply_mapping()) in place of the
  // field's mapped path.
  std::string path;

  bool operator==(const Predicate&) const = default;
};

// Condition tree. Leaves refer to predicates by index into SigmaRule::predicates.
struct CondNode {
  enum class Kind : uint8_t { kPred, kAnd, kOr, kNot, kAtLeast, kConst };
  Kind kind = Kind::kConst;
  uint32_t index = 0;  // kPred: predicate index; kAtLeast: how many children must hold
  bool value = false;  // kConst
  std::vector<CondNode> children;
};

// A Sigma correlation rule (specification v2): aggregates the matches of base rules,
// referenced by id or name, per group of field values within a timespan.
struct Correlation {
  enum class Type : uint8_t {
    kEventCount,
    kValueCount,
    kTemporal,
    kTemporalOrdered,
    // Metrics of a numeric field over the window's matches (Sigma 2.1 / pySigma): the sum,
    // mean, least, greatest, median or `percentile` of the values.
    kValueSum,
    kValueAvg,
    kValueMin,
    kValueMax,
    kValueMedian,
    kValuePercentile,
  };
  enum class Op : uint8_t { kGt, kGte, kLt, kLte, kEq, kNeq };
  Type type = Type::kEventCount;
  std::vector<std::string> rules;     // base rules by id or name, in order (temporal_ordered)
  std::vector<std::string> group_by;  // Sigma field names or alias names
  int64_t timespan_ms = 0;
  // The condition's bounds, all of which must hold: one (gt, gte, lt, lte, eq, neq) or a
  // range (gt/gte with lt/lte). Empty: a temporal type without one (all rules must match).
  struct Bound {
    Op op = Op::kGte;
    double value = 0;  // a non-negative integer for the counting types
  };
  std::vector<Bound> condition;
  // value_count: the field whose distinct values are counted, or several fields whose distinct
  // combinations are (`condition.field` as a list; an event lacking one of them counts nothing).
  // A metric type: its one numeric field.
  std::vector<std::string> fields;
  int percentile = -1;  // value_percentile: which one, 0 to 100
  // temporal: the condition written as an expression over the rules (pySigma's extended
  // condition, `a and (b or c)`): kPred leaves index `rules`. It holds over the rules matched
  // in the window.
  std::optional<CondNode> expression;
  // alias name -> (base rule id or name -> that rule's field)
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> aliases;
  bool generate = false;  // base rules also alert on their own

  bool has_condition() const { return !condition.empty(); }
  bool is_metric() const { return type >= Type::kValueSum; }
  // The matches carry a value of `fields` (value_count, the metrics).
  bool reads_values() const { return type == Type::kValueCount || is_metric(); }
  bool holds(double value) const;
  // Whether the condition can only be judged when the window ends: a bound of lt, lte, eq or
  // neq on a count (a later match may still break it), and every metric but a max above a
  // bound and a min below one (a later value may move a sum, mean, median or percentile
  // either way).
  bool judged_at_window_end() const;
};
std::string_view correlation_type_name(Correlation::Type t);

// A Sigma filter (specification v2, Sigma Filters): a document with a `logsource` and a
// `filter` section whose searches and condition are ANDed into the condition of the rules it
// names, as pySigma applies them: the condition says what may still alert, so an exclusion
// is written `condition: not selection`. apply_filters() (ruleset.h) applies them.
struct SigmaFilter {
  std::vector<std::string> rules;  // rule ids or names; empty: every rule of its logsource
};

struct SigmaRule {
  std::string source;  // file path, for diagnostics
  std::string id;
  std::string name;  // optional; correlation rules may reference a rule by it
  std::string title;
  std::string status;
  std::string level;
  std::string description;
  std::vector<std::string> tags;
  Logsource logsource;
  std::vector<Predicate> predicates;
  CondNode condition;
  std::vector<std::string> warnings;       // unknown descriptive metadata and the like
  std::optional<Correlation> correlation;  // set: a correlation rule (no logsource, no detection)
  // Set: a filter document (its predicates and condition are the filter's), not a rule.
  std::optional<SigmaFilter> filter;
  // Of a rule: the filters applied to it ("id: title"), by apply_filters().
  std::vector<std::string> filters;
  // False: left out by the rule selection, yet compiled because a selected correlation needs
  // its matches; it raises no alerts of its own (select_rules()).
  bool selected = true;
};

// Parses one Sigma rule. `source` names the input in error messages. A file of several
// documents is refused: parse_sigma_documents() reads it.
Expected<SigmaRule> parse_sigma(const std::string& yaml_text, const std::string& source);

// Parses every document of a rule file (a YAML stream): rules, correlations and filters,
// Sigma v1 collections (`action: global`, `reset`, `repeat`) resolved as the specification
// defines them. One entry per rule document, in order: the rule or why it is refused (the
// message names the file and, in a file of several, the document and its line). A broken
// document does not hide the others. A file of more than 10,000 documents is refused whole.
std::vector<Expected<SigmaRule>> parse_sigma_documents(const std::string& yaml_text,
                                                       const std::string& source);

// Converts a Sigma string value (with `*`/`?` wildcards and Sigma's backslash escaping)
// into a Hyperscan regex body (byte mode), anchored at the start and/or end as asked;
// `caseless`: each non-ASCII letter as the group of its case variants.
std::string sigma_value_to_regex(const std::string& value, bool anchor_start, bool anchor_end,
                                 bool windash = false, bool caseless = true);

}  // namespace vigil::match
