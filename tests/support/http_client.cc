#include "support/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace vigil::test {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

HttpResult http_get(const std::string& host, uint16_t port, const std::string& target,
                    const std::vector<std::pair<std::string, std::string>>& headers) {
  HttpResult out;
  try {
    net::io_context ioc;
    beast::tcp_stream stream(ioc);
    stream.expires_after(std::chrono::seconds(10));
    stream.connect(tcp::endpoint(net::ip::make_address(host), port));
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, host);
    for (const auto& [k, v] : headers) req.set(k, v);
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 << 20);
    http::read(stream, buffer, parser);
    auto& res = parser.get();
    out.status = res.result_int();
    out.content_type = std::string(res[http::field::content_type]);
    out.body = std::move(res.body());
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  } catch (const std::exception&) {
    out.status = 0;
  }
  return out;
}

std::string http_raw(const std::string& host, uint16_t port, const std::string& raw) {
  std::string out;
  try {
    net::io_context ioc;
    tcp::socket socket(ioc);
    socket.connect(tcp::endpoint(net::ip::make_address(host), port));
    net::write(socket, net::buffer(raw));
    socket.shutdown(tcp::socket::shutdown_send);
    beast::error_code ec;
    char buf[4096];
    for (;;) {
      const size_t n = socket.read_some(net::buffer(buf), ec);
      if (ec) break;
      out.append(buf, n);
    }
  } catch (const std::exception&) {
  }
  return out;
}

}  // namespace vigil::test

namespace vigil::test {

double prometheus_sum(const std::string& exposition, const std::string& name,
                      const std::vector<std::pair<std::string, std::string>>& labels) {
  double sum = 0;
  bool any = false;
  size_t pos = 0;
  while (pos < exposition.size()) {
    size_t end = exposition.find('\n', pos);
    if (end == std::string::npos) end = exposition.size();
    const std::string line = exposition.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#' || line.compare(0, name.size(), name) != 0) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != ' ' && next != '{') continue;
    const size_t space = line.rfind(' ');
    const std::string label_text = next == '{' ? line.substr(name.size(), space - name.size()) : "";
    bool all = true;
    for (const auto& [k, v] : labels)
      all &= label_text.find(k + "=\"" + v + "\"") != std::string::npos;
    if (!all) continue;
    sum += std::stod(line.substr(space + 1));
    any = true;
  }
  return any ? sum : -1;
}

}  // namespace vigil::test
