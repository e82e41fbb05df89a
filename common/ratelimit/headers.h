// Reading what teachers say about their limits: OpenAI's x-ratelimit-*
// headers (reset values are durations such as "6m0s", "20ms", "1.5s") and
// Anthropic's anthropic-ratelimit-* headers (resets are RFC 3339 times).
// Thread-safe: values and pure functions.
#ifndef DISTILLERY_COMMON_RATELIMIT_HEADERS_H_
#define DISTILLERY_COMMON_RATELIMIT_HEADERS_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "common/base/clock.h"
#include "common/teacher/teacher.h"

namespace distillery {

// "6m0s", "20ms", "1.5s", "4m12.172s", "23h47m36.648s", "1s", "0s".
std::optional<Duration> ParseResetDuration(std::string_view text);
// "2025-08-21T12:40:59Z" or with fractional seconds / numeric offset, to
// milliseconds since the Unix epoch.
std::optional<int64_t> ParseRfc3339Millis(std::string_view text);

struct RateLimitSnapshot {
  std::optional<int64_t> limit_requests;
  std::optional<int64_t> remaining_requests;
  std::optional<Duration> reset_requests;
  std::optional<int64_t> limit_tokens;
  std::optional<int64_t> remaining_tokens;
  std::optional<Duration> reset_tokens;
  bool any() const {
    return limit_requests || remaining_requests || limit_tokens ||
           remaining_tokens;
  }
};

// Reads both header families; `now_wall_ms` turns Anthropic's reset times
// into durations. Garbage values are ignored.
RateLimitSnapshot ParseRateLimitHeaders(const TeacherHeaders& headers,
                                        int64_t now_wall_ms);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_RATELIMIT_HEADERS_H_
