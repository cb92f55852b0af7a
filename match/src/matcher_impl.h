#pragma once
// A Matcher's state and the stages of Matcher::match(). Private to vigil_match (and to
// bench/match_bench.cc, which times the stages); the design is in match/src/README.md.

#include <hs/hs.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "compiled_rules.h"
#include "scan_memo.h"
#include "vigil/core/check.h"
#include "vigil/match/matcher.h"

namespace vigil::match {

class Matcher::Impl {
 public:
  using CompiledRules = detail::CompiledRules;

  Impl(std::shared_ptr<const RuleSet> rules, const MatcherOptions& options)
      : rules_(std::move(rules)),
        c_(rules_->compiled()),
        memo_(std::min(options.memo_bytes, kMaxMemoBytes)) {}
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  // Sizes the per-event state and allocates the scratch (Matcher::create).
  Status init();

  Status match(const Event& event, std::vector<uint32_t>& out);
  const std::vector<uint32_t>& failed_rules() const { return failed_rules_; }
  std::string last_failure() const;
  const RuleSet& rule_set() const { return *rules_; }
  bool last_event_had_logsource() const { return !active_logsources_.empty(); }
  void matched_fields(uint32_t rule, std::vector<uint32_t>& slots);
  void memo_stats(std::vector<MemoFieldStats>& out) const;
  uint64_t memo_resets() const { return memo_.resets(); }

  // match() in stages. begin() resets the last event's state and finds the event's
  // logsources; false if it has none (no rule applies). scan() evaluates the direct
  // predicates of their groups, takes the groups' always-evaluated rules as candidates and
  // runs the eager Hyperscan scans (and PCRE2 confirmations), setting predicate bits.
  // add_triggered() makes candidates of the rules those bits trigger. Then match() runs the
  // candidates' condition programs.
  bool begin(const Event& event);
  Status scan(const Event& event);
  void add_triggered();
  size_t candidate_count() const { return candidates_.size; }

 private:
  void fail_predicate(uint32_t pred);
  // Marks the rules of the active groups that read a failed predicate (failed_rules_).
  void fail_users();
  void add_candidate(uint32_t rule) {
    if (rule_epoch_[rule] != epoch_) {
      rule_epoch_[rule] = epoch_;
      candidates_.push(rule);
    }
  }
  // Runs the rule's condition program.
  bool evaluate(uint32_t rule);
  // The value of the subtree at `pc`. A lazy predicate not yet checked in this event is
  // checked when the evaluation reaches it; an operator stops at the first child that
  // decides it, and the compiler put the children that read no lazy predicate first.
  // Recursion depth is the condition's, which the Sigma parser bounds.
  bool run(uint32_t pc);
  // Whether `pred` does not hold so far but has lazy patterns not yet checked in this event.
  bool unresolved(uint32_t pred) const;
  // Checks the lazy patterns of `pred` in the event (each regex scanned at most once per
  // event) and sets its bit if one is found; after this, its bit is its value.
  void resolve(uint32_t pred);
  bool literal_holds(uint32_t literal);
  // The text a pattern on `slot` scans in the event of the last match(): the field's value,
  // or the raw event for keywords. (A reference: copies of FieldValue through the stack
  // stalled the lazy checks on store forwarding.)
  const FieldValue& field_of(uint32_t slot) const {
    return slot == CompiledRules::kRawSlot ? raw_ : event_->field(slot);
  }
  void scan_lazy_field(uint32_t field, std::string_view text);
  static int on_lazy_match(unsigned id, unsigned long long from, unsigned long long to,
                           unsigned flags, void* ctx);
  // Whether a plain string of `length` bytes whose occurrence ends at `to`, in a text of
  // `scanned` bytes, is where its anchors (kAnchorStart/kAnchorEnd) say.
  static bool at_anchors(uint8_t anchors, size_t length, unsigned long long to, size_t scanned);
  static int on_lazy_literal_match(unsigned id, unsigned long long from, unsigned long long to,
                                   unsigned flags, void* ctx);
  void set_bit(uint32_t pred) {
    VIGIL_DCHECK(pred < bits_.size());
    if (!bits_[pred]) {
      bits_[pred] = 1;
      touched_.push(pred);
    }
  }
  static int on_pattern_match(unsigned id, unsigned long long from, unsigned long long to,
                              unsigned flags, void* ctx);
  // Scans `text` with database `d`'s Hyperscan databases and confirms what they found,
  // setting predicate bits; with `record`, also lists them in memo_preds_. False if a
  // confirmation failed (the predicates it would have set are failed instead).
  Status scan_database(uint32_t d, std::string_view text, bool record, bool& confirmed);

