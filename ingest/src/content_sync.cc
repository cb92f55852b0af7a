// ContentSync: the content topic read, written and followed (content_sync.h); the
// coordinator's decisions are ContentCoordinator's (content_coordinator.cc).

#include "vigil/ingest/content_sync.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>
#include <zstd.h>

#include <algorithm>
#include <charconv>
#include <optional>
#include <random>

#include "content_coordinator.h"
#include "content_topic.h"
#include "json_util.h"
#include "kafka_log.h"
#include "vigil/core/thread_name.h"
#include "vigil/ingest/pipeline.h"

namespace vigil::ingest {

using Writer = JsonWriter;

struct ContentSync::Shared {
  mutable std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, ctopic::ActionResult> results;
  std::optional<ctopic::Decision> decision;  // the latest read
  std::map<std::string, ctopic::Report> reports;
  std::set<std::string> published;  // bundle hashes on the topic
  bool caught_up = false;
  int64_t lag = 0;
  std::string apply_error;  // why the latest decision is not (fully) followed here
  // The run thread's only: actions on the topic not yet withdrawn, by id.
  std::map<std::string, ctopic::Action> pending_actions;
};

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

std::string_view payload(const rd_kafka_message_t* m) {
  return m->payload ? std::string_view(static_cast<const char*>(m->payload), m->len)
                    : std::string_view();
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

Status ContentSync::publish(const match::Bundle& bundle, const std::string& actor, bool lenient) {
  const std::string tar = bundle.to_tar();
  std::string packed(ZSTD_compressBound(tar.size()), '\0');
  const size_t n = ZSTD_compress(packed.data(), packed.size(), tar.data(), tar.size(), 3);
  if (ZSTD_isError(n)) return Status::internal(std::string("zstd: ") + ZSTD_getErrorName(n));
  packed.resize(n);
  ctopic::BundleHeader h;
  h.hash = bundle.hash();
  h.bytes = tar.size();
  h.compressed = packed.size();
  h.chunks = static_cast<uint32_t>(
      std::max<size_t>(1, (packed.size() + options_.chunk_bytes - 1) / options_.chunk_bytes));
  h.actor = actor;
  h.origin = options_.self;
  h.lenient = lenient;
  h.time = clock_.now_ms();
  // The chunks first: a reader that meets the header has them all.
  for (uint32_t i = 0; i < h.chunks; ++i) {
    const size_t at = static_cast<size_t>(i) * options_.chunk_bytes;
    const std::string_view piece =
        std::string_view(packed).substr(at, std::min(options_.chunk_bytes, packed.size() - at));
    if (auto s = produce(ctopic::chunk_key(h.hash, i), piece); !s) return s;
  }
  if (auto s = produce(std::string(ctopic::kBundle) + h.hash, h.to_json()); !s) return s;
  if (auto s = flush(15000); !s) return s;
  spdlog::info("content: published {} ({} bytes in {} chunks) by {}", ctopic::short_name(h.hash),
               h.compressed, h.chunks, actor);
  return Status::ok();
}

void ContentSync::verdict(const std::string& hash, bool valid, const std::string& reason) {
  ctopic::Verdict v{hash, options_.self, valid, reason, clock_.now_ms()};
  if (produce(ctopic::verdict_key(hash, options_.self), v.to_json())) verdicts_given_.insert(hash);
  metrics_
      .counter("vigil_content_verdicts_total", "Bundles from the content topic this replica judged",
               {{"verdict", valid ? "valid" : "refused"}})
      .inc();
  if (!valid) spdlog::error("content: {} refused here: {}", ctopic::short_name(hash), reason);
}

void ContentSync::handle_bundle(const std::string& hash, std::string_view value, int64_t offset) {
  auto refuse_record = [&](const std::string& why) {
    metrics_
        .counter("vigil_content_records_invalid_total",
                 "Content topic records refused (not applied), by kind", {{"kind", "bundle"}})
        .inc();
    spdlog::error("content: record bundle/{} at offset {} refused: {}", hash, offset, why);
  };
  auto h = ctopic::BundleHeader::from_json(value);
  if (!h) {
    refuse_record(h.status().message());
    // The topic keeps the latest record of a key: the coordinator writes the bundle again
    // when it holds it, so that a replica that starts later can still read it.
    const uint64_t v = ctopic::is_hash(hash) && coordinator_ ? rollout_.version_of(hash) : 0;
    if (auto tar = v ? rollout_.bundle_archive(v) : Expected<std::string>(Status::not_found("")))
      if (auto b = match::Bundle::from_archive(*tar))
        (void)publish(*b, "vigil", rollout_.lenient(v));
    return;
  }
  if (h->hash != hash) return refuse_record("its key names another hash than its content");
  coord_->on_bundle(*h, offset);
  {
    std::lock_guard lock(shared_->mu);
    shared_->published.insert(hash);
  }
  auto held = chunks_.find(hash);
  auto drop_chunks = [&] {
    if (held == chunks_.end()) return;
    for (const auto& [i, c] : held->second) chunk_bytes_held_ -= c.size();
    chunks_.erase(held);
    held = chunks_.end();
  };
  if (uint64_t v = rollout_.version_of(hash); v != 0) {
    drop_chunks();
    if (!verdicts_given_.count(hash)) {
      const std::string status = rollout_.bundle_status(v);
      verdict(hash, status != "refused", status == "refused" ? "its validation here failed" : "");
    }
    return;
  }
  auto refuse = [&](const std::string& why) {
    metrics_
        .counter("vigil_content_bundles_refused_total",
                 "Published bundles this replica refused, by reason", {{"reason", why}})
        .inc();
  };
  // Reassembled, unpacked, checked against its hash, validated here.
  std::string packed;
  for (uint32_t i = 0; i < h->chunks; ++i) {
    const std::string* c = nullptr;
    if (held != chunks_.end()) {
      if (auto it = held->second.find(i); it != held->second.end()) c = &it->second;
    }
    if (!c) {
      drop_chunks();
      refuse("chunks");
      return verdict(hash, false,
                     "chunk " + std::to_string(i) + " of " + std::to_string(h->chunks) +
                         " is missing from the content topic");
    }
    packed += *c;
  }
  drop_chunks();
  if (packed.size() != h->compressed || h->bytes > options_.max_bundle_bytes) {
    refuse("size");
    return verdict(hash, false,
                   "its archive is not the size its header says, or larger than " +
                       std::to_string(options_.max_bundle_bytes) + " bytes");
  }
  const unsigned long long size = ZSTD_getFrameContentSize(packed.data(), packed.size());
  std::string tar;
  if (size == h->bytes) {
    tar.resize(size);
    const size_t n = ZSTD_decompress(tar.data(), tar.size(), packed.data(), packed.size());
    if (ZSTD_isError(n) || n != size) tar.clear();
  }
  if (tar.empty()) {
    refuse("archive");
    return verdict(hash, false, "its archive does not decompress (zstd) to its stated size");
  }
  auto bundle = match::Bundle::from_archive(tar);
  if (!bundle) {
    refuse("archive");
    return verdict(hash, false, "its archive does not read: " + bundle.status().message());
  }
  if (bundle->hash() != hash) {
    refuse("hash_mismatch");
    return verdict(hash, false,
                   "its content hashes to " + bundle->hash() +
                       ", not to the hash it was "
                       "published under");
  }
  auto stored =
      rollout_.store_published(*bundle, h->actor.empty() ? "cluster" : h->actor, h->lenient);
  if (!stored) {
    spdlog::error("content: {} not stored: {}", ctopic::short_name(hash),
                  stored.status().to_string());
    return;  // a store error: judged again at the next start
  }
  if (!stored->valid) refuse("validation");
  verdict(hash, stored->valid, stored->valid ? "" : "validation: " + stored->refused);
}

void ContentSync::handle(const rd_kafka_message_t* m) {
  const std::string key =
      m->key ? std::string(static_cast<const char*>(m->key), m->key_len) : std::string();
  const std::string_view value = payload(m);
  const bool tombstone = m->payload == nullptr;
  auto count = [&](const char* kind) {
    metrics_
        .counter("vigil_content_records_total", "Content topic records read, by kind",
                 {{"kind", kind}})
        .inc();
  };
  auto invalid = [&](const char* kind, const Status& why) {
    metrics_
        .counter("vigil_content_records_invalid_total",
                 "Content topic records refused (not applied), by kind", {{"kind", kind}})
        .inc();
    spdlog::error("content: record '{}' at offset {} refused: {}", key.substr(0, 120), m->offset,
                  why.message());
  };
  std::string_view rest;
  auto after = [&](std::string_view prefix) {
    if (!std::string_view(key).starts_with(prefix)) return false;
    rest = std::string_view(key).substr(prefix.size());
    return true;
  };
  if (after(ctopic::kChunk)) {
    count("chunk");
    const size_t slash = rest.find('/');
    uint32_t n = 0;
    const std::string hash(rest.substr(0, slash));
    const std::string_view num = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
    if (tombstone) return;
    if (!ctopic::is_hash(hash) || num.empty() ||
        std::from_chars(num.data(), num.data() + num.size(), n).ec != std::errc() || n > (1u << 20))
      return invalid("chunk", Status::invalid("its key is not chunk/<hash>/<n>"));
    if (rollout_.version_of(hash) != 0) return;  // stored here already
    if (value.size() > options_.max_bundle_bytes)
      return invalid("chunk", Status::invalid("a chunk larger than a whole bundle may be"));
    while (!chunks_.empty() && chunk_bytes_held_ + value.size() > 2 * options_.max_bundle_bytes) {
      // Chunks waiting for their header beyond the bound: a bundle's are let go (its header,
      // when it comes, is refused for missing chunks and counted).
      auto dropped = chunks_.begin();
      for (auto& [i, c] : dropped->second) chunk_bytes_held_ -= c.size();
      spdlog::warn("content: chunks of {} dropped (more than {} bytes without their header)",
                   ctopic::short_name(dropped->first), 2 * options_.max_bundle_bytes);
      chunks_.erase(dropped);
    }
    std::string& slot = chunks_[hash][n];
    chunk_bytes_held_ -= slot.size();
    slot.assign(value);
    chunk_bytes_held_ += slot.size();
  } else if (after(ctopic::kBundle)) {
    count("bundle");
    if (tombstone) return;
    handle_bundle(std::string(rest), value, m->offset);
  } else if (after(ctopic::kVerdict)) {
    count("verdict");
    if (tombstone) return;
    auto v = ctopic::Verdict::from_json(value);
    if (!v) return invalid("verdict", v.status());
    if (key != ctopic::verdict_key(v->hash, v->replica))
      return invalid("verdict", Status::invalid("its key does not name its bundle and replica"));
    if (v->replica == options_.self) verdicts_given_.insert(v->hash);
    coord_->on_verdict(*v);
  } else if (key == ctopic::kDecision) {
    count("decision");
    if (tombstone) return;
    auto d = ctopic::Decision::from_json(value);
    if (!d) {
      invalid("decision", d.status());
      // The latest record of the key is what a compacted topic keeps: the coordinator writes
      // the decision again.
      if (coordinator_ && coord_->has_decision())
        (void)produce(std::string(ctopic::kDecision), coord_->decision().to_json());
      return;
    }
    coord_->on_decision(*d);
    std::lock_guard lock(shared_->mu);
    if (!shared_->decision || d->seq >= shared_->decision->seq) {
      shared_->decision = *d;
      decision_pending_ = true;
    }
  } else if (after(ctopic::kReport)) {
    count("report");
    const std::string replica(rest);
    if (tombstone) {
      coord_->forget(replica);
      std::lock_guard lock(shared_->mu);
      shared_->reports.erase(replica);
      return;
    }
    auto r = ctopic::Report::from_json(value);
    if (!r) return invalid("report", r.status());
    if (r->replica != replica)
      return invalid("report", Status::invalid("its key names another replica"));
    coord_->on_report(*r);
    std::lock_guard lock(shared_->mu);
    shared_->reports[replica] = std::move(*r);
  } else if (after(ctopic::kAction)) {
    count("action");
    const std::string id(rest);
    if (tombstone) {
      shared_->pending_actions.erase(id);
      return;
    }
    auto a = ctopic::Action::from_json(value);
    if (!a) return invalid("action", a.status());
    if (a->id != id) return invalid("action", Status::invalid("its key names another id"));
    shared_->pending_actions[id] = std::move(*a);
  } else if (after(ctopic::kResult)) {
    count("result");
    if (tombstone) return;
    auto r = ctopic::ActionResult::from_json(value);
    if (!r) return invalid("result", r.status());
    std::lock_guard lock(shared_->mu);
    shared_->results[r->id] = std::move(*r);
    shared_->cv.notify_all();
  } else {
    count("unknown");
    invalid("unknown", Status::invalid("no record of this version has such a key"));
  }
}

bool ContentSync::read(int max_ms) {
  bool any = false;
  for (int n = 0; n < 1000; ++n) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(reader_, n == 0 ? max_ms : 0);
    if (!m) break;
    any = true;
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        spdlog::warn("content topic: {}", rd_kafka_message_errstr(m));
    } else {
      handle(m);
      next_offset_ = m->offset + 1;
    }
    rd_kafka_message_destroy(m);
  }
  int64_t lo = 0, hi = 0;
  if (!rd_kafka_get_watermark_offsets(reader_, options_.topic.c_str(), 0, &lo, &hi)) {
    const int64_t lag = std::max<int64_t>(0, hi - std::max(next_offset_, lo));
    lag_->set(static_cast<double>(lag));
    std::lock_guard lock(shared_->mu);
    shared_->lag = lag;
  }
  return any;
}

