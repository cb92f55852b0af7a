#pragma once
// Logging: spdlog, one line per event worth logging, written as "message key=value ...".
// Never log per Kafka message or per event on the hot path.

#include <spdlog/spdlog.h>

#include <string_view>

#include "vigil/core/status.h"

namespace vigil {

// Configures the default logger (to stderr, UTC timestamps) at `level` ("trace".."off").
Status init_logging(std::string_view level);

}  // namespace vigil
