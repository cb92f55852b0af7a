#include "vigil/match/ruleset.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

namespace vigil::match {
namespace fs = std::filesystem;

std::vector<SigmaRule> load_rules(const std::vector<std::string>& paths, CompileReport& report) {
  std::vector<std::string> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      for (auto it = fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        const auto ext = it->path().extension();
        if (it->is_regular_file(ec) && (ext == ".yml" || ext == ".yaml")) files.push_back(it->path().string());
      }
      if (ec) report.rules.push_back({p, "", "", Status::io_error(p + ": " + ec.message()), {}});
    } else {
      files.push_back(p);
    }
  }
  std::sort(files.begin(), files.end());

  std::vector<SigmaRule> rules;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      report.rules.push_back({f, "", "", Status::io_error("cannot read '" + f + "'"), {}});
      ++report.unsupported;
      continue;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    auto rule = parse_sigma(ss.str(), f);
    if (!rule) {
      report.rules.push_back({f, "", "", rule.status(), {}});
      ++report.unsupported;
      continue;
    }
    rules.push_back(std::move(*rule));
  }
  return rules;
}

namespace {

unsigned hs_flags(const Predicate& p) {
  unsigned flags = HS_FLAG_SINGLEMATCH;
  if (p.caseless) flags |= HS_FLAG_CASELESS;
  if (p.dotall) flags |= HS_FLAG_DOTALL;
  if (p.multiline) flags |= HS_FLAG_MULTILINE;
  if (p.user_regex) flags |= HS_FLAG_ALLOWEMPTY;
  return flags;
}

// Checks that Hyperscan accepts a pattern, without building a database.
Status check_pattern(const Predicate& p) {
  hs_expr_info_t* info = nullptr;
  hs_compile_error_t* err = nullptr;
  if (hs_expression_info(p.regex.c_str(), hs_flags(p), &info, &err) != HS_SUCCESS) {
    std::string msg = err ? err->message : "unknown error";
    hs_free_compile_error(err);
    return Status::unsupported("field '" + p.field + "': pattern '" + p.regex + "' is not supported by Hyperscan (" + msg + ")");
  }
  std::free(info);
  return Status::ok();
}

bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

struct PendingRule {
  const SigmaRule* rule;
  uint32_t group;
  std::vector<uint32_t> pred_ids;  // local predicate index -> global id
};

}  // namespace

namespace {

std::vector<std::string> pending_rule_names(const std::vector<PendingRule>& pending) {
  std::vector<std::string> names;
  for (const auto& pr : pending) names.push_back(pr.rule->name);
  return names;
}

}  // namespace

RuleSet::~RuleSet() {
  for (auto& d : databases_) hs_free_database(d.db);
}