Status ContentSync::catch_up() {
  const TimeMs deadline = clock_.now_ms() + options_.catch_up_timeout_ms;
  Expected<int64_t> end = Status::unavailable("not asked");
  while (!(end = end_offset(5000))) {
    if (clock_.now_ms() >= deadline)
      return Status::unavailable("cannot read the content topic " + options_.topic + ": " +
                                 end.status().message());
  }
  while (next_offset_ < *end) {
    if (!read(200)) {
      // Compaction may have removed the last offsets: the end is where the reader stands.
      int64_t lo = 0, hi = 0;
      if (!rd_kafka_get_watermark_offsets(reader_, options_.topic.c_str(), 0, &lo, &hi) &&
          lo >= *end)
        break;
    }
    if (clock_.now_ms() >= deadline) {
      return Status::unavailable("the content topic " + options_.topic +
                                 " was not read to its end (" + std::to_string(next_offset_) +
                                 " of " + std::to_string(*end) + ") in " +
                                 std::to_string(options_.catch_up_timeout_ms / 1000) + " s");
    }
  }
  if (auto s = apply_decision(); !s) spdlog::error("content: {}", s.to_string());
  // The configured rules, if the deployment has never seen them (a first start, or rules
  // changed in the configuration): published, for the coordinator to roll out.
  const std::string seed = rollout_.configured_hash();
  bool published = false;
  {
    std::lock_guard lock(shared_->mu);
    published = shared_->published.count(seed) > 0;
  }
  if (ctopic::is_hash(seed) && !published) {
    const uint64_t v = rollout_.version_of(seed);
    if (v && rollout_.bundle_status(v) != "refused") {
      if (auto tar = rollout_.bundle_archive(v)) {
        if (auto b = match::Bundle::from_archive(*tar)) {
          if (auto s = publish(*b, "config", rollout_.lenient(v)); !s)
            spdlog::error("content: the configured rules not published: {}", s.to_string());
        }
      }
    }
  }
  std::lock_guard lock(shared_->mu);
  shared_->caught_up = true;
  spdlog::info("content: topic {} read to its end ({} records){}", options_.topic, next_offset_,
               shared_->decision ? ", following decision " + std::to_string(shared_->decision->seq)
                                 : ", no decision yet");
  return Status::ok();
}

