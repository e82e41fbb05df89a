// The spend guard on its own: a budgeted job leases while its spend, its
// reservations and the next request's most cost fit; waits while requests
// are in flight; pauses when nothing is. Exact in nano-dollars.
#include "services/coordinator/spend_guard.h"

#include "gtest/gtest.h"

namespace distillery {
namespace {

v1::Job Job(double budget, double spent) {
  v1::Job job;
  job.set_id("job-1");
  job.mutable_spec()->set_budget_usd(budget);
  job.mutable_counters()->set_cost_usd(spent);
  return job;
}

TEST(SpendGuardTest, AJobWithoutABudgetAlwaysFits) {
  SpendGuard guard;
  EXPECT_EQ(guard.Check(Job(0, 1e6), NanoUsdUp(1e6)),
            SpendGuard::Verdict::kFits);
}

TEST(SpendGuardTest, FitsThenWaitsForInFlightThenPauses) {
  SpendGuard guard;
  const v1::Job job = Job(1.0, 0.5);
  const int64_t quarter = NanoUsdUp(0.25);
  EXPECT_EQ(guard.Check(job, quarter), SpendGuard::Verdict::kFits);
  guard.Reserve("job-1", quarter);
  EXPECT_EQ(guard.Check(job, quarter), SpendGuard::Verdict::kFits)
      << "0.5 + 0.25 + 0.25 is exactly the budget";
  guard.Reserve("job-1", quarter);
  EXPECT_EQ(guard.Check(job, 1), SpendGuard::Verdict::kWait);
  guard.Release("job-1", quarter);
  guard.Release("job-1", quarter);
  EXPECT_EQ(guard.Check(Job(1.0, 0.9), quarter), SpendGuard::Verdict::kPause);
}

TEST(SpendGuardTest, ManyReservationsLeaveNoResidue) {
  SpendGuard guard;
  const int64_t tenth = NanoUsdUp(0.1);
  for (int i = 0; i < 1000; ++i) guard.Reserve("job-1", tenth);
  for (int i = 0; i < 1000; ++i) guard.Release("job-1", tenth);
  // Nothing in flight any more: a cost that does not fit pauses, and one
  // that fits exactly fits.
  EXPECT_EQ(guard.Check(Job(1.0, 0.0), NanoUsdDown(1.0)),
            SpendGuard::Verdict::kFits);
  EXPECT_EQ(guard.Check(Job(1.0, 0.0), NanoUsdDown(1.0) + 1),
            SpendGuard::Verdict::kPause);
}

}  // namespace
}  // namespace distillery
