// End to end: vigild's alert outputs. Alerts reach a webhook (the recording endpoint of
// tests/support/http_sink.py) through a destination that is down while vigild is killed with
// SIGKILL in the middle of delivering, and all of them arrive after the restart (at least
// once, keyed by alert id); `vigil outputs status` and `vigil outputs test` work against the
// running server; the alerts topic carries ECS documents when asked.

#include <rapidjson/document.h>

#include <map>
#include <set>

#include "e2e/e2e_support.h"

namespace vigil {
namespace {

using e2e::wait_for;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string read_all(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class OutputsE2eTest : public e2e::VigildFixture {
 protected:
  void start_sink() {
    fs::create_directories(dir_ / "sink");
    set_sink(R"({})");
    sink_ = std::make_unique<test::Subprocess>(
        std::vector<std::string>{"/usr/bin/python3", VIGIL_SOURCE_DIR "/tests/support/http_sink.py",
                                 (dir_ / "sink/port").string(), (dir_ / "sink/log").string(),
                                 (dir_ / "sink/control").string()},
        (dir_ / "sink/err").string());
    ASSERT_TRUE(wait_for([&] { return fs::exists(dir_ / "sink/port"); }, 10s));
    sink_port_ = read_all(dir_ / "sink/port");
  }
  void set_sink(const std::string& json) {
    std::ofstream(dir_ / "sink/control.tmp") << json;
    fs::rename(dir_ / "sink/control.tmp", dir_ / "sink/control");
  }
  // Alert ids the sink accepted, with how many times each.
  std::map<std::string, int> delivered() {
    std::map<std::string, int> out;
    std::ifstream in(dir_ / "sink/log");
    for (std::string line; std::getline(in, line);) {
      rapidjson::Document r, body;
      r.Parse(line.c_str());
      if (r.HasParseError()) continue;
      body.Parse(r["body"].GetString());
      if (body.IsObject() && body.HasMember("id")) ++out[body["id"].GetString()];
    }
    return out;
  }
  std::set<std::string> alert_ids(uint16_t port) {
    std::set<std::string> out;
    auto r = api_get(port, "/api/v1/alerts?limit=1000");
    rapidjson::Document d;
    d.Parse(r.body.c_str());
    if (d.IsObject() && d.HasMember("alerts"))
      for (const auto& a : d["alerts"].GetArray()) out.insert(a["id"].GetString());
    return out;
  }
  std::vector<std::string> whoami_events(int n) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i)
      out.push_back(
          R"({"@timestamp":")" + e2e::now_rfc3339() +
          R"(","Hostname":"WS-1","Channel":"Microsoft-Windows-Sysmon/Operational","EventID":1,"test_id":"o)" +
          std::to_string(i) +
          R"(","ParentImage":"C:\\Windows\\System32\\cmd.exe","Image":"C:\\Windows\\System32\\whoami.exe","CommandLine":"whoami /priv"})");
    return out;
  }
  std::string cli(const std::string& args, int* rc) {
    std::string output;
    *rc = test::run_command(std::string(VIGIL_CLI_PATH) + " " + args + " 2>&1", &output);
    return output;
  }

  std::unique_ptr<test::Subprocess> sink_;
  std::string sink_port_;
};

