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
#include "vigil/core/fault.h"
#include "vigil/core/thread_name.h"

namespace vigil::ingest {
namespace {

void rebalance_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                  void* opaque) {
  Pipeline::on_rebalance(rk, static_cast<int>(err), parts, opaque);
}

using PartitionKey = std::pair<std::string, int32_t>;

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

struct Pipeline::Shard {
  int index = 0;
  std::unique_ptr<ShardWorker> worker;
  std::thread thread;
  std::mutex mu;                    // guards everything below but `paused` and `healthy`
  std::condition_variable work_cv;  // the worker waits for messages
  std::condition_variable idle_cv;  // the consumer waits for the worker to drain
  std::deque<rd_kafka_message_t*> inbox;
  size_t inbox_bytes = 0;
  bool busy = false;  // a batch is being processed
  bool stop = false;
  std::map<PartitionKey, int64_t> persisted;  // next offset persisted, per partition
  std::vector<PartitionKey> fresh;            // newly assigned: reload their correlation state
  bool paused = false;                        // consumer thread only
  std::chrono::steady_clock::time_point over_since;  // consumer thread only: inbox full since
  std::atomic<bool> healthy{true};
  Gauge* inbox_gauge = nullptr;
  std::shared_ptr<const match::CompiledBundle>
      pending_bundle;                                          // to switch to before the next batch
  std::shared_ptr<const match::CompiledBundle> active_bundle;  // what the worker runs
  Gauge* bundle_gauge = nullptr;
  // Worker thread only: the bundle version each partition was last processed with.
  std::vector<std::pair<PartitionKey, uint64_t>> partition_versions;
};

struct Pipeline::PartitionState {
  std::string topic;
  int32_t partition = 0;
  int shard = 0;
  Gauge* lag = nullptr;
  // The offset after the last message handed to the shard; -1: none yet. A message below it
  // is one librdkafka delivered again. It starts unset, not at the assignment's start: a
  // start past the partition's end (a topic deleted and created again) is reset by librdkafka
  // to the beginning without a word to the application.
  int64_t next_offset = -1;
  // Where the assignment started it: an offset, or librdkafka's logical BEGINNING / END /
  // INVALID (left to librdkafka). With END, the partition's end when the lag was first read.
  int64_t start = RD_KAFKA_OFFSET_INVALID;
  int64_t end_at_start = -1;
  // After librdkafka reset the partition's position (its offset fell out of the broker's
  // log: retention deleted records before they were consumed): the offset it should have
  // gone on from, to count what the reset skipped. -1: no reset pending.
  int64_t resume_expected = -1;
};

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
  if (p->options_.workers == 0)
    p->options_.workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (p->options_.inbox_max_messages == 0) {
    p->options_.inbox_max_messages = std::max<size_t>(4 * options.batch_max_messages, 16384);
  }
  p->store_ = &store;
  p->metrics_ = &metrics;
  p->clock_ = &clock;
  for (int i = 0; i < p->options_.workers; ++i) {
    ShardOptions so;
    so.shard = i;
    so.rule_stats = bundle->stats;
    so.max_event_bytes = options.max_event_bytes;
    so.publish_alerts = options.publish_alerts;
    so.dead_letters = options.dead_letters;
    so.dead_letter_unmapped = options.dead_letter_unmapped;
    so.retain_events = options.retain_events;
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
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, options_.topic.c_str(), RD_KAFKA_PARTITION_UA);
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
  std::lock_guard lock(error_mu_);
  return last_error_;
}

void Pipeline::set_error(Status s) {
  std::lock_guard lock(error_mu_);
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
  std::lock_guard lock(snapshot_mu_);
  partition_snapshot_ = std::move(snapshot);
}

void Pipeline::drain_all() {
  for (auto& s : shards_) {
    std::unique_lock lock(s->mu);
    s->idle_cv.wait(lock, [&] { return (s->inbox.empty() && !s->busy) || s->stop; });
  }
}

