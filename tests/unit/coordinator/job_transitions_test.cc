// Every change of a job's state, from the one place that makes it.
#include "services/coordinator/job_transitions.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace distillery {
namespace {

using ::testing::HasSubstr;

v1::Job Running(int64_t total, int64_t done, int64_t failed) {
  v1::Job job;
  job.set_id("job-000001");
  job.set_state(v1::JOB_STATE_RUNNING);
  job.mutable_counters()->set_tasks_total(total);
  job.mutable_counters()->set_tasks_done(done);
  job.mutable_counters()->set_tasks_failed(failed);
  return job;
}

TEST(JobTransitionsTest, AdmittedRunsWithItsCounts) {
  v1::Job job;
  job.set_state(v1::JOB_STATE_SUBMITTING);
  job.mutable_spec()->set_samples(3);
  Admitted(job, 4);
  EXPECT_EQ(job.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(job.counters().prompts(), 4);
  EXPECT_EQ(job.counters().tasks_total(), 12);
}

TEST(JobTransitionsTest, FinishesOnlyWhenEveryTaskIsSettled) {
  v1::Job job = Running(3, 2, 0);
  auto never = []() -> std::string { ADD_FAILURE(); return ""; };
  EXPECT_FALSE(FinishIfSettled(job, 5, never));
  EXPECT_EQ(job.state(), v1::JOB_STATE_RUNNING);
  job.mutable_counters()->set_tasks_failed(1);
  EXPECT_TRUE(FinishIfSettled(job, 5, never));
  EXPECT_EQ(job.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(job.finished_ms(), 5);

  v1::Job failed = Running(2, 0, 2);
  EXPECT_TRUE(FinishIfSettled(failed, 7, [] { return std::string("why"); }));
  EXPECT_EQ(failed.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(failed.error(), "why");
}

TEST(JobTransitionsTest, PauseAtBudgetAndResume) {
  v1::Job job = Running(10, 1, 0);
  job.mutable_spec()->set_budget_usd(0.01);
  job.mutable_counters()->set_cost_usd(0.009);
  PausedAtBudget(job, 0.002);
  EXPECT_EQ(job.state(), v1::JOB_STATE_PAUSED);
  EXPECT_THAT(job.error(), HasSubstr("budget of $0.0100 reached"));

  EXPECT_EQ(Resumed(job, 0.005).status().code(),
            absl::StatusCode::kInvalidArgument)
      << "a budget below the spend leaves no room";
  absl::StatusOr<v1::Job> resumed = Resumed(job, 0.05);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(resumed->spec().budget_usd(), 0.05);
  EXPECT_TRUE(resumed->error().empty());
  EXPECT_EQ(Resumed(*resumed, 0).status().code(),
            absl::StatusCode::kFailedPrecondition)
      << "only a paused job resumes";
}

TEST(JobTransitionsTest, CancelEndsAnythingNotEndedAndRetryReopens) {
  v1::Job job = Running(2, 0, 0);
  EXPECT_TRUE(Cancelled(job, 9));
  EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(job.finished_ms(), 9);
  EXPECT_FALSE(Cancelled(job, 10));
  EXPECT_EQ(job.finished_ms(), 9);

  v1::Job failed = Running(1, 0, 1);
  FinishIfSettled(failed, 3, [] { return std::string("bad"); });
  Reopened(failed);
  EXPECT_EQ(failed.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(failed.finished_ms(), 0);
  EXPECT_TRUE(failed.error().empty());
}

}  // namespace
}  // namespace distillery
