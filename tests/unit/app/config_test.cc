// vigild's configuration: defaults, then the --config file, then the flags given; each flag
// declared once (app/src/config.cc).

#include "config.h"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <fstream>

#include "support/temp_dir.h"

namespace vigil::app {
namespace {

// Parses `args` (after the program name) and resolves the configuration.
Expected<Config> resolve(std::vector<std::string> args) {
  CLI::App cli{"vigild"};
  ServerFlags flags(cli);
  std::vector<const char*> argv{"vigild"};
  for (const auto& a : args) argv.push_back(a.c_str());
  cli.parse(static_cast<int>(argv.size()), argv.data());
  return flags.resolve();
}

TEST(ServerFlags, DefaultsThenTheFileThenTheFlagsGiven) {
  test::TempDir dir{"config"};
  const std::string file = dir / "vigild.yml";
  std::ofstream(file) << "kafka:\n  brokers: k1:9092\n  topic: from-file\n"
                         "data_dir: /var/lib/vigil\nstore:\n  events_max_age: 2d\n";
  auto c = resolve({"--config", file, "--topic", "from-flag", "--alerts-max-age", "90d"});
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->brokers, "k1:9092");                         // the file's
  EXPECT_EQ(c->topic, "from-flag");                         // a flag over the file
  EXPECT_EQ(c->events_max_age_ms, 2LL * 24 * 3600 * 1000);  // the file's
  EXPECT_EQ(c->alerts_max_age_ms, 90LL * 24 * 3600 * 1000);
  EXPECT_EQ(c->group, "vigil");                                // the default
  EXPECT_EQ(c->checkpoint_dir, "/var/lib/vigil-checkpoints");  // derived
  EXPECT_FALSE(c->rules.empty());
  EXPECT_FALSE(c->mapping.empty());
}

// The rule selection: the file's `select`, then each selection flag given over its part.
TEST(ServerFlags, RuleSelectionFromTheFileAndFlags) {
  test::TempDir dir{"config"};
  const std::string file = dir / "vigild.yml";
  std::ofstream(file) << "select:\n  min_level: medium\n  exclude_tags: [attack.t1003*]\n";
  auto c = resolve({"--config", file, "--min-level", "high", "--product", "windows,linux"});
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->select.min_level, "high");
  EXPECT_EQ(c->select.exclude_tags, std::vector<std::string>{"attack.t1003*"});
  EXPECT_EQ(c->select.products, (std::vector<std::string>{"windows", "linux"}));
  EXPECT_TRUE(c->select.statuses.empty());

  auto bad = resolve({"--status", "stabel"});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("unknown rule status 'stabel'"), std::string::npos);
  std::ofstream(file) << "select:\n  level: high\n";
  bad = resolve({"--config", file});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("unknown key 'select.level'"), std::string::npos)
      << bad.status().message();
}

