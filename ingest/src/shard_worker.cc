#include "vigil/ingest/shard_worker.h"

#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "memo_metrics.h"
#include "vigil/core/fault.h"
#include "vigil/core/json_check.h"

namespace vigil::ingest {
namespace {

// A matched value longer than this is cut (the whole value is in the event).
constexpr size_t kMatchedValueLimit = 1024;

// The longest prefix of `s` of at most `limit` bytes that does not split a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view s, size_t limit) {
  if (s.size() <= limit) return s;
  size_t n = limit;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

}  // namespace

Expected<std::unique_ptr<ShardWorker>> ShardWorker::create(
    std::shared_ptr<const match::RuleSet> rules, store::Store& store, MetricsRegistry& metrics,
    const Clock& clock, const ShardOptions& options) {
  std::unique_ptr<ShardWorker> w(new ShardWorker(rules, store, metrics, clock, options));
  auto m = match::Matcher::create(std::move(rules), {options.memo_bytes});
  if (!m) return m.status();
  w->matcher_ = std::move(*m);
  w->memo_metrics_ = std::make_unique<MemoMetrics>(metrics, options.shard);
  if (!w->rules_->correlations().empty())
    w->correlator_ = std::make_unique<match::Correlator>(w->rules_);
  w->set_remote_correlations();
  auto b = std::make_shared<match::CompiledBundle>();
  b->rules = w->rules_;
  b->stats = options.rule_stats;
  w->bundle_ = std::move(b);
  w->match_errors_ = &metrics.counter("vigil_match_errors_total",
                                      "Events whose matching failed (counted, kept, not matched)",
                                      {{"shard", std::to_string(options.shard)}});
  w->truncated_alerts_ = &metrics.counter(
      "vigil_alert_records_truncated_total",
      "Alerts published without their event: the record would pass max_alert_record_bytes",
      {{"shard", std::to_string(options.shard)}});
  w->correlation_alerts_ =
      &metrics.counter("vigil_correlation_alerts_total", "Alerts of correlation rules",
                       {{"shard", std::to_string(options.shard)}});
  w->non_numeric_values_ = &metrics.counter(
      "vigil_correlation_values_skipped_total",
      "Matches a metric correlation (value_sum, value_avg, ...) left out: no finite number in "
      "its field",
      {{"shard", std::to_string(options.shard)}});
  return w;
}

ShardWorker::~ShardWorker() = default;

void ShardWorker::set_scope(const MessageView& m) {
  set_stream(m.topic);
  scope_.assign(stream_);
  scope_ += '/';
  scope_ += std::to_string(m.partition);
}

Status ShardWorker::set_bundle(std::shared_ptr<const match::CompiledBundle> bundle) {
  auto m = match::Matcher::create(bundle->rules, {options_.memo_bytes});
  if (!m) return m.status();
  std::unique_ptr<match::Correlator> correlator;
  if (!bundle->rules->correlations().empty()) {
    correlator = std::make_unique<match::Correlator>(bundle->rules);
    // A chain's inner alert is its outer correlation's match by the alert's id.
    correlator->set_chain_ref([rules = bundle->rules](const match::CorrelationHit& hit) {
      return correlation_alert_id(rules->correlations()[hit.correlation], hit).hex();
    });
  }
  memo_metrics_->update(*matcher_);  // the last counts of the matcher replaced
  memo_metrics_->restart();
  std::swap(matcher_, *m);
  std::swap(correlator_, correlator);
  non_numeric_seen_ = 0;
  rules_ = bundle->rules;
  set_remote_correlations();
  bundle_ = std::move(bundle);
  options_.rule_stats = bundle_->stats;
  fail_matching_ = fault_armed("match_error", bundle_->name);
  slow_batches_ = fault_armed("slow_batch", bundle_->name);
  if (fault_armed("crash_after_activate", bundle_->name)) {
    spdlog::critical("fault injection: crash_after_activate for bundle '{}'", bundle_->name);
    std::abort();
  }
  // The windows of the partitions held, as the store has them (every batch persisted its own).
  const auto held = held_partitions_;
  for (const auto& [topic, partition] : held) {
    if (auto s = reload_partition(topic, partition); !s) return s;
  }
  return Status::ok();
}

void ShardWorker::collect_state() {
  state_.clear();
  state_keys_ = correlator_->take_dirty();
  for (const auto& key : state_keys_) {
    // Correlator key "<id>\0<scope>\x1e<values>"; store key "<scope>\0<id>\0<scope>\x1e<values>".
    const size_t zero = key.find('\0');
    const size_t sep = key.find('\x1e', zero);
    store::StateRecord& r = state_.emplace_back();
    r.key = key.substr(zero + 1, sep == std::string::npos ? std::string::npos : sep - zero - 1);
    r.key += '\0';
    r.key += key;
    if (const auto* w = correlator_->window(key)) {
      r.value = match::Correlator::encode(*w);
    } else {
      r.erase = true;
    }
  }
}

void ShardWorker::restore_state_after_failure() {
  // The batch will be processed again: its matches must not be counted twice.
  for (size_t i = 0; i < state_keys_.size(); ++i) {
    correlator_->erase(state_keys_[i]);
    const std::string& store_key = state_[i].key;
    auto entries = store_.load_state(store_key);
    if (!entries) continue;
    for (const auto& [key, value] : *entries) {
      if (key == store_key) (void)correlator_->restore(state_keys_[i], value);
    }
  }
}

ShardWorker::ShardWorker(std::shared_ptr<const match::RuleSet> rules, store::Store& store,
                         MetricsRegistry& metrics, const Clock& clock, const ShardOptions& options)
    : rules_(std::move(rules)),
      store_(store),
      metrics_(metrics),
      clock_(clock),
      parser_(options.max_event_bytes),
      options_(options),
      events_total_(metrics.counter("vigil_events_consumed_total", "Events consumed from Kafka",
                                    {{"shard", std::to_string(options.shard)}})),
      bytes_total_(metrics.counter("vigil_events_consumed_bytes_total",
                                   "Bytes of events consumed from Kafka",
                                   {{"shard", std::to_string(options.shard)}})),
      alerts_total_(metrics.counter("vigil_alerts_total", "Alerts written to the store",
                                    {{"shard", std::to_string(options.shard)}})),
      batch_events_(metrics.histogram("vigil_batch_events", "Events per persisted batch",
                                      {1, 10, 100, 500, 1000, 2000, 5000, 10000},
                                      {{"shard", std::to_string(options.shard)}})),
      batch_seconds_(
          metrics.histogram("vigil_batch_duration_seconds", "Time to match and persist a batch",
                            {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1},
                            {{"shard", std::to_string(options.shard)}})) {
  const std::string shard = std::to_string(options.shard);
  for (int l = 0; l <= static_cast<int>(store::AlertLevel::kCritical); ++l) {
    const std::string_view name = store::alert_level_name(static_cast<store::AlertLevel>(l));
    alerts_by_level_.push_back(&metrics.counter("vigil_alerts_by_level_total",
                                                "Alerts written to the store, by rule level",
                                                {{"level", std::string(name)}, {"shard", shard}}));
  }
  for (ParseError e : kParseErrors) {
    const std::string reason(parse_error_name(e));
    invalid_by_reason_.push_back(&metrics.counter("vigil_events_invalid_total",
                                                  "Events that could not be parsed, by reason",
                                                  {{"reason", reason}, {"shard", shard}}));
    dead_letters_by_reason_.push_back(&metrics.counter(
        "vigil_dead_letters_total", "Events queued for the dead-letter topic, by reason",
        {{"reason", reason}, {"shard", shard}}));
  }
  dead_letters_by_reason_.push_back(&metrics.counter(
      "vigil_dead_letters_total", "Events queued for the dead-letter topic, by reason",
      {{"reason", std::string(kNoLogsource)}, {"shard", shard}}));
}

void ShardWorker::set_stream(std::string_view topic) {
  // Reuses stream_'s buffer: no allocation per alert in steady state.
  stream_.assign(cluster_id_);
  stream_ += '/';
  stream_ += topic;
}

std::string ShardWorker::stream(std::string_view topic) const {
  std::string s = cluster_id_;
  s += '/';
  s += topic;
  return s;
}

Expected<BatchResult> ShardWorker::process(std::span<const MessageView> batch) {
  const auto t0 = std::chrono::steady_clock::now();
  BatchResult result;
  alerts_.clear();
  correlation_pending_ = 0;
  hits_queued_pending_ = 0;
  hits_pending_.assign(hits_by_outcome_.size(), 0);
  batch_seen_.clear();
  seen_state_.clear();
  truncated_alerts_pending_ = 0;
  match_errors_pending_ = 0;
  matched_pending_.clear();
  fired_pending_.clear();
  failed_pending_.clear();
  offsets_.clear();
  outbox_.clear();
  deliveries_.clear();
  events_.clear();
  batch_streams_.clear();
  // Counted once the batch is persisted: a batch retried after a store error counts once.
  invalid_pending_.assign(invalid_by_reason_.size(), 0);
  dead_letters_pending_.assign(dead_letters_by_reason_.size(), 0);
  const match::RuleSet& rs = *rules_;
  uint64_t bytes = 0;
  TimeMs batch_time = INT64_MIN;
  for (const MessageView& m : batch) {
    ++result.events;
    bytes += m.payload.size();

    // The partition's next offset is recorded whether or not the event is valid: a bad
    // event is counted and dead-lettered, never re-read forever.
    auto it = std::find_if(offsets_.begin(), offsets_.end(), [&](const store::PartitionOffset& o) {
      return o.partition == m.partition &&
             o.stream.size() == cluster_id_.size() + 1 + m.topic.size() &&
             std::string_view(o.stream).substr(cluster_id_.size() + 1) == m.topic;
    });
    if (it == offsets_.end()) {
      offsets_.push_back({stream(m.topic), m.partition, m.offset + 1});
    } else {
      it->next_offset = std::max(it->next_offset, m.offset + 1);
    }
    if (is_repartition(m.topic)) {
      consume_correlation_hit(m, batch_time);
      continue;
    }

    const ParseError pe = parser_.parse(m.payload, rs.fields(), event_);
    if (pe != ParseError::kNone) {
      ++result.invalid;
      const size_t reason = static_cast<size_t>(pe) - 1;
      ++invalid_pending_[reason];
      const uint64_t seen = invalid_by_reason_[reason]->value() + invalid_pending_[reason];
      if (seen <= 10 || seen % 10000 == 0) {
        spdlog::warn("invalid event reason={} topic={} partition={} offset={} count={}",
                     parse_error_name(pe), m.topic, m.partition, m.offset, seen);
      }
      if (options_.dead_letters) {
        ++dead_letters_pending_[reason];
        dead_letter(m, parse_error_name(pe));
        ++result.dead_letters;
      }
      continue;
    }
    matches_.clear();
    Status ms = fail_matching_ ? Status::internal("fault injection: match_error")
                               : matcher_->match(event_, matches_);
    if (!ms) {
      // A failure of the rules, not of the event: counted (a rollout's error gate watches
      // it), the event kept, the batch goes on.
      if (match_errors_pending_++ == 0) spdlog::error("matching failed: {}", ms.to_string());
      matches_.clear();
    } else if (!matcher_->failed_rules().empty()) {
      // Some rules could not be evaluated on this event (every other rule was): counted per
      // rule (GET /api/v1/rules) and as a matching error.
      const auto& failed = matcher_->failed_rules();
      if (match_errors_pending_++ == 0) {
        spdlog::error(
            "matching failed for {} rule(s) ({}{}) on topic={} partition={} offset={}: {}",
            failed.size(), rs.rules()[failed.front()].id, failed.size() > 1 ? ", ..." : "", m.topic,
            m.partition, m.offset, matcher_->last_failure());
      }
      if (options_.rule_stats)
        failed_pending_.insert(failed_pending_.end(), failed.begin(), failed.end());
    }
    if (options_.dead_letters && options_.dead_letter_unmapped &&
        !matcher_->last_event_had_logsource()) {
      ++dead_letters_pending_.back();
      dead_letter(m, kNoLogsource);
      ++result.dead_letters;
      continue;
    }
    const bool retain = options_.retain_events == EventRetention::kAll ||
                        (options_.retain_events == EventRetention::kMatched && !matches_.empty());
    if (matches_.empty() && !retain) continue;
    const TimeMs time = event_time(m);
    if (retain) events_.push_back({time, batch_stream(m.topic), m.partition, m.offset, m.payload});
    for (uint32_t r : matches_) {
      if (rs.rules()[r].emit) build_alert(m, r, time);
    }
    if (options_.rule_stats)
      matched_pending_.insert(matched_pending_.end(), matches_.begin(), matches_.end());
    if (correlator_) {
      batch_time = std::max(batch_time, time);
      fired_.clear();
      for (uint32_t r : matches_) {
        if (rs.correlations_of(r).empty()) continue;
        set_scope(m);
        set_stream(m.topic);
        const std::string ref =
            store::AlertId::derive(stream_, m.partition, m.offset, rs.rules()[r].id).hex();
        correlator_->observe(r, event_, time, ref, fired_, scope_);
        if (!options_.repartition_topic.empty()) queue_correlation_hits(m, r, time);
      }
      for (const auto& hit : fired_) build_correlation_alert(hit, &m);
    }
  }
  if (correlator_) {
    // Windows judged at their end (lt, lte, eq, neq) and groups that can no longer fire.
    fired_.clear();
    if (batch_time > INT64_MIN) correlator_->advance(batch_time, fired_);
    for (const auto& hit : fired_) {
      if (!repartition_scopes_.empty()) {
        // A window of a repartition partition still being rebuilt: its previous owner judged it.
        auto sc = repartition_scopes_.find(std::string(hit.scope()));
        if (sc != repartition_scopes_.end() && sc->second.replaying) continue;
      }
      build_correlation_alert(hit, nullptr);
    }
    collect_state();
    collect_seen_hits();
  }
  if (slow_batches_) std::this_thread::sleep_for(std::chrono::milliseconds(30));
  if (options_.outputs && !options_.outputs->empty()) {
    const auto& outputs = *options_.outputs;
    result.delivered_to.assign(outputs.size(), 0);
    const TimeMs now = clock_.now_ms();
    for (const store::AlertRecord& a : alerts_)
      for (size_t o = 0; o < outputs.size(); ++o)
        if (outputs[o].wants(a.level, a.tags)) {
          deliveries_.push_back({outputs[o].id, now, a.id, a.json});
          ++result.delivered_to[o];
        }
  }
  if (auto s = store_.put_batch(alerts_, offsets_, outbox_, events_, state_, deliveries_); !s) {
    if (correlator_) restore_state_after_failure();
    return s;
  }
  result.correlation_hits = hits_queued_pending_;
  if (hits_queued_) hits_queued_->inc(hits_queued_pending_);
  for (size_t i = 0; i < hits_pending_.size(); ++i) hits_by_outcome_[i]->inc(hits_pending_[i]);
  for (auto& [scope, sc] : repartition_scopes_) {
    if (sc.expire_pending != INT64_MIN) sc.expired = sc.expire_pending;
  }
  events_total_.inc(result.events);
  bytes_total_.inc(bytes);
  for (size_t i = 0; i < invalid_pending_.size(); ++i)
    invalid_by_reason_[i]->inc(invalid_pending_[i]);
  for (size_t i = 0; i < dead_letters_pending_.size(); ++i)
    dead_letters_by_reason_[i]->inc(dead_letters_pending_[i]);
  result.alerts = alerts_.size();
  correlation_alerts_->inc(correlation_pending_);
  if (correlator_ && correlator_->non_numeric_values() > non_numeric_seen_) {
    non_numeric_values_->inc(correlator_->non_numeric_values() - non_numeric_seen_);
    non_numeric_seen_ = correlator_->non_numeric_values();
  }
  truncated_alerts_->inc(truncated_alerts_pending_);
  match_errors_->inc(match_errors_pending_);
  memo_metrics_->update(*matcher_);
  if (options_.rule_stats) {
    for (uint32_t r : matched_pending_) options_.rule_stats->add_match(r);
    for (uint32_t c : fired_pending_) options_.rule_stats->add_correlation_alert(c);
    for (uint32_t r : failed_pending_) options_.rule_stats->add_error(r);
  }
  alerts_total_.inc(result.alerts);
  for (const store::AlertRecord& a : alerts_) alerts_by_level_[static_cast<size_t>(a.level)]->inc();
  batch_events_.observe(static_cast<double>(result.events));
  batch_seconds_.observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return result;
}

// The event's own time (the mapping's time field) if it has one, else the Kafka timestamp,
// else now. Alerts and retained events share it, so an alert's event is found by its time.
TimeMs ShardWorker::event_time(const MessageView& m) const {
  if (rules_->time_slot() >= 0) {
    if (auto t = time_value(event_.field(static_cast<uint32_t>(rules_->time_slot())))) return *t;
  }
  return m.timestamp >= 0 ? m.timestamp : clock_.now_ms();
}

std::string_view ShardWorker::batch_stream(std::string_view topic) {
  for (const auto& s : batch_streams_) {
    if (s.size() == cluster_id_.size() + 1 + topic.size() &&
        std::string_view(s).substr(cluster_id_.size() + 1) == topic)
      return s;
  }
  return batch_streams_.emplace_back(stream(topic));
}

std::optional<EventRetention> parse_event_retention(std::string_view name) {
  if (name == "all") return EventRetention::kAll;
  if (name == "matched") return EventRetention::kMatched;
  if (name == "none") return EventRetention::kNone;
  return std::nullopt;
}

void ShardWorker::dead_letter(const MessageView& m, std::string_view reason) {
  store::OutboxRecord& r = outbox_.emplace_back();
  r.kind = store::OutboxRecord::Kind::kDeadLetter;
  r.time = m.timestamp >= 0 ? m.timestamp : clock_.now_ms();
  set_stream(m.topic);
  // No rule id: distinct from every alert id of the same message.
  r.id = store::AlertId::derive(stream_, m.partition, m.offset, {});
  r.message_key.assign(m.key);
  const size_t keep = std::min(m.payload.size(), options_.dead_letter_max_bytes);
  r.value.assign(m.payload.substr(0, keep));
  r.headers = {{"vigil.reason", std::string(reason)},
               {"vigil.source.cluster", cluster_id_},
               {"vigil.source.topic", std::string(m.topic)},
               {"vigil.source.partition", std::to_string(m.partition)},
               {"vigil.source.offset", std::to_string(m.offset)},
               {"vigil.source.timestamp", std::to_string(m.timestamp)}};
  if (keep < m.payload.size())
    r.headers.emplace_back("vigil.truncated", std::to_string(m.payload.size()));
}

store::AlertId correlation_alert_id(const match::CompiledCorrelation& c,
                                    const match::CorrelationHit& hit) {
  // Deterministic: the same matches replayed give the same window, hence the same id.
  std::string material = c.info.id;
  material += '\x1f';
  material += hit.values();
  return store::AlertId::derive(hit.scope(), 0, hit.first, material);
}

void ShardWorker::build_correlation_alert(const match::CorrelationHit& hit, const MessageView* m,
                                          bool has_event) {
  const match::CompiledCorrelation& c = rules_->correlations()[hit.correlation];
  if (!options_.repartition_topic.empty()) queue_chained_hits(hit, m);
  if (!c.info.emit) return;  // it only feeds correlations that do not `generate` it
  const std::string_view scope = hit.scope(), values = hit.values();
  store::AlertRecord& a = alerts_.emplace_back();
  a.id = correlation_alert_id(c, hit);
  a.time = hit.last;
  a.rule_id = c.info.id;
  a.level = store::parse_alert_level(c.info.level).value_or(store::AlertLevel::kUnknown);
  a.title = c.info.title;
  a.tags = c.info.tags;
  if (m && has_event && rules_->host_slot() >= 0) {
    const FieldValue& hv = event_.field(static_cast<uint32_t>(rules_->host_slot()));
    if (hv.present()) a.host.assign(hv.text);
  }
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto str = [&](std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  };
  w.StartObject();
  w.Key("id");
  str(a.id.hex());
  w.Key("time");
  str(format_rfc3339(a.time));
  w.Key("detected_at");
  str(format_rfc3339(clock_.now_ms()));
  w.Key("rule");
  w.StartObject();
  w.Key("id");
  str(c.info.id);
  w.Key("title");
  str(c.info.title);
  w.Key("level");
  str(c.info.level);
  w.Key("tags");
  w.StartArray();
  for (const auto& t : c.info.tags) str(t);
  w.EndArray();
  w.Key("correlation");
  str(match::correlation_type_name(c.spec.type));
  w.EndObject();
  w.Key("host");
  str(a.host);
  w.Key("group");
  w.StartObject();
  size_t from = 0;
  for (size_t g = 0; g < c.spec.group_by.size(); ++g) {
    const size_t to = values.find('\x1f', from);
    w.Key(c.spec.group_by[g].c_str());
    str(values.substr(from, to == std::string_view::npos ? std::string_view::npos : to - from));
    from = to == std::string_view::npos ? values.size() : to + 1;
  }
  w.EndObject();
  w.Key("value");  // a count, or a metric (value_avg: 512.5)
  if (hit.value == std::floor(hit.value) && std::abs(hit.value) < 9.0e15)
    w.Int64(static_cast<int64_t>(hit.value));
  else
    w.Double(hit.value);
  w.Key("first");
  str(format_rfc3339(hit.first));
  w.Key("last");
  str(format_rfc3339(hit.last));
  w.Key("base_alerts");
  w.StartArray();
  for (const auto& r : hit.refs) str(r);
  w.EndArray();
  w.Key("source");
  w.StartObject();
  w.Key("partition_scope");
  str(scope);
  if (m) {
    w.Key("topic");
    str(m->topic);
    w.Key("partition");
    w.Int(m->partition);
    w.Key("offset");
    w.Int64(m->offset);
  }
  w.EndObject();
  w.EndObject();
  a.json.assign(sb.GetString(), sb.GetSize());
  ++correlation_pending_;
  if (options_.rule_stats) fired_pending_.push_back(hit.correlation);
  if (options_.publish_alerts) {
    store::OutboxRecord& r = outbox_.emplace_back();
    r.kind = store::OutboxRecord::Kind::kAlert;
    r.time = a.time;
    r.id = a.id;
    r.message_key = a.id.hex();
    r.value = a.json;
    r.headers = {{"vigil.rule.id", c.info.id}, {"vigil.rule.level", c.info.level}};
    format_record(r);
  }
}

void ShardWorker::build_alert(const MessageView& m, uint32_t rule_index, TimeMs time) {
  const match::RuleSet& rs = *rules_;
  const match::RuleInfo& rule = rs.rules()[rule_index];
  store::AlertRecord& a = alerts_.emplace_back();
  set_stream(m.topic);
  a.id = store::AlertId::derive(stream_, m.partition, m.offset, rule.id);
  a.time = time;
  a.rule_id = rule.id;
  a.level = store::parse_alert_level(rule.level).value_or(store::AlertLevel::kUnknown);
  a.title = rule.title;
  a.tags = rule.tags;
  if (rs.host_slot() >= 0) {
    const FieldValue& hv = event_.field(static_cast<uint32_t>(rs.host_slot()));
    if (hv.present()) a.host.assign(hv.text);
  }

  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto str = [&](std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  };
  w.StartObject();
  w.Key("id");
  str(a.id.hex());
  w.Key("time");
  str(format_rfc3339(time));
  w.Key("detected_at");
  str(format_rfc3339(clock_.now_ms()));
  w.Key("rule");
  w.StartObject();
  w.Key("id");
  str(rule.id);
  w.Key("title");
  str(rule.title);
  w.Key("level");
  str(rule.level);
  w.Key("tags");
  w.StartArray();
  for (const auto& t : rule.tags) str(t);
  w.EndArray();
  w.EndObject();
  if (bundle_->version) {
    w.Key("bundle");
    w.Uint64(bundle_->version);
  }
  w.Key("host");
  str(a.host);
  w.Key("source");
  w.StartObject();
  w.Key("cluster");
  str(cluster_id_);
  w.Key("topic");
  str(m.topic);
  w.Key("partition");
  w.Int(m.partition);
  w.Key("offset");
  w.Int64(m.offset);
  w.EndObject();
  // What follows (matched fields, the event) is left out of alert lists: the summary is the
  // document up to here, closed.
  a.summary_size = sb.GetSize();
  matched_slots_.clear();
  matcher_->matched_fields(rule_index, matched_slots_);
  w.Key("matched");
  w.StartArray();
  for (const uint32_t slot : matched_slots_) {
    w.StartObject();
    w.Key("field");
    if (slot == match::RuleSet::kRawSlot) {  // a keyword, found somewhere in the event
      w.Null();
    } else {
      str(rs.fields().path(slot));
      const std::string_view text = event_.field(slot).text;
      w.Key("value");
      str(utf8_prefix(text, kMatchedValueLimit));
      if (text.size() > kMatchedValueLimit) {
        w.Key("truncated");
        w.Bool(true);
      }
    }
    w.EndObject();
  }
  w.EndArray();
  // Where the event starts: an alert record too large for Kafka is cut here.
  const size_t before_event = sb.GetSize();
  // simdjson's on-demand parse does not validate the values it skipped, so the event is
  // embedded as JSON only once it is known to be valid; otherwise as a string.
  if (is_valid_json(event_.raw())) {
    w.Key("event");
    w.RawValue(event_.raw().data(), event_.raw().size(), rapidjson::kObjectType);
  } else {
    w.Key("event_raw");
    str(event_.raw());
  }
  w.EndObject();
  a.json.assign(sb.GetString(), sb.GetSize());
  if (options_.publish_alerts) {
    store::OutboxRecord& r = outbox_.emplace_back();
    r.kind = store::OutboxRecord::Kind::kAlert;
    r.time = a.time;
    r.id = a.id;
    r.message_key = a.id.hex();
    r.headers = {{"vigil.rule.id", rule.id}, {"vigil.rule.level", rule.level}};
    if (a.json.size() <= options_.max_alert_record_bytes) {
      r.value = a.json;
    } else {
      // Larger than the producer and broker take (a 1 MB event gives a 1 MB alert): the
      // record leaves without the event, marked; the stored alert keeps it whole (GET
      // /api/v1/alerts/{id}).
      const std::string marker =
          R"(,"event_truncated":true,"event_bytes":)" + std::to_string(event_.raw().size()) + "}";
      if (before_event + marker.size() <= options_.max_alert_record_bytes) {
        r.value.assign(a.json, 0, before_event);
      } else {  // many long matched values: those go too
        r.value.assign(a.json, 0, a.summary_size);
        r.value += R"(,"matched_truncated":true)";
      }
      r.value += marker;
      r.headers.emplace_back("vigil.truncated", std::to_string(a.json.size()));
      ++truncated_alerts_pending_;
    }
    format_record(r);
  }
}

void ShardWorker::format_record(store::OutboxRecord& r) const {
  if (options_.alerts_format == output::AlertFormat::kVigil) return;
  // The document is vigil's own, so it formats; were it not, it would leave as it is.
  if (auto f = output::format_alert(r.value, options_.alerts_format)) {
    r.value = std::move(*f);
    r.headers.emplace_back("vigil.format",
                           std::string(output::alert_format_name(options_.alerts_format)));
  }
}

}  // namespace vigil::ingest
