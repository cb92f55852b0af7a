#pragma once
// ShardWorker: turns one batch of Kafka messages into persisted alerts.
//
// For each message: parse the fields the rule set needs (simdjson), match (Hyperscan), and
// build an alert document per matching rule. The batch's alerts, its dead letters and
// alerts bound for the alerts topic (outbox records), and the next offset of every
// partition in it are written to the store in one atomic WriteBatch. A malformed event
// (bad JSON or UTF-8, too large, too deep, not an object) and, if configured, an event no
// logsource accepts, is counted by reason (vigil_events_invalid_total,
// vigil_dead_letters_total) and becomes a dead letter; it never stops the batch.
//
// One ShardWorker per worker thread: it owns its parser, matcher scratch and buffers, so
// processing allocates nothing per event in steady state beyond the alerts it emits.

#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "vigil/core/event.h"
#include "vigil/core/metrics.h"
#include "vigil/core/time.h"
#include "vigil/ingest/correlation_hit.h"
#include "vigil/match/bundle.h"
#include "vigil/match/correlator.h"
#include "vigil/match/matcher.h"
#include "vigil/match/rule_stats.h"
#include "vigil/output/outputs.h"
#include "vigil/store/store.h"

namespace vigil::ingest {

struct MessageView {
  std::string_view topic;
  int32_t partition = 0;
  int64_t offset = 0;
  TimeMs timestamp = -1;  // Kafka message timestamp, -1 if none
  std::string_view payload;
  std::string_view key;  // the Kafka message key, empty if none
};

struct BatchResult {
  size_t events = 0;
  size_t invalid = 0;
  size_t dead_letters = 0;
  size_t alerts = 0;
  size_t correlation_hits = 0;         // queued for the repartition topic
  std::vector<uint64_t> delivered_to;  // alerts queued per output (ShardOptions::outputs' order)
};

// Which consumed events are kept in the store's events cf (for hunts and dry runs).
enum class EventRetention : uint8_t { kAll, kMatched, kNone };
std::optional<EventRetention> parse_event_retention(std::string_view name);  // all, matched, none

struct ShardOptions {
  int shard = 0;  // the label of this worker's metrics
  size_t max_event_bytes = 1 << 20;
  bool publish_alerts = false;  // queue every alert for the alerts topic
  bool dead_letters = false;    // queue invalid events for the dead-letter topic
  bool dead_letter_unmapped =
      false;  // events no logsource of the rule set accepts are dead letters too
  size_t dead_letter_max_bytes = 512
                                 << 10;  // longer payloads are truncated (header vigil.truncated)
  // Alert records for the alerts topic longer than this leave without their event (marked
  // "event_truncated", header vigil.truncated; the stored alert keeps it): under librdkafka's
  // message.max.bytes (1,000,000) and a broker's default limit (1 MiB), with room for headers.
  size_t max_alert_record_bytes = 900'000;
  EventRetention retain_events = EventRetention::kAll;
  std::shared_ptr<match::RuleStats>
      rule_stats;  // matches per rule, counted once persisted (null: not counted)
  // The alerts topic's document: vigil's own, ECS or OCSF (output/alert_format.h).
  output::AlertFormat alerts_format = output::AlertFormat::kVigil;
  // Alert outputs: each alert an output wants is queued for it in the alert's batch.
  std::shared_ptr<const std::vector<output::OutputConfig>> outputs;
  // Correlation across partitions (cluster mode): the matches of base rules feeding a
  // correlation are queued for this topic keyed by their group (correlation_hit.h), and the
  // topic's messages are fed to the correlations, windows kept per partition of this topic.
  // Empty: every correlation is judged per partition of the events topic (today's path).
  std::string repartition_topic;
  // The Sigma fields the sensors key their events by (e.g. Computer): a correlation grouped
  // by all of them sees each group in one partition already and keeps the local path.
  std::vector<std::string> partition_key_fields;
  // A repartitioned match more than this (plus the longest timespan) behind the newest one of
  // its partition is counted as late and left out: it could no longer be told from a repeat.
  TimeMs repartition_lateness_ms = 3'600'000;
  // The matcher's scan memo, bytes per worker (match::MatcherOptions::memo_bytes; 0: off).
  size_t memo_bytes = match::MatcherOptions{}.memo_bytes;
};

// The parse errors that make an event invalid (and a dead letter), in metric order.
inline constexpr ParseError kParseErrors[] = {
    ParseError::kTooLarge,    ParseError::kInvalidUtf8, ParseError::kMalformedJson,
    ParseError::kNotAnObject, ParseError::kTooDeep,     ParseError::kDuplicateKey};

// Reasons a message becomes a dead letter, beyond the parse errors.
inline constexpr std::string_view kNoLogsource = "no_logsource";

// The id of the alert a correlation hit raises (deterministic: a replay gives the same), which
// is also how the correlations it feeds refer to it.
store::AlertId correlation_alert_id(const match::CompiledCorrelation& c,
                                    const match::CorrelationHit& hit);

class MemoMetrics;

class ShardWorker {
 public:
  static Expected<std::unique_ptr<ShardWorker>> create(std::shared_ptr<const match::RuleSet> rules,
                                                       store::Store& store,
                                                       MetricsRegistry& metrics, const Clock& clock,
                                                       const ShardOptions& options);
  ~ShardWorker();

