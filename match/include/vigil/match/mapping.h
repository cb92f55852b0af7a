#pragma once
// Field mapping (a processing pipeline, as pySigma calls it): which events a Sigma logsource
// applies to, and where a Sigma field lives in the sensor's JSON.
//
// File format (YAML), strict: an unknown key is an error.
//
//   name: vigil-sensor
//   field_prefix: ""                 # JSON path prefix for fields not listed in `fields`;
//                                    # a list tries each ("Event.UserData.*." matches any key)
//   fields:                          # a path, a list of paths (the first present), or a map
//     Provider_Name: Event.System.Provider.#attributes.Name
//     Initiated: {path: network.direction, convert: {values: {"true": egress, "false": ingress}}}
//     SourceImage: {same_as: Image}  # whatever Image maps to for the same rule
//     Hashes: {unsupported: "the sensor splits it into process.hash.*"}   # rules refused
//   fields_by_logsource:             # fields of rules of one logsource (pySigma's
//     - match: {category: process_creation}   # LogsourceCondition): the first entry whose
//       fields: {Description: process.pe.description}   # keys all equal the rule's wins
//   host_field: Hostname             # JSON path of the host name (for alerts)
//   time_field: "@timestamp"         # JSON path of the event time (RFC 3339)
//   placeholders:                    # values of %name% in rules' `expand` values
//     known_cdcs: [DC01, DC02, 10.0.0.5]
//   logsources:
//     - name: sysmon_process_creation
//       match: {product: windows, category: process_creation}
//       where: {Channel: Microsoft-Windows-Sysmon/Operational, EventID: 1}   # JSON paths
//
// A Sigma field's paths for a rule: the first `fields_by_logsource` entry that names the field
// and whose `match` keys all equal the rule's logsource, else `fields`, else each prefix
// followed by the field's name. Conversions (`convert`, one per field; see FieldSpec):
// `values` rewrites a rule's exact values (compared caseless) to the sensor's,
// `registry_dword` turns `DWORD (0x...)` into the decimal number, `split_domain: PATH` tests
// `DOMAIN\name` as two fields, `hashes: {sha256: PATH, imphash: PATH, ...}` tests Sysmon's
// `Hashes` value `ALGO=HEX` as the algorithm's own field. A test a conversion cannot carry over is
// refused, never passed through unconverted. Values are compared as text, so a number the sensor
// writes as a string (ECS `event.code`) needs no conversion.
//
// A rule's logsource selects every entry whose `match` agrees with it on the keys the rule
// sets (product, category, service); an event belongs to an entry when every `where` path
// equals one of the listed values (case-insensitive).

#include <string>
#include <unordered_map>
#include <vector>

#include "vigil/core/status.h"
#include "vigil/match/sigma.h"

namespace YAML {
class Node;
}

namespace vigil::match {

struct LogsourceMapping {
  std::string name;
  Logsource match;
  // JSON path -> accepted values
  std::vector<std::pair<std::string, std::vector<std::string>>> where;
};

// Where a Sigma field lives for rules of one logsource, and how its values are written there.
struct FieldSpec {
  std::vector<std::string> paths;  // JSON paths, in order of preference (at least one)
  // Conversions (at most one), of the values a rule tests this field for:
  // Sigma value -> the sensor's value (convert: values), compared caseless.
  std::vector<std::pair<std::string, std::string>> values;
  // Registry data whose DWORDs the sensor writes as decimal numbers (convert: registry_dword),
  // as Winlogbeat does: `DWORD (0x00000010)` is tested as `16`.
  bool registry_dword = false;
  // `DOMAIN\name` written as two fields (convert: split_domain): `paths` hold the name, this
  // path the domain, as Winlogbeat writes Sysmon's User into user.name and user.domain.
  std::string domain_path;
  // Sysmon's `Hashes` split per algorithm (convert: hashes): algorithm -> path, as Winlogbeat
  // writes process.hash.sha256 and process.pe.imphash.
  std::vector<std::pair<std::string, std::string>> hashes;
  // Set: the sensor does not carry this field in a form a rule can test (why); rules testing
  // it are refused with the reason instead of never matching (`paths` are then the prefix's).
  std::string unsupported;

  bool converts() const {
    return !values.empty() || registry_dword || !domain_path.empty() || !hashes.empty();
  }
};

class FieldMapping {
 public:
  static Expected<FieldMapping> parse(const std::string& yaml_text, const std::string& source);
  static Expected<FieldMapping> load_file(const std::string& path);

  const std::string& name() const { return name_; }
  // Where a Sigma field of a rule with logsource `rule_ls` lives.
  FieldSpec field(const std::string& sigma_field, const Logsource& rule_ls) const;
  // JSON paths of a Sigma field, in order of preference (at least one).
  std::vector<std::string> json_paths(const std::string& sigma_field,
                                      const Logsource& rule_ls = {}) const {
    return field(sigma_field, rule_ls).paths;
  }
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
  // A field entry as written: paths and conversions, or the name of the field it is the same as.
  struct FieldEntry {
    std::string sigma_field;
    FieldSpec spec;
    std::string same_as;
  };
  // Field entries with an index by Sigma name.
  struct FieldTable {
    std::vector<FieldEntry> entries;
    std::unordered_map<std::string, size_t> by_name;
    const FieldEntry* find(const std::string& sigma_field) const;
  };
  struct FieldSet {
    Logsource match;  // empty keys: any
    FieldTable fields;
  };
  static Expected<FieldTable> parse_fields(const YAML::Node& f, const std::string& where);
  // The entry of a field for a rule of `rule_ls` (null: a rule no fields_by_logsource entry
  // applies to), or null.
  const FieldEntry* find_entry(const std::string& sigma_field, const Logsource* rule_ls) const;
  Status check_same_as_chains(const std::string& source) const;

  FieldTable fields_;
  std::vector<FieldSet> fields_by_logsource_;
  std::string host_field_;
  std::string time_field_;
  std::vector<LogsourceMapping> logsources_;
  std::vector<std::pair<std::string, std::vector<std::string>>> placeholders_;
};

// The rule with the mapping's value conversions applied to its predicates, then its
// placeholders resolved (below). Fails, naming the field, when a converted field is tested
// with anything but exact values.
Expected<SigmaRule> apply_mapping(const SigmaRule& rule, const FieldMapping& mapping);

// The rule with each `expand` predicate replaced by the OR of its values, the mapping's
// values of its placeholders substituted (every combination when there are several).
// Fails, naming the placeholder, when the mapping does not define one.
Expected<SigmaRule> resolve_placeholders(const SigmaRule& rule, const FieldMapping& mapping);

}  // namespace vigil::match
