#include "vigil/output/deliverer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "vigil/core/thread_name.h"

namespace vigil::output {

namespace {

Labels labels_of(const OutputConfig& c) {
  return {{"output", c.name}, {"type", std::string(output_type_name(c.type))}};
}

// The test alert of `vigil outputs test`: an alert document like any other, marked as a test.
std::string test_alert(TimeMs now) {
  const std::string t = format_rfc3339(now);
  return R"({"id":"00000000000000000000000000000000","time":")" + t + R"(","detected_at":")" + t +
         R"(","rule":{"id":"vigil-output-test","title":"vigil output test","level":"informational",)"
         R"("tags":["vigil.test"]},"host":"vigil","matched":[],"test":true})";
}

}  // namespace

Deliverer::Deliverer(OutputConfig config, store::Store& store, MetricsRegistry& metrics,
                     const Clock& clock)
    : config_(std::move(config)),
      store_(store),
      clock_(clock),
      delivered_(metrics.counter("vigil_output_delivered_total", "Alerts an output delivered",
                                 labels_of(config_))),
      failed_(metrics.counter("vigil_output_failed_total", "Sends of an output that failed",
                              labels_of(config_))),
      retried_(metrics.counter("vigil_output_retried_total",
                               "Alerts an output sent again after a failure", labels_of(config_))),
      refused_(metrics.counter("vigil_output_refused_total",
                               "Alerts a destination refused for good (dropped)",
                               labels_of(config_))),
      dropped_(metrics.counter("vigil_output_dropped_total",
                               "Queued alerts dropped past an output's max_backlog",
                               labels_of(config_))),
      backlog_gauge_(
          metrics.gauge("vigil_output_backlog", "Alerts queued for an output", labels_of(config_))),
      latency_(metrics.histogram(
          "vigil_output_delivery_seconds", "From an alert's queueing to its delivery",
          {0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 3600}, labels_of(config_))) {}

Expected<std::unique_ptr<Deliverer>> Deliverer::create(OutputConfig config, store::Store& store,
                                                       MetricsRegistry& metrics,
                                                       const Clock& clock) {
  std::unique_ptr<Deliverer> d(new Deliverer(std::move(config), store, metrics, clock));
  auto t = make_transport(d->config_);
  if (!t) return t.status();
  d->transport_ = std::move(*t);
  auto n = store.count_deliveries(d->config_.id);
  if (!n) return n.status();
  d->backlog_ = static_cast<int64_t>(*n);
  d->backlog_gauge_.set(static_cast<double>(*n));
  return d;
}

Deliverer::~Deliverer() { stop(); }

void Deliverer::start() {
  thread_ = std::thread([this] {
    set_thread_name(("vigil:out:" + config_.name).substr(0, 15).c_str());
    run();
  });
}

void Deliverer::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Deliverer::queued(uint64_t n) {
  backlog_ += static_cast<int64_t>(n);
  backlog_gauge_.set(static_cast<double>(backlog_.load()));
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

bool Deliverer::wait(std::chrono::milliseconds d, bool wake_on_queued) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [&] { return stopping_ || (wake_on_queued && woken_); });
  woken_ = false;
  return !stopping_;
}

void Deliverer::record_error(const std::string& error) {
  std::lock_guard lock(mu_);
  last_error_ = error;
  last_error_at_ = clock_.now_ms();
}

