#include "vigil/ingest/pipeline.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>

namespace vigil::ingest {
namespace {

void rebalance_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts, void* opaque) {
  Pipeline::on_rebalance(rk, static_cast<int>(err), parts, opaque);
}

// librdkafka's own log lines (syslog levels), in vigild's log format.
void log_cb(const rd_kafka_t*, int level, const char* facility, const char* message) {
  const auto lvl = level <= 3 ? spdlog::level::err : level == 4 ? spdlog::level::warn
                 : level <= 6 ? spdlog::level::info : spdlog::level::debug;
  spdlog::log(lvl, "kafka {}: {}", facility, message);
}

}  // namespace

Expected<std::unique_ptr<Pipeline>> Pipeline::create(const PipelineOptions& options,
                                                     std::shared_ptr<const match::RuleSet> rules, store::Store& store,
                                                     MetricsRegistry& metrics, const Clock& clock) {
  if (options.brokers.empty()) return Status::invalid("no Kafka bootstrap servers given");
  if (options.topic.empty()) return Status::invalid("no Kafka topic given");
  if (options.batch_max_messages == 0) return Status::invalid("batch size must be at least 1");
  std::unique_ptr<Pipeline> p(new Pipeline());
  p->options_ = options;
  p->store_ = &store;
  p->metrics_ = &metrics;
  p->clock_ = &clock;
  auto w = ShardWorker::create(std::move(rules), store, metrics, clock, options.max_event_bytes);
  if (!w) return w.status();
  p->worker_ = std::move(*w);
  p->kafka_errors_ = &metrics.counter("vigil_kafka_errors_total", "Errors reported by the Kafka consumer");
  p->store_errors_ = &metrics.counter("vigil_store_errors_total", "Failed store writes (the batch is retried)");
  p->batches_ = &metrics.counter("vigil_batches_total", "Batches processed and persisted");
  p->batch_seconds_ = &metrics.gauge("vigil_batch_duration_seconds", "Time to process and persist the last batch");

  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::vector<std::pair<std::string, std::string>> settings = {
      {"bootstrap.servers", options.brokers},
      {"group.id", options.group},
      {"client.id", options.client_id},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"partition.assignment.strategy", "cooperative-sticky"},
      {"enable.partition.eof", "false"},
      {"log_level", "4"},
  };
  if (!options.group_instance_id.empty()) settings.emplace_back("group.instance.id", options.group_instance_id);
  for (const auto& kv : options.kafka_properties) settings.push_back(kv);
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return Status::invalid("Kafka property '" + k + "': " + err);
    }
  }
  rd_kafka_conf_set_opaque(conf, p.get());
  rd_kafka_conf_set_rebalance_cb(conf, &rebalance_cb);
  rd_kafka_conf_set_log_cb(conf, &log_cb);
  p->rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!p->rk_) return Status::invalid(std::string("cannot create the Kafka consumer: ") + err);
  rd_kafka_poll_set_consumer(p->rk_);
  return p;
}

Pipeline::~Pipeline() {
  stop();
  join();
  if (rk_) rd_kafka_destroy(rk_);
}

Status Pipeline::start() {
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, options_.topic.c_str(), RD_KAFKA_PARTITION_UA);
  const auto e = rd_kafka_subscribe(rk_, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (e) return Status::unavailable(std::string("subscribe failed: ") + rd_kafka_err2str(e));
  healthy_ = true;
  thread_ = std::thread([this] { run(); });
  return Status::ok();
}

void Pipeline::stop() { stop_ = true; }

void Pipeline::join() {
  if (thread_.joinable()) thread_.join();
}

Status Pipeline::last_error() const {
  std::lock_guard lock(error_mu_);
  return last_error_;
}

void Pipeline::set_error(Status s) {
  std::lock_guard lock(error_mu_);
  last_error_ = std::move(s);
}

void Pipeline::run() {
  using Clock = std::chrono::steady_clock;
  spdlog::info("consumer started brokers={} topic={} group={}", options_.brokers, options_.topic, options_.group);
  while (!stop_.load()) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(options_.batch_max_ms);
    while (batch_.size() < options_.batch_max_messages && !stop_.load()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) break;
      rd_kafka_message_t* msg = rd_kafka_consumer_poll(rk_, static_cast<int>(std::min<int64_t>(left, 100)));
      if (!msg) continue;
      if (msg->err) {
        kafka_errors_->inc();
        if (kafka_errors_->value() <= 20 || kafka_errors_->value() % 1000 == 0) {
          spdlog::warn("kafka consumer error: {} count={}", rd_kafka_message_errstr(msg), kafka_errors_->value());
        }
        rd_kafka_message_destroy(msg);
        continue;
      }
      batch_.push_back(msg);
    }
    flush_batch();
  }
  flush_batch();
  commit(false);
  // Leaving the group revokes the assignment through on_rebalance, which flushes again.
  rd_kafka_consumer_close(rk_);
  healthy_ = false;
  spdlog::info("consumer stopped");
}