TEST(ServerFlags, EveryFlagSetsItsMember) {
  auto c = resolve({"--kafka-brokers",
                    "b:1",
                    "--group",
                    "g",
                    "--group-instance-id",
                    "pod-0",
                    "--data-dir",
                    "/d",
                    "--listen",
                    "0.0.0.0:9",
                    "--rules",
                    "r1",
                    "--rules",
                    "r2",
                    "--mapping",
                    "m.yml",
                    "--log-level",
                    "debug",
                    "--simulator-rate",
                    "7",
                    "--partitions",
                    "3",
                    "--batch-size",
                    "11",
                    "--workers",
                    "5",
                    "--alerts-topic",
                    "",
                    "--dead-letter-topic",
                    "dlq",
                    "--batch-ms",
                    "9",
                    "--events",
                    "matched",
                    "--events-max-age",
                    "0",
                    "--events-max-bytes",
                    "100",
                    "--alerts-max-bytes",
                    "200",
                    "--checkpoint-dir",
                    "/c",
                    "--api-tokens-file",
                    "/t",
                    "--tls-cert",
                    "/cert",
                    "--tls-key",
                    "/key",
                    "--rollout-policy",
                    "pinned"});
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->brokers, "b:1");
  EXPECT_EQ(c->group, "g");
  EXPECT_EQ(c->group_instance_id, "pod-0");
  EXPECT_EQ(c->data_dir, "/d");
  EXPECT_EQ(c->listen, "0.0.0.0:9");
  EXPECT_EQ(c->rules, (std::vector<std::string>{"r1", "r2"}));
  EXPECT_EQ(c->mapping, "m.yml");
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->simulator_rate, 7);
  EXPECT_EQ(c->embedded_partitions, 3);
  EXPECT_EQ(c->batch_max_messages, 11u);
  EXPECT_EQ(c->workers, 5);
  EXPECT_EQ(c->alerts_topic, "");
  EXPECT_EQ(c->dead_letter_topic, "dlq");
  EXPECT_EQ(c->batch_max_ms, 9);
  EXPECT_EQ(c->events, "matched");
  EXPECT_EQ(c->events_max_age_ms, 0);
  EXPECT_EQ(c->events_max_bytes, 100u);
  EXPECT_EQ(c->alerts_max_bytes, 200u);
  EXPECT_EQ(c->checkpoint_dir, "/c");
  EXPECT_EQ(c->api_tokens_file, "/t");
  EXPECT_EQ(c->api_tls_cert_file, "/cert");
  EXPECT_EQ(c->api_tls_key_file, "/key");
  EXPECT_EQ(c->rollout_policy, "pinned");
}

TEST(ServerFlags, BadValuesAreRefusedNamingThem) {
  auto age = resolve({"--events-max-age", "3x"});
  ASSERT_FALSE(age);
  EXPECT_NE(age.status().message().find("--events-max-age"), std::string::npos);
  auto policy = resolve({"--rollout-policy", "sometimes"});
  ASSERT_FALSE(policy);
  EXPECT_NE(policy.status().message().find("'sometimes'"), std::string::npos);
  auto events = resolve({"--events", "some"});
  ASSERT_FALSE(events);
  EXPECT_NE(events.status().message().find("all, matched or none"), std::string::npos);
}

// The scan memo per worker: 4 MiB by default, `match.memo_mb` in the file (0: off), bounded.
TEST(ServerFlags, TheScanMemoSizeFromTheFile) {
  test::TempDir dir{"config"};
  auto defaults = resolve({});
  ASSERT_TRUE(defaults) << defaults.status().to_string();
  EXPECT_EQ(defaults->match_memo_bytes, size_t{4} << 20);
  const std::string file = dir / "vigild.yml";
  std::ofstream(file) << "match:\n  memo_mb: 0\n";
  auto off = resolve({"--config", file});
  ASSERT_TRUE(off) << off.status().to_string();
  EXPECT_EQ(off->match_memo_bytes, 0u);
  for (const char* bad :
       {"match:\n  memo_mb: 4096\n", "match:\n  memo: 1\n", "match:\n  memo_mb: lots\n"}) {
    std::ofstream(file) << bad;
    auto c = resolve({"--config", file});
    ASSERT_FALSE(c) << bad;
    // The key, or where yaml-cpp could not read the number.
    const std::string& m = c.status().message();
    EXPECT_TRUE(m.find("memo") != std::string::npos || m.find("line 2") != std::string::npos) << m;
  }
}

