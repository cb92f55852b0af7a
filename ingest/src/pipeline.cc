#include "vigil/ingest/pipeline.h"

#include <librdkafka/rdkafka.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>

#include "kafka_log.h"
#include "pipeline_internal.h"
#include "vigil/core/cpus.h"
#include "vigil/core/fault.h"
#include "vigil/core/thread_name.h"

namespace vigil::ingest {
namespace {

void rebalance_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                  void* opaque) {
  Pipeline::on_rebalance(rk, static_cast<int>(err), parts, opaque);
}

// The logical offset the consumer's auto.offset.reset names (librdkafka's spellings of it).
int64_t reset_offset(rd_kafka_t* rk) {
  char value[32];
  size_t size = sizeof value;
  if (rd_kafka_conf_get(rd_kafka_conf(rk), "auto.offset.reset", value, &size) != RD_KAFKA_CONF_OK) {
    return RD_KAFKA_OFFSET_INVALID;
  }
  const std::string_view v(value);
  if (v == "smallest" || v == "earliest" || v == "beginning") return RD_KAFKA_OFFSET_BEGINNING;
  if (v == "largest" || v == "latest" || v == "end") return RD_KAFKA_OFFSET_END;
  return RD_KAFKA_OFFSET_INVALID;
}

}  // namespace

Expected<std::unique_ptr<Pipeline>> Pipeline::create(const PipelineOptions& options,
                                                     std::shared_ptr<const match::RuleSet> rules,
                                                     store::Store& store, MetricsRegistry& metrics,
                                                     const Clock& clock) {
  auto b = std::make_shared<match::CompiledBundle>();
  b->stats =
      std::make_shared<match::RuleStats>(rules->rules().size(), rules->correlations().size());
  b->rules = std::move(rules);
  return create(options, std::move(b), store, metrics, clock);
}

