#pragma once
// librdkafka's log callback: its log lines (syslog levels) in vigild's log format.

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

namespace vigil::ingest {

inline void kafka_log_to_spdlog(const rd_kafka_t* rk, int level, const char* facility,
                                const char* message) {
  const auto lvl = level <= 3   ? spdlog::level::err
                   : level == 4 ? spdlog::level::warn
                   : level <= 6 ? spdlog::level::info
                                : spdlog::level::debug;
  spdlog::log(lvl, "kafka {} {}: {}", rd_kafka_name(rk), facility, message);
}

}  // namespace vigil::ingest
