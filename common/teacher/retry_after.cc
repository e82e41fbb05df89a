#include "common/teacher/retry_after.h"

#include <charconv>
#include <cmath>
#include <string>

#include "absl/time/time.h"
#include "common/teacher/text_util.h"

namespace distillery {
namespace {

std::string_view Trim(std::string_view s) { return text::StripWhitespace(s); }

// A non-negative finite number filling all of `s`, or nullopt.
std::optional<double> ParseNonNegativeNumber(std::string_view s) {
  s = Trim(s);
  if (s.empty()) return std::nullopt;
  double value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value,
                                   std::chars_format::general);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  if (!std::isfinite(value) || value < 0) return std::nullopt;
  return value;
}

Duration FromSeconds(double seconds) {
  const double max_seconds =
      std::chrono::duration<double>(kMaxRetryAfter).count();
  if (seconds >= max_seconds) return kMaxRetryAfter;
  return Duration(static_cast<int64_t>(std::llround(seconds * 1e9)));
}

// The three forms RFC 9110 asks recipients to accept. A space in a format
// matches any run of spaces, so asctime's space-padded day reads too.
constexpr const char* kHttpDateFormats[] = {
    "%a, %d %b %Y %H:%M:%S GMT",  // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    "%A, %d-%b-%y %H:%M:%S GMT",  // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    "%a %b %e %H:%M:%S %Y",       // asctime: Sun Nov  6 08:49:37 1994
};

}  // namespace

std::optional<int64_t> ParseHttpDate(std::string_view value) {
  const std::string text(Trim(value));
  for (const char* format : kHttpDateFormats) {
    absl::Time time;
    // ParseTime refuses out-of-range fields (32 Oct, 29 Feb 2023, 25:00).
    if (absl::ParseTime(format, text, absl::UTCTimeZone(), &time, nullptr)) {
      return absl::ToUnixMillis(time);
    }
  }
  return std::nullopt;
}

std::optional<Duration> ParseRetryAfterMs(std::string_view value) {
  std::optional<double> ms = ParseNonNegativeNumber(value);
  if (!ms) return std::nullopt;
  return FromSeconds(*ms / 1000.0);
}

std::optional<Duration> ParseRetryAfterSeconds(std::string_view value,
                                               int64_t now_wall_millis) {
  value = Trim(value);
  if (value.empty()) return std::nullopt;
  if (std::optional<double> seconds = ParseNonNegativeNumber(value)) {
    return FromSeconds(*seconds);
  }
  std::optional<int64_t> date_millis = ParseHttpDate(value);
  if (!date_millis) return std::nullopt;
  const int64_t wait_millis = *date_millis - now_wall_millis;
  if (wait_millis <= 0) return Duration(0);
  return FromSeconds(static_cast<double>(wait_millis) / 1000.0);
}

std::optional<Duration> ParseRetryAfter(std::string_view retry_after_ms,
                                        std::string_view retry_after,
                                        int64_t now_wall_millis) {
  if (std::optional<Duration> d = ParseRetryAfterMs(retry_after_ms)) return d;
  return ParseRetryAfterSeconds(retry_after, now_wall_millis);
}

}  // namespace distillery
