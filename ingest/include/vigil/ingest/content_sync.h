#pragma once
// ContentSync: rule content across the replicas of a deployment (cluster mode; DESIGN.md,
// Scale-out), over a compacted Kafka topic with one partition (records: content_topic.h).
//
// Every replica
//   - reads the whole topic from its start, and to its end before the pipeline consumes an
//     event (catch_up), so it never matches with a bundle the deployment rolled back or
//     quarantined, then keeps reading;
//   - stores every published bundle and validates it itself (Rollout::store_published), and
//     publishes its verdict; a bundle whose chunks are missing or whose content does not have
//     the hash it was published under is refused with that reason and counted;
//   - publishes the bundles submitted to it (its API, its configured rules) after its own
//     validation passed;
//   - follows the latest decision (Rollout::follow): the active bundle, and the target on the
//     shards the decision names ("<replica>/<shard>");
//   - reports, every report_interval_ms, what its shards run and their counters (the gates'
//     inputs), and what its boot rules did after an abnormal end;
//   - forwards operator actions to the coordinator and waits for its answer.
// The coordinator is the member of the consumer group `group` that owns the topic's single
// partition: if it dies, the group gives the partition, and the rollout, to another member,
// which takes the state over from the last decision. It runs ContentCoordinator.
//
// One thread; forward() and state_json() may be called from any thread.

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "vigil/core/metrics.h"
#include "vigil/core/status.h"
#include "vigil/core/time.h"
#include "vigil/ingest/rollout.h"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_message_s rd_kafka_message_t;

namespace vigil::ingest {

class Pipeline;
class ContentCoordinator;

struct ContentSyncOptions {
  std::string brokers;
  std::string topic;  // compacted, one partition (vigild creates it)
  std::string group;  // the coordinator's election group (e.g. "<kafka.group>.content")
  std::string self;   // this replica's name
  std::vector<std::pair<std::string, std::string>> kafka_properties;  // applied last
  RolloutOptions rollout;  // the coordinator's stages and gates
  int64_t report_interval_ms = 1000;
  int64_t report_timeout_ms = 10000;         // a replica without a newer report is not live
  int64_t verdict_wait_ms = 10 * 60 * 1000;  // for every live replica's verdict on a bundle
  int64_t action_timeout_ms = 15000;         // for the coordinator's answer to an action
  int64_t catch_up_timeout_ms = 120000;      // reading the topic to its end at start
  size_t chunk_bytes = 512 * 1024;           // of a bundle's compressed archive per record
  size_t max_bundle_bytes = 256u << 20;      // an archive larger is refused
  int tick_ms = 100;
};

class ContentSync {
 public:
  static Expected<std::unique_ptr<ContentSync>> create(const ContentSyncOptions& options,
                                                       Rollout& rollout, MetricsRegistry& metrics,
                                                       const Clock& clock);
  ~ContentSync();

  // Reads the topic to its end, stores and validates the bundles, follows the decision, and
  // publishes the configured rules if the topic does not hold them. Before the pipeline
  // consumes; fails after catch_up_timeout_ms.
  Status catch_up();
  void start(Pipeline& pipeline);
  void stop();  // also withdraws this replica's report

  // Publishes a bundle (Rollout's on_stored hook): chunks, then the header.
  Status publish(const match::Bundle& bundle, const std::string& actor, bool lenient);
  // An operator action (start, promote, pause, resume, rollback, policy) for the coordinator;
  // `version` is this store's (start). Waits for the coordinator's answer.
  Status forward(const std::string& action, uint64_t version, const std::string& policy,
                 const std::string& actor, const std::string& reason);
  // GET /api/v1/rollout: this replica's rollout status with the deployment's beside it.
  std::string state_json() const;

  bool coordinator() const { return coordinator_.load(); }
  uint64_t applied_seq() const { return applied_seq_.load(); }

 private:
  struct Shared;
  ContentSync(const ContentSyncOptions& options, Rollout& rollout, MetricsRegistry& metrics,
              const Clock& clock);
  void run();
  // Reads what the topic has (up to `max_ms`); false when no message came.
  bool read(int max_ms);
  void handle(const rd_kafka_message_t* m);
  void handle_bundle(const std::string& hash, std::string_view value, int64_t offset);
  void verdict(const std::string& hash, bool valid, const std::string& reason);
  Status apply_decision();
  void report();
  void coordinate();
  Status produce(const std::string& key, std::string_view value, bool tombstone = false);
  Status flush(int timeout_ms);
  Expected<int64_t> end_offset(int timeout_ms);
  friend struct ContentSyncAccess;  // the rebalance callback

  ContentSyncOptions options_;
  Rollout& rollout_;
  MetricsRegistry& metrics_;
  const Clock& clock_;
  Pipeline* pipeline_ = nullptr;
  rd_kafka_t* producer_ = nullptr;
  rd_kafka_t* reader_ = nullptr;
  rd_kafka_t* elector_ = nullptr;
  std::unique_ptr<ContentCoordinator> coord_;
  std::unique_ptr<Shared> shared_;  // what forward() and state_json() read (own mutex)
  std::map<std::string, std::map<uint32_t, std::string>> chunks_;  // by hash, then index
  size_t chunk_bytes_held_ = 0;
  std::set<std::string> verdicts_given_;  // hashes this replica published a verdict for
  std::set<std::string> answered_;        // actions this coordinator answered
  TimeMs first_publish_ = 0;
  int64_t next_offset_ = 0;
  TimeMs boot_ = 0;
  TimeMs last_report_ = 0;
  bool decision_pending_ = false;
  std::atomic<bool> coordinator_{false};
  std::atomic<bool> takeover_pending_{false};  // elected: read to the end before deciding
  int64_t takeover_end_ = -1;                  // the topic's end when elected (-1: not asked)
  std::atomic<uint64_t> applied_seq_{0};
  std::thread thread_;
  std::atomic<bool> stop_{false};
  Gauge* lag_ = nullptr;
  Gauge* is_coordinator_ = nullptr;
  Gauge* seq_ = nullptr;
  Counter* publish_errors_ = nullptr;
};

}  // namespace vigil::ingest
