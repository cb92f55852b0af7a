#include "vigil/ingest/shard_worker.h"

#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/spdlog.h>

namespace vigil::ingest {
namespace {

// Every ParseError but kNone, in enum order: invalid_by_reason_[e - 1] counts reason e.
constexpr ParseError kParseErrors[] = {ParseError::kTooLarge, ParseError::kInvalidUtf8, ParseError::kMalformedJson,
                                       ParseError::kNotAnObject, ParseError::kTooDeep};

bool is_valid_json(std::string_view raw) {
  rapidjson::Reader reader;
  rapidjson::BaseReaderHandler<> handler;
  rapidjson::MemoryStream ms(raw.data(), raw.size());
  return !reader.Parse<rapidjson::kParseValidateEncodingFlag>(ms, handler).IsError();
}

}  // namespace

Expected<std::unique_ptr<ShardWorker>> ShardWorker::create(std::shared_ptr<const match::RuleSet> rules, store::Store& store,
                                                           MetricsRegistry& metrics, const Clock& clock,
                                                           size_t max_event_bytes) {
  std::unique_ptr<ShardWorker> w(new ShardWorker(rules, store, metrics, clock, max_event_bytes));
  auto m = match::Matcher::create(std::move(rules));
  if (!m) return m.status();
  w->matcher_ = std::move(*m);
  return w;
}

ShardWorker::ShardWorker(std::shared_ptr<const match::RuleSet> rules, store::Store& store, MetricsRegistry& metrics,
                         const Clock& clock, size_t max_event_bytes)
    : rules_(std::move(rules)),
      store_(store),
      metrics_(metrics),
      clock_(clock),
      parser_(max_event_bytes),
      events_total_(metrics.counter("vigil_events_consumed_total", "Events consumed from Kafka")),
      bytes_total_(metrics.counter("vigil_events_consumed_bytes_total", "Bytes of events consumed from Kafka")),
      alerts_total_(metrics.counter("vigil_alerts_total", "Alerts written to the store")) {
  for (ParseError e : kParseErrors) {
    invalid_by_reason_.push_back(&metrics.counter("vigil_events_invalid_total", "Events that could not be parsed, by reason",
                                                  {{"reason", std::string(parse_error_name(e))}}));
  }
}

std::string ShardWorker::stream(std::string_view topic) const {
  std::string s = cluster_id_;
  s += '/';
  s += topic;
  return s;
}

Expected<BatchResult> ShardWorker::process(std::span<const MessageView> batch) {
  BatchResult result;
  alerts_.clear();
  offsets_.clear();
  const match::RuleSet& rs = *rules_;
  for (const MessageView& m : batch) {
    ++result.events;
    bytes_total_.inc(m.payload.size());

    // The partition's next offset is recorded whether or not the event is valid: a bad
    // event is counted and passed, never re-read forever.
    auto it = std::find_if(offsets_.begin(), offsets_.end(), [&](const store::PartitionOffset& o) {
      return o.partition == m.partition && o.stream.size() == cluster_id_.size() + 1 + m.topic.size() &&
             std::string_view(o.stream).substr(cluster_id_.size() + 1) == m.topic;
    });
    if (it == offsets_.end()) {
      offsets_.push_back({stream(m.topic), m.partition, m.offset + 1});
    } else {
      it->next_offset = std::max(it->next_offset, m.offset + 1);
    }

    const ParseError pe = parser_.parse(m.payload, rs.fields(), event_);
    if (pe != ParseError::kNone) {
      ++result.invalid;
      Counter& c = *invalid_by_reason_[static_cast<size_t>(pe) - 1];
      c.inc();
      if (c.value() <= 10 || c.value() % 10000 == 0) {
        spdlog::warn("invalid event reason={} topic={} partition={} offset={} count={}", parse_error_name(pe), m.topic,
                     m.partition, m.offset, c.value());
      }
      continue;
    }
    matches_.clear();
    if (auto s = matcher_->match(event_, matches_); !s) return s;
    if (matches_.empty()) continue;

    TimeMs time = m.timestamp >= 0 ? m.timestamp : clock_.now_ms();
    if (rs.time_slot() >= 0) {
      const FieldValue& tv = event_.field(static_cast<uint32_t>(rs.time_slot()));
      if (tv.type == ValueType::kString) {
        if (auto t = parse_rfc3339(tv.text)) time = *t;
      }
    }
    for (uint32_t r : matches_) build_alert(m, r, time);
  }
  events_total_.inc(result.events);
  if (auto s = store_.put_batch(alerts_, offsets_); !s) return s;
  result.alerts = alerts_.size();
  alerts_total_.inc(result.alerts);
  return result;
}

void ShardWorker::build_alert(const MessageView& m, uint32_t rule_index, TimeMs time) {
  const match::RuleSet& rs = *rules_;
  const match::RuleInfo& rule = rs.rules()[rule_index];
  store::AlertRecord& a = alerts_.emplace_back();
  stream_ = stream(m.topic);
  a.id = store::AlertId::derive(stream_, m.partition, m.offset, rule.id);
  a.time = time;
  a.rule_id = rule.id;
  if (rs.host_slot() >= 0) {
    const FieldValue& hv = event_.field(static_cast<uint32_t>(rs.host_slot()));
    if (hv.present()) a.host.assign(hv.text);
  }

  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto str = [&](std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); };
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
}

}  // namespace vigil::ingest