void Pipeline::run_worker(Shard& shard) {
  std::shared_ptr<const match::CompiledBundle> swap;
  std::vector<rd_kafka_message_t*> batch;
  std::vector<MessageView> views;
  std::vector<std::pair<PartitionKey, int64_t>> next;
  std::vector<PartitionKey> fresh;
  batch.reserve(options_.batch_max_messages);
  views.reserve(options_.batch_max_messages);
  for (;;) {
    {
      std::unique_lock lock(shard.mu);
      shard.work_cv.wait(
          lock, [&] { return !shard.inbox.empty() || shard.stop || shard.pending_bundle; });
      swap = std::move(shard.pending_bundle);
      shard.pending_bundle.reset();
      if (shard.inbox.empty() && !swap) break;
      const size_t n = std::min(shard.inbox.size(), options_.batch_max_messages);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(shard.inbox.front());
        shard.inbox_bytes -= shard.inbox.front()->len;
        shard.inbox.pop_front();
      }
      fresh.swap(shard.fresh);
      shard.busy = !batch.empty();
    }
    if (swap) {
      // Between two batches: every message before this point ran under the old bundle,
      // every one after under the new.
      const auto t0 = std::chrono::steady_clock::now();
      if (auto s = shard.worker->set_bundle(swap); !s) {
        spdlog::error("shard {}: cannot switch to bundle {}: {}", shard.index, swap->version,
                      s.to_string());
        set_error(s);
      } else {
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        switch_seconds_->observe(seconds);
        spdlog::info("shard {}: runs bundle {} ({}) after a switch of {:.2f} ms", shard.index,
                     swap->version, swap->name, seconds * 1000);
        shard.bundle_gauge->set(static_cast<double>(swap->version));
        std::lock_guard lock(shard.mu);
        shard.active_bundle = swap;
      }
      swap.reset();
    }
    if (batch.empty()) continue;
    for (const auto& [topic, partition] : fresh) {
      // Before any message of the partition: its correlation windows as the store has them.
      for (int attempt = 0;; ++attempt) {
        auto s = shard.worker->reload_partition(topic, partition);
        if (s) break;
        set_error(s);
        spdlog::error("shard {}: cannot load correlation state of {}/{}, retrying: {}", shard.index,
                      topic, partition, s.to_string());
        if (stop_.load() && attempt >= 3) break;
        std::this_thread::sleep_for(
            std::chrono::milliseconds(std::min(100 << std::min(attempt, 4), 1000)));
      }
    }
    fresh.clear();
    views.clear();
    for (rd_kafka_message_t* m : batch) {
      rd_kafka_timestamp_type_t tstype;
      const int64_t ts = rd_kafka_message_timestamp(m, &tstype);
      views.push_back(
          {rd_kafka_topic_name(m->rkt), m->partition, m->offset, ts,
           std::string_view(static_cast<const char*>(m->payload), m->payload ? m->len : 0),
           std::string_view(static_cast<const char*>(m->key), m->key ? m->key_len : 0)});
    }
    bool persisted = false;
    size_t queued = 0;
    for (int attempt = 0;; ++attempt) {
      auto r = shard.worker->process(views);
      if (r) {
        persisted = true;
        queued = r->dead_letters + (options_.publish_alerts ? r->alerts : 0);
        shard.healthy = true;
        break;
      }
      store_errors_->inc();
      shard.healthy = false;
      set_error(r.status());
      spdlog::error("shard {}: batch not persisted, retrying: {} attempt={}", shard.index,
                    r.status().to_string(), attempt + 1);
      if (stop_.load() && attempt >= 3)
        break;  // read again from the persisted offsets at the next start
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::min(100 << std::min(attempt, 4), 1000)));
    }
    if (persisted) {
      next.clear();
      for (const MessageView& v : views) {
        auto it = std::find_if(next.begin(), next.end(), [&](const auto& e) {
          return e.first.second == v.partition && e.first.first == v.topic;
        });
        if (it == next.end())
          next.push_back({{std::string(v.topic), v.partition}, v.offset + 1});
        else
          it->second = std::max(it->second, v.offset + 1);
      }
      rd_kafka_topic_partition_list_t* list =
          rd_kafka_topic_partition_list_new(static_cast<int>(next.size()));
      for (const auto& [tp, off] : next)
        rd_kafka_topic_partition_list_add(list, tp.first.c_str(), tp.second)->offset = off;
      // Fails for a partition lost meanwhile; its new owner starts from its own positions.
      rd_kafka_offsets_store(rk_, list);
      rd_kafka_topic_partition_list_destroy(list);
      batches_->inc();
      if (queued > 0 && on_outbox_) on_outbox_();
      record_switches(shard, views);
    }
    for (rd_kafka_message_t* m : batch) rd_kafka_message_destroy(m);
    batch.clear();
    {
      std::lock_guard lock(shard.mu);
      if (persisted) {
        for (const auto& [tp, off] : next) shard.persisted[tp] = off;
      }
      shard.busy = false;
    }
    shard.idle_cv.notify_all();
  }
  shard.idle_cv.notify_all();
}

