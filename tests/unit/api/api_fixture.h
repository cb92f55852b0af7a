#pragma once
// The API over a real store and a real HTTP server on a loopback port: 30 alerts and 20
// events, tokens of both roles, a one-logsource mapping. Shared by service_test.cc and
// http_test.cc.

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <span>

#include "support/http_client.h"
#include "support/temp_dir.h"
#include "vigil/api/auth.h"
#include "vigil/api/http.h"
#include "vigil/api/service.h"

namespace vigil::api::test_support {

using test::http_get;
using test::http_raw;

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::Store::open({tmp_ / "data"});
    ASSERT_TRUE(s);
    store_ = std::move(*s);
    std::vector<store::AlertRecord> alerts;
    for (int i = 0; i < 30; ++i) {
      store::AlertRecord a;
      a.id = store::AlertId::derive("events", 0, i, i % 2 ? "rule-odd" : "rule-even");
      a.time = kBase + i * 1000;
      a.rule_id = i % 2 ? "rule-odd" : "rule-even";
      a.host = "host" + std::to_string(i % 3);
      // Alerts 0..24 have a summary (the document before "matched"); 25..29 are whole, as
      // alerts stored before summaries existed.
      a.json = R"({"n":)" + std::to_string(i) +
               (i < 25 ? R"(,"matched":[{"field":"n"}],"event":{"e":1}})" : "}");
      if (i < 25) a.summary_size = a.json.find(R"(,"matched")");
      a.level = i % 5 == 0 ? store::AlertLevel::kCritical : store::AlertLevel::kMedium;
      a.title = i % 2 ? kOddTitle : kEvenTitle;
      a.tags = i % 2 ? std::span<const std::string>(kOddTags) : std::span<const std::string>();
      alerts.push_back(a);
    }
    std::vector<std::string> payloads;
    for (int i = 0; i < 20; ++i)
      payloads.push_back(R"({"host":"host)" + std::to_string(i % 3) + R"(","n":)" +
                         std::to_string(i) + "}");
    payloads[7] =
        R"({"host":"host1","n":7,"broken":[1,})";  // invalid where no rule reads: kept as a string
    std::vector<store::EventRecord> events;
    for (int i = 0; i < 20; ++i)
      events.push_back({kBase + i * 1000, "c/events", 0, i, payloads[static_cast<size_t>(i)]});
    ASSERT_TRUE(store_->put_batch(alerts, {}, {}, events).is_ok());
    metrics_.counter("vigil_test_total", "test").inc(7);
    ApiContext ctx{store_.get(), &metrics_, &clock_, [this] { return ready_.load(); },
                   tmp_ / "checkpoints"};
    auto tokens = TokenSet::parse_file_text(
        std::string("admin ") + kAdmin + "\nreader " + kReader + "\n", "tokens");
    ASSERT_TRUE(tokens) << tokens.status().to_string();
    ctx.tokens = std::make_shared<const TokenSet>(std::move(*tokens));
    ctx.open_metrics = open_metrics_;
    auto mapping = match::FieldMapping::parse(
        "name: t\nhost_field: host\nlogsources:\n  - name: low\n    match: {product: test, "
        "category: low}\n"
        "    where: {n: [0, 1, 2, 3, 4]}\n",
        "test mapping");
    ASSERT_TRUE(mapping) << mapping.status().to_string();
    mapping_ = std::make_unique<match::FieldMapping>(std::move(*mapping));
    ctx.mapping = mapping_.get();
    HttpServerOptions o;
    o.port = 0;
    o.max_header_bytes = 4096;
    auto server = HttpServer::start(o, make_router(ctx));
    ASSERT_TRUE(server) << server.status().to_string();
    server_ = std::move(*server);
  }
  void TearDown() override {
    server_.reset();
    store_.reset();
  }
  // A GET with the reader token.
  test::HttpResult get(const std::string& target) {
    return http_get("127.0.0.1", server_->port(), target,
                    {{"Authorization", std::string("Bearer ") + kReader}});
  }
  void expect_problem(const std::string& target, int status, const std::string& mention) {
    auto r = get(target);
    EXPECT_EQ(r.status, status) << target << " -> " << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json") << target;
    rapidjson::Document d;
    d.Parse(r.body.c_str());
    ASSERT_FALSE(d.HasParseError()) << r.body;
    EXPECT_EQ(d["status"].GetInt(), status);
    EXPECT_NE(std::string(d["detail"].GetString()).find(mention), std::string::npos)
        << target << " -> " << r.body;
  }

  static constexpr char kAdmin[] = "admin-token-0123456789abcdef";
  static constexpr char kReader[] = "reader-token-0123456789abcdef";
  bool open_metrics_ = true;
  static constexpr TimeMs kBase = 1795539600000;  // 2026-11-24T17:00:00Z
  static constexpr std::string_view kOddTitle = "Suspicious Encoded PowerShell";
  static constexpr std::string_view kEvenTitle = "Run Key Persistence";
  inline static const std::vector<std::string> kOddTags = {"attack.execution", "attack.t1059.001"};
  test::TempDir tmp_{"api"};
  std::unique_ptr<store::Store> store_;
  MetricsRegistry metrics_;
  ManualClock clock_{kBase + 3'600'000};
  std::atomic<bool> ready_{true};
  std::unique_ptr<match::FieldMapping> mapping_;
  std::unique_ptr<HttpServer> server_;
};

inline std::vector<int> numbers(const std::string& body, std::string* cursor = nullptr) {
  rapidjson::Document d;
  d.Parse(body.c_str());
  std::vector<int> out;
  if (d.HasParseError()) return out;
  for (const auto& a : d["alerts"].GetArray()) out.push_back(a["n"].GetInt());
  if (cursor) *cursor = d["next_cursor"].IsNull() ? "" : d["next_cursor"].GetString();
  EXPECT_EQ(d["count"].GetUint64(), out.size());
  return out;
}
}  // namespace vigil::api::test_support