void Deliverer::run() {
  std::mt19937_64 rng(config_.id);
  std::chrono::milliseconds backoff = config_.retry_initial;
  bool retrying = false;
  std::string cursor;  // the last key taken; a read that finds nothing starts over
  double tokens = std::max<double>(1, static_cast<double>(config_.batch_size));
  auto refilled = std::chrono::steady_clock::now();
  while (true) {
    // The backlog bound: the oldest go first. The running estimate can run ahead of the queue
    // (a batch delivered before its queued() call), so the queue is counted before dropping.
    if (backlog_.load() > static_cast<int64_t>(config_.max_backlog)) {
      if (auto exact = store_.count_deliveries(config_.id)) backlog_ = static_cast<int64_t>(*exact);
    }
    if (const int64_t over = backlog_.load() - static_cast<int64_t>(config_.max_backlog);
        over > 0) {
      auto n = store_.drop_oldest_deliveries(config_.id, static_cast<uint64_t>(over));
      if (n) {
        backlog_ -= static_cast<int64_t>(*n);
        dropped_.inc(*n);
        cursor.clear();
        spdlog::warn("output {}: {} queued alerts dropped past max_backlog {}", config_.name, *n,
                     config_.max_backlog);
      }
    }
    auto batch = store_.read_deliveries(config_.id, cursor, config_.batch_size);
    if (!batch) {
      record_error(batch.status().message());
      if (!wait(std::chrono::seconds(1), false)) return;
      continue;
    }
    if (batch->empty()) {
      if (!cursor.empty()) {
        cursor.clear();  // entries may sit before the cursor (a clock set back): look again
        continue;
      }
      {
        std::lock_guard lock(mu_);
        state_ = "idle";
      }
      backlog_ = 0;  // an empty queue: resynchronise the estimate
      backlog_gauge_.set(0);
      if (!wait(std::chrono::seconds(1), true)) return;
      continue;
    }
    // The rate limit: a token bucket of batch_size (or one second's worth, if larger).
    if (config_.rate_limit > 0) {
      const double burst = std::max<double>(config_.rate_limit, static_cast<double>(batch->size()));
      const auto now = std::chrono::steady_clock::now();
      tokens = std::min(burst, tokens + config_.rate_limit *
                                            std::chrono::duration<double>(now - refilled).count());
      refilled = now;
      const double need = static_cast<double>(batch->size());
      if (tokens < need) {
        const auto ms = static_cast<int64_t>((need - tokens) / config_.rate_limit * 1000) + 1;
        if (!wait(std::chrono::milliseconds(ms), false)) return;
        continue;
      }
      tokens -= need;
    }
    std::vector<std::string_view> alerts;
    for (const auto& e : *batch) alerts.push_back(e.json);
    {
      std::lock_guard lock(mu_);
      state_ = retrying ? "retrying" : "delivering";
    }
    SendResult r;
    {
      std::lock_guard send_lock(send_mu_);
      r = transport_->send(alerts);
    }
    if (retrying) retried_.inc(batch->size());
    std::vector<std::string> keys;
    for (const auto& e : *batch) keys.push_back(e.store_key);
    if (r.outcome == SendResult::Outcome::kRetry) {
      failed_.inc();
      record_error(r.error);
      retrying = true;
      // Exponential backoff with jitter (half to all of it), or what the destination asked.
      std::chrono::milliseconds delay =
          r.retry_after ? std::min(*r.retry_after, config_.retry_max)
                        : std::chrono::milliseconds(std::uniform_int_distribution<int64_t>(
                              backoff.count() / 2, backoff.count())(rng));
      backoff = std::min(backoff * 2, config_.retry_max);
      {
        std::lock_guard lock(mu_);
        state_ = "retrying";
        next_attempt_at_ = clock_.now_ms() + delay.count();
      }
      spdlog::warn("output {}: {} (retrying {} alerts in {} ms)", config_.name, r.error,
                   batch->size(), delay.count());
      cursor.clear();
      if (!wait(delay, false)) return;
      continue;
    }
    if (r.outcome == SendResult::Outcome::kRefused) {
      refused_.inc(batch->size());
      record_error(r.error);
      spdlog::error("output {}: the destination refused {} alerts for good, dropped: {}",
                    config_.name, batch->size(), r.error);
    } else {
      delivered_.inc(batch->size());
      const TimeMs now = clock_.now_ms();
      for (const auto& e : *batch)
        latency_.observe(static_cast<double>(std::max<TimeMs>(0, now - e.queued)) / 1000);
      std::lock_guard lock(mu_);
      last_delivered_at_ = now;
    }
    retrying = false;
    backoff = config_.retry_initial;
    if (auto s = store_.delete_deliveries(keys); !s) {
      // Delivered but still queued: sent again later (at least once), never lost.
      record_error(s.message());
      if (!wait(std::chrono::seconds(1), false)) return;
      continue;
    }
    cursor = keys.back();
    backlog_ = std::max<int64_t>(0, backlog_.load() - static_cast<int64_t>(keys.size()));
    backlog_gauge_.set(static_cast<double>(backlog_.load()));
    std::lock_guard lock(mu_);
    if (stopping_) return;
  }
}

OutputStatus Deliverer::status() const {
  OutputStatus s;
  s.name = config_.name;
  s.type = std::string(output_type_name(config_.type));
  s.delivered = delivered_.value();
  s.failed = failed_.value();
  s.retried = retried_.value();
  s.refused = refused_.value();
  s.dropped = dropped_.value();
  s.backlog = static_cast<uint64_t>(std::max<int64_t>(0, backlog_.load()));
  std::lock_guard lock(mu_);
  s.state = state_;
  s.last_error = last_error_;
  s.last_error_at = last_error_at_;
  s.last_delivered_at = last_delivered_at_;
  if (state_ == "retrying")
    s.next_attempt_in_ms = std::max<int64_t>(0, next_attempt_at_ - clock_.now_ms());
  return s;
}

Status Deliverer::send_test() {
  const std::string alert = test_alert(clock_.now_ms());
  SendResult r;
  {
    std::lock_guard send_lock(send_mu_);
    r = transport_->send({alert});
  }
  if (r.outcome == SendResult::Outcome::kDelivered) return Status::ok();
  return Status::unavailable("output " + config_.name + ": " + r.error);
}

}  // namespace vigil::output