  // Processes and persists `batch`. On a store error nothing of the batch is persisted and
  // the call may be repeated with the same batch.
  Expected<BatchResult> process(std::span<const MessageView> batch);

  // The Kafka cluster the messages come from; offsets and alert ids are qualified by it
  // (store streams "<cluster>/<topic>"). Set before the first batch of an assignment.
  void set_cluster_id(std::string cluster_id) { cluster_id_ = std::move(cluster_id); }
  // "<cluster>/<topic>"
  std::string stream(std::string_view topic) const;
  void set_stream(std::string_view topic);

  // Loads the correlation windows of a partition newly assigned to this worker from the
  // store, replacing what the worker held for it (another consumer may have moved them on).
  // A repartition-topic partition whose newest position another replica holds (a hand-over)
  // is rebuilt: `rebuild` drops the store's stale windows of it, and its messages below
  // `replay_until` (read again from a time before the hand-over) feed the windows without
  // raising alerts.
  Status reload_partition(std::string_view topic, int32_t partition, int64_t replay_until = -1,
                          bool rebuild = false);

  // Switches to another rule bundle between batches (a rollout): a new matcher, and a new
  // correlator whose windows for the partitions this worker holds are read from the store
  // (windows of a correlation the new bundle keeps, by rule id, carry on). On failure the
  // worker keeps its bundle.
  Status set_bundle(std::shared_ptr<const match::CompiledBundle> bundle);
  const std::shared_ptr<const match::CompiledBundle>& bundle() const { return bundle_; }

  // The next offset of each partition of the last persisted batch.
  const std::vector<store::PartitionOffset>& persisted_offsets() const { return offsets_; }

 private:
  ShardWorker(std::shared_ptr<const match::RuleSet> rules, store::Store& store,
              MetricsRegistry& metrics, const Clock& clock, const ShardOptions& options);
  void build_alert(const MessageView& m, uint32_t rule, TimeMs time);
  // An alerts-topic record in ShardOptions::alerts_format.
  void format_record(store::OutboxRecord& r) const;
  // `m`: the message that completed the window (null: time passing did); `has_event`: `m` is
  // the event parsed into event_ (not a repartitioned match).
  void build_correlation_alert(const match::CorrelationHit& hit, const MessageView* m,
                               bool has_event = true);
  // Cluster mode's correlation across partitions (shard_worker_repartition.cc).
  void set_remote_correlations();
  void queue_correlation_hits(const MessageView& m, uint32_t rule, TimeMs time);
  // A correlation alert's hit as a match of the correlations it feeds that are fed from the
  // repartition topic (a chain across groups), in the batch that raised it.
  void queue_chained_hits(const match::CorrelationHit& hit, const MessageView* m);
  // A match for the repartition topic, into the outbox.
  void queue_hit_record(const CorrelationHitRecord& hit, const store::AlertId& id,
                        const MessageView* m);
  // A message of the repartition topic: fed to its correlation, once.
  void consume_correlation_hit(const MessageView& m, TimeMs& batch_time);
  // After the batch's messages: the seen-hit entries to write, expired ones to drop.
  void collect_seen_hits();
  bool is_repartition(std::string_view topic) const {
    return !options_.repartition_topic.empty() && topic == options_.repartition_topic;
  }
  void set_scope(const MessageView& m);
  // Writes of the correlation windows this batch changed; on a failed write, puts back what
  // the store holds.
  void collect_state();
  void restore_state_after_failure();
  void dead_letter(const MessageView& m, std::string_view reason);
  std::string_view batch_stream(std::string_view topic);
  TimeMs event_time(const MessageView& m) const;

