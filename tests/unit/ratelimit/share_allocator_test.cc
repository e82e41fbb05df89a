#include "common/ratelimit/share_allocator.h"

#include <chrono>
#include <cmath>
#include <map>
#include <random>
#include <string>

#include "common/base/clock.h"
#include "gtest/gtest.h"

namespace distillery {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr Duration kTtl = seconds(6);

TEST(ShareAllocatorTest, SingleWorkerGetsAll) {
  FakeClock clock;
  ShareAllocator shares(clock, kTtl);
  EXPECT_DOUBLE_EQ(shares.Renew("a", 5, 100), 100);
  EXPECT_DOUBLE_EQ(shares.LiveTotal(), 100);
  EXPECT_DOUBLE_EQ(shares.Renew("a", 1, 100), 100);  // renewing: its own
  EXPECT_DOUBLE_EQ(shares.LiveTotal(), 100);         // grant is not counted
  EXPECT_EQ(shares.ttl(), kTtl);
}

TEST(ShareAllocatorTest, JoinGetsWhatIsFreeThenItsFairShare) {
  FakeClock clock;
  ShareAllocator shares(clock, kTtl);
  ASSERT_DOUBLE_EQ(shares.Renew("a", 5, 100), 100);
  // Everything is granted to a: b waits for a to renew.
  EXPECT_DOUBLE_EQ(shares.Renew("b", 5, 100), 0);
  EXPECT_DOUBLE_EQ(shares.LiveTotal(), 100);
  clock.Advance(seconds(2));
  EXPECT_DOUBLE_EQ(shares.Renew("a", 5, 100), 50);
  EXPECT_DOUBLE_EQ(shares.Renew("b", 5, 100), 50);
  EXPECT_DOUBLE_EQ(shares.LiveTotal(), 100);
}

TEST(ShareAllocatorTest, JoinGetsTheUnallocatedPartAtOnce) {
  FakeClock clock;
  ShareAllocator shares(clock, kTtl);
  ASSERT_DOUBLE_EQ(shares.Renew("a", 5, 100), 100);
  // The limit grew (AIMD): 20 are unallocated and b gets them at once.
  EXPECT_DOUBLE_EQ(shares.Renew("b", 5, 120), 20);
  EXPECT_DOUBLE_EQ(shares.LiveTotal(), 120);
  clock.Advance(seconds(2));
  EXPECT_DOUBLE_EQ(shares.Renew("a", 5, 120), 60);
  EXPECT_DOUBLE_EQ(shares.Renew("b", 5, 120), 60);
  EXPECT_DOUBLE_EQ(shares.LiveTotal(), 120);
}

TEST(ShareAllocatorTest, LeaveByExpiryFreesTheShare) {
  FakeClock clock;
  ShareAllocator shares(clock, kTtl);
  shares.Renew("a", 5, 100);
  shares.Renew("b", 5, 100);
  shares.Renew("a", 5, 100);
  ASSERT_DOUBLE_EQ(shares.Renew("b", 5, 100), 50);
  // b dies; a keeps renewing.
  clock.Advance(seconds(3));
  EXPECT_DOUBLE_EQ(shares.Renew("a", 5, 100), 50);  // b is still live
  clock.Advance(seconds(2));
  EXPECT_DOUBLE_EQ(shares.Renew("a", 5, 100), 50);
  EXPECT_DOUBLE_EQ(shares.LiveTotal(), 100);
  clock.Advance(seconds(1));  // 6 s since b's last renewal
  EXPECT_DOUBLE_EQ(shares.LiveTotal(), 50);
  EXPECT_DOUBLE_EQ(shares.Renew("a", 5, 100), 100);
}

TEST(ShareAllocatorTest, DropFreesAtOnce) {
  FakeClock clock;
  ShareAllocator shares(clock, kTtl);
  shares.Renew("a", 5, 100);
  shares.Renew("b", 5, 100);
  shares.Renew("a", 5, 100);
  shares.Renew("b", 5, 100);
  shares.Drop("b");
  EXPECT_DOUBLE_EQ(shares.LiveTotal(), 50);
  EXPECT_DOUBLE_EQ(shares.Renew("a", 5, 100), 100);
  shares.Drop("nobody");
  EXPECT_DOUBLE_EQ(shares.LiveTotal(), 100);
}

TEST(ShareAllocatorTest, UnevenDemandSplitsThreeToOne) {
  FakeClock clock;
  ShareAllocator shares(clock, kTtl);
  shares.Renew("a", 30, 100);
  shares.Renew("b", 10, 100);
  for (int round = 0; round < 3; ++round) {
    clock.Advance(seconds(2));
    EXPECT_DOUBLE_EQ(shares.Renew("a", 30, 100), 75);
    EXPECT_DOUBLE_EQ(shares.Renew("b", 10, 100), 25);
  }
  EXPECT_DOUBLE_EQ(shares.LiveTotal(), 100);
}

TEST(ShareAllocatorTest, IdleWorkerGetsNothingAndTakesNothing) {
  FakeClock clock;
  ShareAllocator shares(clock, kTtl);
  EXPECT_DOUBLE_EQ(shares.Renew("a", 0, 100), 0);
  EXPECT_DOUBLE_EQ(shares.Renew("b", 5, 100), 100);
  EXPECT_DOUBLE_EQ(shares.Renew("a", 0, 100), 0);
  EXPECT_DOUBLE_EQ(shares.Renew("b", 5, 100), 100);
  // a gets work: it joins like a newcomer.
  EXPECT_DOUBLE_EQ(shares.Renew("a", 5, 100), 0);
  EXPECT_DOUBLE_EQ(shares.Renew("b", 5, 100), 50);
  EXPECT_DOUBLE_EQ(shares.Renew("a", 5, 100), 50);
  // and goes idle again: its share returns at its next renewal.
  EXPECT_DOUBLE_EQ(shares.Renew("a", 0, 100), 0);
  EXPECT_DOUBLE_EQ(shares.Renew("b", 5, 100), 100);
}

TEST(ShareAllocatorTest, IntegralFloorsWithAtLeastOne) {
  FakeClock clock;
  ShareAllocator shares(clock, kTtl);
  EXPECT_DOUBLE_EQ(shares.Renew("a", 1, 10, true), 10);
  EXPECT_DOUBLE_EQ(shares.Renew("b", 2, 10, true), 0);  // nothing free
  EXPECT_DOUBLE_EQ(shares.Renew("a", 1, 10, true), 3);   // floor(3.33)
  EXPECT_DOUBLE_EQ(shares.Renew("b", 2, 10, true), 6);   // floor(6.67)
  EXPECT_DOUBLE_EQ(shares.LiveTotal(), 9);
}

TEST(ShareAllocatorTest, IntegralGivesOneWhenFairShareIsBelowOne) {
  FakeClock clock;
  ShareAllocator shares(clock, kTtl);
  EXPECT_DOUBLE_EQ(shares.Renew("a", 1, 2, true), 2);
  EXPECT_DOUBLE_EQ(shares.Renew("b", 1, 2, true), 0);
  EXPECT_DOUBLE_EQ(shares.Renew("c", 1, 2, true), 0);
  EXPECT_DOUBLE_EQ(shares.Renew("a", 1, 2, true), 1);  // fair 0.67 -> 1
  EXPECT_DOUBLE_EQ(shares.Renew("b", 1, 2, true), 1);
  EXPECT_DOUBLE_EQ(shares.Renew("c", 1, 2, true), 0);  // none free
  EXPECT_DOUBLE_EQ(shares.LiveTotal(), 2);
}

// Property: through any sequence of renewals, idle reports, drops and
// expiries, the live grants never sum to more than the limit, each grant is
// within [0, limit], and integral grants are whole numbers.
void CheckRandomSequence(bool integral, double limit, uint32_t seed) {
  FakeClock clock;
  ShareAllocator shares(clock, kTtl);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pick_worker(0, 5);
  std::uniform_int_distribution<int> pick_op(0, 9);
  std::uniform_int_distribution<int> pick_demand(0, 20);
  std::uniform_int_distribution<int> pick_advance_ms(0, 3000);
  int renewals = 0;
  for (int step = 0; step < 20000; ++step) {
    const std::string worker = "w" + std::to_string(pick_worker(rng));
    const int op = pick_op(rng);
    if (op < 7) {
      const double demand = op == 0 ? 0 : pick_demand(rng);
      const double grant = shares.Renew(worker, demand, limit, integral);
      ++renewals;
      ASSERT_GE(grant, 0) << "step " << step;
      ASSERT_LE(grant, limit) << "step " << step;
      if (demand == 0) {
        ASSERT_EQ(grant, 0) << "step " << step;
      }
      if (integral) {
        ASSERT_EQ(grant, std::floor(grant)) << "step " << step;
      }
    } else if (op == 7) {
      shares.Drop(worker);
    } else {
      clock.Advance(milliseconds(pick_advance_ms(rng)));
    }
    ASSERT_LE(shares.LiveTotal(), limit + 1e-9) << "step " << step;
  }
  EXPECT_GT(renewals, 10000);
}

TEST(ShareAllocatorPropertyTest, LiveGrantsNeverExceedTheLimit) {
  CheckRandomSequence(/*integral=*/false, 1000, 20240611);
}

TEST(ShareAllocatorPropertyTest, LiveGrantsNeverExceedTheLimitIntegral) {
  CheckRandomSequence(/*integral=*/true, 7, 42);
}

TEST(ShareAllocatorPropertyTest, LiveGrantsNeverExceedAFractionalLimit) {
  CheckRandomSequence(/*integral=*/false, 593.37, 7);
}

TEST(ShareAllocatorPropertyTest, SteadyDemandConvergesToFairShares) {
  // After any history, three rounds of renewals with steady demand give
  // every worker its demand-weighted share (the first lowers the grants
  // above the new fair shares, the next may still find others' old grants,
  // the last finds room for every fair share).
  FakeClock clock;
  ShareAllocator shares(clock, kTtl);
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> pick_demand(1, 20);
  const std::map<std::string, double> steady = {
      {"a", 1}, {"b", 2}, {"c", 5}};
  for (int i = 0; i < 200; ++i) {
    shares.Renew(std::string(1, static_cast<char>('a' + i % 3)),
                 pick_demand(rng), 80);
  }
  std::map<std::string, double> got;
  for (int round = 0; round < 3; ++round) {
    clock.Advance(seconds(2));
    for (const auto& [w, d] : steady) got[w] = shares.Renew(w, d, 80);
  }
  EXPECT_DOUBLE_EQ(got["a"], 10);
  EXPECT_DOUBLE_EQ(got["b"], 20);
  EXPECT_DOUBLE_EQ(got["c"], 50);
}

}  // namespace
}  // namespace distillery
