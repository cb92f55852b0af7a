// Parsing and matching allocate nothing per event once warm: the whole SigmaHQ tree (Windows
// rules, prefilters, keywords, value lists) over the corpus' real events, counted by a global
// operator new. This binary holds only this test, since it replaces operator new.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>

#include "support/corpus.h"
#include "vigil/match/matcher.h"

namespace {
std::atomic<bool> counting{false};
std::atomic<size_t> allocations{0};
}  // namespace

// Under AddressSanitizer, libraries built without it (Hyperscan) pair their own operator new
// with free(); the replacement below would be flagged as a mismatch, which it is not.
extern "C" const char* __asan_default_options();  // ASan's hook, declared by nobody
extern "C" const char* __asan_default_options() { return "alloc_dealloc_mismatch=0"; }

void* operator new(size_t n) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace vigil::match {
namespace {

namespace fs = std::filesystem;

TEST(NoAllocation, ParseAndMatchAllocateNothingPerEventOnceWarm) {
  const fs::path corpus = test::corpus_dir();
  ASSERT_TRUE(fs::exists(corpus / "sigma_rules")) << "corpus missing at " << corpus;
  auto mapping = FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/windows-evtx-json.yml");
  ASSERT_TRUE(mapping);
  CompileReport report;
  auto parsed = load_rules({(corpus / "sigma_rules").string()}, report);
  // A rule Hyperscan runs as a prefilter, so PCRE2 confirmation is on the path too.
  auto prefiltered = parse_sigma(
      "title: P\nid: p1\nlogsource: {product: windows, category: process_creation}\n"
      "detection:\n  sel:\n    CommandLine|re: '(-\\w)\\s.*\\1'\n  condition: sel\n",
      "p.yml");
  ASSERT_TRUE(prefiltered);
  parsed.push_back(*prefiltered);
  auto rs = RuleSet::compile(parsed, *mapping, report);
  ASSERT_TRUE(rs);
  ASSERT_GT((*rs)->confirmed_pattern_count(), 0u);
  auto matcher = std::move(*Matcher::create(*rs));

  std::vector<std::string> events;
  for (const auto& f : fs::directory_iterator(corpus / "sigma_public" / "events")) {
    std::ifstream in(f.path());
    for (std::string line; std::getline(in, line);) events.push_back(line);
  }
  ASSERT_GT(events.size(), 50u);
  EventParser parser;
  Event event;
  std::vector<uint32_t> out;
  out.reserve((*rs)->rules().size());
  size_t matches = 0;
  auto run = [&] {
    for (const auto& e : events) {
      ASSERT_EQ(parser.parse(e, (*rs)->fields(), event), ParseError::kNone);
      out.clear();
      ASSERT_TRUE(matcher->match(event, out).is_ok());
      matches += out.size();
    }
  };
  run();  // warm: buffers grow to their steady size
  matches = 0;
  counting = true;
  run();
  run();
  counting = false;
  EXPECT_EQ(allocations.load(), 0u) << "over " << 2 * events.size() << " events";
  EXPECT_GT(matches, 0u);
}

}  // namespace
}  // namespace vigil::match
