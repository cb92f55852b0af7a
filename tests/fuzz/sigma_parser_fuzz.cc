// libFuzzer: the Sigma rule parser and compiler on arbitrary rule files.
#include <cstdint>
#include <string>

#include "vigil/match/ruleset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto mapping = *vigil::match::FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/vigil-sensor.yml");
  auto rule = vigil::match::parse_sigma(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yml");
  if (rule) {
    vigil::match::CompileReport report;
    (void)vigil::match::RuleSet::compile({*rule}, mapping, report);
  }
  return 0;
}
