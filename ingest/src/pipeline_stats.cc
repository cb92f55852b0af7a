// Pipeline: the statistics document (GET /api/v1/stats).

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "pipeline_internal.h"

namespace vigil::ingest {

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
    MutexLock lock(snapshot_mu_);
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