void Pipeline::flush_batch() {
  if (batch_.empty()) return;
  const auto t0 = std::chrono::steady_clock::now();
  views_.clear();
  for (rd_kafka_message_t* m : batch_) {
    rd_kafka_timestamp_type_t tstype;
    const int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    views_.push_back({rd_kafka_topic_name(m->rkt), m->partition, m->offset, ts,
                      std::string_view(static_cast<const char*>(m->payload), m->payload ? m->len : 0)});
  }
  for (int attempt = 0;; ++attempt) {
    auto r = worker_->process(views_);
    if (r) {
      healthy_ = true;
      break;
    }
    store_errors_->inc();
    healthy_ = false;
    set_error(r.status());
    spdlog::error("batch not persisted, retrying: {} attempt={}", r.status().to_string(), attempt + 1);
    if (stop_.load() && attempt >= 3) {
      // Shutting down with a store that still fails: leave without committing; the
      // messages will be read again from the last persisted offsets.
      for (auto* m : batch_) rd_kafka_message_destroy(m);
      batch_.clear();
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(100 << std::min(attempt, 4), 1000)));
  }
  for (const MessageView& v : views_) {
    auto it = std::find_if(to_commit_.begin(), to_commit_.end(),
                           [&](const KafkaOffset& o) { return o.partition == v.partition && o.topic == v.topic; });
    if (it == to_commit_.end()) to_commit_.push_back({std::string(v.topic), v.partition, v.offset + 1});
    else it->next_offset = std::max(it->next_offset, v.offset + 1);
  }
  for (auto* m : batch_) rd_kafka_message_destroy(m);
  batch_.clear();
  batches_->inc();
  batch_seconds_->set(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  commit(true);
}

void Pipeline::commit(bool async) {
  if (to_commit_.empty()) return;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(to_commit_.size()));
  for (const auto& o : to_commit_) {
    rd_kafka_topic_partition_list_add(list, o.topic.c_str(), o.partition)->offset = o.next_offset;
  }
  const auto e = rd_kafka_commit(rk_, list, async ? 1 : 0);
  rd_kafka_topic_partition_list_destroy(list);
  if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
    kafka_errors_->inc();
    spdlog::warn("kafka offset commit failed: {}", rd_kafka_err2str(e));
  }
  to_commit_.clear();
}

void Pipeline::on_rebalance(rd_kafka_t* rk, int err_int, rd_kafka_topic_partition_list_t* parts, void* opaque) {
  auto* self = static_cast<Pipeline*>(opaque);
  const auto err = static_cast<rd_kafka_resp_err_t>(err_int);
  const bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    if (self->cluster_id_.empty()) {
      // The assignment came through the cluster, so its metadata (and id) is at hand.
      if (char* id = rd_kafka_clusterid(rk, 5000)) {
        self->cluster_id_ = id;
        rd_kafka_mem_free(rk, id);
        spdlog::info("kafka cluster id={}", self->cluster_id_);
      } else {
        self->cluster_id_ = "unknown-cluster";
        spdlog::warn("kafka cluster id not available; offsets are kept under '{}'", self->cluster_id_);
      }
      self->worker_->set_cluster_id(self->cluster_id_);
    }
    for (int i = 0; i < parts->cnt; ++i) {
      auto& p = parts->elems[i];
      auto stored = self->store_->next_offset(self->worker_->stream(p.topic), p.partition);
      if (!stored) {
        self->set_error(stored.status());
        spdlog::error("cannot read the stored offset of {}/{}: {}", p.topic, p.partition, stored.status().to_string());
      } else if (stored->has_value()) {
        p.offset = **stored;
      }
    }
    spdlog::info("partitions assigned count={} protocol={}", parts->cnt, rd_kafka_rebalance_protocol(rk));
    rd_kafka_error_t* error = nullptr;
    if (cooperative) {
      error = rd_kafka_incremental_assign(rk, parts);
    } else if (auto e = rd_kafka_assign(rk, parts); e) {
      spdlog::error("assign failed: {}", rd_kafka_err2str(e));
    }
    if (error) {
      spdlog::error("incremental assign failed: {}", rd_kafka_error_string(error));
      rd_kafka_error_destroy(error);
    }
    self->assigned_ = true;
  } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    // Persist what was read from these partitions before they move to another member.
    self->flush_batch();
    self->commit(false);
    spdlog::info("partitions revoked count={}", parts->cnt);
    if (cooperative) {
      if (rd_kafka_error_t* error = rd_kafka_incremental_unassign(rk, parts)) {
        spdlog::error("incremental unassign failed: {}", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
      }
    } else {
      rd_kafka_assign(rk, nullptr);
    }
  } else {
    spdlog::error("rebalance error: {}", rd_kafka_err2str(err));
    rd_kafka_assign(rk, nullptr);
  }
}

}  // namespace vigil::ingest