TEST_F(OutputsE2eTest, AlertsQueuedForADeadWebhookSurviveSigkillAndAllArrive) {
  start_sink();
  set_sink(R"({"fail_next": 1000000, "status": 503, "retry_after": "1"})");  // down
  config_file();
  std::ofstream(dir_ / "vigild.yml", std::ios::app)
      << "kafka:\n  alerts_format: ecs\n"
      << "outputs:\n  - name: hook\n    type: webhook\n    url: http://127.0.0.1:" << sink_port_
      << "/alerts\n    min_level: medium\n    rate_limit: 40\n    retry: {initial: 100ms, max: "
         "1s}\n";
  // The kafka: key above repeats the fixture's: rewrite the file with both in one map.
  {
    std::string text = read_all(dir_ / "vigild.yml");
    const std::string extra = "kafka:\n  alerts_format: ecs\n";
    text.erase(text.find(extra), extra.size());
    text.replace(text.find("kafka:\n"), 7, "kafka:\n  alerts_format: ecs\n");
    std::ofstream(dir_ / "vigild.yml") << text;
  }
  e2e::Broker broker(2);
  ASSERT_FALSE(broker.bootstrap().empty());
  const std::vector<std::string> flags = {"--kafka-brokers", broker.bootstrap(), "--workers", "2"};
  std::unique_ptr<test::Subprocess> vigild;
  uint16_t port = start(vigild, flags);
  ASSERT_NE(port, 0) << log(1);

  kcat_produce(broker.bootstrap(), whoami_events(100));
  ASSERT_TRUE(wait_for([&] { return alert_ids(port).size() == 100; }, 30s)) << log(1);
  const std::set<std::string> ids = alert_ids(port);
  // The destination refuses (503): every alert waits in the queue.
  ASSERT_TRUE(wait_for(
      [&] {
        return api_get(port, "/api/v1/outputs").body.find(R"("backlog":100)") != std::string::npos;
      },
      30s))
      << api_get(port, "/api/v1/outputs").body;
  int rc = 0;
  std::string out = cli("outputs status --server http://127.0.0.1:" + std::to_string(port) +
                            " --token " + kAdminToken,
                        &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("hook"), std::string::npos) << out;
  EXPECT_NE(out.find("retrying"), std::string::npos) << out;
  EXPECT_NE(out.find("last error"), std::string::npos) << out;
  EXPECT_NE(out.find("HTTP 503"), std::string::npos) << out;

  // Up again; at 40 alerts/s the queue drains over seconds: SIGKILL half way.
  set_sink(R"({})");
  ASSERT_TRUE(wait_for([&] { return delivered().size() >= 30; }, 30s)) << log(1);
  vigild->signal(SIGKILL);
  vigild->wait(10s);
  const size_t before = delivered().size();
  EXPECT_LT(before, 100u) << "all delivered before the kill: the test proves nothing";

  port = start(vigild, flags);
  ASSERT_NE(port, 0) << log(2);
  ASSERT_TRUE(wait_for([&] { return delivered().size() == 100; }, 30s))
      << delivered().size() << log(2);
  std::set<std::string> got;
  for (const auto& [id, n] : delivered()) got.insert(id);
  EXPECT_EQ(got, ids);  // every alert, by id; a few twice at most (at least once)

  // A test alert through the output, on demand.
  out = cli("outputs test hook --server http://127.0.0.1:" + std::to_string(port) + " --token " +
                kAdminToken,
            &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_TRUE(
      wait_for([&] { return delivered().count("00000000000000000000000000000000") == 1; }, 10s));
  out = cli("outputs test nosuch --server http://127.0.0.1:" + std::to_string(port) + " --token " +
                kAdminToken,
            &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("no output named 'nosuch'"), std::string::npos) << out;

  // The alerts topic carried ECS documents keyed by the alert id.
  const auto records = kcat_consume(broker.bootstrap(), "vigil.alerts", "%k %s");
  ASSERT_FALSE(records.empty());
  EXPECT_NE(records[0].find(R"("kind":"signal")"), std::string::npos) << records[0];
  vigild->signal(SIGTERM);
  EXPECT_EQ(vigild->wait(30s), 0) << log(2);
}

TEST_F(OutputsE2eTest, BadOutputConfigurationIsRefusedAtStartWithItsName) {
  config_file();
  std::ofstream(dir_ / "vigild.yml", std::ios::app)
      << "outputs:\n  - {name: hec, type: splunk_hec, url: 'https://splunk:8088', token: {file: "
      << (dir_ / "missing-token").string() << "}}\n";
  std::unique_ptr<test::Subprocess> vigild;
  EXPECT_EQ(start(vigild, {}), 0);
  EXPECT_EQ(vigild->wait(10s), 2);
  EXPECT_NE(log(1).find("output 'hec': token: cannot read"), std::string::npos) << log(1);
}

}  // namespace
}  // namespace vigil
