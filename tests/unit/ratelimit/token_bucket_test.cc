#include "common/ratelimit/token_bucket.h"

#include <chrono>

#include "common/base/clock.h"
#include "gtest/gtest.h"

namespace distillery {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

double Ms(Duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

TEST(TokenBucketTest, StartsWithInitialClampedToCapacity) {
  FakeClock clock;
  EXPECT_DOUBLE_EQ(TokenBucket(clock, 10, 5).Level(), 0);
  EXPECT_DOUBLE_EQ(TokenBucket(clock, 10, 5, 3).Level(), 3);
  EXPECT_DOUBLE_EQ(TokenBucket(clock, 10, 5, 50).Level(), 5);
}

TEST(TokenBucketTest, RefillsAtRateUpToCapacity) {
  FakeClock clock;
  TokenBucket b(clock, 10, 5);
  clock.Advance(milliseconds(200));
  EXPECT_NEAR(b.Level(), 2, 1e-9);
  clock.Advance(milliseconds(100));
  EXPECT_NEAR(b.Level(), 3, 1e-9);
  clock.Advance(seconds(10));
  EXPECT_DOUBLE_EQ(b.Level(), 5);  // clamped, not 103
  clock.Advance(seconds(10));
  EXPECT_DOUBLE_EQ(b.Level(), 5);
}

TEST(TokenBucketTest, ZeroRateNeverRefills) {
  FakeClock clock;
  TokenBucket b(clock, 0, 5, 2);
  clock.Advance(std::chrono::hours(1));
  EXPECT_DOUBLE_EQ(b.Level(), 2);
  EXPECT_EQ(b.TimeUntil(2), Duration(0));
  EXPECT_EQ(b.TimeUntil(3), Duration::max());
  EXPECT_FALSE(b.TryTake(3));
}

TEST(TokenBucketTest, TryTakeOnlyWhenAvailable) {
  FakeClock clock;
  TokenBucket b(clock, 10, 5, 5);
  EXPECT_TRUE(b.TryTake(3));
  EXPECT_DOUBLE_EQ(b.Level(), 2);
  EXPECT_FALSE(b.TryTake(3));
  EXPECT_DOUBLE_EQ(b.Level(), 2);  // a failed take takes nothing
  clock.Advance(milliseconds(100));
  EXPECT_TRUE(b.TryTake(3));
  EXPECT_NEAR(b.Level(), 0, 1e-9);
}

TEST(TokenBucketTest, OversizeRequestPassesOnlyWhenFull) {
  FakeClock clock;
  TokenBucket b(clock, 10, 5, 4);
  EXPECT_FALSE(b.TryTake(50));  // not full yet
  EXPECT_NEAR(Ms(b.TimeUntil(50)), 100, 1e-3);  // waits until full, not 5 s
  clock.Advance(milliseconds(100));
  EXPECT_TRUE(b.TryTake(50));
  EXPECT_NEAR(b.Level(), -45, 1e-9);  // and leaves the bucket in debt
  EXPECT_FALSE(b.TryTake(1));
}

TEST(TokenBucketTest, OversizeRequestNeverPassesWithZeroCapacity) {
  FakeClock clock;
  TokenBucket b(clock, 0, 0);
  EXPECT_FALSE(b.TryTake(1));
}

TEST(TokenBucketTest, TakeGoesIntoDebtAndRefillPaysItBack) {
  FakeClock clock;
  TokenBucket b(clock, 10, 5, 5);
  b.Take(12);
  EXPECT_DOUBLE_EQ(b.Level(), -7);
  EXPECT_FALSE(b.TryTake(1));
  EXPECT_NEAR(Ms(b.TimeUntil(1)), 800, 1e-3);  // 8 tokens at 10/s
  clock.Advance(milliseconds(790));
  EXPECT_FALSE(b.TryTake(1));
  clock.Advance(milliseconds(20));
  EXPECT_TRUE(b.TryTake(1));
}

TEST(TokenBucketTest, GiveReturnsTokensClamped) {
  FakeClock clock;
  TokenBucket b(clock, 10, 5, 0);
  b.Take(4);
  b.Give(3);
  EXPECT_DOUBLE_EQ(b.Level(), -1);
  b.Give(100);
  EXPECT_DOUBLE_EQ(b.Level(), 5);
}

TEST(TokenBucketTest, TimeUntil) {
  FakeClock clock;
  TokenBucket b(clock, 10, 5, 1);
  EXPECT_EQ(b.TimeUntil(1), Duration(0));
  EXPECT_EQ(b.TimeUntil(0.5), Duration(0));
  EXPECT_NEAR(Ms(b.TimeUntil(3)), 200, 1e-3);
  EXPECT_NEAR(Ms(b.TimeUntil(5)), 400, 1e-3);
  clock.Advance(milliseconds(200));
  EXPECT_EQ(b.TimeUntil(3), Duration(0));
  EXPECT_TRUE(b.TryTake(3));
}

TEST(TokenBucketTest, BlockUntilHoldsTheBucketEmpty) {
  FakeClock clock;
  TokenBucket b(clock, 10, 5, 5);
  b.BlockUntil(clock.Now() + seconds(2));
  EXPECT_DOUBLE_EQ(b.Level(), 0);
  EXPECT_FALSE(b.TryTake(1));
  EXPECT_NEAR(Ms(b.TimeUntil(1)), 2100, 1e-3);  // the block, then a refill
  clock.Advance(seconds(1));
  EXPECT_DOUBLE_EQ(b.Level(), 0);  // no refill while blocked
  EXPECT_FALSE(b.TryTake(1));
  EXPECT_NEAR(Ms(b.TimeUntil(1)), 1100, 1e-3);
  clock.Advance(seconds(1));
  EXPECT_DOUBLE_EQ(b.Level(), 0);  // refill starts at the end of the block
  clock.Advance(milliseconds(100));
  EXPECT_NEAR(b.Level(), 1, 1e-9);
  EXPECT_TRUE(b.TryTake(1));
}

TEST(TokenBucketTest, BlockUntilKeepsDebtAndTheLaterEnd) {
  FakeClock clock;
  TokenBucket b(clock, 10, 5, 0);
  b.Take(3);
  b.BlockUntil(clock.Now() + seconds(2));
  b.BlockUntil(clock.Now() + seconds(1));  // earlier: does not shorten
  EXPECT_DOUBLE_EQ(b.Level(), -3);
  EXPECT_NEAR(Ms(b.TimeUntil(1)), 2400, 1e-3);
  clock.Advance(milliseconds(2390));
  EXPECT_FALSE(b.TryTake(1));
  clock.Advance(milliseconds(20));
  EXPECT_TRUE(b.TryTake(1));
}

TEST(TokenBucketTest, BlockedWithZeroRateIsNever) {
  FakeClock clock;
  TokenBucket b(clock, 0, 5, 5);
  b.BlockUntil(clock.Now() + seconds(1));
  EXPECT_EQ(b.TimeUntil(1), Duration::max());
}

TEST(TokenBucketTest, SetRateKeepsLevelClamped) {
  FakeClock clock;
  TokenBucket b(clock, 10, 5, 5);
  b.SetRate(1, 2);
  EXPECT_DOUBLE_EQ(b.Level(), 2);
  EXPECT_DOUBLE_EQ(b.rate(), 1);
  EXPECT_DOUBLE_EQ(b.capacity(), 2);
  EXPECT_TRUE(b.TryTake(2));
  clock.Advance(seconds(1));
  EXPECT_NEAR(b.Level(), 1, 1e-9);  // at the new rate
  b.SetRate(100, 50);
  EXPECT_NEAR(b.Level(), 1, 1e-9);  // the level is kept
  clock.Advance(milliseconds(100));
  EXPECT_NEAR(b.Level(), 11, 1e-9);
}

TEST(TokenBucketTest, SetRateRefillsAtTheOldRateUpToNow) {
  FakeClock clock;
  TokenBucket b(clock, 10, 100, 0);
  clock.Advance(seconds(1));
  b.SetRate(0, 100);
  EXPECT_NEAR(b.Level(), 10, 1e-9);
  clock.Advance(seconds(1));
  EXPECT_NEAR(b.Level(), 10, 1e-9);
}

// TimeUntil(n) == 0 must mean TryTake(n) succeeds. After ten refills of
// 0.1 the level is 0.9999999999999999: the 1e-17 s still missing is
// truncated to 0 ns by the duration_cast in TimeUntil, while TryTake(1)
// refuses.
TEST(TokenBucketTest, TimeUntilZeroMeansTryTakeSucceeds) {
  FakeClock clock;
  TokenBucket b(clock, 10, 1);
  for (int i = 0; i < 10; ++i) {
    clock.Advance(milliseconds(10));
    b.Level();  // each call refills
  }
  if (b.TimeUntil(1) == Duration(0)) {
    EXPECT_TRUE(b.TryTake(1)) << "level " << b.Level();
  } else {
    EXPECT_FALSE(b.TryTake(1));
  }
}

}  // namespace
}  // namespace distillery
