#include "services/worker/teacher_limiter.h"

#include <chrono>
#include <string>

#include "absl/status/status.h"
#include "common/base/clock.h"
#include "gtest/gtest.h"

namespace distillery {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

double Ms(Duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

TeacherProfile Profile(int64_t rpm, int64_t tpm, int max_concurrency = 0) {
  TeacherProfile p;
  p.name = "t";
  p.rpm = rpm;
  p.tpm = tpm;
  p.max_concurrency = max_concurrency;
  p.limit_window_s = 60;
  return p;
}

// A share of `rpm` requests and `tpm` tokens per 60 s window; 0 leaves the
// rate unlimited.
v1::BudgetShare Share(double rpm, double tpm, int64_t concurrency = 0,
                      int64_t expires_ms = 60'000) {
  v1::BudgetShare s;
  s.set_teacher("t");
  s.set_requests_per_window(rpm);
  s.set_tokens_per_window(tpm);
  s.set_requests_limited(rpm > 0);
  s.set_tokens_limited(tpm > 0);
  s.set_max_concurrency(concurrency);
  s.set_limited(rpm > 0 || tpm > 0 || concurrency > 0);
  s.set_window_ms(60'000);
  s.set_expires_in_ms(expires_ms);
  return s;
}

TeacherResult Ok(int64_t prompt, int64_t completion,
                 TeacherHeaders headers = {}) {
  TeacherResult r;
  r.status = absl::OkStatus();
  r.answer.usage.prompt_tokens = prompt;
  r.answer.usage.completion_tokens = completion;
  r.http_status = 200;
  r.rate_limit_headers = std::move(headers);
  return r;
}

TeacherResult RateLimited(TeacherHeaders headers = {},
                          std::optional<Duration> retry_after = {}) {
  TeacherResult r;
  r.status = absl::ResourceExhaustedError("429 rate_limit_exceeded");
  r.kind = FailureKind::kRateLimited;
  r.http_status = 429;
  r.retry_after = retry_after;
  r.rate_limit_headers = std::move(headers);
  return r;
}

TEST(TeacherLimiterTest, LimitedProfileWaitsForAShare) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(600, 60'000), 8);
  EXPECT_TRUE(limiter.NeedsShare());
  EXPECT_FALSE(limiter.HasShare());
  EXPECT_FALSE(limiter.TryAcquire(10));
  EXPECT_EQ(limiter.TimeUntilReady(10), Duration::max());
  clock.Advance(seconds(10));
  EXPECT_FALSE(limiter.TryAcquire(10));
}

TEST(TeacherLimiterTest, ShareLimitsByRequestRate) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(600, 600'000), 8);
  limiter.ApplyShare(Share(600, 600'000));  // 10 requests/s, 10k tokens/s
  EXPECT_TRUE(limiter.HasShare());
  EXPECT_DOUBLE_EQ(limiter.RequestsPerSecond(), 10);
  // Buckets start empty: the first request waits a tenth of a second.
  EXPECT_FALSE(limiter.TryAcquire(10));
  EXPECT_NEAR(Ms(limiter.TimeUntilReady(10)), 100, 1e-3);
  clock.Advance(milliseconds(100));
  EXPECT_TRUE(limiter.TryAcquire(10));
  EXPECT_FALSE(limiter.TryAcquire(10));  // a burst of one request
  // Over 10 s in steps of 50 ms, about 100 requests pass.
  int passed = 0;
  for (int i = 0; i < 200; ++i) {
    clock.Advance(milliseconds(50));
    if (limiter.TryAcquire(10)) ++passed;
  }
  EXPECT_NEAR(passed, 100, 1);
}

// The same share polled every 10 ms lets ~180 requests through in 10 s
// instead of ~100. Ten refills of 0.1 leave the request bucket at
// 0.9999999999999999; TokenBucket::TimeUntil(1) truncates the remaining
// 1e-17 s to 0 ns ("ready"), TryAcquire trusts it and returns true although
// the TryTake(1) it then calls (result ignored) fails, so the request is
// sent for free.
TEST(TeacherLimiterTest, FloatingRemainderLetsNothingThroughForFree) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(600, 600'000), 8);
  limiter.ApplyShare(Share(600, 600'000));  // 10 requests/s
  int passed = 0;
  for (int i = 0; i < 1000; ++i) {
    clock.Advance(milliseconds(10));
    if (limiter.TryAcquire(10)) ++passed;
  }
  EXPECT_NEAR(passed, 100, 1);
}

TEST(TeacherLimiterTest, ShareLimitsByTokenRate) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(60'000, 60'000), 8);
  limiter.ApplyShare(Share(60'000, 60'000));  // 1000 requests/s, 1000 tok/s
  clock.Advance(milliseconds(100));  // buckets full: 100 requests, 100 tokens
  EXPECT_TRUE(limiter.TryAcquire(60));
  EXPECT_FALSE(limiter.TryAcquire(60));  // 40 tokens left
  EXPECT_NEAR(Ms(limiter.TimeUntilReady(60)), 20, 1e-3);
  clock.Advance(milliseconds(20));
  EXPECT_TRUE(limiter.TryAcquire(60));
  // Over 10 s of 200-token requests: about 1000 tokens/s.
  int passed = 0;
  for (int i = 0; i < 1000; ++i) {
    clock.Advance(milliseconds(10));
    if (limiter.TryAcquire(200)) ++passed;
  }
  EXPECT_NEAR(passed, 50, 1);
}

TEST(TeacherLimiterTest, FailedAcquireReservesNothing) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(60'000, 60'000), 8);
  limiter.ApplyShare(Share(60'000, 60'000));
  clock.Advance(milliseconds(100));
  ASSERT_TRUE(limiter.TryAcquire(60));
  // The token bucket refuses; the request bucket must keep its token.
  for (int i = 0; i < 200; ++i) EXPECT_FALSE(limiter.TryAcquire(60));
  EXPECT_TRUE(limiter.TryAcquire(40));
}

TEST(TeacherLimiterTest, OversizeRequestPassesWhenTheBucketIsFull) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(600, 6'000), 8);
  limiter.ApplyShare(Share(600, 6'000));  // tokens: 100/s, burst 10
  EXPECT_NEAR(Ms(limiter.TimeUntilReady(5000)), 100, 1e-3);
  clock.Advance(milliseconds(100));
  EXPECT_TRUE(limiter.TryAcquire(5000));  // never waits forever
  // and pays afterwards: 4990 tokens of debt at 100/s.
  clock.Advance(milliseconds(100));
  EXPECT_FALSE(limiter.TryAcquire(1));
  EXPECT_GT(Ms(limiter.TimeUntilReady(1)), 40'000);
}

TEST(TeacherLimiterTest, UsageAboveTheReservationPutsTokensInDebt) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(60'000, 60'000), 8);
  limiter.ApplyShare(Share(60'000, 60'000));  // 1000 tokens/s, burst 100
  clock.Advance(milliseconds(100));
  ASSERT_TRUE(limiter.TryAcquire(100));
  limiter.OnResult(Ok(200, 100), 100);  // used 300: 200 more than reserved
  EXPECT_FALSE(limiter.TryAcquire(1));
  EXPECT_NEAR(Ms(limiter.TimeUntilReady(100)), 300, 1e-3);
  clock.Advance(milliseconds(299));
  EXPECT_FALSE(limiter.TryAcquire(100));
  clock.Advance(milliseconds(2));
  EXPECT_TRUE(limiter.TryAcquire(100));
}

TEST(TeacherLimiterTest, UsageBelowTheReservationIsRefunded) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(60'000, 60'000), 8);
  limiter.ApplyShare(Share(60'000, 60'000));
  clock.Advance(milliseconds(100));
  ASSERT_TRUE(limiter.TryAcquire(100));
  EXPECT_FALSE(limiter.TryAcquire(60));
  limiter.OnResult(Ok(30, 10), 100);  // used 40: 60 back
  EXPECT_TRUE(limiter.TryAcquire(60));
  EXPECT_FALSE(limiter.TryAcquire(1));
}

TEST(TeacherLimiterTest, FailureWithoutUsageKeepsTheReservation) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(60'000, 60'000), 8);
  limiter.ApplyShare(Share(60'000, 60'000));
  clock.Advance(milliseconds(100));
  ASSERT_TRUE(limiter.TryAcquire(100));
  TeacherResult r;
  r.status = absl::UnavailableError("reset");
  r.kind = FailureKind::kRetryable;
  limiter.OnResult(r, 100);
  EXPECT_FALSE(limiter.TryAcquire(50));
}

