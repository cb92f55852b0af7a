#include "vigil/match/ruleset.h"

#include <arpa/inet.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>
#include <unordered_map>

namespace vigil::match {
namespace fs = std::filesystem;

std::vector<SigmaRule> load_rules(const std::vector<std::string>& paths, CompileReport& report) {
  std::vector<std::string> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      for (auto it = fs::recursive_directory_iterator(
               p, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        const auto ext = it->path().extension();
        if (it->is_regular_file(ec) && (ext == ".yml" || ext == ".yaml"))
          files.push_back(it->path().string());
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

// PCRE2 options with the meaning of Hyperscan flags (bytes, not UTF-8, as Hyperscan scans).
uint32_t pcre2_options(unsigned hs_flags) {
  uint32_t o = 0;
  if (hs_flags & HS_FLAG_CASELESS) o |= PCRE2_CASELESS;
  if (hs_flags & HS_FLAG_DOTALL) o |= PCRE2_DOTALL;
  if (hs_flags & HS_FLAG_MULTILINE) o |= PCRE2_MULTILINE;
  return o;
}

unsigned hs_flags(const Predicate& p) {
  unsigned flags = HS_FLAG_SINGLEMATCH;
  if (p.caseless) flags |= HS_FLAG_CASELESS;
  if (p.dotall) flags |= HS_FLAG_DOTALL;
  if (p.multiline) flags |= HS_FLAG_MULTILINE;
  if (p.user_regex) flags |= HS_FLAG_ALLOWEMPTY;
  return flags;
}

// Checks that Hyperscan accepts a pattern, without building a database. True: only as a
// prefilter (lookaround, backreferences), so every prefilter match is confirmed by PCRE2.
Expected<bool> check_pattern(const Predicate& p) {
  hs_expr_info_t* info = nullptr;
  hs_compile_error_t* err = nullptr;
  if (hs_expression_info(p.regex.c_str(), hs_flags(p), &info, &err) == HS_SUCCESS) {
    std::free(info);
    return false;
  }
  std::string msg = err ? err->message : "unknown error";
  hs_free_compile_error(err);
  err = nullptr;
  if (hs_expression_info(p.regex.c_str(), hs_flags(p) | HS_FLAG_PREFILTER, &info, &err) ==
      HS_SUCCESS) {
    std::free(info);
    int code = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.regex.data()), p.regex.size(),
                                   pcre2_options(hs_flags(p)), &code, &offset, nullptr);
    if (re != nullptr) {
      pcre2_code_free(re);
      return true;
    }
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(code, buf, sizeof buf);
    msg += "; PCRE2: " + std::string(reinterpret_cast<const char*>(buf));
  } else {
    hs_free_compile_error(err);
  }
  return Status::unsupported("field '" + p.field + "': pattern '" + p.regex +
                             "' is not supported (Hyperscan: " + msg + ")");
}

// The PCRE2 program that confirms a Hyperscan prefilter match of `regex`.
Expected<pcre2_code*> compile_confirm(const std::string& regex, unsigned hs_flags) {
  int code = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(regex.data()), regex.size(),
                                 pcre2_options(hs_flags), &code, &offset, nullptr);
  if (re == nullptr) return Status::internal("PCRE2 compile of '" + regex + "' failed");
  (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);  // the interpreter is the fallback
  return re;
}

// A value on which `re` hits the confirmation limits, described, if one of the classic
// catastrophic-backtracking shapes finds one: runs of each character the pattern names (and
// of the usual class members), of several lengths, followed by a character that makes the
// match fail at the end. Not a proof of safety, a net for the patterns (nested quantifiers,
// lookaheads over repeats) that a hostile event can exploit.
std::optional<std::string> backtracking_probe(pcre2_code* re, std::string_view regex,
                                              uint32_t match_limit, uint32_t depth_limit) {
  std::string chars = "a0 _-./\\";
  for (const char c : regex) {
    if (std::isalnum(static_cast<unsigned char>(c)) && chars.find(c) == std::string::npos) chars += c;
  }
  pcre2_match_context* limits = pcre2_match_context_create(nullptr);
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  if (limits == nullptr || data == nullptr) {
    pcre2_match_context_free(limits);
    pcre2_match_data_free(data);
    return std::nullopt;
  }
  pcre2_set_match_limit(limits, match_limit);
  pcre2_set_depth_limit(limits, depth_limit);
  std::optional<std::string> found;
  std::string subject;
  for (const size_t length : {30, 300, 3000}) {
    for (const char c : chars) {
      for (const char end : {'!', '\n', '\0'}) {
        subject.assign(length, c);
        subject += end;
        const int rc = pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), 0, 0, data,
                                   limits);
        if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT) {
          const std::string shown = c == ' ' ? "a space" : std::string("'") + c + "'";
          found = std::to_string(length) + " x " + shown + " then " +
                  (end == '!' ? "'!'" : end == '\n' ? "a newline" : "a NUL byte");
          break;
        }
      }
      if (found) break;
    }
    if (found) break;
  }
  pcre2_match_data_free(data);
  pcre2_match_context_free(limits);
  return found;
}

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
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

}  // namespace

RuleSet::~RuleSet() {
  for (auto& d : databases_) {
    hs_free_database(d.db);
    hs_free_database(d.literal_db);
  }
  for (auto* d : lazy_databases_) hs_free_database(d);
  for (auto& f : lazy_fields_) hs_free_database(f.db);
  for (auto* c : confirms_) pcre2_code_free(c);
  pcre2_match_context_free(confirm_limits_);
}

namespace {

// A condition leaf's global predicate: a set of patterns on one field (their OR), or a
// predicate evaluated without Hyperscan.
struct PredDef {
  bool pattern = true;
  std::vector<uint32_t> patterns;  // sorted pattern ids
  // Direct predicates:
  uint32_t group = 0, slot = 0, ref_slot = 0;
  Predicate::Kind kind = Predicate::Kind::kPattern;
  std::string operand;
};

struct PatternDef {
  uint32_t slot;
  std::string regex;
  unsigned flags;
  auto operator<=>(const PatternDef&) const = default;
};

// Trigger set of a condition: predicates at least one of which is true whenever the
// condition holds; nullopt when there is none (the condition can hold with every
// predicate false, as `not filter` does). Under `and`, the cheapest child's set is enough.
std::optional<std::vector<uint32_t>> trigger_set(const CondNode& n,
                                                 const std::vector<double>& cost) {
  switch (n.kind) {
    case CondNode::Kind::kPred:
      return std::vector<uint32_t>{n.index};
    case CondNode::Kind::kConst:
      return n.value ? std::nullopt : std::optional(std::vector<uint32_t>{});
    case CondNode::Kind::kNot:
      return std::nullopt;
    case CondNode::Kind::kOr:
    case CondNode::Kind::kAtLeast: {
      if (n.kind == CondNode::Kind::kAtLeast && n.index == 0) return std::nullopt;
      if (n.kind == CondNode::Kind::kAtLeast && n.index > n.children.size())
        return std::vector<uint32_t>{};
      std::vector<uint32_t> all;
      for (const auto& c : n.children) {
        auto t = trigger_set(c, cost);
        if (!t) return std::nullopt;
        all.insert(all.end(), t->begin(), t->end());
      }
      std::sort(all.begin(), all.end());
      all.erase(std::unique(all.begin(), all.end()), all.end());
      return all;
    }
    case CondNode::Kind::kAnd: {
      std::optional<std::vector<uint32_t>> best;
      double best_cost = 0;
      for (const auto& c : n.children) {
        auto t = trigger_set(c, cost);
        if (!t) continue;
        double sum = 0;
        for (uint32_t p : *t) sum += cost[p];
        if (!best || sum < best_cost) {
          best = std::move(t);
          best_cost = sum;
        }
      }
      return best;
    }
  }
  return std::nullopt;
}

// Flattens nested ORs and fuses the pattern leaves of an OR that test one field into one
// predicate (a list of values is one bit, one program instruction, not one per value).
void fuse_or_leaves(CondNode& n, std::vector<PredDef>& preds,
                    std::map<std::vector<uint32_t>, uint32_t>& pattern_preds,
                    const std::vector<PatternDef>& patterns) {
  for (auto& c : n.children) fuse_or_leaves(c, preds, pattern_preds, patterns);
  const bool any_of =
      n.kind == CondNode::Kind::kOr || (n.kind == CondNode::Kind::kAtLeast && n.index == 1);
  if (!any_of) return;
  std::vector<CondNode> flat;
  for (auto& c : n.children) {
    if (c.kind == CondNode::Kind::kOr) {
      for (auto& g : c.children) flat.push_back(std::move(g));
    } else {
      flat.push_back(std::move(c));
    }
  }
  std::map<uint32_t, std::vector<uint32_t>> by_slot;  // field slot -> patterns
  std::vector<CondNode> rest;
  for (auto& c : flat) {
    if (c.kind == CondNode::Kind::kPred && preds[c.index].pattern) {
      const auto& ps = preds[c.index].patterns;
      auto& into = by_slot[patterns[ps[0]].slot];
      into.insert(into.end(), ps.begin(), ps.end());
    } else {
      rest.push_back(std::move(c));
    }
  }
  for (auto& [slot, ps] : by_slot) {
    std::sort(ps.begin(), ps.end());
    ps.erase(std::unique(ps.begin(), ps.end()), ps.end());
    auto [it, fresh] = pattern_preds.emplace(ps, static_cast<uint32_t>(preds.size()));
    if (fresh) {
      PredDef d;
      d.patterns = ps;
      preds.push_back(std::move(d));
    }
    CondNode leaf;
    leaf.kind = CondNode::Kind::kPred;
    leaf.index = it->second;
    rest.push_back(std::move(leaf));
  }
  if (rest.size() == 1) {
    CondNode only = std::move(rest[0]);
    n = std::move(only);
    return;
  }
  n.kind = CondNode::Kind::kOr;
  n.index = 0;
  n.children = std::move(rest);
}

CondNode remap_leaves(const CondNode& n, const std::vector<uint32_t>& ids) {
  CondNode out;
  out.kind = n.kind;
  out.index = n.kind == CondNode::Kind::kPred ? ids[n.index] : n.index;
  out.value = n.value;
  for (const auto& c : n.children) out.children.push_back(remap_leaves(c, ids));
  return out;
}

}  // namespace

