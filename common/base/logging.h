// Process logging setup: spdlog to stderr (stdout is for command output and
// the "listening on" lines that scripts read), as text or one JSON object a
// line. Log lines never carry API keys or prompt bodies.
#ifndef DISTILLERY_COMMON_BASE_LOGGING_H_
#define DISTILLERY_COMMON_BASE_LOGGING_H_

#include <string>

namespace distillery {

// `level`: trace, debug, info, warn, error. `format`: "text" or "json".
void InitLogging(const std::string& program, const std::string& level,
                 const std::string& format = "text");

}  // namespace distillery

#endif  // DISTILLERY_COMMON_BASE_LOGGING_H_
