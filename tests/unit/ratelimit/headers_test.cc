#include "common/ratelimit/headers.h"

#include <chrono>
#include <optional>

#include "gtest/gtest.h"

namespace distillery {
namespace {

// Milliseconds, or -1 when the text did not parse.
double Ms(std::optional<Duration> d) {
  if (!d) return -1;
  return std::chrono::duration<double, std::milli>(*d).count();
}

TEST(ParseResetDurationTest, OpenAiFormats) {
  EXPECT_NEAR(Ms(ParseResetDuration("6m0s")), 360'000, 1e-3);
  EXPECT_NEAR(Ms(ParseResetDuration("20ms")), 20, 1e-3);
  EXPECT_NEAR(Ms(ParseResetDuration("1.5s")), 1'500, 1e-3);
  EXPECT_NEAR(Ms(ParseResetDuration("4m12.172s")), 252'172, 1e-3);
  EXPECT_NEAR(Ms(ParseResetDuration("23h47m36.648s")), 85'656'648, 1e-3);
  EXPECT_NEAR(Ms(ParseResetDuration("1s")), 1'000, 1e-3);
  EXPECT_NEAR(Ms(ParseResetDuration("0s")), 0, 1e-3);
  EXPECT_NEAR(Ms(ParseResetDuration("2h")), 7'200'000, 1e-3);
  EXPECT_NEAR(Ms(ParseResetDuration("1m30s")), 90'000, 1e-3);
  EXPECT_NEAR(Ms(ParseResetDuration("0.5ms")), 0.5, 1e-3);
  // Go's smaller units, which absl::ParseDuration reads too.
  EXPECT_NEAR(Ms(ParseResetDuration("1500us")), 1.5, 1e-3);
  EXPECT_NEAR(Ms(ParseResetDuration("2000000ns")), 2, 1e-3);
}

TEST(ParseResetDurationTest, RejectsGarbage) {
  for (const char* bad : {"", "abc", "0", "5", "inf", "-inf", "+1s", "5x", "s", "ms", "-1s", "1.2.3s",
                          ".s", "1s ", " 1s", "1e3s", "1s5", "m5s", "5sms",
                          "1 s"}) {
    EXPECT_FALSE(ParseResetDuration(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(ParseRfc3339MillisTest, Utc) {
  EXPECT_EQ(ParseRfc3339Millis("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(ParseRfc3339Millis("2025-08-21T12:40:59Z"), 1'755'780'059'000);
  EXPECT_EQ(ParseRfc3339Millis("2025-08-21t12:40:59z"), 1'755'780'059'000);
  EXPECT_EQ(ParseRfc3339Millis("2024-02-29T23:59:59Z"), 1'709'251'199'000);
}

TEST(ParseRfc3339MillisTest, FractionalSeconds) {
  EXPECT_EQ(ParseRfc3339Millis("2025-08-21T12:40:59.5Z"), 1'755'780'059'500);
  EXPECT_EQ(ParseRfc3339Millis("2025-08-21T12:40:59.123Z"),
            1'755'780'059'123);
  EXPECT_EQ(ParseRfc3339Millis("2025-08-21T12:40:59.123456789Z"),
            1'755'780'059'123);
  EXPECT_EQ(ParseRfc3339Millis("2025-08-21T12:40:59.9996Z"),
            1'755'780'060'000);
}

TEST(ParseRfc3339MillisTest, Offsets) {
  EXPECT_EQ(ParseRfc3339Millis("2025-08-21T14:40:59+02:00"),
            1'755'780'059'000);
  EXPECT_EQ(ParseRfc3339Millis("2025-08-21T07:10:59-05:30"),
            1'755'780'059'000);
  EXPECT_EQ(ParseRfc3339Millis("2025-08-21T12:40:59.250+00:00"),
            1'755'780'059'250);
  // absl::ParseTime's %Ez also reads an offset without its colon, which the
  // hand-written parser refused; it is unambiguous, so it is kept.
  EXPECT_EQ(ParseRfc3339Millis("2025-08-21T14:40:59+0200"),
            1'755'780'059'000);
}

TEST(ParseRfc3339MillisTest, RejectsGarbage) {
  for (const char* bad :
       {"", "not a date at all!!", "2025-08-21T12:40:59",
        "2025-08-21T12:40:59.Z",
        "2025-08-21T12:40:59Zjunk", "2025-13-01T00:00:00Z",
        "2025-00-01T00:00:00Z", "2025-08-32T00:00:00Z",
        "2025-08-21T24:00:00Z", "2025-08-21T12:60:00Z",
        "2025/08/21T12:40:59Z", "2025-08-21X12:40:59Z",
        "20x5-08-21T12:40:59Z", "2025-08-21T12:40:59+02:00x"}) {
    EXPECT_FALSE(ParseRfc3339Millis(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(ParseRateLimitHeadersTest, OpenAiFamily) {
  const TeacherHeaders headers = {
      {"x-ratelimit-limit-requests", "500"},
      {"x-ratelimit-remaining-requests", "499"},
      {"x-ratelimit-reset-requests", "120ms"},
      {"x-ratelimit-limit-tokens", "30000"},
      {"x-ratelimit-remaining-tokens", "29000"},
      {"x-ratelimit-reset-tokens", "6m0s"},
      {"content-type", "application/json"},
  };
  const RateLimitSnapshot s = ParseRateLimitHeaders(headers, 0);
  EXPECT_TRUE(s.any());
  EXPECT_EQ(s.limit_requests, 500);
  EXPECT_EQ(s.remaining_requests, 499);
  EXPECT_NEAR(Ms(s.reset_requests), 120, 1e-3);
  EXPECT_EQ(s.limit_tokens, 30000);
  EXPECT_EQ(s.remaining_tokens, 29000);
  EXPECT_NEAR(Ms(s.reset_tokens), 360'000, 1e-3);
}

TEST(ParseRateLimitHeadersTest, AnthropicFamilyResetsRelativeToNow) {
  const int64_t now = *ParseRfc3339Millis("2025-08-21T12:40:00Z");
  const TeacherHeaders headers = {
      {"anthropic-ratelimit-requests-limit", "50"},
      {"anthropic-ratelimit-requests-remaining", "0"},
      {"anthropic-ratelimit-requests-reset", "2025-08-21T12:40:59Z"},
      {"anthropic-ratelimit-tokens-limit", "40000"},
      {"anthropic-ratelimit-tokens-remaining", "39000"},
      // Already passed: zero, not negative.
      {"anthropic-ratelimit-tokens-reset", "2025-08-21T12:39:00Z"},
  };
  const RateLimitSnapshot s = ParseRateLimitHeaders(headers, now);
  EXPECT_EQ(s.limit_requests, 50);
  EXPECT_EQ(s.remaining_requests, 0);
  EXPECT_NEAR(Ms(s.reset_requests), 59'000, 1e-3);
  EXPECT_EQ(s.limit_tokens, 40000);
  EXPECT_EQ(s.remaining_tokens, 39000);
  EXPECT_NEAR(Ms(s.reset_tokens), 0, 1e-3);
}

TEST(ParseRateLimitHeadersTest, AnthropicResetWithOffsetAndFraction) {
  const int64_t now = *ParseRfc3339Millis("2025-08-21T12:40:00Z");
  const RateLimitSnapshot s = ParseRateLimitHeaders(
      {{"anthropic-ratelimit-requests-reset", "2025-08-21T14:40:01.5+02:00"}},
      now);
  EXPECT_NEAR(Ms(s.reset_requests), 1'500, 1e-3);
}

TEST(ParseRateLimitHeadersTest, GarbageIsIgnored) {
  const RateLimitSnapshot s = ParseRateLimitHeaders(
      {{"x-ratelimit-limit-requests", "lots"},
       {"x-ratelimit-remaining-requests", "-3"},
       {"x-ratelimit-reset-requests", "soon"},
       {"x-ratelimit-limit-tokens", "12abc"},
       {"x-ratelimit-remaining-tokens", ""},
       {"anthropic-ratelimit-tokens-reset", "tomorrow"},
       {"retry-after", "5"}},
      0);
  EXPECT_FALSE(s.any());
  EXPECT_FALSE(s.limit_requests);
  EXPECT_FALSE(s.remaining_requests);
  EXPECT_FALSE(s.reset_requests);
  EXPECT_FALSE(s.limit_tokens);
  EXPECT_FALSE(s.remaining_tokens);
  EXPECT_FALSE(s.reset_tokens);
}

TEST(ParseRateLimitHeadersTest, NoHeadersNothingKnown) {
  EXPECT_FALSE(ParseRateLimitHeaders({}, 0).any());
  EXPECT_FALSE(
      ParseRateLimitHeaders({{"server", "nginx"}}, 0).any());
}

}  // namespace
}  // namespace distillery