Status ContentSync::apply_decision() {
  std::optional<ctopic::Decision> d;
  {
    std::lock_guard lock(shared_->mu);
    d = shared_->decision;
  }
  decision_pending_ = false;
  if (!d) return Status::ok();
  Rollout::Followed f;
  f.seq = d->seq;
  f.policy = d->policy;
  f.phase = std::string(content::phase_name(d->phase));
  f.active = rollout_.version_of(d->active);
  f.target = d->target.empty() ? 0 : rollout_.version_of(d->target);
  f.lkg = d->lkg.empty() ? 0 : rollout_.version_of(d->lkg);
  const std::string mine = options_.self + "/";
  for (const auto& name : d->target_shards) {
    if (!name.starts_with(mine)) continue;
    int i = 0;
    const char* p = name.data() + mine.size();
    if (std::from_chars(p, name.data() + name.size(), i).ec == std::errc())
      f.target_shards.push_back(i);
  }
  auto versions = [&](const std::vector<std::string>& hashes, std::vector<uint64_t>& out) {
    for (const auto& h : hashes)
      if (uint64_t v = rollout_.version_of(h)) out.push_back(v);
  };
  versions(d->quarantined, f.quarantined);
  versions(d->rolled_back, f.rolled_back);
  versions(d->refused, f.refused);
  f.stage = d->stage;
  f.stages = d->stages;
  f.stage_started = d->stage_started;
  f.action = d->action;
  f.actor = d->actor;
  f.reason = d->reason;
  f.coordinator = d->coordinator;
  f.last_breach = d->last_breach;
  std::string why;
  if (f.active == 0) {
    why = "the deployment's active " + ctopic::short_name(d->active) + " is not stored here (yet)";
  } else if (d->phase != content::Phase::kIdle && f.target == 0) {
    why = "the rolled-out " + ctopic::short_name(d->target) + " is not stored here (yet)";
  }
  Status s = f.active ? rollout_.follow(f) : Status::not_found(why);
  if (s && why.empty()) {
    applied_seq_ = d->seq;
    seq_->set(static_cast<double>(d->seq));
  } else {
    decision_pending_ = true;  // again at the next tick (the bundle may arrive)
    if (why.empty()) why = s.to_string();
  }
  std::lock_guard lock(shared_->mu);
  shared_->apply_error = why;
  return why.empty() ? Status::ok() : Status::unavailable(why);
}

