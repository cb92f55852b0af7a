// The outputs list of the config file (output/src/outputs.cc): what is refused at start and
// how, the alert filter, Retry-After, and the RFC 5424 line.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>

#include "support/temp_dir.h"
#include "vigil/output/outputs.h"

namespace vigil::output {
namespace {

Expected<std::vector<OutputConfig>> parse(const std::string& yaml) {
  return parse_outputs(YAML::Load(yaml), "vigild.yml");
}
std::string error_of(const std::string& yaml) {
  auto r = parse(yaml);
  return r ? std::string("accepted") : r.status().message();
}

TEST(OutputsConfig, BadConfigurationIsRefusedByName) {
  EXPECT_NE(error_of("- {name: a, type: pager, url: 'http://x'}")
                .find("output 'a': unknown type 'pager'"),
            std::string::npos);
  EXPECT_NE(
      error_of("- {name: a, type: webhook, url: 'http://x', urls: 1}").find("unknown key 'urls'"),
      std::string::npos);
  EXPECT_NE(error_of("- {name: a, type: webhook, url: 'ftp://x'}").find("url must start with"),
            std::string::npos);
  EXPECT_NE(error_of("- {name: a, type: webhook, url: 'http://'}").find("names no host"),
            std::string::npos);
  EXPECT_NE(error_of("- {name: a, type: splunk_hec, url: 'http://x', token: {file: /nonexistent}}")
                .find("token: cannot read '/nonexistent'"),
            std::string::npos);
  EXPECT_NE(error_of("- {name: a, type: splunk_hec, url: 'http://x'}").find("token is required"),
            std::string::npos);
  EXPECT_NE(error_of("- {name: a, type: webhook, url: 'http://x', headers: {K: {env: VIGIL_NOPE}}}")
                .find("VIGIL_NOPE is not set"),
            std::string::npos);
  EXPECT_NE(error_of("- {name: a, type: syslog, address: 'nohost'}").find("host:port"),
            std::string::npos);
  EXPECT_NE(
      error_of("- {name: a, type: syslog, address: 'h:514', transport: sctp}").find("transport"),
      std::string::npos);
  EXPECT_NE(
      error_of("- {name: a, type: webhook, url: 'http://x', min_level: severe}").find("min_level"),
      std::string::npos);
  EXPECT_NE(error_of("- {name: a, type: webhook, url: 'http://x', timeout: soon}").find("timeout"),
            std::string::npos);
  EXPECT_NE(
      error_of(
          "- {name: a, type: webhook, url: 'http://x'}\n- {name: a, type: slack, url: 'http://y'}")
          .find("defined twice"),
      std::string::npos);
  EXPECT_NE(error_of("- {type: webhook, url: 'http://x'}").find("has no name"), std::string::npos);
}

TEST(OutputsConfig, SecretsComeFromTheEnvironmentAndFilesAndAreNeverInErrors) {
  test::TempDir dir{"outputs"};
  std::ofstream(dir / "token") << "s3cret-token\n";
  ::setenv("VIGIL_TEST_KEY", "env-secret", 1);
  auto r = parse("- {name: hec, type: splunk_hec, url: 'https://splunk:8088', token: {file: " +
                 (dir / "token") + "}, headers: {X-Key: {env: VIGIL_TEST_KEY}, X-Team: soc}}");
  ASSERT_TRUE(r) << r.status().to_string();
  const OutputConfig& c = r->front();
  EXPECT_EQ(c.token, "s3cret-token");  // the trailing newline dropped
  EXPECT_EQ(c.headers, (std::vector<std::pair<std::string, std::string>>{{"X-Key", "env-secret"},
                                                                         {"X-Team", "soc"}}));
  EXPECT_EQ(c.batch_size, 100u);
  // A refused sibling key never echoes a secret's value.
  const std::string e = error_of(
      "- {name: hec, type: splunk_hec, url: 'https://s', token: {file: " + (dir / "token") +
      "}, batch_size: 0}");
  EXPECT_EQ(e.find("s3cret"), std::string::npos) << e;
  ::unsetenv("VIGIL_TEST_KEY");
}

TEST(OutputsConfig, TheFilterTakesLevelsAndTags) {
  auto r = parse(
      "- {name: a, type: webhook, url: 'http://x', min_level: high, tags: ['attack.*'],"
      " exclude_tags: [attack.discovery]}");
  ASSERT_TRUE(r);
  const OutputConfig& c = r->front();
  const std::vector<std::string> exec{"attack.execution", "attack.t1059"};
  const std::vector<std::string> disc{"attack.discovery"};
  const std::vector<std::string> none{"car.2016"};
  EXPECT_TRUE(c.wants(store::AlertLevel::kHigh, exec));
  EXPECT_TRUE(c.wants(store::AlertLevel::kCritical, exec));
  EXPECT_FALSE(c.wants(store::AlertLevel::kMedium, exec));
  EXPECT_FALSE(c.wants(store::AlertLevel::kHigh, disc));
  EXPECT_FALSE(c.wants(store::AlertLevel::kHigh, none));
  auto all = parse("- {name: b, type: slack, url: 'http://x'}");
  EXPECT_TRUE(all->front().wants(store::AlertLevel::kUnknown, none));
  EXPECT_NE(r->front().id, all->front().id);  // a queue per name
}

TEST(OutputsConfig, RetryAfterInSecondsOrAsADate) {
  EXPECT_EQ(parse_retry_after("120", 0), std::chrono::milliseconds(120000));
  EXPECT_EQ(parse_retry_after(" 0 ", 0), std::chrono::milliseconds(0));
  // Sun, 06 Nov 1994 08:49:37 GMT is 784111777 s after the epoch.
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111770000),
            std::chrono::milliseconds(7000));
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111790000),
            std::chrono::milliseconds(0));  // past
  EXPECT_EQ(parse_retry_after("soon", 0), std::nullopt);
  EXPECT_EQ(parse_retry_after("", 0), std::nullopt);
}

TEST(OutputsConfig, Rfc5424Line) {
  auto r =
      parse("- {name: s, type: syslog, address: 'siem:514', facility: local3, app_name: vigil}");
  ASSERT_TRUE(r) << r.status().to_string();
  const std::string alert = R"({"id":"abc","rule":{"id":"r]1","level":"critical"},"host":"h\"1"})";
  const std::string line = syslog_line(r->front(), alert, "MSG", "vigil-0", 1796619210709);
  // local3 (19) * 8 + crit (2) = 154; PROCID "-"; MSGID alert; SD-PARAM values escaped.
  EXPECT_EQ(line, R"(<154>1 2026-12-07T04:53:30.709Z vigil-0 vigil - alert [vigil@32473 id="abc" )"
                  R"(rule="r\]1" level="critical" host="h\"1"] MSG)");
}

}  // namespace
}  // namespace vigil::output