void Pipeline::assign(rd_kafka_topic_partition_list_t* parts, bool cooperative) {
  if (cluster_id_.empty()) {
    // The assignment came through the cluster, so its metadata (and id) is at hand.
    if (char* id = rd_kafka_clusterid(rk_, 5000)) {
      cluster_id_ = id;
      rd_kafka_mem_free(rk_, id);
      spdlog::info("kafka cluster id={}", cluster_id_);
    } else {
      cluster_id_ = "unknown-cluster";
      spdlog::warn("kafka cluster id not available; offsets are kept under '{}'", cluster_id_);
    }
    for (auto& s : shards_) s->worker->set_cluster_id(cluster_id_);
  }
  // The group's committed offsets: ahead of this store when another member processed the
  // partition since this one last had it.
  rd_kafka_topic_partition_list_t* committed = rd_kafka_topic_partition_list_copy(parts);
  if (auto e = rd_kafka_committed(rk_, committed, 10000); e) {
    spdlog::warn("cannot read the group's committed offsets, starting from the store's: {}",
                 rd_kafka_err2str(e));
    for (int i = 0; i < committed->cnt; ++i) {
      committed->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
      committed->elems[i].err = e;  // not known: a start left to librdkafka, which asks again
    }
  }
  for (int i = 0; i < parts->cnt; ++i) {
    auto& p = parts->elems[i];
    int64_t start = committed->elems[i].err ? RD_KAFKA_OFFSET_INVALID : committed->elems[i].offset;
    auto stored = store_->next_offset(shards_.front()->worker->stream(p.topic), p.partition);
    if (!stored) {
      set_error(stored.status());
      spdlog::error("cannot read the stored offset of {}/{}: {}", p.topic, p.partition,
                    stored.status().to_string());
    } else if (stored->has_value()) {
      start = std::max(start, **stored);
    }
    if (start >= 0) {
      p.offset = start;
    } else if (!committed->elems[i].err) {
      // Neither the group nor the store has an offset, and the group's answer is in hand:
      // start where auto.offset.reset says at once. Left INVALID, librdkafka 2.0 asks the
      // coordinator again and then waits out a retry backoff (100 ms) before it looks the
      // logical offset up: a third of a 100,000-event run in the pipeline bench.
      p.offset = reset_offset_;
    }
    const int shard = assigner_->assign(p.topic, p.partition);
    {
      Shard& s = *shards_[static_cast<size_t>(shard)];
      std::lock_guard lock(s.mu);
      s.fresh.emplace_back(p.topic, p.partition);
    }
    auto st = std::make_unique<PartitionState>();
    st->topic = p.topic;
    st->partition = p.partition;
    st->shard = shard;
    st->start = p.offset;
    st->lag = &metrics_->gauge("vigil_consumer_lag_messages",
                               "Messages in the partition not yet persisted",
                               {{"topic", st->topic}, {"partition", std::to_string(p.partition)}});
    partitions_.push_back(std::move(st));
    spdlog::debug("partition {}/{} -> shard {} from offset {}", p.topic, p.partition, shard, start);
  }
  rd_kafka_topic_partition_list_destroy(committed);
  spdlog::info("partitions assigned count={} total={} protocol={}", parts->cnt, partitions_.size(),
               cooperative ? "COOPERATIVE" : "EAGER");
  if (cooperative) {
    if (rd_kafka_error_t* error = rd_kafka_incremental_assign(rk_, parts)) {
      spdlog::error("incremental assign failed: {}", rd_kafka_error_string(error));
      rd_kafka_error_destroy(error);
    }
  } else if (auto e = rd_kafka_assign(rk_, parts); e) {
    spdlog::error("assign failed: {}", rd_kafka_err2str(e));
  }
  for (auto& s : shards_) {
    if (s->paused)
      set_partitions_paused(*s, true);  // the new partitions of a paused shard wait too
  }
  assigned_ = true;
}

