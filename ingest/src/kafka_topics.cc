#include "vigil/ingest/kafka_topics.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <memory>

#include "kafka_log.h"

namespace vigil::ingest {
namespace {

// The partition count of `topic`, 0 if the cluster does not have it, -1 on error. Asks for
// every topic's metadata: a request naming the topic would make a broker that auto-creates
// topics create it (with its default partition count).
int partition_count(rd_kafka_t* rk, const std::string& topic, int timeout_ms, std::string& error) {
  const rd_kafka_metadata_t* md = nullptr;
  if (const auto e = rd_kafka_metadata(rk, 1, nullptr, &md, timeout_ms); e) {
    error = rd_kafka_err2str(e);
    return -1;
  }
  int n = 0;
  for (int i = 0; i < md->topic_cnt; ++i) {
    if (topic != md->topics[i].topic) continue;
    if (md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      n = md->topics[i].partition_cnt;
    } else if (md->topics[i].err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      error = rd_kafka_err2str(md->topics[i].err);
      n = -1;
    }
  }
  rd_kafka_metadata_destroy(md);
  return n;
}

}  // namespace

Expected<int> ensure_topic(const std::string& brokers,
                           const std::vector<std::pair<std::string, std::string>>& kafka_properties,
                           const TopicSpec& spec, int timeout_ms) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::vector<std::pair<std::string, std::string>> settings = {
      {"bootstrap.servers", brokers}, {"client.id", "vigild-admin"}, {"log_level", "4"}};
  settings.insert(settings.end(), kafka_properties.begin(), kafka_properties.end());
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return Status::invalid("Kafka property '" + k + "': " + err);
    }
  }
  rd_kafka_conf_set_log_cb(conf, &kafka_log_to_spdlog);
  std::unique_ptr<rd_kafka_t, void (*)(rd_kafka_t*)> rk(
      rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err), &rd_kafka_destroy);
  if (!rk) return Status::invalid(std::string("cannot create the Kafka admin client: ") + err);

  std::string error;
  const int have = partition_count(rk.get(), spec.name, timeout_ms, error);
  if (have < 0)
    return Status::unavailable("cannot read the metadata of topic '" + spec.name + "': " + error);
  if (have > 0) return have;
  int partitions = spec.partitions;
  if (!spec.partitions_like.empty()) {
    const int like = partition_count(rk.get(), spec.partitions_like, timeout_ms, error);
    if (like > 0) partitions = like;
  }

  rd_kafka_NewTopic_t* nt =
      rd_kafka_NewTopic_new(spec.name.c_str(), partitions, -1, err, sizeof err);
  if (!nt) return Status::invalid("topic '" + spec.name + "': " + err);
  for (const auto& [k, v] : spec.configs) rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str());
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk.get());
  rd_kafka_AdminOptions_t* opts =
      rd_kafka_AdminOptions_new(rk.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, err, sizeof err);
  rd_kafka_CreateTopics(rk.get(), &nt, 1, opts, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, timeout_ms + 5000);
  Status result = Status::ok();
  if (!ev) {
    result = Status::unavailable("creating topic '" + spec.name + "' timed out");
  } else if (rd_kafka_event_error(ev)) {
    result = Status::unavailable("cannot create topic '" + spec.name +
                                 "': " + rd_kafka_event_error_string(ev));
  } else {
    size_t n = 0;
    const rd_kafka_topic_result_t** res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    for (size_t i = 0; i < n; ++i) {
      const auto e = rd_kafka_topic_result_error(res[i]);
      if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        const char* s = rd_kafka_topic_result_error_string(res[i]);
        result = Status::unavailable("cannot create topic '" + spec.name +
                                     "': " + (s ? s : rd_kafka_err2str(e)));
      }
    }
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(opts);
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
  if (!result) return result;
  spdlog::info("kafka topic {} created with {} partitions", spec.name, partitions);
  return partitions;
}

}  // namespace vigil::ingest
