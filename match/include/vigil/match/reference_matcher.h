#pragma once
// A deliberately simple matcher: every rule of the event's logsource, one after the other,
// each predicate tested with its own PCRE2 program when the condition reaches it.
//
// It is the oracle the compiled RuleSet/Matcher is checked against (same rules, same events,
// same matches) and the "per-rule regex loop" baseline of the matching benchmark. It shares
// the Sigma IR and the field mapping with RuleSet, nothing of its compiler or runtime. Not
// for production use: its cost grows with the number of rules.
//
// Thread safety: compiled once, then match() from one thread at a time.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vigil/core/event.h"
#include "vigil/core/status.h"
#include "vigil/match/mapping.h"
#include "vigil/match/sigma.h"

namespace vigil::match {

class ReferenceMatcher {
 public:
  // Rules that do not resolve under `mapping` (no logsource entry, a pattern PCRE2 does not
  // compile, a correlation rule) are left out and listed in skipped().
  static std::unique_ptr<ReferenceMatcher> compile(const std::vector<SigmaRule>& rules,
                                                   const FieldMapping& mapping);
  ~ReferenceMatcher();
  ReferenceMatcher(const ReferenceMatcher&) = delete;
  ReferenceMatcher& operator=(const ReferenceMatcher&) = delete;

  const FieldSet& fields() const { return fields_; }
  // Ids of the rules kept, in the order they were given; match() reports indexes into it.
  const std::vector<std::string>& rule_ids() const { return ids_; }
  const std::vector<std::string>& skipped() const { return skipped_; }

  // Appends the indexes of the rules `event` matches, ascending. `event` must have been
  // parsed with fields().
  void match(const Event& event, std::vector<uint32_t>& out);

 private:
  struct Pred;
  struct Rule;
  ReferenceMatcher();
  static std::optional<int> date_part_libc(const FieldValue& fv, const std::string& part);
  bool holds(const Rule& rule, const CondNode& node, const Event& event);
  bool test(const Pred& pred, const Event& event);

  FieldSet fields_;
  std::vector<std::string> ids_;
  std::vector<std::string> skipped_;
  std::vector<Rule> rules_;
  struct Logsource;
  std::vector<Logsource> logsources_;
  void* match_data_ = nullptr;
  std::vector<uint8_t> active_;  // per logsource, reused by match()
};

}  // namespace vigil::match
