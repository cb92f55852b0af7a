#include "vigil/ingest/publisher.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>

#include "kafka_log.h"
#include "vigil/core/thread_name.h"

namespace vigil::ingest {
namespace {

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void delivery_cb(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  Publisher::on_delivery(static_cast<int>(m->err), m->_private);
}

constexpr int kPending = -1;

// Errors no retry can cure: the record itself is refused (too large, malformed). Such a
// record is dropped from the outbox, counted and logged; the alert stays in the store.
bool is_permanent(int err) {
  switch (static_cast<rd_kafka_resp_err_t>(err)) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
      return true;
    default:
      return false;
  }
}

}  // namespace

void Publisher::on_delivery(int err, void* msg_opaque) {
  if (msg_opaque) *static_cast<int*>(msg_opaque) = err;
}

Expected<std::unique_ptr<Publisher>> Publisher::create(const PublisherOptions& options,
                                                       store::Store& store,
                                                       MetricsRegistry& metrics) {
  if (options.brokers.empty())
    return Status::invalid("no Kafka bootstrap servers given for publishing");
  if (options.max_in_flight == 0)
    return Status::invalid("publisher max_in_flight must be at least 1");
  std::unique_ptr<Publisher> p(new Publisher());
  p->options_ = options;
  p->store_ = &store;
  p->published_alerts_ = &metrics.counter(
      "vigil_published_total", "Outbox records acknowledged by Kafka", {{"kind", "alert"}});
  p->published_dead_letters_ = &metrics.counter(
      "vigil_published_total", "Outbox records acknowledged by Kafka", {{"kind", "dead_letter"}});
  p->published_hits_ =
      &metrics.counter("vigil_published_total", "Outbox records acknowledged by Kafka",
                       {{"kind", "correlation_hit"}});
  p->errors_ = &metrics.counter("vigil_publish_errors_total",
                                "Outbox records Kafka did not acknowledge (retried)");
  p->rejected_ =
      &metrics.counter("vigil_publish_rejected_total",
                       "Outbox records Kafka refused for good (too large, invalid): dropped");
  p->corrupt_ = &metrics.counter("vigil_outbox_corrupt_total",
                                 "Outbox entries that could not be decoded (dropped)");
  p->pending_ =
      &metrics.gauge("vigil_outbox_pending", "Estimated outbox records waiting for Kafka");

  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::vector<std::pair<std::string, std::string>> settings = {
      {"bootstrap.servers", options.brokers},
      {"client.id", "vigild-publisher"},
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"linger.ms", "5"},
      {"compression.type", "lz4"},
      {"message.timeout.ms", std::to_string(options.message_timeout_ms)},
      {"log_level", "4"},
  };
  for (const auto& kv : options.kafka_properties) settings.push_back(kv);
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return Status::invalid("Kafka producer property '" + k + "': " + err);
    }
  }
  rd_kafka_conf_set_dr_msg_cb(conf, &delivery_cb);
  rd_kafka_conf_set_log_cb(conf, &kafka_log_to_spdlog);
  p->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!p->rk_) return Status::invalid(std::string("cannot create the Kafka producer: ") + err);
  return p;
}

Publisher::~Publisher() {
  stop(0);
  if (rk_) rd_kafka_destroy(rk_);
}

void Publisher::start() {
  thread_ = std::thread([this] {
    set_thread_name("vigil:publisher");
    run();
  });
}

void Publisher::stop(int drain_ms) {
  if (!thread_.joinable()) return;
  drain_deadline_ms_ = steady_ms() + drain_ms;
  stop_ = true;
  notify();
  thread_.join();
}

void Publisher::notify() {
  {
    MutexLock lock(mu_);
    wake_ = true;
  }
  cv_.notify_one();
}

void Publisher::run() {
  bool failing = false;
  while (true) {
    const size_t before = errors_->value();
    const size_t published = round();
    failing = errors_->value() != before;
    pending_->set(static_cast<double>(store_->outbox_estimate()));
    if (stop_.load() && (published == 0 || failing || steady_ms() >= drain_deadline_ms_.load()))
      break;
    if (published > 0 && !failing) continue;
    MutexLock lock(mu_);
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(failing ? 1000 : 200);
    while (!wake_ && !stop_.load() && cv_.wait_until(lock, until) != std::cv_status::timeout) {
    }
    wake_ = false;
  }
}

