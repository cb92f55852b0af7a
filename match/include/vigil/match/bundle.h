#pragma once
// Rule bundles: the unit of detection content that vigil validates, stores, dry-runs and
// rolls out (DESIGN.md, "Rule content lifecycle").
//
// A bundle is a set of files, from a directory or an archive (tar, tar.gz, zip: anything
// libarchive reads):
//
//   manifest.yml        optional; strict: an unknown key is an error
//     format_version: 1            # a newer version than this engine knows is refused
//     name: corp-detections        # descriptive: name, label, author, description
//     label: "2026.11.25"
//     author: SOC
//     description: ...
//     mapping: mappings/sensor.yml  # the field mapping inside the bundle (default: the server's)
//     rules: [rules]               # rule files or folders (default: every .yml/.yaml that is
//                                  # not the manifest, the mapping or a test)
//     tests: [tests]               # rule test files or folders (default: "tests")
//     fields: [CommandLine, Image] # the Sigma fields the rules may use (a rule using another
//     field_count: 2               # one is refused; field_count must equal the list's size)
//     select: {min_level: high}    # rule selection (selection.h); default: every status but
//                                  # deprecated and unsupported
//     parameters:                  # engine parameters; an unknown one is an error
//       min_engine_version: "0.1.0"
//       max_rule_cost_ns: 20000    # may only lower the server's per-rule scan cost budget
//
//   tests/*.yml         a rule's own test events (one YAML map per file, or a list of them):
//     rule: <rule id>
//     match:    [ {Image: 'C:\x.exe', CommandLine: ...}, '{"raw": "json"}' ]
//     no_match: [ ... ]
//
// Rule files may hold several documents (rules, correlations, Sigma filters, Sigma v1
// collections); filters are applied to the rules they name (apply_filters()).
//
// A plain directory of Sigma rules is a bundle with derived defaults. The content hash
// (XXH3-128 over every file's path and bytes, in path order) identifies a bundle: the same
// files are the same bundle wherever they come from.
//
// Bundle values are immutable once loaded and may be shared across threads.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/core/status.h"
#include "vigil/match/mapping.h"
#include "vigil/match/rule_stats.h"
#include "vigil/match/ruleset.h"

namespace vigil::match {

// The bundle format this engine understands.
inline constexpr int kBundleFormatVersion = 1;
// The engine's version, compared with a manifest's min_engine_version.
inline constexpr std::string_view kEngineVersion = "0.1.0";

struct BundleFile {
  std::string path;  // relative, '/'-separated, no "." or ".." segment
  std::string content;
};

struct BundleManifest {
  bool present = false;  // false: derived defaults (a plain directory of rules)
  int format_version = kBundleFormatVersion;
  std::string name, label, author, description;
  std::string mapping;             // path inside the bundle; empty: the server's mapping
  std::vector<std::string> rules;  // empty: every YAML file but the manifest, mapping and tests
  std::vector<std::string> tests{"tests"};
  std::optional<std::vector<std::string>> fields;  // declared Sigma fields
  std::optional<int64_t> field_count;
  std::string min_engine_version;
  int64_t max_rule_cost_ns = 0;  // 0: the server's budget
  RuleSelection select;
};

// Limits on what a bundle may hold (an archive from outside is hostile until proven not).
struct BundleLimits {
  size_t max_files = 20000;
  size_t max_file_bytes = 4 << 20;
  size_t max_total_bytes = 128 << 20;
};

class Bundle {
 public:
  // A directory (recursively), a single rule file, or an archive file.
  static Expected<Bundle> load(const std::string& path, const BundleLimits& limits = {});
  // An archive in memory (tar, tar.gz, zip, ...), e.g. the body of POST /api/v1/bundles.
  static Expected<Bundle> from_archive(std::string_view bytes, const BundleLimits& limits = {});
  static Expected<Bundle> from_files(std::vector<BundleFile> files,
                                     const BundleLimits& limits = {});

  // The bundle as an uncompressed tar (what the store keeps and what the CLI uploads).
  std::string to_tar() const;

  const std::vector<BundleFile>& files() const { return files_; }
  const BundleFile* file(std::string_view path) const;
  const std::string& hash() const { return hash_; }  // 32 hex digits
  size_t total_bytes() const;

