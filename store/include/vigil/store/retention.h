#pragma once
// RetentionTask: a background thread that applies the store's event and alert retention
// (Store::expire_events, Store::expire_alerts) every `interval`, and keeps the store's gauges
// current (vigil_events_stored_bytes, vigil_alerts_stored_bytes, vigil_store_writable). Failures
// are logged and counted, and retried at the next interval; they never stop the pipeline. A second
// thread scrubs the store (Store::scrub: every table file's checksums) at start and every
// `scrub_interval` (0: never), setting vigil_store_damaged and logging what it finds.
//
// Thread safety: start() and stop() from one thread.

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "vigil/core/metrics.h"
#include "vigil/core/mutex.h"
#include "vigil/core/time.h"
#include "vigil/store/store.h"

namespace vigil::store {

class RetentionTask {
 public:
  RetentionTask(Store& store, MetricsRegistry& metrics, const Clock& clock,
                std::chrono::milliseconds interval,
                std::chrono::milliseconds scrub_interval = std::chrono::hours(24));
  ~RetentionTask();
  void start();
  void stop();
  // One pass now (also what the thread runs).
  void run_once();
  // One scrub now (also what the scrub thread runs).
  void scrub_once();

 private:
  // A thread that runs `pass` now and then every `interval` until stop().
  std::thread every(const char* name, std::chrono::milliseconds interval,
                    void (RetentionTask::*pass)());
  Store& store_;
  const Clock& clock_;
  std::chrono::milliseconds interval_;
  Counter& dropped_;
  Counter& errors_;
  Gauge& bytes_;
  Gauge& writable_;
  Counter& alerts_expired_;
  Gauge& alert_bytes_;
  std::chrono::milliseconds scrub_interval_;
  Counter& scrubs_;
  Gauge& damaged_;
  std::thread thread_;
  std::thread scrub_thread_;
  Mutex mu_;
  CondVar cv_;
  bool stop_ VIGIL_GUARDED_BY(mu_) = false;
};

}  // namespace vigil::store
