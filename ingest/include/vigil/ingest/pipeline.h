#pragma once
// Pipeline: one Kafka consumer group member feeding N shard workers.
//
// Threads: one consumer thread and N worker threads. The consumer thread polls the
// consumer queue in batches, serves rebalances, and hands each message to the worker that
// owns its partition (PartitionAssigner: one owner per partition, so each partition is
// processed in order). Each worker owns a ShardWorker (its own parser, Hyperscan scratch
// and WriteBatch); the only lock it takes is its own inbox's, shared with the consumer
// thread and never with another worker. A worker takes what its inbox holds (up to
// batch_max_messages), persists it in one RocksDB batch (alerts, dead letters, outbox and
// offsets together), then stores the offsets in librdkafka for the Kafka commit, which
// serves lag monitoring and hand-over to other group members.
//
// Positions: on assignment each partition starts at the later of the offset RocksDB holds
// for this cluster and the group's committed offset (another member may have processed
// further since this store last saw the partition). On revocation every worker finishes
// and persists what it holds, and the offsets are committed synchronously, before the
// partitions are given up.
//
// Backpressure: a worker's inbox is bounded (messages and bytes). Past the bound the
// consumer stops taking messages, so librdkafka's bounded prefetch queue
// (queued.max.messages.kbytes, 128 MB: about a second of work, see pipeline.cc) fills and
// its fetcher stops; if that worker stays full for
// long, its partitions are paused (so the other workers go on) and resumed when its inbox
// has drained to half. Memory stays bounded whatever the input rate. A store failure is retried
// with the same batch (the inbox then fills and the partitions pause); no offset moves past
// unpersisted data.
//
// stop() asks every thread to finish the batch in hand, persist it, commit (retrying while
// the group rebalances: the committed offsets are how the partitions' next owner, with its
// own store, knows where this one stopped), and leave the group; join() waits for that.

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "vigil/core/metrics.h"
#include "vigil/core/mutex.h"
#include "vigil/core/status.h"
#include "vigil/core/time.h"
#include "vigil/ingest/partition_assigner.h"
#include "vigil/ingest/shard_worker.h"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_topic_partition_list_s rd_kafka_topic_partition_list_t;
typedef struct rd_kafka_message_s rd_kafka_message_t;
typedef struct rd_kafka_queue_s rd_kafka_queue_t;
typedef struct rd_kafka_topic_s rd_kafka_topic_t;

namespace vigil::ingest {

struct PipelineOptions {
  std::string brokers;
  std::string topic = "vigil.events";
  std::string group = "vigil";
  std::string group_instance_id;  // static membership (e.g. the pod name); empty: dynamic
  std::string client_id = "vigild";
  int workers = 0;  // shard workers; 0: one per core
  size_t batch_max_messages = 2000;
  // Longest the consumer waits on an empty queue before it looks at backpressure and lag
  // again. Messages are handed to the workers as soon as they are fetched; a worker's batch is
  // what gathered in its inbox while it wrote the previous one (at most batch_max_messages).
  int batch_max_ms = 50;
  size_t max_event_bytes = 1 << 20;
  // Each worker's scan memo (match::MatcherOptions::memo_bytes; 0: off).
  size_t memo_bytes = match::MatcherOptions{}.memo_bytes;
  // Per worker: past either bound its partitions are paused. 0: 4 batches (at least 16384).
  size_t inbox_max_messages = 0;
  size_t inbox_max_bytes = 64 << 20;
  int hold_before_pause_ms = 500;  // a full inbox holds the consumer this long, then pauses
  // On stop, how long a commit the coordinator refuses (the group rebalancing) is retried.
  int leave_commit_timeout_ms = 10000;
  bool publish_alerts = false;        // queue alerts for the alerts topic (see Publisher)
  bool dead_letters = false;          // queue invalid events for the dead-letter topic
  bool dead_letter_unmapped = false;  // events no logsource accepts are dead letters
  EventRetention retain_events = EventRetention::kAll;
  output::AlertFormat alerts_format = output::AlertFormat::kVigil;  // of the alerts topic
  // Alert outputs (webhook, Splunk HEC, syslog): what each wants is queued in the batch.
  std::shared_ptr<const std::vector<output::OutputConfig>> outputs;
  // Extra librdkafka properties (security.protocol, sasl.*, ...), applied last.
  std::vector<std::pair<std::string, std::string>> kafka_properties;
  // Correlation across partitions (ShardOptions): the consumer subscribes to this topic too.
  std::string repartition_topic;
  std::vector<std::string> partition_key_fields;
  TimeMs repartition_lateness_ms = 3'600'000;
  // A repartition partition taken over from another replica is read again from this long
  // before now (Kafka's timestamps: when the matches were published) to rebuild its windows:
  // at least the longest timespan. 0: from the longest timespan of the bundle plus the lateness.
  TimeMs repartition_replay_ms = 0;
};

class Pipeline {
 public:
  static Expected<std::unique_ptr<Pipeline>> create(
      const PipelineOptions& options, std::shared_ptr<const match::CompiledBundle> bundle,
      store::Store& store, MetricsRegistry& metrics, const Clock& clock);
  // A bundle of `rules` with no stored version (tests, benches).
  static Expected<std::unique_ptr<Pipeline>> create(const PipelineOptions& options,
                                                    std::shared_ptr<const match::RuleSet> rules,
                                                    store::Store& store, MetricsRegistry& metrics,
                                                    const Clock& clock);
  ~Pipeline();

  Status start();
  void stop();
  void join();

