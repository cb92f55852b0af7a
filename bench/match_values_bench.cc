// The cost of characters over bytes (part of vigil_match_bench): one rule of 40 caseless
// `contains` values on CommandLine, ASCII words against words with non-ASCII letters (whose
// case variants the compiler spells out), over the same command lines; and one `re` with `.`
// (UTF-8 mode) against one without. Compare the pairs of one run.
//
//   CaselessValues/ascii, CaselessValues/unicode
//   Regex/ascii_class, Regex/dot

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "vigil/match/matcher.h"
#include "vigil/match/ruleset.h"

namespace vigil {
namespace {

constexpr char kMapping[] = R"(
name: bench
logsources:
  - name: proc
    match: {product: windows, category: process_creation}
    where: {EventID: 1}
)";

// 40 words of 6 to 12 characters, ASCII or with non-ASCII letters, in the same shapes.
std::vector<std::string> words(bool unicode) {
  static const char* kAscii[] = {"password",   "benutzer", "kennwort",   "administrator",
                                 "contrasena", "parol",    "motdepasse", "wachtwoord",
                                 "lozinka",    "salasana"};
  static const char* kUnicode[] = {"passwört",   "benützer", "kennwört",   "administratör",
                                   "contraseña", "пароль",   "mötdepasse", "wachtwöord",
                                   "lozinkä",    "salasanä"};
  std::vector<std::string> out;
  for (int round = 0; round < 4; ++round) {
    for (const char* w : unicode ? kUnicode : kAscii)
      out.push_back(std::string(w) + "_" + std::to_string(round));
  }
  return out;
}

// 1,000 command lines a Windows host runs, none holding a value, a few holding their pieces.
std::vector<std::string> events() {
  static const char* kLines[] = {
      R"(C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule)",
      R"(\"C:\\Program Files\\Mozilla Firefox\\firefox.exe\" -contentproc --channel=1234 tab)",
      R"(powershell.exe -NoProfile -ExecutionPolicy Bypass -File C:\\ProgramData\\script.ps1)",
      R"(net user benutzer /domain)",
      R"(C:\\Windows\\System32\\conhost.exe 0xffffffff -ForceV1)",
      R"(cmd.exe /c echo пароль не найден > C:\\Users\\Public\\log.txt)",
      R"(\"C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE\" /n \"C:\\Users\\ana\\Documents\\contraseñas.docx\")",
      R"(reg.exe query HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run)",
  };
  std::vector<std::string> out;
  for (int i = 0; i < 1000; ++i) {
    out.push_back(R"({"EventID":1,"CommandLine":")" + std::string(kLines[i % 8]) + " " +
                  std::to_string(i) + "\"}");
  }
  return out;
}

std::shared_ptr<const match::RuleSet> compile(const std::string& detection) {
  auto rule = match::parse_sigma(
      "title: T\nid: t\nlogsource: {product: windows, category: process_creation}\ndetection:\n" +
          detection,
      "t.yml");
  auto mapping = match::FieldMapping::parse(kMapping, "m.yml");
  match::CompileReport report;
  std::vector<match::SigmaRule> rules{*rule};
  return *match::RuleSet::compile(rules, *mapping, report);
}

void run(benchmark::State& state, const std::shared_ptr<const match::RuleSet>& rules) {
  static const std::vector<std::string> lines = events();
  auto matcher = std::move(*match::Matcher::create(rules));
  EventParser parser;
  Event event;
  std::vector<uint32_t> out;
  size_t i = 0, matches = 0;
  for (auto _ : state) {
    parser.parse(lines[i], rules->fields(), event);
    if (++i == lines.size()) i = 0;
    out.clear();
    (void)matcher->match(event, out);
    matches += out.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["matches_per_event"] =
      benchmark::Counter(static_cast<double>(matches) / static_cast<double>(state.iterations()));
  state.counters["lazy_strings"] = static_cast<double>(rules->lazy_literal_count());
}

void BM_CaselessValues(benchmark::State& state, bool unicode) {
  std::string detection = "  sel:\n    CommandLine|contains:\n";
  for (const auto& w : words(unicode)) detection += "      - '" + w + "'\n";
  detection += "  condition: sel\n";
  run(state, compile(detection));
}
BENCHMARK_CAPTURE(BM_CaselessValues, ascii, false);
BENCHMARK_CAPTURE(BM_CaselessValues, unicode, true);

// A `re` runs in UTF-8 mode: `.` is one character of up to four bytes.
void BM_Regex(benchmark::State& state, bool dot) {
  run(state,
      compile(std::string("  sel:\n    CommandLine|re: '") +
              (dot ? "-Exec.{1,20}Bypass" : "-Exec[ -~]{1,20}Bypass") + "'\n  condition: sel\n"));
}
BENCHMARK_CAPTURE(BM_Regex, ascii_class, false);
BENCHMARK_CAPTURE(BM_Regex, dot, true);

}  // namespace
}  // namespace vigil
