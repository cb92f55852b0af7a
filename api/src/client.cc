#include "vigil/api/client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "vigil/api/await.h"

namespace vigil::api {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

template <class Stream>
ClientResponse exchange(net::io_context& ioc, Stream& stream, const std::string& host,
                        const ClientRequest& request, http::verb verb, bool keep_alive) {
  http::request<http::string_body> req{verb, request.target, 11};
  req.set(http::field::host, host);
  req.set(http::field::user_agent, request.user_agent);
  if (!request.bearer_token.empty())
    req.set(http::field::authorization, "Bearer " + request.bearer_token);
  if (!request.body.empty()) req.set(http::field::content_type, request.content_type);
  for (const auto& [name, value] : request.headers) req.set(name, value);
  req.body() = request.body;
  req.keep_alive(keep_alive);
  req.prepare_payload();
  await(ioc, [&](auto&& done) { http::async_write(stream, req, done); });
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(request.max_response_bytes);
  await(ioc, [&](auto&& done) { http::async_read(stream, buffer, parser, done); });
  auto& res = parser.get();
  ClientResponse out;
  out.status = res.result_int();
  out.content_type = std::string(res[http::field::content_type]);
  out.retry_after = std::string(res[http::field::retry_after]);
  out.keep_alive = res.keep_alive();
  out.body = std::move(res.body());
  return out;
}

}  // namespace

struct HttpConnection::Impl {
  std::string server, host, port;
  bool https = false;
  net::io_context ioc;
  std::unique_ptr<ssl::context> ctx;
  std::unique_ptr<beast::tcp_stream> tcp;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;

  bool connected() const { return tcp || tls; }
  void disconnect() {
    beast::error_code ec;
    if (tcp) tcp->socket().shutdown(tcp::socket::shutdown_both, ec);
    if (tls) beast::get_lowest_layer(*tls).socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp.reset();
    tls.reset();
  }
  // Throws on failure; a Status for what is wrong with the request itself.
  Status connect(const ClientRequest& request) {
    tcp::resolver resolver(ioc);
    const auto endpoints = resolver.resolve(host, port);
    const auto deadline = std::chrono::milliseconds(request.timeout_ms);
    if (!https) {
      auto s = std::make_unique<beast::tcp_stream>(ioc);
      s->expires_after(deadline);
      await(ioc, [&](auto&& done) { s->async_connect(endpoints, done); });
      tcp = std::move(s);
      return Status::ok();
    }
    if (!ctx) {
      ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
      ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
      if (request.ca_file.empty()) {
        ctx->set_default_verify_paths();
      } else {
        beast::error_code ec;
        ctx->load_verify_file(request.ca_file, ec);
        if (ec) {
          ctx.reset();
          return Status::invalid("CA file '" + request.ca_file + "': " + ec.message());
        }
      }
      ctx->set_verify_mode(request.insecure_skip_verify ? ssl::verify_none : ssl::verify_peer);
    }
    auto s = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ioc, *ctx);
    // SNI, and the certificate must name the host (or carry its IP address).
    if (!SSL_set_tlsext_host_name(s->native_handle(), host.c_str()))
      return Status::invalid("server '" + server + "': host name '" + host +
                             "' cannot be sent as SNI");
    if (!request.insecure_skip_verify) s->set_verify_callback(ssl::host_name_verification(host));
    beast::get_lowest_layer(*s).expires_after(deadline);
    await(ioc, [&](auto&& done) { beast::get_lowest_layer(*s).async_connect(endpoints, done); });
    await(ioc, [&](auto&& done) { s->async_handshake(ssl::stream_base::client, done); });
    tls = std::move(s);
    return Status::ok();
  }
};

HttpConnection::HttpConnection(std::string server) : impl_(std::make_unique<Impl>()) {
  impl_->server = std::move(server);
}
HttpConnection::~HttpConnection() = default;
HttpConnection::HttpConnection(HttpConnection&&) noexcept = default;
HttpConnection& HttpConnection::operator=(HttpConnection&&) noexcept = default;

Expected<ClientResponse> HttpConnection::call(const ClientRequest& request, bool keep_alive) {
  Impl& c = *impl_;
  if (c.host.empty()) {
    std::string rest = c.server;
    c.https = rest.rfind("https://", 0) == 0;
    if (c.https)
      rest = rest.substr(8);
    else if (rest.rfind("http://", 0) == 0)
      rest = rest.substr(7);
    while (!rest.empty() && rest.back() == '/') rest.pop_back();
    std::string host, port = c.https ? "443" : "80";
    if (!rest.empty() && rest[0] == '[') {
      const size_t close = rest.find(']');
      if (close == std::string::npos)
        return Status::invalid("server '" + c.server + "': unterminated IPv6 address");
      host = rest.substr(1, close - 1);
      if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
    } else {
      const size_t colon = rest.rfind(':');
      host = rest.substr(0, colon);
      if (colon != std::string::npos) port = rest.substr(colon + 1);
    }
    if (host.empty() || port.empty())
      return Status::invalid("server '" + c.server +
                             "' must be http://host:port or https://host:port");
    c.host = std::move(host);
    c.port = std::move(port);
  }
  const auto verb = http::string_to_verb(request.method);
  if (verb == http::verb::unknown)
    return Status::invalid("unknown HTTP method '" + request.method + "'");
  // A kept connection the server closed meanwhile fails at once: one more try on a new one.
  for (int attempt = 0;; ++attempt) {
    const bool reused = c.connected();
    try {
      if (!c.connected())
        if (auto s = c.connect(request); !s) return s;
      const auto deadline = std::chrono::milliseconds(request.timeout_ms);
      ClientResponse out;
      if (c.tls) {
        beast::get_lowest_layer(*c.tls).expires_after(deadline);
        out = exchange(c.ioc, *c.tls, c.host, request, verb, keep_alive);
      } else {
        c.tcp->expires_after(deadline);
        out = exchange(c.ioc, *c.tcp, c.host, request, verb, keep_alive);
      }
      if (!keep_alive || !out.keep_alive) {
        if (c.tls) {  // close_notify, within the deadline; a peer that just closes is fine
          try {
            await(c.ioc, [&](auto&& done) { c.tls->async_shutdown(done); });
          } catch (const std::exception&) {
          }
        }
        c.disconnect();
      }
      return out;
    } catch (const boost::system::system_error& e) {
      c.disconnect();
      const auto code = e.code();
      const bool stale = code == http::error::end_of_stream || code == net::error::eof ||
                         code == net::error::connection_reset || code == net::error::broken_pipe;
      if (reused && stale && attempt == 0) continue;
      return Status::unavailable("cannot reach " + c.server + ": " + code.message());
    } catch (const std::exception& e) {
      c.disconnect();
      return Status::unavailable("cannot reach " + c.server + ": " + e.what());
    }
  }
}

Expected<ClientResponse> http_call(const std::string& server, const ClientRequest& request) {
  HttpConnection connection(server);
  return connection.call(request, /*keep_alive=*/false);
}

std::string url_encode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace vigil::api
