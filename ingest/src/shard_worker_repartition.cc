// ShardWorker: correlation across partitions (cluster mode; DESIGN.md "Scale-out").
//
// A correlation not grouped by the events' partition key sees a group spread over every
// partition (and replica). The worker that consumes an event queues each match of a base
// rule feeding such a correlation for the repartition topic, keyed by its group, in the
// event's own batch (the outbox: exactly once into the store, at least once into Kafka).
// The worker that owns the group's partition of the repartition topic feeds the match to
// the correlation; its windows are kept per partition of that topic and written with that
// topic's offsets. A match the publisher repeated after a crash has the same id: the
// partition's "seen" entries (state cf, "<scope>\x01<time><id>", dropped once older than
// the longest timespan plus the allowed lateness) make it count once.

#include <spdlog/spdlog.h>

#include <algorithm>

#include "vigil/core/fault.h"
#include "vigil/ingest/correlation_hit.h"
#include "vigil/ingest/shard_worker.h"

namespace vigil::ingest {
namespace {

// Outcomes of a repartitioned match, in the metric's order.
constexpr std::string_view kHitOutcomes[] = {"observed", "replayed", "duplicate",
                                             "late",     "invalid",  "unknown_correlation"};
enum HitOutcome : size_t { kObserved, kReplayed, kDuplicate, kLate, kInvalid, kUnknown };

void put_time(std::string& out, TimeMs t) {
  // Big-endian with the sign flipped: keys sort in time order.
  const uint64_t v = static_cast<uint64_t>(t) ^ (uint64_t{1} << 63);
  for (int i = 7; i >= 0; --i) out += static_cast<char>((v >> (i * 8)) & 0xff);
}

TimeMs get_time(std::string_view in) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8 && i < in.size(); ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return static_cast<TimeMs>(v ^ (uint64_t{1} << 63));
}

}  // namespace

void ShardWorker::set_remote_correlations() {
  if (!options_.repartition_topic.empty() && hits_by_outcome_.empty()) {
    const std::string shard = std::to_string(options_.shard);
    hits_queued_ = &metrics_.counter(
        "vigil_correlation_hits_queued_total",
        "Base-rule matches queued for the repartition topic (correlation across partitions)",
        {{"shard", shard}});
    for (std::string_view o : kHitOutcomes) {
      hits_by_outcome_.push_back(
          &metrics_.counter("vigil_correlation_hits_total",
                            "Repartitioned base-rule matches read back, by what became of them",
                            {{"outcome", std::string(o)}, {"shard", shard}}));
    }
  }
  if (!correlator_) return;
  const auto& cs = rules_->correlations();
  std::vector<bool> remote(cs.size(), false);
  TimeMs longest = 0;
  for (size_t i = 0; i < cs.size(); ++i) {
    if (options_.repartition_topic.empty()) break;
    const auto& by = cs[i].spec.group_by;
    const bool keyed = !options_.partition_key_fields.empty() &&
                       std::all_of(options_.partition_key_fields.begin(),
                                   options_.partition_key_fields.end(), [&](const std::string& f) {
                                     return std::find(by.begin(), by.end(), f) != by.end();
                                   });
    remote[i] = !keyed;
    if (remote[i]) longest = std::max(longest, cs[i].spec.timespan_ms);
  }
  repartition_horizon_ms_ = longest + options_.repartition_lateness_ms;
  correlator_->set_remote(std::move(remote));
}

void ShardWorker::queue_correlation_hits(const MessageView& m, uint32_t rule, TimeMs time) {
  const match::RuleSet& rs = *rules_;
  for (uint32_t index : rs.correlations_of(rule)) {
    if (!correlator_->remote(index)) continue;
    const match::CompiledCorrelation& c = rs.correlations()[index];
    for (uint32_t b = 0; b < c.bases.size(); ++b) {
      if (c.bases[b] != rule) continue;
      CorrelationHitRecord hit;
      if (c.spec.reads_values() && !match::Correlator::counted_value(c, b, event_, hit.value))
        continue;  // no value to count
      match::Correlator::append_group_values(c, b, event_, hit.group);
      set_stream(m.topic);
      std::string material = c.info.id;
      material += '\x1f';
      material += rs.rules()[rule].id;
      material += '\x1f';
      material += std::to_string(b);
      const store::AlertId id = store::AlertId::derive(stream_, m.partition, m.offset, material);
      hit.id = id.hex();
      hit.correlation = c.info.id;
      hit.rule = rs.rules()[rule].id;
      hit.base = b;
      hit.time = time;
      hit.ref = store::AlertId::derive(stream_, m.partition, m.offset, rs.rules()[rule].id).hex();
      queue_hit_record(hit, id, &m);
    }
  }
}

