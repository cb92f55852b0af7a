#include "vigil/store/retention.h"

#include <spdlog/spdlog.h>

#include "vigil/core/thread_name.h"

namespace vigil::store {

RetentionTask::RetentionTask(Store& store, MetricsRegistry& metrics, const Clock& clock,
                             std::chrono::milliseconds interval)
    : store_(store),
      clock_(clock),
      interval_(interval),
      dropped_(metrics.counter("vigil_events_buckets_dropped_total", "Event time buckets dropped by retention")),
      errors_(metrics.counter("vigil_retention_errors_total", "Retention passes that failed (retried)")),
      bytes_(metrics.gauge("vigil_events_stored_bytes", "Bytes the retained events take on disk and in memtables")),
      writable_(metrics.gauge("vigil_store_writable", "1 if the last store write succeeded, 0 after a failed one")) {}

RetentionTask::~RetentionTask() { stop(); }

void RetentionTask::start() {
  thread_ = std::thread([this] {
    set_thread_name("vigil:retention");
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      run_once();
      lock.lock();
      cv_.wait_for(lock, interval_, [&] { return stop_; });
    }
  });
}

void RetentionTask::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RetentionTask::run_once() {
  auto r = store_.expire_events(clock_.now_ms());
  if (!r) {
    errors_.inc();
    spdlog::error("event retention failed (retried in {} s): {}", interval_.count() / 1000, r.status().to_string());
  } else if (r->buckets_dropped) {
    dropped_.inc(r->buckets_dropped);
    spdlog::info("event retention dropped {} bucket(s); {} bytes before, oldest kept {}", r->buckets_dropped,
                 r->bytes_before, r->oldest_kept ? format_rfc3339(r->oldest_kept) : std::string("(none)"));
  }
  bytes_.set(static_cast<double>(store_.events_bytes()));
  writable_.set(store_.writable() ? 1 : 0);
}

}  // namespace vigil::store
