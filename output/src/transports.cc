// The destinations: HTTP (webhook, Slack-compatible, Splunk HEC) and syslog (RFC 5424 over
// TCP and TLS with octet-counting framing, RFC 6587 / 5425; over UDP one datagram each,
// RFC 5426).

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>

#include "vigil/api/await.h"
#include "vigil/api/client.h"
#include "vigil/core/time.h"
#include "vigil/output/outputs.h"

#ifndef VIGIL_VERSION
#define VIGIL_VERSION "0.0.0"
#endif

namespace vigil::output {

namespace {

namespace beast = boost::beast;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using udp = net::ip::udp;

using api::await;  // deadlines on every send: a destination that stops reading cannot hang it

std::string hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "-";
  return buf;
}

// Splits "scheme://host:port/path?q" into the server part and the target.
std::pair<std::string, std::string> split_url(const std::string& url) {
  const size_t host = url.find("://") + 3;
  const size_t slash = url.find('/', host);
  if (slash == std::string::npos) return {url, "/"};
  return {url.substr(0, slash), url.substr(slash)};
}

class HttpSender final : public Transport {
 public:
  explicit HttpSender(const OutputConfig& c) : c_(c), connection_(split_url(c.url).first) {
    auto [server, target] = split_url(c.url);
    server_ = std::move(server);
    target_ = std::move(target);
    if (c.type == OutputType::kSplunkHec && target_ == "/") target_ = "/services/collector/event";
  }

  SendResult send(const std::vector<std::string_view>& alerts) override {
    api::ClientRequest req;
    req.method = "POST";
    req.target = target_;
    req.timeout_ms = static_cast<int>(c_.timeout.count());
    req.ca_file = c_.ca_file;
    req.insecure_skip_verify = c_.insecure_skip_verify;
    req.user_agent = "vigil/" VIGIL_VERSION;
    req.headers = c_.headers;
    req.max_response_bytes = 1 << 20;
    if (c_.type == OutputType::kSplunkHec)
      req.headers.emplace_back("Authorization", "Splunk " + c_.token);
    for (std::string_view a : alerts) {
      auto body = body_of(a);
      if (!body) return {SendResult::Outcome::kRefused, body.status().message(), {}};
      req.body += *body;
    }
    auto res = connection_.call(req);
    if (!res) return {SendResult::Outcome::kRetry, res.status().message(), {}};
    const int code = res->status;
    if (code >= 200 && code < 300) return {};
    std::string error = "HTTP " + std::to_string(code);
    if (!res->body.empty()) error += ": " + res->body.substr(0, 200);
    // 400, 413, 422: this payload is refused for good (kept would block the queue forever);
    // the rest (401/403 a token to fix, 404 a URL, 408, 429, 5xx) is retried.
    if (code == 400 || code == 413 || code == 422)
      return {SendResult::Outcome::kRefused, error, {}};
    return {SendResult::Outcome::kRetry, error,
            parse_retry_after(res->retry_after, SystemClock::instance().now_ms())};
  }

 private:
  Expected<std::string> body_of(std::string_view alert) {
    switch (c_.type) {
      case OutputType::kSlack: {
        auto text = alert_text(alert);
        if (!text) return text.status();
        rapidjson::StringBuffer b;
        rapidjson::Writer<rapidjson::StringBuffer> w(b);
        w.StartObject();
        w.Key("text");
        w.String(text->data(), static_cast<rapidjson::SizeType>(text->size()));
        w.EndObject();
        return std::string(b.GetString(), b.GetSize());
      }
      case OutputType::kSplunkHec: {
        auto doc = format_alert(alert, c_.format);
        if (!doc) return doc.status();
        rapidjson::Document d;
        d.Parse(alert.data(), alert.size());
        double time = 0;
        if (d.IsObject() && d.HasMember("time") && d["time"].IsString())
          if (auto t = parse_rfc3339(d["time"].GetString())) time = static_cast<double>(*t) / 1000;
        std::string host;
        if (d.IsObject() && d.HasMember("host") && d["host"].IsString())
          host = d["host"].GetString();
        rapidjson::StringBuffer b;
        rapidjson::Writer<rapidjson::StringBuffer> w(b);
        w.StartObject();
        w.Key("time");
        w.Double(time);
        if (!host.empty()) {
          w.Key("host");
          w.String(host.c_str());
        }
        w.Key("source");
        w.String(c_.source.c_str());
        w.Key("sourcetype");
        w.String(c_.sourcetype.c_str());
        if (!c_.index.empty()) {
          w.Key("index");
          w.String(c_.index.c_str());
        }
        w.Key("event");
        w.RawValue(doc->data(), doc->size(), rapidjson::kObjectType);
        w.EndObject();
        return std::string(b.GetString(), b.GetSize());
      }
      default:
        return format_alert(alert, c_.format);
    }
  }

