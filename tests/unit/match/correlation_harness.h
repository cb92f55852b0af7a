#pragma once
// The correlation tests' harness: base rules "failed", "success" and "proc" over a test mapping,
// events for them, and a Harness that runs events through a Matcher and a Correlator as
// `vigil match` does. Shared by correlation_test.cc and correlation_metrics_test.cc.

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "vigil/match/correlator.h"
#include "vigil/match/matcher.h"

namespace vigil::match::test_support {

inline constexpr char kCorrelationMapping[] = R"(
name: test
host_field: host
time_field: ts
logsources:
  - name: auth
    match: {product: test, category: authentication}
)";

inline constexpr TimeMs kMin = 60 * 1000;

// Base rules: "failed" (outcome failure) and "success" (outcome success), "proc" (cmd run).
inline std::string base_rules() {
  return R"(title: Failed logon
id: base-failed
name: failed_logon
logsource: {product: test, category: authentication}
detection:
  sel: {outcome: failure}
  condition: sel
---
title: Successful logon
id: base-success
name: successful_logon
logsource: {product: test, category: authentication}
detection:
  sel: {outcome: success}
  condition: sel
---
title: Process run
id: base-proc
name: proc_run
logsource: {product: test, category: authentication}
detection:
  sel: {cmd|contains: run}
  condition: sel
)";
}

struct Ev {
  TimeMs t;
  std::string json;
};

// Compiles the base rules and `correlation` (YAML), runs `events` through a Matcher and a
// Correlator as `vigil match` does, and returns (event index, rule id) of each output line.
class Harness {
 public:
  explicit Harness(const std::string& correlation,
                   const std::string& mapping_text = kCorrelationMapping) {
    std::vector<SigmaRule> rules;
    std::string all = base_rules() + "---\n" + correlation;
    size_t pos = 0;
    while (pos < all.size()) {
      size_t end = all.find("\n---\n", pos);
      const std::string doc =
          all.substr(pos, end == std::string::npos ? std::string::npos : end - pos + 1);
      auto r = parse_sigma(doc, "doc" + std::to_string(rules.size()) + ".yml");
      if (!r) {
        error = r.status().to_string();
        return;
      }
      rules.push_back(*r);
      if (end == std::string::npos) break;
      pos = end + 5;
    }
    auto mapping = FieldMapping::parse(mapping_text, "m.yml");
    EXPECT_TRUE(mapping) << mapping.status().to_string();
    auto rs = RuleSet::compile(rules, *mapping, report);
    EXPECT_TRUE(rs);
    for (const auto& d : report.rules) {
      if (!d.status.is_ok()) error = d.status.to_string();
    }
    set = *rs;
  }

  std::vector<std::pair<size_t, std::string>> run(const std::vector<Ev>& events) {
    std::vector<std::pair<size_t, std::string>> out;
    auto matcher = Matcher::create(set);
    EXPECT_TRUE(matcher);
    Correlator correlator(set);
    if (remote) correlator.set_remote(std::vector<bool>(set->correlations().size(), true));
    EventParser parser;
    Event event;
    std::vector<uint32_t> hits;
    std::vector<CorrelationHit> fired;
    // Lines of the alerts fired (an inner correlation of a chain only when generated); in
    // remote mode, each hit is fed to the correlations it feeds as ingest does, through
    // observe_hit() (the correlator feeds local ones itself).
    auto drain = [&] {
      for (size_t k = 0; k < fired.size(); ++k) {
        const CorrelationHit f = fired[k];
        const auto& info = set->correlations()[f.correlation].info;
        if (info.emit) out.emplace_back(std::stoul(f.completed_by), info.id);
        if (!remote) continue;
        const std::string values(f.values());
        for (const auto& [outer, base] : set->chained_of(f.correlation)) {
          std::string group;
          Correlator::chained_values(set->correlations()[outer], base, values, group);
          correlator.observe_hit(outer, base, group, "", f.last, f.completed_by, fired, "scope");
        }
      }
      fired.clear();
    };
    for (size_t i = 0; i < events.size(); ++i) {
      EXPECT_EQ(parser.parse(events[i].json, set->fields(), event), ParseError::kNone);
      hits.clear();
      EXPECT_TRUE((*matcher)->match(event, hits).is_ok());
      correlator.advance(events[i].t, fired);
      drain();
      for (uint32_t r : hits) correlator.observe(r, event, events[i].t, std::to_string(i), fired);
      if (remote) {
        // As the repartition topic carries them: group values and the counted value computed
        // where the event was, the window fed elsewhere.
        for (uint32_t r : hits) {
          for (uint32_t c : set->correlations_of(r)) {
            const CompiledCorrelation& cc = set->correlations()[c];
            for (uint32_t b = 0; b < cc.bases.size(); ++b) {
              if (cc.bases[b] != r) continue;
              std::string values;
              Correlator::append_group_values(cc, b, event, values);
              std::string value;
              if (cc.spec.reads_values() && !Correlator::counted_value(cc, b, event, value))
                continue;
              correlator.observe_hit(c, b, values, value, events[i].t, std::to_string(i), fired,
                                     "scope");
            }
          }
        }
      }
      for (uint32_t r : hits) {
        if (set->rules()[r].emit) out.emplace_back(i, set->rules()[r].id);
      }
      drain();
    }
    correlator.advance(INT64_MAX, fired);
    drain();
    non_numeric = correlator.non_numeric_values();
    return out;
  }
  std::vector<std::pair<size_t, std::string>> correlations_only(const std::vector<Ev>& events) {
    auto all = run(events);
    std::erase_if(all, [](const auto& p) { return p.second.rfind("base-", 0) == 0; });
    return all;
  }

  CompileReport report;
  std::shared_ptr<const RuleSet> set;
  std::string error;
  bool remote = false;       // every correlation fed through observe_hit(), as cluster mode does
  uint64_t non_numeric = 0;  // of the last run: matches a metric left out
};

inline Ev fail(TimeMs t, const std::string& user, const std::string& host = "h1") {
  return {t, R"({"outcome":"failure","user":")" + user + R"(","host":")" + host + R"("})"};
}
inline Ev success(TimeMs t, const std::string& user, const std::string& host = "h1") {
  return {t, R"({"outcome":"success","user":")" + user + R"(","host":")" + host + R"("})"};
}
inline Ev proc(TimeMs t, const std::string& host) {
  return {t, R"({"cmd":"run x","host":")" + host + R"("})"};
}

using Lines = std::vector<std::pair<size_t, std::string>>;

// Runs `events` with every correlation fed locally and again, as cluster mode does, through
// observe_hit(); both must give the same lines, which are returned (correlations only).
inline Lines local_and_remote(const std::string& rules, const std::vector<Ev>& events) {
  Lines local, remote;
  for (const bool fed_from_elsewhere : {false, true}) {
    Harness h(rules);
    EXPECT_TRUE(h.error.empty()) << h.error;
    h.remote = fed_from_elsewhere;
    (fed_from_elsewhere ? remote : local) = h.correlations_only(events);
  }
  EXPECT_EQ(local, remote);
  return local;
}

}  // namespace vigil::match::test_support
