#pragma once
// Rule selection: which rules of a rule set are loaded, by status, level, tags and logsource
// (what Hayabusa and Chainsaw call --status / --level / tag filters).
//
// Written the same way in a bundle manifest's `select`, vigild's config `select` and
// `vigil rules check` / `vigil match` flags:
//
//   select:
//     status: [stable, test]          # default: every status but deprecated and unsupported
//     min_level: high                 # informational < low < medium < high < critical
//     tags: [attack.execution, attack.t1059*]   # kept only with one of these (`*`: prefix)
//     exclude_tags: [detection.emerging-threats]
//     product: [windows]              # the rule's logsource; correlations are judged by
//     category: [process_creation]    #   their own metadata, their base rules by theirs
//
// A rule left out is reported with why (CompileReport); a base rule a selected correlation
// needs is compiled anyway, as an input of the correlation only (no alerts of its own).

#include <string>
#include <string_view>
#include <vector>

#include "vigil/core/status.h"
#include "vigil/match/sigma.h"

namespace YAML {
class Node;
}

namespace vigil::match {

struct RuleSelection {
  std::vector<std::string> statuses;  // kept statuses; empty: all but deprecated, unsupported
  std::string min_level;              // empty: any level (and none)
  std::vector<std::string> tags;
  std::vector<std::string> exclude_tags;
  std::vector<std::string> products;
  std::vector<std::string> categories;

  // The `select` map; an unknown key, status or level is refused, named with `where`.
  static Expected<RuleSelection> parse(const YAML::Node& node, const std::string& where);
  // Statuses and the level are known Sigma values (what parse() checks; for flags).
  Status check() const;
  // Why `rule` is left out, or "" if it is selected.
  std::string why_left_out(const SigmaRule& rule) const;
  // As the YAML map parse() reads (for a generated manifest), and in one line for people.
  std::string to_yaml() const;
  std::string describe() const;
  bool is_default() const;
};

// A tag pattern as `tags` and `exclude_tags` take it (here and in the alert outputs'
// filters): the tag itself, ASCII caseless, or a prefix when it ends with `*`.
bool tag_matches(std::string_view pattern, std::string_view tag);

}  // namespace vigil::match