Expected<std::unique_ptr<Pipeline>> Pipeline::create(
    const PipelineOptions& options, std::shared_ptr<const match::CompiledBundle> bundle,
    store::Store& store, MetricsRegistry& metrics, const Clock& clock) {
  if (options.brokers.empty()) return Status::invalid("no Kafka bootstrap servers given");
  if (options.topic.empty()) return Status::invalid("no Kafka topic given");
  if (options.batch_max_messages == 0) return Status::invalid("batch size must be at least 1");
  if (options.workers < 0 || options.workers > 256)
    return Status::invalid("workers must be between 0 (one per core) and 256");
  std::unique_ptr<Pipeline> p(new Pipeline());
  p->options_ = options;
  if (p->options_.workers == 0) p->options_.workers = usable_cpus();  // a CPU limit counts
  if (p->options_.inbox_max_messages == 0) {
    p->options_.inbox_max_messages = std::max<size_t>(4 * options.batch_max_messages, 16384);
  }
  p->store_ = &store;
  p->metrics_ = &metrics;
  p->clock_ = &clock;
  if (p->options_.repartition_replay_ms <= 0) {
    TimeMs longest = 0;
    for (const auto& c : bundle->rules->correlations())
      longest = std::max(longest, c.spec.timespan_ms);
    p->options_.repartition_replay_ms = longest + options.repartition_lateness_ms;
  }
  for (int i = 0; i < p->options_.workers; ++i) {
    ShardOptions so;
    so.shard = i;
    so.rule_stats = bundle->stats;
    so.max_event_bytes = options.max_event_bytes;
    so.memo_bytes = options.memo_bytes;
    so.publish_alerts = options.publish_alerts;
    so.dead_letters = options.dead_letters;
    so.dead_letter_unmapped = options.dead_letter_unmapped;
    so.retain_events = options.retain_events;
    so.outputs = options.outputs;
    so.alerts_format = options.alerts_format;
    so.repartition_topic = options.repartition_topic;
    so.partition_key_fields = options.partition_key_fields;
    so.repartition_lateness_ms = options.repartition_lateness_ms;
    auto w = ShardWorker::create(bundle->rules, store, metrics, clock, so);
    if (!w) return w.status();
    if (auto s = (*w)->set_bundle(bundle); !s) return s;
    auto shard = std::make_unique<Shard>();
    shard->active_bundle = bundle;
    shard->bundle_gauge =
        &metrics.gauge("vigil_shard_bundle_version", "The rule bundle version a shard worker runs",
                       {{"shard", std::to_string(i)}});
    shard->bundle_gauge->set(static_cast<double>(bundle->version));
    shard->index = i;
    shard->worker = std::move(*w);
    shard->inbox_gauge =
        &metrics.gauge("vigil_shard_inbox_messages", "Messages waiting for a shard worker",
                       {{"shard", std::to_string(i)}});
    p->shards_.push_back(std::move(shard));
  }
  p->assigner_ = std::make_unique<PartitionAssigner>(p->options_.workers);
  p->kafka_errors_ =
      &metrics.counter("vigil_kafka_errors_total", "Errors reported by the Kafka consumer");
  p->commit_failures_ =
      &metrics.counter("vigil_kafka_hand_over_commit_failures_total",
                       "Offset commits before partitions were revoked or the group left that "
                       "failed (their next owner may repeat work)");
  p->unowned_ =
      &metrics.counter("vigil_messages_unowned_total",
                       "Messages of partitions no longer assigned, left to their new owner");
  p->skipped_ = &metrics.counter("vigil_kafka_skipped_offsets_total",
                                 "Offsets skipped by an offset reset: records deleted by the "
                                 "broker before they were consumed");
  p->redelivered_ =
      &metrics.counter("vigil_kafka_redelivered_messages_total",
                       "Messages Kafka delivered again at an offset already taken (dropped)");
  p->store_errors_ =
      &metrics.counter("vigil_store_errors_total", "Failed store writes (the batch is retried)");
  p->batches_ = &metrics.counter("vigil_batches_total", "Batches processed and persisted");
  p->switch_seconds_ =
      &metrics.histogram("vigil_bundle_switch_seconds",
                         "Time a shard worker spends switching rule bundles between two batches",
                         {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1});
  p->holds_ = &metrics.counter(
      "vigil_backpressure_holds_total",
      "Times the consumer stopped taking messages because a worker's inbox was full");
  p->pauses_ =
      &metrics.counter("vigil_backpressure_pauses_total",
                       "Times a worker's partitions were paused because its inbox was full");
  metrics.gauge("vigil_shard_workers", "Shard worker threads").set(p->options_.workers);

  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::vector<std::pair<std::string, std::string>> settings = {
      {"bootstrap.servers", options.brokers},
      {"group.id", options.group},
      {"client.id", options.client_id},
      // Offsets are stored (rd_kafka_offsets_store) only once persisted in RocksDB, and
      // committed from there: Kafka's committed offsets trail the store, never lead it.
      {"enable.auto.commit", "true"},
      {"auto.commit.interval.ms", "1000"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"partition.assignment.strategy", "cooperative-sticky"},
      {"enable.partition.eof", "false"},
      // librdkafka's prefetch bound, sized for about a second of a worker's work: librdkafka
      // 2.0 looks at a prefetch queue that reached its bound again only once a second
      // (librdkafka#2879; fetch.queue.backoff.ms came in 2.3), so a smaller queue runs dry
      // while fetching waits, and a worker behind its input idles up to a second each time.
      // With 32 MB a worker fed from a backlog sat idle 70% of the time (pipeline bench).
      {"queued.max.messages.kbytes", "131072"},
      {"queued.min.messages", "1000000"},
      {"log_level", "4"},
  };
  if (!options.group_instance_id.empty())
    settings.emplace_back("group.instance.id", options.group_instance_id);
  for (const auto& kv : options.kafka_properties) settings.push_back(kv);
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return Status::invalid("Kafka property '" + k + "': " + err);
    }
  }
  rd_kafka_conf_set_opaque(conf, p.get());
  rd_kafka_conf_set_rebalance_cb(conf, &rebalance_cb);
  rd_kafka_conf_set_log_cb(conf, &Pipeline::on_kafka_log);
  p->rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!p->rk_) return Status::invalid(std::string("cannot create the Kafka consumer: ") + err);
  rd_kafka_poll_set_consumer(p->rk_);
  p->reset_offset_ = reset_offset(p->rk_);
  return p;
}

