#pragma once
// The compiled representation of a RuleSet: what RuleSet::compile() builds and a Matcher
// reads. Private to vigil_match; how it is built and why is in match/src/README.md.

#include <hs/hs.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "date_parts.h"
#include "vigil/match/ruleset.h"
#include "vigil/match/sigma.h"

namespace vigil::match::detail {

struct CompiledRules {
  CompiledRules() = default;
  CompiledRules(const CompiledRules&) = delete;
  CompiledRules& operator=(const CompiledRules&) = delete;
  ~CompiledRules();

  static constexpr uint32_t kRawSlot = RuleSet::kRawSlot;
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
    // Into positive_preds: the predicates the condition uses outside any `not`, whose
    // holding can have made the rule match (reported as the alert's matched fields).
    uint32_t positive_begin = 0, positive_end = 0;
  };

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
    uint32_t preds_begin, preds_end;  // into pattern_preds
    int32_t confirm = -1;             // >= 0: a Hyperscan prefilter, confirmed by confirms[confirm]
    uint8_t anchors = 0;              // literals: kAnchorStart and/or kAnchorEnd
    uint32_t length = 0;              // literals: bytes
    int32_t lazy_literal = -1;        // >= 0: checked on demand, as lazy_literals[lazy_literal]
  };
  static constexpr uint8_t kAnchorStart = 1, kAnchorEnd = 2;
  struct DirectPredicate {  // evaluated without Hyperscan
    uint32_t id;
    uint32_t field_slot;
    Predicate::Kind kind;
    uint32_t ref_slot = 0;                 // kFieldRef
    double number = 0;                     // comparisons
    TimePart time_part = TimePart::kNone;  // comparisons of a part of a date
    uint8_t network[16] = {};              // kCidr, in network byte order
    int prefix_bits = 0;                   // kCidr
    bool v6 = false;                       // kCidr
  };
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

  std::vector<CompiledRule> compiled;
  std::vector<Instr> program;
  std::vector<Database> databases;
  std::vector<Pattern> patterns;
  std::vector<uint32_t> pattern_preds;
  std::vector<pcre2_real_code_8*> confirms;
  // Lazy patterns: regexes (not plain strings) no rule needs as a trigger, each in a database
  // of its own, scanned only when a rule using them is evaluated. Per predicate, the checks
  // of its lazy patterns at lazy_checks[first, second), each with what it needs (not the
  // Pattern, one more load to wait for).
  std::vector<hs_database_t*> lazy_databases;
  std::vector<std::pair<uint32_t, uint32_t>> lazy_of_predicate;
  struct LazyCheck {
    int32_t literal;   // >= 0: the string lazy_literals[literal]; otherwise
    int32_t database;  // the regex lazy_databases[database], scanned over the value of
    uint32_t slot;     // this field
  };
  std::vector<LazyCheck> lazy_checks;
  // Lazy plain strings: those no rule needs as a trigger stay out of the field databases
  // every event scans. When a rule using one is evaluated, the string is compared with the
  // field's value directly; once that direct work for one field in one event would pass
  // kLazyDirectBudget bytes, the field is scanned instead, once, with a database of all its
  // lazy strings (LazyField::db), which answers for every one of them.
  struct LazyLiteral {
    uint32_t offset, length;  // of its text in lazy_text, lowercased when caseless
    uint32_t field;           // into lazy_fields
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
  std::vector<LazyLiteral> lazy_literals;
  std::string lazy_text;  // their texts, one after another (a predicate's are neighbours)
  std::vector<LazyField> lazy_fields;
  // Bounds every confirmation (backtracking steps and depth): a hostile field cannot make a
  // backreference pattern run for seconds; hitting the bound is a matching error.
  pcre2_real_match_context_8* confirm_limits = nullptr;
  static constexpr uint32_t kConfirmMatchLimit = 200000, kConfirmDepthLimit = 10000;
  std::vector<Group> groups;
  std::vector<std::vector<uint32_t>> logsource_databases;  // per mapping logsource
  std::vector<WhereField> where_fields;
  std::vector<LogsourceCheck> logsources;
  // Finding an event's logsources without testing all of them (a mapping has ~200): the
  // logsources with no `where`, and per (where field, value id) those whose first condition
  // accepts it (at first_where_base[field] + id); their other conditions are then checked.
  std::vector<uint32_t> unconditional_logsources;
  std::vector<uint32_t> first_where_base;
  std::vector<std::vector<uint32_t>> logsources_by_first_where;
  std::vector<std::vector<uint32_t>> groups_of_logsource;
  // Per predicate: the rules it triggers, i.e. whose condition cannot hold unless one of
  // their trigger predicates does (see RuleSet::compile), in runs of one group each: a
  // predicate's runs are trigger_runs[trigger_runs_of_predicate[p], ...[p + 1]), a run's
  // rules trigger_rules[begin, end). The runs of groups the event is not in are skipped.
  struct TriggerRun {
    uint32_t group, begin, end;
  };
  std::vector<uint32_t> trigger_runs_of_predicate;
  std::vector<TriggerRun> trigger_runs;
  std::vector<uint32_t> trigger_rules;
  std::vector<uint32_t> predicate_slot;  // per predicate: its field slot, kRawSlot or kNoSlot
  std::vector<uint32_t> positive_preds;
  // Per predicate: the rules whose condition reads it, predicate_users[users_begin[p],
  // users_begin[p + 1]), ascending. A predicate whose check fails fails exactly these rules.
  std::vector<uint32_t> users_begin;
  std::vector<uint32_t> predicate_users;
  size_t predicate_count = 0;
};

}  // namespace vigil::match::detail
