#pragma once
// Test support: a blocking HTTP/1.1 client over loopback (Boost.Beast).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace vigil::test {

struct HttpResult {
  int status = 0;  // 0: connection failed
  std::string content_type;
  std::string body;
};

HttpResult http_get(const std::string& host, uint16_t port, const std::string& target,
                    const std::vector<std::pair<std::string, std::string>>& headers = {});
// Sends `raw` bytes as they are and returns what the server answered (for malformed input).
std::string http_raw(const std::string& host, uint16_t port, const std::string& raw);

}  // namespace vigil::test

namespace vigil::test {

// Sum of the samples of metric `name` in a Prometheus text exposition whose labels include
// every one of `labels` (k="v"); -1 if there is no such sample.
double prometheus_sum(const std::string& exposition, const std::string& name,
                      const std::vector<std::pair<std::string, std::string>>& labels = {});

}  // namespace vigil::test
