// `vigil match` with Sigma correlation rules: the exact output lines, over the events' own
// timestamps (ISO 8601 with and without zone, Sysmon's "UtcTime" form).

#include <gtest/gtest.h>

#include <fstream>

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

}  // namespace
}  // namespace vigil
