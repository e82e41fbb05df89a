#include "common/base/logging.h"

#include <spdlog/formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include "common/base/json_string.h"

namespace distillery {
namespace {

// Formats every record as JsonLogLine; spdlog's pattern formatter cannot
// escape the message.
class JsonFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg,
              spdlog::memory_buf_t& dest) override {
    const int64_t millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(
            msg.time.time_since_epoch())
            .count();
    const spdlog::string_view_t level =
        spdlog::level::to_string_view(msg.level);
    std::string line = JsonLogLine(
        millis, std::string_view(level.data(), level.size()),
        std::string_view(msg.logger_name.data(), msg.logger_name.size()),
        std::string_view(msg.payload.data(), msg.payload.size()));
    line.push_back('\n');
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

std::string JsonEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  AppendJsonEscaped(text, &out);
  return out;
}

std::string JsonLogLine(int64_t wall_millis, std::string_view level,
                        std::string_view program, std::string_view message) {
  const std::time_t seconds = static_cast<std::time_t>(wall_millis / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char time[40];
  std::snprintf(time, sizeof(time), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, static_cast<int>(wall_millis % 1000));
  std::string line = "{\"time\":\"";
  line += time;
  line += "\",\"level\":\"";
  line += JsonEscape(level);
  line += "\",\"program\":\"";
  line += JsonEscape(program);
  line += "\",\"message\":\"";
  line += JsonEscape(message);
  line += "\"}";
  return line;
}

void InitLogging(const std::string& program, const std::string& level,
                 const std::string& format) {
  auto logger = spdlog::stderr_logger_mt(program);
  if (format == "json") {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n: %v");
  }
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace distillery
