// Matcher: the per-worker runtime over a compiled RuleSet (the stages and the lazy checks
// are described in match/src/README.md).

#include "vigil/match/matcher.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string>
#include <string_view>

#include "case_fold.h"
#include "matcher_impl.h"
#include "patterns.h"

namespace vigil::match {

namespace {

bool evaluate_direct(const detail::CompiledRules::DirectPredicate& dp, const Event& event) {
  const FieldValue& fv = event.field(dp.field_slot);
  switch (dp.kind) {
    case Predicate::Kind::kExists:
      return fv.present();
    case Predicate::Kind::kMissing:
      return !fv.present();
    case Predicate::Kind::kPresent:
      return fv.type != ValueType::kMissing;
    case Predicate::Kind::kAbsent:
      return fv.type == ValueType::kMissing;
    case Predicate::Kind::kEmpty:
      return fv.present() && fv.text.empty();
    case Predicate::Kind::kFieldRef: {
      const FieldValue& ref = event.field(dp.ref_slot);
      return fv.present() && ref.present() && fold_equals(fv.text, ref.text);
    }
    case Predicate::Kind::kCidr: {
      // inet_pton needs a terminated string; addresses are short, so no allocation.
      char buf[64];
      if (!fv.present() || fv.text.size() >= sizeof buf) return false;
      std::memcpy(buf, fv.text.data(), fv.text.size());
      buf[fv.text.size()] = '\0';
      uint8_t addr[16];
      if (inet_pton(dp.v6 ? AF_INET6 : AF_INET, buf, addr) != 1) return false;
      const int full = dp.prefix_bits / 8, rest = dp.prefix_bits % 8;
      if (std::memcmp(addr, dp.network, static_cast<size_t>(full)) != 0) return false;
      if (rest == 0) return true;
      const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
      return (addr[full] & mask) == (dp.network[full] & mask);
    }
    case Predicate::Kind::kLess:
    case Predicate::Kind::kLessEqual:
    case Predicate::Kind::kGreater:
    case Predicate::Kind::kGreaterEqual: {
      if (!fv.present()) return false;
      double v;
      if (dp.time_part != detail::TimePart::kNone) {
        const auto part = detail::date_part(fv.text, dp.time_part);
        if (!part) return false;
        v = *part;
      } else {
        auto [end, ec] = std::from_chars(fv.text.data(), fv.text.data() + fv.text.size(), v);
        if (ec != std::errc() || end != fv.text.data() + fv.text.size()) return false;
      }
      switch (dp.kind) {
        case Predicate::Kind::kLess:
          return v < dp.number;
        case Predicate::Kind::kLessEqual:
          return v <= dp.number;
        case Predicate::Kind::kGreater:
          return v > dp.number;
        default:
          return v >= dp.number;
      }
    }
    case Predicate::Kind::kPattern:
      return false;
  }
  return false;
}

}  // namespace

Matcher::Matcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Matcher::~Matcher() = default;

Expected<std::unique_ptr<Matcher>> Matcher::create(std::shared_ptr<const RuleSet> rules,
                                                   const MatcherOptions& options) {
  auto impl = std::make_unique<Impl>(std::move(rules), options);
  if (Status s = impl->init(); !s.is_ok()) return s;
  return std::unique_ptr<Matcher>(new Matcher(std::move(impl)));
}

Status Matcher::match(const Event& event, std::vector<uint32_t>& out) {
  return impl_->match(event, out);
}
const std::vector<uint32_t>& Matcher::failed_rules() const { return impl_->failed_rules(); }
std::string Matcher::last_failure() const { return impl_->last_failure(); }
const RuleSet& Matcher::rule_set() const { return impl_->rule_set(); }
bool Matcher::last_event_had_logsource() const { return impl_->last_event_had_logsource(); }
void Matcher::matched_fields(uint32_t rule, std::vector<uint32_t>& slots) {
  impl_->matched_fields(rule, slots);
}
void Matcher::memo_stats(std::vector<MemoFieldStats>& out) const { impl_->memo_stats(out); }
uint64_t Matcher::memo_resets() const { return impl_->memo_resets(); }

bool Matcher::Impl::at_anchors(uint8_t anchors, size_t length, unsigned long long to,
                               size_t scanned) {
  return (!(anchors & CompiledRules::kAnchorStart) || to == length) &&
         (!(anchors & CompiledRules::kAnchorEnd) || to == scanned);
}

Status Matcher::Impl::init() {
  const CompiledRules& rs = c_;
  for (const auto& d : rs.databases) {
    for (const hs_database_t* db : {d.db, d.literal_db}) {
      if (db != nullptr && hs_alloc_scratch(db, &scratch_) != HS_SUCCESS) {
        return Status::internal("Hyperscan scratch allocation failed");
      }
    }
  }
  for (const hs_database_t* db : rs.lazy_databases) {
    if (hs_alloc_scratch(db, &scratch_) != HS_SUCCESS) {
      return Status::internal("Hyperscan scratch allocation failed");
    }
  }
  for (const auto& f : rs.lazy_fields) {
    if (hs_alloc_scratch(f.db, &scratch_) != HS_SUCCESS) {
      return Status::internal("Hyperscan scratch allocation failed");
    }
  }
  resolved_epoch_.assign(rs.predicate_count, 0);
  literal_hit_.assign(rs.lazy_literals.size(), 0);
  lazy_fields_.assign(rs.lazy_fields.size(), {});
  pair_bits_.assign(rs.lazy_fields.size() * CompiledRules::PairFilter::kWords, 0);
  lower_.reserve(CompiledRules::kLazyDirectBudget);
  lazy_epoch_.assign(rs.lazy_databases.size(), 0);
  lazy_hit_.assign(rs.lazy_databases.size(), 0);
  if (!rs.confirms.empty()) {
    match_data_ = pcre2_match_data_create(1, nullptr);
    if (match_data_ == nullptr) return Status::internal("PCRE2 match data allocation failed");
  }
  to_confirm_.reserve(rs.confirms.size());
  bits_.assign(rs.predicate_count, 0);
  touched_.ids.resize(rs.predicate_count);
  active_logsource_.assign(rs.logsources.size(), 0);
  active_logsources_.reserve(rs.logsources.size());
  active_group_.assign(rs.groups.size(), 0);
  active_groups_.reserve(rs.groups.size());
  where_value_.assign(rs.where_fields.size(), -1);
  last_where_.assign(rs.where_fields.size(), LastWhere{});
  database_epoch_.assign(rs.databases.size(), 0);
  rule_epoch_.assign(rs.compiled.size(), 0);
  candidates_.ids.resize(rs.compiled.size());
  failed_epoch_.assign(rs.compiled.size(), 0);
  failed_rules_.reserve(rs.compiled.size());
  failed_preds_.reserve(rs.predicate_count);
  memo_counts_.assign(rs.databases.size(), MemoCounts{});
  memo_preds_.reserve(256);
  return Status::ok();
}

void Matcher::Impl::memo_stats(std::vector<MemoFieldStats>& out) const {
  out.clear();
  for (size_t d = 0; d < c_.databases.size(); ++d) {
    const MemoCounts& counts = memo_counts_[d];
    if (counts.lookups == 0) continue;
    const uint32_t slot = c_.databases[d].field_slot;
    auto it = std::find_if(out.begin(), out.end(),
                           [&](const MemoFieldStats& s) { return s.slot == slot; });
    if (it == out.end()) it = out.insert(out.end(), MemoFieldStats{slot, 0, 0});
    it->lookups += counts.lookups;
    it->hits += counts.hits;
  }
  std::sort(out.begin(), out.end(),
            [](const MemoFieldStats& a, const MemoFieldStats& b) { return a.slot < b.slot; });
}

std::string Matcher::Impl::last_failure() const {
  const std::string field = last_failure_.field == CompiledRules::kRawSlot
                                ? "the raw event"
                                : "field '" + rules_->fields().path(last_failure_.field) + "'";
  const int rc = last_failure_.code;
  const bool limit = rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT;
  return "PCRE2 confirmation on " + field +
         (limit ? " stopped at its backtracking limit"
                : " failed with error " + std::to_string(rc));
}

Matcher::Impl::~Impl() {
  hs_free_scratch(scratch_);
  pcre2_match_data_free(match_data_);
}

void Matcher::Impl::matched_fields(uint32_t rule, std::vector<uint32_t>& slots) {
  const CompiledRules& rs = c_;
  const auto& cr = rs.compiled[rule];
  for (uint32_t i = cr.positive_begin; i < cr.positive_end; ++i) {
    const uint32_t pred = rs.positive_preds[i];
    // The match may not have needed it. (A failing scan here leaves it out of the list;
    // the match itself was decided without it.)
    if (event_ != nullptr && unresolved(pred)) resolve(pred);
    const uint32_t slot = rs.predicate_slot[pred];
    if (!bits_[pred] || slot == CompiledRules::kNoSlot) continue;
    if (std::find(slots.begin(), slots.end(), slot) == slots.end()) slots.push_back(slot);
  }
}

bool Matcher::Impl::evaluate(uint32_t rule) { return run(c_.compiled[rule].program_begin); }

bool Matcher::Impl::run(uint32_t pc) {
  VIGIL_DCHECK(pc < c_.program.size());
  const CompiledRules::Instr& in = c_.program[pc];
  switch (in.op) {
    case CompiledRules::Op::kPred:
      if (bits_[in.arg]) return true;
      if (in.k == 0 || resolved_epoch_[in.arg] == epoch_) return false;  // no lazy pattern left
      resolve(in.arg);
      return bits_[in.arg];
    case CompiledRules::Op::kTrue:
      return true;
    case CompiledRules::Op::kFalse:
      return false;
    case CompiledRules::Op::kNot:
      return !run(pc + 1);
    case CompiledRules::Op::kAnd:
    case CompiledRules::Op::kOr:
    case CompiledRules::Op::kAtLeast: {
      // How many children must hold: all (and), one (or), k (at least k).
      const uint32_t need = in.op == CompiledRules::Op::kAnd  ? in.arg
                            : in.op == CompiledRules::Op::kOr ? 1
                                                              : in.k;
      uint32_t ones = 0, left = in.arg;
      for (uint32_t child = pc + 1; left > 0; child = c_.program[child].end) {
        ones += run(child);
        --left;
        if (ones >= need) return true;
        if (ones + left < need) return false;
      }
      return ones >= need;
    }
  }
  return false;
}

bool Matcher::Impl::unresolved(uint32_t pred) const {
  if (bits_[pred]) return false;
  const auto [begin, end] = c_.lazy_of_predicate[pred];
  return begin != end && resolved_epoch_[pred] != epoch_;
}

void Matcher::Impl::resolve(uint32_t pred) {
  const CompiledRules& rs = c_;
  resolved_epoch_[pred] = epoch_;
  const auto [begin, end] = rs.lazy_of_predicate[pred];
  for (uint32_t i = begin; i < end; ++i) {
    const CompiledRules::LazyCheck& p = rs.lazy_checks[i];
    if (p.literal >= 0) {
      if (literal_holds(static_cast<uint32_t>(p.literal))) {
        set_bit(pred);
        return;
      }
      continue;
    }
    const auto lazy = static_cast<size_t>(p.database);
    if (lazy_epoch_[lazy] != epoch_) {
      lazy_epoch_[lazy] = epoch_;
      lazy_hit_[lazy] = 0;
      const FieldValue& fv = field_of(p.slot);
      if (fv.present()) {
        const hs_error_t err =
            hs_scan(rs.lazy_databases[lazy], fv.text.data(), static_cast<unsigned>(fv.text.size()),
                    0, scratch_, on_lazy_match, &lazy_hit_[lazy]);
        if (err != HS_SUCCESS && err != HS_SCAN_TERMINATED) lazy_error_ = err;
      }
    }
    if (lazy_hit_[lazy]) {
      set_bit(pred);
      return;
    }
  }
}

bool Matcher::Impl::literal_holds(uint32_t literal) {
  const CompiledRules& rs = c_;
  const CompiledRules::LazyLiteral& lit = rs.lazy_literals[literal];
  LazyFieldState& state = lazy_fields_[lit.field];
  if (state.scanned == epoch_) return literal_hit_[literal] == epoch_;
  const uint32_t slot = rs.lazy_fields[lit.field].slot;
  const FieldValue& fv = field_of(slot);
  const std::string_view text = fv.text;
  const std::string_view needle(rs.lazy_text.data() + lit.offset, lit.length);
  const size_t n = needle.size();
  if (!fv.present() || n > text.size()) return false;
  if (state.work_epoch != epoch_) {
    state.work_epoch = epoch_;
    state.work = 0;
  }
  // Whether `work` more bytes of direct comparison would pass the budget; if so, the field
  // is scanned for all its lazy strings instead, and the scan answers.
  auto over_budget = [&](size_t work) {
    if (state.work + work <= CompiledRules::kLazyDirectBudget) {
      state.work += work;
      return false;
    }
    scan_lazy_field(lit.field, text);
    return true;
  };
  if (lit.anchors != 0) {
    if (over_budget(n)) return literal_hit_[literal] == epoch_;
    auto equal_at = [&](size_t pos) {
      return lit.caseless ? ascii_iequals(text.substr(pos, n), needle)
                          : text.compare(pos, n, needle) == 0;
    };
    switch (lit.anchors) {
      case CompiledRules::kAnchorStart | CompiledRules::kAnchorEnd:
        return n == text.size() && equal_at(0);
      case CompiledRules::kAnchorStart:
        return equal_at(0);
      default:
        return equal_at(text.size() - n);
    }
  }
  if (!lit.caseless) {
    if (over_budget(text.size())) return literal_hit_[literal] == epoch_;
    return text.find(needle) != std::string_view::npos;
  }
  uint64_t* pairs = pair_bits_.data() + lit.field * CompiledRules::PairFilter::kWords;
  if (state.lower_epoch != epoch_) {
    // The value lowercased and its byte pairs noted, once per event: one pass, counted once.
    if (over_budget(text.size())) return literal_hit_[literal] == epoch_;
    state.lower_epoch = epoch_;
    state.lower_begin = lower_.size();
    lower_.append(text);
    std::fill(pairs, pairs + CompiledRules::PairFilter::kWords, 0);
    auto* lowered = reinterpret_cast<unsigned char*>(lower_.data() + state.lower_begin);
    for (size_t i = 0; i < text.size(); ++i) {
      lowered[i] = static_cast<unsigned char>(ascii_lower(static_cast<char>(lowered[i])));
      if (i > 0) {
        CompiledRules::PairFilter::note(
            pairs, CompiledRules::PairFilter::pair(lowered[i - 1], lowered[i]));
      }
    }
  }
  for (uint8_t i = 0; i < lit.pair_count; ++i) {
    if (!CompiledRules::PairFilter::has(pairs, lit.pairs[i]))
      return false;  // a pair of it is missing
  }
  if (over_budget(text.size())) return literal_hit_[literal] == epoch_;
  return std::string_view(lower_).substr(state.lower_begin, text.size()).find(needle) !=
         std::string_view::npos;
}

void Matcher::Impl::scan_lazy_field(uint32_t field, std::string_view text) {
  lazy_fields_[field].scanned = epoch_;
  lazy_scan_length_ = text.size();
  const hs_error_t err =
      hs_scan(c_.lazy_fields[field].db, text.data(), static_cast<unsigned>(text.size()), 0,
              scratch_, on_lazy_literal_match, this);
  if (err != HS_SUCCESS) lazy_error_ = err;
}

int Matcher::Impl::on_lazy_literal_match(unsigned id, unsigned long long, unsigned long long to,
                                         unsigned, void* ctx) {
  auto* m = static_cast<Matcher::Impl*>(ctx);
  const CompiledRules& rs = m->c_;
  const auto literal = static_cast<uint32_t>(rs.patterns[id].lazy_literal);
  const CompiledRules::LazyLiteral& lit = rs.lazy_literals[literal];
  if (!at_anchors(lit.anchors, lit.length, to, m->lazy_scan_length_)) return 0;
  m->literal_hit_[literal] = m->epoch_;
  return 0;
}

int Matcher::Impl::on_lazy_match(unsigned, unsigned long long, unsigned long long, unsigned,
                                 void* ctx) {
  *static_cast<uint8_t*>(ctx) = 1;
  return 1;  // one match is the answer: stop scanning
}

int Matcher::Impl::on_pattern_match(unsigned id, unsigned long long, unsigned long long to,
                                    unsigned, void* ctx) {
  auto* m = static_cast<Matcher::Impl*>(ctx);
  const CompiledRules& rs = m->c_;
  const CompiledRules::Pattern& p = rs.patterns[id];
  if (!at_anchors(p.anchors, p.length, to, m->scan_length_)) return 0;
  if (p.confirm >= 0) {
    m->to_confirm_.push_back(id);
    return 0;
  }
  for (uint32_t i = p.preds_begin; i < p.preds_end; ++i) m->set_bit(rs.pattern_preds[i]);
  if (m->recording_) {
    m->memo_preds_.insert(m->memo_preds_.end(), rs.pattern_preds.begin() + p.preds_begin,
                          rs.pattern_preds.begin() + p.preds_end);
  }
  return 0;
}

Status Matcher::Impl::match(const Event& event, std::vector<uint32_t>& out) {
  if (!begin(event)) return Status::ok();
  if (Status st = scan(event); !st.is_ok()) return st;
  add_triggered();
  if (!failed_preds_.empty()) fail_users();
  const size_t first = out.size();
  lazy_error_ = HS_SUCCESS;
  for (uint32_t r : candidates_) {
    if (failed_epoch_[r] == epoch_) continue;
    if (evaluate(r)) out.push_back(r);
  }
  if (lazy_error_ != HS_SUCCESS) {
    out.resize(first);
    return Status::internal("Hyperscan scan failed with error " + std::to_string(lazy_error_));
  }
  std::sort(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
  return Status::ok();
}

void Matcher::Impl::fail_predicate(uint32_t pred) {
  if (std::find(failed_preds_.begin(), failed_preds_.end(), pred) == failed_preds_.end())
    failed_preds_.push_back(pred);
}

void Matcher::Impl::fail_users() {
  const CompiledRules& rs = c_;
  for (const uint32_t pred : failed_preds_) {
    for (uint32_t u = rs.users_begin[pred]; u < rs.users_begin[pred + 1]; ++u) {
      const uint32_t rule = rs.predicate_users[u];
      // Only the rules this event could reach: those of its active groups.
      if (!active_group_[rs.compiled[rule].group] || failed_epoch_[rule] == epoch_) continue;
      failed_epoch_[rule] = epoch_;
      failed_rules_.push_back(rule);
    }
  }
  std::sort(failed_rules_.begin(), failed_rules_.end());
}

void Matcher::Impl::add_triggered() {
  const CompiledRules& rs = c_;
  for (uint32_t id : touched_) {
    const uint32_t last = rs.trigger_runs_of_predicate[id + 1];
    for (uint32_t run = rs.trigger_runs_of_predicate[id]; run < last; ++run) {
      const CompiledRules::TriggerRun& tr = rs.trigger_runs[run];
      if (!active_group_[tr.group]) continue;
      for (uint32_t i = tr.begin; i < tr.end; ++i) add_candidate(rs.trigger_rules[i]);
    }
  }
}

bool Matcher::Impl::begin(const Event& event) {
  const CompiledRules& rs = c_;
  for (uint32_t id : touched_) bits_[id] = 0;
  touched_.clear();
  candidates_.clear();
  if (++epoch_ == 0) {
    std::fill(rule_epoch_.begin(), rule_epoch_.end(), 0);
    std::fill(database_epoch_.begin(), database_epoch_.end(), 0);
    std::fill(lazy_epoch_.begin(), lazy_epoch_.end(), 0);
    std::fill(resolved_epoch_.begin(), resolved_epoch_.end(), 0);
    std::fill(literal_hit_.begin(), literal_hit_.end(), 0);
    std::fill(failed_epoch_.begin(), failed_epoch_.end(), 0);
    std::fill(lazy_fields_.begin(), lazy_fields_.end(), LazyFieldState{});
    epoch_ = 1;
  }
  lower_.clear();
  failed_preds_.clear();
  failed_rules_.clear();
  event_ = &event;
  raw_ = FieldValue{ValueType::kObject, event.raw()};

  bool same_where = logsources_known_;
  for (size_t w = 0; w < rs.where_fields.size(); ++w) {
    const CompiledRules::WhereField& where = rs.where_fields[w];
    const FieldValue& fv = event.field(where.slot);
    int32_t id = -1;
    if (fv.present() && fv.text.size() <= where.longest) {
      LastWhere& last = last_where_[w];
      if (last.set && last.text == fv.text) {
        id = last.id;
      } else {
        where_key_.resize(fv.text.size());
        std::transform(fv.text.begin(), fv.text.end(), where_key_.begin(),
                       [](char c) { return ascii_lower(c); });
        if (auto it = where.ids.find(where_key_); it != where.ids.end()) id = it->second;
        last.text.assign(fv.text);  // at most `longest` bytes: no growth once warm
        last.id = id;
        last.set = true;
      }
    }
    same_where = same_where && where_value_[w] == id;
    where_value_[w] = id;
  }
  for (const uint32_t g : active_groups_) active_group_[g] = 0;
  active_groups_.clear();
  // The same where values as the last event: the same logsources.
  if (same_where) return !active_logsources_.empty();
  logsources_known_ = true;
  for (const uint32_t ls : active_logsources_) active_logsource_[ls] = 0;
  active_logsources_.clear();
  auto activate = [&](uint32_t ls) {
    const auto& where = rs.logsources[ls].where;
    for (size_t k = 1; k < where.size(); ++k) {
      const int32_t v = where_value_[where[k].first];
      if (v < 0 ||
          std::find(where[k].second.begin(), where[k].second.end(), v) == where[k].second.end())
        return;
    }
    if (!active_logsource_[ls]) {
      active_logsource_[ls] = 1;
      active_logsources_.push_back(ls);
    }
  };
  for (const uint32_t ls : rs.unconditional_logsources) activate(ls);
  for (size_t w = 0; w < rs.where_fields.size(); ++w) {
    if (where_value_[w] < 0) continue;
    for (const uint32_t ls : rs.logsources_by_first_where[rs.first_where_base[w] +
                                                          static_cast<uint32_t>(where_value_[w])]) {
      activate(ls);
    }
  }
  return !active_logsources_.empty();
}

Status Matcher::Impl::scan(const Event& event) {
  const CompiledRules& rs = c_;
  for (const uint32_t ls : active_logsources_) {
    for (const uint32_t g : rs.groups_of_logsource[ls]) {
      if (active_group_[g]) continue;
      active_group_[g] = 1;
      active_groups_.push_back(g);
      const auto& group = rs.groups[g];
      for (const auto& dp : group.direct) {
        if (evaluate_direct(dp, event)) set_bit(dp.id);
      }
      for (uint32_t r : group.always_evaluate) add_candidate(r);
    }
  }
  for (const uint32_t ls : active_logsources_) {
    for (uint32_t d : rs.logsource_databases[ls]) {
      if (database_epoch_[d] == epoch_) continue;  // scanned for another active logsource
      database_epoch_[d] = epoch_;
      const uint32_t slot = rs.databases[d].field_slot;
      // The raw event (keywords) is new every time: never remembered.
      MemoCounts* counts = nullptr;
      if (memo_.enabled() && slot != CompiledRules::kRawSlot) {
        counts = &memo_counts_[d];
        if (counts->bypass > 0) {
          --counts->bypass;
          counts = nullptr;
        }
      }
      if (counts == nullptr) {
        const FieldValue& fv = field_of(slot);
        if (!fv.present()) continue;
        bool confirmed = true;
        if (Status st = scan_database(d, fv.text, false, confirmed); !st.is_ok()) return st;
        continue;
      }
      // Keyed by the value as the event writes it, so a string with escapes that repeats is
      // not even unescaped; an escaped text and a plain one never share a key (the database
      // key's low bit tells them apart).
      const FieldValue& raw = event_->raw_field(slot);
      if (!raw.present()) continue;
      const std::string_view key = raw.text;  // raw may be unescaped in place below
      const uint32_t memo_db = 2 * d + (raw.type == ValueType::kEscapedString ? 1 : 0);
      uint64_t hash = 0;
      bool remember = false;
      if (key.size() <= detail::ScanMemo::kMaxValueBytes) {
        hash = detail::ScanMemo::hash(memo_db, key);
        uint32_t count = 0;
        const uint32_t* preds = memo_.find(memo_db, key, hash, count);
        ++counts->lookups;
        counts->hits += preds != nullptr;
        counts->window_hits += preds != nullptr;
        if (++counts->window_lookups == kMemoWindow) {
          if (counts->window_hits * kMemoMinHitShare < kMemoWindow) counts->bypass = kMemoBypass;
          counts->window_lookups = counts->window_hits = 0;
        }
        if (preds != nullptr) {
          for (uint32_t i = 0; i < count; ++i) set_bit(preds[i]);
          continue;
        }
        remember = memo_.admit(hash);
      }
      bool confirmed = true;
      if (Status st = scan_database(d, event_->field(slot).text, remember, confirmed); !st.is_ok())
        return st;
      // A failed confirmation is this event's to report, not the value's to remember.
      if (remember && confirmed)
        memo_.insert(memo_db, key, hash, memo_preds_.data(), memo_preds_.size());
    }
  }
  return Status::ok();
}

Status Matcher::Impl::scan_database(uint32_t d, std::string_view text, bool record,
                                    bool& confirmed) {
  const CompiledRules& rs = c_;
  const auto& db = rs.databases[d];
  recording_ = record;
  memo_preds_.clear();
  scan_length_ = text.size();
  for (const hs_database_t* hdb : {db.literal_db, db.db}) {
    if (hdb == nullptr) continue;
    const hs_error_t err = hs_scan(hdb, text.data(), static_cast<unsigned>(text.size()), 0,
                                   scratch_, on_pattern_match, this);
    if (err != HS_SUCCESS) {
      to_confirm_.clear();
      recording_ = false;
      return Status::internal("Hyperscan scan failed with error " + std::to_string(err));
    }
  }
  recording_ = false;
  for (uint32_t id : to_confirm_) {
    const CompiledRules::Pattern& p = rs.patterns[id];
    const int rc = pcre2_match(rs.confirms[static_cast<size_t>(p.confirm)],
                               reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0,
                               match_data_, rs.confirm_limits);
    if (rc >= 0) {
      for (uint32_t i = p.preds_begin; i < p.preds_end; ++i) {
        set_bit(rs.pattern_preds[i]);
        if (record) memo_preds_.push_back(rs.pattern_preds[i]);
      }
    } else if (rc != PCRE2_ERROR_NOMATCH) {
      // Fails the rules that read this pattern's predicates (see failed_rules()), and no
      // other: a value crafted against one rule's regex must not blind the rest.
      for (uint32_t i = p.preds_begin; i < p.preds_end; ++i) fail_predicate(rs.pattern_preds[i]);
      last_failure_.field = db.field_slot;
      last_failure_.code = rc;
      confirmed = false;
    }
  }
  to_confirm_.clear();
  return Status::ok();
}

}  // namespace vigil::match
