// libFuzzer: rule bundles from outside. Mode 'A' (first byte): the rest is an archive body
// as POST /api/v1/bundles receives it; otherwise the input is split at the first 0x00 into
// a manifest and a rule test file around a fixed rule, and the bundle is validated (scan
// costs off, to stay fast).
#include <cstdint>
#include <string>

#include "vigil/match/bundle.h"

namespace {

constexpr char kRule[] = R"(title: Whoami
id: 2b3a5f2c-7c1b-4b8e-9d0a-1f6e3c9b8a11
logsource: {product: windows, category: process_creation}
detection:
  selection:
    Image|endswith: '\whoami.exe'
  condition: selection
level: low
)";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto mapping =
      *vigil::match::FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/vigil-sensor.yml");
  if (size == 0) return 0;
  const std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  vigil::match::BundleValidationOptions o;
  o.default_mapping = &mapping;
  o.max_rule_cost_ns = 0;
  if (data[0] == 'A') {
    auto b = vigil::match::Bundle::from_archive(input);
    if (b) (void)vigil::match::validate_bundle(*b, o);
    return 0;
  }
  const size_t zero = input.find('\0');
  std::vector<vigil::match::BundleFile> files = {{"manifest.yml", input.substr(0, zero)},
                                                 {"rules/r.yml", kRule}};
  if (zero != std::string::npos) files.push_back({"tests/t.yml", input.substr(zero + 1)});
  auto b = vigil::match::Bundle::from_files(std::move(files));
  if (b) (void)vigil::match::validate_bundle(*b, o);
  return 0;
}