// The plain strings a pattern stands for: `\A`? literal bytes and groups of literal
// alternatives (windash) `\z`?, at most 64 variants. nullopt for anything else.
std::optional<std::vector<std::string>> literal_variants(const std::string& r, uint8_t& anchors) {
  constexpr size_t kMaxVariants = 64;
  anchors = 0;
  size_t i = 0, n = r.size();
  if (r.compare(0, 2, "\\A") == 0) {
    anchors |= 1;
    i = 2;
  }
  if (n >= i + 2 && r.compare(n - 2, 2, "\\z") == 0 && (n < 3 || r[n - 3] != '\\')) {
    anchors |= 2;
    n -= 2;
  }
  // One literal element at r[j]: a byte, written plainly or as \xNN.
  auto element = [&](size_t& j, std::string& out) {
    if (r.compare(j, 2, "\\x") == 0 && j + 4 <= n &&
        std::isxdigit(static_cast<unsigned char>(r[j + 2])) &&
        std::isxdigit(static_cast<unsigned char>(r[j + 3]))) {
      out += static_cast<char>(std::stoi(r.substr(j + 2, 2), nullptr, 16));
      j += 4;
      return true;
    }
    if (std::isalnum(static_cast<unsigned char>(r[j])) || r[j] == '_') {
      out += r[j++];
      return true;
    }
    return false;
  };
  std::vector<std::string> variants{""};
  while (i < n) {
    if (r.compare(i, 3, "(?:") == 0) {
      std::vector<std::string> alts{""};
      size_t j = i + 3;
      while (j < n && r[j] != ')') {
        if (r[j] == '|') {
          alts.emplace_back();
          ++j;
        } else if (!element(j, alts.back())) {
          return std::nullopt;
        }
      }
      if (j >= n) return std::nullopt;
      if (variants.size() * alts.size() > kMaxVariants) return std::nullopt;
      std::vector<std::string> next;
      for (const auto& v : variants) {
        for (const auto& a : alts) next.push_back(v + a);
      }
      variants = std::move(next);
      i = j + 1;
    } else {
      std::string one;
      if (!element(i, one)) return std::nullopt;
      for (auto& v : variants) v += one;
    }
  }
  for (const auto& v : variants) {
    if (v.empty()) return std::nullopt;
  }
  return variants;
}

