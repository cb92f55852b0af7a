#pragma once
// A small HTTP/1.1 server on Boost.Beast with a path router.
//
// HttpServer runs a fixed number of I/O threads, over plain TCP or TLS. Each connection is
// keep-alive, reads one request at a time with limits on header and body size and a read timeout,
// and closes when idle too long. A request's route and authorisation are checked from its header,
// before its body is read, and the bodies being read share a memory budget. At the
// connection limits (total and per client) the oldest idle connection makes room. Each I/O thread
// runs its own connections; handlers run there and must not block for long, except those of routes
// added as Cost::kSlow, which run on a separate pool. stop() answers the requests in flight
// first.
//
// Errors are RFC 9457 problem documents (application/problem+json).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vigil/api/auth.h"
#include "vigil/core/metrics.h"
#include "vigil/core/status.h"

namespace vigil::api {

struct HttpRequest {
  std::string method;
  std::string path;                                        // percent-decoded, without the query
  std::vector<std::pair<std::string, std::string>> query;  // percent-decoded, in order
  std::vector<std::pair<std::string, std::string>> path_params;  // from {name} segments
  std::string body;
  std::string authorization;  // the Authorization header, if any
  std::string principal;      // set by the router: "<role> token <fingerprint>" (never the token)

  // The value of a query parameter, if given (the first one if repeated).
  std::optional<std::string_view> param(std::string_view name) const;
  std::string_view path_param(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra response headers

  static HttpResponse json(std::string body, int status = 200);
  // An RFC 9457 problem document: {"type","title","status","detail"}.
  static HttpResponse problem(int status, std::string_view detail);
};

using Handler = std::function<HttpResponse(const HttpRequest&)>;

// Routes by method and path template ("/api/v1/alerts/{id}"). Unknown paths answer 404,
// known paths with another method 405. A route requires a reader token unless added with
// another Access: no or an unknown bearer token is 401 (with WWW-Authenticate), a reader
// token on an admin route 403. Without a token set every non-open route is 401.
class Router {
 public:
  struct RouteInfo {
    std::string method;
    std::string path_template;
    Access access;
  };

  // Where a handler runs. kFast: on the connection's I/O thread. kSlow (up to seconds of
  // work: bundle validation, dry runs, event hunts, checkpoints): on the server's pool for
  // slow requests, so that the connections sharing the I/O thread are not held up behind it.
  // kContent (bundle validation, dry runs: up to minutes of CPU and hundreds of MB): on a
  // pool of their own, with a bounded queue, so that queries never wait behind them and a
  // burst of uploads is answered 503 instead of piling up.
  enum class Cost : uint8_t { kFast, kSlow, kContent };
  void add(std::string method, std::string path_template, Handler handler,
           Access access = Access::kReader, Cost cost = Cost::kFast);
  // The route a request goes to, found once: its cost tells the server where to run it, and
  // route() runs it (or answers 404/405) without matching the path again.
  struct Resolved {
    size_t index = SIZE_MAX;  // into the routes; SIZE_MAX: none
    bool path_known = false;  // with none: some route has the path, with another method
    Cost cost = Cost::kFast;
    std::vector<std::pair<std::string, std::string>> params;
  };
  Resolved resolve(const HttpRequest& request) const;
  // What to answer from the request's header alone, before its body is read: 404, 405, 401
  // or 403; empty if the request may go on.
  std::optional<HttpResponse> admit(const HttpRequest& request, const Resolved& resolved) const;
  void set_tokens(std::shared_ptr<const TokenSet> tokens) { tokens_ = std::move(tokens); }
  HttpResponse route(HttpRequest& request, Resolved resolved) const;
  HttpResponse route(HttpRequest& request) const { return route(request, resolve(request)); }
  std::vector<RouteInfo> routes() const;

 private:
  struct Route {
    std::string method;
    std::string path_template;
    std::vector<std::string> segments;
    Handler handler;
    Access access;
    Cost cost;
  };
  // Empty when the request may go on, else the 401/403 to answer.
  std::optional<HttpResponse> authorize(const HttpRequest& request, Access access) const;
  std::vector<Route> routes_;
  std::shared_ptr<const TokenSet> tokens_;
};

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 8080;  // 0: any free port (see HttpServer::port())
  int threads = 2;
  size_t max_header_bytes = 16 << 10;
  size_t max_body_bytes = 1 << 20;
  int read_timeout_ms = 10'000;
  int idle_timeout_ms = 60'000;
  size_t max_connections = 1024;
  // Connections one client address may hold (0: no limit of its own). At either limit a new
  // connection evicts the oldest idle one (keep-alive between requests, silent, or sending
  // its header slowly) instead of being refused, so idle sockets cannot lock others out.
  size_t max_connections_per_client = 256;
  // With over half of max_connections open, the read and idle timeouts shrink to this.
  int pressure_timeout_ms = 2'000;
  // Bytes all request bodies being read may take together; a request whose body does not
  // fit is answered 503 with Retry-After before its body is read. At least max_body_bytes.
  size_t max_body_bytes_in_flight = 64 << 20;
  int shutdown_grace_ms = 5'000;  // stop() waits this long for requests in flight
  int slow_threads = 2;           // the pool of Router::Cost::kSlow handlers
  int content_threads = 1;        // the pool of Router::Cost::kContent handlers
  // kContent requests running or waiting at most; past it 503 with Retry-After.
  int max_content_requests = 2;
  // HTTPS when both are set: a PEM certificate chain (leaf first) and its PEM private key.
  // TLS 1.2 and 1.3 only. The files are re-read when they change (checked on accept at most
  // once per reload interval; 0: never), so a rotated Secret takes effect without a restart.
  std::string tls_cert_file;
  std::string tls_key_file;
  int tls_reload_interval_ms = 10'000;
  // Counts connections dropped because their TLS handshake failed (plain HTTP on the TLS
  // port, an untrusting client, a scanner); may be null.
  Counter* tls_handshake_failures = nullptr;
  // Counts JSON responses that held invalid UTF-8 and were repaired (U+FFFD); may be null.
  Counter* repaired_bodies = nullptr;
  // Admission counters (each may be null): connections refused at the limits, idle
  // connections evicted to make room, bodies refused for want of budget.
  Counter* connections_refused = nullptr;
  Counter* connections_evicted = nullptr;
  Counter* bodies_refused = nullptr;
};

class HttpServer {
 public:
  static Expected<std::unique_ptr<HttpServer>> start(const HttpServerOptions& options,
                                                     Router router);
  ~HttpServer();
  // The bound port (useful with port 0).
  uint16_t port() const;
  // Stops accepting, closes connections and joins the I/O threads.
  void stop();

  struct State;  // implementation detail, defined in http.cc

 private:
  explicit HttpServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// Splits and percent-decodes "a=1&b=x%20y". Returns nullopt on a malformed escape.
std::optional<std::vector<std::pair<std::string, std::string>>> parse_query(std::string_view query);
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space);

}  // namespace vigil::api
