// The HTTP server under hostile clients: bodies held before authentication, idle sockets
// that lock others out, invalid UTF-8 echoed back (issue: hardening from an adversarial probe).
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/http_client.h"
#include "vigil/api/auth.h"
#include "vigil/api/http.h"
#include "vigil/core/metrics.h"
#include "vigil/core/utf8.h"

namespace vigil::api {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr char kAdmin[] = "admin-token-0123456789abcdef";

// A raw client socket: bytes in, bytes out, with a deadline on reads.
class RawClient {
 public:
  RawClient(uint16_t port, const std::string& from = "127.0.0.1") : socket_(io_) {
    socket_.open(tcp::v4());
    socket_.bind(tcp::endpoint(net::ip::make_address(from), 0));
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }
  void send(const std::string& bytes) { net::write(socket_, net::buffer(bytes)); }
  // What the server sends within `ms` (until it closes, or a full response is in).
  std::string receive(int ms = 3000) {
    std::string out;
    socket_.non_blocking(true);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    char buf[4096];
    while (std::chrono::steady_clock::now() < deadline) {
      boost::system::error_code ec;
      const size_t n = socket_.read_some(net::buffer(buf), ec);
      if (ec == net::error::would_block) {
        if (complete(out)) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      if (ec) {
        closed_ = true;
        break;
      }
      out.append(buf, n);
    }
    return out;
  }
  bool closed() const { return closed_; }
  // Whether the server closed the connection within `ms`.
  bool closed_within(int ms) {
    receive(ms);
    return closed_;
  }

 private:
  static bool complete(const std::string& r) {
    const size_t end = r.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    const size_t cl = r.find("Content-Length: ");
    if (cl == std::string::npos || cl > end) return true;
    return r.size() >= end + 4 + std::stoul(r.substr(cl + 16));
  }
  net::io_context io_;
  tcp::socket socket_;
  bool closed_ = false;
};

class HttpLimitsTest : public ::testing::Test {
 protected:
  void start(HttpServerOptions o) {
    Router r;
    r.add(
        "GET", "/healthz",
        [](const HttpRequest&) { return HttpResponse::json(R"({"status":"ok"})"); }, Access::kOpen);
    r.add(
        "POST", "/upload",
        [](const HttpRequest& req) {
          return HttpResponse::json(R"({"bytes":)" + std::to_string(req.body.size()) + "}");
        },
        Access::kAdmin);
    r.add(
        "GET", "/echo",
        [](const HttpRequest& req) {
          // A handler that copies request bytes into its JSON as they are.
          return HttpResponse::json(R"({"q":")" + std::string(req.param("q").value_or("")) +
                                    R"("})");
        },
        Access::kOpen);
    auto tokens = TokenSet::parse_file_text(std::string("admin ") + kAdmin + "\n", "tokens");
    ASSERT_TRUE(tokens);
    r.set_tokens(std::make_shared<const TokenSet>(std::move(*tokens)));
    o.port = 0;
    o.repaired_bodies = &metrics_.counter("repaired", "");
    o.connections_evicted = &metrics_.counter("evicted", "");
    o.connections_refused = &metrics_.counter("refused", "");
    o.bodies_refused = &metrics_.counter("bodies_refused", "");
    auto s = HttpServer::start(o, std::move(r));
    ASSERT_TRUE(s) << s.status().to_string();
    server_ = std::move(*s);
  }
  uint16_t port() const { return server_->port(); }
  int healthz() { return test::http_get("127.0.0.1", port(), "/healthz").status; }
  static std::string post_header(size_t length, const std::string& token = "") {
    std::string h =
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(length) + "\r\n";
    if (!token.empty()) h += "Authorization: Bearer " + token + "\r\n";
    return h + "\r\n";
  }
  MetricsRegistry metrics_;
  std::unique_ptr<HttpServer> server_;
};

