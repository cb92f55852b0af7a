#pragma once
// RetentionTask: a background thread that applies the store's event retention
// (Store::expire_events) every `interval`, and keeps the store's gauges current
// (vigil_events_stored_bytes, vigil_store_writable). Failures are logged and counted, and
// retried at the next interval; they never stop the pipeline.
//
// Thread safety: start() and stop() from one thread.

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "vigil/core/metrics.h"
#include "vigil/core/time.h"
#include "vigil/store/store.h"

namespace vigil::store {

class RetentionTask {
 public:
  RetentionTask(Store& store, MetricsRegistry& metrics, const Clock& clock, std::chrono::milliseconds interval);
  ~RetentionTask();
  void start();
  void stop();
  // One pass now (also what the thread runs).
  void run_once();

 private:
  Store& store_;
  const Clock& clock_;
  std::chrono::milliseconds interval_;
  Counter& dropped_;
  Counter& errors_;
  Gauge& bytes_;
  Gauge& writable_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

}  // namespace vigil::store
