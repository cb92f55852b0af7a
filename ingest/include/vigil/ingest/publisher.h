#pragma once
// Publisher: produces the store's outbox to Kafka — alerts to the alerts topic, dead
// letters (with their reason and source coordinates in headers) to the dead-letter topic,
// correlation hits to the repartition topic (cluster mode, correlation_hit.h).
//
// Shard workers write outbox records in the same RocksDB batch as the alerts and offsets
// they belong to; the Publisher reads them in key order, produces them with an idempotent
// producer (acks=all), and deletes each entry once Kafka acknowledged it. A crash may
// therefore publish an entry twice (with the same message key: the alert id), never lose
// one. While Kafka is unreachable the outbox grows on disk and publication resumes when it
// is back; failures are counted and retried with backoff. A record Kafka refuses for good
// (larger than message.max.bytes, invalid) is dropped with a counter and a log line, so it
// never blocks the others.
//
// One thread; notify() (any thread) wakes it when new records were written.

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "vigil/core/metrics.h"
#include "vigil/core/mutex.h"
#include "vigil/core/status.h"
#include "vigil/store/store.h"

typedef struct rd_kafka_s rd_kafka_t;

namespace vigil::ingest {

struct PublisherOptions {
  std::string brokers;
  std::string alerts_topic;       // empty: alerts are not queued (the Pipeline decides)
  std::string dead_letter_topic;  // empty: idem for dead letters
  std::string repartition_topic;  // correlation hits (cluster mode); empty: not queued
  size_t max_in_flight = 5000;    // outbox entries per produce round
  int message_timeout_ms = 30000;
  std::vector<std::pair<std::string, std::string>> kafka_properties;  // applied last
};

class Publisher {
 public:
  static Expected<std::unique_ptr<Publisher>> create(const PublisherOptions& options,
                                                     store::Store& store, MetricsRegistry& metrics);
  ~Publisher();

  void start();
  // Publishes what the outbox holds (bounded by `drain_ms`), then stops.
  void stop(int drain_ms = 5000);
  void notify();

  // librdkafka's delivery report callback; not for other callers.
  static void on_delivery(int err, void* msg_opaque);

 private:
  Publisher() = default;
  void run();
  // One produce round from the cursor; returns the number of entries published.
  size_t round();

  PublisherOptions options_;
  store::Store* store_ = nullptr;
  rd_kafka_t* rk_ = nullptr;
  std::thread thread_;
  Mutex mu_;
  CondVar cv_;
  bool wake_ VIGIL_GUARDED_BY(mu_) = false;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> drain_deadline_ms_{0};
  std::string cursor_;  // store key of the last entry of the previous round
  Counter* published_alerts_ = nullptr;
  Counter* published_dead_letters_ = nullptr;
  Counter* published_hits_ = nullptr;
  Counter* errors_ = nullptr;
  Counter* corrupt_ = nullptr;
  Counter* rejected_ = nullptr;
  Gauge* pending_ = nullptr;
};

}  // namespace vigil::ingest
