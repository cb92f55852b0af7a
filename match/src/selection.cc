// Rule selection (selection.h) and select_rules() (ruleset.h).

#include "vigil/match/selection.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <set>

#include "patterns.h"
#include "vigil/match/ruleset.h"

namespace vigil::match {
namespace {

constexpr std::array<std::string_view, 5> kStatuses = {"stable", "test", "experimental",
                                                       "deprecated", "unsupported"};
constexpr std::array<std::string_view, 5> kLevels = {"informational", "low", "medium", "high",
                                                     "critical"};

int level_rank(const std::string& level) {
  const std::string l = ascii_lower(level);
  for (size_t i = 0; i < kLevels.size(); ++i) {
    if (kLevels[i] == l) return static_cast<int>(i);
  }
  return -1;
}

template <size_t N>
std::string joined(const std::array<std::string_view, N>& names) {
  std::string out;
  for (auto n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

bool contains_caseless(const std::vector<std::string>& list, const std::string& value) {
  const std::string v = ascii_lower(value);
  return std::any_of(list.begin(), list.end(),
                     [&](const std::string& x) { return ascii_lower(x) == v; });
}

// The first of `rule`'s tags one of `patterns` matches, or "".
std::string matching_tag(const std::vector<std::string>& patterns, const SigmaRule& rule) {
  for (const auto& t : rule.tags) {
    for (const auto& p : patterns) {
      if (tag_matches(p, t)) return t;
    }
  }
  return "";
}

Status string_list(const YAML::Node& v, const std::string& where, std::vector<std::string>& out) {
  if (v.IsScalar()) {
    out.push_back(v.Scalar());
    return Status::ok();
  }
  if (!v.IsSequence()) return Status::invalid(where + " must be a string or a list of strings");
  for (const auto& x : v) {
    if (!x.IsScalar() || x.Scalar().empty())
      return Status::invalid(where + " must hold non-empty strings");
    out.push_back(x.Scalar());
  }
  return Status::ok();
}

void yaml_list(std::string& out, const char* key, const std::vector<std::string>& v) {
  if (v.empty()) return;
  out += key;
  out += ": [";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ", ";
    out += '"';
    for (char c : v[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += "]\n";
}

}  // namespace

Expected<RuleSelection> RuleSelection::parse(const YAML::Node& node, const std::string& where) {
  RuleSelection s;
  if (!node || node.IsNull()) return s;
  if (!node.IsMap())
    return Status::invalid(where +
                           ": 'select' must be a map (status, min_level, tags, "
                           "exclude_tags, product, category)");
  for (const auto& kv : node) {
    const std::string k = kv.first.IsScalar() ? kv.first.Scalar() : "";
    const std::string at = where + ": select." + k;
    Status st;
    if (k == "status")
      st = string_list(kv.second, at, s.statuses);
    else if (k == "min_level")
      s.min_level = kv.second.IsScalar() ? kv.second.Scalar() : "";
    else if (k == "tags")
      st = string_list(kv.second, at, s.tags);
    else if (k == "exclude_tags")
      st = string_list(kv.second, at, s.exclude_tags);
    else if (k == "product")
      st = string_list(kv.second, at, s.products);
    else if (k == "category")
      st = string_list(kv.second, at, s.categories);
    else
      return Status::invalid(where + ": unknown key 'select." + k +
                             "' (known: status, min_level, tags, exclude_tags, product, "
                             "category)");
    if (!st.is_ok()) return st;
  }
  if (Status st = s.check(); !st.is_ok()) return Status::invalid(where + ": " + st.message());
  return s;
}

Status RuleSelection::check() const {
  for (const auto& st : statuses) {
    if (std::find(kStatuses.begin(), kStatuses.end(), ascii_lower(st)) == kStatuses.end())
      return Status::invalid("unknown rule status '" + st + "' (Sigma's: " + joined(kStatuses) +
                             ")");
  }
  if (!min_level.empty() && level_rank(min_level) < 0)
    return Status::invalid("unknown level '" + min_level + "' (Sigma's: " + joined(kLevels) + ")");
  return Status::ok();
}

std::string RuleSelection::why_left_out(const SigmaRule& rule) const {
  const std::string status = rule.status.empty() ? "" : ascii_lower(rule.status);
  if (statuses.empty()) {
    if (status == "deprecated" || status == "unsupported")
      return "status " + status + " (left out by default; select its status to load it)";
  } else if (!contains_caseless(statuses, status)) {
    return (status.empty() ? std::string("no status") : "status " + status) + " is not one of " +
           joined(statuses);
  }
  if (!min_level.empty()) {
    const int rank = level_rank(rule.level);
    if (rank < 0)
      return rule.level.empty() ? "no level (minimum " + min_level + ")"
                                : "level '" + rule.level + "' is not a Sigma level";
    if (rank < level_rank(min_level))
      return "level " + ascii_lower(rule.level) + " is below the minimum " + ascii_lower(min_level);
  }
  if (!tags.empty() && matching_tag(tags, rule).empty())
    return "none of its tags is one of " + joined(tags);
  if (const std::string t = matching_tag(exclude_tags, rule); !t.empty())
    return "tag " + t + " is excluded";
  if (!rule.correlation) {
    if (!products.empty() && !contains_caseless(products, rule.logsource.product))
      return "product '" + rule.logsource.product + "' is not one of " + joined(products);
    if (!categories.empty() && !contains_caseless(categories, rule.logsource.category))
      return "category '" + rule.logsource.category + "' is not one of " + joined(categories);
  }
  return "";
}

std::string RuleSelection::to_yaml() const {
  std::string out;
  yaml_list(out, "status", statuses);
  if (!min_level.empty()) out += "min_level: " + min_level + "\n";
  yaml_list(out, "tags", tags);
  yaml_list(out, "exclude_tags", exclude_tags);
  yaml_list(out, "product", products);
  yaml_list(out, "category", categories);
  return out;
}

std::string RuleSelection::describe() const {
  std::string out =
      statuses.empty() ? "status: all but deprecated, unsupported" : "status: " + joined(statuses);
  if (!min_level.empty()) out += "; level >= " + min_level;
  if (!tags.empty()) out += "; tags: " + joined(tags);
  if (!exclude_tags.empty()) out += "; not tags: " + joined(exclude_tags);
  if (!products.empty()) out += "; product: " + joined(products);
  if (!categories.empty()) out += "; category: " + joined(categories);
  return out;
}

bool RuleSelection::is_default() const {
  return statuses.empty() && min_level.empty() && tags.empty() && exclude_tags.empty() &&
         products.empty() && categories.empty();
}

std::vector<SigmaRule> select_rules(std::vector<SigmaRule> docs, const RuleSelection& selection,
                                    CompileReport& report) {
  std::vector<std::string> why(docs.size());
  for (size_t i = 0; i < docs.size(); ++i) {
    if (!docs[i].filter) why[i] = selection.why_left_out(docs[i]);
  }
  // Base rules of the selected correlations, by id or name.
  std::set<std::string> needed;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (docs[i].correlation && why[i].empty())
      needed.insert(docs[i].correlation->rules.begin(), docs[i].correlation->rules.end());
  }
  std::vector<SigmaRule> out;
  out.reserve(docs.size());
  for (size_t i = 0; i < docs.size(); ++i) {
    SigmaRule& r = docs[i];
    if (why[i].empty()) {
      out.push_back(std::move(r));
      continue;
    }
    if (!r.correlation && (needed.count(r.id) || (!r.name.empty() && needed.count(r.name)))) {
      r.selected = false;
      r.warnings.push_back("left out by the selection (" + why[i] +
                           "), compiled as an input of a selected correlation only");
      out.push_back(std::move(r));
      continue;
    }
    RuleDiagnostic d{r.source, r.id, r.title, Status::ok(), r.warnings};
    d.left_out = std::move(why[i]);
    report.rules.push_back(std::move(d));
    ++report.left_out;
  }
  return out;
}

std::vector<SigmaRule> prepare_rules(std::vector<SigmaRule> docs, const RuleSelection& selection,
                                     CompileReport& report, size_t max_added_values) {
  const size_t first = report.rules.size();
  auto selected = select_rules(std::move(docs), selection, report);
  std::vector<std::string> left_out;
  for (size_t i = first; i < report.rules.size(); ++i) {
    if (!report.rules[i].left_out.empty()) left_out.push_back(report.rules[i].rule_id);
  }
  return apply_filters(std::move(selected), left_out, report, max_added_values);
}

bool tag_matches(std::string_view pattern, std::string_view tag) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  const bool prefix = !pattern.empty() && pattern.back() == '*';
  if (prefix) pattern.remove_suffix(1);
  if (prefix ? tag.size() < pattern.size() : tag.size() != pattern.size()) return false;
  for (size_t i = 0; i < pattern.size(); ++i)
    if (lower(pattern[i]) != lower(tag[i])) return false;
  return true;
}

}  // namespace vigil::match