TEST(TeacherLimiterTest, ExpiredShareBlocks) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(600, 0), 8);
  limiter.ApplyShare(Share(600, 0, 0, /*expires_ms=*/6'000));
  clock.Advance(milliseconds(5'999));
  EXPECT_NE(limiter.TimeUntilReady(1), Duration::max());
  EXPECT_TRUE(limiter.TryAcquire(1));
  clock.Advance(milliseconds(1));
  EXPECT_FALSE(limiter.TryAcquire(1));
  EXPECT_EQ(limiter.TimeUntilReady(1), Duration::max());
  limiter.ApplyShare(Share(600, 0, 0, 6'000));  // renewed
  clock.Advance(milliseconds(100));
  EXPECT_TRUE(limiter.TryAcquire(1));
}

TEST(TeacherLimiterTest, PausedShareBlocks) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(600, 0), 8);
  v1::BudgetShare s = Share(600, 0);
  s.set_paused(true);
  s.set_pause_reason("insufficient_quota");
  limiter.ApplyShare(s);
  clock.Advance(seconds(1));
  EXPECT_TRUE(limiter.Paused());
  EXPECT_FALSE(limiter.TryAcquire(1));
  EXPECT_EQ(limiter.TimeUntilReady(1), Duration::max());
  s.set_paused(false);
  limiter.ApplyShare(s);
  EXPECT_FALSE(limiter.Paused());
  EXPECT_TRUE(limiter.TryAcquire(1));
}

TEST(TeacherLimiterTest, TeacherDownPausesLocally) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(600, 0), 8);
  limiter.ApplyShare(Share(600, 0));
  clock.Advance(seconds(1));
  TeacherResult r;
  r.status = absl::PermissionDeniedError("401");
  r.kind = FailureKind::kTeacherDown;
  limiter.OnResult(r, 10);
  EXPECT_TRUE(limiter.Paused());
  EXPECT_FALSE(limiter.TryAcquire(1));
}

TEST(TeacherLimiterTest, NoLimitProfileNeverBlocks) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(0, 0, 0), 8);
  EXPECT_FALSE(limiter.NeedsShare());
  EXPECT_EQ(limiter.ConcurrencyCap(), 8);
  EXPECT_DOUBLE_EQ(limiter.RequestsPerSecond(), 0);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(limiter.TimeUntilReady(100'000), Duration(0));
    ASSERT_TRUE(limiter.TryAcquire(100'000));
    limiter.OnResult(Ok(100'000, 100'000), 100'000);
  }
  // A share saying "no limit" changes nothing, even long after it expired.
  limiter.ApplyShare(Share(0, 0, 0, 6'000));
  clock.Advance(std::chrono::hours(1));
  EXPECT_TRUE(limiter.TryAcquire(100'000));
  EXPECT_EQ(limiter.ConcurrencyCap(), 8);
}

TEST(TeacherLimiterTest, ConcurrencyOnlyShare) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(0, 0, 4), 8);
  EXPECT_TRUE(limiter.NeedsShare());
  EXPECT_EQ(limiter.ConcurrencyCap(), 0);  // no share yet: hold back
  EXPECT_FALSE(limiter.TryAcquire(1));
  limiter.ApplyShare(Share(0, 0, 2));
  EXPECT_EQ(limiter.ConcurrencyCap(), 2);
  EXPECT_TRUE(limiter.TryAcquire(1'000'000));  // rates are not limited
  EXPECT_DOUBLE_EQ(limiter.RequestsPerSecond(), 0);
  limiter.ApplyShare(Share(0, 0, 20));
  EXPECT_EQ(limiter.ConcurrencyCap(), 8);  // the local cap
  limiter.ApplyShare(Share(0, 0, 0));
  EXPECT_EQ(limiter.ConcurrencyCap(), 0);  // granted none
}

TEST(TeacherLimiterTest, LimitGrantedZeroWaits) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(600, 0), 8);
  v1::BudgetShare s = Share(600, 0);
  s.set_requests_per_window(0);  // all taken by other workers
  limiter.ApplyShare(s);
  clock.Advance(seconds(10));
  EXPECT_FALSE(limiter.TryAcquire(1));
  EXPECT_EQ(limiter.TimeUntilReady(1), Duration::max());
}

TEST(TeacherLimiterTest, RetryAfterBlocksForThatLong) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(600, 0), 8);
  limiter.ApplyShare(Share(600, 0));
  clock.Advance(milliseconds(100));
  ASSERT_TRUE(limiter.TryAcquire(1));
  limiter.OnResult(RateLimited({}, seconds(5)), 1);
  EXPECT_NEAR(Ms(limiter.TimeUntilReady(1)), 5'100, 1e-3);
  clock.Advance(milliseconds(5'000));
  EXPECT_FALSE(limiter.TryAcquire(1));
  clock.Advance(milliseconds(100));
  EXPECT_TRUE(limiter.TryAcquire(1));
}

TEST(TeacherLimiterTest, RetryAfterIsCappedAtTwoMinutes) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(600, 0), 8);
  limiter.ApplyShare(Share(600, 0, 0, /*expires_ms=*/3'600'000));
  limiter.OnResult(RateLimited({}, std::chrono::hours(1)), 1);
  EXPECT_NEAR(Ms(limiter.TimeUntilReady(1)), 120'100, 1e-3);
}

TEST(TeacherLimiterTest, RemainingRequestsZeroBlocksUntilReset) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(600, 0), 8);
  limiter.ApplyShare(Share(600, 0));
  clock.Advance(milliseconds(100));
  ASSERT_TRUE(limiter.TryAcquire(1));
  // A success that spent the window.
  limiter.OnResult(Ok(10, 10, {{"x-ratelimit-remaining-requests", "0"},
                               {"x-ratelimit-reset-requests", "2s"}}),
                   20);
  EXPECT_NEAR(Ms(limiter.TimeUntilReady(1)), 2'100, 1e-3);
  clock.Advance(milliseconds(2'050));
  EXPECT_FALSE(limiter.TryAcquire(1));
  clock.Advance(milliseconds(50));
  EXPECT_TRUE(limiter.TryAcquire(1));
}

TEST(TeacherLimiterTest, RemainingWithoutResetOrNonZeroDoesNotBlock) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(600, 0), 8);
  limiter.ApplyShare(Share(600, 0));
  limiter.OnResult(Ok(1, 1, {{"x-ratelimit-remaining-requests", "0"}}), 2);
  limiter.OnResult(Ok(1, 1, {{"x-ratelimit-remaining-requests", "3"},
                             {"x-ratelimit-reset-requests", "30s"}}),
                   2);
  clock.Advance(milliseconds(100));
  EXPECT_TRUE(limiter.TryAcquire(1));
}

TEST(TeacherLimiterTest, AnthropicRemainingZeroBlocksUntilTheResetTime) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(600, 0), 8);
  limiter.ApplyShare(Share(600, 0));
  // FakeClock's wall time starts at 2025-06-15T16:06:40Z.
  ASSERT_EQ(clock.WallMillis(), 1'750'003'600'000);
  limiter.OnResult(
      RateLimited({{"anthropic-ratelimit-requests-remaining", "0"},
                   {"anthropic-ratelimit-requests-reset",
                    "2025-06-15T16:06:43Z"}}),
      1);
  EXPECT_NEAR(Ms(limiter.TimeUntilReady(1)), 3'100, 1e-3);
  clock.Advance(milliseconds(3'050));
  EXPECT_FALSE(limiter.TryAcquire(1));
  clock.Advance(milliseconds(50));
  EXPECT_TRUE(limiter.TryAcquire(1));
}

TEST(TeacherLimiterTest, RemainingTokensZeroBlocksTokensUntilReset) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(60'000, 60'000), 8);
  limiter.ApplyShare(Share(60'000, 60'000));
  clock.Advance(milliseconds(100));
  limiter.OnResult(Ok(10, 10, {{"x-ratelimit-remaining-tokens", "0"},
                               {"x-ratelimit-reset-tokens", "1.5s"}}),
                   20);
  EXPECT_NEAR(Ms(limiter.TimeUntilReady(10)), 1'510, 1e-3);
  clock.Advance(milliseconds(1'500));
  EXPECT_FALSE(limiter.TryAcquire(10));
  clock.Advance(milliseconds(10));
  EXPECT_TRUE(limiter.TryAcquire(10));
}

TEST(TeacherLimiterTest, TakeReportCountsAndResets) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(600, 60'000), 8);
  limiter.ApplyShare(Share(600, 60'000));
  limiter.OnResult(Ok(100, 50, {{"x-ratelimit-limit-requests", "500"},
                                {"x-ratelimit-limit-tokens", "90000"}}),
                   150);
  limiter.OnResult(Ok(10, 5), 15);
  // Blamed on tokens: the token window is spent, the request one is not.
  limiter.OnResult(RateLimited({{"x-ratelimit-remaining-tokens", "0"},
                                {"x-ratelimit-remaining-requests", "7"}}),
                   10);
  // No headers: blamed on requests.
  limiter.OnResult(RateLimited(), 10);
  // Both spent: blamed on requests.
  limiter.OnResult(RateLimited({{"x-ratelimit-remaining-tokens", "0"},
                                {"x-ratelimit-remaining-requests", "0"}}),
                   10);
  // Not a rate limit: not counted.
  TeacherResult failed;
  failed.status = absl::UnavailableError("503");
  failed.kind = FailureKind::kRetryable;
  limiter.OnResult(failed, 10);

  v1::TeacherDemand report;
  limiter.TakeReport(7, &report);
  EXPECT_EQ(report.teacher(), "t");
  EXPECT_EQ(report.demand(), 7);
  EXPECT_EQ(report.successes(), 2);
  EXPECT_EQ(report.rate_limited_requests(), 2);
  EXPECT_EQ(report.rate_limited_tokens(), 1);
  EXPECT_EQ(report.announced_rpm(), 500);
  EXPECT_EQ(report.announced_tpm(), 90'000);
  EXPECT_EQ(report.tokens_used(), 165);

  v1::TeacherDemand next;
  limiter.TakeReport(0, &next);
  EXPECT_EQ(next.demand(), 0);
  EXPECT_EQ(next.successes(), 0);
  EXPECT_EQ(next.rate_limited_requests(), 0);
  EXPECT_EQ(next.rate_limited_tokens(), 0);
  EXPECT_EQ(next.tokens_used(), 0);
}

TEST(TeacherLimiterTest, AnthropicAnnouncedLimitsAreReported) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(-1, -1), 8);
  limiter.OnResult(Ok(1, 1, {{"anthropic-ratelimit-requests-limit", "50"},
                             {"anthropic-ratelimit-tokens-limit", "40000"}}),
                   2);
  v1::TeacherDemand report;
  limiter.TakeReport(1, &report);
  EXPECT_EQ(report.announced_rpm(), 50);
  EXPECT_EQ(report.announced_tpm(), 40'000);
}

// A 429's retry-after should hold every request to the teacher (header
// comment of teacher_limiter.h), but it is recorded only in the request
// bucket, which TryAcquire consults only when requests are limited: with
// rpm: 0 and a token limit, the next request goes out at once.
TEST(TeacherLimiterTest, RetryAfterHoldsWhenOnlyTokensAreLimited) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(0, 60'000), 8);
  limiter.ApplyShare(Share(0, 60'000));
  clock.Advance(milliseconds(100));
  ASSERT_TRUE(limiter.TryAcquire(10));
  limiter.OnResult(RateLimited({}, seconds(30)), 10);
  clock.Advance(seconds(1));
  EXPECT_FALSE(limiter.TryAcquire(10));
  EXPECT_GE(limiter.TimeUntilReady(10), seconds(28));
}

// Same with only a concurrency limit (rpm: 0, tpm: 0, max_concurrency > 0).
TEST(TeacherLimiterTest, RetryAfterHoldsWhenOnlyConcurrencyIsLimited) {
  FakeClock clock;
  TeacherLimiter limiter(clock, Profile(0, 0, 4), 8);
  limiter.ApplyShare(Share(0, 0, 4));
  ASSERT_TRUE(limiter.TryAcquire(10));
  limiter.OnResult(RateLimited({}, seconds(30)), 10);
  clock.Advance(seconds(1));
  EXPECT_FALSE(limiter.TryAcquire(10));
}

TEST(EstimateRequestTokensTest, PromptBytesOverFourPlusPerMessagePlusLimit) {
  TeacherRequest r;
  r.messages = {{"system", "abcdefgh"}, {"user", "abc"}};  // 11 bytes
  r.params.max_tokens = 100;
  EXPECT_DOUBLE_EQ(EstimateRequestTokens(r), 3 + 8 + 100);
  r.params.max_tokens = 0;  // the default completion limit
  EXPECT_DOUBLE_EQ(EstimateRequestTokens(r), 3 + 8 + 1024);
  EXPECT_DOUBLE_EQ(EstimateRequestTokens(TeacherRequest{}), 1024);
}

}  // namespace
}  // namespace distillery
