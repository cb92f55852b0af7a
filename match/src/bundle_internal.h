#pragma once
// What bundle validation (bundle_validator.cc) reads of a bundle through its manifest
// (bundle_manifest.cc): the manifest itself, the rule files, the mapping and the rule tests.

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "vigil/core/status.h"
#include "vigil/match/bundle.h"
#include "vigil/match/mapping.h"

namespace vigil::match::detail {

// A YAML scalar's text, empty for anything else.
std::string scalar(const YAML::Node& n);

// manifest.yml (or .yaml); an absent one gives the defaults with `present` false.
BundleManifest parse_manifest(const Bundle& b, std::vector<std::string>& errors,
                              std::vector<std::string>& warnings);
// The rule files of the bundle, by the manifest's `rules` or by default.
std::vector<const BundleFile*> rule_files(const Bundle& b, const BundleManifest& m,
                                          std::vector<std::string>& errors);
// The manifest's mapping, or `fallback` (the server's) when it names none.
Expected<FieldMapping> bundle_mapping(const Bundle& b, const BundleManifest& m,
                                      const FieldMapping* fallback);
// The rule tests under the manifest's `tests` paths.
std::vector<RuleTest> parse_tests(const Bundle& b, const BundleManifest& m,
                                  std::vector<std::string>& errors);

}  // namespace vigil::match::detail
