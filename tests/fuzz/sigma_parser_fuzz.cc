// libFuzzer: the Sigma rule parser and compiler on arbitrary rule files (every document of
// a stream, Sigma v1 collection actions, filters applied under a selection), and the compiled
// rules run over a few fixed events (keywords, prefilter confirmation and expand included).
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "vigil/match/matcher.h"

namespace {

vigil::match::FieldMapping load_mapping() {
  std::ifstream in(VIGIL_SOURCE_DIR "/rules/mappings/vigil-sensor.yml");
  std::stringstream ss;
  ss << in.rdbuf() << "placeholders:\n  hosts: [DC01, 'dc*', '%x%']\n  pfx: [a, '']\n";
  return *vigil::match::FieldMapping::parse(ss.str(), "vigil-sensor.yml");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto mapping = load_mapping();
  static const char* const kEvents[] = {
      R"({"Channel":"Microsoft-Windows-Sysmon/Operational","EventID":1,"Image":"C:\\Windows\\cmd.exe","CommandLine":"cmd /c whoami -priv","User":"DC01"})",
      R"({"logsource":{"product":"linux","category":"process_creation"},"Image":"/bin/sh","CommandLine":"rm -rf / \u0000 x"})",
      R"({"logsource":{"category":"proxy"},"c-uri":"http://x/?q=1%27","cs-method":"GET","sc-status":404})",
  };
  std::vector<vigil::match::SigmaRule> docs;
  for (auto& r : vigil::match::parse_sigma_documents(
           std::string(reinterpret_cast<const char*>(data), size), "fuzz.yml")) {
    if (r) docs.push_back(std::move(*r));
  }
  if (docs.empty()) return 0;
  vigil::match::CompileReport report;
  vigil::match::RuleSelection selection;
  selection.min_level = size % 2 ? "low" : "";
  auto rules = vigil::match::prepare_rules(std::move(docs), selection, report);
  auto rs = vigil::match::RuleSet::compile(rules, mapping, report);
  if (!rs) return 0;
  auto matcher = vigil::match::Matcher::create(*rs);
  if (!matcher) return 0;
  vigil::EventParser parser;
  vigil::Event event;
  std::vector<uint32_t> out;
  for (const char* e : kEvents) {
    if (parser.parse(e, (*rs)->fields(), event) == vigil::ParseError::kNone)
      (void)(*matcher)->match(event, out);
  }
  return 0;
}
