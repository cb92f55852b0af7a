// ContentSync: the Kafka clients (producer, reader, election), the thread, producing and
// forwarded actions. Reading the topic is in content_sync_read.cc; publishing, following,
// reporting, coordinating and the status in content_sync_follow.cc.

#include "vigil/ingest/content_sync.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "content_coordinator.h"
#include "content_sync_internal.h"
#include "kafka_log.h"
#include "vigil/core/thread_name.h"

namespace vigil::ingest {

// librdkafka's rebalance callback, with ContentSync's private members.
struct ContentSyncAccess {
  static void rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t* parts, void* opaque) {
    auto* self = static_cast<ContentSync*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      rd_kafka_assign(rk, parts);
      // Nothing is read through this membership: it only elects.
      rd_kafka_pause_partitions(rk, parts);
      bool owns = false;
      for (int i = 0; i < parts->cnt; ++i)
        owns |= parts->elems[i].partition == 0 && self->options_.topic == parts->elems[i].topic;
      if (owns) {
        self->takeover_end_ = -1;  // asked again: the end as of this election
        self->takeover_pending_ = true;
        spdlog::info(
            "content: elected coordinator of the deployment's rollout; reading the "
            "content topic to its end first");
      }
    } else {
      rd_kafka_assign(rk, nullptr);
      if (self->coordinator_.exchange(false))
        spdlog::info("content: no longer the coordinator (the group moved the partition)");
      self->takeover_pending_ = false;
      self->is_coordinator_->set(0);
    }
  }
};

namespace {

std::string random_id() {
  std::random_device rd;
  std::uniform_int_distribution<uint64_t> dist;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(dist(rd)),
                static_cast<unsigned long long>(dist(rd)));
  return buf;
}

Expected<rd_kafka_t*> make_client(rd_kafka_type_t type,
                                  std::vector<std::pair<std::string, std::string>> settings,
                                  const std::vector<std::pair<std::string, std::string>>& extra,
                                  const std::vector<std::pair<std::string, std::string>>& last,
                                  void* opaque, bool elector) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& kv : extra) settings.push_back(kv);
  for (const auto& kv : last) settings.push_back(kv);
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return Status::invalid("Kafka property '" + k + "': " + err);
    }
  }
  rd_kafka_conf_set_log_cb(conf, &kafka_log_to_spdlog);
  if (elector) {
    rd_kafka_conf_set_opaque(conf, opaque);
    rd_kafka_conf_set_rebalance_cb(conf, &ContentSyncAccess::rebalance);
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (!rk) return Status::invalid(std::string("cannot create a content topic client: ") + err);
  return rk;
}

}  // namespace

ContentSync::ContentSync(const ContentSyncOptions& options, Rollout& rollout,
                         MetricsRegistry& metrics, const Clock& clock)
    : options_(options),
      rollout_(rollout),
      metrics_(metrics),
      clock_(clock),
      shared_(std::make_unique<Shared>()) {}

