// Alert outputs against real destinations on loopback: an HTTP endpoint written for the tests
// (tests/support/http_sink.py: records what it accepted, answers 2xx, 429/503 with
// Retry-After, 500, or hangs, as told) for the webhook, Slack and Splunk HEC outputs, and
// rsyslog (Debian's, started with its own config on free ports) for syslog over TCP and UDP.
// Alerts are queued in a real store as the shard workers queue them; a Deliverer sends them.

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "support/subprocess.h"
#include "support/temp_dir.h"
#include "vigil/api/http.h"
#include "vigil/output/deliverer.h"
#include "vigil/output/output_set.h"

namespace vigil::output {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
std::vector<std::string> lines_of(const fs::path& p) {
  std::vector<std::string> out;
  std::ifstream in(p);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}
bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return done();
}
uint16_t free_port(bool udp = false) {
  std::string out;
  test::run_command(
      std::string("/usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET, ") +
          (udp ? "socket.SOCK_DGRAM" : "socket.SOCK_STREAM") +
          "); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])'",
      &out);
  return static_cast<uint16_t>(std::stoi(out));
}

// The test HTTP endpoint.
class Sink {
 public:
  explicit Sink(const fs::path& dir)
      : dir_(dir),
        proc_({"/usr/bin/python3", VIGIL_SOURCE_DIR "/tests/support/http_sink.py",
               (dir / "port").string(), (dir / "log").string(), (dir / "control").string()},
              (dir / "sink.err").string()) {
    control(R"({})");
    EXPECT_TRUE(wait_until([&] { return fs::exists(dir_ / "port"); }, 10s));
    port_ = static_cast<uint16_t>(std::stoi(read_file(dir_ / "port")));
  }
  void control(const std::string& json) {
    std::ofstream(dir_ / "control.tmp") << json;
    fs::rename(dir_ / "control.tmp", dir_ / "control");
  }
  std::string url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::vector<rapidjson::Document> requests() const {
    std::vector<rapidjson::Document> out;
    for (const auto& l : lines_of(dir_ / "log")) {
      out.emplace_back().Parse(l.c_str());
    }
    return out;
  }

 private:
  fs::path dir_;
  test::Subprocess proc_;
  uint16_t port_ = 0;
};

std::string alert_json(int i, const std::string& level = "high") {
  return R"({"id":"alert-)" + std::to_string(i) +
         R"(","time":"2026-12-07T05:00:00.000Z",)"
         R"("detected_at":"2026-12-07T05:00:01.000Z","rule":{"id":"r1","title":"Rule one",)"
         R"("level":")" +
         level +
         R"(","tags":["attack.execution","attack.t1059.001"]},)"
         R"("host":"ws-)" +
         std::to_string(i) +
         R"(","matched":[{"field":"CommandLine","value":"x"}],)"
         R"("event":{"CommandLine":"x"}})";
}

class OutputsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::Store::open({(root_ / "data").string()});
    ASSERT_TRUE(s) << s.status().to_string();
    store_ = std::move(*s);
  }
  // Queues alerts 0..n-1 (from `first`) for `c`, as a shard worker's batch would.
  void queue(const OutputConfig& c, int first, int n) {
    std::vector<std::string> docs;
    for (int i = first; i < first + n; ++i) docs.push_back(alert_json(i));
    std::vector<store::DeliveryRecord> d;
    for (int i = 0; i < n; ++i)
      d.push_back({c.id, SystemClock::instance().now_ms() + i,  // in order, as batches are
                   store::AlertId::derive("t", 0, first + i, "r1"), docs[static_cast<size_t>(i)]});
    ASSERT_TRUE(store_->put_batch({}, {}, {}, {}, {}, d).is_ok());
  }
  OutputConfig config(const std::string& yaml) {
    auto list = parse_outputs(YAML::Load(yaml), "test");
    EXPECT_TRUE(list) << list.status().to_string();
    return list ? list->front() : OutputConfig{};
  }
  std::unique_ptr<Deliverer> deliverer(const OutputConfig& c) {
    auto d = Deliverer::create(c, *store_, metrics_, SystemClock::instance());
    EXPECT_TRUE(d) << d.status().to_string();
    return d ? std::move(*d) : nullptr;
  }
  static std::set<std::string> ids_of(const std::vector<rapidjson::Document>& requests,
                                      const char* pointer_key = "id") {
    std::set<std::string> out;
    for (const auto& r : requests) {
      rapidjson::Document body;
      body.Parse(r["body"].GetString());
      if (body.IsObject() && body.HasMember(pointer_key)) out.insert(body[pointer_key].GetString());
    }
    return out;
  }

  test::TempDir dir_{"outputs"};
  const fs::path root_ = dir_.path();
  std::unique_ptr<store::Store> store_;
  MetricsRegistry metrics_;
};

