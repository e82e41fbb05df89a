// Tests of teacher-sim's seeded fault choice.
#include "services/teacher_sim/fault_injector.h"

#include <map>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace distillery::teacher_sim {
namespace {

using ::testing::HasSubstr;

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
  EXPECT_EQ(FaultKindName(FaultKind::kUnavailable), "unavailable");
  EXPECT_EQ(FaultKindName(FaultKind::kOverloaded), "overloaded");
  EXPECT_EQ(FaultKindName(FaultKind::kReset), "reset");
  EXPECT_EQ(FaultKindName(FaultKind::kTruncate), "truncate");
  EXPECT_EQ(FaultKindName(FaultKind::kPad), "pad");
  EXPECT_EQ(FaultKindName(FaultKind::kSlow), "slow");
  EXPECT_EQ(FaultKindName(FaultKind::kQuota), "quota");
  EXPECT_EQ(FaultKindName(FaultKind::kLatin1), "latin1");
}

TEST(ParseFaultRatesTest, ParsesLatin1) {
  double total = 0;
  absl::StatusOr<std::vector<WeightedFault>> mix =
      ParseFaultRates("latin1=0.25", &total);
  ASSERT_TRUE(mix.ok()) << mix.status();
  ASSERT_EQ(mix->size(), 1u);
  EXPECT_EQ((*mix)[0].kind, FaultKind::kLatin1);
  EXPECT_DOUBLE_EQ(total, 0.25);
}

TEST(ParseFaultRatesTest, ParsesEveryKindAndSumsTheRates) {
  double total = 0;
  absl::StatusOr<std::vector<WeightedFault>> mix = ParseFaultRates(
      "500=0.05,503=0.05,529=0.02,reset=0.03,truncate=0.03,pad=0.02,"
      "slow=0.02,quota=0,429=0.01",
      &total);
  ASSERT_TRUE(mix.ok()) << mix.status();
  EXPECT_NEAR(total, 0.23, 1e-9);
  ASSERT_EQ(mix->size(), 8u);  // quota=0 is left out
  EXPECT_EQ((*mix)[0].kind, FaultKind::kServerError);
  EXPECT_EQ((*mix)[3].kind, FaultKind::kReset);
  EXPECT_EQ((*mix)[7].kind, FaultKind::kRateLimited);

  // The injector then gives each kind at its own rate.
  RandomFaultInjector faults(total, 7, *mix);
  int resets = 0;
  for (int i = 0; i < 20000; ++i) resets += faults.Next() == FaultKind::kReset;
  EXPECT_NEAR(resets / 20000.0, 0.03, 0.006);
}

TEST(ParseFaultRatesTest, KnowsTheKeyEcho) {
  double total = 0;
  absl::StatusOr<std::vector<WeightedFault>> mix =
      ParseFaultRates("401echo=1", &total);
  ASSERT_TRUE(mix.ok()) << mix.status();
  ASSERT_EQ(mix->size(), 1u);
  EXPECT_EQ((*mix)[0].kind, FaultKind::kEchoKey);
  EXPECT_EQ(FaultKindName(FaultKind::kEchoKey), "401echo");
}

TEST(ParseFaultRatesTest, RejectsBadSpecsNamingTheProblem) {
  double total = 0;
  EXPECT_THAT(ParseFaultRates("500", &total).status().message(),
              HasSubstr("'500' is not KIND=RATE"));
  EXPECT_THAT(ParseFaultRates("418=0.1", &total).status().message(),
              HasSubstr("unknown fault '418'"));
  EXPECT_THAT(ParseFaultRates("reset=lots", &total).status().message(),
              HasSubstr("rate 'lots' is not a number in [0, 1]"));
  EXPECT_THAT(ParseFaultRates("reset=1.5", &total).status().message(),
              HasSubstr("not a number in [0, 1]"));
  EXPECT_THAT(ParseFaultRates("500=0.6,503=0.6", &total).status().message(),
              HasSubstr("over 1"));
}

}  // namespace
}  // namespace distillery::teacher_sim
