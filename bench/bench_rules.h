#pragma once
// The default pack (rules/sigma) under the vigil-sensor mapping, compiled: the rule set the
// macro benches (store, outputs) match simulator events with.

#include <memory>
#include <stdexcept>

#include "vigil/match/ruleset.h"

namespace vigil::bench {

inline std::shared_ptr<const match::RuleSet> default_pack() {
  auto mapping =
      match::FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/vigil-sensor.yml");
  if (!mapping) throw std::runtime_error(mapping.status().to_string());
  match::CompileReport report;
  auto parsed = match::load_rules({VIGIL_SOURCE_DIR "/rules/sigma"}, report);
  auto rs = match::RuleSet::compile(parsed, *mapping, report);
  if (!rs) throw std::runtime_error(rs.status().to_string());
  return *rs;
}

}  // namespace vigil::bench
