#include "vigil/output/output_set.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/spdlog.h>

#include <set>

namespace vigil::output {

Expected<std::unique_ptr<OutputSet>> OutputSet::create(const std::vector<OutputConfig>& configs,
                                                       store::Store& store,
                                                       MetricsRegistry& metrics,
                                                       const Clock& clock) {
  auto set = std::make_unique<OutputSet>();
  set->clock_ = &clock;
  std::set<uint64_t> ids;
  for (const auto& c : configs) {
    auto d = Deliverer::create(c, store, metrics, clock);
    if (!d) return d.status();
    ids.insert(c.id);
    if (const auto backlog = (*d)->status().backlog; backlog > 0)
      spdlog::info("output {}: {} alerts still queued from an earlier run", c.name, backlog);
    set->deliverers_.push_back(std::move(*d));
  }
  auto queues = store.delivery_queues();
  if (!queues) return queues.status();
  for (uint64_t q : *queues) {
    if (ids.count(q)) continue;
    auto n = store.count_deliveries(q);
    spdlog::warn("an output no longer configured left {} queued alerts: dropped",
                 n ? *n : uint64_t{0});
    if (auto s = store.drop_delivery_queue(q); !s) return s;
  }
  return set;
}

void OutputSet::start() {
  for (auto& d : deliverers_) d->start();
}

void OutputSet::stop() {
  for (auto& d : deliverers_) d->stop();
}

void OutputSet::queued(const std::vector<uint64_t>& per_output) {
  for (size_t i = 0; i < per_output.size() && i < deliverers_.size(); ++i)
    if (per_output[i] > 0) deliverers_[i]->queued(per_output[i]);
}

std::string OutputSet::status_json() const {
  rapidjson::StringBuffer b;
  rapidjson::Writer<rapidjson::StringBuffer> w(b);
  w.StartObject();
  w.Key("outputs");
  w.StartArray();
  for (const auto& d : deliverers_) {
    const OutputStatus s = d->status();
    const OutputConfig& c = d->config();
    w.StartObject();
    w.Key("name");
    w.String(s.name);
    w.Key("type");
    w.String(s.type);
    w.Key("state");
    w.String(s.state);
    w.Key("format");
    w.String(c.type == OutputType::kSlack ? "text"
             : c.type == OutputType::kSyslog && c.message == SyslogMessage::kCef
                 ? "cef"
                 : std::string(alert_format_name(c.format)));
    w.Key("min_level");
    w.String(std::string(store::alert_level_name(c.min_level)));
    for (const auto& [k, v] : {std::pair{"delivered", s.delivered},
                               {"failed", s.failed},
                               {"retried", s.retried},
                               {"refused", s.refused},
                               {"dropped", s.dropped},
                               {"backlog", s.backlog}}) {
      w.Key(k);
      w.Uint64(v);
    }
    if (!s.last_error.empty()) {
      w.Key("last_error");
      w.String(s.last_error);
      w.Key("last_error_at");
      w.String(format_rfc3339(s.last_error_at));
    }
    if (s.last_delivered_at) {
      w.Key("last_delivered_at");
      w.String(format_rfc3339(s.last_delivered_at));
    }
    if (s.state == "retrying") {
      w.Key("next_attempt_in_ms");
      w.Int64(s.next_attempt_in_ms);
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return {b.GetString(), b.GetSize()};
}

Status OutputSet::test(const std::string& name) {
  for (auto& d : deliverers_)
    if (d->config().name == name) return d->send_test();
  return Status::not_found("no output named '" + name + "'");
}

}  // namespace vigil::output
