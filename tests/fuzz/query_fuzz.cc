// libFuzzer: the HTTP query-string and time-parameter parsers.
#include <cstdint>
#include <string_view>

#include "vigil/api/http.h"
#include "vigil/api/service.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view s(reinterpret_cast<const char*>(data), size);
  if (auto q = vigil::api::parse_query(s)) {
    for (const auto& [k, v] : *q) (void)vigil::api::parse_time_param(v, 1795539600000);
  }
  (void)vigil::api::parse_time_param(s, 0);
  return 0;
}