Expected<std::shared_ptr<const RuleSet>> RuleSet::compile(const std::vector<SigmaRule>& rules,
                                                          const FieldMapping& mapping, CompileReport& report) {
  std::shared_ptr<RuleSet> set(new RuleSet());
  if (hs_valid_platform() != HS_SUCCESS) return Status::unsupported("Hyperscan needs a CPU with SSSE3");

  for (const auto& ls : mapping.logsources()) {
    LogsourceCheck check;
    for (const auto& [path, values] : ls.where) check.where.emplace_back(set->fields_.add(path), values);
    set->logsources_.push_back(std::move(check));
  }
  if (!mapping.host_field().empty()) set->host_slot_ = static_cast<int32_t>(set->fields_.add(mapping.host_field()));
  if (!mapping.time_field().empty()) set->time_slot_ = static_cast<int32_t>(set->fields_.add(mapping.time_field()));

  // Pass 1: per rule, resolve logsource and fields and check its own patterns.
  struct PredKey {
    uint32_t group, slot;
    Predicate::Kind kind;
    std::string regex;  // kPattern: the regex; other kinds: the operand
    unsigned flags;
    uint32_t ref_slot;  // kFieldRef
    auto operator<=>(const PredKey&) const = default;
  };
  std::map<PredKey, uint32_t> pred_ids;
  std::vector<PredKey> preds;
  std::map<std::vector<uint32_t>, uint32_t> group_ids;
  std::vector<PendingRule> pending;
  std::set<std::string> seen_ids;

  std::vector<const SigmaRule*> correlation_rules;
  for (const SigmaRule& rule : rules) {
    RuleDiagnostic diag{rule.source, rule.id, rule.title, Status::ok(), rule.warnings};
    auto fail = [&](Status s) {
      diag.status = std::move(s);
      report.rules.push_back(diag);
      ++report.unsupported;
    };
    if (!seen_ids.insert(rule.id).second) {
      fail(Status::invalid(rule.source + ": duplicate rule id '" + rule.id + "'"));
      continue;
    }
    if (rule.correlation) {
      correlation_rules.push_back(&rule);  // resolved once the base rules are compiled
      continue;
    }
    auto ls = mapping.logsources_for(rule.logsource);
    if (ls.empty()) {
      fail(Status::unsupported(rule.source + ": logsource '" + rule.logsource.to_string() + "' has no entry in mapping '" +
                               mapping.name() + "'"));
      continue;
    }
    Status bad;
    for (const auto& p : rule.predicates) {
      if (p.kind == Predicate::Kind::kPattern && !(bad = check_pattern(p))) break;
    }
    if (!bad.is_ok()) {
      fail(Status(bad.code(), rule.source + ": " + bad.message()));
      continue;
    }
    auto [git, inserted] = group_ids.emplace(ls, static_cast<uint32_t>(set->groups_.size()));
    if (inserted) {
      set->groups_.emplace_back();
      set->groups_.back().logsources = ls;
    }
    PendingRule pr{&rule, git->second, {}};
    for (const auto& p : rule.predicates) {
      const auto paths = mapping.json_paths(p.field);
      const uint32_t slot = set->fields_.add(paths[0]);
      for (size_t i = 1; i < paths.size(); ++i) {
        if (!set->fields_.add_alias(paths[i], slot)) {
          bad = Status::invalid(rule.source + ": field '" + p.field + "' maps to '" + paths[i] +
                                "', which another field already uses");
        }
      }
      uint32_t ref_slot = 0;
      if (p.kind == Predicate::Kind::kFieldRef) {
        const auto ref_paths = mapping.json_paths(p.operand);
        ref_slot = set->fields_.add(ref_paths[0]);
        for (size_t i = 1; i < ref_paths.size(); ++i) (void)set->fields_.add_alias(ref_paths[i], ref_slot);
      }
      const bool pattern = p.kind == Predicate::Kind::kPattern;
      PredKey key{pr.group, slot, p.kind, pattern ? p.regex : p.operand, pattern ? hs_flags(p) : 0, ref_slot};
      auto [it, fresh] = pred_ids.emplace(key, static_cast<uint32_t>(preds.size()));
      if (fresh) preds.push_back(key);
      pr.pred_ids.push_back(it->second);
    }
    if (!bad.is_ok()) {
      fail(std::move(bad));
      continue;
    }
    pending.push_back(std::move(pr));
    report.rules.push_back(diag);
  }
  set->predicate_count_ = preds.size();
  set->rules_of_predicate_.resize(preds.size());

  // Pass 2: one Hyperscan database per (group, field).
  std::map<std::pair<uint32_t, uint32_t>, std::vector<uint32_t>> by_field;
  for (uint32_t id = 0; id < preds.size(); ++id) {
    const PredKey& k = preds[id];
    if (k.kind == Predicate::Kind::kPattern) {
      by_field[{k.group, k.slot}].push_back(id);
    } else {
      DirectPredicate dp{id, k.slot, k.kind};
      dp.ref_slot = k.ref_slot;
      if (k.kind == Predicate::Kind::kCidr) {
        // The parser validated the network; keep the address and prefix length.
        const size_t slash = k.regex.find('/');
        const std::string addr = k.regex.substr(0, slash);
        dp.v6 = addr.find(':') != std::string::npos;
        inet_pton(dp.v6 ? AF_INET6 : AF_INET, addr.c_str(), dp.network);
        dp.prefix_bits = slash == std::string::npos ? (dp.v6 ? 128 : 32) : std::stoi(k.regex.substr(slash + 1));
      } else if (k.kind != Predicate::Kind::kFieldRef) {
        std::from_chars(k.regex.data(), k.regex.data() + k.regex.size(), dp.number);
      }
      set->groups_[k.group].direct.push_back(dp);
    }
  }
  for (const auto& [gs, ids] : by_field) {
    std::vector<const char*> exprs;
    std::vector<unsigned> flags;
    for (uint32_t id : ids) {
      exprs.push_back(preds[id].regex.c_str());
      flags.push_back(preds[id].flags);
    }
    hs_database_t* db = nullptr;
    hs_compile_error_t* err = nullptr;
    if (hs_compile_multi(exprs.data(), flags.data(), ids.data(), static_cast<unsigned>(ids.size()), HS_MODE_BLOCK,
                         nullptr, &db, &err) != HS_SUCCESS) {
      // Every pattern passed hs_expression_info, so this is a resource failure of the set.
      std::string msg = err ? err->message : "unknown error";
      hs_free_compile_error(err);
      return Status::internal("Hyperscan compile of field '" + set->fields_.path(gs.second) + "' failed: " + msg);
    }
    set->groups_[gs.first].databases.push_back(static_cast<uint32_t>(set->databases_.size()));
    set->databases_.push_back({gs.first, gs.second, db});
  }

  // Condition programs.
  for (const PendingRule& pr : pending) {
    const uint32_t rule_index = static_cast<uint32_t>(set->rules_.size());
    CompiledRule cr{pr.group, static_cast<uint32_t>(set->program_.size()), 0};
    size_t depth = 0, max_depth = 0;
    auto emit = [&](auto&& self, const CondNode& n) -> void {
      switch (n.kind) {
        case CondNode::Kind::kPred: {
          const uint32_t id = pr.pred_ids[n.index];
          set->program_.push_back({Op::kPred, id, 0});
          auto& users = set->rules_of_predicate_[id];
          if (users.empty() || users.back() != rule_index) users.push_back(rule_index);
          ++depth;
          break;
        }
        case CondNode::Kind::kConst:
          set->program_.push_back({n.value ? Op::kTrue : Op::kFalse, 0, 0});
          ++depth;
          break;
        case CondNode::Kind::kNot:
          self(self, n.children[0]);
          set->program_.push_back({Op::kNot, 0, 0});
          break;
        case CondNode::Kind::kAnd:
        case CondNode::Kind::kOr:
        case CondNode::Kind::kAtLeast: {
          for (const auto& c : n.children) self(self, c);
          const Op op = n.kind == CondNode::Kind::kAnd ? Op::kAnd : n.kind == CondNode::Kind::kOr ? Op::kOr : Op::kAtLeast;
          set->program_.push_back({op, static_cast<uint32_t>(n.children.size()), n.index});
          depth -= n.children.size() - 1;
          break;
        }
      }
      max_depth = std::max(max_depth, depth);
    };
    emit(emit, pr.rule->condition);
    cr.program_end = static_cast<uint32_t>(set->program_.size());
    set->max_stack_ = std::max(set->max_stack_, max_depth);
    set->compiled_.push_back(cr);
    set->rules_.push_back({pr.rule->id, pr.rule->title, pr.rule->level, pr.rule->tags, pr.rule->source});
  }
  set->compile_correlations(correlation_rules, pending_rule_names(pending), mapping, report);
  for (auto& users : set->rules_of_predicate_) {
    std::sort(users.begin(), users.end());
    users.erase(std::unique(users.begin(), users.end()), users.end());
  }

  // Rules whose condition holds with every predicate false (e.g. "not filter") must be
  // evaluated for every event of their logsource; find them with an all-false evaluation.
  auto probe = Matcher::create(set);
  if (!probe) return probe.status();
  for (uint32_t r = 0; r < set->compiled_.size(); ++r) {
    if ((*probe)->evaluate(r)) set->groups_[set->compiled_[r].group].always_evaluate.push_back(r);
  }
  report.compiled += set->compiled_.size() + set->correlations_.size();
  return std::shared_ptr<const RuleSet>(std::move(set));
}