  static constexpr size_t kMaxMemoBytes = size_t{1} << 30;

  std::shared_ptr<const RuleSet> rules_;
  const CompiledRules& c_;
  hs_scratch_t* scratch_ = nullptr;
  pcre2_match_data* match_data_ = nullptr;
  std::vector<uint32_t> to_confirm_;
  std::vector<uint32_t> failed_preds_;  // of this event, each once
  std::vector<uint32_t> failed_rules_;
  std::vector<uint32_t> failed_epoch_;  // per rule: the epoch it failed in
  struct {
    uint32_t field = 0;
    int code = 0;
  } last_failure_;
  std::vector<uint8_t> active_group_;
  std::vector<int32_t> where_value_;  // per where field: the event's value id, or -1
  std::string where_key_;             // the value being looked up, lowercased
  // Per where field, the text of the last value looked up (as the event has it) and its id:
  // events of one kind come in runs, so the next one most often has the same.
  struct LastWhere {
    std::string text;
    int32_t id = -1;
    bool set = false;
  };
  std::vector<LastWhere> last_where_;
  // Whether active_logsources_ is that of where_value_ (false until the first event).
  bool logsources_known_ = false;
  size_t scan_length_ = 0;  // of the text being scanned, for end anchors
  std::vector<uint32_t> database_epoch_;
  std::vector<uint8_t> bits_;
  // Ids listed at most once each per event (a flag or epoch guards the push), in room made
  // by create(): a push is one store, with no growth path to call out of line.
  struct IdList {
    std::vector<uint32_t> ids;
    size_t size = 0;
    void push(uint32_t id) {
      VIGIL_DCHECK(size < ids.size());
      ids[size++] = id;
    }
    void clear() { size = 0; }
    const uint32_t* begin() const { return ids.data(); }
    const uint32_t* end() const { return ids.data() + size; }
  };
  IdList touched_;  // predicates whose bit is set
  std::vector<uint8_t> active_logsource_;
  std::vector<uint32_t> active_logsources_;  // of the last event, to reset the flags
  std::vector<uint32_t> active_groups_;      // likewise
  std::vector<uint32_t> rule_epoch_;
  uint32_t epoch_ = 0;
  IdList candidates_;
  const Event* event_ = nullptr;          // of the last match(), for lazy checks
  FieldValue raw_;                        // its raw text, as the keywords' field
  std::vector<uint32_t> lazy_epoch_;      // per lazy database: the epoch it was scanned in
  std::vector<uint8_t> lazy_hit_;         // per lazy database: whether that scan matched
  hs_error_t lazy_error_ = HS_SUCCESS;    // of a lazy scan during this match()
  std::vector<uint32_t> resolved_epoch_;  // per predicate: the epoch its lazy patterns were checked
  std::vector<uint32_t> literal_hit_;     // per lazy literal: the epoch a field scan found it
  struct LazyFieldState {
    uint32_t scanned = 0;  // epoch of the field's database scan
    uint32_t work_epoch = 0;
    uint32_t lower_epoch = 0;
    size_t work = 0;         // bytes compared directly in work_epoch
    size_t lower_begin = 0;  // the value lowercased, in lower_, in lower_epoch
  };
  std::vector<LazyFieldState> lazy_fields_;
  std::string lower_;                // lowercased field values of this event
  std::vector<uint64_t> pair_bits_;  // per lazy field: the PairFilter of its value
  size_t lazy_scan_length_ = 0;      // of the field a lazy database scans, for end anchors
  // Remembered scan results (scan_memo.h).
  detail::ScanMemo memo_;
  // Per database: its lookups and hits since the matcher was made (memo_stats()), and whether
  // the memo pays: over a window of kMemoWindow lookups, fewer than one in kMemoMinHitShare
  // found means its values rarely repeat (registry keys, command lines; an attacker's flood of
  // new values), and the next kMemoBypass values of that database are scanned without hashing
  // or looking them up; then another window is measured.
  static constexpr uint32_t kMemoWindow = 256, kMemoMinHitShare = 8, kMemoBypass = 4096;
  struct MemoCounts {
    uint64_t lookups = 0, hits = 0;
    uint32_t window_lookups = 0, window_hits = 0;
    uint32_t bypass = 0;  // values left to scan without the memo
  };
  std::vector<MemoCounts> memo_counts_;
  bool recording_ = false;            // whether the current scan lists what it sets
  std::vector<uint32_t> memo_preds_;  // what it set
};

}  // namespace vigil::match
