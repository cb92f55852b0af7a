// libFuzzer: cluster mode's content topic records (ingest/src/content_topic.h) as every
// replica reads them: the first byte picks the record type, the rest is its value. Any bytes
// give a record or a reason, and a record written again reads back the same.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "content_topic.h"

namespace {

template <typename T>
void round_trip(std::string_view s) {
  auto r = T::from_json(s);
  if (!r) return;
  auto again = T::from_json(r->to_json());
  if (!again || !(*again == *r)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  namespace c = vigil::ingest::ctopic;
  const std::string_view s(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0:
      round_trip<c::BundleHeader>(s);
      break;
    case 1:
      round_trip<c::Verdict>(s);
      break;
    case 2:
      round_trip<c::Report>(s);
      break;
    case 3:
      round_trip<c::Decision>(s);
      break;
    case 4:
      round_trip<c::Action>(s);
      break;
    default:
      round_trip<c::ActionResult>(s);
      break;
  }
  return 0;
}