TEST_F(OutputsTest, AWebhookThatIsDownForAWhileGetsEveryAlertOnceItIsUp) {
  fs::create_directories(root_ / "sink");
  std::unique_ptr<Sink> sink = std::make_unique<Sink>(root_ / "sink");
  const std::string url = sink->url();
  sink.reset();  // down: nothing listens on its port
  const auto c = config("- {name: hook, type: webhook, url: '" + url +
                        "', timeout: 2s, retry: {initial: 100ms, max: 400ms}}");
  queue(c, 0, 20);
  auto d = deliverer(c);
  d->start();
  ASSERT_TRUE(wait_until([&] { return d->status().failed >= 2; }, 10s));
  EXPECT_EQ(d->status().state, "retrying");
  EXPECT_EQ(d->status().backlog, 20u);
  EXPECT_NE(d->status().last_error.find("cannot reach"), std::string::npos)
      << d->status().last_error;
  // Up again, on the same port (the sink takes a new one: the test rewrites nothing, so the
  // output's URL must be the new one; a restarted destination keeps its address).
  // Here: a second sink, and the output pointed at it, as an operator would do by restart.
  d->stop();
  fs::create_directories(root_ / "sink2");
  Sink up(root_ / "sink2");
  auto c2 = config("- {name: hook, type: webhook, url: '" + up.url() +
                   "', timeout: 2s, retry: {initial: 100ms, max: 400ms}}");
  auto d2 = deliverer(c2);  // same name: same queue, the 20 still there
  EXPECT_EQ(d2->status().backlog, 20u);
  d2->start();
  ASSERT_TRUE(wait_until([&] { return up.requests().size() >= 20; }, 20s));
  std::set<std::string> want;
  for (int i = 0; i < 20; ++i) want.insert("alert-" + std::to_string(i));
  EXPECT_EQ(ids_of(up.requests()), want);
  ASSERT_TRUE(wait_until([&] { return d2->status().backlog == 0; }, 5s));
  EXPECT_EQ(*store_->count_deliveries(c.id), 0u);
  d2->stop();
}

TEST_F(OutputsTest, RetryAfterIsHonouredAndRetriesAreCounted) {
  Sink sink(root_);
  sink.control(R"({"fail_next": 2, "status": 429, "retry_after": "1"})");
  const auto c = config("- {name: hook, type: webhook, url: '" + sink.url() +
                        "', format: ecs, retry: {initial: 10ms, max: 5s}}");
  queue(c, 0, 3);
  auto d = deliverer(c);
  const auto t0 = std::chrono::steady_clock::now();
  d->start();
  ASSERT_TRUE(wait_until([&] { return d->status().delivered == 3; }, 15s));
  const auto took = std::chrono::steady_clock::now() - t0;
  // Two 429s with Retry-After: 1 each: at least two seconds, where the backoff alone (10 ms,
  // 20 ms) would have retried at once.
  EXPECT_GE(took, 1900ms);
  EXPECT_EQ(d->status().failed, 2u);
  EXPECT_GE(d->status().retried, 1u);
  EXPECT_EQ(d->status().delivered, 3u);
  // ECS documents, keyed by the alert id.
  std::set<std::string> ids;
  for (const auto& r : sink.requests()) {
    rapidjson::Document body;
    body.Parse(r["body"].GetString());
    EXPECT_STREQ(body["event"]["kind"].GetString(), "signal");
    ids.insert(body["event"]["id"].GetString());
  }
  EXPECT_EQ(ids, (std::set<std::string>{"alert-0", "alert-1", "alert-2"}));
  d->stop();
}

