#pragma once
// Compiled rule set and its runtime matcher.
//
// RuleSet::compile() takes parsed Sigma rules and a field mapping, resolves each rule's
// logsource and fields, puts the string predicates' patterns into Hyperscan databases by
// (mapping logsource, field), and turns each condition into a prefix program over predicate
// bits that runs only when one of the rule's trigger predicates holds. Patterns no rule needs
// as a trigger are lazy: checked only when a rule using them is evaluated.
// A rule that cannot be compiled is reported with its reason and left out; it never fails
// the compile of the others. A RuleSet is immutable and shared by all workers.
//
// A Matcher belongs to one worker thread: it owns the Hyperscan scratch and the per-event
// bit sets, so match() allocates nothing in steady state.

#include <hs/hs.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "vigil/core/event.h"
#include "vigil/core/status.h"
#include "vigil/match/mapping.h"
#include "vigil/match/sigma.h"

struct pcre2_real_code_8;
struct pcre2_real_match_data_8;
struct pcre2_real_match_context_8;

namespace vigil::match {

struct RuleInfo {
  std::string id;
  std::string title;
  std::string level;
  std::vector<std::string> tags;
  std::string source;
  // False for a base rule that only feeds correlations which do not `generate` its own
  // alerts: its matches are observed by the correlations, not reported.
  bool emit = true;
};

// A correlation rule resolved against the compiled base rules and the field mapping.
struct CompiledCorrelation {
  RuleInfo info;
  Correlation spec;
  std::vector<uint32_t> bases;                     // indexes into RuleSet::rules(), in spec order
  std::vector<std::vector<uint32_t>> group_slots;  // per base: field slots of the group-by values
  std::vector<uint32_t> value_slots;               // per base: slot of the value_count field
};

struct RuleDiagnostic {
  std::string source;
  std::string rule_id;  // empty if the rule did not parse far enough to have one
  std::string title;
  Status status;  // ok: compiled
  std::vector<std::string> warnings;
  // Compiled, but at risk at run time: a crafted value makes a regex of the rule hit PCRE2's
  // backtracking limit (the rule then fails on that event, the others do not). `rules
  // check` shows them; bundle validation refuses them.
  std::vector<std::string> risks;
};

struct CompileReport {
  std::vector<RuleDiagnostic> rules;
  size_t compiled = 0;
  size_t unsupported = 0;
};

// Reads every *.yml / *.yaml under each path (files or directories, recursively, in a
// stable order) and parses it. Unparseable files become diagnostics in `report`.
std::vector<SigmaRule> load_rules(const std::vector<std::string>& paths, CompileReport& report);

class RuleSet {
 public:
  ~RuleSet();
  RuleSet(const RuleSet&) = delete;
  RuleSet& operator=(const RuleSet&) = delete;

  // Compiles `rules` under `mapping`. Per-rule outcomes are appended to `report`. Fails
  // only for errors of the whole set (Hyperscan unusable on this CPU, out of memory).
  static Expected<std::shared_ptr<const RuleSet>> compile(const std::vector<SigmaRule>& rules,
                                                          const FieldMapping& mapping,
                                                          CompileReport& report);

  const FieldSet& fields() const { return fields_; }
  const std::vector<RuleInfo>& rules() const { return rules_; }
  const std::vector<CompiledCorrelation>& correlations() const { return correlations_; }
  // Indexes into correlations() of those a base rule feeds (empty for most rules).
  const std::vector<uint32_t>& correlations_of(uint32_t rule) const {
    return correlations_of_rule_[rule];
  }
  // Slot of the mapping's host field in fields(), or -1.
  int32_t host_slot() const { return host_slot_; }
  int32_t time_slot() const { return time_slot_; }
  size_t predicate_count() const { return predicate_count_; }
  size_t database_count() const { return databases_.size(); }
  size_t pattern_count() const { return patterns_.size(); }
  // Patterns Hyperscan runs as prefilters (lookaround, backreferences), confirmed by PCRE2.
  size_t confirmed_pattern_count() const { return confirms_.size(); }
  // Regex patterns scanned only when a rule using them is evaluated (see lazy_databases_).
  size_t lazy_pattern_count() const { return lazy_databases_.size(); }
  // Plain strings checked only when a rule using them is evaluated (see lazy_literals_).
  size_t lazy_literal_count() const { return lazy_literals_.size(); }

 private:
  friend class Matcher;
  RuleSet() = default;
  void compile_correlations(const std::vector<const SigmaRule*>& correlation_rules,
                            const std::vector<std::string>& names, const FieldMapping& mapping,
                            CompileReport& report);
  // Fills users_begin_ / predicate_users_ from the condition programs.
  void index_predicate_users();

