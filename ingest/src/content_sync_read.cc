// ContentSync, reading the content topic: each record by its key, published bundles unpacked,
// checked against their hash and validated here, catching up before the pipeline consumes.

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>
#include <zstd.h>

#include <algorithm>
#include <charconv>

#include "content_coordinator.h"
#include "content_sync_internal.h"
#include "vigil/ingest/content_sync.h"

namespace vigil::ingest {
namespace {

std::string_view payload(const rd_kafka_message_t* m) {
  return m->payload ? std::string_view(static_cast<const char*>(m->payload), m->len)
                    : std::string_view();
}

}  // namespace

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

}  // namespace vigil::ingest
