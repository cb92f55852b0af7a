#pragma once
// Matching events against a compiled RuleSet.
//
// A Matcher belongs to one worker thread: it owns the Hyperscan scratch and the per-event
// state, so match() allocates nothing in steady state. Many Matchers share one RuleSet.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vigil/core/event.h"
#include "vigil/core/status.h"
#include "vigil/match/ruleset.h"

namespace vigil::match {

struct MatcherOptions {
  // Bytes this matcher may hold of remembered scan results (what each field database's scan
  // found in a value, so that a repeated value costs a lookup instead of a scan; see
  // match/src/scan_memo.h). 0 (or anything under 64 KiB) turns remembering off; at most 1 GiB.
  size_t memo_bytes = size_t{4} << 20;
};

// How the remembered scan results served one field since the matcher was made: values
// looked up, and found.
struct MemoFieldStats {
  uint32_t slot = 0;  // into rule_set().fields()
  uint64_t lookups = 0;
  uint64_t hits = 0;
};

// Per-worker matching state over one RuleSet. Not thread-safe; one per worker.
class Matcher {
 public:
  static Expected<std::unique_ptr<Matcher>> create(std::shared_ptr<const RuleSet> rules,
                                                   const MatcherOptions& options = {});
  ~Matcher();
  Matcher(const Matcher&) = delete;
  Matcher& operator=(const Matcher&) = delete;

  // Appends the indexes (into RuleSet::rules()) of the rules `event` matches to `out`,
  // in ascending order. `event` must have been parsed with the rule set's fields().
  // A check that fails on this event (a PCRE2 confirmation at its backtracking limit) fails
  // only the rules that read it: they are listed in failed_rules(), not evaluated, and every
  // other rule is. An error Status is a failure of the whole set (Hyperscan's scratch).
  Status match(const Event& event, std::vector<uint32_t>& out);
  // The rules the last match() could not evaluate, ascending; empty almost always.
  const std::vector<uint32_t>& failed_rules() const;
  // Why, for a log line: the field and the PCRE2 error of the last failed check.
  std::string last_failure() const;

  const RuleSet& rule_set() const;
  // Whether the event of the last match() belonged to any logsource the rule set uses.
  bool last_event_had_logsource() const;
  // For a rule the last match() reported: appends the field slots (into rule_set().fields(),
  // or RuleSet::kRawSlot for a keyword found in the raw event) of the predicates that held
  // and can have made it match (those under a `not` are left out), each once. The event
  // given to that match() must still be alive and unchanged: a lazy predicate the match did
  // not need is checked now.
  void matched_fields(uint32_t rule, std::vector<uint32_t>& slots);

  // Per field whose values the memo looked up: its counts since the matcher was made (fields
  // never looked up are left out), in slot order. Cheap enough per batch.
  void memo_stats(std::vector<MemoFieldStats>& out) const;
  // How many times the memo was full and dropped everything.
  uint64_t memo_resets() const;

  // The matcher's state and stages (match/src/matcher_impl.h); bench/match_bench.cc times
  // the stages on their own.
  class Impl;
  Impl& impl() { return *impl_; }

 private:
  explicit Matcher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil::match
