#include "common/ratelimit/aimd.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>

#include "common/base/clock.h"
#include "gtest/gtest.h"

namespace distillery {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(AimdLimitTest, ConfiguredStartsAtTheConfiguredLimit) {
  FakeClock clock;
  AimdLimit limit(clock, 1000);
  EXPECT_EQ(limit.effective(), 1000);
  EXPECT_EQ(limit.ceiling(), 1000);
  EXPECT_DOUBLE_EQ(limit.configured(), 1000);
  EXPECT_FALSE(limit.learning());
  EXPECT_FALSE(limit.learned());
  clock.Advance(seconds(60));
  limit.OnSuccess();
  EXPECT_EQ(limit.effective(), 1000);  // never above the ceiling
}

TEST(AimdLimitTest, UnknownIsUnboundedUntilTheFirst429) {
  FakeClock clock;
  AimdLimit limit(clock, -1);
  EXPECT_FALSE(limit.effective().has_value());
  EXPECT_FALSE(limit.ceiling().has_value());
  EXPECT_DOUBLE_EQ(limit.configured(), 0);
  EXPECT_TRUE(limit.learning());
  EXPECT_TRUE(limit.learned());
  for (int i = 0; i < 100; ++i) {
    clock.Advance(seconds(1));
    limit.OnSuccess();
  }
  EXPECT_FALSE(limit.effective().has_value()) << "no 429, no limit";
}

TEST(AimdLimitTest, First429SetsTheLevelToWhatTheTeacherAdmitted) {
  FakeClock clock;
  AimdLimit limit(clock, 0);
  // 600 answered in the window before the teacher said no more.
  limit.OnRateLimited(600);
  EXPECT_EQ(limit.effective(), 600);
  EXPECT_EQ(limit.plateau(), 600);
  EXPECT_FALSE(limit.learning());
  EXPECT_TRUE(limit.learned());
}

TEST(AimdLimitTest, LateReportsOfTheFirstWindowRaiseTheLevelWhileMeasuring) {
  FakeClock clock;
  AimdLimit limit(clock, 0);
  limit.OnRateLimited(82);  // one worker's report came first
  EXPECT_TRUE(limit.measuring());
  limit.OnAdmitted(590);  // the others', moments later
  EXPECT_EQ(limit.effective(), 590);
  limit.OnAdmitted(300);  // never lowers it
  EXPECT_EQ(limit.effective(), 590);
  clock.Advance(seconds(5));
  EXPECT_FALSE(limit.measuring());
  limit.OnAdmitted(900);  // a later window says nothing
  EXPECT_EQ(limit.effective(), 590);
  EXPECT_EQ(limit.plateau(), 590);
}

TEST(AimdLimitTest, HoldsAtThePlateauThenProbesWithDoublingSteps) {
  FakeClock clock;
  AimdOptions options;
  options.hold = seconds(10);
  AimdLimit limit(clock, 0, options);
  limit.OnRateLimited(1000);
  for (int i = 0; i < 9; ++i) {
    clock.Advance(seconds(1));
    limit.OnSuccess();
    ASSERT_EQ(limit.effective(), 1000) << "second " << i + 1;
  }
  clock.Advance(seconds(1));
  limit.OnSuccess();
  EXPECT_NEAR(*limit.effective(), 1010, 1e-9);  // + 1%
  clock.Advance(seconds(1));
  limit.OnSuccess();
  EXPECT_NEAR(*limit.effective(), 1030, 1e-9);  // + 2%
  clock.Advance(seconds(1));
  limit.OnSuccess();
  EXPECT_NEAR(*limit.effective(), 1070, 1e-9);  // + 4%
  limit.OnSuccess();  // once per interval
  EXPECT_NEAR(*limit.effective(), 1070, 1e-9);
}

TEST(AimdLimitTest, A429WhileProbingReturnsToTheMeasuredPlateau) {
  FakeClock clock;
  AimdOptions options;
  options.hold = seconds(5);
  AimdLimit limit(clock, 0, options);
  limit.OnRateLimited(1000);
  for (int i = 0; i < 8; ++i) {
    clock.Advance(seconds(1));
    limit.OnSuccess();
  }
  ASSERT_GT(*limit.effective(), 1000);
  // The teacher let 1020 through in the window: the limit rose a little.
  limit.OnRateLimited(1020);
  EXPECT_EQ(limit.effective(), 1020);
  EXPECT_EQ(limit.plateau(), 1020);
  // Measured above what was sent is not believed.
  clock.Advance(seconds(10));
  for (int i = 0; i < 7; ++i) {
    clock.Advance(seconds(1));
    limit.OnSuccess();
  }
  ASSERT_GT(*limit.effective(), 1020);
  const double sent = *limit.effective();
  limit.OnRateLimited(5000);
  EXPECT_EQ(limit.effective(), sent);
  // Without a measure, the old plateau stands.
  AimdLimit other(clock, 0, options);
  other.OnRateLimited(1000);
  for (int i = 0; i < 8; ++i) {
    clock.Advance(seconds(1));
    other.OnSuccess();
  }
  other.OnRateLimited(std::nullopt);
  EXPECT_EQ(other.effective(), 1000);
}

TEST(AimdLimitTest, A429AtThePlateauDecreasesWithCooldownAndRecoversFast) {
  FakeClock clock;
  AimdLimit limit(clock, 1000);
  limit.OnRateLimited(std::nullopt);
  EXPECT_NEAR(*limit.effective(), 900, 1e-9);
  EXPECT_NEAR(limit.plateau(), 1000, 1e-9);
  // The same overload produces many 429s: they do not decrease again.
  limit.OnRateLimited(std::nullopt);
  clock.Advance(milliseconds(1999));
  limit.OnRateLimited(std::nullopt);
  EXPECT_NEAR(*limit.effective(), 900, 1e-9);
  // Half the gap to the plateau per interval.
  clock.Advance(milliseconds(1));
  limit.OnSuccess();
  EXPECT_NEAR(*limit.effective(), 950, 1e-9);
  clock.Advance(seconds(1));
  limit.OnSuccess();
  EXPECT_NEAR(*limit.effective(), 975, 1e-9);
  // A 429 during the recovery: the limit is lower still.
  clock.Advance(seconds(2));
  limit.OnRateLimited(940);  // a whole window measured
  EXPECT_NEAR(limit.plateau(), 940, 1e-9);
  EXPECT_NEAR(*limit.effective(), 846, 1e-9);
  for (int i = 0; i < 10; ++i) {
    clock.Advance(seconds(1));
    limit.OnSuccess();
  }
  EXPECT_NEAR(*limit.effective(), 940, 1e-9);
}

TEST(AimdLimitTest, NeverBelowTheFloor) {
  FakeClock clock;
  AimdLimit limit(clock, 1000);
  for (int i = 0; i < 100; ++i) {
    limit.OnRateLimited(std::nullopt);
    clock.Advance(seconds(2));
  }
  EXPECT_NEAR(*limit.effective(), 20, 1e-9);  // 2% of the ceiling
}

TEST(AimdLimitTest, AnnouncedLimitStartsAnUnknownLimitThere) {
  FakeClock clock;
  AimdLimit limit(clock, 0);
  limit.OnAnnounced(600);
  EXPECT_EQ(limit.effective(), 600);
  EXPECT_EQ(limit.ceiling(), 600);
  EXPECT_FALSE(limit.learning());
  EXPECT_FALSE(limit.learned());
  for (int i = 0; i < 100; ++i) {
    clock.Advance(seconds(1));
    limit.OnSuccess();
  }
  EXPECT_EQ(limit.effective(), 600);
}

TEST(AimdLimitTest, AnnouncedLimitCapsAConfiguredOne) {
  FakeClock clock;
  AimdLimit limit(clock, 1000);
  limit.OnAnnounced(600);
  EXPECT_EQ(limit.ceiling(), 600);
  EXPECT_EQ(limit.effective(), 600);
  limit.OnRateLimited(std::nullopt);
  EXPECT_NEAR(*limit.effective(), 540, 1e-9);
  for (int i = 0; i < 100; ++i) {
    clock.Advance(seconds(1));
    limit.OnSuccess();
  }
  EXPECT_NEAR(*limit.effective(), 600, 1e-9);  // probing stops at the cap
}

TEST(AimdLimitTest, AnnouncedAboveConfiguredDoesNotRaiseIt) {
  FakeClock clock;
  AimdLimit limit(clock, 1000);
  limit.OnAnnounced(5000);
  EXPECT_EQ(limit.ceiling(), 1000);
  EXPECT_EQ(limit.effective(), 1000);
}

TEST(AimdLimitTest, AnnouncedAfterA429DoesNotJumpUp) {
  FakeClock clock;
  AimdLimit limit(clock, 0);
  limit.OnRateLimited(1000);
  ASSERT_NEAR(*limit.effective(), 1000, 1e-9);
  limit.OnAnnounced(5000);
  EXPECT_NEAR(*limit.effective(), 1000, 1e-9);
  EXPECT_EQ(limit.ceiling(), 5000);
  limit.OnAnnounced(500);  // a lower announcement caps at once
  EXPECT_NEAR(*limit.effective(), 500, 1e-9);
  EXPECT_NEAR(limit.plateau(), 500, 1e-9);
}

TEST(AimdLimitTest, NonPositiveAnnouncementIgnored) {
  FakeClock clock;
  AimdLimit limit(clock, 0);
  limit.OnAnnounced(0);
  limit.OnAnnounced(-5);
  EXPECT_TRUE(limit.learning());
  EXPECT_FALSE(limit.effective().has_value());
}

// A discrete simulation, one step a second: a teacher whose true limit is
// `limit(t)` per step, and a cluster that sends at the effective limit (or
// at its full capacity while none is known). Over the limit, the teacher
// admits the limit and answers the rest 429; the coordinator is told what
// was admitted.
struct SimResult {
  double utilisation = 0;  // admitted / limit, after the warm-up
  double refused = 0;      // share of requests answered 429, after it
};

SimResult Simulate(AimdLimit& limit, FakeClock& clock,
                   const std::function<double(int)>& true_limit,
                   double capacity, int steps, int warmup) {
  double admitted_sum = 0, limit_sum = 0, refused = 0, sent_sum = 0;
  for (int i = 0; i < steps; ++i) {
    const double l = true_limit(i);
    const double sent = std::min(capacity, limit.effective().value_or(capacity));
    const double admitted = std::min(sent, l);
    if (i >= warmup) {
      admitted_sum += admitted;
      limit_sum += l;
      sent_sum += sent;
      refused += sent - admitted;
    }
    clock.Advance(seconds(1));
    if (sent > l) {
      limit.OnRateLimited(admitted);
    } else {
      limit.OnSuccess();
    }
  }
  return {admitted_sum / limit_sum, refused / sent_sum};
}

constexpr double kTrueLimit = 10'000;
const auto kSteady = [](int) { return kTrueLimit; };

TEST(AimdConvergenceTest, FromUnknownAtFullCapacity) {
  FakeClock clock;
  AimdLimit limit(clock, -1);
  const SimResult r = Simulate(limit, clock, kSteady, 5 * kTrueLimit, 600, 5);
  EXPECT_GE(r.utilisation, 0.98);
  EXPECT_LE(r.refused, 0.005);
}

TEST(AimdConvergenceTest, FromAConfiguredLimitTooHigh) {
  FakeClock clock;
  AimdLimit limit(clock, 2 * kTrueLimit);
  const SimResult r = Simulate(limit, clock, kSteady, 5 * kTrueLimit, 600, 10);
  EXPECT_GE(r.utilisation, 0.97);
  EXPECT_LE(r.refused, 0.005);
}

TEST(AimdConvergenceTest, FromAConfiguredLimitExactlyRight) {
  FakeClock clock;
  AimdLimit limit(clock, kTrueLimit);
  const SimResult r = Simulate(limit, clock, kSteady, 5 * kTrueLimit, 300, 0);
  EXPECT_DOUBLE_EQ(r.utilisation, 1.0);
  EXPECT_DOUBLE_EQ(r.refused, 0.0);
}

TEST(AimdConvergenceTest, FollowsALimitThatFallsAndRises) {
  FakeClock clock;
  AimdLimit limit(clock, -1);
  const auto moving = [](int t) {
    return t < 200 ? kTrueLimit : t < 400 ? kTrueLimit / 2 : 2 * kTrueLimit;
  };
  const SimResult r = Simulate(limit, clock, moving, 5 * kTrueLimit, 600, 5);
  EXPECT_GE(r.utilisation, 0.9);
  EXPECT_LE(r.refused, 0.02);
  EXPECT_GE(*limit.effective(), 1.5 * kTrueLimit) << "found the raised limit";
}

}  // namespace
}  // namespace distillery
