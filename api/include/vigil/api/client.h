#pragma once
// A small synchronous HTTP/1.1 client: the `vigil` CLI's for vigil's API, and the alert
// outputs' (webhooks, Splunk HEC) for theirs.
//
// `server` is "http://host:port" or "https://host:port" (a bare "host:port" is http); names
// are resolved, IPv6 literals go in brackets. Over https the server's certificate is verified
// against the system's CA store or `ca_file`, and must name the host (SNI is sent). Every call has
// a deadline; a transport failure is an error Status naming the server, an HTTP error status is a
// response (callers read the problem document in its body).

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "vigil/core/status.h"

namespace vigil::api {

struct ClientResponse {
  int status = 0;
  std::string content_type;
  std::string retry_after;  // the Retry-After header, as sent
  std::string body;
  bool keep_alive = false;  // the server keeps the connection open
};

struct ClientRequest {
  std::string method = "GET";
  std::string target;        // "/api/v1/alerts?limit=5"
  std::string bearer_token;  // empty: no Authorization header
  std::string body;
  int timeout_ms = 30000;
  std::string ca_file;                // https: PEM CA bundle to trust instead of the system's
  bool insecure_skip_verify = false;  // https: accept any certificate (tests, labs)
  std::string content_type = "application/json";
  std::string user_agent = "vigil-cli";
  std::vector<std::pair<std::string, std::string>> headers;  // more headers, sent as given
  size_t max_response_bytes = 256 << 20;
};

// One request on a connection of its own.
Expected<ClientResponse> http_call(const std::string& server, const ClientRequest& request);

// Requests to one server over a kept connection (HTTP/1.1 keep-alive), made again when the
// server closed it: an output posting thousands of alerts pays one TCP (and TLS) handshake,
// not one per alert. Not thread-safe.
class HttpConnection {
 public:
  explicit HttpConnection(std::string server);
  ~HttpConnection();
  HttpConnection(HttpConnection&&) noexcept;
  HttpConnection& operator=(HttpConnection&&) noexcept;
  Expected<ClientResponse> call(const ClientRequest& request, bool keep_alive = true);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Percent-encodes a query parameter value.
std::string url_encode(std::string_view value);

}  // namespace vigil::api
