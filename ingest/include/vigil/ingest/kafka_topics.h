#pragma once
// Kafka topics vigild makes for itself (the repartition topic of cluster mode), created with
// the Admin API when missing, as Kafka Streams makes its internal topics.

#include <string>
#include <utility>
#include <vector>

#include "vigil/core/status.h"

namespace vigil::ingest {

struct TopicSpec {
  std::string name;
  // The partition count: this topic's (the events topic, so that the repartition topic
  // spreads as widely), or `partitions` if it does not exist.
  std::string partitions_like;
  int partitions = 1;
  std::vector<std::pair<std::string, std::string>> configs;  // e.g. retention.ms
};

// Creates the topic if the cluster does not have it (an existing topic is left as it is);
// returns its partition count. Fails with the broker's reason (e.g. not authorised).
Expected<int> ensure_topic(const std::string& brokers,
                           const std::vector<std::pair<std::string, std::string>>& kafka_properties,
                           const TopicSpec& spec, int timeout_ms = 15000);

}  // namespace vigil::ingest
