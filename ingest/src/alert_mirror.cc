#include "vigil/ingest/alert_mirror.h"

#include <librdkafka/rdkafka.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>

#include "kafka_log.h"
#include "vigil/core/thread_name.h"
#include "vigil/core/time.h"

namespace vigil::ingest {
namespace {

// Where the top-level key `key` of a valid JSON object starts (its opening quote), or npos. A
// walk over the text that knows strings and nesting: a value or a nested key that reads the
// same is not it.
size_t top_level_key(std::string_view json, std::string_view key) {
  int depth = 0;
  bool expect_key = false;  // at depth 1, after '{' or ','
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (c == '"') {
      const size_t start = i;
      for (++i; i < json.size() && json[i] != '"'; ++i)
        if (json[i] == '\\') ++i;
      if (depth == 1 && expect_key && json.substr(start + 1, i - start - 1) == key) return start;
      expect_key = false;
    } else if (c == '{' || c == '[') {
      ++depth;
      expect_key = depth == 1 && c == '{';
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',' && depth == 1) {
      expect_key = true;
    }
  }
  return std::string_view::npos;
}

std::optional<std::string_view> header(const rd_kafka_message_t* m, const char* name) {
  rd_kafka_headers_t* hdrs = nullptr;
  if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  const void* value = nullptr;
  size_t size = 0;
  if (rd_kafka_header_get_last(hdrs, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return std::nullopt;
  return std::string_view(static_cast<const char*>(value), size);
}

}  // namespace

Expected<std::unique_ptr<ParsedAlert>> parse_alert_document(std::string_view json) {
  // simdjson's DOM parser validates the whole document (the API embeds it as it is).
  thread_local simdjson::dom::parser parser;
  const simdjson::padded_string padded(json);
  simdjson::dom::element doc;
  if (auto e = parser.parse(padded).get(doc); e)
    return Status::invalid(std::string("not JSON: ") + simdjson::error_message(e));
  simdjson::dom::object top;
  if (doc.get_object().get(top)) return Status::invalid("not a JSON object");
  auto text = [](simdjson::dom::element parent, const char* key) -> std::string {
    std::string_view v;
    if (parent[key].get_string().get(v)) return {};
    return std::string(v);
  };
  auto out = std::make_unique<ParsedAlert>();
  store::AlertRecord& r = out->record;
  auto id = store::AlertId::from_hex(text(doc, "id"));
  if (!id) return Status::invalid("no alert id (32 hexadecimal digits)");
  auto t = parse_rfc3339(text(doc, "time"));
  if (!t) return Status::invalid("no alert time (RFC 3339)");
  simdjson::dom::element rule;
  if (doc["rule"].get(rule) || !rule.is_object()) return Status::invalid("no rule");
  r.rule_id = text(rule, "id");
  if (r.rule_id.empty()) return Status::invalid("no rule id");
  r.id = *id;
  r.time = *t;
  r.host = text(doc, "host");
  r.level = store::parse_alert_level(text(rule, "level")).value_or(store::AlertLevel::kUnknown);
  out->title = text(rule, "title");
  simdjson::dom::array tags;
  if (!rule["tags"].get_array().get(tags)) {
    for (auto tag : tags) {
      std::string_view v;
      if (!tag.get_string().get(v)) out->tags.emplace_back(v);
    }
  }
  out->truncated = top["event_truncated"].error() == simdjson::SUCCESS ||
                   top["matched_truncated"].error() == simdjson::SUCCESS;
  r.json.assign(json);
  r.title = out->title;
  r.tags = out->tags;
  // The summary is the document before its matched fields (see AlertRecord::summary_size):
  // back from the key over blanks to the comma that separates it.
  if (size_t pos = top_level_key(json, "matched"); pos != std::string_view::npos) {
    while (pos > 0 && std::strchr(" \t\r\n", json[pos - 1])) --pos;
    if (pos > 0 && json[pos - 1] == ',') r.summary_size = pos - 1;
  }
  return out;
}

Expected<std::unique_ptr<AlertMirror>> AlertMirror::create(const AlertMirrorOptions& options,
                                                           store::Store& store,
                                                           MetricsRegistry& metrics) {
  if (options.brokers.empty())
    return Status::invalid("no Kafka bootstrap servers given for the alert mirror");
  if (options.alerts_topic.empty())
    return Status::invalid("the alert mirror needs the alerts topic (kafka.alerts_topic)");
  std::unique_ptr<AlertMirror> m(new AlertMirror());
  m->options_ = options;
  m->store_ = &store;
  const char* help = "Alerts read from the alerts topic into this replica's store";
  m->mirrored_ = &metrics.counter("vigil_cluster_alerts_mirrored_total", help);
  m->own_ = &metrics.counter(
      "vigil_cluster_alerts_already_stored_total",
      "Alerts read from the alerts topic that this replica's store held already (its own)");
  const char* skipped = "Alerts topic records the mirror could not store, by reason";
  m->skipped_format_ =
      &metrics.counter("vigil_cluster_alerts_skipped_total", skipped, {{"reason", "format"}});
  m->skipped_invalid_ =
      &metrics.counter("vigil_cluster_alerts_skipped_total", skipped, {{"reason", "invalid"}});
  m->errors_ = &metrics.counter("vigil_cluster_alert_mirror_errors_total",
                                "Kafka and store errors of the alert mirror (retried)");
  m->lag_ = &metrics.gauge("vigil_cluster_alert_mirror_lag",
                           "Alerts topic records not yet read into this replica's store");

  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::vector<std::pair<std::string, std::string>> settings = {
      {"bootstrap.servers", options.brokers},
      {"client.id", options.client_id},
      // Partitions are assigned, never subscribed: the group is not joined and nothing is
      // committed (the positions are in the store, written with the alerts).
      {"group.id", "vigil-alert-mirror"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"enable.partition.eof", "false"},
      {"log_level", "4"},
  };
  for (const auto& kv : options.kafka_properties) settings.push_back(kv);
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return Status::invalid("Kafka consumer property '" + k + "': " + err);
    }
  }
  rd_kafka_conf_set_log_cb(conf, &kafka_log_to_spdlog);
  m->rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!m->rk_)
    return Status::invalid(std::string("cannot create the alert mirror's consumer: ") + err);
  rd_kafka_poll_set_consumer(m->rk_);
  return m;
}