TEST(ServerFlags, ClusterModeFromTheFileAndFlags) {
  test::TempDir dir{"config"};
  const std::string file = dir / "vigild.yml";
  std::ofstream(file) << "cluster:\n  peers: [vigil-0=http://vigil-0.peers:8080, "
                         "vigil-1=https://vigil-1.peers:8443]\n  peer_timeout: 2s\n"
                         "  cursor_key_file: /etc/vigil/secret/cursor-key\n";
  auto c = resolve({"--config", file, "--cluster-self", "vigil-1"});
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_TRUE(c->clustered());
  EXPECT_EQ(c->cluster_self, "vigil-1");
  EXPECT_EQ(c->cluster_peers.size(), 2u);
  EXPECT_EQ(c->cluster_peer_timeout_ms, 2000);
  EXPECT_TRUE(c->cluster_mirror_alerts);
  auto flags =
      resolve({"--cluster-peers", "a=http://127.0.0.1:1,b=http://[::1]:2", "--cluster-self", "a",
               "--cluster-cursor-key-file", "k", "--cluster-peer-timeout", "30s"});
  ASSERT_TRUE(flags) << flags.status().to_string();
  EXPECT_EQ(flags->cluster_peers.size(), 2u);
  EXPECT_EQ(flags->cluster_peer_timeout_ms, 30000);
  EXPECT_FALSE(resolve({})->clustered());

  // What would make replicas disagree or ask themselves is refused, by name.
  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{"--cluster-peers", "a=http://h:1,b=http://h:2", "--cluster-self", "c",
        "--cluster-cursor-key-file", "k"},
       "'c' is not one of cluster.peers"},
      {{"--cluster-peers", "a=http://h:1,a=http://h:2", "--cluster-self", "a",
        "--cluster-cursor-key-file", "k"},
       "'a' is listed twice"},
      {{"--cluster-peers", "a=ftp://h:1", "--cluster-self", "a", "--cluster-cursor-key-file", "k"},
       "must be http://host:port"},
      {{"--cluster-peers", "a=http://h", "--cluster-self", "a", "--cluster-cursor-key-file", "k"},
       "must be http://host:port"},
      {{"--cluster-peers", "a b=http://h:1", "--cluster-self", "a b", "--cluster-cursor-key-file",
        "k"},
       "must be of [A-Za-z0-9._-]"},
      {{"--cluster-peers", "a=http://h:1", "--cluster-self", "a"}, "cursor_key_file"},
      {{"--cluster-peers", "a=http://h:1", "--cluster-self", "a", "--cluster-cursor-key-file", "k",
        "--alerts-topic", ""},
       "needs kafka.alerts_topic"},
  };
  for (const auto& [args, why] : bad) {
    auto r = resolve(args);
    ASSERT_FALSE(r) << why;
    EXPECT_NE(r.status().message().find(why), std::string::npos) << r.status().message();
  }
  std::ofstream(file) << "kafka: {alerts_format: ecs}\ncluster: {peers: [a=http://h:1], self: a, "
                         "cursor_key_file: k}\n";
  auto ecs = resolve({"--config", file});
  ASSERT_FALSE(ecs);
  EXPECT_NE(ecs.status().message().find("alerts_format vigil"), std::string::npos);
  std::ofstream(file) << "cluster: {peers: [a=http://h:1], self: a, cursor_key_file: k, "
                         "mirror_alerts: false, peer_timout: 1s}\n";
  auto typo = resolve({"--config", file});
  ASSERT_FALSE(typo);
  EXPECT_NE(typo.status().message().find("unknown key 'peer_timout'"), std::string::npos);
}

TEST(ServerFlags, CorrelationAcrossPartitionsIsOnInClusterModeAndConfigurable) {
  test::TempDir dir{"config"};
  const std::string file = dir / "vigild.yml";
  const std::vector<std::string> cluster = {
      "--cluster-peers", "a=http://h:1", "--cluster-self", "a", "--cluster-cursor-key-file", "k"};
  auto single = resolve({});
  ASSERT_TRUE(single);
  EXPECT_EQ(single->correlation_repartition_topic, "");
  auto clustered = resolve(cluster);
  ASSERT_TRUE(clustered) << clustered.status().to_string();
  EXPECT_EQ(clustered->correlation_repartition_topic, "vigil.events.correlation");
  EXPECT_EQ(clustered->correlation_max_lateness_ms, 3600000);
  auto off = cluster;
  off.insert(off.end(), {"--correlation-repartition-topic", "off"});
  EXPECT_EQ(resolve(off)->correlation_repartition_topic, "");

  std::ofstream(file) << "correlation:\n  repartition_topic: corr\n  partition_key: [Computer]\n"
                         "  max_lateness: 10m\n";
  auto c = resolve({"--config", file});
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->correlation_repartition_topic, "corr");
  EXPECT_EQ(c->correlation_partition_key, std::vector<std::string>{"Computer"});
  EXPECT_EQ(c->correlation_max_lateness_ms, 600000);

  for (const auto& [text, why] : std::vector<std::pair<std::string, std::string>>{
           {"correlation: {repartition_topic: vigil.events}\n", "a topic of its own"},
           {"correlation: {max_lateness: soon}\n", "max_lateness must be a duration"},
           {"correlation: {partition: [x]}\n", "unknown key 'partition'"}}) {
    std::ofstream(file) << text;
    auto r = resolve({"--config", file});
    ASSERT_FALSE(r) << text;
    EXPECT_NE(r.status().message().find(why), std::string::npos) << r.status().message();
  }
}