  const OutputConfig& c_;
  api::HttpConnection connection_;  // kept open between sends
  std::string server_, target_;
};

class SyslogSender final : public Transport {
 public:
  explicit SyslogSender(const OutputConfig& c) : c_(c), hostname_(hostname()) {
    if (c.transport == SyslogTransport::kTls) {
      ctx_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
      beast::error_code ec;
      if (c.ca_file.empty())
        ctx_.set_default_verify_paths(ec);
      else
        ctx_.load_verify_file(c.ca_file, ec);
      ctx_.set_verify_mode(c.insecure_skip_verify ? ssl::verify_none : ssl::verify_peer);
    }
  }

  SendResult send(const std::vector<std::string_view>& alerts) override {
    std::string frames;
    std::vector<std::string> datagrams;
    const int64_t now = SystemClock::instance().now_ms();
    for (std::string_view a : alerts) {
      Expected<std::string> msg = c_.message == SyslogMessage::kCef ? alert_cef(a, VIGIL_VERSION)
                                                                    : format_alert(a, c_.format);
      if (!msg) return {SendResult::Outcome::kRefused, msg.status().message(), {}};
      std::string line = syslog_line(c_, a, *msg, hostname_, now);
      if (c_.transport == SyslogTransport::kUdp) {
        // RFC 5426: one message per datagram; a receiver must take 480 bytes, should take
        // 2,048; the largest IPv4 payload is 65,507.
        if (line.size() > 65000) line.resize(65000);
        datagrams.push_back(std::move(line));
      } else {
        frames += std::to_string(line.size());  // octet counting: LEN SP MSG
        frames += ' ';
        frames += line;
      }
    }
    try {
      if (c_.transport == SyslogTransport::kUdp) {
        net::io_context ioc;
        udp::resolver resolver(ioc);
        const auto endpoints = resolver.resolve(c_.host, c_.port);
        udp::socket socket(ioc);
        const udp::endpoint to = *endpoints.begin();
        socket.open(to.protocol());
        for (const auto& d : datagrams) socket.send_to(net::buffer(d), to);
        return {};
      }
      connect_if_needed();
      const auto deadline = c_.timeout;
      if (tls_) {
        beast::get_lowest_layer(*tls_).expires_after(deadline);
        await(ioc_, [&](auto&& done) { net::async_write(*tls_, net::buffer(frames), done); });
      } else {
        tcp_->expires_after(deadline);
        await(ioc_, [&](auto&& done) { net::async_write(*tcp_, net::buffer(frames), done); });
      }
      return {};
    } catch (const std::exception& e) {
      tcp_.reset();  // reconnect on the next send
      tls_.reset();
      const auto* se = dynamic_cast<const boost::system::system_error*>(&e);
      return {SendResult::Outcome::kRetry,
              "syslog " + c_.host + ":" + c_.port + ": " + (se ? se->code().message() : e.what()),
              {}};
    }
  }

 private:
  // A connection the receiver closed since the last send (a restart) is noticed before
  // writing into it: what TCP accepted after the peer's close would be lost. (Data the peer
  // loses when it dies after accepting it cannot be told apart without application acks:
  // RELP's, which syslog over TCP does not have.)
  bool peer_closed() {
    const int fd = tls_ ? static_cast<int>(beast::get_lowest_layer(*tls_).socket().native_handle())
                        : static_cast<int>(tcp_->socket().native_handle());
    char byte;
    const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }

  void connect_if_needed() {
    if ((tcp_ || tls_) && peer_closed()) {
      tcp_.reset();
      tls_.reset();
    }
    if (tcp_ || tls_) return;
    tcp::resolver resolver(ioc_);
    const auto endpoints = resolver.resolve(c_.host, c_.port);
    if (c_.transport == SyslogTransport::kTls) {
      auto s = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ioc_, ctx_);
      if (!SSL_set_tlsext_host_name(s->native_handle(), c_.host.c_str()))
        throw std::runtime_error("cannot send '" + c_.host + "' as SNI");
      if (!c_.insecure_skip_verify) s->set_verify_callback(ssl::host_name_verification(c_.host));
      beast::get_lowest_layer(*s).expires_after(c_.timeout);
      await(ioc_, [&](auto&& done) { beast::get_lowest_layer(*s).async_connect(endpoints, done); });
      await(ioc_, [&](auto&& done) { s->async_handshake(ssl::stream_base::client, done); });
      tls_ = std::move(s);
    } else {
      auto s = std::make_unique<beast::tcp_stream>(ioc_);
      s->expires_after(c_.timeout);
      await(ioc_, [&](auto&& done) { s->async_connect(endpoints, done); });
      tcp_ = std::move(s);
    }
  }

  const OutputConfig& c_;
  std::string hostname_;
  net::io_context ioc_;
  ssl::context ctx_{ssl::context::tls_client};
  std::unique_ptr<beast::tcp_stream> tcp_;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_;
};

}  // namespace

Expected<std::unique_ptr<Transport>> make_transport(const OutputConfig& config) {
  if (config.type == OutputType::kSyslog)
    return std::unique_ptr<Transport>(new SyslogSender(config));
  return std::unique_ptr<Transport>(new HttpSender(config));
}

}  // namespace vigil::output
