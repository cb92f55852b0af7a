#pragma once
// One output's delivery: a thread that takes the oldest alerts of the output's queue in the
// store, sends them through its Transport, and deletes them once the destination took them.
// A failure is retried with exponential backoff (the destination's Retry-After wins) while
// the queue keeps growing on disk up to max_backlog, past which the oldest are dropped and
// counted. An alert the destination refuses for good (HTTP 400, 413, 422) is dropped and
// counted so that it never blocks the others. A rate limit spaces the sends.
//
// Metrics, labelled output="<name>": vigil_output_delivered_total, _failed_total (sends
// that failed), _retried_total, _refused_total, _dropped_total (backlog bound),
// vigil_output_backlog (queued alerts), vigil_output_delivery_seconds (queued to delivered).

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "vigil/core/metrics.h"
#include "vigil/core/time.h"
#include "vigil/output/outputs.h"
#include "vigil/store/store.h"

namespace vigil::output {

struct OutputStatus {
  std::string name, type, state;  // state: idle, delivering, retrying
  uint64_t delivered = 0, failed = 0, retried = 0, refused = 0, dropped = 0, backlog = 0;
  std::string last_error;  // never a credential: what the destination or the socket said
  TimeMs last_error_at = 0, last_delivered_at = 0;
  int64_t next_attempt_in_ms = 0;  // while retrying
};

class Deliverer {
 public:
  static Expected<std::unique_ptr<Deliverer>> create(OutputConfig config, store::Store& store,
                                                     MetricsRegistry& metrics, const Clock& clock);
  ~Deliverer();
  Deliverer(const Deliverer&) = delete;
  Deliverer& operator=(const Deliverer&) = delete;

  void start();
  void stop();
  // `n` alerts were queued for this output (the shard workers call it after their batch).
  void queued(uint64_t n);

  const OutputConfig& config() const { return config_; }
  OutputStatus status() const;
  // Sends a test alert through the destination now (not queued, not retried): `vigil outputs
  // test NAME`.
  Status send_test();

 private:
  Deliverer(OutputConfig config, store::Store& store, MetricsRegistry& metrics, const Clock& clock);
  void run();
  // Waits up to `d` or until stop; false when stopping.
  bool wait(std::chrono::milliseconds d, bool wake_on_queued);
  void record_error(const std::string& error);

  OutputConfig config_;
  store::Store& store_;
  const Clock& clock_;
  std::unique_ptr<Transport> transport_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool woken_ = false;
  std::string state_ = "idle";
  std::string last_error_;
  TimeMs last_error_at_ = 0, last_delivered_at_ = 0, next_attempt_at_ = 0;
  std::atomic<int64_t> backlog_{0};
  std::mutex send_mu_;  // one send at a time: the run thread's, or a test's
  Counter& delivered_;
  Counter& failed_;
  Counter& retried_;
  Counter& refused_;
  Counter& dropped_;
  Gauge& backlog_gauge_;
  Histogram& latency_;
};

}  // namespace vigil::output