TEST(ServerFlags, KafkaPropertiesFromAFileFollowTheInlineOnes) {
  test::TempDir dir{"config"};
  const std::string props = dir / "kafka.properties";
  std::ofstream(props) << "# SASL\n\nsasl.username = vigil\nsasl.password=p=ss word \r\n"
                          "! a comment\n";
  const std::string file = dir / "vigild.yml";
  std::ofstream(file) << "kafka:\n  properties: {security.protocol: SASL_SSL}\n  properties_file: "
                      << props << "\nrules_watch: 10s\n";
  auto c = resolve({"--config", file});
  ASSERT_TRUE(c) << c.status().to_string();
  using KV = std::pair<std::string, std::string>;
  EXPECT_EQ(c->kafka_properties, (std::vector<KV>{{"security.protocol", "SASL_SSL"},
                                                  {"sasl.username", "vigil"},
                                                  {"sasl.password", "p=ss word"}}));
  EXPECT_EQ(c->rules_watch_ms, 10000);
  EXPECT_EQ(resolve({"--config", file, "--rules-watch", "0"})->rules_watch_ms, 0);
}

TEST(ServerFlags, AMalformedKafkaPropertiesFileNamesTheLineNotTheValue) {
  test::TempDir dir{"config"};
  const std::string props = dir / "kafka.properties";
  std::ofstream(props) << "sasl.username=vigil\nsecret-without-equals\n";
  auto c = resolve({"--kafka-properties-file", props});
  ASSERT_FALSE(c);
  EXPECT_NE(c.status().message().find("line 2: expected key=value"), std::string::npos)
      << c.status().to_string();
  EXPECT_EQ(c.status().message().find("secret-without-equals"), std::string::npos);
  EXPECT_FALSE(resolve({"--kafka-properties-file", dir / "missing"}));
  const std::string file = dir / "vigild.yml";
  std::ofstream(file) << "rules_watch: often\n";
  EXPECT_FALSE(resolve({"--config", file}));
}

TEST(ServerFlags, OutputsAndTheAlertsTopicFormatFromTheFile) {
  test::TempDir dir{"config"};
  const std::string file = dir / "vigild.yml";
  std::ofstream(file) << "kafka:\n  alerts_format: ocsf\noutputs:\n"
                         "  - {name: soc, type: webhook, url: 'https://hooks.example.com/x', "
                         "min_level: high}\n  - {name: siem, type: syslog, address: 'siem:6514', "
                         "transport: tls, message: cef}\n";
  auto c = resolve({"--config", file});
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->alerts_format, output::AlertFormat::kOcsf);
  ASSERT_EQ(c->outputs.size(), 2u);
  EXPECT_EQ(c->outputs[0].name, "soc");
  EXPECT_EQ(c->outputs[1].transport, output::SyslogTransport::kTls);
  std::ofstream(file) << "kafka:\n  alerts_format: cef\n";
  EXPECT_FALSE(resolve({"--config", file}));
  std::ofstream(file) << "outputs:\n  - {name: x, type: pager}\n";
  auto bad = resolve({"--config", file});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("output 'x': unknown type 'pager'"), std::string::npos);
}

}  // namespace
}  // namespace vigil::app
