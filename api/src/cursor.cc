#include "cursor.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace vigil::api {

std::string cursor_binding(std::string_view route, const HttpRequest& req) {
  std::vector<std::pair<std::string, std::string>> params;
  for (const auto& kv : req.query) {
    if (kv.first != "cursor" && kv.first != "limit" && kv.first != "view") params.push_back(kv);
  }
  std::sort(params.begin(), params.end());
  std::string out(route);
  for (const auto& [k, v] : params) {
    out += '\0';
    out += std::to_string(k.size()) + ":" + k + "=" + std::to_string(v.size()) + ":" + v;
  }
  return out;
}

std::string cursor_mac(const std::string& key, std::string_view binding,
                       std::string_view position) {
  std::string message(binding);
  message += '\0';
  message.append(position);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < 16 && i < length; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 15];
  }
  return out;
}

std::string seal_cursor(const std::string& key, std::string_view binding,
                        const std::string& position) {
  if (position.empty()) return position;
  return position + "." + cursor_mac(key, binding, position);
}

}  // namespace vigil::api
