#pragma once
// ShardWorker: turns one batch of Kafka messages into persisted alerts.
//
// For each message: parse the fields the rule set needs (simdjson), match (Hyperscan), and
// build an alert document per matching rule. The batch's alerts and the next offset of
// every partition in it are written to the store in one atomic WriteBatch. Malformed
// events are counted by reason (vigil_events_invalid_total) and skipped; they never stop
// the batch.
//
// One ShardWorker per worker thread: it owns its parser, matcher scratch and buffers, so
// processing allocates nothing per event in steady state beyond the alerts it emits.

#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "vigil/core/event.h"
#include "vigil/core/metrics.h"
#include "vigil/core/time.h"
#include "vigil/match/ruleset.h"
#include "vigil/store/store.h"

namespace vigil::ingest {

struct MessageView {
  std::string_view topic;
  int32_t partition = 0;
  int64_t offset = 0;
  TimeMs timestamp = -1;  // Kafka message timestamp, -1 if none
  std::string_view payload;
};

struct BatchResult {
  size_t events = 0;
  size_t invalid = 0;
  size_t alerts = 0;
};

class ShardWorker {
 public:
  static Expected<std::unique_ptr<ShardWorker>> create(std::shared_ptr<const match::RuleSet> rules,
                                                       store::Store& store, MetricsRegistry& metrics,
                                                       const Clock& clock, size_t max_event_bytes);

  // Processes and persists `batch`. On a store error nothing of the batch is persisted and
  // the call may be repeated with the same batch.
  Expected<BatchResult> process(std::span<const MessageView> batch);

  // The Kafka cluster the messages come from; offsets and alert ids are qualified by it
  // (store streams "<cluster>/<topic>"). Set before the first batch of an assignment.
  void set_cluster_id(std::string cluster_id) { cluster_id_ = std::move(cluster_id); }
  // "<cluster>/<topic>"
  std::string stream(std::string_view topic) const;

 private:
  ShardWorker(std::shared_ptr<const match::RuleSet> rules, store::Store& store, MetricsRegistry& metrics,
              const Clock& clock, size_t max_event_bytes);
  void build_alert(const MessageView& m, uint32_t rule, TimeMs time);

  std::shared_ptr<const match::RuleSet> rules_;
  store::Store& store_;
  MetricsRegistry& metrics_;
  const Clock& clock_;
  EventParser parser_;
  Event event_;
  std::unique_ptr<match::Matcher> matcher_;
  std::vector<uint32_t> matches_;
  std::vector<store::AlertRecord> alerts_;
  std::vector<store::PartitionOffset> offsets_;
  std::string cluster_id_;
  std::string stream_;  // of the message in hand
  Counter& events_total_;
  Counter& bytes_total_;
  Counter& alerts_total_;
  std::vector<Counter*> invalid_by_reason_;
};

}  // namespace vigil::ingest
