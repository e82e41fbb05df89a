// Tests of teacher-sim's seeded fault choice.
#include "services/teacher_sim/fault_injector.h"

#include <map>
#include <vector>

#include "gtest/gtest.h"

namespace distillery::teacher_sim {
namespace {

std::vector<FaultKind> Draw(FaultInjector& f, int n) {
  std::vector<FaultKind> out;
  for (int i = 0; i < n; ++i) out.push_back(f.Next());
  return out;
}

TEST(RandomFaultInjectorTest, RateZeroNeverFails) {
  RandomFaultInjector f(0.0, 1);
  for (FaultKind k : Draw(f, 1000)) EXPECT_EQ(k, FaultKind::kNone);
}

TEST(RandomFaultInjectorTest, RateOneAlwaysFailsWithBothDefaultKinds) {
  RandomFaultInjector f(1.0, 1);
  std::map<FaultKind, int> counts;
  for (FaultKind k : Draw(f, 1000)) ++counts[k];
  EXPECT_EQ(counts[FaultKind::kNone], 0);
  EXPECT_GT(counts[FaultKind::kServerError], 400);
  EXPECT_GT(counts[FaultKind::kRateLimited], 400);
}

TEST(RandomFaultInjectorTest, FailsTheRequestedFraction) {
  RandomFaultInjector f(0.25, 99);
  int faults = 0;
  for (FaultKind k : Draw(f, 20000)) faults += k != FaultKind::kNone;
  EXPECT_NEAR(faults / 20000.0, 0.25, 0.02);
}

TEST(RandomFaultInjectorTest, SameSeedSameSequenceOtherSeedDiffers) {
  RandomFaultInjector a(0.5, 7), b(0.5, 7), c(0.5, 8);
  const auto seq_a = Draw(a, 200);
  EXPECT_EQ(seq_a, Draw(b, 200));
  EXPECT_NE(seq_a, Draw(c, 200));
}

TEST(RandomFaultInjectorTest, FollowsACustomMix) {
  RandomFaultInjector only_429(1.0, 3, {{FaultKind::kRateLimited, 1.0}});
  for (FaultKind k : Draw(only_429, 100)) EXPECT_EQ(k, FaultKind::kRateLimited);

  RandomFaultInjector skewed(
      1.0, 3, {{FaultKind::kServerError, 9.0}, {FaultKind::kRateLimited, 1.0}});
  int server_errors = 0;
  for (FaultKind k : Draw(skewed, 10000)) {
    server_errors += k == FaultKind::kServerError;
  }
  EXPECT_NEAR(server_errors / 10000.0, 0.9, 0.02);
}

TEST(FaultKindNameTest, NamesEveryKind) {
  EXPECT_EQ(FaultKindName(FaultKind::kNone), "none");
  EXPECT_EQ(FaultKindName(FaultKind::kServerError), "server_error");
  EXPECT_EQ(FaultKindName(FaultKind::kRateLimited), "rate_limited");
}

}  // namespace
}  // namespace distillery::teacher_sim