TEST_F(OutputsTest, SplunkHecBatchesEventsWithItsTokenAndARefusedBatchDoesNotBlockTheQueue) {
  Sink sink(root_);
  std::ofstream(root_ / "token") << "hec-secret-token\n";
  const auto c = config("- {name: hec, type: splunk_hec, url: '" + sink.url("") +
                        "', token: {file: " + (root_ / "token").string() +
                        "}, index: security, batch_size: 50, format: ocsf}");
  queue(c, 0, 120);
  auto d = deliverer(c);
  d->start();
  ASSERT_TRUE(wait_until([&] { return d->status().delivered == 120; }, 15s));
  const auto requests = sink.requests();
  EXPECT_EQ(requests.size(), 3u);  // 50 + 50 + 20
  std::set<std::string> ids;
  for (const auto& r : requests) {
    EXPECT_STREQ(r["path"].GetString(), "/services/collector/event");
    EXPECT_STREQ(r["headers"]["Authorization"].GetString(), "Splunk hec-secret-token");
    // HEC's batch: event objects one after another.
    std::string body = r["body"].GetString();
    rapidjson::Document one;
    size_t pos = 0;
    while (pos < body.size()) {
      rapidjson::Reader reader;
      rapidjson::StringStream ss(body.c_str() + pos);
      one.ParseStream<rapidjson::kParseStopWhenDoneFlag>(ss);
      ASSERT_FALSE(one.HasParseError()) << body.substr(pos, 200);
      EXPECT_STREQ(one["index"].GetString(), "security");
      EXPECT_STREQ(one["sourcetype"].GetString(), "vigil:alert");
      EXPECT_EQ(one["event"]["class_uid"].GetInt(), 2004);
      ids.insert(one["event"]["finding_info"]["uid"].GetString());
      pos += ss.Tell();
    }
  }
  EXPECT_EQ(ids.size(), 120u);

  // A batch the destination refuses for good (400) is dropped and counted; the next goes.
  sink.control(R"({"fail_next": 1, "status": 400})");
  queue(c, 1000, 50);
  queue(c, 2000, 10);
  d->queued(60);
  ASSERT_TRUE(wait_until([&] { return d->status().delivered == 130; }, 15s));
  EXPECT_EQ(d->status().refused, 50u);
  EXPECT_EQ(*store_->count_deliveries(c.id), 0u);
  d->stop();
}

TEST_F(OutputsTest, AHangingDestinationDelaysNeitherTheOtherOutputsNorItsOwnStop) {
  fs::create_directories(root_ / "slow");
  fs::create_directories(root_ / "fast");
  Sink slow(root_ / "slow"), fast(root_ / "fast");
  slow.control(R"({"hang": true})");
  auto set = OutputSet::create(
      {config("- {name: slow, type: webhook, url: '" + slow.url() + "', timeout: 1s}"),
       config("- {name: fast, type: slack, url: '" + fast.url() + "'}")},
      *store_, metrics_, SystemClock::instance());
  ASSERT_TRUE(set) << set.status().to_string();
  const auto slow_c = config("- {name: slow, type: webhook, url: '" + slow.url() + "'}");
  const auto fast_c = config("- {name: fast, type: slack, url: '" + fast.url() + "'}");
  queue(slow_c, 0, 5);
  queue(fast_c, 0, 5);
  (*set)->start();
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_until([&] { return fast.requests().size() >= 5; }, 10s));
  const auto fast_took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(fast_took, 3s) << "the fast output waited on the hanging one";
  // Slack's body is a text line.
  rapidjson::Document body;
  body.Parse(fast.requests()[0]["body"].GetString());
  EXPECT_EQ(std::string(body["text"].GetString()).rfind("[HIGH] Rule one on ws-", 0), 0u);
  // The hanging one times out (1 s), counts, keeps its alerts.
  ASSERT_TRUE(wait_until(
      [&] {
        const std::string json = (*set)->status_json();
        return json.find(R"("name":"slow","type":"webhook","state":"retrying")") !=
               std::string::npos;
      },
      10s))
      << (*set)->status_json();
  EXPECT_EQ(*store_->count_deliveries(slow_c.id), 5u);
  const auto stop0 = std::chrono::steady_clock::now();
  (*set)->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - stop0, 3s) << "stop waited on the hang";
}

// HTTPS webhooks: the destination's certificate is verified against the output's CA file
// (tests/data/tls); an HTTPS server vigil's own (api::HttpServer) stands in for the hook.
TEST_F(OutputsTest, AnHttpsWebhookIsVerifiedAgainstItsCaFile) {
  const std::string tls = VIGIL_SOURCE_DIR "/tests/data/tls/";
  std::atomic<int> received{0};
  api::Router router;
  router.add(
      "POST", "/hook",
      [&](const api::HttpRequest&) {
        ++received;
        return api::HttpResponse::json(R"({"ok":true})");
      },
      api::Access::kOpen);
  api::HttpServerOptions o;
  o.port = 0;
  o.tls_cert_file = tls + "server_a.pem";
  o.tls_key_file = tls + "server_a.key";
  auto server = api::HttpServer::start(o, std::move(router));
  ASSERT_TRUE(server) << server.status().to_string();
  const std::string url = "https://127.0.0.1:" + std::to_string((*server)->port()) + "/hook";
  const auto wrong =
      config("- {name: hook, type: webhook, url: '" + url + "', tls: {ca_file: " + tls +
             "ca_b.pem}, retry: {initial: 100ms, max: 200ms}}");
  queue(wrong, 0, 5);
  auto d = deliverer(wrong);
  d->start();
  ASSERT_TRUE(wait_until([&] { return d->status().failed >= 2; }, 10s));
  EXPECT_EQ(received.load(), 0);
  EXPECT_NE(d->status().last_error.find("certificate verify failed"), std::string::npos)
      << d->status().last_error;
  d->stop();
  const auto right = config("- {name: hook, type: webhook, url: '" + url +
                            "', tls: {ca_file: " + tls + "ca_a.pem}}");
  auto d2 = deliverer(right);
  d2->start();
  ASSERT_TRUE(wait_until([&] { return d2->status().delivered == 5; }, 10s))
      << d2->status().last_error;
  EXPECT_EQ(received.load(), 5);
  d2->stop();
  (*server)->stop();
}

