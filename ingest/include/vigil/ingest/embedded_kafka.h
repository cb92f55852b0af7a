#pragma once
// EmbeddedKafka: librdkafka's mock cluster hosted in this process, for `make run`, tests and
// `vigil dev kafka`. It speaks the real Kafka protocol on loopback ports, so every client
// (vigild's consumer, kcat, kafka-python) talks to it as to a broker. Production never
// uses it: vigild only starts one when no brokers are configured.

#include <cstdint>
#include <memory>
#include <string>

#include "vigil/core/status.h"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_mock_cluster_s rd_kafka_mock_cluster_t;

namespace vigil::ingest {

class EmbeddedKafka {
 public:
  // Starts a cluster of `brokers` brokers and creates `topic` with `partitions` partitions.
  static Expected<std::unique_ptr<EmbeddedKafka>> start(int brokers, const std::string& topic,
                                                        int partitions);
  ~EmbeddedKafka();

  // "127.0.0.1:PORT,..." for bootstrap.servers.
  const std::string& bootstrap_servers() const { return bootstrap_; }
  Status create_topic(const std::string& topic, int partitions);
  // Fault injection for tests: take a broker (1-based id) down or up.
  Status set_broker_down(int broker_id, bool down);
  // Moves a partition's leadership to another broker (a leader change).
  Status set_partition_leader(const std::string& topic, int partition, int broker_id);
  // Answers the next `count` requests of Kafka API `api_key` (8: OffsetCommit, ...) with
  // the error code `error` (e.g. 27: REBALANCE_IN_PROGRESS), whichever client sends them.
  void fail_next_requests(int16_t api_key, int count, int error);
  // One control command, as `vigil dev kafka` reads them on stdin:
  //   down BROKER | up BROKER | leader TOPIC PARTITION BROKER | topic NAME PARTITIONS
  Status control(const std::string& command);

 private:
  EmbeddedKafka() = default;
  rd_kafka_t* host_ = nullptr;  // the handle that owns the mock cluster
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  std::string bootstrap_;
};

}  // namespace vigil::ingest