void ShardWorker::queue_chained_hits(const match::CorrelationHit& hit, const MessageView* m) {
  const match::RuleSet& rs = *rules_;
  const match::CompiledCorrelation& inner = rs.correlations()[hit.correlation];
  const std::string_view scope = hit.scope(), values = hit.values();
  for (const auto& [outer, base] : rs.chained_of(hit.correlation)) {
    if (!correlator_->remote(outer)) continue;  // fed by the correlator itself
    const match::CompiledCorrelation& c = rs.correlations()[outer];
    CorrelationHitRecord r;
    match::Correlator::chained_values(c, base, values, r.group);
    r.correlation = c.info.id;
    r.rule = inner.info.id;
    r.base = base;
    r.time = hit.last;
    r.ref = correlation_alert_id(inner, hit).hex();
    std::string material = c.info.id;
    material += '\x1f';
    material += r.ref;
    material += '\x1f';
    material += std::to_string(base);
    const store::AlertId id = store::AlertId::derive(scope, 0, hit.first, material);
    r.id = id.hex();
    queue_hit_record(r, id, m);
  }
}

void ShardWorker::queue_hit_record(const CorrelationHitRecord& hit, const store::AlertId& id,
                                   const MessageView* m) {
  store::OutboxRecord& r = outbox_.emplace_back();
  r.kind = store::OutboxRecord::Kind::kCorrelationHit;
  r.time = hit.time;
  r.id = id;
  r.message_key = correlation_hit_key(hit.correlation, hit.group);
  r.value = encode_correlation_hit(hit);
  r.headers = {{"vigil.format", std::string(kCorrelationHitFormat)}};
  if (m) {
    r.headers.emplace_back("vigil.source.topic", std::string(m->topic));
    r.headers.emplace_back("vigil.source.partition", std::to_string(m->partition));
    r.headers.emplace_back("vigil.source.offset", std::to_string(m->offset));
  }
  ++hits_queued_pending_;
}

void ShardWorker::consume_correlation_hit(const MessageView& m, TimeMs& batch_time) {
  auto hit = decode_correlation_hit(m.payload);
  if (!hit) {
    const uint64_t seen = hits_by_outcome_[kInvalid]->value() + ++hits_pending_[kInvalid];
    if (seen <= 10 || seen % 10000 == 0)
      spdlog::warn("correlation hit skipped: {} topic={} partition={} offset={} count={}",
                   hit.status().message(), m.topic, m.partition, m.offset, seen);
    return;
  }
  const match::RuleSet& rs = *rules_;
  const auto index = correlator_ ? correlator_->index_of(hit->correlation) : std::nullopt;
  const match::CompiledCorrelation* c = index ? &rs.correlations()[*index] : nullptr;
  auto base_named = [&] {  // a rule, or the correlation of a chain
    const int32_t inner = c->inner[hit->base];
    return (inner >= 0 ? rs.correlations()[static_cast<size_t>(inner)].info.id
                       : rs.rules()[c->bases[hit->base]].id) == hit->rule;
  };
  if (!c || hit->base >= c->bases.size() || !base_named()) {
    // Raised under a bundle this one does not share the correlation with (a rollout between
    // the two replicas' shards): counted, as an event the bundle has no rule for.
    ++hits_pending_[kUnknown];
    return;
  }
  set_scope(m);
  RepartitionScope& sc = repartition_scopes_[scope_];
  if (sc.expired == INT64_MIN && sc.replay_until >= 0)
    sc.expired = hit->time - options_.repartition_lateness_ms;  // the start of a rebuild
  if (hit->time < sc.expired) {
    ++hits_pending_[kLate];
    return;
  }
  hit_key_.assign(scope_);
  hit_key_ += '\x01';
  put_time(hit_key_, hit->time);
  hit_key_ += hit->id;
  if (batch_seen_.count(hit_key_)) {
    ++hits_pending_[kDuplicate];
    return;
  }
  auto stored = store_.has_state(hit_key_);
  if (stored && *stored) {
    ++hits_pending_[kDuplicate];
    return;
  }
  // A failed read: taken as new (the batch's write will fail too, and it is retried whole).
  batch_seen_.insert(hit_key_);
  store::StateRecord& seen = seen_state_.emplace_back();
  seen.key = hit_key_;
  sc.newest = std::max(sc.newest, hit->time);
  batch_time = std::max(batch_time, hit->time);
  const bool replay = m.offset < sc.replay_until;
  sc.replaying = m.offset + 1 < sc.replay_until;
  ++hits_pending_[replay ? kReplayed : kObserved];
  fired_.clear();
  correlator_->observe_hit(*index, hit->base, hit->group, hit->value, hit->time, hit->ref, fired_,
                           scope_);
  if (replay) return;  // rebuilding what the previous owner had: it raised these already
  for (const auto& f : fired_) build_correlation_alert(f, &m, false);
}