AlertMirror::~AlertMirror() {
  stop();
  if (rk_) {
    rd_kafka_consumer_close(rk_);
    rd_kafka_destroy(rk_);
  }
}

void AlertMirror::start() {
  thread_ = std::thread([this] {
    set_thread_name("vigil:mirror");
    run();
  });
}

void AlertMirror::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

Status AlertMirror::assign_partitions() {
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk_, options_.alerts_topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  const rd_kafka_resp_err_t e = rd_kafka_metadata(rk_, 0, t, &md, 5000);
  rd_kafka_topic_destroy(t);
  if (e) return Status::unavailable(std::string("alerts topic metadata: ") + rd_kafka_err2str(e));
  size_t partitions = 0;
  if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
    partitions = static_cast<size_t>(md->topics[0].partition_cnt);
  rd_kafka_metadata_destroy(md);
  if (partitions <= next_.size()) return Status::ok();
  if (stream_.empty()) {
    char* id = rd_kafka_clusterid(rk_, 5000);
    if (!id) return Status::unavailable("the Kafka cluster id is not known yet");
    stream_ = std::string(id) + "/" + options_.alerts_topic;
    rd_kafka_mem_free(rk_, id);
  }
  for (size_t p = next_.size(); p < partitions; ++p) {
    auto stored = store_->next_offset(stream_, static_cast<int32_t>(p));
    if (!stored) return stored.status();
    next_.push_back(stored->value_or(RD_KAFKA_OFFSET_BEGINNING));
  }
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(next_.size()));
  for (size_t p = 0; p < next_.size(); ++p) {
    rd_kafka_topic_partition_list_add(list, options_.alerts_topic.c_str(), static_cast<int32_t>(p))
        ->offset = next_[p];
  }
  const rd_kafka_resp_err_t ae = rd_kafka_assign(rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (ae) return Status::unavailable(std::string("assign: ") + rd_kafka_err2str(ae));
  spdlog::info("alert mirror: reading {} partition(s) of {}", next_.size(), options_.alerts_topic);
  return Status::ok();
}