TEST_F(OutputsTest, TheRateLimitSpacesTheSends) {
  Sink sink(root_);
  const auto c = config("- {name: hook, type: webhook, url: '" + sink.url() + "', rate_limit: 20}");
  queue(c, 0, 40);
  auto d = deliverer(c);
  const auto t0 = std::chrono::steady_clock::now();
  d->start();
  ASSERT_TRUE(wait_until([&] { return d->status().delivered == 40; }, 15s));
  // 20 per second from the start (the bucket starts with one send's worth): about 2 s.
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 1800ms);
  d->stop();
}

TEST_F(OutputsTest, ABacklogPastItsBoundDropsTheOldestAndCountsThem) {
  const auto c = config(
      "- {name: hook, type: webhook, url: 'http://127.0.0.1:9', max_backlog: 10, timeout: 1s,"
      " retry: {initial: 50ms, max: 100ms}}");
  queue(c, 0, 25);
  auto d = deliverer(c);
  d->start();
  ASSERT_TRUE(wait_until([&] { return d->status().dropped == 15; }, 10s));
  EXPECT_EQ(*store_->count_deliveries(c.id), 10u);
  // The newest stayed.
  auto left = store_->read_deliveries(c.id, "", 100);
  ASSERT_TRUE(left);
  EXPECT_NE((*left)[0].json.find("alert-15"), std::string::npos);
  d->stop();
}

TEST_F(OutputsTest, SyslogRfc5424OverTcpAndUdpReachesRsyslog) {
  const uint16_t tcp = free_port(), udp = free_port(true);
  const fs::path out = root_ / "rsyslog.out";
  std::ofstream(root_ / "rsyslog.conf")
      << "global(workDirectory=\"" << root_.string() << "\")\n"
      << "module(load=\"imtcp\")\nmodule(load=\"imudp\")\n"
      << "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"" << tcp << "\")\n"
      << "input(type=\"imudp\" address=\"127.0.0.1\" port=\"" << udp << "\")\n"
      << "template(name=\"parsed\" type=\"string\" string=\"%pri%|%protocol-version%|%app-name%|"
         "%msgid%|%structured-data%|%msg%\\n\")\n"
      << "*.* action(type=\"omfile\" file=\"" << out.string() << "\" template=\"parsed\")\n";
  test::Subprocess rsyslog({"/usr/sbin/rsyslogd", "-n", "-f", (root_ / "rsyslog.conf").string(),
                            "-i", (root_ / "rsyslog.pid").string()},
                           (root_ / "rsyslog.err").string());
  // rsyslog listens once it has started; a refused connection is retried by the output.
  const auto tcp_c =
      config("- {name: siem, type: syslog, address: '127.0.0.1:" + std::to_string(tcp) +
             "', transport: tcp, message: cef, facility: auth, batch_size: 10,"
             " retry: {initial: 100ms, max: 500ms}}");
  const auto udp_c =
      config("- {name: siem-udp, type: syslog, address: '127.0.0.1:" + std::to_string(udp) +
             "', transport: udp, format: ecs}");
  queue(tcp_c, 0, 25);
  auto d = deliverer(tcp_c);
  d->start();
  ASSERT_TRUE(wait_until([&] { return d->status().delivered == 25; }, 20s))
      << d->status().last_error << read_file(root_ / "rsyslog.err");
  // UDP gives no answer: start the output once rsyslog is known to listen (TCP delivered).
  queue(udp_c, 100, 5);
  auto du = deliverer(udp_c);
  du->start();
  ASSERT_TRUE(wait_until([&] { return lines_of(out).size() >= 30; }, 20s))
      << read_file(out) << read_file(root_ / "rsyslog.err");
  std::set<std::string> tcp_ids, udp_ids;
  for (const auto& l : lines_of(out)) {
    // rsyslog parsed each as RFC 5424: version 1, app-name, msgid, our structured data.
    std::vector<std::string> f;
    std::stringstream ss(l);
    for (std::string x; std::getline(ss, x, '|') && f.size() < 5;) f.push_back(x);
    ASSERT_GE(f.size(), 5u) << l;
    EXPECT_EQ(f[1], "1") << l;
    EXPECT_EQ(f[2], "vigil") << l;
    EXPECT_EQ(f[3], "alert") << l;
    const size_t id_at = f[4].find("id=\"");
    ASSERT_NE(id_at, std::string::npos) << l;
    const std::string id = f[4].substr(id_at + 4, f[4].find('"', id_at + 4) - id_at - 4);
    if (l.find("CEF:0|vigil|vigil|") != std::string::npos) {
      EXPECT_EQ(f[0], "35") << l;  // auth (4) * 8 + err (3): a high alert
      tcp_ids.insert(id);
    } else {
      EXPECT_NE(l.find(R"("kind":"signal")"), std::string::npos) << l;
      udp_ids.insert(id);
    }
  }
  EXPECT_EQ(tcp_ids.size(), 25u);
  EXPECT_EQ(udp_ids.size(), 5u);
  d->stop();
  du->stop();
  rsyslog.signal(SIGTERM);
}

