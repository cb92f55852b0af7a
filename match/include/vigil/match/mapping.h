#pragma once
// Field mapping (a processing pipeline, as pySigma calls it): which events a Sigma logsource
// applies to, and where a Sigma field lives in the sensor's JSON.
//
// File format (YAML), strict: an unknown key is an error.
//
//   name: vigil-sensor
//   field_prefix: ""                 # JSON path prefix for fields not listed in `fields`;
//                                    # a list tries each ("Event.UserData.*." matches any key)
//   fields: {Provider_Name: Event.System.Provider.#attributes.Name}   # a path or a list
//   host_field: Hostname             # JSON path of the host name (for alerts)
//   time_field: "@timestamp"         # JSON path of the event time (RFC 3339)
//   placeholders:                    # values of %name% in rules' `expand` values
//     known_cdcs: [DC01, DC02, 10.0.0.5]
//   logsources:
//     - name: sysmon_process_creation
//       match: {product: windows, category: process_creation}
//       where: {Channel: Microsoft-Windows-Sysmon/Operational, EventID: 1}   # JSON paths
//
// A rule's logsource selects every entry whose `match` agrees with it on the keys the rule
// sets (product, category, service); an event belongs to an entry when every `where` path
// equals one of the listed values (case-insensitive).

#include <string>
#include <vector>

#include "vigil/core/status.h"
#include "vigil/match/sigma.h"

namespace vigil::match {

struct LogsourceMapping {
  std::string name;
  Logsource match;
  // JSON path -> accepted values
  std::vector<std::pair<std::string, std::vector<std::string>>> where;
};

class FieldMapping {
 public:
  static Expected<FieldMapping> parse(const std::string& yaml_text, const std::string& source);
  static Expected<FieldMapping> load_file(const std::string& path);

  const std::string& name() const { return name_; }
  // JSON paths of a Sigma field, in order of preference (at least one).
  std::vector<std::string> json_paths(const std::string& sigma_field) const;
  // Indexes of the logsources a rule with `ls` applies to.
  std::vector<uint32_t> logsources_for(const Logsource& ls) const;
  const std::vector<LogsourceMapping>& logsources() const { return logsources_; }
  // Values of a placeholder (`%name%` in a rule's `expand` value), or null if none.
  const std::vector<std::string>* placeholder(const std::string& name) const;
  const std::string& host_field() const { return host_field_; }
  const std::string& time_field() const { return time_field_; }

 private:
  std::string name_;
  std::vector<std::string> field_prefixes_{""};
  std::vector<std::pair<std::string, std::vector<std::string>>> fields_;
  std::string host_field_;
  std::string time_field_;
  std::vector<LogsourceMapping> logsources_;
  std::vector<std::pair<std::string, std::vector<std::string>>> placeholders_;
};

// The rule with each `expand` predicate replaced by the OR of its values, the mapping's
// values of its placeholders substituted (every combination when there are several).
// Fails, naming the placeholder, when the mapping does not define one.
Expected<SigmaRule> resolve_placeholders(const SigmaRule& rule, const FieldMapping& mapping);

}  // namespace vigil::match
