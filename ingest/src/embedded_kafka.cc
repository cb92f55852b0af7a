#include "vigil/ingest/embedded_kafka.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <sstream>
#include <vector>

namespace vigil::ingest {

Expected<std::unique_ptr<EmbeddedKafka>> EmbeddedKafka::start(int brokers, const std::string& topic,
                                                              int partitions) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The host handle never connects anywhere; it only owns the cluster's threads.
  if (rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return Status::internal(err);
  }
  std::unique_ptr<EmbeddedKafka> k(new EmbeddedKafka());
  k->host_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!k->host_)
    return Status::internal(std::string("cannot create the mock cluster host: ") + err);
  k->cluster_ = rd_kafka_mock_cluster_new(k->host_, brokers);
  if (!k->cluster_) return Status::internal("cannot create the Kafka mock cluster");
  k->bootstrap_ = rd_kafka_mock_cluster_bootstraps(k->cluster_);
  if (auto s = k->create_topic(topic, partitions); !s) return s;
  return k;
}

EmbeddedKafka::~EmbeddedKafka() {
  if (cluster_) rd_kafka_mock_cluster_destroy(cluster_);
  if (host_) rd_kafka_destroy(host_);
}

Status EmbeddedKafka::create_topic(const std::string& topic, int partitions) {
  const auto e = rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, 1);
  if (e) return Status::internal("cannot create topic '" + topic + "': " + rd_kafka_err2str(e));
  return Status::ok();
}

Status EmbeddedKafka::set_broker_down(int broker_id, bool down) {
  const auto e = down ? rd_kafka_mock_broker_set_down(cluster_, broker_id)
                      : rd_kafka_mock_broker_set_up(cluster_, broker_id);
  if (e) return Status::internal(std::string("broker state change failed: ") + rd_kafka_err2str(e));
  return Status::ok();
}

Status EmbeddedKafka::set_partition_leader(const std::string& topic, int partition, int broker_id) {
  const auto e = rd_kafka_mock_partition_set_leader(cluster_, topic.c_str(), partition, broker_id);
  if (e) return Status::internal(std::string("leader change failed: ") + rd_kafka_err2str(e));
  return Status::ok();
}

void EmbeddedKafka::fail_next_requests(int16_t api_key, int count, int error) {
  const std::vector<rd_kafka_resp_err_t> errors(static_cast<size_t>(count),
                                                static_cast<rd_kafka_resp_err_t>(error));
  rd_kafka_mock_push_request_errors_array(cluster_, api_key, errors.size(), errors.data());
}

Status EmbeddedKafka::control(const std::string& command) {
  std::istringstream in(command);
  std::string verb;
  in >> verb;
  if (verb == "down" || verb == "up") {
    int broker = 0;
    if (!(in >> broker)) return Status::invalid("usage: " + verb + " BROKER");
    return set_broker_down(broker, verb == "down");
  }
  if (verb == "leader") {
    std::string topic;
    int partition = 0, broker = 0;
    if (!(in >> topic >> partition >> broker))
      return Status::invalid("usage: leader TOPIC PARTITION BROKER");
    return set_partition_leader(topic, partition, broker);
  }
  if (verb == "topic") {
    std::string topic;
    int partitions = 0;
    if (!(in >> topic >> partitions) || partitions < 1)
      return Status::invalid("usage: topic NAME PARTITIONS");
    return create_topic(topic, partitions);
  }
  return Status::invalid("unknown command '" + verb + "' (down, up, leader, topic)");
}

}  // namespace vigil::ingest