void ContentSync::report() {
  ctopic::Report r;
  r.replica = options_.self;
  r.time = clock_.now_ms();
  r.boot = boot_;
  r.applied = applied_seq_;
  if (pipeline_) {
    for (int i = 0; i < pipeline_->workers(); ++i) {
      const Labels l{{"shard", std::to_string(i)}};
      ctopic::ShardReport s;
      s.shard = static_cast<uint32_t>(i);
      if (auto b = pipeline_->bundle(i)) s.bundle = b->hash;
      s.events = metrics_.counter_value("vigil_events_consumed_total", l);
      s.alerts = metrics_.counter_value("vigil_alerts_total", l);
      s.errors = metrics_.counter_value("vigil_match_errors_total", l);
      Histogram& h = metrics_.histogram("vigil_batch_duration_seconds",
                                        "Time to match and persist a batch", {}, l);
      r.bounds = h.bounds();
      s.batches = h.count();
      for (size_t b = 0; b <= h.bounds().size(); ++b) s.latency.push_back(h.cumulative(b));
      r.shards.push_back(std::move(s));
    }
  }
  const Rollout::BootCrash crash = rollout_.boot_crash();
  if (crash.version) {
    r.crashed = rollout_.hash_of(crash.version);
    r.crash_kind = crash.quarantined ? "quarantined" : "rolled_back";
    r.crash_reason = crash.reason;
  }
  (void)produce(std::string(ctopic::kReport) + options_.self, r.to_json());
  last_report_ = r.time;
}

