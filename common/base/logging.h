// Process logging setup: spdlog to stderr (stdout is for command output and
// the "listening on" lines that scripts read), as text or one JSON object a
// line. Log lines never carry API keys or prompt bodies: callers log ids,
// counts and error summaries (which adapters redact), never request text.
#ifndef DISTILLERY_COMMON_BASE_LOGGING_H_
#define DISTILLERY_COMMON_BASE_LOGGING_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace distillery {

// `level`: trace, debug, info, warn, error. `format`: "text" or "json".
void InitLogging(const std::string& program, const std::string& level,
                 const std::string& format = "text");

// One JSON log line (without the newline):
// {"time":"2024-05-01T12:00:00.123Z","level":"info","program":"worker",
//  "message":"..."}, time in UTC. Every string is escaped, so any message
// (quotes, newlines, control bytes, invalid UTF-8) yields valid JSON.
std::string JsonLogLine(int64_t wall_millis, std::string_view level,
                        std::string_view program, std::string_view message);

// `text` as the inside of a JSON string: quotes, backslashes and control
// characters escaped; bytes that are not valid UTF-8 become U+FFFD. The
// same bytes nlohmann::json writes (see json_string.h).
std::string JsonEscape(std::string_view text);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_BASE_LOGGING_H_