void RuleSet::compile_correlations(const std::vector<const SigmaRule*>& correlation_rules,
                                   const std::vector<std::string>& names, const FieldMapping& mapping,
                                   CompileReport& report) {
  correlations_of_rule_.assign(rules_.size(), {});
  // A base rule is found by its id or its name.
  auto find_base = [&](const std::string& ref) -> int64_t {
    for (size_t i = 0; i < rules_.size(); ++i) {
      if (rules_[i].id == ref || (!names[i].empty() && names[i] == ref)) return static_cast<int64_t>(i);
    }
    return -1;
  };
  auto slot_of = [&](const std::string& sigma_field) {
    const auto paths = mapping.json_paths(sigma_field);
    const uint32_t slot = fields_.add(paths[0]);
    for (size_t i = 1; i < paths.size(); ++i) (void)fields_.add_alias(paths[i], slot);
    return slot;
  };
  std::vector<bool> generated(rules_.size(), false), referenced(rules_.size(), false);
  for (const SigmaRule* rule : correlation_rules) {
    RuleDiagnostic diag{rule->source, rule->id, rule->title, Status::ok(), rule->warnings};
    const Correlation& spec = *rule->correlation;
    CompiledCorrelation cc{{rule->id, rule->title, rule->level, rule->tags, rule->source, true}, spec, {}, {}, {}};
    Status bad;
    for (const auto& ref : spec.rules) {
      const int64_t base = find_base(ref);
      if (base < 0) {
        const bool other = std::any_of(correlation_rules.begin(), correlation_rules.end(),
                                       [&](const SigmaRule* c) { return c->id == ref || c->name == ref; });
        bad = other ? Status::unsupported(rule->source + ": references correlation rule '" + ref +
                                          "'; chained correlations are not supported")
                    : Status::invalid(rule->source + ": references rule '" + ref +
                                      "', which is not a compiled rule of this set (by id or name)");
        break;
      }
      cc.bases.push_back(static_cast<uint32_t>(base));
    }
    // Group-by names are fields, or aliases naming each base rule's own field.
    for (const auto& [alias, per_rule] : spec.aliases) {
      if (std::find(spec.group_by.begin(), spec.group_by.end(), alias) == spec.group_by.end()) {
        bad = Status::invalid(rule->source + ": alias '" + alias + "' is not used in group-by");
      }
      for (const auto& [ref, field] : per_rule) {
        if (std::find(spec.rules.begin(), spec.rules.end(), ref) == spec.rules.end()) {
          bad = Status::invalid(rule->source + ": alias '" + alias + "' names rule '" + ref + "', which the correlation does not use");
        }
      }
    }
    if (bad.is_ok()) {
      for (size_t b = 0; b < cc.bases.size(); ++b) {
        std::vector<uint32_t> slots;
        for (const auto& g : spec.group_by) {
          std::string field = g;
          for (const auto& [alias, per_rule] : spec.aliases) {
            if (alias != g) continue;
            auto it = std::find_if(per_rule.begin(), per_rule.end(), [&](const auto& pr) { return pr.first == spec.rules[b]; });
            if (it == per_rule.end()) {
              bad = Status::invalid(rule->source + ": alias '" + alias + "' has no field for rule '" + spec.rules[b] + "'");
            } else {
              field = it->second;
            }
          }
          slots.push_back(slot_of(field));
        }
        cc.group_slots.push_back(std::move(slots));
        cc.value_slots.push_back(spec.field.empty() ? 0 : slot_of(spec.field));
      }
    }
    if (!bad.is_ok()) {
      diag.status = std::move(bad);
      report.rules.push_back(std::move(diag));
      ++report.unsupported;
      continue;
    }
    const uint32_t index = static_cast<uint32_t>(correlations_.size());
    for (uint32_t b : cc.bases) {
      auto& of = correlations_of_rule_[b];
      if (std::find(of.begin(), of.end(), index) == of.end()) of.push_back(index);
      referenced[b] = true;
      generated[b] = generated[b] || spec.generate;
    }
    correlations_.push_back(std::move(cc));
    report.rules.push_back(std::move(diag));
  }
  for (size_t i = 0; i < rules_.size(); ++i) {
    if (referenced[i] && !generated[i]) rules_[i].emit = false;
  }
}

