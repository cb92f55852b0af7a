#pragma once
// Pipeline: the Kafka consumer group member that feeds a ShardWorker.
//
// One consumer thread polls messages into batches (by count or age), hands each batch to
// the worker, and once the worker has persisted it (alerts and offsets in one RocksDB
// batch) commits the offsets to Kafka for lag monitoring. RocksDB, not Kafka, is the
// source of truth for positions: on assignment each partition starts at the offset the
// store holds for this cluster (offsets and alert ids are qualified by the Kafka cluster
// id, read at the first assignment). On revocation the batch in hand is persisted before the partitions go.
// A store failure is retried with the same batch; no offset moves past unpersisted data.
//
// stop() asks the thread to finish the batch in hand, persist it, commit, and leave the
// group; join() waits for that.

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "vigil/core/metrics.h"
#include "vigil/core/status.h"
#include "vigil/core/time.h"
#include "vigil/ingest/shard_worker.h"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_message_s rd_kafka_message_t;
typedef struct rd_kafka_topic_partition_list_s rd_kafka_topic_partition_list_t;

namespace vigil::ingest {

struct PipelineOptions {
  std::string brokers;
  std::string topic = "vigil.events";
  std::string group = "vigil";
  std::string group_instance_id;  // static membership (e.g. the pod name); empty: dynamic
  std::string client_id = "vigild";
  size_t batch_max_messages = 2000;
  int batch_max_ms = 50;
  size_t max_event_bytes = 1 << 20;
  // Extra librdkafka properties (security.protocol, sasl.*, ...), applied last.
  std::vector<std::pair<std::string, std::string>> kafka_properties;
};

class Pipeline {
 public:
  static Expected<std::unique_ptr<Pipeline>> create(const PipelineOptions& options,
                                                    std::shared_ptr<const match::RuleSet> rules,
                                                    store::Store& store, MetricsRegistry& metrics,
                                                    const Clock& clock);
  ~Pipeline();

  Status start();
  void stop();
  void join();

  // True while consuming and the store accepts writes.
  bool healthy() const { return healthy_.load(); }
  // True once the consumer has received its first partition assignment.
  bool assigned() const { return assigned_.load(); }
  Status last_error() const;

  // librdkafka's rebalance callback (err is an rd_kafka_resp_err_t); not for other callers.
  static void on_rebalance(rd_kafka_t* rk, int err, rd_kafka_topic_partition_list_t* parts, void* opaque);

 private:
  Pipeline() = default;
  void run();
  void flush_batch();
  void commit(bool async);
  void set_error(Status s);

  PipelineOptions options_;
  store::Store* store_ = nullptr;
  MetricsRegistry* metrics_ = nullptr;
  const Clock* clock_ = nullptr;
  std::unique_ptr<ShardWorker> worker_;
  rd_kafka_t* rk_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> healthy_{false};
  std::atomic<bool> assigned_{false};
  std::vector<rd_kafka_message_t*> batch_;
  std::vector<MessageView> views_;
  struct KafkaOffset {
    std::string topic;
    int32_t partition;
    int64_t next_offset;
  };
  std::vector<KafkaOffset> to_commit_;
  std::string cluster_id_;
  mutable std::mutex error_mu_;
  Status last_error_;
  Counter* kafka_errors_ = nullptr;
  Counter* store_errors_ = nullptr;
  Counter* batches_ = nullptr;
  Gauge* batch_seconds_ = nullptr;
};

}  // namespace vigil::ingest