// RFC 5425: syslog over TLS to rsyslog's OpenSSL driver, the server's certificate verified
// against the output's CA file (tests/data/tls: CA A signed the server's); a CA that did not
// sign it fails the handshake and the alerts wait.
TEST_F(OutputsTest, SyslogOverTlsVerifiesTheReceiversCertificate) {
  const std::string tls = VIGIL_SOURCE_DIR "/tests/data/tls/";
  const uint16_t port = free_port();
  const fs::path out = root_ / "rsyslog-tls.out";
  std::ofstream(root_ / "rsyslog-tls.conf")
      << "global(workDirectory=\"" << root_.string() << "\" DefaultNetstreamDriver=\"ossl\"\n"
      << "  DefaultNetstreamDriverCAFile=\"" << tls << "ca_a.pem\"\n"
      << "  DefaultNetstreamDriverCertFile=\"" << tls << "server_a.pem\"\n"
      << "  DefaultNetstreamDriverKeyFile=\"" << tls << "server_a.key\")\n"
      << "module(load=\"imtcp\" StreamDriver.Name=\"ossl\" StreamDriver.Mode=\"1\" "
         "StreamDriver.AuthMode=\"anon\")\n"
      << "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"" << port << "\")\n"
      << "template(name=\"parsed\" type=\"string\" string=\"%app-name%|%structured-data%\\n\")\n"
      << "*.* action(type=\"omfile\" file=\"" << out.string() << "\" template=\"parsed\")\n";
  test::Subprocess rsyslog({"/usr/sbin/rsyslogd", "-n", "-f", (root_ / "rsyslog-tls.conf").string(),
                            "-i", (root_ / "rsyslog-tls.pid").string()},
                           (root_ / "rsyslog-tls.err").string());
  const std::string address = "'127.0.0.1:" + std::to_string(port) + "'";
  // The wrong CA first: no alert may leave.
  const auto wrong =
      config("- {name: siem-tls, type: syslog, transport: tls, address: " + address +
             ", tls: {ca_file: " + tls + "ca_b.pem}, retry: {initial: 100ms, max: 200ms}}");
  queue(wrong, 0, 10);
  auto d = deliverer(wrong);
  d->start();
  ASSERT_TRUE(wait_until([&] { return d->status().failed >= 3; }, 15s));
  EXPECT_EQ(d->status().delivered, 0u);
  EXPECT_NE(d->status().last_error.find("certificate"), std::string::npos)
      << d->status().last_error;
  d->stop();
  // The right CA: the same queue (same name) goes out.
  const auto right =
      config("- {name: siem-tls, type: syslog, transport: tls, address: " + address +
             ", tls: {ca_file: " + tls + "ca_a.pem}, retry: {initial: 100ms, max: 200ms}}");
  auto d2 = deliverer(right);
  d2->start();
  ASSERT_TRUE(wait_until([&] { return d2->status().delivered == 10; }, 15s))
      << d2->status().last_error;
  ASSERT_TRUE(wait_until([&] { return lines_of(out).size() == 10; }, 10s))
      << read_file(out) << read_file(root_ / "rsyslog-tls.err");
  for (const auto& l : lines_of(out))
    EXPECT_EQ(l.rfind("vigil|[vigil@32473 id=\"alert-", 0), 0u) << l;
  d2->stop();
  rsyslog.signal(SIGTERM);
}

}  // namespace
}  // namespace vigil::output
