#pragma once
// Pipeline's state, shared by its files: pipeline.cc (creation, the consumer thread, dispatch
// and backpressure), pipeline_worker.cc (shard workers, bundle switches),
// pipeline_rebalance.cc (assignments) and pipeline_stats.cc. Private to vigil_ingest.

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "vigil/ingest/pipeline.h"

namespace vigil::ingest {

using PartitionKey = std::pair<std::string, int32_t>;

struct Pipeline::Shard {
  int index = 0;
  std::unique_ptr<ShardWorker> worker;
  std::thread thread;
  // Guards everything below but `paused`, `over_since` and `healthy`. Not a Clang-annotated
  // Mutex (core/mutex.h) for a written reason: the worker and the consumer wait on the two
  // condition variables with predicates and hand the lock across unlock/relock around each
  // batch, which the analysis checks only with the waits rewritten as explicit loops; the
  // pipeline suites run under ThreadSanitizer instead (make test-tsan).
  std::mutex mu;
  std::condition_variable work_cv;  // the worker waits for messages
  std::condition_variable idle_cv;  // the consumer waits for the worker to drain
  std::deque<rd_kafka_message_t*> inbox;
  size_t inbox_bytes = 0;
  bool busy = false;  // a batch is being processed
  bool stop = false;
  std::map<PartitionKey, int64_t> persisted;  // next offset persisted, per partition
  // Newly assigned: reload their correlation state (ShardWorker::reload_partition).
  struct Fresh {
    PartitionKey key;
    int64_t replay_until = -1;
    bool rebuild = false;
  };
  std::vector<Fresh> fresh;
  bool paused = false;                               // consumer thread only
  std::chrono::steady_clock::time_point over_since;  // consumer thread only: inbox full since
  std::atomic<bool> healthy{true};
  Gauge* inbox_gauge = nullptr;
  std::shared_ptr<const match::CompiledBundle>
      pending_bundle;                                          // to switch to before the next batch
  std::shared_ptr<const match::CompiledBundle> active_bundle;  // what the worker runs
  Gauge* bundle_gauge = nullptr;
  // Worker thread only: the bundle version each partition was last processed with.
  std::vector<std::pair<PartitionKey, uint64_t>> partition_versions;
};

struct Pipeline::PartitionState {
  std::string topic;
  int32_t partition = 0;
  int shard = 0;
  Gauge* lag = nullptr;
  // The offset after the last message handed to the shard; -1: none yet. A message below it
  // is one librdkafka delivered again. It starts unset, not at the assignment's start: a
  // start past the partition's end (a topic deleted and created again) is reset by librdkafka
  // to the beginning without a word to the application.
  int64_t next_offset = -1;
  // Where the assignment started it: an offset, or librdkafka's logical BEGINNING / END /
  // INVALID (left to librdkafka). With END, the partition's end when the lag was first read.
  int64_t start = RD_KAFKA_OFFSET_INVALID;
  int64_t end_at_start = -1;
  // After librdkafka reset the partition's position (its offset fell out of the broker's
  // log: retention deleted records before they were consumed): the offset it should have
  // gone on from, to count what the reset skipped. -1: no reset pending.
  int64_t resume_expected = -1;
};

}  // namespace vigil::ingest
