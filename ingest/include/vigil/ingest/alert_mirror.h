#pragma once
// AlertMirror: the alerts topic materialised into this replica's store, so that the alert
// API of any replica answers for the whole deployment (cluster mode; DESIGN.md, Scale-out).
//
// Every replica reads every partition of the alerts topic (no consumer group: each replica
// needs all of it) from where its store says it stopped, and writes the alerts it reads
// with their indexes under the keys the replica that raised them used (alert ids and times
// are in the documents), in one RocksDB batch with the topic's offsets: a crash neither
// loses nor repeats a mirrored alert, and an alert this replica raised itself is found in
// place and left as it is (its own copy keeps the whole event, where the topic's record may
// have been cut to fit Kafka). The alerts must be vigil's own documents (kafka.alerts_format
// vigil): a record in another format, or one that does not parse, is skipped with a reason
// and a counter, never a stop.
//
// One thread. New partitions of the topic are picked up within the metadata interval.

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "vigil/core/metrics.h"
#include "vigil/core/status.h"
#include "vigil/store/store.h"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_message_s rd_kafka_message_t;

namespace vigil::ingest {

struct AlertMirrorOptions {
  std::string brokers;
  std::string alerts_topic = "vigil.alerts";
  std::string client_id = "vigild-alert-mirror";
  size_t batch_max_messages = 2000;
  int poll_ms = 100;
  int metadata_interval_ms = 10000;  // how often new partitions of the topic are looked for
  std::vector<std::pair<std::string, std::string>> kafka_properties;  // applied last
};

// A vigil alert document read back into what the store indexes. The record keeps its own
// copy of the document; its title and tags view the strings beside it.
struct ParsedAlert {
  store::AlertRecord record;
  std::string title;
  std::vector<std::string> tags;
  bool truncated = false;  // the alerts topic's record was cut (event or matched fields left out)
};
// Fails with the reason (not JSON, not a vigil alert: no id, time or rule id).
Expected<std::unique_ptr<ParsedAlert>> parse_alert_document(std::string_view json);

class AlertMirror {
 public:
  static Expected<std::unique_ptr<AlertMirror>> create(const AlertMirrorOptions& options,
                                                       store::Store& store,
                                                       MetricsRegistry& metrics);
  ~AlertMirror();

  void start();
  void stop();
  // Alerts mirrored from other replicas, and records skipped, since start (tests, stats).
  uint64_t mirrored() const { return mirrored_->value(); }

 private:
  AlertMirror() = default;
  void run();
  Status assign_partitions();
  Status write_batch(std::vector<rd_kafka_message_t*>& msgs);
  void update_lag();

  AlertMirrorOptions options_;
  store::Store* store_ = nullptr;
  rd_kafka_t* rk_ = nullptr;
  std::string stream_;         // "<cluster id>/<alerts topic>"
  std::vector<int64_t> next_;  // per partition: the next offset to read (-1: not assigned yet)
  std::thread thread_;
  std::atomic<bool> stop_{false};
  Counter* mirrored_ = nullptr;
  Counter* own_ = nullptr;
  Counter* skipped_format_ = nullptr;
  Counter* skipped_invalid_ = nullptr;
  Counter* errors_ = nullptr;
  Gauge* lag_ = nullptr;
};

}  // namespace vigil::ingest
