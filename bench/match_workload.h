#pragma once
// What the matching benchmarks run: compiled rules, the rules as parsed (for the peers), the
// mapping and the events (match_bench.cc builds them).

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vigil/match/mapping.h"
#include "vigil/match/ruleset.h"
#include "vigil/match/sigma.h"

namespace vigil::bench {

struct Workload {
  std::shared_ptr<const match::RuleSet> rules;
  std::vector<match::SigmaRule> parsed;  // the rules `rules` compiled, for the peers
  std::optional<match::FieldMapping> mapping;
  std::vector<std::string> events;
  size_t compiled = 0, unsupported = 0;
};

}  // namespace vigil::bench