  enum class Op : uint8_t { kPred, kAnd, kOr, kNot, kAtLeast, kTrue, kFalse };
  // Condition programs are in prefix order: an operator, then its operands' subtrees.
  struct Instr {
    Op op;
    uint32_t arg;  // kPred: predicate id; kAnd/kOr/kAtLeast: operand count
    uint32_t k;    // kAtLeast: how many must hold; kPred: 1 if it has lazy patterns
    uint32_t end;  // the instruction after this one's subtree
  };
  struct CompiledRule {
    uint32_t group;
    uint32_t program_begin, program_end;
    // Into positive_preds_: the predicates the condition uses outside any `not`, whose
    // holding can have made the rule match (reported as the alert's matched fields).
    uint32_t positive_begin = 0, positive_end = 0;
  };
 public:
  // The field slot of keyword patterns: they scan the raw event.
  static constexpr uint32_t kRawSlot = 0xffffffffu;

 private:
  static constexpr uint32_t kNoSlot = 0xfffffffeu;  // a predicate that reads no field
  // One Hyperscan database per (field, mapping logsource): the patterns of the rules that
  // apply to that logsource. An event scans the databases of its active logsources.
  struct Database {
    uint32_t field_slot;
    hs_database_t* db = nullptr;          // regexes, or null
    hs_database_t* literal_db = nullptr;  // plain strings, or null
  };
  // A pattern (Hyperscan id) sets the bits of every predicate it belongs to: a predicate is
  // one pattern or, fused from a list of values, the OR of several on one field.
  //
  // Plain strings (contains, startswith, endswith, equals; windash alternatives expanded) go
  // to a database of Hyperscan's literal API, with anchors checked on the match's end offset;
  // the other patterns to a regex database.
  struct Pattern {
    uint32_t preds_begin, preds_end;  // into pattern_preds_
    int32_t confirm = -1;  // >= 0: a Hyperscan prefilter, confirmed by confirms_[confirm]
    uint8_t anchors = 0;   // literals: kAnchorStart and/or kAnchorEnd
    uint32_t length = 0;   // literals: bytes
    int32_t lazy_literal = -1;  // >= 0: checked on demand, as lazy_literals_[lazy_literal]
  };
  static constexpr uint8_t kAnchorStart = 1, kAnchorEnd = 2;
  struct DirectPredicate {  // evaluated without Hyperscan
    uint32_t id;
    uint32_t field_slot;
    Predicate::Kind kind;
    uint32_t ref_slot = 0;     // kFieldRef
    double number = 0;         // comparisons
    uint8_t network[16] = {};  // kCidr, in network byte order
    int prefix_bits = 0;       // kCidr
    bool v6 = false;           // kCidr
  };
  static bool evaluate_direct(const DirectPredicate& dp, const Event& event);
  struct Group {  // the set of mapping logsources some rules apply to
    std::vector<uint32_t> logsources;
    std::vector<DirectPredicate> direct;
    std::vector<uint32_t> always_evaluate;  // rules no predicate can trigger (e.g. "not filter")
  };
  // The fields logsources are selected by (Channel, EventID, ...), each with the values
  // some logsource accepts, lowercased and sorted (a value's id is its index): an event's
  // value is lowercased and looked up once.
  struct WhereField {
    uint32_t slot;
    std::vector<std::string> values;
    std::unordered_map<std::string, int32_t> ids;  // value -> index in values
    size_t longest = 0;                            // of values: a longer field is none of them
  };
  struct LogsourceCheck {
    std::vector<std::pair<uint32_t, std::vector<int32_t>>>
        where;  // where field -> accepted value ids
  };

