#include "common/ratelimit/aimd.h"

#include <algorithm>
#include <chrono>

#include "common/base/clock.h"
#include "gtest/gtest.h"

namespace distillery {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(AimdLimitTest, ConfiguredStartsAtTheConfiguredLimit) {
  FakeClock clock;
  AimdLimit limit(clock, 1000, 50);
  EXPECT_EQ(limit.effective(), 1000);
  EXPECT_EQ(limit.ceiling(), 1000);
  EXPECT_DOUBLE_EQ(limit.configured(), 1000);
  EXPECT_FALSE(limit.slow_start());
  EXPECT_FALSE(limit.learned());
  clock.Advance(seconds(5));
  limit.OnSuccess();
  EXPECT_EQ(limit.effective(), 1000);  // never above the ceiling
}

TEST(AimdLimitTest, UnknownStartsAtTheGuessInSlowStart) {
  FakeClock clock;
  AimdLimit limit(clock, -1, 50);
  EXPECT_EQ(limit.effective(), 50);
  EXPECT_FALSE(limit.ceiling().has_value());
  EXPECT_DOUBLE_EQ(limit.configured(), 0);
  EXPECT_TRUE(limit.slow_start());
  EXPECT_TRUE(limit.learned());
  limit.OnSuccess();  // no interval has passed
  EXPECT_EQ(limit.effective(), 50);
  clock.Advance(milliseconds(999));
  limit.OnSuccess();
  EXPECT_EQ(limit.effective(), 50);
  clock.Advance(milliseconds(1));
  limit.OnSuccess();
  EXPECT_EQ(limit.effective(), 100);
  limit.OnSuccess();  // once per interval
  EXPECT_EQ(limit.effective(), 100);
  clock.Advance(seconds(1));
  limit.OnSuccess();
  EXPECT_EQ(limit.effective(), 200);
}

TEST(AimdLimitTest, FirstRateLimitInSlowStartDropsToTheObservedRate) {
  FakeClock clock;
  AimdLimit limit(clock, 0, 50);
  for (int i = 0; i < 5; ++i) {
    clock.Advance(seconds(1));
    limit.OnSuccess();
  }
  ASSERT_EQ(limit.effective(), 1600);
  // The cluster achieved 1000 when the 429 came: slow start overshot.
  limit.OnRateLimited(1000);
  EXPECT_NEAR(*limit.effective(), 850, 1e-9);
  EXPECT_FALSE(limit.slow_start());
  EXPECT_TRUE(limit.learned());
  // From now on it grows additively: 1% of the level at the 429.
  clock.Advance(seconds(1));
  limit.OnSuccess();
  EXPECT_NEAR(*limit.effective(), 860, 1e-9);
}

TEST(AimdLimitTest, ObservedRateAboveTheLevelDoesNotRaiseIt) {
  FakeClock clock;
  AimdLimit limit(clock, 0, 100);
  limit.OnRateLimited(5000);
  EXPECT_NEAR(*limit.effective(), 85, 1e-9);
}

TEST(AimdLimitTest, DecreaseIsMultiplicativeWithCooldown) {
  FakeClock clock;
  AimdLimit limit(clock, 1000, 50);
  limit.OnRateLimited(0);
  EXPECT_NEAR(*limit.effective(), 850, 1e-9);
  // The same overload produces many 429s: they do not decrease again.
  limit.OnRateLimited(0);
  limit.OnRateLimited(0);
  EXPECT_NEAR(*limit.effective(), 850, 1e-9);
  clock.Advance(milliseconds(1999));
  limit.OnRateLimited(0);
  EXPECT_NEAR(*limit.effective(), 850, 1e-9);
  clock.Advance(milliseconds(1));
  limit.OnRateLimited(0);
  EXPECT_NEAR(*limit.effective(), 722.5, 1e-9);
}

TEST(AimdLimitTest, AdditiveIncreasePerIntervalUpToTheCeiling) {
  FakeClock clock;
  AimdLimit limit(clock, 1000, 50);
  limit.OnRateLimited(0);
  ASSERT_NEAR(*limit.effective(), 850, 1e-9);
  limit.OnSuccess();  // the decrease restarted the interval
  EXPECT_NEAR(*limit.effective(), 850, 1e-9);
  clock.Advance(milliseconds(500));
  limit.OnSuccess();
  EXPECT_NEAR(*limit.effective(), 850, 1e-9);
  clock.Advance(milliseconds(500));
  limit.OnSuccess();
  EXPECT_NEAR(*limit.effective(), 860, 1e-9);  // + 1% of the ceiling
  for (int i = 0; i < 100; ++i) {
    clock.Advance(seconds(1));
    limit.OnSuccess();
  }
  EXPECT_NEAR(*limit.effective(), 1000, 1e-9);
}

TEST(AimdLimitTest, NeverBelowTheFloor) {
  FakeClock clock;
  AimdLimit limit(clock, 1000, 50);
  for (int i = 0; i < 100; ++i) {
    limit.OnRateLimited(0);
    clock.Advance(seconds(2));
  }
  EXPECT_NEAR(*limit.effective(), 20, 1e-9);  // 2% of the ceiling
}

TEST(AimdLimitTest, AnnouncedLimitStartsAnUnknownLimitThere) {
  FakeClock clock;
  AimdLimit limit(clock, 0, 50);
  limit.OnAnnounced(600);
  EXPECT_EQ(limit.effective(), 600);
  EXPECT_EQ(limit.ceiling(), 600);
  EXPECT_FALSE(limit.slow_start());
  EXPECT_FALSE(limit.learned());
  for (int i = 0; i < 10; ++i) {
    clock.Advance(seconds(1));
    limit.OnSuccess();
  }
  EXPECT_EQ(limit.effective(), 600);  // capped, no more doubling
}

TEST(AimdLimitTest, AnnouncedLimitCapsAConfiguredOne) {
  FakeClock clock;
  AimdLimit limit(clock, 1000, 50);
  limit.OnAnnounced(600);
  EXPECT_EQ(limit.ceiling(), 600);
  EXPECT_EQ(limit.effective(), 600);
  limit.OnRateLimited(0);
  EXPECT_NEAR(*limit.effective(), 510, 1e-9);
  for (int i = 0; i < 100; ++i) {
    clock.Advance(seconds(1));
    limit.OnSuccess();
  }
  EXPECT_NEAR(*limit.effective(), 600, 1e-9);
}

TEST(AimdLimitTest, AnnouncedAboveConfiguredDoesNotRaiseIt) {
  FakeClock clock;
  AimdLimit limit(clock, 1000, 50);
  limit.OnAnnounced(5000);
  EXPECT_EQ(limit.ceiling(), 1000);
  EXPECT_EQ(limit.effective(), 1000);
}

TEST(AimdLimitTest, AnnouncedAfterA429DoesNotJumpUp) {
  FakeClock clock;
  AimdLimit limit(clock, 0, 1000);
  limit.OnRateLimited(0);
  ASSERT_NEAR(*limit.effective(), 850, 1e-9);
  limit.OnAnnounced(5000);
  EXPECT_NEAR(*limit.effective(), 850, 1e-9);
  EXPECT_EQ(limit.ceiling(), 5000);
  limit.OnAnnounced(500);  // a lower announcement caps at once
  EXPECT_NEAR(*limit.effective(), 500, 1e-9);
}

TEST(AimdLimitTest, NonPositiveAnnouncementIgnored) {
  FakeClock clock;
  AimdLimit limit(clock, 0, 50);
  limit.OnAnnounced(0);
  limit.OnAnnounced(-5);
  EXPECT_TRUE(limit.slow_start());
  EXPECT_EQ(limit.effective(), 50);
}

// A discrete simulation: a teacher whose true limit is `true_limit` per
// window, and a cluster that sends at the effective limit each interval.
// Over the limit, the excess is answered with 429s (observed at the rate
// sent, as the coordinator measures it: answered + rate limited).
struct SimResult {
  double in_band = 0;      // share of measured intervals in [0.8L, L]
  double utilisation = 0;  // accepted / L, averaged over all intervals
  double min_after_warmup = 1e300;
  double max_after_warmup = 0;
};

SimResult Simulate(FakeClock& clock, AimdLimit& limit, double true_limit,
                   int intervals, int warmup) {
  SimResult r;
  int measured = 0;
  for (int i = 0; i < intervals; ++i) {
    const double sent = *limit.effective();
    const double accepted = std::min(sent, true_limit);
    r.utilisation += accepted / true_limit;
    if (i >= warmup) {
      ++measured;
      if (sent >= 0.8 * true_limit && sent <= true_limit) r.in_band += 1;
      r.min_after_warmup = std::min(r.min_after_warmup, sent);
      r.max_after_warmup = std::max(r.max_after_warmup, sent);
    }
    clock.Advance(seconds(1));
    if (sent > true_limit) {
      limit.OnRateLimited(sent);
    } else {
      limit.OnSuccess();
    }
  }
  r.in_band /= measured;
  r.utilisation /= intervals;
  return r;
}

constexpr double kTrueLimit = 10'000;

TEST(AimdConvergenceTest, FromAConfiguredLimitTooHigh) {
  FakeClock clock;
  AimdLimit limit(clock, 2 * kTrueLimit, 0);
  const SimResult r = Simulate(clock, limit, kTrueLimit, 600, 30);
  EXPECT_GE(r.in_band, 0.8) << "min " << r.min_after_warmup << " max "
                            << r.max_after_warmup;
  EXPECT_GE(r.utilisation, 0.85);
  EXPECT_GE(r.min_after_warmup, 0.8 * kTrueLimit);
  EXPECT_LE(r.max_after_warmup, 1.05 * kTrueLimit);
}

TEST(AimdConvergenceTest, FromUnknownWithSlowStart) {
  FakeClock clock;
  AimdLimit limit(clock, -1, 300);
  const SimResult r = Simulate(clock, limit, kTrueLimit, 600, 30);
  EXPECT_GE(r.in_band, 0.8) << "min " << r.min_after_warmup << " max "
                            << r.max_after_warmup;
  EXPECT_GE(r.utilisation, 0.85);
  EXPECT_GE(r.min_after_warmup, 0.8 * kTrueLimit);
  EXPECT_LE(r.max_after_warmup, 1.05 * kTrueLimit);
}

TEST(AimdConvergenceTest, FromUnknownWithAnUnluckyOvershoot) {
  // Slow start lands just below L, then doubles to almost 2L.
  FakeClock clock;
  AimdLimit limit(clock, -1, kTrueLimit / 16 * 0.99);
  const SimResult r = Simulate(clock, limit, kTrueLimit, 600, 40);
  EXPECT_GE(r.in_band, 0.8) << "min " << r.min_after_warmup << " max "
                            << r.max_after_warmup;
  EXPECT_GE(r.utilisation, 0.85);
}

TEST(AimdConvergenceTest, FromAConfiguredLimitExactlyRight) {
  FakeClock clock;
  AimdLimit limit(clock, kTrueLimit, 0);
  const SimResult r = Simulate(clock, limit, kTrueLimit, 300, 0);
  EXPECT_DOUBLE_EQ(r.in_band, 1.0);
  EXPECT_DOUBLE_EQ(r.utilisation, 1.0);
}

}  // namespace
}  // namespace distillery