// The 401 is sent from the header alone: the 31 MB body announced is never read or held.
TEST_F(HttpLimitsTest, UnauthenticatedBodiesAreRefusedBeforeTheyAreRead) {
  HttpServerOptions o;
  o.max_body_bytes = 32 << 20;
  start(o);
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 20; ++i) {
    clients.push_back(std::make_unique<RawClient>(port()));
    clients.back()->send(post_header(32505856));
  }
  for (auto& c : clients) {
    const std::string r = c->receive();
    EXPECT_NE(r.find("HTTP/1.1 401"), std::string::npos) << r;
    EXPECT_NE(r.find("Connection: close"), std::string::npos) << r;
  }
  // A wrong token, and a route that does not exist, likewise.
  RawClient bad(port());
  bad.send(post_header(1 << 20, "wrong"));
  EXPECT_NE(bad.receive().find("HTTP/1.1 401"), std::string::npos);
  RawClient missing(port());
  missing.send("POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n");
  EXPECT_NE(missing.receive().find("HTTP/1.1 404"), std::string::npos);
  // An authorised body is read and handled.
  RawClient ok(port());
  ok.send(post_header(5, kAdmin) + "hello");
  EXPECT_NE(ok.receive().find(R"({"bytes":5})"), std::string::npos);
  // A client that asks first (Expect: 100-continue, as curl does) is told to go on only once
  // admitted, and refused without sending its body otherwise.
  const std::string expect =
      "POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n";
  RawClient asks(port());
  asks.send(expect + "Authorization: Bearer " + kAdmin + "\r\n\r\n");
  EXPECT_NE(asks.receive(1000).find("HTTP/1.1 100 Continue"), std::string::npos);
  asks.send("hello");
  EXPECT_NE(asks.receive().find(R"({"bytes":5})"), std::string::npos);
  RawClient refused(port());
  refused.send(expect + "\r\n");
  const std::string r = refused.receive();
  EXPECT_NE(r.find("HTTP/1.1 401"), std::string::npos) << r;
  EXPECT_EQ(r.find("100 Continue"), std::string::npos) << r;
}

// Bodies being read share a budget: past it a request is answered 503 with Retry-After
// before its body is read; once the budget is free again the same request goes through.
TEST_F(HttpLimitsTest, BodiesInFlightShareAMemoryBudget) {
  HttpServerOptions o;
  o.max_body_bytes = 8 << 20;
  o.max_body_bytes_in_flight = 12 << 20;
  start(o);
  RawClient first(port());
  first.send(post_header(8 << 20, kAdmin));  // reserves 8 MB, sends no body yet
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  RawClient second(port());
  second.send(post_header(8 << 20, kAdmin));
  const std::string refused = second.receive();
  EXPECT_NE(refused.find("HTTP/1.1 503"), std::string::npos) << refused;
  EXPECT_NE(refused.find("Retry-After: 1"), std::string::npos) << refused;
  EXPECT_EQ(metrics_.counter_value("bodies_refused"), 1u);
  RawClient small(port());  // 1 MB still fits beside the 8
  small.send(post_header(1 << 20, kAdmin) + std::string(1 << 20, 'x'));
  EXPECT_NE(small.receive().find(R"({"bytes":1048576})"), std::string::npos);
  first.send(std::string(8 << 20, 'x'));
  EXPECT_NE(first.receive(10000).find(R"({"bytes":8388608})"), std::string::npos);
  RawClient third(port());
  third.send(post_header(8 << 20, kAdmin) + std::string(8 << 20, 'y'));
  EXPECT_NE(third.receive(10000).find(R"({"bytes":8388608})"), std::string::npos);
}

// Idle keep-alive connections and silent sockets filling the server: a new client (a probe)
// still gets in, by evicting the oldest idle connection.
TEST_F(HttpLimitsTest, IdleConnectionsCannotLockOthersOut) {
  HttpServerOptions o;
  o.max_connections = 8;
  o.max_connections_per_client = 0;
  o.idle_timeout_ms = 60'000;
  o.read_timeout_ms = 60'000;
  start(o);
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 4; ++i) {  // keep-alive, after one request each
    idle.push_back(std::make_unique<RawClient>(port()));
    idle.back()->send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_NE(idle.back()->receive().find("200 OK"), std::string::npos);
  }
  for (int i = 0; i < 4; ++i) idle.push_back(std::make_unique<RawClient>(port()));  // silent
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (int probe = 0; probe < 12; ++probe) EXPECT_EQ(healthz(), 200) << "probe " << probe;
  EXPECT_GE(metrics_.counter_value("evicted"),
            1u);  // each probe that found the server full made room
  EXPECT_EQ(metrics_.counter_value("refused"), 0u);
  // Idle ones made the room.
  size_t closed = 0;
  for (auto& c : idle) closed += c->closed_within(200) ? 1 : 0;
  EXPECT_GE(closed, 1u);
}