  FieldSet fields_;
  std::vector<RuleInfo> rules_;
  std::vector<CompiledCorrelation> correlations_;
  std::vector<std::vector<uint32_t>> correlations_of_rule_;
  std::vector<CompiledRule> compiled_;
  std::vector<Instr> program_;
  std::vector<Database> databases_;
  std::vector<Pattern> patterns_;
  std::vector<uint32_t> pattern_preds_;
  std::vector<pcre2_real_code_8*> confirms_;
  // Lazy patterns: regexes (not plain strings) no rule needs as a trigger, each in a database
  // of its own, scanned only when a rule using them is evaluated. Per predicate, the checks
  // of its lazy patterns at lazy_checks_[first, second), each with what it needs (not the
  // Pattern, one more load to wait for).
  std::vector<hs_database_t*> lazy_databases_;
  std::vector<std::pair<uint32_t, uint32_t>> lazy_of_predicate_;
  struct LazyCheck {
    int32_t literal;   // >= 0: the string lazy_literals_[literal]; otherwise
    int32_t database;  // the regex lazy_databases_[database], scanned over the value of
    uint32_t slot;     // this field
  };
  std::vector<LazyCheck> lazy_checks_;
  // Lazy plain strings: those no rule needs as a trigger stay out of the field databases
  // every event scans. When a rule using one is evaluated, the string is compared with the
  // field's value directly; once that direct work for one field in one event would pass
  // kLazyDirectBudget bytes, the field is scanned instead, once, with a database of all its
  // lazy strings (LazyField::db), which answers for every one of them.
  struct LazyLiteral {
    uint32_t offset, length;  // of its text in lazy_text_, lowercased when caseless
    uint32_t field;           // into lazy_fields_
    uint8_t anchors;          // kAnchorStart and/or kAnchorEnd
    bool caseless;
    // A caseless string found anywhere (no anchors) is searched for only if the value has
    // these byte pairs of it, up to eight spread over it (see PairFilter).
    uint8_t pair_count = 0;
    uint16_t pairs[8] = {};
  };
  // The adjacent byte pairs a lowercased value holds, hashed into 4096 bits, noted in the
  // pass that lowercases it. A process creation event has tens of lazy `contains` strings
  // checked against its command line, nearly all absent: a string with a pair the value
  // lacks cannot be in it, which a few bit tests tell instead of a search. (A 4 KB value,
  // the most compared directly, sets about 63% of the bits: a string of eight absent-
  // looking pairs still passes only 2.5% of the time.)
  struct PairFilter {
    static constexpr size_t kWords = 64;
    static uint16_t pair(unsigned char a, unsigned char b) {
      return static_cast<uint16_t>((a * 0x9e5u + b) & 0xfffu);
    }
    static void note(uint64_t* bits, uint16_t pair) {
      bits[pair >> 6] |= uint64_t{1} << (pair & 63);
    }
    static bool has(const uint64_t* bits, uint16_t pair) {
      return (bits[pair >> 6] >> (pair & 63)) & 1;
    }
  };
  struct LazyField {
    uint32_t slot;
    hs_database_t* db = nullptr;
  };
  static constexpr size_t kLazyDirectBudget = 4096;
  std::vector<LazyLiteral> lazy_literals_;
  std::string lazy_text_;  // their texts, one after another (a predicate's are neighbours)
  std::vector<LazyField> lazy_fields_;
  // Bounds every confirmation (backtracking steps and depth): a hostile field cannot make a
  // backreference pattern run for seconds; hitting the bound is a matching error.
  pcre2_real_match_context_8* confirm_limits_ = nullptr;
  static constexpr uint32_t kConfirmMatchLimit = 200000, kConfirmDepthLimit = 10000;
  std::vector<Group> groups_;
  std::vector<std::vector<uint32_t>> logsource_databases_;  // per mapping logsource
  std::vector<WhereField> where_fields_;
  std::vector<LogsourceCheck> logsources_;
  // Finding an event's logsources without testing all of them (a mapping has ~200): the
  // logsources with no `where`, and per (where field, value id) those whose first condition
  // accepts it (at first_where_base_[field] + id); their other conditions are then checked.
  std::vector<uint32_t> unconditional_logsources_;
  std::vector<uint32_t> first_where_base_;
  std::vector<std::vector<uint32_t>> logsources_by_first_where_;
  std::vector<std::vector<uint32_t>> groups_of_logsource_;
  // Per predicate: the rules it triggers, i.e. whose condition cannot hold unless one of
  // their trigger predicates does (see RuleSet::compile), in runs of one group each: a
  // predicate's runs are trigger_runs_[trigger_runs_of_predicate_[p], ...[p + 1]), a run's
  // rules trigger_rules_[begin, end). The runs of groups the event is not in are skipped.
  struct TriggerRun {
    uint32_t group, begin, end;
  };
  std::vector<uint32_t> trigger_runs_of_predicate_;
  std::vector<TriggerRun> trigger_runs_;
  std::vector<uint32_t> trigger_rules_;
  std::vector<uint32_t> predicate_slot_;  // per predicate: its field slot, kRawSlot or kNoSlot
  std::vector<uint32_t> positive_preds_;
  // Per predicate: the rules whose condition reads it, predicate_users_[users_begin_[p],
  // users_begin_[p + 1]), ascending. A predicate whose check fails fails exactly these rules.
  std::vector<uint32_t> users_begin_;
  std::vector<uint32_t> predicate_users_;
  size_t predicate_count_ = 0;
  int32_t host_slot_ = -1;
  int32_t time_slot_ = -1;
};

// Per-worker matching state over one RuleSet. Not thread-safe; one per worker.
class Matcher {
 public:
  static Expected<std::unique_ptr<Matcher>> create(std::shared_ptr<const RuleSet> rules);
  ~Matcher();

