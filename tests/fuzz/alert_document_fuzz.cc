// libFuzzer: the alerts topic's records as the alert mirror reads them (cluster mode): any
// bytes give an alert record with a summary inside its document, or a reason.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "vigil/ingest/alert_mirror.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view s(reinterpret_cast<const char*>(data), size);
  auto a = vigil::ingest::parse_alert_document(s);
  if (a) {
    const auto& r = (*a)->record;
    if (r.summary_size > r.json.size() || r.rule_id.empty() || r.json != s) std::abort();
    if (r.summary_size > 0 && r.json[r.summary_size] != ',') std::abort();
  }
  return 0;
}
