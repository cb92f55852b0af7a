#pragma once
// A base-rule match that feeds a correlation, re-keyed by its correlation group for the
// repartition topic (cluster mode, DESIGN.md "Scale-out"): the replica that consumed the
// event publishes it keyed by "<correlation id>\x1f<group values>", so that every match of
// one group reaches one partition of the repartition topic, whatever partition (and
// replica) its event came from; that partition's owner keeps the group's window.
//
// The record is a small JSON document (header vigil.format: correlation-hit):
//   {"v":1,"id":"<hit id>","correlation":"<rule id>","rule":"<base rule id>",
//    "base":<position in the correlation's rules>,"group":["<value>",...],
//    "value":"<value_count field value>","time":<event time, ms>,"ref":"<base alert id>"}
// The id is derived from the event's stream, partition and offset and the correlation and
// base: a record the publisher repeats (after a crash) has the same id and is counted once.

#include <cstdint>
#include <string>
#include <string_view>

#include "vigil/core/status.h"
#include "vigil/core/time.h"

namespace vigil::ingest {

inline constexpr std::string_view kCorrelationHitFormat = "correlation-hit";

struct CorrelationHitRecord {
  std::string id;           // 32 hex digits
  std::string correlation;  // the correlation's rule id
  std::string rule;         // the base rule's id
  uint32_t base = 0;        // its position in the correlation's rules
  std::string group;        // the group-by values joined by '\x1f'
  std::string value;        // value_count: the counted field's value
  TimeMs time = 0;
  std::string ref;  // the base match's alert id
};

std::string encode_correlation_hit(const CorrelationHitRecord& r);
// Fails with the reason: not JSON, another version, a member missing or of the wrong type.
Expected<CorrelationHitRecord> decode_correlation_hit(std::string_view json);
// The Kafka message key: "<correlation id>\x1f<group values>".
std::string correlation_hit_key(std::string_view correlation, std::string_view group);

}  // namespace vigil::ingest