  // Appends the indexes (into RuleSet::rules()) of the rules `event` matches to `out`,
  // in ascending order. `event` must have been parsed with the rule set's fields().
  // A check that fails on this event (a PCRE2 confirmation at its backtracking limit) fails
  // only the rules that read it: they are listed in failed_rules(), not evaluated, and every
  // other rule is. An error Status is a failure of the whole set (Hyperscan's scratch).
  Status match(const Event& event, std::vector<uint32_t>& out);
  // The rules the last match() could not evaluate, ascending; empty almost always.
  const std::vector<uint32_t>& failed_rules() const { return failed_rules_; }
  // Why, for a log line: the field and the PCRE2 error of the last failed check.
  std::string last_failure() const;

  const RuleSet& rule_set() const { return *rules_; }
  // Whether the event of the last match() belonged to any logsource the rule set uses.
  bool last_event_had_logsource() const { return !active_logsources_.empty(); }
  // For a rule the last match() reported: appends the field slots (into rule_set().fields(),
  // or RuleSet::kRawSlot for a keyword found in the raw event) of the predicates that held
  // and can have made it match (those under a `not` are left out), each once. The event
  // given to that match() must still be alive and unchanged: a lazy predicate the match did
  // not need is checked now.
  void matched_fields(uint32_t rule, std::vector<uint32_t>& slots);

 private:
  // bench/match_bench.cc times the stages before the condition programs on their own.
  friend struct MatcherStages;

  explicit Matcher(std::shared_ptr<const RuleSet> rules) : rules_(std::move(rules)) {}
  // match() in stages. begin() resets the last event's state and finds the event's
  // logsources; false if it has none (no rule applies). scan() evaluates the direct
  // predicates of their groups, takes the groups' always-evaluated rules as candidates and
  // runs the eager Hyperscan scans (and PCRE2 confirmations), setting predicate bits.
  // add_triggered() makes candidates of the rules those bits trigger. Then match() runs the
  // candidates' condition programs.
  bool begin(const Event& event);
  Status scan(const Event& event);
  void add_triggered();
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
    return slot == RuleSet::kRawSlot ? raw_ : event_->field(slot);
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
    if (!bits_[pred]) {
      bits_[pred] = 1;
      touched_.push(pred);
    }
  }
  static int on_pattern_match(unsigned id, unsigned long long from, unsigned long long to,
                              unsigned flags, void* ctx);

  std::shared_ptr<const RuleSet> rules_;
  hs_scratch_t* scratch_ = nullptr;
  pcre2_real_match_data_8* match_data_ = nullptr;
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
  size_t scan_length_ = 0;            // of the text being scanned, for end anchors
  std::vector<uint32_t> database_epoch_;
  std::vector<uint8_t> bits_;
  // Ids listed at most once each per event (a flag or epoch guards the push), in room made
  // by create(): a push is one store, with no growth path to call out of line.
  struct IdList {
    std::vector<uint32_t> ids;
    size_t size = 0;
    void push(uint32_t id) { ids[size++] = id; }
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
  const Event* event_ = nullptr;       // of the last match(), for lazy checks
  FieldValue raw_;                     // its raw text, as the keywords' field
  std::vector<uint32_t> lazy_epoch_;   // per lazy database: the epoch it was scanned in
  std::vector<uint8_t> lazy_hit_;      // per lazy database: whether that scan matched
  hs_error_t lazy_error_ = HS_SUCCESS; // of a lazy scan during this match()
  std::vector<uint32_t> resolved_epoch_;  // per predicate: the epoch its lazy patterns were checked
  std::vector<uint32_t> literal_hit_;     // per lazy literal: the epoch a field scan found it
  struct LazyFieldState {
    uint32_t scanned = 0;  // epoch of the field's database scan
    uint32_t work_epoch = 0;
    uint32_t lower_epoch = 0;
    size_t work = 0;  // bytes compared directly in work_epoch
    size_t lower_begin = 0;  // the value lowercased, in lower_, in lower_epoch
  };
  std::vector<LazyFieldState> lazy_fields_;
  std::string lower_;              // lowercased field values of this event
  std::vector<uint64_t> pair_bits_;  // per lazy field: the PairFilter of its value
  size_t lazy_scan_length_ = 0;    // of the field a lazy database scans, for end anchors
};

}  // namespace vigil::match