Expected<std::unique_ptr<Matcher>> Matcher::create(std::shared_ptr<const RuleSet> rules) {
  std::unique_ptr<Matcher> m(new Matcher(std::move(rules)));
  const RuleSet& rs = *m->rules_;
  for (const auto& d : rs.databases_) {
    if (hs_alloc_scratch(d.db, &m->scratch_) != HS_SUCCESS) return Status::internal("Hyperscan scratch allocation failed");
  }
  m->bits_.assign(rs.predicate_count_, 0);
  m->touched_.reserve(rs.predicate_count_);
  m->active_logsource_.assign(rs.logsources_.size(), 0);
  m->rule_epoch_.assign(rs.compiled_.size(), 0);
  m->stack_.assign(rs.max_stack_ + 1, 0);
  m->candidates_.reserve(rs.compiled_.size());
  return m;
}

Matcher::~Matcher() { hs_free_scratch(scratch_); }

bool Matcher::evaluate(uint32_t rule) {
  const RuleSet& rs = *rules_;
  const auto& cr = rs.compiled_[rule];
  size_t sp = 0;
  uint8_t* st = stack_.data();
  for (uint32_t pc = cr.program_begin; pc < cr.program_end; ++pc) {
    const auto& in = rs.program_[pc];
    switch (in.op) {
      case RuleSet::Op::kPred: st[sp++] = bits_[in.arg]; break;
      case RuleSet::Op::kTrue: st[sp++] = 1; break;
      case RuleSet::Op::kFalse: st[sp++] = 0; break;
      case RuleSet::Op::kNot: st[sp - 1] = !st[sp - 1]; break;
      case RuleSet::Op::kAnd:
      case RuleSet::Op::kOr:
      case RuleSet::Op::kAtLeast: {
        uint32_t count = 0;
        for (uint32_t i = 0; i < in.arg; ++i) count += st[sp - 1 - i];
        sp -= in.arg;
        st[sp++] = in.op == RuleSet::Op::kAnd ? count == in.arg : in.op == RuleSet::Op::kOr ? count > 0 : count >= in.k;
        break;
      }
    }
  }
  return sp == 1 && st[0];
}