Expected<std::shared_ptr<const RuleSet>> RuleSet::compile(const std::vector<SigmaRule>& rules,
                                                          const FieldMapping& mapping,
                                                          CompileReport& report) {
  std::shared_ptr<RuleSet> set(new RuleSet());
  if (hs_valid_platform() != HS_SUCCESS)
    return Status::unsupported("Hyperscan needs a CPU with SSSE3");

  for (const auto& ls : mapping.logsources()) {
    for (const auto& [path, values] : ls.where) {
      const uint32_t slot = set->fields_.add(path);
      auto it = std::find_if(set->where_fields_.begin(), set->where_fields_.end(),
                             [&](const auto& w) { return w.slot == slot; });
      if (it == set->where_fields_.end()) it = set->where_fields_.insert(it, WhereField{slot, {}});
      for (const auto& v : values) it->values.push_back(ascii_lower(v));
    }
  }
  for (auto& w : set->where_fields_) {
    std::sort(w.values.begin(), w.values.end());
    w.values.erase(std::unique(w.values.begin(), w.values.end()), w.values.end());
    for (size_t i = 0; i < w.values.size(); ++i) {
      w.ids.emplace(w.values[i], static_cast<int32_t>(i));
      w.longest = std::max(w.longest, w.values[i].size());
    }
  }
  for (const auto& ls : mapping.logsources()) {
    LogsourceCheck check;
    for (const auto& [path, values] : ls.where) {
      const uint32_t slot = set->fields_.add(path);
      const auto& wf = set->where_fields_;
      const auto w =
          std::find_if(wf.begin(), wf.end(), [&](const auto& x) { return x.slot == slot; }) -
          wf.begin();
      std::vector<int32_t> ids;
      for (const auto& v : values) {
        const auto& all = wf[static_cast<size_t>(w)].values;
        ids.push_back(static_cast<int32_t>(
            std::lower_bound(all.begin(), all.end(), ascii_lower(v)) - all.begin()));
      }
      check.where.emplace_back(static_cast<uint32_t>(w), std::move(ids));
    }
    set->logsources_.push_back(std::move(check));
  }
  if (!mapping.host_field().empty())
    set->host_slot_ = static_cast<int32_t>(set->fields_.add(mapping.host_field()));
  if (!mapping.time_field().empty())
    set->time_slot_ = static_cast<int32_t>(set->fields_.add(mapping.time_field()));

  // Pass 1: per rule, resolve logsource and fields, check its own patterns, and turn its
  // condition into a tree over global predicates.
  struct DirectKey {
    uint32_t group, slot;
    Predicate::Kind kind;
    std::string operand;
    uint32_t ref_slot;
    auto operator<=>(const DirectKey&) const = default;
  };
  std::map<PatternDef, uint32_t> pattern_ids;
  std::unordered_map<std::string, Expected<bool>> checked_patterns;  // regex '\0' flags -> check_pattern
  std::vector<PatternDef> patterns;
  std::vector<bool> prefilter;  // per pattern: Hyperscan runs it as a prefilter
  // Confirmed patterns that a crafted value drives into PCRE2's backtracking limit, with why.
  std::vector<std::pair<uint32_t, std::string>> risky_patterns;
  std::vector<PredDef> preds;
  std::map<std::vector<uint32_t>, uint32_t> pattern_pred_ids;
  std::map<DirectKey, uint32_t> direct_pred_ids;
  std::map<std::vector<uint32_t>, uint32_t> group_ids;
  struct PendingRule {
    const SigmaRule* rule;
    uint32_t group;
    CondNode condition;  // leaves are global predicate ids
    size_t report_index;  // its diagnostic in report.rules
  };
  std::vector<PendingRule> pending;
  std::set<std::string> seen_ids;

  std::vector<const SigmaRule*> correlation_rules;
  std::vector<std::unique_ptr<SigmaRule>> resolved_rules;  // with `expand` values resolved
  for (const SigmaRule& original : rules) {
    RuleDiagnostic diag{original.source, original.id, original.title, Status::ok(),
                        original.warnings};
    auto fail = [&](Status s) {
      diag.status = std::move(s);
      report.rules.push_back(diag);
      ++report.unsupported;
    };
    if (!seen_ids.insert(original.id).second) {
      fail(Status::invalid(original.source + ": duplicate rule id '" + original.id + "'"));
      continue;
    }
    if (original.correlation) {
      correlation_rules.push_back(&original);  // resolved once the base rules are compiled
      continue;
    }
    auto resolved = resolve_placeholders(original, mapping);
    if (!resolved) {
      fail(resolved.status());
      continue;
    }
    resolved_rules.push_back(std::make_unique<SigmaRule>(std::move(*resolved)));
    const SigmaRule& rule = *resolved_rules.back();
    auto ls = mapping.logsources_for(rule.logsource);
    if (ls.empty()) {
      fail(Status::unsupported(rule.source + ": logsource '" + rule.logsource.to_string() +
                               "' has no entry in mapping '" + mapping.name() + "'"));
      continue;
    }
    Status bad;
    std::vector<bool> needs_prefilter(rule.predicates.size(), false);
    for (size_t i = 0; i < rule.predicates.size() && bad.is_ok(); ++i) {
      const auto& p = rule.predicates[i];
      if (p.kind != Predicate::Kind::kPattern) continue;
      // Many rules share patterns, and each hs_expression_info call costs several cpuid
      // instructions inside Hyperscan (its target detection), which trap to the hypervisor
      // on a VM: one check per distinct pattern.
      std::string check_key = p.regex;
      check_key.push_back('\0');
      check_key += std::to_string(hs_flags(p));
      auto checked_it = checked_patterns.find(check_key);
      if (checked_it == checked_patterns.end()) {
        checked_it = checked_patterns.emplace(std::move(check_key), check_pattern(p)).first;
      }
      const Expected<bool>& mode = checked_it->second;
      if (!mode) {
        bad = Status(mode.status().code(), rule.source + ": " + mode.status().message());
      } else {
        needs_prefilter[i] = *mode;
      }
    }
    if (!bad.is_ok()) {
      fail(std::move(bad));
      continue;
    }
    auto [git, inserted] = group_ids.emplace(ls, static_cast<uint32_t>(set->groups_.size()));
    if (inserted) {
      set->groups_.emplace_back();
      set->groups_.back().logsources = ls;
    }
    const uint32_t group = git->second;
    std::vector<uint32_t> ids;  // local predicate index -> global predicate id
    for (size_t i = 0; i < rule.predicates.size(); ++i) {
      const auto& p = rule.predicates[i];
      const auto paths = p.field.empty() ? std::vector<std::string>{} : mapping.json_paths(p.field);
      const uint32_t slot = p.field.empty() ? kRawSlot : set->fields_.add(paths[0]);
      for (size_t j = 1; j < paths.size(); ++j) {
        if (!set->fields_.add_alias(paths[j], slot)) {
          bad = Status::invalid(rule.source + ": field '" + p.field + "' maps to '" + paths[j] +
                                "', which another field already uses");
        }
      }
      if (p.kind == Predicate::Kind::kPattern) {
        const unsigned flags = hs_flags(p) | (needs_prefilter[i] ? HS_FLAG_PREFILTER : 0);
        auto [pit, fresh_pattern] = pattern_ids.emplace(PatternDef{slot, p.regex, flags},
                                                        static_cast<uint32_t>(patterns.size()));
        if (fresh_pattern) {
          patterns.push_back(pit->first);
          prefilter.push_back(needs_prefilter[i]);
        }
        const std::vector<uint32_t> key{pit->second};
        auto [it, fresh] = pattern_pred_ids.emplace(key, static_cast<uint32_t>(preds.size()));
        if (fresh) {
          PredDef d;
          d.patterns = key;
          preds.push_back(std::move(d));
        }
        ids.push_back(it->second);
        continue;
      }
      uint32_t ref_slot = 0;
      if (p.kind == Predicate::Kind::kFieldRef) {
        const auto ref_paths = mapping.json_paths(p.operand);
        ref_slot = set->fields_.add(ref_paths[0]);
        for (size_t j = 1; j < ref_paths.size(); ++j)
          (void)set->fields_.add_alias(ref_paths[j], ref_slot);
      }
      auto [it, fresh] = direct_pred_ids.emplace(
          DirectKey{group, slot, p.kind, p.operand, ref_slot}, static_cast<uint32_t>(preds.size()));
      if (fresh) {
        PredDef d;
        d.pattern = false;
        d.group = group;
        d.slot = slot;
        d.kind = p.kind;
        d.operand = p.operand;
        d.ref_slot = ref_slot;
        preds.push_back(std::move(d));
      }
      ids.push_back(it->second);
    }
    if (!bad.is_ok()) {
      fail(std::move(bad));
      continue;
    }
    pending.push_back({&rule, group, remap_leaves(rule.condition, ids), report.rules.size()});
    report.rules.push_back(diag);
  }
  for (auto& pr : pending) fuse_or_leaves(pr.condition, preds, pattern_pred_ids, patterns);
  set->predicate_count_ = preds.size();
  std::vector<std::vector<uint32_t>> rules_of_predicate(preds.size());
  set->predicate_slot_.resize(preds.size());
  for (uint32_t id = 0; id < preds.size(); ++id) {
    const PredDef& d = preds[id];
    // kMissing holds when the field is absent: it points at nothing in the event.
    set->predicate_slot_[id] = d.pattern                            ? patterns[d.patterns[0]].slot
                               : d.kind == Predicate::Kind::kMissing ? kNoSlot
                                                                    : d.slot;
  }

  // Regexes that are not plain strings cost a Hyperscan database every event of their field
  // scans whatever the rest of the rule says (the tree's `CommandLine` regexes alone were a
  // ninth of an event's matching time). A regex whose rules can be triggered by another
  // predicate is lazy: it is left out of the field's database and, in a database of its own,
  // scanned only when a rule using it is evaluated (see Matcher::resolve).
  constexpr double kRegexTriggerCost = 1e4;  // above other patterns and comparisons, below `exists`
  //
  // A plain string's chance of occurring in a value falls with its length: a short one
  // (`/c`, or a two-byte homoglyph) is found in many events and, as a trigger, makes its
  // rules candidates for most of them. Its price is weighed by that chance, halved for
  // every two bytes (an anchor counts as two bytes; 12 bytes weigh 1), and by its number
  // of variants.
  // Length is a poor guide for pieces of what nearly every Windows event holds (`\Windows\`
  // in a path, `Microsoft Corporation` as the company, `.exe`): those are priced as a
  // one-byte string, whatever their anchors.
  static constexpr std::string_view kCommonText[] = {
      "c:\\windows\\system32\\", "c:\\windows\\syswow64\\", "c:\\program files (x86)\\",
      "c:\\programdata\\",        "c:\\users\\",               "\\appdata\\local\\temp\\",
      "\\appdata\\roaming\\",     "microsoft corporation",   "nt authority\\system",
      "\\device\\harddiskvolume", ".exe", ".dll"};
  auto common = [](const std::string& literal) {
    const std::string lower = ascii_lower(literal);
    return std::any_of(std::begin(kCommonText), std::end(kCommonText),
                       [&](std::string_view t) { return t.find(lower) != std::string_view::npos; });
  };
  // Per pattern, the plain strings it stands for (nullopt: a regex) and their anchors.
  std::vector<std::optional<std::vector<std::string>>> variants_of(patterns.size());
  std::vector<uint8_t> anchors_of(patterns.size(), 0);
  std::vector<bool> lazy_candidate(patterns.size(), false);  // a regex, not a prefilter
  std::vector<bool> plain(patterns.size(), false);           // plain strings
  std::vector<double> chance(patterns.size(), 1);
  for (uint32_t pat = 0; pat < patterns.size(); ++pat) {
    if (!prefilter[pat]) variants_of[pat] = literal_variants(patterns[pat].regex, anchors_of[pat]);
    const auto& variants = variants_of[pat];
    const uint8_t anchors = anchors_of[pat];
    lazy_candidate[pat] = !prefilter[pat] && !variants;
    plain[pat] = variants.has_value();
    if (variants) {
      size_t shortest = SIZE_MAX;
      bool any_common = false;
      for (const auto& v : *variants) {
        shortest = std::min(shortest, v.size());
        any_common = any_common || common(v);
      }
      const size_t bytes = shortest + (anchors & kAnchorStart ? 2 : 0) + (anchors & kAnchorEnd ? 2 : 0);
      chance[pat] = static_cast<double>(variants->size()) *
                    (any_common ? 64.0 : std::exp2((12.0 - static_cast<double>(bytes)) / 2));
    }
  }
  // Trigger sets: a rule is evaluated for an event only when one of its trigger predicates
  // holds. The cost of a predicate estimates how often it holds: patterns shared by many
  // rules (`\cmd.exe`) are common, field presence tests are nearly always true.
  std::vector<double> pattern_users(patterns.size(), 0);
  std::vector<double> cost(preds.size(), 0);
  for (const auto& pr : pending) {
    auto count = [&](auto&& self, const CondNode& n) -> void {
      if (n.kind == CondNode::Kind::kPred && preds[n.index].pattern) {
        for (uint32_t pat : preds[n.index].patterns) pattern_users[pat] += 1;
      }
      for (const auto& c : n.children) self(self, c);
    };
    count(count, pr.condition);
  }
  for (uint32_t id = 0; id < preds.size(); ++id) {
    const PredDef& d = preds[id];
    if (d.pattern) {
      // A lazy-able regex as a trigger costs a scan of its field for every event: it is
      // chosen only over predicates that hold for nearly every event.
      for (uint32_t pat : d.patterns) {
        cost[id] += lazy_candidate[pat] ? kRegexTriggerCost : (1 + pattern_users[pat]) * chance[pat];
      }
    } else if (d.kind == Predicate::Kind::kExists || d.kind == Predicate::Kind::kMissing ||
               d.kind == Predicate::Kind::kEmpty) {
      cost[id] = 1e6;
    } else {
      cost[id] = 1e3;
    }
  }

  std::vector<std::optional<std::vector<uint32_t>>> triggers;
  std::vector<bool> trigger_pred(preds.size(), false);
  for (const PendingRule& pr : pending) {
    triggers.push_back(trigger_set(pr.condition, cost));
    if (triggers.back()) {
      for (uint32_t p : *triggers.back()) trigger_pred[p] = true;
    }
  }

  // Pass 2: the patterns' predicates, one Hyperscan database per field, PCRE2 for prefilters.
  std::vector<std::vector<uint32_t>> preds_of_pattern(patterns.size());
  for (uint32_t id = 0; id < preds.size(); ++id) {
    const PredDef& d = preds[id];
    if (d.pattern) {
      for (uint32_t pat : d.patterns) preds_of_pattern[pat].push_back(id);
      continue;
    }
    DirectPredicate dp{id, d.slot, d.kind};
    dp.ref_slot = d.ref_slot;
    if (d.kind == Predicate::Kind::kCidr) {
      // The parser validated the network; keep the address and prefix length.
      const size_t slash = d.operand.find('/');
      const std::string addr = d.operand.substr(0, slash);
      dp.v6 = addr.find(':') != std::string::npos;
      inet_pton(dp.v6 ? AF_INET6 : AF_INET, addr.c_str(), dp.network);
      dp.prefix_bits =
          slash == std::string::npos ? (dp.v6 ? 128 : 32) : std::stoi(d.operand.substr(slash + 1));
    } else if (d.kind != Predicate::Kind::kFieldRef) {
      std::from_chars(d.operand.data(), d.operand.data() + d.operand.size(), dp.number);
    }
    set->groups_[d.group].direct.push_back(dp);
  }
  // Lazy: regexes and plain strings no rule needs as a trigger (see Matcher::resolve).
  std::vector<bool> lazy(patterns.size(), false);
  for (uint32_t pat = 0; pat < patterns.size(); ++pat) {
    lazy[pat] = (lazy_candidate[pat] || plain[pat]) &&
                std::none_of(preds_of_pattern[pat].begin(), preds_of_pattern[pat].end(),
                             [&](uint32_t pred) { return trigger_pred[pred]; });
  }
  // Which groups use each pattern.
  std::vector<std::set<uint32_t>> pattern_groups(patterns.size());
  for (const auto& pr : pending) {
    auto collect = [&](auto&& self, const CondNode& n) -> void {
      if (n.kind == CondNode::Kind::kPred && preds[n.index].pattern) {
        for (uint32_t pat : preds[n.index].patterns) pattern_groups[pat].insert(pr.group);
      }
      for (const auto& c : n.children) self(self, c);
    };
    collect(collect, pr.condition);
  }
  // One database per (field, mapping logsource): an event scans the databases of its active
  // logsources, which hold only the patterns of rules that apply to them (a process creation
  // event does not scan Image with the patterns of image_load rules, nor its raw text with
  // the keywords of Linux rules). A pattern of several logsources is in each one's database.
  // A database is keyed by (field slot, the logsources whose events scan it).
  //
  // Keywords are the exception: they scan the whole raw event, and the same keywords (those
  // of rules for a whole product) would be scanned once per active logsource. A keyword is
  // in one database for its set of logsources, which every event of any of them scans once.
  using DbKey = std::pair<uint32_t, std::set<uint32_t>>;
  auto db_keys = [&](uint32_t pat) {
    std::set<uint32_t> ls;
    for (uint32_t g : pattern_groups[pat])
      ls.insert(set->groups_[g].logsources.begin(), set->groups_[g].logsources.end());
    if (patterns[pat].slot == kRawSlot) return std::vector<DbKey>{{kRawSlot, std::move(ls)}};
    std::vector<DbKey> keys;
    for (uint32_t l : ls) keys.push_back({patterns[pat].slot, {l}});
    return keys;
  };
  // Scan patterns (Hyperscan ids): one per regex, one per variant of a plain string.
  std::map<DbKey, std::vector<uint32_t>> regex_ids, literal_ids;  // database -> scan patterns
  std::map<uint32_t, uint32_t> regex_pattern;                     // scan pattern -> pattern
  std::vector<std::string> literals;                              // per scan pattern, literals only
  std::vector<std::vector<LazyCheck>> lazy_checks_of(patterns.size());  // per lazy pattern
  std::vector<unsigned> literal_flags;
  std::map<uint32_t, uint32_t> lazy_field_of_slot;      // field slot -> index in lazy_fields_
  std::vector<std::vector<uint32_t>> lazy_field_ids;  // per lazy field: its scan patterns
  for (uint32_t pat = 0; pat < patterns.size(); ++pat) {
    Pattern p{static_cast<uint32_t>(set->pattern_preds_.size()), 0, -1};
    set->pattern_preds_.insert(set->pattern_preds_.end(), preds_of_pattern[pat].begin(),
                               preds_of_pattern[pat].end());
    p.preds_end = static_cast<uint32_t>(set->pattern_preds_.size());
    const PatternDef& def = patterns[pat];
    const uint8_t anchors = anchors_of[pat];
    auto& variants = variants_of[pat];  // moved from: its strings become scan patterns
    const auto keys = db_keys(pat);
    if (variants) {
      for (auto& v : *variants) {
        const auto scan_id = static_cast<uint32_t>(set->patterns_.size());
        Pattern lit = p;
        lit.anchors = anchors;
        lit.length = static_cast<uint32_t>(v.size());
        if (lazy[pat]) {
          auto [field, fresh_field] = lazy_field_of_slot.emplace(
              def.slot, static_cast<uint32_t>(set->lazy_fields_.size()));
          if (fresh_field) {
            set->lazy_fields_.push_back({def.slot, nullptr});
            lazy_field_ids.emplace_back();
          }
          const bool caseless = (def.flags & HS_FLAG_CASELESS) != 0;
          lit.lazy_literal = static_cast<int32_t>(set->lazy_literals_.size());
          LazyLiteral ll{static_cast<uint32_t>(set->lazy_text_.size()),
                         static_cast<uint32_t>(v.size()), field->second, anchors, caseless};
          const std::string lower = ascii_lower(v);
          if (caseless && anchors == 0 && lower.size() >= 2) {
            // Pairs spread over the string (fewer if it is short).
            const size_t last = lower.size() - 2;
            constexpr size_t kPairs = std::size(LazyLiteral{}.pairs);
            for (size_t k = 0; k < kPairs; ++k) {
              const size_t at = k * last / (kPairs - 1);
              const uint16_t pr = PairFilter::pair(static_cast<unsigned char>(lower[at]),
                                                   static_cast<unsigned char>(lower[at + 1]));
              if (std::find(ll.pairs, ll.pairs + ll.pair_count, pr) == ll.pairs + ll.pair_count) {
                ll.pairs[ll.pair_count++] = pr;
              }
            }
          }
          set->lazy_literals_.push_back(ll);
          set->lazy_text_ += caseless ? lower : v;
          lazy_field_ids[field->second].push_back(scan_id);
          lazy_checks_of[pat].push_back({lit.lazy_literal, -1, def.slot});
        } else {
          for (const auto& k : keys) literal_ids[k].push_back(scan_id);
        }
        literals.resize(scan_id);
        literal_flags.resize(scan_id);
        literals.push_back(std::move(v));
        // Anchored literals need every occurrence: the first may not be at the anchor.
        literal_flags.push_back((def.flags & HS_FLAG_CASELESS) |
                                (anchors ? 0 : HS_FLAG_SINGLEMATCH));
        set->patterns_.push_back(lit);
      }
      continue;
    }
    if (lazy[pat]) {
      hs_compile_error_t* err = nullptr;
      hs_database_t* db = nullptr;
      if (hs_compile(def.regex.c_str(), def.flags, HS_MODE_BLOCK, nullptr, &db, &err) != HS_SUCCESS) {
        const std::string msg = err ? err->message : "unknown error";
        hs_free_compile_error(err);
        return Status::internal("Hyperscan compile of pattern '" + def.regex + "' failed: " + msg);
      }
      lazy_checks_of[pat].push_back(
          {-1, static_cast<int32_t>(set->lazy_databases_.size()), def.slot});
      set->lazy_databases_.push_back(db);
      continue;
    }
    if (prefilter[pat]) {
      auto code = compile_confirm(def.regex, def.flags);
      if (!code) return code.status();
      if (auto sample = backtracking_probe(*code, def.regex, kConfirmMatchLimit, kConfirmDepthLimit)) {
        risky_patterns.emplace_back(static_cast<uint32_t>(set->patterns_.size()),
                                    "regex '" + def.regex + "' hits PCRE2's backtracking limit on " + *sample +
                                        ": an event holding such a value could not be matched by this rule");
      }
      p.confirm = static_cast<int32_t>(set->confirms_.size());
      set->confirms_.push_back(*code);
      if (set->confirm_limits_ == nullptr) {
        set->confirm_limits_ = pcre2_match_context_create(nullptr);
        if (set->confirm_limits_ == nullptr)
          return Status::internal("PCRE2 match context allocation failed");
        pcre2_set_match_limit(set->confirm_limits_, kConfirmMatchLimit);
        pcre2_set_depth_limit(set->confirm_limits_, kConfirmDepthLimit);
      }
    }
    for (const auto& k : keys) regex_ids[k].push_back(static_cast<uint32_t>(set->patterns_.size()));
    regex_pattern[set->patterns_.size()] = pat;
    set->patterns_.push_back(p);
  }
  set->logsource_databases_.assign(set->logsources_.size(), {});
  std::set<DbKey> dbs;
  for (const auto& [key, ids] : regex_ids) dbs.insert(key);
  for (const auto& [key, ids] : literal_ids) dbs.insert(key);
  for (const DbKey& key : dbs) {
    const uint32_t slot = key.first;
    const std::string name = slot == kRawSlot ? "keywords" : set->fields_.path(slot);
    Database database{slot, nullptr, nullptr};
    hs_compile_error_t* err = nullptr;
    // Every pattern passed hs_expression_info, so a failure is one of resources.
    auto failed = [&]() {
      std::string msg = err ? err->message : "unknown error";
      hs_free_compile_error(err);
      hs_free_database(database.db);
      hs_free_database(database.literal_db);
      return Status::internal("Hyperscan compile of field '" + name + "' failed: " + msg);
    };
    if (auto it = regex_ids.find(key); it != regex_ids.end()) {
      std::vector<const char*> exprs;
      std::vector<unsigned> flags;
      for (uint32_t id : it->second) {
        exprs.push_back(patterns[regex_pattern[id]].regex.c_str());
        flags.push_back(patterns[regex_pattern[id]].flags);
      }
      if (hs_compile_multi(exprs.data(), flags.data(), it->second.data(),
                           static_cast<unsigned>(exprs.size()), HS_MODE_BLOCK, nullptr,
                           &database.db, &err) != HS_SUCCESS) {
        return failed();
      }
    }
    if (auto it = literal_ids.find(key); it != literal_ids.end()) {
      std::vector<const char*> exprs;
      std::vector<size_t> lengths;
      std::vector<unsigned> flags;
      for (uint32_t id : it->second) {
        exprs.push_back(literals[id].data());
        lengths.push_back(literals[id].size());
        flags.push_back(literal_flags[id]);
      }
      if (hs_compile_lit_multi(exprs.data(), flags.data(), it->second.data(), lengths.data(),
                               static_cast<unsigned>(exprs.size()), HS_MODE_BLOCK, nullptr,
                               &database.literal_db, &err) != HS_SUCCESS) {
        return failed();
      }
    }
    const uint32_t index = static_cast<uint32_t>(set->databases_.size());
    set->databases_.push_back(std::move(database));
    for (const uint32_t ls : key.second) set->logsource_databases_[ls].push_back(index);
  }

  for (uint32_t f = 0; f < set->lazy_fields_.size(); ++f) {
    std::vector<const char*> exprs;
    std::vector<size_t> lengths;
    std::vector<unsigned> flags;
    for (uint32_t id : lazy_field_ids[f]) {
      exprs.push_back(literals[id].data());
      lengths.push_back(literals[id].size());
      flags.push_back(literal_flags[id]);
    }
    hs_compile_error_t* err = nullptr;
    if (hs_compile_lit_multi(exprs.data(), flags.data(), lazy_field_ids[f].data(), lengths.data(),
                             static_cast<unsigned>(exprs.size()), HS_MODE_BLOCK, nullptr,
                             &set->lazy_fields_[f].db, &err) != HS_SUCCESS) {
      const std::string msg = err ? err->message : "unknown error";
      hs_free_compile_error(err);
      const uint32_t slot = set->lazy_fields_[f].slot;
      return Status::internal("Hyperscan compile of the lazy strings of " +
                              (slot == kRawSlot ? std::string("keywords") : set->fields_.path(slot)) +
                              " failed: " + msg);
    }
  }
  // Per predicate, its lazy plain strings first: a direct comparison is cheaper than a scan.
  set->lazy_of_predicate_.assign(preds.size(), {0, 0});
  for (uint32_t id = 0; id < preds.size(); ++id) {
    const auto begin = static_cast<uint32_t>(set->lazy_checks_.size());
    for (const bool strings : {true, false}) {
      for (uint32_t pat : preds[id].patterns) {
        if (!preds[id].pattern || !lazy[pat] || plain[pat] != strings) continue;
        set->lazy_checks_.insert(set->lazy_checks_.end(), lazy_checks_of[pat].begin(),
                                 lazy_checks_of[pat].end());
      }
    }
    set->lazy_of_predicate_[id] = {begin, static_cast<uint32_t>(set->lazy_checks_.size())};
  }

  // Condition programs.
  for (const PendingRule& pr : pending) {
    const uint32_t rule_index = static_cast<uint32_t>(set->rules_.size());
    CompiledRule cr{pr.group, static_cast<uint32_t>(set->program_.size()), 0};
    cr.positive_begin = static_cast<uint32_t>(set->positive_preds_.size());
    // The predicates that can have made the rule match: those outside any `not`, in the
    // condition's order.
    auto positives = [&](auto&& self, const CondNode& n, bool negated) -> void {
      if (n.kind == CondNode::Kind::kPred && !negated) {
        const auto first = set->positive_preds_.begin() + cr.positive_begin;
        if (std::find(first, set->positive_preds_.end(), n.index) == set->positive_preds_.end())
          set->positive_preds_.push_back(n.index);
      }
      const bool child_negated = n.kind == CondNode::Kind::kNot ? !negated : negated;
      for (const auto& c : n.children) self(self, c, child_negated);
    };
    positives(positives, pr.condition, false);
    // Whether a subtree reads a lazy predicate, which evaluating it may have to check.
    auto reads_lazy = [&](auto&& self, const CondNode& n) -> bool {
      if (n.kind == CondNode::Kind::kPred) {
        const auto [begin, end] = set->lazy_of_predicate_[n.index];
        return begin != end;
      }
      return std::any_of(n.children.begin(), n.children.end(),
                         [&](const CondNode& c) { return self(self, c); });
    };
    // Prefix order, each instruction with the end of its subtree, so that evaluation can
    // stop at the first child that decides and skip the rest. An operator's children that
    // read no lazy predicate come first: they often decide it, and cost no check.
    auto emit = [&](auto&& self, const CondNode& n) -> void {
      const auto at = static_cast<uint32_t>(set->program_.size());
      switch (n.kind) {
        case CondNode::Kind::kPred:
          set->program_.push_back({Op::kPred, n.index, reads_lazy(reads_lazy, n) ? 1u : 0u, 0});
          break;
        case CondNode::Kind::kConst:
          set->program_.push_back({n.value ? Op::kTrue : Op::kFalse, 0, 0, 0});
          break;
        case CondNode::Kind::kNot:
          set->program_.push_back({Op::kNot, 0, 0, 0});
          self(self, n.children[0]);
          break;
        case CondNode::Kind::kAnd:
        case CondNode::Kind::kOr:
        case CondNode::Kind::kAtLeast: {
          const Op op = n.kind == CondNode::Kind::kAnd  ? Op::kAnd
                        : n.kind == CondNode::Kind::kOr ? Op::kOr
                                                        : Op::kAtLeast;
          set->program_.push_back({op, static_cast<uint32_t>(n.children.size()), n.index, 0});
          std::vector<const CondNode*> order;
          for (const auto& c : n.children) order.push_back(&c);
          std::stable_partition(order.begin(), order.end(),
                                [&](const CondNode* c) { return !reads_lazy(reads_lazy, *c); });
          for (const CondNode* c : order) self(self, *c);
          break;
        }
      }
      set->program_[at].end = static_cast<uint32_t>(set->program_.size());
    };
    emit(emit, pr.condition);
    cr.program_end = static_cast<uint32_t>(set->program_.size());
    cr.positive_end = static_cast<uint32_t>(set->positive_preds_.size());
    set->compiled_.push_back(cr);
    set->rules_.push_back(
        {pr.rule->id, pr.rule->title, pr.rule->level, pr.rule->tags, pr.rule->source});
    if (const auto& rule_triggers = triggers[rule_index]) {
      for (uint32_t p : *rule_triggers) rules_of_predicate[p].push_back(rule_index);
    } else {
      set->groups_[pr.group].always_evaluate.push_back(rule_index);
    }
  }
  std::vector<std::string> names;
  for (const auto& pr : pending) names.push_back(pr.rule->name);
  set->compile_correlations(correlation_rules, names, mapping, report);
  set->trigger_runs_of_predicate_.reserve(preds.size() + 1);
  for (auto& users : rules_of_predicate) {
    set->trigger_runs_of_predicate_.push_back(static_cast<uint32_t>(set->trigger_runs_.size()));
    std::sort(users.begin(), users.end(), [&](uint32_t a, uint32_t b) {
      return std::pair(set->compiled_[a].group, a) < std::pair(set->compiled_[b].group, b);
    });
    users.erase(std::unique(users.begin(), users.end()), users.end());
    for (const uint32_t r : users) {
      const uint32_t group = set->compiled_[r].group;
      if (set->trigger_runs_.empty() ||
          set->trigger_runs_of_predicate_.back() == set->trigger_runs_.size() ||
          set->trigger_runs_.back().group != group) {
        const auto at = static_cast<uint32_t>(set->trigger_rules_.size());
        set->trigger_runs_.push_back({group, at, at});
      }
      set->trigger_rules_.push_back(r);
      ++set->trigger_runs_.back().end;
    }
  }
  set->trigger_runs_of_predicate_.push_back(static_cast<uint32_t>(set->trigger_runs_.size()));
  set->index_predicate_users();
  for (const auto& [pattern, why] : risky_patterns) {
    const Pattern& pat = set->patterns_[pattern];
    for (uint32_t i = pat.preds_begin; i < pat.preds_end; ++i) {
      const uint32_t pred = set->pattern_preds_[i];
      for (uint32_t u = set->users_begin_[pred]; u < set->users_begin_[pred + 1]; ++u) {
        auto& risks = report.rules[pending[set->predicate_users_[u]].report_index].risks;
        if (std::find(risks.begin(), risks.end(), why) == risks.end()) risks.push_back(why);
      }
    }
  }
  report.compiled += set->compiled_.size() + set->correlations_.size();
  size_t where_ids = 0;
  for (const auto& w : set->where_fields_) {
    set->first_where_base_.push_back(static_cast<uint32_t>(where_ids));
    where_ids += w.values.size();
  }
  set->logsources_by_first_where_.assign(where_ids, {});
  for (uint32_t ls = 0; ls < set->logsources_.size(); ++ls) {
    const auto& where = set->logsources_[ls].where;
    if (where.empty()) {
      set->unconditional_logsources_.push_back(ls);
      continue;
    }
    for (const int32_t id : where.front().second) {
      set->logsources_by_first_where_[set->first_where_base_[where.front().first] + static_cast<uint32_t>(id)].push_back(ls);
    }
  }
  set->groups_of_logsource_.assign(set->logsources_.size(), {});
  for (uint32_t g = 0; g < set->groups_.size(); ++g) {
    for (const uint32_t ls : set->groups_[g].logsources) set->groups_of_logsource_[ls].push_back(g);
  }
  return std::shared_ptr<const RuleSet>(std::move(set));
}