 private:
  std::vector<BundleFile> files_;  // sorted by path
  std::string hash_;
};

// A rule's own test events, from the bundle's test files.
struct RuleTest {
  std::string source;  // the test file
  std::string rule_id;
  std::vector<std::string> match;     // JSON events the rule must match
  std::vector<std::string> no_match;  // JSON events it must not match
};

struct BundleValidationOptions {
  // The mapping used when the bundle names none (the server's).
  const FieldMapping* default_mapping = nullptr;
  // Events (JSON) each rule's scan cost is measured on, besides the bundle's test events.
  std::vector<std::string> reference_events;
  // Per rule: nanoseconds per reference event (extracting its fields and matching) above
  // which the rule is refused; 0: not measured.
  int64_t max_rule_cost_ns = 200000;
  // Time spent measuring one rule at most (it is run over the corpus at least once).
  int64_t cost_sample_ms = 20;
  // Each rule is measured alone when the bundle has at most this many rules, or when the
  // whole bundle costs more than the budget (then only a rule can be the culprit); a larger
  // bundle within budget is measured as a whole (no rule alone costs more than the whole).
  size_t max_rules_measured_alone = 300;
  // Whether every rule must compile (a rule that does not is an error, not a warning).
  bool require_all_rules = true;
  // Bounds on what one validation may cost: values (predicates) in one rule and in the
  // whole bundle, checked before compiling (the SigmaHQ tree: ~46,000 values, at most
  // ~4,400 in one rule), and wall time, checked between steps. Past one: refused, saying which.
  size_t max_values_per_rule = 20'000;
  // Rule documents (rules, correlations, filters) in the whole bundle: a file may hold many.
  size_t max_documents = 50'000;
  size_t max_values_per_bundle = 250'000;
  int64_t max_validation_ms = 300'000;
};

struct RuleValidation {
  std::string source;
  std::string id;
  std::string title;
  bool correlation = false;
  bool filter = false;                  // a Sigma filter document
  std::vector<std::string> applies_to;  // a filter: the rules it was applied to
  std::string left_out;                 // set: left out by the manifest's selection, and why
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
  size_t tests_passed = 0;
  size_t tests_failed = 0;
  double cost_ns_per_event = -1;  // -1: not measured
  bool ok() const { return errors.empty(); }
};

struct BundleReport {
  std::string hash;
  BundleManifest manifest;
  std::string mapping_name;
  std::vector<std::string> errors;  // of the bundle as a whole (manifest, mapping, layout)
  std::vector<std::string> warnings;
  std::vector<RuleValidation> rules;  // in file order
  size_t rules_ok = 0;
  size_t rules_failed = 0;
  size_t rules_left_out = 0;      // by the manifest's selection (neither ok nor failed)
  double cost_ns_per_event = -1;  // the whole bundle; -1: not measured
  size_t reference_events = 0;
  bool ok() const { return errors.empty() && rules_failed == 0 && !rules.empty(); }
  // Every error, bundle and rule ones, each naming where it is ("rules/x.yml: ...").
  std::vector<std::string> all_errors() const;
  std::string to_json() const;
};

// A bundle compiled and ready to run: shared by the workers that run it.
struct CompiledBundle {
  uint64_t version = 0;  // 0: not stored
  std::string hash;
  std::string name;
  std::shared_ptr<const RuleSet> rules;
  std::shared_ptr<RuleStats> stats;       // matches per rule of this bundle
  std::map<std::string, double> cost_ns;  // rule id -> scan cost measured at validation
};

// Validates `bundle` (DESIGN.md step 2): strict manifest, every rule parsed and compiled,
// declared fields, each rule's test events, each rule's scan cost against the budget.
// `compiled`, if given, receives the compiled rule set when the report is ok.
BundleReport validate_bundle(const Bundle& bundle, const BundleValidationOptions& options,
                             std::shared_ptr<const RuleSet>* compiled = nullptr);

// Compiles a bundle without validating its tests and costs (a bundle validated before, read
// back from the store). Fails if any rule does not compile.
// `lenient`: rules that do not compile are left out (the configured rules of a deployment,
// validated leniently) instead of failing the bundle.
Expected<std::shared_ptr<const RuleSet>> compile_bundle(const Bundle& bundle,
                                                        const FieldMapping& default_mapping,
                                                        bool lenient = false);

// Converts a YAML document (a map, or a string holding JSON) to a JSON text: plain scalars
// that read as numbers, booleans or null become those, everything else strings.
Expected<std::string> yaml_event_to_json(const std::string& yaml_text);

}  // namespace vigil::match
