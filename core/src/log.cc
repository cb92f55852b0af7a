#include "vigil/core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <string>

namespace vigil {

Status init_logging(std::string_view level) {
  const auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") {
    return Status::invalid("unknown log level '" + std::string(level) +
                           "' (trace, debug, info, warn, error, critical, off)");
  }
  auto logger = spdlog::get("vigil");
  if (!logger) logger = spdlog::stderr_color_mt("vigil");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%-5l%$ %v", spdlog::pattern_time_type::utc);
  logger->set_level(lvl);
  spdlog::set_default_logger(logger);
  return Status::ok();
}

}  // namespace vigil