// One client address at its own limit evicts its own idle connections, never another's.
TEST_F(HttpLimitsTest, PerClientLimitEvictsThatClientsIdleConnections) {
  HttpServerOptions o;
  o.max_connections = 64;
  o.max_connections_per_client = 3;
  start(o);
  RawClient other(port(), "127.0.0.2");
  other.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_NE(other.receive().find("200 OK"), std::string::npos);
  std::vector<std::unique_ptr<RawClient>> mine;
  for (int i = 0; i < 3; ++i) mine.push_back(std::make_unique<RawClient>(port()));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(healthz(), 200);  // a fourth from 127.0.0.1: one of its idle ones makes room
  size_t closed = 0;
  for (auto& c : mine) closed += c->closed_within(200) ? 1 : 0;
  EXPECT_EQ(closed, 1u);
  other.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(other.receive().find("200 OK"), std::string::npos) << "127.0.0.2 kept its connection";
}

// Whatever a handler or an error document copies from the request, the JSON that leaves is
// valid UTF-8 (invalid sequences become U+FFFD), and the repair is counted.
TEST_F(HttpLimitsTest, JsonAnswersAreValidUtf8WhateverTheRequestHeld) {
  start({});
  for (const char* target : {"/api/v1/zz%ff%c0%af", "/echo?q=%ff%fe", "/echo?%ff%fe=1&q=a%c3"}) {
    const auto r = test::http_get("127.0.0.1", port(), target);
    ASSERT_NE(r.status, 0) << target;
    EXPECT_TRUE(utf8::valid(r.body)) << target;
    rapidjson::Document d;
    d.Parse<rapidjson::kParseValidateEncodingFlag>(r.body.c_str());
    EXPECT_FALSE(d.HasParseError()) << target << ": " << r.body;
  }
  const auto r = test::http_get("127.0.0.1", port(), "/api/v1/zz%ff%c0%af");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("zz\xef\xbf\xbd"), std::string::npos) << r.body;
  EXPECT_GE(metrics_.counter_value("repaired"), 2u);
}

// Bundle validations and dry runs run on a pool of their own with a bounded queue: queries
// (event hunts on the slow pool) answer while two heavy uploads are in progress, and a third
// upload is 503 at once instead of waiting behind them.
TEST(HttpContentPool, ValidationsNeverHoldUpQueriesAndQueueBounded) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> running{0};
  Router r;
  r.add(
      "POST", "/validate",
      [&](const HttpRequest&) {
        running.fetch_add(1);
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return release; });
        return HttpResponse::json(R"({"validated":true})");
      },
      Access::kOpen, Router::Cost::kContent);
  r.add(
      "GET", "/hunt", [](const HttpRequest&) { return HttpResponse::json(R"({"events":[]})"); },
      Access::kOpen, Router::Cost::kSlow);
  HttpServerOptions o;
  o.port = 0;
  o.slow_threads = 1;
  o.content_threads = 1;
  o.max_content_requests = 2;
  auto server = HttpServer::start(o, std::move(r));
  ASSERT_TRUE(server);
  const uint16_t port = (*server)->port();
  RawClient first(port), second(port);
  first.send("POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  second.send("POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  for (int i = 0; i < 200 && running.load() < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(running.load(), 1);  // one running, one waiting
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  RawClient third(port);
  third.send("POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  const std::string busy = third.receive();
  EXPECT_NE(busy.find("HTTP/1.1 503"), std::string::npos) << busy;
  EXPECT_NE(busy.find("Retry-After: 5"), std::string::npos) << busy;
  EXPECT_EQ(test::http_get("127.0.0.1", port, "/hunt").status, 200);  // not behind the validations
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  EXPECT_NE(first.receive().find(R"({"validated":true})"), std::string::npos);
  EXPECT_NE(second.receive().find(R"({"validated":true})"), std::string::npos);
}

TEST(Utf8, RepairKeepsValidTextAndReplacesEachInvalidSequence) {
  EXPECT_EQ(utf8::repaired("plain \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "plain \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(utf8::repaired("a\xff"
                           "b"),
            "a\xef\xbf\xbd"
            "b");
  EXPECT_EQ(utf8::repaired("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd");                  // overlong
  EXPECT_EQ(utf8::repaired("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // surrogate
  EXPECT_EQ(utf8::repaired("x\xe2\x82"), "x\xef\xbf\xbd\xef\xbf\xbd");                // cut short
  EXPECT_EQ(utf8::first_invalid("ab\xf5"
                                "c"),
            std::optional<size_t>(2));
  EXPECT_EQ(utf8::describe_invalid("id: x\ntitle: bad \xff here\n"),
            "not valid UTF-8 at line 2 (key 'title')");
  EXPECT_EQ(utf8::describe_invalid("fine: yes\n"), "");
}

}  // namespace
}  // namespace vigil::api