Pipeline::~Pipeline() {
  stop();
  join();
  if (rk_ && !abandoned_) {
    if (topic_handle_) rd_kafka_topic_destroy(topic_handle_);
    rd_kafka_destroy(rk_);
  }
}

Status Pipeline::start() {
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(2);
  rd_kafka_topic_partition_list_add(topics, options_.topic.c_str(), RD_KAFKA_PARTITION_UA);
  if (!options_.repartition_topic.empty())
    rd_kafka_topic_partition_list_add(topics, options_.repartition_topic.c_str(),
                                      RD_KAFKA_PARTITION_UA);
  const auto e = rd_kafka_subscribe(rk_, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (e) return Status::unavailable(std::string("subscribe failed: ") + rd_kafka_err2str(e));
  // librdkafka 2.0 creates a subscribed topic's local state only at its first assignment,
  // and a partition assigned at a logical offset before its leader is known waits out an
  // offset query backoff (500 ms in the pipeline bench). A handle made now has the
  // leaders from the metadata the group join fetches.
  topic_handle_ = rd_kafka_topic_new(rk_, options_.topic.c_str(), nullptr);
  running_ = true;
  for (auto& s : shards_) {
    Shard* shard = s.get();
    s->thread = std::thread([this, shard] {
      set_thread_name("vigil:shard-" + std::to_string(shard->index));
      run_worker(*shard);
    });
  }
  consumer_thread_ = std::thread([this] {
    set_thread_name("vigil:consumer");
    run_consumer();
  });
  return Status::ok();
}

void Pipeline::stop() { stop_ = true; }

void Pipeline::join() {
  if (consumer_thread_.joinable()) consumer_thread_.join();
}

bool Pipeline::healthy() const {
  if (!running_.load()) return false;
  for (const auto& s : shards_) {
    if (!s->healthy.load()) return false;
  }
  return true;
}

int Pipeline::workers() const { return static_cast<int>(shards_.size()); }

Status Pipeline::last_error() const {
  MutexLock lock(error_mu_);
  return last_error_;
}

void Pipeline::set_error(Status s) {
  MutexLock lock(error_mu_);
  last_error_ = std::move(s);
}

void Pipeline::run_consumer() {
  using SteadyClock = std::chrono::steady_clock;
  spdlog::info("consumer started brokers={} topic={} group={} workers={}", options_.brokers,
               options_.topic, options_.group, shards_.size());
  rd_kafka_queue_t* queue = rd_kafka_queue_get_consumer(rk_);
  std::vector<rd_kafka_message_t*> msgs(1024);
  auto last_lag = SteadyClock::now();
  const int poll_ms = std::clamp(options_.batch_max_ms, 1, 100);
  while (!stop_.load()) {
    if (apply_backpressure()) {
      // A full inbox: stop taking messages, so that librdkafka's bounded prefetch queue
      // fills and its fetcher stops, until the worker has drained.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    // Serves rebalances (on_rebalance runs in this thread) as well as messages. While a
    // shard is paused, come back soon to resume it once drained.
    const bool any_paused =
        std::any_of(shards_.begin(), shards_.end(), [](const auto& s) { return s->paused; });
    // What is queued now, without waiting: rd_kafka_consume_batch_queue waits until it has
    // filled the whole array or its timeout passed, so a blocking call held every message up
    // to batch_max_ms whenever fewer than msgs.size() arrived in that time. Batches form in
    // the workers' inboxes while they are busy instead. Only an empty queue is waited on, for
    // its first message, and what came with it is taken at once.
    ssize_t n =
        std::max<ssize_t>(0, rd_kafka_consume_batch_queue(queue, 0, msgs.data(), msgs.size()));
    if (n == 0 &&
        rd_kafka_consume_batch_queue(queue, any_paused ? 2 : poll_ms, msgs.data(), 1) == 1) {
      n = 1 + std::max<ssize_t>(
                  0, rd_kafka_consume_batch_queue(queue, 0, msgs.data() + 1, msgs.size() - 1));
    }
    if (n > 0) dispatch(msgs.data(), static_cast<size_t>(n));
    if (SteadyClock::now() - last_lag >= std::chrono::seconds(1)) {
      update_lag();
      last_lag = SteadyClock::now();
    }
  }
  // From here on, messages that polls return are not processed (dispatch drops them once
  // stop_ is set): their offsets are never stored, so the partitions' next owner reads them.
  // librdkafka 2.0 aborts when a cooperative-sticky member is destroyed between joining
  // the group and receiving its first assignment (confluentinc/librdkafka#4312), so a
  // member stopped that early waits (serving the group protocol) for that assignment.
  if (!assigned_.load()) {
    const auto deadline = SteadyClock::now() + std::chrono::seconds(15);
    while (!assigned_.load() && SteadyClock::now() < deadline) {
      const ssize_t n = rd_kafka_consume_batch_queue(queue, 100, msgs.data(), msgs.size());
      if (n > 0) dispatch(msgs.data(), static_cast<size_t>(n));
    }
  }
  drain_all();
  if (assigned_.load()) {
    commit_before_leaving(queue, msgs);
    rd_kafka_queue_destroy(queue);
    // Leaving the group revokes the assignment through on_rebalance, which drains again.
    rd_kafka_consumer_close(rk_);
  } else {
    rd_kafka_queue_destroy(queue);
    // Never joined: nothing to hand over. Destroying the handle now could abort (above), so
    // it is left to the process's exit.
    spdlog::warn("consumer stopped before joining the group; its Kafka handle is abandoned");
    abandoned_ = true;
  }
  for (auto& s : shards_) {
    {
      std::lock_guard lock(s->mu);
      s->stop = true;
    }
    s->work_cv.notify_all();
    if (s->thread.joinable()) s->thread.join();
  }
  running_ = false;
  spdlog::info("consumer stopped");
}

void Pipeline::commit_before_leaving(rd_kafka_queue_t* queue,
                                     std::vector<rd_kafka_message_t*>& msgs) {
  // The group's committed offsets are all the partitions' next owner (another instance,
  // with its own store) knows of where this one stopped: an offset left uncommitted is an
  // alert created twice. A coordinator refuses commits while the group rebalances (and
  // until this member has rejoined with the new generation), so a refused commit is tried
  // again while polls serve the group protocol, for a bounded time.
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(options_.leave_commit_timeout_ms);
  for (int attempt = 1;; ++attempt) {
    const rd_kafka_resp_err_t e = rd_kafka_commit(rk_, nullptr, 0);
    if (!e || e == RD_KAFKA_RESP_ERR__NO_OFFSET) {
      if (attempt > 1)
        spdlog::info("kafka offsets committed before leaving after {} attempts", attempt);
      return;
    }
    const bool retriable =
        e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS || e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
        e == RD_KAFKA_RESP_ERR_NOT_COORDINATOR ||
        e == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
        e == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS ||
        e == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT || e == RD_KAFKA_RESP_ERR__TIMED_OUT ||
        e == RD_KAFKA_RESP_ERR__TRANSPORT || e == RD_KAFKA_RESP_ERR__WAIT_COORD;
    if (!retriable || std::chrono::steady_clock::now() >= deadline) {
      commit_failures_->inc();
      spdlog::warn(
          "kafka offset commit before leaving failed after {} attempts: {}; the partitions' next "
          "owner "
          "starts from the group's last committed offsets",
          attempt, rd_kafka_err2str(e));
      return;
    }
    spdlog::debug("kafka offset commit before leaving refused ({}), retrying", rd_kafka_err2str(e));
    // Serves the rebalance (on_rebalance may revoke, which commits with the new generation).
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    while (std::chrono::steady_clock::now() < until) {
      const ssize_t n = rd_kafka_consume_batch_queue(queue, 50, msgs.data(), msgs.size());
      if (n > 0) dispatch(msgs.data(), static_cast<size_t>(n));
    }
  }
}

// librdkafka resets a partition's position when its offset fell out of the broker's log
// (auto.offset.reset: earliest) and says so only in its log ("offset reset (at offset X)
// to offset Y"), not to the application. The line is noted here, from librdkafka's thread;
// dispatch() then counts the offsets each partition skipped.
void Pipeline::on_kafka_log(const rd_kafka_t* rk, int level, const char* facility,
                            const char* message) {
  kafka_log_to_spdlog(rk, level, facility, message);
  if (std::strcmp(facility, "OFFSET") != 0 || std::strstr(message, "offset reset") == nullptr)
    return;
  if (auto* self = static_cast<Pipeline*>(rd_kafka_opaque(rk))) self->offset_resets_.fetch_add(1);
}

void Pipeline::dispatch(rd_kafka_message_t** msgs, size_t n) {
  auto& staged = staged_;
  if (const uint64_t resets = offset_resets_.load(); resets != offset_resets_handled_) {
    offset_resets_handled_ = resets;
    for (const auto& p : partitions_) {
      if (p->next_offset >= 0 && p->resume_expected < 0) p->resume_expected = p->next_offset;
    }
  }
  staged.resize(shards_.size());
  PartitionState* last = nullptr;
  for (size_t i = 0; i < n; ++i) {
    rd_kafka_message_t* m = msgs[i];
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        kafka_errors_->inc();
        if (kafka_errors_->value() <= 20 || kafka_errors_->value() % 1000 == 0) {
          spdlog::warn("kafka consumer error: {} count={}", rd_kafka_message_errstr(m),
                       kafka_errors_->value());
        }
        if (m->rkt) {
          // After an error of the partition its position may have moved (an offset reset):
          // its next message is taken from wherever librdkafka goes on.
          const char* topic = rd_kafka_topic_name(m->rkt);
          const bool reset = m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
                             m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE;
          for (const auto& p : partitions_) {
            if (p->partition != m->partition || p->topic != topic) continue;
            if (reset && p->next_offset >= 0 && p->resume_expected < 0)
              p->resume_expected = p->next_offset;
            p->next_offset = -1;
          }
        }
      }
      rd_kafka_message_destroy(m);
      continue;
    }
    if (stop_.load(std::memory_order_relaxed)) {
      rd_kafka_message_destroy(m);  // stopping: left, unstored, to the partition's next owner
      continue;
    }
    const char* topic = rd_kafka_topic_name(m->rkt);
    if (!last || last->partition != m->partition || last->topic != topic) {
      last = nullptr;
      for (const auto& p : partitions_) {
        if (p->partition == m->partition && p->topic == topic) {
          last = p.get();
          break;
        }
      }
    }
    if (!last) {
      // A message of a partition no longer assigned: its new owner reads it again.
      unowned_->inc();
      rd_kafka_message_destroy(m);
      continue;
    }
    if (m->offset < last->next_offset) {
      // Delivered again: librdkafka 2.0 can rewind a partition after pause/resume or an
      // incremental assignment (confluentinc/librdkafka#4637, #4686, fixed in 2.4). The
      // message was handed to the shard already; a second copy would be a second alert on
      // the alerts topic.
      redelivered_->inc();
      rd_kafka_message_destroy(m);
      continue;
    }
    if (last->resume_expected >= 0) {
      if (m->offset > last->resume_expected) {
        // Records the broker no longer had when they were due: lost before vigil could read
        // them (never silently: counted and logged with their range).
        const int64_t skipped = m->offset - last->resume_expected;
        skipped_->inc(static_cast<uint64_t>(skipped));
        spdlog::error(
            "partition {}/{}: offsets {}..{} ({} records) were skipped by an offset reset: the "
            "broker deleted "
            "them before they were consumed (retention shorter than the lag, or a record larger "
            "than the "
            "log segment)",
            last->topic, last->partition, last->resume_expected, m->offset - 1, skipped);
      }
      last->resume_expected = -1;
    }
    last->next_offset = m->offset + 1;
    staged[static_cast<size_t>(last->shard)].push_back(m);
    if (!rewound_ && m->offset >= 100 && fault_armed("rewind_partition", last->topic)) {
      // Test fault: Kafka delivers the partition's messages again from its first offset.
      rewound_ = true;
      rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
      rd_kafka_topic_partition_list_add(list, last->topic.c_str(), last->partition)->offset = 0;
      if (rd_kafka_error_t* error = rd_kafka_seek_partitions(rk_, list, 5000))
        rd_kafka_error_destroy(error);
      rd_kafka_topic_partition_list_destroy(list);
    }
  }
  for (size_t s = 0; s < shards_.size(); ++s) {
    if (staged[s].empty()) continue;
    Shard& shard = *shards_[s];
    {
      std::lock_guard lock(shard.mu);
      for (rd_kafka_message_t* m : staged[s]) {
        shard.inbox.push_back(m);
        shard.inbox_bytes += m->len;
      }
    }
    shard.work_cv.notify_one();
    staged[s].clear();
  }
}