  // True while consuming and the store accepts writes.
  bool healthy() const;
  // True once the consumer has received its first partition assignment.
  bool assigned() const { return assigned_.load(); }
  Status last_error() const;
  int workers() const;
  // Rule bundles (rollouts): `shard` runs `bundle` from its next batch on, switching between
  // two batches so that no event is dropped or scanned twice; an idle worker switches at
  // once. Does not wait for the worker.
  void set_bundle(int shard, std::shared_ptr<const match::CompiledBundle> bundle);
  // The bundle a shard runs now (after its last switch).
  std::shared_ptr<const match::CompiledBundle> bundle(int shard) const;
  // Where each partition changed bundles: its first offset processed under `version`.
  struct BundleSwitch {
    int shard;
    std::string topic;
    int32_t partition;
    int64_t offset;
    uint64_t version;
  };
  // The last 10,000 switches, oldest first.
  std::vector<BundleSwitch> bundle_switches() const;
  // The pipeline's state as JSON (GET /api/v1/stats): per shard events, bytes, alerts,
  // invalid events and dead letters since start and the inbox; per partition its worker and
  // lag (refreshed every second); dead letters by reason; batches, store and Kafka errors.
  std::string stats_json() const;
  // Called after every persisted batch that queued outbox records (wakes the Publisher).
  void set_on_outbox(std::function<void()> f) { on_outbox_ = std::move(f); }
  // Called after a batch that queued alerts for outputs, with the count per output (in
  // PipelineOptions::outputs' order). Set before start().
  void set_on_deliveries(std::function<void(const std::vector<uint64_t>&)> f) {
    on_deliveries_ = std::move(f);
  }

  // librdkafka's rebalance callback (err is an rd_kafka_resp_err_t); not for other callers.
  static void on_rebalance(rd_kafka_t* rk, int err, rd_kafka_topic_partition_list_t* parts,
                           void* opaque);

 private:
  struct Shard;
  struct PartitionState;
  Pipeline() = default;
  void run_consumer();
  void run_worker(Shard& shard);
  void assign(rd_kafka_topic_partition_list_t* parts, bool cooperative);
  void revoke(rd_kafka_topic_partition_list_t* parts, bool cooperative);
  // The first offset of a repartition partition published within repartition_replay_ms
  // (at most `until`).
  int64_t replay_start(const char* topic, int32_t partition, int64_t until);
  void drain_all();
  // Commits the stored offsets, retrying while the group rebalances (see pipeline.cc).
  void commit_before_leaving(rd_kafka_queue_t* queue, std::vector<rd_kafka_message_t*>& msgs);
  void dispatch(rd_kafka_message_t** msgs, size_t n);
  static void on_kafka_log(const rd_kafka_t* rk, int level, const char* facility,
                           const char* message);
  std::atomic<uint64_t> offset_resets_{0};  // librdkafka's offset resets, from its log
  uint64_t offset_resets_handled_ = 0;      // consumer thread only
  // Pauses or resumes partitions by inbox depth; true while the consumer should hold off.
  bool apply_backpressure();
  void update_lag();
  void set_partitions_paused(Shard& shard, bool paused);
  void set_error(Status s);
  void record_switches(Shard& shard, std::span<const MessageView> views);

  PipelineOptions options_;
  store::Store* store_ = nullptr;
  MetricsRegistry* metrics_ = nullptr;
  const Clock* clock_ = nullptr;
  rd_kafka_t* rk_ = nullptr;
  // Held from start on so that librdkafka knows the topic's partition leaders (from the
  // group join's metadata) by the time partitions are assigned; see start().
  rd_kafka_topic_t* topic_handle_ = nullptr;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::unique_ptr<PartitionAssigner> assigner_;
  mutable Mutex switches_mu_;
  std::deque<BundleSwitch> switches_ VIGIL_GUARDED_BY(switches_mu_);
  struct PartitionSnapshot {
    std::string topic;
    int32_t partition;
    int shard;
    int64_t lag;  // -1: not known yet
  };
  mutable Mutex snapshot_mu_;
  // Written by the consumer thread.
  std::vector<PartitionSnapshot> partition_snapshot_ VIGIL_GUARDED_BY(snapshot_mu_);
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<PartitionState>> partitions_;  // consumer thread only
  std::vector<std::vector<rd_kafka_message_t*>> staged_;     // consumer thread only: per shard
  std::thread consumer_thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::atomic<bool> assigned_{false};
  bool abandoned_ =
      false;  // stopped before its first assignment: never destroyed (see run_consumer)
  std::string cluster_id_;
  // Where a partition with neither a committed nor a stored offset starts, from the
  // consumer's auto.offset.reset: RD_KAFKA_OFFSET_BEGINNING or _END, or _INVALID to let
  // librdkafka apply it (auto.offset.reset=error).
  int64_t reset_offset_ = -1001;
  std::function<void()> on_outbox_;
  std::function<void(const std::vector<uint64_t>&)> on_deliveries_;
  mutable Mutex error_mu_;
  Status last_error_ VIGIL_GUARDED_BY(error_mu_);
  Counter* kafka_errors_ = nullptr;
  Counter* unowned_ = nullptr;
  Counter* redelivered_ = nullptr;
  Counter* skipped_ = nullptr;
  bool rewound_ = false;  // the rewind_partition test fault acted (consumer thread only)
  Counter* commit_failures_ = nullptr;
  Counter* store_errors_ = nullptr;
  Counter* batches_ = nullptr;
  Histogram* switch_seconds_ = nullptr;
  Counter* pauses_ = nullptr;
  Counter* holds_ = nullptr;
};

}  // namespace vigil::ingest
