// libFuzzer: the repartition topic's records (cluster mode's correlation hits) as a shard
// worker reads them: any bytes give a hit or a reason, and a hit written again reads back
// the same.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "vigil/ingest/correlation_hit.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view s(reinterpret_cast<const char*>(data), size);
  auto h = vigil::ingest::decode_correlation_hit(s);
  if (!h) return 0;
  if (h->id.size() != 32 || h->correlation.empty() || h->rule.empty()) std::abort();
  auto again = vigil::ingest::decode_correlation_hit(vigil::ingest::encode_correlation_hit(*h));
  if (!again || again->id != h->id || again->correlation != h->correlation ||
      again->rule != h->rule || again->base != h->base || again->group != h->group ||
      again->value != h->value || again->time != h->time || again->ref != h->ref)
    std::abort();
  return 0;
}