bool RuleSet::evaluate_direct(const DirectPredicate& dp, const Event& event) {
  const FieldValue& fv = event.field(dp.field_slot);
  switch (dp.kind) {
    case Predicate::Kind::kExists: return fv.present();
    case Predicate::Kind::kMissing: return !fv.present();
    case Predicate::Kind::kEmpty: return fv.present() && fv.text.empty();
    case Predicate::Kind::kFieldRef: {
      const FieldValue& ref = event.field(dp.ref_slot);
      return fv.present() && ref.present() && ascii_iequals(fv.text, ref.text);
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
      auto [end, ec] = std::from_chars(fv.text.data(), fv.text.data() + fv.text.size(), v);
      if (ec != std::errc() || end != fv.text.data() + fv.text.size()) return false;
      switch (dp.kind) {
        case Predicate::Kind::kLess: return v < dp.number;
        case Predicate::Kind::kLessEqual: return v <= dp.number;
        case Predicate::Kind::kGreater: return v > dp.number;
        default: return v >= dp.number;
      }
    }
    case Predicate::Kind::kPattern: return false;
  }
  return false;
}

namespace {

struct ScanContext {
  uint8_t* bits;
  std::vector<uint32_t>* touched;
};

int on_match(unsigned id, unsigned long long, unsigned long long, unsigned, void* ctx) {
  auto* sc = static_cast<ScanContext*>(ctx);
  if (!sc->bits[id]) {
    sc->bits[id] = 1;
    sc->touched->push_back(id);
  }
  return 0;
}

}  // namespace

Status Matcher::match(const Event& event, std::vector<uint32_t>& out) {
  const RuleSet& rs = *rules_;
  for (uint32_t id : touched_) bits_[id] = 0;
  touched_.clear();
  candidates_.clear();
  if (++epoch_ == 0) {
    std::fill(rule_epoch_.begin(), rule_epoch_.end(), 0);
    epoch_ = 1;
  }

  any_logsource_ = false;
  for (size_t i = 0; i < rs.logsources_.size(); ++i) {
    bool active = true;
    for (const auto& [slot, values] : rs.logsources_[i].where) {
      const FieldValue& fv = event.field(slot);
      bool any = false;
      if (fv.present()) {
        for (const auto& v : values) {
          if (ascii_iequals(fv.text, v)) {
            any = true;
            break;
          }
        }
      }
      if (!any) {
        active = false;
        break;
      }
    }
    active_logsource_[i] = active;
    any_logsource_ |= active;
  }

  ScanContext sc{bits_.data(), &touched_};
  auto add_candidate = [&](uint32_t r) {
    if (rule_epoch_[r] != epoch_) {
      rule_epoch_[r] = epoch_;
      candidates_.push_back(r);
    }
  };
  for (const auto& g : rs.groups_) {
    bool active = false;
    for (uint32_t ls : g.logsources) active |= active_logsource_[ls] != 0;
    if (!active) continue;
    for (uint32_t d : g.databases) {
      const auto& db = rs.databases_[d];
      const FieldValue& fv = event.field(db.field_slot);
      if (!fv.present()) continue;
      const hs_error_t err = hs_scan(db.db, fv.text.data(), static_cast<unsigned>(fv.text.size()), 0, scratch_, on_match, &sc);
      if (err != HS_SUCCESS) return Status::internal("Hyperscan scan failed with error " + std::to_string(err));
    }
    for (const auto& dp : g.direct) {
      if (RuleSet::evaluate_direct(dp, event) && !bits_[dp.id]) {
        bits_[dp.id] = 1;
        touched_.push_back(dp.id);
      }
    }
    for (uint32_t r : g.always_evaluate) add_candidate(r);
  }
  for (uint32_t id : touched_) {
    for (uint32_t r : rs.rules_of_predicate_[id]) add_candidate(r);
  }
  const size_t first = out.size();
  for (uint32_t r : candidates_) {
    if (evaluate(r)) out.push_back(r);
  }
  std::sort(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
  return Status::ok();
}

}  // namespace vigil::match
