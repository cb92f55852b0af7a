// HTTPS on the API server and the CLI client (api::http_call): verified handshakes, refused
// peers, bad certificate files, a silent client, and certificate rotation without a restart.
// Fixtures: tests/data/tls (two test CAs, A and B, each with a server certificate for
// 127.0.0.1, ::1 and localhost; make-fixtures.sh regenerates them).

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "support/temp_dir.h"
#include "vigil/api/client.h"
#include "vigil/api/http.h"

namespace vigil::api {
namespace {

namespace fs = std::filesystem;
namespace net = boost::asio;
using tcp = net::ip::tcp;

const fs::path kTls = fs::path(VIGIL_SOURCE_DIR) / "tests" / "data" / "tls";

Router hello_router() {
  Router r;
  r.add(
      "GET", "/hello", [](const HttpRequest&) { return HttpResponse::json(R"({"hello":"tls"})"); },
      Access::kOpen);
  return r;
}

HttpServerOptions tls_options(const std::string& server) {
  HttpServerOptions o;
  o.port = 0;
  o.tls_cert_file = (kTls / ("server_" + server + ".pem")).string();
  o.tls_key_file = (kTls / ("server_" + server + ".key")).string();
  return o;
}

Expected<ClientResponse> get_hello(uint16_t port, const std::string& ca,
                                   const std::string& host = "127.0.0.1") {
  ClientRequest req;
  req.target = "/hello";
  req.ca_file = ca.empty() ? std::string() : (kTls / ca).string();
  req.timeout_ms = 5000;
  return http_call("https://" + host + ":" + std::to_string(port), req);
}

TEST(TlsTest, ServesHttpsToAClientThatTrustsItsCa) {
  auto server = HttpServer::start(tls_options("a"), hello_router());
  ASSERT_TRUE(server) << server.status().to_string();
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    auto res = get_hello((*server)->port(), "ca_a.pem", host);
    ASSERT_TRUE(res) << host << ": " << res.status().to_string();
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body, R"({"hello":"tls"})");
  }
}

TEST(TlsTest, ClientRefusesACertificateFromAnotherCa) {
  auto server = HttpServer::start(tls_options("a"), hello_router());
  ASSERT_TRUE(server) << server.status().to_string();
  auto res = get_hello((*server)->port(), "ca_b.pem");
  ASSERT_FALSE(res);
  EXPECT_NE(res.status().message().find("certificate verify failed"), std::string::npos)
      << res.status().to_string();
  // Nor does the system's CA store know the test CA.
  EXPECT_FALSE(get_hello((*server)->port(), ""));
  // The server is unharmed.
  EXPECT_TRUE(get_hello((*server)->port(), "ca_a.pem"));
}

TEST(TlsTest, PlainHttpOnTheTlsPortIsRefusedCountedAndTheServerGoesOn) {
  Counter failures;
  HttpServerOptions o = tls_options("a");
  o.tls_handshake_failures = &failures;
  auto server = HttpServer::start(o, hello_router());
  ASSERT_TRUE(server) << server.status().to_string();
  ClientRequest req;
  req.target = "/hello";
  req.timeout_ms = 5000;
  auto res = http_call("http://127.0.0.1:" + std::to_string((*server)->port()), req);
  EXPECT_FALSE(res && res->status == 200);
  EXPECT_TRUE(test::wait_for([&] { return failures.value() == 1; }, std::chrono::seconds(5)));
  EXPECT_TRUE(get_hello((*server)->port(), "ca_a.pem"));
  EXPECT_EQ(failures.value(), 1u);
}

TEST(TlsTest, ASilentClientIsDroppedAfterTheReadTimeout) {
  HttpServerOptions o = tls_options("a");
  o.read_timeout_ms = 300;
  auto server = HttpServer::start(o, hello_router());
  ASSERT_TRUE(server) << server.status().to_string();
  net::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), (*server)->port()));
  const auto start = std::chrono::steady_clock::now();
  char byte;
  boost::system::error_code ec;
  net::read(s, net::buffer(&byte, 1), ec);  // blocks until the server closes
  EXPECT_TRUE(ec == net::error::eof || ec == net::error::connection_reset) << ec.message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(get_hello((*server)->port(), "ca_a.pem"));
}

TEST(TlsTest, BadCertificateOrKeyFilesFailTheStartNamingTheFile) {
  test::TempDir tmp("tls");
  const fs::path garbage = tmp / "garbage.pem";
  { std::ofstream(garbage) << "not a certificate\n"; }

  HttpServerOptions o = tls_options("a");
  o.tls_cert_file = garbage.string();
  auto s1 = HttpServer::start(o, hello_router());
  ASSERT_FALSE(s1);
  EXPECT_NE(s1.status().message().find("certificate file '" + garbage.string() + "'"),
            std::string::npos)
      << s1.status().to_string();

  o = tls_options("a");
  o.tls_key_file = tmp / "missing.key";
  auto s2 = HttpServer::start(o, hello_router());
  ASSERT_FALSE(s2);
  EXPECT_NE(s2.status().message().find("missing.key"), std::string::npos)
      << s2.status().to_string();

  o = tls_options("a");
  o.tls_key_file = (kTls / "server_b.key").string();  // not the key of server_a.pem
  auto s3 = HttpServer::start(o, hello_router());
  ASSERT_FALSE(s3);
  EXPECT_NE(s3.status().message().find("server_b.key"), std::string::npos)
      << s3.status().to_string();

  o = tls_options("a");
  o.tls_key_file.clear();
  auto s4 = HttpServer::start(o, hello_router());
  ASSERT_FALSE(s4);
  EXPECT_NE(s4.status().message().find("both a certificate file and a key file"),
            std::string::npos);
}

TEST(TlsTest, ARotatedCertificateIsServedWithoutARestartAndABrokenOneIsNot) {
  test::TempDir tmp("tls");
  const fs::path cert = tmp / "tls.crt", key = tmp / "tls.key";
  fs::copy_file(kTls / "server_a.pem", cert);
  fs::copy_file(kTls / "server_a.key", key);
  HttpServerOptions o;
  o.port = 0;
  o.tls_cert_file = cert.string();
  o.tls_key_file = key.string();
  o.tls_reload_interval_ms = 1;
  auto server = HttpServer::start(o, hello_router());
  ASSERT_TRUE(server) << server.status().to_string();
  const uint16_t port = (*server)->port();
  ASSERT_TRUE(get_hello(port, "ca_a.pem"));
  ASSERT_FALSE(get_hello(port, "ca_b.pem"));

  // A rotation caught half-way (new certificate, old key) keeps the previous pair.
  fs::copy_file(kTls / "server_b.pem", cert, fs::copy_options::overwrite_existing);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(get_hello(port, "ca_a.pem"));

  // Once the key follows, new connections get certificate B.
  fs::copy_file(kTls / "server_b.key", key, fs::copy_options::overwrite_existing);
  bool rotated = false;
  for (int i = 0; i < 200 && !rotated; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    rotated = static_cast<bool>(get_hello(port, "ca_b.pem"));
  }
  EXPECT_TRUE(rotated);
  EXPECT_FALSE(get_hello(port, "ca_a.pem"));
}

}  // namespace
}  // namespace vigil::api
