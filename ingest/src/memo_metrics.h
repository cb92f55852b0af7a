#pragma once
// A shard worker's scan memo (match::MatcherOptions::memo_bytes) as metrics: per field, the
// values looked up and those found, and how often the memo was full and dropped everything.
// The matcher counts since it was made; this adds what it counted since the last update.

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "vigil/core/metrics.h"
#include "vigil/match/matcher.h"

namespace vigil::ingest {

class MemoMetrics {
 public:
  MemoMetrics(MetricsRegistry& metrics, int shard);
  // Adds what `matcher` counted since the last update (per batch).
  void update(const match::Matcher& matcher);
  // The worker has a new matcher (a bundle switch): its counts start from zero.
  void restart();

 private:
  struct Field {
    Counter* lookups = nullptr;
    Counter* hits = nullptr;
    uint64_t lookups_seen = 0, hits_seen = 0;
  };
  MetricsRegistry& metrics_;
  std::string shard_;
  std::unordered_map<std::string, Field> fields_;  // by the field's path
  Counter& resets_;
  uint64_t resets_seen_ = 0;
  std::vector<match::MemoFieldStats> stats_;  // scratch
};

}  // namespace vigil::ingest
