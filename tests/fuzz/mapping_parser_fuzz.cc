// libFuzzer: the field mapping parser on arbitrary mapping files, and a fixed rule that uses
// every kind of conversion compiled under each mapping that parses (per-logsource fields,
// same_as chains, values, registry_dword, split_domain, unsupported fields); the same input
// read as a pySigma pipeline by `vigil mapping import-pysigma`.
#include <cstdint>
#include <string>

#include "vigil/match/matcher.h"
#include "vigil/match/pysigma_import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto rule = *vigil::match::parse_sigma(R"(
title: conversions
id: 5e1d0c55-0000-4000-8000-000000000001
logsource: {product: windows, category: process_creation}
detection:
  a: {User: 'NT AUTHORITY\SYSTEM', Initiated: 'true', Details: 'DWORD (0x00000001)'}
  b: {User|contains: 'AUTHORI', Image|endswith: '\cmd.exe', Details|contains: 'x'}
  c: {CommandLine|re: 'a.*b', Hashes|contains: 'MD5='}
  condition: a or b or c
)",
                                                      "rule.yml");
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)vigil::match::import_pysigma_pipeline(text, "pipeline.yml");
  auto mapping = vigil::match::FieldMapping::parse(text, "fuzz.yml");
  if (!mapping) return 0;
  (void)mapping->json_paths("Image", rule.logsource);
  (void)vigil::match::apply_mapping(rule, *mapping);
  vigil::match::CompileReport report;
  auto rs = vigil::match::RuleSet::compile({rule}, *mapping, report);
  if (!rs) return 0;
  (void)vigil::match::Matcher::create(*rs);
  return 0;
}
