// Retry-After parsing: how long a teacher asked us to wait before the next
// attempt. Shared by every HTTP teacher adapter, since OpenAI, Anthropic and
// the OpenAI-compatible servers all use the same two headers.
#ifndef DISTILLERY_COMMON_TEACHER_RETRY_AFTER_H_
#define DISTILLERY_COMMON_TEACHER_RETRY_AFTER_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "common/base/clock.h"

namespace distillery {

// Longest wait any of these functions returns. Larger values are clamped, so
// that a hostile or broken header cannot overflow Duration; whether to honour
// a long wait at all is the retry policy's decision.
inline constexpr Duration kMaxRetryAfter = std::chrono::hours(24);

// Parses `retry-after-ms`: a non-negative number of milliseconds, integer or
// float. Returns nullopt for an empty, negative, non-finite or malformed
// value.
std::optional<Duration> ParseRetryAfterMs(std::string_view value);

// Parses `retry-after`: non-negative seconds (integer or float), or an
// HTTP-date (IMF-fixdate, RFC 850 or asctime form) taken relative to
// `now_wall_millis` (milliseconds since the Unix epoch). A date in the past
// yields zero. Returns nullopt for anything else.
std::optional<Duration> ParseRetryAfterSeconds(std::string_view value,
                                               int64_t now_wall_millis);

// Both headers together, as the official OpenAI client reads them:
// `retry-after-ms` first, then `retry-after`. Either may be "" (absent).
std::optional<Duration> ParseRetryAfter(std::string_view retry_after_ms,
                                        std::string_view retry_after,
                                        int64_t now_wall_millis);

// Parses an HTTP-date (RFC 9110 section 5.6.7) into milliseconds since the
// Unix epoch, or nullopt when it is not one.
std::optional<int64_t> ParseHttpDate(std::string_view value);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_TEACHER_RETRY_AFTER_H_
