// `vigil match` with Sigma correlation rules: the exact output lines, over the events' own
// timestamps (ISO 8601 with and without zone, Sysmon's "UtcTime" form).

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "support/corpus.h"
#include "support/subprocess.h"
#include "support/temp_dir.h"

namespace vigil {
namespace {

TEST(CliMatch, PrintsCorrelationAlertsAtTheEventThatCompletesThem) {
  test::TempDir tmp("cli-match");
  std::ofstream(tmp / "mapping.yml") << R"(name: t
host_field: host
time_field: "@timestamp"
logsources:
  - name: auth
    match: {product: test, category: authentication}
)";
  std::ofstream(tmp / "failed.yml") << R"(title: Failed logon
id: 11111111-0000-0000-0000-000000000001
name: failed_logon
logsource: {product: test, category: authentication}
detection:
  sel: {outcome: failure}
  condition: sel
)";
  std::ofstream(tmp / "brute.yml") << R"(title: Brute force
id: 22222222-0000-0000-0000-000000000002
correlation:
  type: event_count
  rules: [failed_logon]
  group-by: [user]
  timespan: 5m
  condition: {gte: 3}
)";
  std::ofstream(tmp / "events.jsonl")
      << R"({"outcome":"failure","user":"a","@timestamp":"2026-11-24T10:00:00Z"}
{"outcome":"failure","user":"a","@timestamp":"2026-11-24 10:01:00.250"}
{"outcome":"success","user":"a","@timestamp":"2026-11-24T10:02:00Z"}
{"outcome":"failure","user":"b","@timestamp":"2026-11-24T10:02:30+00:00"}
{"outcome":"failure","user":"a","@timestamp":"2026-11-24T11:03:00+01:00"}
{"outcome":"failure","user":"a","@timestamp":"2026-11-24T10:30:00Z"}
)";
  std::string out;
  const int rc =
      test::run_command(std::string(VIGIL_CLI_PATH) + " match --rules " + (tmp / "failed.yml") +
                            " " + (tmp / "brute.yml") + " --mapping " + (tmp / "mapping.yml") +
                            " --events " + (tmp / "events.jsonl") + " 2>/dev/null",
                        &out);
  EXPECT_EQ(rc, 0);
  // The base rule feeds a correlation that does not `generate`: only the correlation prints,
  // at event 4 (a's third failure within 5 minutes; 11:03+01:00 is 10:03Z).
  EXPECT_EQ(out,
            R"({"event":4,"rule_id":"22222222-0000-0000-0000-000000000002","title":"Brute force"})"
            "\n");
}

// A chain (the specification's example): only the outer correlation prints, at the success
// that completes it; `rules check` names the specification it implements.
TEST(CliMatch, ChainsPrintTheOuterCorrelationAndRulesCheckNamesTheSpecification) {
  test::TempDir tmp("cli-chain");
  std::ofstream(tmp / "mapping.yml") << R"(name: t
time_field: "@timestamp"
logsources:
  - name: auth
    match: {product: test, category: authentication}
)";
  std::ofstream(tmp / "rules.yml") << R"(title: Failed logon
id: 11111111-0000-0000-0000-000000000001
name: failed_logon
logsource: {product: test, category: authentication}
detection: {sel: {outcome: failure}, condition: sel}
---
title: Successful logon
id: 11111111-0000-0000-0000-000000000002
name: successful_logon
logsource: {product: test, category: authentication}
detection: {sel: {outcome: success}, condition: sel}
---
title: Many failed logons
id: 22222222-0000-0000-0000-000000000001
name: many_failed_logons
correlation: {type: event_count, rules: [failed_logon], group-by: [user], timespan: 10m,
              condition: {gte: 3}}
---
title: Many failed logons then a successful one
id: 22222222-0000-0000-0000-000000000002
correlation: {type: temporal_ordered, rules: [many_failed_logons, successful_logon],
              group-by: [user], timespan: 10m}
)";
  std::ofstream(tmp / "events.jsonl")
      << R"({"outcome":"failure","user":"a","@timestamp":"2026-11-24T10:00:00Z"}
{"outcome":"failure","user":"a","@timestamp":"2026-11-24T10:01:00Z"}
{"outcome":"failure","user":"a","@timestamp":"2026-11-24T10:02:00Z"}
{"outcome":"success","user":"a","@timestamp":"2026-11-24T10:03:00Z"}
)";
  const std::string files = (tmp / "rules.yml") + " --mapping " + (tmp / "mapping.yml");
  std::string out;
  EXPECT_EQ(test::run_command(std::string(VIGIL_CLI_PATH) + " match --rules " + files +
                                  " --events " + (tmp / "events.jsonl") + " 2>/dev/null",
                              &out),
            0);
  EXPECT_EQ(
      out,
      R"({"event":3,"rule_id":"22222222-0000-0000-0000-000000000002","title":"Many failed logons then a successful one"})"
      "\n");
  EXPECT_EQ(test::run_command(std::string(VIGIL_CLI_PATH) + " rules check " + files, &out), 0);
  EXPECT_NE(out.find("Sigma specification 2.1.0"), std::string::npos) << out;
}

// Standard input is read as a file is (in blocks): the same detections, in the same order,
// from a file, a pipe and a redirect, over the corpus' recorded lab intrusion.
TEST(CliMatch, StandardInputGivesTheSameDetectionsAsAFile) {
  test::TempDir tmp("cli-stdin");
  const std::string zip = (test::corpus_dir() / "otrf" / "lsass_campaign_03_comsvcs.zip").string();
  std::string unzip_out;
  // python3's zipfile: installed with python3 by scripts/install-deps (unzip is not).
  ASSERT_EQ(test::run_command(
                "/usr/bin/python3 -m zipfile -e " + zip + " " + tmp.path().string() + " 2>&1",
                &unzip_out),
            0)
      << unzip_out;
  // Its first 10,000 events (64 detections): enough for every branch, quick under ASan.
  const std::string events = tmp / "events.jsonl";
  ASSERT_EQ(test::run_command("head -n 10000 " +
                              (tmp / "metasploit_comsvcs_lsass_memory_dump.json") + " > " + events),
            0);
  const std::string match = std::string(VIGIL_CLI_PATH) + " match --rules " +
                            (test::corpus_dir() / "sigma_rules").string();
  std::string from_file, from_pipe, from_redirect;
  ASSERT_EQ(test::run_command(match + " --events " + events + " 2>/dev/null", &from_file), 0);
  ASSERT_EQ(
      test::run_command("cat " + events + " | " + match + " --events - 2>/dev/null", &from_pipe),
      0);
  ASSERT_EQ(test::run_command(match + " --events - < " + events + " 2>/dev/null", &from_redirect),
            0);
  EXPECT_GT(std::count(from_file.begin(), from_file.end(), '\n'), 10);
  EXPECT_EQ(from_pipe, from_file);
  EXPECT_EQ(from_redirect, from_file);
}

}  // namespace
}  // namespace vigil
