#include "common/base/logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace distillery {

void InitLogging(const std::string& program, const std::string& level,
                 const std::string& format) {
  auto logger = spdlog::stderr_logger_mt(program);
  if (format == "json") {
    logger->set_pattern(
        "{\"time\":\"%Y-%m-%dT%H:%M:%S.%e%z\",\"level\":\"%l\",\"program\":\"%n\","
        "\"message\":\"%v\"}");
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n: %v");
  }
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace distillery
