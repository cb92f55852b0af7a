// libFuzzer: the event parser and matcher on arbitrary bytes from Kafka.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "vigil/core/event.h"
#include "vigil/match/matcher.h"

namespace {

struct Fixture {
  std::shared_ptr<const vigil::match::RuleSet> rules;
  std::unique_ptr<vigil::match::Matcher> matcher;     // with the scan memo (the default)
  std::unique_ptr<vigil::match::Matcher> unmemoized;  // without it
  Fixture() {
    auto mapping =
        vigil::match::FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/vigil-sensor.yml");
    vigil::match::CompileReport report;
    auto parsed = vigil::match::load_rules({VIGIL_SOURCE_DIR "/rules/sigma"}, report);
    rules = *vigil::match::RuleSet::compile(parsed, *mapping, report);
    matcher = std::move(*vigil::match::Matcher::create(rules));
    vigil::match::MatcherOptions off;
    off.memo_bytes = 0;
    unmemoized = std::move(*vigil::match::Matcher::create(rules, off));
  }
};

constexpr size_t kMaxEventBytes = 1 << 16;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  static vigil::EventParser parser(kMaxEventBytes);
  static vigil::Event event;
  static std::vector<uint32_t> out, expected;
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  const vigil::ParseError error = parser.parse(raw, f.rules->fields(), event);
  // Matched as parsed, escapes undone as the matcher reads values, with the memo (which the
  // inputs before this one filled).
  out.clear();
  if (error == vigil::ParseError::kNone) (void)f.matcher->match(event, out);
  // The long-lived parser guesses keys from the inputs before this one; a new parser has
  // nothing to guess from. Both must read the same fields.
  vigil::EventParser fresh(kMaxEventBytes);
  vigil::Event fresh_event;
  if (fresh.parse(raw, f.rules->fields(), fresh_event) != error) std::abort();
  for (uint32_t slot = 0; slot < event.size(); ++slot) {
    if (event.field(slot).type != fresh_event.field(slot).type ||
        event.field(slot).text != fresh_event.field(slot).text) {
      std::abort();
    }
  }
  // Every value read: the matcher without the memo must find the same rules.
  if (error == vigil::ParseError::kNone) {
    expected.clear();
    (void)f.unmemoized->match(fresh_event, expected);
    if (out != expected) std::abort();
  }
  return 0;
}