size_t Publisher::round() {
  auto entries = store_->read_outbox(cursor_, options_.max_in_flight);
  if (entries && entries->empty() && !cursor_.empty()) {
    cursor_.clear();  // wrap around: entries written behind the cursor meanwhile
    entries = store_->read_outbox(cursor_, options_.max_in_flight);
  }
  if (!entries) {
    errors_->inc();
    spdlog::error("cannot read the outbox: {}", entries.status().to_string());
    return 0;
  }
  if (entries->empty()) return 0;

  std::vector<int> results(entries->size(), kPending);
  std::vector<std::string> done;
  size_t alerts = 0, dead_letters = 0, hits = 0;
  for (size_t i = 0; i < entries->size(); ++i) {
    if ((*entries)[i].corrupt) {
      // Nothing to publish can be recovered from it; dropped, but counted and logged.
      corrupt_->inc();
      store::AlertId id{};
      const std::string& key = (*entries)[i].store_key;
      if (key.size() == 24) std::memcpy(id.bytes, key.data() + 8, 16);
      spdlog::error("outbox entry cannot be decoded and is dropped: id={} count={}", id.hex(),
                    corrupt_->value());
      results[i] = RD_KAFKA_RESP_ERR_NO_ERROR;
      continue;
    }
    const store::OutboxRecord& r = (*entries)[i].record;
    const std::string& topic = r.kind == store::OutboxRecord::Kind::kAlert ? options_.alerts_topic
                               : r.kind == store::OutboxRecord::Kind::kDeadLetter
                                   ? options_.dead_letter_topic
                                   : options_.repartition_topic;
    if (topic.empty()) {
      // Queued under a configuration that published this kind; this one does not.
      results[i] = RD_KAFKA_RESP_ERR_NO_ERROR;
      continue;
    }
    for (;;) {
      rd_kafka_headers_t* headers = rd_kafka_headers_new(r.headers.size());
      for (const auto& [k, v] : r.headers)
        rd_kafka_header_add(headers, k.data(), static_cast<ssize_t>(k.size()), v.data(),
                            static_cast<ssize_t>(v.size()));
      const rd_kafka_resp_err_t e = rd_kafka_producev(
          rk_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_KEY(r.message_key.data(), r.message_key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(r.value.data()), r.value.size()),
          RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(&results[i]), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      rd_kafka_headers_destroy(headers);
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        results[i] = e;
        break;
      }
      rd_kafka_poll(rk_, 50);
    }
  }
  // Wait for every acknowledgement; on shutdown past the drain deadline, give up the rest
  // (they stay in the outbox for the next start).
  while (rd_kafka_outq_len(rk_) > 0) {
    rd_kafka_flush(rk_, 100);
    if (stop_.load() && steady_ms() >= drain_deadline_ms_.load()) {
      rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_poll(rk_, 0);
      break;
    }
  }
  size_t failed = 0;
  int first_error = 0;
  for (size_t i = 0; i < entries->size(); ++i) {
    if (results[i] == RD_KAFKA_RESP_ERR_NO_ERROR) {
      done.push_back((*entries)[i].store_key);
      if ((*entries)[i].corrupt) continue;
      switch ((*entries)[i].record.kind) {
        case store::OutboxRecord::Kind::kAlert:
          ++alerts;
          break;
        case store::OutboxRecord::Kind::kDeadLetter:
          ++dead_letters;
          break;
        case store::OutboxRecord::Kind::kCorrelationHit:
          ++hits;
          break;
      }
    } else if (is_permanent(results[i])) {
      done.push_back((*entries)[i].store_key);
      rejected_->inc();
      spdlog::error("outbox record refused by Kafka and dropped: id={} bytes={} error={} count={}",
                    (*entries)[i].record.id.hex(), (*entries)[i].record.value.size(),
                    rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(results[i])),
                    rejected_->value());
    } else {
      if (!failed) first_error = results[i];
      ++failed;
    }
  }
  if (auto s = store_->delete_outbox(done); !s) {
    errors_->inc();
    spdlog::error("cannot delete published outbox entries (they will be published again): {}",
                  s.to_string());
    return 0;
  }
  published_alerts_->inc(alerts);
  published_dead_letters_->inc(dead_letters);
  published_hits_->inc(hits);
  if (failed) {
    errors_->inc(failed);
    if (errors_->value() <= 20 * failed || errors_->value() % 1000 < failed) {
      spdlog::warn("outbox records not acknowledged by Kafka, retrying: count={} error={}", failed,
                   first_error == kPending
                       ? "no delivery report"
                       : rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(first_error)));
    }
    // The cursor stays: the next round starts again before the first failure.
  } else {
    cursor_ = entries->back().store_key;
  }
  return done.size();
}

}  // namespace vigil::ingest
