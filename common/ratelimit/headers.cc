#include "common/ratelimit/headers.h"

#include <charconv>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/time/time.h"

namespace distillery {
namespace {

std::optional<int64_t> ParseInt(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < 0) {
    return std::nullopt;
  }
  return v;
}

}  // namespace

std::optional<Duration> ParseResetDuration(std::string_view text) {
  // Go's time.Duration.String(), which absl::ParseDuration reads. A reset is
  // never negative nor infinite, and always has a unit ("0" alone is not
  // what these headers send).
  if (text.empty() ||
      !absl::ascii_isdigit(static_cast<unsigned char>(text[0])) ||
      !absl::ascii_isalpha(static_cast<unsigned char>(text.back()))) {
    return std::nullopt;
  }
  absl::Duration parsed;
  if (!absl::ParseDuration(absl::string_view(text.data(), text.size()),
                           &parsed)) {
    return std::nullopt;
  }
  return absl::ToChronoNanoseconds(parsed);
}

std::optional<int64_t> ParseRfc3339Millis(std::string_view text) {
  absl::Time time;
  // RFC3339_full takes 'T' or 't', fractional seconds and 'Z' or an offset
  // with a colon; fractions below a millisecond round to the nearest.
  if (!absl::ParseTime(absl::RFC3339_full,
                       absl::string_view(text.data(), text.size()), &time,
                       nullptr)) {
    return std::nullopt;
  }
  return absl::ToInt64Milliseconds(
      absl::Floor(time - absl::UnixEpoch() + absl::Microseconds(500),
                  absl::Milliseconds(1)));
}

RateLimitSnapshot ParseRateLimitHeaders(const TeacherHeaders& headers,
                                        int64_t now_wall_ms) {
  RateLimitSnapshot snap;
  auto until = [&](std::string_view v) -> std::optional<Duration> {
    std::optional<int64_t> at = ParseRfc3339Millis(v);
    if (!at) return std::nullopt;
    return std::chrono::milliseconds(std::max<int64_t>(0, *at - now_wall_ms));
  };
  for (const auto& [name, value] : headers) {
    if (name == "x-ratelimit-limit-requests") {
      snap.limit_requests = ParseInt(value);
    } else if (name == "x-ratelimit-remaining-requests") {
      snap.remaining_requests = ParseInt(value);
    } else if (name == "x-ratelimit-reset-requests") {
      snap.reset_requests = ParseResetDuration(value);
    } else if (name == "x-ratelimit-limit-tokens") {
      snap.limit_tokens = ParseInt(value);
    } else if (name == "x-ratelimit-remaining-tokens") {
      snap.remaining_tokens = ParseInt(value);
    } else if (name == "x-ratelimit-reset-tokens") {
      snap.reset_tokens = ParseResetDuration(value);
    } else if (name == "anthropic-ratelimit-requests-limit") {
      snap.limit_requests = ParseInt(value);
    } else if (name == "anthropic-ratelimit-requests-remaining") {
      snap.remaining_requests = ParseInt(value);
    } else if (name == "anthropic-ratelimit-requests-reset") {
      snap.reset_requests = until(value);
    } else if (name == "anthropic-ratelimit-tokens-limit") {
      snap.limit_tokens = ParseInt(value);
    } else if (name == "anthropic-ratelimit-tokens-remaining") {
      snap.remaining_tokens = ParseInt(value);
    } else if (name == "anthropic-ratelimit-tokens-reset") {
      snap.reset_tokens = until(value);
    }
  }
  return snap;
}

}  // namespace distillery