void RuleSet::compile_correlations(const std::vector<const SigmaRule*>& correlation_rules,
                                   const std::vector<std::string>& names,
                                   const FieldMapping& mapping, CompileReport& report) {
  correlations_of_rule_.assign(rules_.size(), {});
  // A base rule is found by its id or its name.
  auto find_base = [&](const std::string& ref) -> int64_t {
    for (size_t i = 0; i < rules_.size(); ++i) {
      if (rules_[i].id == ref || (!names[i].empty() && names[i] == ref))
        return static_cast<int64_t>(i);
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
    CompiledCorrelation cc{
        {rule->id, rule->title, rule->level, rule->tags, rule->source, true}, spec, {}, {}, {}};
    Status bad;
    for (const auto& ref : spec.rules) {
      const int64_t base = find_base(ref);
      if (base < 0) {
        const bool other =
            std::any_of(correlation_rules.begin(), correlation_rules.end(),
                        [&](const SigmaRule* c) { return c->id == ref || c->name == ref; });
        bad = other
                  ? Status::unsupported(rule->source + ": references correlation rule '" + ref +
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
          bad = Status::invalid(rule->source + ": alias '" + alias + "' names rule '" + ref +
                                "', which the correlation does not use");
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
            auto it = std::find_if(per_rule.begin(), per_rule.end(),
                                   [&](const auto& pr) { return pr.first == spec.rules[b]; });
            if (it == per_rule.end()) {
              bad = Status::invalid(rule->source + ": alias '" + alias +
                                    "' has no field for rule '" + spec.rules[b] + "'");
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

bool Matcher::at_anchors(uint8_t anchors, size_t length, unsigned long long to, size_t scanned) {
  return (!(anchors & RuleSet::kAnchorStart) || to == length) &&
         (!(anchors & RuleSet::kAnchorEnd) || to == scanned);
}

void RuleSet::index_predicate_users() {
  std::vector<std::vector<uint32_t>> users(predicate_count_);
  for (uint32_t r = 0; r < compiled_.size(); ++r) {
    for (uint32_t pc = compiled_[r].program_begin; pc < compiled_[r].program_end; ++pc) {
      if (program_[pc].op == Op::kPred) users[program_[pc].arg].push_back(r);
    }
  }
  users_begin_.clear();
  predicate_users_.clear();
  for (auto& u : users) {
    users_begin_.push_back(static_cast<uint32_t>(predicate_users_.size()));
    std::sort(u.begin(), u.end());
    u.erase(std::unique(u.begin(), u.end()), u.end());
    predicate_users_.insert(predicate_users_.end(), u.begin(), u.end());
  }
  users_begin_.push_back(static_cast<uint32_t>(predicate_users_.size()));
}

Expected<std::unique_ptr<Matcher>> Matcher::create(std::shared_ptr<const RuleSet> rules) {
  std::unique_ptr<Matcher> m(new Matcher(std::move(rules)));
  const RuleSet& rs = *m->rules_;
  for (const auto& d : rs.databases_) {
    for (const hs_database_t* db : {d.db, d.literal_db}) {
      if (db != nullptr && hs_alloc_scratch(db, &m->scratch_) != HS_SUCCESS) {
        return Status::internal("Hyperscan scratch allocation failed");
      }
    }
  }
  for (const hs_database_t* db : rs.lazy_databases_) {
    if (hs_alloc_scratch(db, &m->scratch_) != HS_SUCCESS) {
      return Status::internal("Hyperscan scratch allocation failed");
    }
  }
  for (const auto& f : rs.lazy_fields_) {
    if (hs_alloc_scratch(f.db, &m->scratch_) != HS_SUCCESS) {
      return Status::internal("Hyperscan scratch allocation failed");
    }
  }
  m->resolved_epoch_.assign(rs.predicate_count_, 0);
  m->literal_hit_.assign(rs.lazy_literals_.size(), 0);
  m->lazy_fields_.assign(rs.lazy_fields_.size(), {});
  m->pair_bits_.assign(rs.lazy_fields_.size() * RuleSet::PairFilter::kWords, 0);
  m->lower_.reserve(RuleSet::kLazyDirectBudget);
  m->lazy_epoch_.assign(rs.lazy_databases_.size(), 0);
  m->lazy_hit_.assign(rs.lazy_databases_.size(), 0);
  if (!rs.confirms_.empty()) {
    m->match_data_ = pcre2_match_data_create(1, nullptr);
    if (m->match_data_ == nullptr) return Status::internal("PCRE2 match data allocation failed");
  }
  m->to_confirm_.reserve(rs.confirms_.size());
  m->bits_.assign(rs.predicate_count_, 0);
  m->touched_.ids.resize(rs.predicate_count_);
  m->active_logsource_.assign(rs.logsources_.size(), 0);
  m->active_logsources_.reserve(rs.logsources_.size());
  m->active_group_.assign(rs.groups_.size(), 0);
  m->active_groups_.reserve(rs.groups_.size());
  m->where_value_.assign(rs.where_fields_.size(), -1);
  m->database_epoch_.assign(rs.databases_.size(), 0);
  m->rule_epoch_.assign(rs.compiled_.size(), 0);
  m->candidates_.ids.resize(rs.compiled_.size());
  m->failed_epoch_.assign(rs.compiled_.size(), 0);
  m->failed_rules_.reserve(rs.compiled_.size());
  m->failed_preds_.reserve(rs.predicate_count_);
  return m;
}

std::string Matcher::last_failure() const {
  const RuleSet& rs = *rules_;
  const std::string field = last_failure_.field == RuleSet::kRawSlot
                                ? "the raw event"
                                : "field '" + rs.fields_.path(last_failure_.field) + "'";
  const int rc = last_failure_.code;
  const bool limit = rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT;
  return "PCRE2 confirmation on " + field +
         (limit ? " stopped at its backtracking limit" : " failed with error " + std::to_string(rc));
}

Matcher::~Matcher() {
  hs_free_scratch(scratch_);
  pcre2_match_data_free(match_data_);
}

void Matcher::matched_fields(uint32_t rule, std::vector<uint32_t>& slots) {
  const RuleSet& rs = *rules_;
  const auto& cr = rs.compiled_[rule];
  for (uint32_t i = cr.positive_begin; i < cr.positive_end; ++i) {
    const uint32_t pred = rs.positive_preds_[i];
    // The match may not have needed it. (A failing scan here leaves it out of the list;
    // the match itself was decided without it.)
    if (event_ != nullptr && unresolved(pred)) resolve(pred);
    const uint32_t slot = rs.predicate_slot_[pred];
    if (!bits_[pred] || slot == RuleSet::kNoSlot) continue;
    if (std::find(slots.begin(), slots.end(), slot) == slots.end()) slots.push_back(slot);
  }
}

bool Matcher::evaluate(uint32_t rule) { return run(rules_->compiled_[rule].program_begin); }

bool Matcher::run(uint32_t pc) {
  const RuleSet::Instr& in = rules_->program_[pc];
  switch (in.op) {
    case RuleSet::Op::kPred:
      if (bits_[in.arg]) return true;
      if (in.k == 0 || resolved_epoch_[in.arg] == epoch_) return false;  // no lazy pattern left
      resolve(in.arg);
      return bits_[in.arg];
    case RuleSet::Op::kTrue:
      return true;
    case RuleSet::Op::kFalse:
      return false;
    case RuleSet::Op::kNot:
      return !run(pc + 1);
    case RuleSet::Op::kAnd:
    case RuleSet::Op::kOr:
    case RuleSet::Op::kAtLeast: {
      // How many children must hold: all (and), one (or), k (at least k).
      const uint32_t need = in.op == RuleSet::Op::kAnd  ? in.arg
                            : in.op == RuleSet::Op::kOr ? 1
                                                        : in.k;
      uint32_t ones = 0, left = in.arg;
      for (uint32_t child = pc + 1; left > 0; child = rules_->program_[child].end) {
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

bool Matcher::unresolved(uint32_t pred) const {
  if (bits_[pred]) return false;
  const auto [begin, end] = rules_->lazy_of_predicate_[pred];
  return begin != end && resolved_epoch_[pred] != epoch_;
}

void Matcher::resolve(uint32_t pred) {
  const RuleSet& rs = *rules_;
  resolved_epoch_[pred] = epoch_;
  const auto [begin, end] = rs.lazy_of_predicate_[pred];
  for (uint32_t i = begin; i < end; ++i) {
    const RuleSet::LazyCheck& p = rs.lazy_checks_[i];
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
        const hs_error_t err = hs_scan(rs.lazy_databases_[lazy], fv.text.data(),
                                       static_cast<unsigned>(fv.text.size()), 0, scratch_,
                                       on_lazy_match, &lazy_hit_[lazy]);
        if (err != HS_SUCCESS && err != HS_SCAN_TERMINATED) lazy_error_ = err;
      }
    }
    if (lazy_hit_[lazy]) {
      set_bit(pred);
      return;
    }
  }
}

bool Matcher::literal_holds(uint32_t literal) {
  const RuleSet& rs = *rules_;
  const RuleSet::LazyLiteral& lit = rs.lazy_literals_[literal];
  LazyFieldState& state = lazy_fields_[lit.field];
  if (state.scanned == epoch_) return literal_hit_[literal] == epoch_;
  const uint32_t slot = rs.lazy_fields_[lit.field].slot;
  const FieldValue& fv = field_of(slot);
  const std::string_view text = fv.text;
  const std::string_view needle(rs.lazy_text_.data() + lit.offset, lit.length);
  const size_t n = needle.size();
  if (!fv.present() || n > text.size()) return false;
  if (state.work_epoch != epoch_) {
    state.work_epoch = epoch_;
    state.work = 0;
  }
  // Whether `work` more bytes of direct comparison would pass the budget; if so, the field
  // is scanned for all its lazy strings instead, and the scan answers.
  auto over_budget = [&](size_t work) {
    if (state.work + work <= RuleSet::kLazyDirectBudget) {
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
      case RuleSet::kAnchorStart | RuleSet::kAnchorEnd:
        return n == text.size() && equal_at(0);
      case RuleSet::kAnchorStart:
        return equal_at(0);
      default:
        return equal_at(text.size() - n);
    }
  }
  if (!lit.caseless) {
    if (over_budget(text.size())) return literal_hit_[literal] == epoch_;
    return text.find(needle) != std::string_view::npos;
  }
  uint64_t* pairs = pair_bits_.data() + lit.field * RuleSet::PairFilter::kWords;
  if (state.lower_epoch != epoch_) {
    // The value lowercased and its byte pairs noted, once per event: one pass, counted once.
    if (over_budget(text.size())) return literal_hit_[literal] == epoch_;
    state.lower_epoch = epoch_;
    state.lower_begin = lower_.size();
    lower_.append(text);
    std::fill(pairs, pairs + RuleSet::PairFilter::kWords, 0);
    auto* lowered = reinterpret_cast<unsigned char*>(lower_.data() + state.lower_begin);
    for (size_t i = 0; i < text.size(); ++i) {
      lowered[i] = static_cast<unsigned char>(ascii_lower(static_cast<char>(lowered[i])));
      if (i > 0) {
        RuleSet::PairFilter::note(pairs, RuleSet::PairFilter::pair(lowered[i - 1], lowered[i]));
      }
    }
  }
  for (uint8_t i = 0; i < lit.pair_count; ++i) {
    if (!RuleSet::PairFilter::has(pairs, lit.pairs[i])) return false;  // a pair of it is missing
  }
  if (over_budget(text.size())) return literal_hit_[literal] == epoch_;
  return std::string_view(lower_).substr(state.lower_begin, text.size()).find(needle) !=
         std::string_view::npos;
}

void Matcher::scan_lazy_field(uint32_t field, std::string_view text) {
  lazy_fields_[field].scanned = epoch_;
  lazy_scan_length_ = text.size();
  const hs_error_t err = hs_scan(rules_->lazy_fields_[field].db, text.data(),
                                 static_cast<unsigned>(text.size()), 0, scratch_,
                                 on_lazy_literal_match, this);
  if (err != HS_SUCCESS) lazy_error_ = err;
}

int Matcher::on_lazy_literal_match(unsigned id, unsigned long long, unsigned long long to,
                                   unsigned, void* ctx) {
  auto* m = static_cast<Matcher*>(ctx);
  const RuleSet& rs = *m->rules_;
  const auto literal = static_cast<uint32_t>(rs.patterns_[id].lazy_literal);
  const RuleSet::LazyLiteral& lit = rs.lazy_literals_[literal];
  if (!at_anchors(lit.anchors, lit.length, to, m->lazy_scan_length_)) return 0;
  m->literal_hit_[literal] = m->epoch_;
  return 0;
}

int Matcher::on_lazy_match(unsigned, unsigned long long, unsigned long long, unsigned, void* ctx) {
  *static_cast<uint8_t*>(ctx) = 1;
  return 1;  // one match is the answer: stop scanning
}

bool RuleSet::evaluate_direct(const DirectPredicate& dp, const Event& event) {
  const FieldValue& fv = event.field(dp.field_slot);
  switch (dp.kind) {
    case Predicate::Kind::kExists:
      return fv.present();
    case Predicate::Kind::kMissing:
      return !fv.present();
    case Predicate::Kind::kEmpty:
      return fv.present() && fv.text.empty();
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

int Matcher::on_pattern_match(unsigned id, unsigned long long, unsigned long long to, unsigned,
                              void* ctx) {
  auto* m = static_cast<Matcher*>(ctx);
  const RuleSet& rs = *m->rules_;
  const RuleSet::Pattern& p = rs.patterns_[id];
  if (!at_anchors(p.anchors, p.length, to, m->scan_length_)) return 0;
  if (p.confirm >= 0) {
    m->to_confirm_.push_back(id);
    return 0;
  }
  for (uint32_t i = p.preds_begin; i < p.preds_end; ++i) m->set_bit(rs.pattern_preds_[i]);
  return 0;
}

Status Matcher::match(const Event& event, std::vector<uint32_t>& out) {
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

void Matcher::fail_predicate(uint32_t pred) {
  if (std::find(failed_preds_.begin(), failed_preds_.end(), pred) == failed_preds_.end()) failed_preds_.push_back(pred);
}

void Matcher::fail_users() {
  const RuleSet& rs = *rules_;
  for (const uint32_t pred : failed_preds_) {
    for (uint32_t u = rs.users_begin_[pred]; u < rs.users_begin_[pred + 1]; ++u) {
      const uint32_t rule = rs.predicate_users_[u];
      // Only the rules this event could reach: those of its active groups.
      if (!active_group_[rs.compiled_[rule].group] || failed_epoch_[rule] == epoch_) continue;
      failed_epoch_[rule] = epoch_;
      failed_rules_.push_back(rule);
    }
  }
  std::sort(failed_rules_.begin(), failed_rules_.end());
}

void Matcher::add_triggered() {
  const RuleSet& rs = *rules_;
  for (uint32_t id : touched_) {
    const uint32_t last = rs.trigger_runs_of_predicate_[id + 1];
    for (uint32_t run = rs.trigger_runs_of_predicate_[id]; run < last; ++run) {
      const RuleSet::TriggerRun& tr = rs.trigger_runs_[run];
      if (!active_group_[tr.group]) continue;
      for (uint32_t i = tr.begin; i < tr.end; ++i) add_candidate(rs.trigger_rules_[i]);
    }
  }
}

bool Matcher::begin(const Event& event) {
  const RuleSet& rs = *rules_;
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

  for (size_t w = 0; w < rs.where_fields_.size(); ++w) {
    const RuleSet::WhereField& where = rs.where_fields_[w];
    const FieldValue& fv = event.field(where.slot);
    int32_t id = -1;
    if (fv.present() && fv.text.size() <= where.longest) {
      where_key_.resize(fv.text.size());
      std::transform(fv.text.begin(), fv.text.end(), where_key_.begin(),
                     [](char c) { return ascii_lower(c); });
      if (auto it = where.ids.find(where_key_); it != where.ids.end()) id = it->second;
    }
    where_value_[w] = id;
  }
  for (const uint32_t ls : active_logsources_) active_logsource_[ls] = 0;
  active_logsources_.clear();
  for (const uint32_t g : active_groups_) active_group_[g] = 0;
  active_groups_.clear();
  auto activate = [&](uint32_t ls) {
    const auto& where = rs.logsources_[ls].where;
    for (size_t k = 1; k < where.size(); ++k) {
      const int32_t v = where_value_[where[k].first];
      if (v < 0 || std::find(where[k].second.begin(), where[k].second.end(), v) == where[k].second.end()) return;
    }
    if (!active_logsource_[ls]) {
      active_logsource_[ls] = 1;
      active_logsources_.push_back(ls);
    }
  };
  for (const uint32_t ls : rs.unconditional_logsources_) activate(ls);
  for (size_t w = 0; w < rs.where_fields_.size(); ++w) {
    if (where_value_[w] < 0) continue;
    for (const uint32_t ls : rs.logsources_by_first_where_[rs.first_where_base_[w] + static_cast<uint32_t>(where_value_[w])]) {
      activate(ls);
    }
  }
  return !active_logsources_.empty();
}

Status Matcher::scan(const Event& event) {
  const RuleSet& rs = *rules_;
  for (const uint32_t ls : active_logsources_) {
    for (const uint32_t g : rs.groups_of_logsource_[ls]) {
      if (active_group_[g]) continue;
      active_group_[g] = 1;
      active_groups_.push_back(g);
      const auto& group = rs.groups_[g];
      for (const auto& dp : group.direct) {
        if (RuleSet::evaluate_direct(dp, event)) set_bit(dp.id);
      }
      for (uint32_t r : group.always_evaluate) add_candidate(r);
    }
  }
  for (const uint32_t ls : active_logsources_) {
    for (uint32_t d : rs.logsource_databases_[ls]) {
      if (database_epoch_[d] == epoch_) continue;  // scanned for another active logsource
      database_epoch_[d] = epoch_;
      const auto& db = rs.databases_[d];
      const FieldValue& fv = field_of(db.field_slot);
      if (!fv.present()) continue;
      scan_length_ = fv.text.size();
      for (const hs_database_t* hdb : {db.literal_db, db.db}) {
        if (hdb == nullptr) continue;
        const hs_error_t err = hs_scan(hdb, fv.text.data(), static_cast<unsigned>(fv.text.size()),
                                       0, scratch_, on_pattern_match, this);
        if (err != HS_SUCCESS) {
          to_confirm_.clear();
          return Status::internal("Hyperscan scan failed with error " + std::to_string(err));
        }
      }
      for (uint32_t id : to_confirm_) {
        const RuleSet::Pattern& p = rs.patterns_[id];
        const int rc = pcre2_match(rs.confirms_[static_cast<size_t>(p.confirm)],
                                   reinterpret_cast<PCRE2_SPTR>(fv.text.data()), fv.text.size(), 0,
                                   0, match_data_, rs.confirm_limits_);
        if (rc >= 0) {
          for (uint32_t i = p.preds_begin; i < p.preds_end; ++i) set_bit(rs.pattern_preds_[i]);
        } else if (rc != PCRE2_ERROR_NOMATCH) {
          // Fails the rules that read this pattern's predicates (see failed_rules()), and no
          // other: a value crafted against one rule's regex must not blind the rest.
          for (uint32_t i = p.preds_begin; i < p.preds_end; ++i) fail_predicate(rs.pattern_preds_[i]);
          last_failure_.field = db.field_slot;
          last_failure_.code = rc;
        }
      }
      to_confirm_.clear();
    }
  }
  return Status::ok();
}

}  // namespace vigil::match
