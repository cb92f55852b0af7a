#include "vigil/api/http.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <span>
#include <thread>

#include "api_fixture.h"
#include "page_cache.h"
#include "support/http_client.h"
#include "support/temp_dir.h"
#include "vigil/api/auth.h"
#include "vigil/api/service.h"

namespace vigil::api {
namespace {

namespace fs = std::filesystem;
using test::http_get;
using test::http_raw;
using test_support::ApiTest;
using test_support::numbers;

TEST_F(ApiTest, MalformedAndOversizedRequests) {
  auto raw = http_raw("127.0.0.1", server_->port(), "GARBAGE\r\n\r\n");
  EXPECT_EQ(raw.rfind("HTTP/1.1 400", 0), 0u) << raw;
  raw =
      http_raw("127.0.0.1", server_->port(),
               "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(8000, 'a') + "\r\n\r\n");
  EXPECT_EQ(raw.rfind("HTTP/1.1 431", 0), 0u) << raw.substr(0, 100);
  raw = http_raw("127.0.0.1", server_->port(),
                 "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n");
  EXPECT_EQ(raw.rfind("HTTP/1.1 413", 0), 0u) << raw.substr(0, 100);
  // The server is still healthy afterwards.
  EXPECT_EQ(get("/healthz").status, 200);
}

TEST_F(ApiTest, KeepAliveServesManyRequestsOnOneConnection) {
  std::string req;
  for (int i = 0; i < 3; ++i) req += "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  req += "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  const std::string raw = http_raw("127.0.0.1", server_->port(), req);
  size_t count = 0;
  for (size_t p = 0; (p = raw.find("HTTP/1.1 200", p)) != std::string::npos; ++p) ++count;
  EXPECT_EQ(count, 4u) << raw;
}

TEST(HttpServerTest, ASlowRouteDoesNotHoldUpTheOtherConnectionsOfItsThread) {
  Router router;
  std::atomic<bool> started{false}, release{false}, finished{false};
  router.add(
      "GET", "/slow",
      [&](const HttpRequest&) {
        started = true;
        while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        finished = true;
        return HttpResponse::json(R"({"done":true})");
      },
      Access::kOpen, Router::Cost::kSlow);
  router.add(
      "GET", "/fast", [](const HttpRequest&) { return HttpResponse::json(R"({"fast":true})"); },
      Access::kOpen);
  HttpServerOptions o;
  o.port = 0;
  o.threads = 1;  // every connection on the one I/O thread
  auto server = HttpServer::start(o, std::move(router));
  ASSERT_TRUE(server);
  const uint16_t port = (*server)->port();
  test::HttpResult slow;
  std::thread client([&] { slow = http_get("127.0.0.1", port, "/slow"); });
  while (!started.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // Served while the slow handler still runs.
  for (int i = 0; i < 3; ++i) {
    auto fast = http_get("127.0.0.1", port, "/fast");
    EXPECT_EQ(fast.status, 200);
    EXPECT_EQ(fast.body, R"({"fast":true})");
  }
  EXPECT_FALSE(finished.load());
  release = true;
  client.join();
  EXPECT_EQ(slow.status, 200);
  EXPECT_EQ(slow.body, R"({"done":true})");
}

class HttpServerStopTest : public ::testing::TestWithParam<Router::Cost> {};

TEST_P(HttpServerStopTest, StopAnswersRequestsInFlight) {
  Router router;
  std::atomic<bool> started{false};
  router.add(
      "GET", "/slow",
      [&](const HttpRequest&) {
        started = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(400));
        return HttpResponse::json(R"({"done":true})");
      },
      Access::kOpen, GetParam());
  HttpServerOptions o;
  o.port = 0;
  auto server = HttpServer::start(o, std::move(router));
  ASSERT_TRUE(server);
  const uint16_t port = (*server)->port();
  test::HttpResult result;
  std::thread client([&] { result = http_get("127.0.0.1", port, "/slow"); });
  while (!started.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  (*server)->stop();
  client.join();
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.body, R"({"done":true})");
  // Stopped: no new connection is served.
  EXPECT_EQ(http_get("127.0.0.1", port, "/slow").status, 0);
}
INSTANTIATE_TEST_SUITE_P(OnTheIoThreadAndOnTheSlowPool, HttpServerStopTest,
                         ::testing::Values(Router::Cost::kFast, Router::Cost::kSlow));

TEST(QueryParsing, DecodesAndRejects) {
  auto q = parse_query("a=1&b=x%20y+z&&c&d=%2F");
  ASSERT_TRUE(q);
  ASSERT_EQ(q->size(), 4u);
  EXPECT_EQ((*q)[1].second, "x y z");
  EXPECT_EQ((*q)[2].first, "c");
  EXPECT_EQ((*q)[2].second, "");
  EXPECT_EQ((*q)[3].second, "/");
  EXPECT_FALSE(parse_query("a=%"));
  EXPECT_FALSE(parse_query("a=%4"));
  EXPECT_FALSE(parse_query("a=%g0"));
}

}  // namespace
}  // namespace vigil::api