bool Pipeline::apply_backpressure() {
  const auto now = std::chrono::steady_clock::now();
  bool hold = false;
  for (auto& s : shards_) {
    size_t messages, bytes;
    {
      std::lock_guard lock(s->mu);
      messages = s->inbox.size();
      bytes = s->inbox_bytes;
    }
    s->inbox_gauge->set(static_cast<double>(messages));
    const bool over = messages >= options_.inbox_max_messages || bytes >= options_.inbox_max_bytes;
    const bool drained =
        messages <= options_.inbox_max_messages / 2 && bytes <= options_.inbox_max_bytes / 2;
    if (over && s->over_since == std::chrono::steady_clock::time_point{}) {
      s->over_since = now;
      holds_->inc();
    }
    if (drained) {
      s->over_since = {};
      if (s->paused) set_partitions_paused(*s, false);
    }
    if (s->over_since == std::chrono::steady_clock::time_point{} || s->paused) continue;
    // Pausing makes librdkafka drop and later fetch again what it had prefetched, so it is
    // kept for a worker that stays full while the others could go on.
    if (now - s->over_since < std::chrono::milliseconds(options_.hold_before_pause_ms)) {
      hold = true;
    } else {
      set_partitions_paused(*s, true);
    }
  }
  return hold;
}

void Pipeline::set_partitions_paused(Shard& shard, bool paused) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(8);
  for (const auto& p : partitions_) {
    if (p->shard == shard.index)
      rd_kafka_topic_partition_list_add(list, p->topic.c_str(), p->partition);
  }
  if (paused) {
    rd_kafka_pause_partitions(rk_, list);
    pauses_->inc();
  } else {
    rd_kafka_resume_partitions(rk_, list);
  }
  spdlog::debug("shard {} partitions {} count={}", shard.index, paused ? "paused" : "resumed",
                list->cnt);
  rd_kafka_topic_partition_list_destroy(list);
  shard.paused = paused;
}