void ShardWorker::collect_seen_hits() {
  for (auto& [scope, sc] : repartition_scopes_) {
    sc.expire_pending = INT64_MIN;
    if (sc.newest == INT64_MIN) continue;
    // Event times come from the events: one dated in the future must not make every later
    // match "late". The bound never passes the clock's horizon.
    const TimeMs bound = std::min(sc.newest, clock_.now_ms()) - repartition_horizon_ms_;
    // Drop in steps (one range tombstone a minute at most), not on every batch.
    if (bound <= sc.expired + std::max<TimeMs>(repartition_horizon_ms_ / 8, 60'000)) continue;
    store::StateRecord& drop = seen_state_.emplace_back();
    drop.key = scope + '\x01';
    drop.erase_to = scope + '\x01';
    put_time(drop.erase_to, bound);
    store::StateRecord& mark = seen_state_.emplace_back();
    mark.key = scope + '\x02';
    put_time(mark.value, bound);
    sc.expire_pending = bound;
  }
  state_.insert(state_.end(), std::make_move_iterator(seen_state_.begin()),
                std::make_move_iterator(seen_state_.end()));
}

Status ShardWorker::reload_partition(std::string_view topic, int32_t partition,
                                     int64_t replay_until, bool rebuild) {
  if (std::find_if(held_partitions_.begin(), held_partitions_.end(), [&](const auto& p) {
        return p.second == partition && p.first == topic;
      }) == held_partitions_.end()) {
    held_partitions_.emplace_back(std::string(topic), partition);
  }
  MessageView m;
  m.topic = topic;
  m.partition = partition;
  set_scope(m);
  if (is_repartition(topic)) {
    RepartitionScope sc;
    if (rebuild) {
      // Another replica went further with this partition: this store's windows of it are
      // stale. They are rebuilt from the topic (see Pipeline::assign).
      store::StateRecord drop;
      drop.key = scope_ + '\0';
      drop.erase_to = scope_ + '\x03';
      if (auto s = store_.put_batch({}, {}, {}, {}, {drop}); !s) return s;
      sc.replay_until = replay_until;
    } else {
      auto mark = store_.load_state(scope_ + '\x02');
      if (!mark) return mark.status();
      for (const auto& [key, value] : *mark)
        if (key.size() == scope_.size() + 1 && value.size() == 8) sc.expired = get_time(value);
      sc.newest = sc.expired == INT64_MIN ? INT64_MIN : sc.expired + repartition_horizon_ms_;
    }
    repartition_scopes_[scope_] = sc;
  }
  if (!correlator_) return Status::ok();
  correlator_->forget_scope(scope_);
  std::string prefix = scope_;
  prefix += '\0';
  auto entries = store_.load_state(prefix);
  if (!entries) return entries.status();
  size_t bad = 0;
  for (const auto& [key, value] : *entries) {
    if (!correlator_->restore(key.substr(prefix.size()), value)) ++bad;
  }
  if (bad)
    spdlog::warn("partition {}: {} correlation window(s) not restored (rule gone or entry damaged)",
                 scope_, bad);
  return Status::ok();
}

}  // namespace vigil::ingest
