#include "memo_metrics.h"

namespace vigil::ingest {

MemoMetrics::MemoMetrics(MetricsRegistry& metrics, int shard)
    : metrics_(metrics),
      shard_(std::to_string(shard)),
      resets_(metrics.counter("vigil_match_memo_resets_total",
                              "Times a shard's scan memo was full and dropped every entry",
                              {{"shard", shard_}})) {}

void MemoMetrics::update(const match::Matcher& matcher) {
  matcher.memo_stats(stats_);
  for (const auto& s : stats_) {
    const std::string& path = matcher.rule_set().fields().path(s.slot);
    auto [it, added] = fields_.try_emplace(path);
    Field& f = it->second;
    if (added) {
      const Labels labels{{"shard", shard_}, {"field", path}};
      f.lookups = &metrics_.counter(
          "vigil_match_memo_lookups_total",
          "Field values looked up in the scan memo (remembered scan results) instead of scanned",
          labels);
      f.hits = &metrics_.counter("vigil_match_memo_hits_total",
                                 "Field values found in the scan memo: no scan", labels);
    }
    f.lookups->inc(s.lookups - f.lookups_seen);
    f.hits->inc(s.hits - f.hits_seen);
    f.lookups_seen = s.lookups;
    f.hits_seen = s.hits;
  }
  resets_.inc(matcher.memo_resets() - resets_seen_);
  resets_seen_ = matcher.memo_resets();
}

void MemoMetrics::restart() {
  for (auto& [path, f] : fields_) f.lookups_seen = f.hits_seen = 0;
  resets_seen_ = 0;
}

}  // namespace vigil::ingest