void Pipeline::update_lag() {
  std::vector<PartitionSnapshot> snapshot;
  for (const auto& p : partitions_) {
    snapshot.push_back({p->topic, p->partition, p->shard, -1});
  }
  for (const auto& p : partitions_) {
    int64_t low = -1, high = -1;
    if (rd_kafka_get_watermark_offsets(rk_, p->topic.c_str(), p->partition, &low, &high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0) {
      continue;
    }
    Shard& shard = *shards_[static_cast<size_t>(p->shard)];
    int64_t persisted = -1;
    {
      std::lock_guard lock(shard.mu);
      auto it = shard.persisted.find({p->topic, p->partition});
      if (it != shard.persisted.end()) persisted = it->second;
    }
    if (persisted < 0) {
      // Nothing persisted yet: count from what was handed to the worker, else from where the
      // partition started (a start at `latest` owes nothing that came before it).
      if (p->next_offset >= 0) {
        persisted = p->next_offset;
      } else if (p->start >= 0) {
        persisted = std::min(p->start, high);
      } else if (p->start == RD_KAFKA_OFFSET_END) {
        if (p->end_at_start < 0) p->end_at_start = high;
        persisted = p->end_at_start;
      } else {
        persisted = low;
      }
    }
    const int64_t lag = std::max<int64_t>(0, high - persisted);
    p->lag->set(static_cast<double>(lag));
    for (auto& s : snapshot) {
      if (s.partition == p->partition && s.topic == p->topic) s.lag = lag;
    }
  }
  MutexLock lock(snapshot_mu_);
  partition_snapshot_ = std::move(snapshot);
}

void Pipeline::drain_all() {
  for (auto& s : shards_) {
    std::unique_lock lock(s->mu);
    s->idle_cv.wait(lock, [&] { return (s->inbox.empty() && !s->busy) || s->stop; });
  }
}

}  // namespace vigil::ingest