  std::shared_ptr<const match::RuleSet> rules_;
  std::shared_ptr<const match::CompiledBundle> bundle_;
  std::vector<std::pair<std::string, int32_t>>
      held_partitions_;         // reloaded ones (topic, partition)
  bool fail_matching_ = false;  // test fault point match_error
  bool slow_batches_ = false;   // test fault point slow_batch
  Counter* match_errors_ = nullptr;
  uint64_t match_errors_pending_ = 0;
  store::Store& store_;
  MetricsRegistry& metrics_;
  const Clock& clock_;
  EventParser parser_;
  Event event_;
  std::unique_ptr<match::Matcher> matcher_;
  std::unique_ptr<MemoMetrics> memo_metrics_;
  std::unique_ptr<match::Correlator> correlator_;  // null when the rule set has no correlation
  std::vector<match::CorrelationHit> fired_;
  std::vector<store::StateRecord> state_;
  std::vector<std::string> state_keys_;  // correlator keys of state_
  std::string scope_;                    // "<stream>/<partition>" of the message in hand
  // Per partition of the repartition topic held: what makes its matches count once.
  struct RepartitionScope {
    TimeMs newest = INT64_MIN;   // the newest match time seen
    TimeMs expired = INT64_MIN;  // seen-hit entries before this are dropped (stored)
    TimeMs expire_pending = INT64_MIN;
    int64_t replay_until = -1;  // messages below: rebuilding windows, no alerts
    bool replaying = false;     // the last message read was below replay_until - 1
  };
  std::unordered_map<std::string, RepartitionScope> repartition_scopes_;
  std::unordered_set<std::string> batch_seen_;  // seen-hit keys written by the batch in hand
  std::vector<store::StateRecord> seen_state_;  // of the batch in hand
  TimeMs repartition_horizon_ms_ = 0;           // longest remote timespan + lateness
  Counter* hits_queued_ = nullptr;
  uint64_t hits_queued_pending_ = 0;
  std::vector<Counter*> hits_by_outcome_;  // kHitOutcomes' order
  std::vector<uint64_t> hits_pending_;     // of the batch in hand, same order
  std::string hit_key_;                    // scratch
  Counter* correlation_alerts_ = nullptr;
  uint64_t correlation_pending_ = 0;  // of the batch in hand
  Counter* non_numeric_values_ = nullptr;
  uint64_t non_numeric_seen_ = 0;  // the correlator's count already added
  Counter* truncated_alerts_ = nullptr;
  uint64_t truncated_alerts_pending_ = 0;
  std::vector<uint32_t> matches_;
  std::vector<uint32_t> matched_slots_;  // of the alert being built
  std::vector<store::AlertRecord> alerts_;
  std::vector<store::PartitionOffset> offsets_;
  std::vector<store::OutboxRecord> outbox_;
  std::vector<store::DeliveryRecord> deliveries_;
  std::vector<store::EventRecord> events_;
  std::deque<std::string> batch_streams_;  // streams of this batch; a deque keeps views valid
  ShardOptions options_;
  std::string cluster_id_;
  std::string stream_;  // of the message in hand
  Counter& events_total_;
  Counter& bytes_total_;
  Counter& alerts_total_;
  std::vector<Counter*> alerts_by_level_;  // indexed by store::AlertLevel
  Histogram& batch_events_;
  Histogram& batch_seconds_;
  std::vector<Counter*> invalid_by_reason_;
  std::vector<Counter*> dead_letters_by_reason_;  // parse errors, then kNoLogsource
  std::vector<uint32_t> matched_pending_;         // rule indexes matched in the batch (rule_stats)
  std::vector<uint32_t> fired_pending_;           // correlation indexes that alerted in the batch
  std::vector<uint32_t> failed_pending_;   // rule indexes that failed on an event of the batch
  std::vector<uint64_t> invalid_pending_;  // of the batch in hand, by the same index
  std::vector<uint64_t> dead_letters_pending_;
};

}  // namespace vigil::ingest
