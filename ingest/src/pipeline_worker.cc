// Pipeline: the shard workers' loop and bundle switches.

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "pipeline_internal.h"
#include "vigil/core/fault.h"
#include "vigil/core/thread_name.h"

namespace vigil::ingest {

void Pipeline::run_worker(Shard& shard) {
  std::shared_ptr<const match::CompiledBundle> swap;
  std::vector<rd_kafka_message_t*> batch;
  std::vector<MessageView> views;
  std::vector<std::pair<PartitionKey, int64_t>> next;
  std::vector<Shard::Fresh> fresh;
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
    for (const auto& [key, replay_until, rebuild] : fresh) {
      const auto& [topic, partition] = key;
      // Before any message of the partition: its correlation windows as the store has them.
      for (int attempt = 0;; ++attempt) {
        auto s = shard.worker->reload_partition(topic, partition, replay_until, rebuild);
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
    std::vector<uint64_t> delivered_to;
    for (int attempt = 0;; ++attempt) {
      auto r = shard.worker->process(views);
      if (r) {
        persisted = true;
        queued = r->dead_letters + (options_.publish_alerts ? r->alerts : 0) + r->correlation_hits;
        delivered_to = std::move(r->delivered_to);
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
      if (!delivered_to.empty() && on_deliveries_) on_deliveries_(delivered_to);
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
    MutexLock lock(switches_mu_);
    switches_.push_back({shard.index, std::string(v.topic), v.partition, v.offset, version});
    if (switches_.size() > 10000) switches_.pop_front();
  }
}

std::vector<Pipeline::BundleSwitch> Pipeline::bundle_switches() const {
  MutexLock lock(switches_mu_);
  return {switches_.begin(), switches_.end()};
}

}  // namespace vigil::ingest
