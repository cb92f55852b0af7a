#include "vigil/api/client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace vigil::api {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

// Runs one asynchronous operation to its end on `ioc`: the stream's expiry (a deadline on the
// lowest layer) then applies, as it does not to synchronous calls. Throws on failure.
template <class Start>
void await(net::io_context& ioc, Start&& start) {
  beast::error_code result;
  start([&](beast::error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run();
  if (result) throw beast::system_error(result);
}

template <class Stream>
ClientResponse exchange(net::io_context& ioc, Stream& stream, const std::string& host,
                        const ClientRequest& request, http::verb verb) {
  http::request<http::string_body> req{verb, request.target, 11};
  req.set(http::field::host, host);
  req.set(http::field::user_agent, request.user_agent);
  if (!request.bearer_token.empty())
    req.set(http::field::authorization, "Bearer " + request.bearer_token);
  if (!request.body.empty()) req.set(http::field::content_type, request.content_type);
  for (const auto& [name, value] : request.headers) req.set(name, value);
  req.body() = request.body;
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
  out.body = std::move(res.body());
  return out;
}

}  // namespace

Expected<ClientResponse> http_call(const std::string& server, const ClientRequest& request) {
  std::string rest = server;
  const bool https = rest.rfind("https://", 0) == 0;
  if (https)
    rest = rest.substr(8);
  else if (rest.rfind("http://", 0) == 0)
    rest = rest.substr(7);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  std::string host, port = https ? "443" : "80";
  if (!rest.empty() && rest[0] == '[') {
    const size_t close = rest.find(']');
    if (close == std::string::npos)
      return Status::invalid("server '" + server + "': unterminated IPv6 address");
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
  } else {
    const size_t colon = rest.rfind(':');
    host = rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (host.empty() || port.empty())
    return Status::invalid("server '" + server + "' must be http://host:port or https://host:port");

  const auto verb = http::string_to_verb(request.method);
  if (verb == http::verb::unknown)
    return Status::invalid("unknown HTTP method '" + request.method + "'");
  try {
    net::io_context ioc;
    tcp::resolver resolver(ioc);
    if (!https) {
      beast::tcp_stream stream(ioc);
      stream.expires_after(std::chrono::milliseconds(request.timeout_ms));
      const auto endpoints = resolver.resolve(host, port);
      await(ioc, [&](auto&& done) { stream.async_connect(endpoints, done); });
      auto out = exchange(ioc, stream, host, request, verb);
      beast::error_code ec;
      stream.socket().shutdown(tcp::socket::shutdown_both, ec);
      return out;
    }
    ssl::context ctx(ssl::context::tls_client);
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (request.ca_file.empty()) {
      ctx.set_default_verify_paths();
    } else {
      beast::error_code ec;
      ctx.load_verify_file(request.ca_file, ec);
      if (ec) return Status::invalid("CA file '" + request.ca_file + "': " + ec.message());
    }
    ctx.set_verify_mode(request.insecure_skip_verify ? ssl::verify_none : ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
    // SNI, and the certificate must name the host (or carry its IP address).
    if (!SSL_set_tlsext_host_name(stream.native_handle(), host.c_str())) {
      return Status::invalid("server '" + server + "': host name '" + host +
                             "' cannot be sent as SNI");
    }
    if (!request.insecure_skip_verify)
      stream.set_verify_callback(ssl::host_name_verification(host));
    beast::get_lowest_layer(stream).expires_after(std::chrono::milliseconds(request.timeout_ms));
    const auto endpoints = resolver.resolve(host, port);
    await(ioc,
          [&](auto&& done) { beast::get_lowest_layer(stream).async_connect(endpoints, done); });
    await(ioc, [&](auto&& done) { stream.async_handshake(ssl::stream_base::client, done); });
    auto out = exchange(ioc, stream, host, request, verb);
    // close_notify, within the deadline; a peer that just closes is fine.
    try {
      await(ioc, [&](auto&& done) { stream.async_shutdown(done); });
    } catch (const std::exception&) {
    }
    return out;
  } catch (const boost::system::system_error& e) {
    return Status::unavailable("cannot reach " + server + ": " + e.code().message());
  } catch (const std::exception& e) {
    return Status::unavailable("cannot reach " + server + ": " + e.what());
  }
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