Expected<std::unique_ptr<ContentSync>> ContentSync::create(const ContentSyncOptions& options,
                                                           Rollout& rollout,
                                                           MetricsRegistry& metrics,
                                                           const Clock& clock) {
  if (options.brokers.empty() || options.topic.empty() || options.group.empty())
    return Status::invalid("the content topic needs brokers, a topic and a group");
  if (!ctopic::is_name(options.self))
    return Status::invalid("the replica's name '" + options.self +
                           "' is not usable on the content topic ([A-Za-z0-9._-])");
  std::unique_ptr<ContentSync> s(new ContentSync(options, rollout, metrics, clock));
  s->boot_ = clock.now_ms();
  s->coord_ = std::make_unique<ContentCoordinator>(
      options.rollout, options.self, options.report_timeout_ms, options.verdict_wait_ms);
  s->lag_ = &metrics.gauge("vigil_content_topic_lag_messages",
                           "Content topic records not yet read by this replica");
  s->is_coordinator_ = &metrics.gauge("vigil_content_coordinator",
                                      "1 if this replica coordinates the deployment's rollout "
                                      "(owns the content group's partition)");
  s->seq_ = &metrics.gauge("vigil_content_decision_applied",
                           "Sequence number of the deployment decision this replica follows");
  s->publish_errors_ = &metrics.counter("vigil_content_publish_errors_total",
                                        "Content topic records that could not be produced");

  const std::string client = "vigild-content-" + options.self;
  auto producer = make_client(RD_KAFKA_PRODUCER,
                              {{"bootstrap.servers", options.brokers},
                               {"client.id", client},
                               {"enable.idempotence", "true"},
                               {"acks", "all"},
                               {"linger.ms", "5"},
                               {"log_level", "4"}},
                              options.kafka_properties, {}, nullptr, false);
  if (!producer) return producer.status();
  s->producer_ = *producer;
  // Assigned, never subscribed: every replica reads all of it, from its start, each time.
  auto reader = make_client(RD_KAFKA_CONSUMER,
                            {{"bootstrap.servers", options.brokers},
                             {"client.id", client},
                             {"group.id", options.group + ".reader"},
                             {"enable.auto.commit", "false"},
                             {"enable.auto.offset.store", "false"},
                             {"enable.partition.eof", "false"},
                             {"log_level", "4"}},
                            options.kafka_properties, {}, nullptr, false);
  if (!reader) return reader.status();
  s->reader_ = *reader;
  rd_kafka_poll_set_consumer(s->reader_);
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(parts, options.topic.c_str(), 0)->offset =
      RD_KAFKA_OFFSET_BEGINNING;
  const rd_kafka_resp_err_t e = rd_kafka_assign(s->reader_, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  if (e) return Status::unavailable(std::string("content topic: ") + rd_kafka_err2str(e));
  // The election: the member that owns the single partition coordinates.
  auto elector = make_client(RD_KAFKA_CONSUMER,
                             {{"bootstrap.servers", options.brokers},
                              {"client.id", client + "-election"},
                              {"group.id", options.group},
                              {"enable.auto.commit", "false"},
                              {"log_level", "4"}},
                             options.kafka_properties, {{"partition.assignment.strategy", "range"}},
                             s.get(), true);
  if (!elector) return elector.status();
  s->elector_ = *elector;
  rd_kafka_poll_set_consumer(s->elector_);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, options.topic.c_str(), RD_KAFKA_PARTITION_UA);
  const rd_kafka_resp_err_t se = rd_kafka_subscribe(s->elector_, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (se) return Status::unavailable(std::string("content group: ") + rd_kafka_err2str(se));
  rollout.set_on_stored(
      [p = s.get()](const match::Bundle& b, const std::string& actor, bool lenient) {
        if (auto st = p->publish(b, actor, lenient); !st)
          spdlog::error("content: bundle {} not published: {}", b.hash(), st.to_string());
      });
  return s;
}

ContentSync::~ContentSync() {
  stop();
  rollout_.set_on_stored(nullptr);
  if (elector_) {
    rd_kafka_consumer_close(elector_);
    rd_kafka_destroy(elector_);
  }
  if (reader_) {
    rd_kafka_consumer_close(reader_);
    rd_kafka_destroy(reader_);
  }
  if (producer_) {
    rd_kafka_flush(producer_, 5000);
    rd_kafka_destroy(producer_);
  }
}

Status ContentSync::produce(const std::string& key, std::string_view value, bool tombstone) {
  const rd_kafka_resp_err_t e =
      rd_kafka_producev(producer_, RD_KAFKA_V_TOPIC(options_.topic.c_str()),
                        RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY(key.data(), key.size()),
                        RD_KAFKA_V_VALUE(tombstone ? nullptr : const_cast<char*>(value.data()),
                                         tombstone ? 0 : value.size()),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
  rd_kafka_poll(producer_, 0);
  if (e) {
    publish_errors_->inc();
    return Status::unavailable("content topic record " + key + ": " + rd_kafka_err2str(e));
  }
  return Status::ok();
}

Status ContentSync::flush(int timeout_ms) {
  const rd_kafka_resp_err_t e = rd_kafka_flush(producer_, timeout_ms);
  if (e) {
    publish_errors_->inc();
    return Status::unavailable(std::string("content topic: ") + rd_kafka_err2str(e));
  }
  return Status::ok();
}

Expected<int64_t> ContentSync::end_offset(int timeout_ms) {
  int64_t lo = 0, hi = 0;
  const rd_kafka_resp_err_t e =
      rd_kafka_query_watermark_offsets(reader_, options_.topic.c_str(), 0, &lo, &hi, timeout_ms);
  if (e) return Status::unavailable(std::string("content topic: ") + rd_kafka_err2str(e));
  return hi;
}

void ContentSync::start(Pipeline& pipeline) {
  pipeline_ = &pipeline;
  stop_ = false;
  thread_ = std::thread([this] {
    set_thread_name("vigil:content");
    run();
  });
}

void ContentSync::stop() {
  if (!thread_.joinable()) return;
  stop_ = true;
  thread_.join();
  // A clean stop: this replica's shards leave the deployment's count at once.
  (void)produce(std::string(ctopic::kReport) + options_.self, {}, true);
  (void)flush(5000);
}

void ContentSync::run() {
  while (!stop_) {
    if (rd_kafka_message_t* m = rd_kafka_consumer_poll(elector_, 0)) rd_kafka_message_destroy(m);
    read(options_.tick_ms);
    rd_kafka_poll(producer_, 0);
    if (decision_pending_) (void)apply_decision();
    const TimeMs now = clock_.now_ms();
    if (now - last_report_ >= options_.report_interval_ms) report();
    if (!takeover_pending_) {
      takeover_end_ = -1;
    } else {
      // The decisions of an earlier coordinator are read before this one decides: up to the
      // end the topic had when this one was elected (the replicas' reports keep moving it).
      if (takeover_end_ < 0) {
        if (auto end = end_offset(2000)) takeover_end_ = *end;
      }
      if (takeover_end_ >= 0 && next_offset_ >= takeover_end_) {
        takeover_pending_ = false;
        takeover_end_ = -1;
        coordinator_ = true;
        is_coordinator_->set(1);
        spdlog::info("content: this replica coordinates the deployment's rollout");
      }
    }
    if (coordinator_) coordinate();
  }
}

Status ContentSync::forward(const std::string& action, uint64_t version, const std::string& policy,
                            const std::string& actor, const std::string& reason) {
  ctopic::Action a;
  a.id = random_id();
  a.action = action;
  a.policy = policy;
  a.actor = actor;
  a.reason = reason;
  a.replica = options_.self;
  a.time = clock_.now_ms();
  if (action == "start") {
    a.hash = rollout_.hash_of(version);
    if (a.hash.empty()) return Status::not_found("no bundle version " + std::to_string(version));
  }
  if (auto s = produce(std::string(ctopic::kAction) + a.id, a.to_json()); !s) return s;
  if (auto s = flush(5000); !s) return s;
  std::unique_lock lock(shared_->mu);
  const bool answered =
      shared_->cv.wait_for(lock, std::chrono::milliseconds(options_.action_timeout_ms),
                           [&] { return shared_->results.count(a.id) > 0; });
  if (!answered) {
    return Status::unavailable("no answer from the deployment's coordinator in " +
                               std::to_string(options_.action_timeout_ms / 1000) +
                               " s (see vigil_content_coordinator on the replicas)");
  }
  const ctopic::ActionResult r = shared_->results[a.id];
  shared_->results.erase(a.id);
  lock.unlock();
  (void)produce(std::string(ctopic::kResult) + a.id, {}, true);
  if (!r.ok) return Status::invalid(r.error);
  return Status::ok();
}

}  // namespace vigil::ingest
