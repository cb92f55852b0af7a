// Pipeline: partitions assigned and revoked by the consumer group.

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "pipeline_internal.h"
#include "vigil/core/fault.h"

namespace vigil::ingest {

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
    Shard::Fresh fresh{{p.topic, p.partition}};
    if (!stored) {
      set_error(stored.status());
      spdlog::error("cannot read the stored offset of {}/{}: {}", p.topic, p.partition,
                    stored.status().to_string());
    } else if (stored->has_value()) {
      start = std::max(start, **stored);
    }
    if (stored && !options_.repartition_topic.empty() && options_.repartition_topic == p.topic &&
        start >= 0 && (!stored->has_value() || **stored < start)) {
      // Another replica held this partition of the repartition topic after this store last
      // did: its windows are rebuilt from the matches of the replay horizon, read again
      // without raising alerts up to where that replica stopped.
      fresh.rebuild = true;
      fresh.replay_until = start;
      const int64_t from = replay_start(p.topic, p.partition, start);
      spdlog::info("partition {}/{}: taken over at offset {}, windows rebuilt from offset {}",
                   p.topic, p.partition, start, from);
      start = from;
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
      s.fresh.push_back(std::move(fresh));
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

int64_t Pipeline::replay_start(const char* topic, int32_t partition, int64_t until) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic, partition)->offset =
      clock_->now_ms() - options_.repartition_replay_ms;
  int64_t from = -1;
  if (auto e = rd_kafka_offsets_for_times(rk_, list, 10000); e) {
    spdlog::warn("partition {}/{}: cannot look up where its windows' matches start: {}", topic,
                 partition, rd_kafka_err2str(e));
  } else if (list->elems[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    from = list->elems[0].offset;
  }
  rd_kafka_topic_partition_list_destroy(list);
  if (from < 0) {
    // No answer by time (a broker without timestamp look-ups; nothing that recent): from the
    // partition's first retained message. The topic's retention bounds that (see README).
    int64_t low = -1, high = -1;
    if (rd_kafka_query_watermark_offsets(rk_, topic, partition, &low, &high, 10000) ==
        RD_KAFKA_RESP_ERR_NO_ERROR)
      from = low;
  }
  return from < 0 ? until : std::min(from, until);
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

}  // namespace vigil::ingest