Status AlertMirror::write_batch(std::vector<rd_kafka_message_t*>& msgs) {
  std::vector<std::unique_ptr<ParsedAlert>> parsed;
  std::vector<store::AlertRecord> records;
  std::map<int32_t, int64_t> offsets;
  uint64_t own = 0, bad_format = 0, invalid = 0;
  for (rd_kafka_message_t* m : msgs) {
    offsets[m->partition] = std::max(offsets[m->partition], m->offset + 1);
    if (auto f = header(m, "vigil.format"); f && *f != "vigil") {
      ++bad_format;
      continue;
    }
    auto a = parse_alert_document(std::string_view(static_cast<const char*>(m->payload), m->len));
    if (!a) {
      ++invalid;
      spdlog::warn("alert mirror: {} [{}] offset {} skipped: {}", options_.alerts_topic,
                   m->partition, m->offset, a.status().message());
      continue;
    }
    // Already here: raised by this replica (its copy may hold more than the record), or a
    // record the publisher repeated after a crash.
    auto have = store_->get_alert((*a)->record.id, (*a)->record.time);
    if (!have) return have.status();
    if (*have) {
      ++own;
      continue;
    }
    parsed.push_back(std::move(*a));
  }
  records.reserve(parsed.size());
  for (auto& p : parsed) {
    records.push_back(std::move(p->record));
    records.back().title = p->title;
    records.back().tags = p->tags;
  }
  std::vector<store::PartitionOffset> positions;
  for (const auto& [p, next] : offsets) positions.push_back({stream_, p, next});
  if (auto s = store_->put_batch(records, positions); !s) return s;
  for (const auto& [p, next] : offsets) next_[static_cast<size_t>(p)] = next;
  mirrored_->inc(records.size());
  own_->inc(own);
  skipped_format_->inc(bad_format);
  skipped_invalid_->inc(invalid);
  if (bad_format > 0) {
    spdlog::warn(
        "alert mirror: {} record(s) not in vigil's format skipped (kafka.alerts_format must be "
        "vigil for cluster mode)",
        bad_format);
  }
  return Status::ok();
}

void AlertMirror::update_lag() {
  int64_t lag = 0;
  for (size_t p = 0; p < next_.size(); ++p) {
    int64_t low = 0, high = 0;
    if (rd_kafka_get_watermark_offsets(rk_, options_.alerts_topic.c_str(), static_cast<int32_t>(p),
                                       &low, &high) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0) {
      continue;
    }
    const int64_t from = next_[p] < 0 ? low : std::max(low, next_[p]);
    lag += std::max<int64_t>(0, high - from);
  }
  lag_->set(static_cast<double>(lag));
}

void AlertMirror::run() {
  using Clock = std::chrono::steady_clock;
  rd_kafka_queue_t* queue = rd_kafka_queue_get_consumer(rk_);
  std::vector<rd_kafka_message_t*> msgs(options_.batch_max_messages);
  std::vector<rd_kafka_message_t*> batch;
  auto next_metadata = Clock::now();
  auto next_lag = Clock::now();
  int backoff_ms = 100;
  while (!stop_) {
    if (Clock::now() >= next_metadata) {
      if (auto s = assign_partitions(); !s) {
        errors_->inc();
        spdlog::warn("alert mirror: {}", s.message());
        next_metadata = Clock::now() + std::chrono::seconds(1);
      } else {
        next_metadata = Clock::now() + std::chrono::milliseconds(options_.metadata_interval_ms);
      }
    }
    if (next_.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(options_.poll_ms));
      continue;
    }
    const ssize_t n =
        rd_kafka_consume_batch_queue(queue, options_.poll_ms, msgs.data(), msgs.size());
    batch.clear();
    for (ssize_t i = 0; i < n; ++i) {
      rd_kafka_message_t* m = msgs[static_cast<size_t>(i)];
      if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          errors_->inc();
          spdlog::warn("alert mirror: {}", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
        continue;
      }
      batch.push_back(m);
    }
    // A store that refuses the write keeps the batch: retried until it is written or the
    // mirror stops (the next start reads the same records again from the stored offsets).
    while (!batch.empty() && !stop_) {
      const Status s = write_batch(batch);
      if (s) {
        backoff_ms = 100;
        break;
      }
      errors_->inc();
      spdlog::warn("alert mirror: store write failed, retrying: {}", s.message());
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
      backoff_ms = std::min(backoff_ms * 2, 5000);
    }
    for (rd_kafka_message_t* m : batch) rd_kafka_message_destroy(m);
    if (Clock::now() >= next_lag) {
      update_lag();
      next_lag = Clock::now() + std::chrono::seconds(1);
    }
  }
  rd_kafka_queue_destroy(queue);
}

}  // namespace vigil::ingest