void Pipeline::revoke(rd_kafka_topic_partition_list_t* parts, bool cooperative) {
  // Persist what was read from these partitions before they move to another member.
  drain_all();
  if (!rd_kafka_assignment_lost(rk_)) {
    if (auto e = rd_kafka_commit(rk_, nullptr, 0); e && e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
      commit_failures_->inc();
      spdlog::warn("kafka offset commit before revocation failed: {}", rd_kafka_err2str(e));
    }
  }
  for (int i = 0; i < parts->cnt; ++i) {
    const auto& p = parts->elems[i];
    const std::string topic = p.topic;
    auto owner = assigner_->release(topic, p.partition);
    if (owner) {
      Shard& shard = *shards_[static_cast<size_t>(*owner)];
      std::lock_guard lock(shard.mu);
      shard.persisted.erase({topic, p.partition});
    }
    metrics_->remove_gauge("vigil_consumer_lag_messages",
                           {{"topic", topic}, {"partition", std::to_string(p.partition)}});
    std::erase_if(partitions_, [&](const auto& st) {
      return st->partition == p.partition && st->topic == topic;
    });
  }
  spdlog::info("partitions revoked count={} remaining={} lost={}", parts->cnt, partitions_.size(),
               rd_kafka_assignment_lost(rk_) ? "yes" : "no");
  if (cooperative) {
    if (rd_kafka_error_t* error = rd_kafka_incremental_unassign(rk_, parts)) {
      spdlog::error("incremental unassign failed: {}", rd_kafka_error_string(error));
      rd_kafka_error_destroy(error);
    }
  } else {
    rd_kafka_assign(rk_, nullptr);
  }
}

void Pipeline::on_rebalance(rd_kafka_t* rk, int err_int, rd_kafka_topic_partition_list_t* parts,
                            void* opaque) {
  auto* self = static_cast<Pipeline*>(opaque);
  const auto err = static_cast<rd_kafka_resp_err_t>(err_int);
  const bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    self->assign(parts, cooperative);
  } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    self->revoke(parts, cooperative);
  } else {
    spdlog::error("rebalance error: {}", rd_kafka_err2str(err));
    self->revoke(parts, false);
  }
}

void Pipeline::set_bundle(int shard, std::shared_ptr<const match::CompiledBundle> bundle) {
  Shard& s = *shards_.at(static_cast<size_t>(shard));
  {
    std::lock_guard lock(s.mu);
    s.pending_bundle = std::move(bundle);
  }
  s.work_cv.notify_all();
}

std::shared_ptr<const match::CompiledBundle> Pipeline::bundle(int shard) const {
  Shard& s = *shards_.at(static_cast<size_t>(shard));
  std::lock_guard lock(s.mu);
  return s.active_bundle;
}

