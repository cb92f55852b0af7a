#include "vigil/store/retention.h"

#include <spdlog/spdlog.h>

#include "vigil/core/thread_name.h"

namespace vigil::store {

RetentionTask::RetentionTask(Store& store, MetricsRegistry& metrics, const Clock& clock,
                             std::chrono::milliseconds interval,
                             std::chrono::milliseconds scrub_interval)
    : store_(store),
      clock_(clock),
      interval_(interval),
      dropped_(metrics.counter("vigil_events_buckets_dropped_total",
                               "Event time buckets dropped by retention")),
      errors_(metrics.counter("vigil_retention_errors_total",
                              "Retention passes that failed (retried)")),
      bytes_(metrics.gauge("vigil_events_stored_bytes",
                           "Bytes the retained events take on disk and in memtables")),
      writable_(metrics.gauge("vigil_store_writable",
                              "1 if the last store write succeeded, 0 after a failed one")),
      alerts_expired_(metrics.counter("vigil_alerts_expired_total",
                                      "Alerts deleted by alert retention (age or size)")),
      alert_bytes_(
          metrics.gauge("vigil_alerts_stored_bytes",
                        "Bytes the alerts and their indexes take on disk and in memtables")),
      scrub_interval_(scrub_interval),
      scrubs_(metrics.counter("vigil_store_scrubs_total",
                              "Checksum scrubs of the whole store completed")),
      damaged_(metrics.gauge("vigil_store_damaged",
                             "1 if a scrub found a damaged table file (see /readyz and the log)")) {
}

RetentionTask::~RetentionTask() { stop(); }

void RetentionTask::start() {
  thread_ = every("vigil:retention", interval_, &RetentionTask::run_once);
  if (scrub_interval_.count() > 0)
    scrub_thread_ = every("vigil:scrub", scrub_interval_, &RetentionTask::scrub_once);
}

std::thread RetentionTask::every(const char* name, std::chrono::milliseconds interval,
                                 void (RetentionTask::*pass)()) {
  return std::thread([this, name, interval, pass] {
    set_thread_name(name);
    MutexLock lock(mu_);
    while (!stop_) {
      lock.unlock();
      (this->*pass)();
      lock.lock();
      const auto until = std::chrono::steady_clock::now() + interval;
      while (!stop_ && cv_.wait_until(lock, until) != std::cv_status::timeout) {
      }
    }
  });
}

void RetentionTask::stop() {
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (scrub_thread_.joinable()) scrub_thread_.join();
}

void RetentionTask::scrub_once() {
  const auto t0 = std::chrono::steady_clock::now();
  const Status s = store_.scrub();
  scrubs_.inc();
  damaged_.set(store_.damage().empty() ? 0 : 1);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  if (!s)
    spdlog::error("store scrub ({} ms): {}", ms, s.to_string());
  else
    spdlog::info("store scrub: every table file's checksums verified in {} ms", ms);
}

void RetentionTask::run_once() {
  auto r = store_.expire_events(clock_.now_ms());
  if (!r) {
    errors_.inc();
    spdlog::error("event retention failed (retried in {} s): {}", interval_.count() / 1000,
                  r.status().to_string());
  } else if (r->buckets_dropped) {
    dropped_.inc(r->buckets_dropped);
    spdlog::info("event retention dropped {} bucket(s); {} bytes before, oldest kept {}",
                 r->buckets_dropped, r->bytes_before,
                 r->oldest_kept ? format_rfc3339(r->oldest_kept) : std::string("(none)"));
  }
  auto a = store_.expire_alerts(clock_.now_ms());
  if (!a) {
    errors_.inc();
    spdlog::error("alert retention failed (retried in {} s): {}", interval_.count() / 1000,
                  a.status().to_string());
  } else if (a->alerts_deleted) {
    alerts_expired_.inc(a->alerts_deleted);
    spdlog::info("alert retention deleted {} alert(s); {} bytes before, oldest kept {}",
                 a->alerts_deleted, a->bytes_before,
                 a->oldest_kept ? format_rfc3339(a->oldest_kept) : std::string("(none)"));
  }
  alert_bytes_.set(static_cast<double>(store_.alerts_bytes()));
  bytes_.set(static_cast<double>(store_.events_bytes()));
  writable_.set(store_.writable() ? 1 : 0);
}

}  // namespace vigil::store