void ContentSync::coordinate() {
  const TimeMs now = clock_.now_ms();
  auto active = rollout_.active();
  const std::string local = active ? active->hash : std::string();
  if (!coord_->has_decision() && !coord_->knows_bundle(local)) {
    // The deployment's first bundle is this replica's: the others must be able to read it.
    static constexpr int64_t kRetryMs = 10000;
    if (now - first_publish_ >= kRetryMs) {
      first_publish_ = now;
      if (auto tar = rollout_.bundle_archive(active->version)) {
        if (auto b = match::Bundle::from_archive(*tar))
          (void)publish(*b, "vigil", rollout_.lenient(active->version));
      }
    }
    return;
  }
  if (auto d = coord_->tick(now, local))
    (void)produce(std::string(ctopic::kDecision), d->to_json());
  for (auto it = shared_->pending_actions.begin(); it != shared_->pending_actions.end(); ++it) {
    const ctopic::Action& a = it->second;
    if (answered_.count(a.id)) continue;
    answered_.insert(a.id);
    ctopic::ActionResult res;
    res.id = a.id;
    res.coordinator = options_.self;
    static constexpr int64_t kExpiryMs = 5 * 60 * 1000;
    if (now - std::min(a.time, now) > kExpiryMs) {
      res.error = "the action expired before a coordinator took it";
    } else if (auto d = coord_->act(a, now)) {
      (void)produce(std::string(ctopic::kDecision), d->to_json());
      res.ok = true;
    } else {
      res.error = d.status().message();
    }
    (void)produce(std::string(ctopic::kResult) + a.id, res.to_json());
    (void)produce(std::string(ctopic::kAction) + a.id, {}, true);
  }
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

std::string ContentSync::state_json() const {
  std::string local = rollout_.status().to_json();
  std::lock_guard lock(shared_->mu);
  const TimeMs now = clock_.now_ms();
  auto bundle = [&](Writer& w, const char* k, const std::string& hash) {
    w.Key(k);
    if (hash.empty()) {
      w.Null();
      return;
    }
    w.StartObject();
    kv(w, "hash", hash);
    kv(w, "version", rollout_.version_of(hash));
    w.EndObject();
  };
  auto strs = [](Writer& w, const char* k, const std::vector<std::string>& v) {
    w.Key(k);
    w.StartArray();
    for (const auto& s : v) w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
    w.EndArray();
  };
  const std::string cluster = write_json([&](Writer& w) {
    w.StartObject();
    kv(w, "replica", options_.self);
    kv(w, "topic", options_.topic);
    kv(w, "coordinator",
       coordinator_ ? options_.self : (shared_->decision ? shared_->decision->coordinator : ""));
    w.Key("this_replica_coordinates");
    w.Bool(coordinator_);
    w.Key("caught_up");
    w.Bool(shared_->caught_up);
    kv(w, "lag", static_cast<uint64_t>(shared_->lag));
    kv(w, "applied", applied_seq_.load());
    kv(w, "not_followed", shared_->apply_error);
    w.Key("decision");
    if (!shared_->decision) {
      w.Null();
    } else {
      const ctopic::Decision& d = *shared_->decision;
      w.StartObject();
      kv(w, "seq", d.seq);
      kv(w, "coordinator", d.coordinator);
      kv(w, "time", format_rfc3339(d.time));
      kv(w, "policy", rollout_policy_name(d.policy));
      kv(w, "state", content::phase_name(d.phase));
      bundle(w, "active", d.active);
      bundle(w, "last_known_good", d.lkg);
      bundle(w, "target", d.target);
      kv(w, "stage", d.stage);
      kv(w, "stages", d.stages);
      strs(w, "target_shards", d.target_shards);
      strs(w, "quarantined", d.quarantined);
      strs(w, "rolled_back", d.rolled_back);
      strs(w, "refused", d.refused);
      kv(w, "last_action", d.action);
      kv(w, "actor", d.actor);
      kv(w, "reason", d.reason);
      kv(w, "last_breach", d.last_breach);
      w.EndObject();
    }
    w.Key("replicas");
    w.StartArray();
    for (const auto& [name, r] : shared_->reports) {
      w.StartObject();
      kv(w, "name", name);
      w.Key("live");
      w.Bool(now - std::min(r.time, now) <= options_.report_timeout_ms);
      kv(w, "reported", format_rfc3339(r.time));
      kv(w, "applied", r.applied);
      kv(w, "crashed", r.crashed);
      w.Key("shards");
      w.StartArray();
      for (const auto& s : r.shards) {
        w.StartObject();
        kv(w, "shard", uint64_t{s.shard});
        bundle(w, "bundle", s.bundle);
        kv(w, "events", s.events);
        kv(w, "alerts", s.alerts);
        w.EndObject();
      }
      w.EndArray();
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  });
  if (local.empty() || local.back() != '}') return local;
  local.pop_back();
  return local + ",\"cluster\":" + cluster + "}";
}

}  // namespace vigil::ingest