void Pipeline::record_switches(Shard& shard, std::span<const MessageView> views) {
  const uint64_t version = shard.worker->bundle()->version;
  for (const MessageView& v : views) {
    auto it = std::find_if(
        shard.partition_versions.begin(), shard.partition_versions.end(),
        [&](const auto& e) { return e.first.second == v.partition && e.first.first == v.topic; });
    if (it != shard.partition_versions.end() && it->second == version) continue;
    if (it == shard.partition_versions.end()) {
      shard.partition_versions.push_back({{std::string(v.topic), v.partition}, version});
    } else {
      it->second = version;
    }
    std::lock_guard lock(switches_mu_);
    switches_.push_back({shard.index, std::string(v.topic), v.partition, v.offset, version});
    if (switches_.size() > 10000) switches_.pop_front();
  }
}

std::vector<Pipeline::BundleSwitch> Pipeline::bundle_switches() const {
  std::lock_guard lock(switches_mu_);
  return {switches_.begin(), switches_.end()};
}

std::string Pipeline::stats_json() const {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto u64 = [&](const char* key, uint64_t v) {
    w.Key(key);
    w.Uint64(v);
  };
  w.StartObject();
  w.Key("uptime_seconds");
  const double uptime =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  w.Double(uptime);
  w.Key("healthy");
  w.Bool(healthy());
  w.Key("assigned");
  w.Bool(assigned());
  uint64_t events = 0;
  w.Key("shards");
  w.StartArray();
  for (const auto& s : shards_) {
    const Labels shard = {{"shard", std::to_string(s->index)}};
    w.StartObject();
    w.Key("shard");
    w.Int(s->index);
    const uint64_t e = metrics_->counter_value("vigil_events_consumed_total", shard);
    events += e;
    u64("events", e);
    w.Key("events_per_second");  // average since start
    w.Double(uptime > 0 ? static_cast<double>(e) / uptime : 0);
    u64("bytes", metrics_->counter_value("vigil_events_consumed_bytes_total", shard));
    u64("alerts", metrics_->counter_value("vigil_alerts_total", shard));
    u64("invalid", metrics_->counter_sum("vigil_events_invalid_total", shard));
    u64("dead_letters", metrics_->counter_sum("vigil_dead_letters_total", shard));
    size_t inbox;
    uint64_t version;
    {
      std::lock_guard lock(s->mu);
      inbox = s->inbox.size();
      version = s->active_bundle ? s->active_bundle->version : 0;
    }
    u64("inbox", inbox);
    u64("bundle", version);
    w.EndObject();
  }
  w.EndArray();
  u64("events", events);
  w.Key("partitions");
  w.StartArray();
  {
    std::lock_guard lock(snapshot_mu_);
    for (const auto& p : partition_snapshot_) {
      w.StartObject();
      w.Key("topic");
      w.String(p.topic.c_str());
      w.Key("partition");
      w.Int(p.partition);
      w.Key("shard");
      w.Int(p.shard);
      w.Key("lag");
      if (p.lag < 0)
        w.Null();
      else
        w.Int64(p.lag);
      w.EndObject();
    }
  }
  w.EndArray();
  w.Key("dead_letters_by_reason");
  w.StartObject();
  for (ParseError e : kParseErrors) {
    const std::string reason(parse_error_name(e));
    u64(reason.c_str(), metrics_->counter_sum("vigil_dead_letters_total", {{"reason", reason}}));
  }
  u64(std::string(kNoLogsource).c_str(),
      metrics_->counter_sum("vigil_dead_letters_total", {{"reason", std::string(kNoLogsource)}}));
  w.EndObject();
  u64("batches", batches_->value());
  u64("store_errors", store_errors_->value());
  u64("kafka_errors", kafka_errors_->value());
  u64("unowned_messages", unowned_->value());
  u64("redelivered_messages", redelivered_->value());
  u64("skipped_offsets", skipped_->value());
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace vigil::ingest
