// The coordinator's batch path on a real RocksDB store and a FakeClock,
// with the worker's side played by the test: batches split by the profile's
// limits, their tasks never leased online, results committed at the batch
// price, errors and unrun requests sent again, and an open batch found
// again after a restart (create looks for it first).
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/clock.h"
#include "common/store/store.h"
#include "gtest/gtest.h"
#include "services/coordinator/coordinator.h"

namespace distillery {
namespace {

class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "batch_test.XXXXXX";
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TeacherProfile BatchProfile() {
  TeacherProfile p;
  p.name = "sim";
  p.variant = "sim";
  p.base_url = "http://127.0.0.1:9/v1";
  p.batch_max_requests = 3;
  p.batch_poll_interval_ms = 1000;
  p.max_attempts = 3;
  p.pricing["*"] = ModelPrice{2.0, 2.0, 4.0, 1.0, 2.0};
  return p;
}

class BatchPathTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  void Open() {
    coordinator_.reset();
    store_.reset();
    auto store = OpenRocksDbStore(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    CoordinatorOptions options;
    options.lease_duration = std::chrono::seconds(10);
    coordinator_ = std::make_unique<Coordinator>(
        *store_, std::vector<TeacherProfile>{BatchProfile()}, clock_, options);
    ASSERT_TRUE(coordinator_->Recover().ok());
    v1::RegisterRequest r;
    r.set_name("w");
    r.add_teachers("sim");
    worker_ = coordinator_->Register(r).worker_id();
  }

  v1::Job Submit(int prompts, v1::JobMode mode = v1::JOB_MODE_BATCH) {
    v1::JobSpec spec;
    spec.set_teacher("sim");
    spec.set_model("sim-chat");
    spec.set_samples(1);
    spec.set_mode(mode);
    auto submission = coordinator_->BeginSubmission(spec);
    EXPECT_TRUE(submission.ok()) << submission.status();
    std::vector<std::string> lines;
    for (int i = 0; i < prompts; ++i) {
      lines.push_back(absl::StrCat("{\"prompt\": \"question ", i, "\"}"));
    }
    EXPECT_TRUE((*submission)
                    ->AddLines(google::protobuf::RepeatedPtrField<std::string>(
                        lines.begin(), lines.end()))
                    .ok());
    auto job = (*submission)->Commit();
    EXPECT_TRUE(job.ok()) << job.status();
    return *job;
  }

  std::vector<v1::BatchStep> Steps(int max = 10) {
    v1::LeaseBatchStepRequest r;
    r.set_worker_id(worker_);
    r.add_teachers("sim");
    r.set_max_steps(max);
    auto response = coordinator_->LeaseBatchStep(r);
    EXPECT_TRUE(response.ok()) << response.status();
    return {response->steps().begin(), response->steps().end()};
  }

  int LeaseOnline() {
    v1::LeaseRequest r;
    r.set_worker_id(worker_);
    r.add_teachers("sim");
    r.set_max_tasks(100);
    auto response = coordinator_->Lease(r);
    EXPECT_TRUE(response.ok()) << response.status();
    return response->tasks_size();
  }

  void Created(const v1::BatchStep& step, const std::string& provider_id) {
    v1::BatchStepReport report;
    report.set_worker_id(worker_);
    report.set_lease_id(step.lease_id());
    report.set_batch_id(step.batch_id());
    report.set_kind(v1::BATCH_STEP_CREATE);
    report.set_provider_batch_id(provider_id);
    report.set_provider_status("validating");
    ASSERT_TRUE(coordinator_->ReportBatchStep(report).ok());
  }

  // Reports the ended batch of `step` with an answer for every custom_id
  // in `answered`, a retryable error for `errored`; the rest left out.
  void Ended(const v1::BatchStep& step, const std::set<std::string>& answered,
             const std::set<std::string>& errored) {
    v1::BatchStepReport report;
    report.set_worker_id(worker_);
    report.set_lease_id(step.lease_id());
    report.set_batch_id(step.batch_id());
    report.set_kind(v1::BATCH_STEP_POLL);
    report.set_provider_batch_id(step.provider_batch_id());
    report.set_provider_status("completed");
    report.set_ended(true);
    report.set_last(true);
    for (const std::string& id : answered) {
      v1::BatchItem* item = report.add_items();
      item->set_custom_id(id);
      item->mutable_answer()->set_content("answer to " + id);
      item->mutable_answer()->set_finish_reason("stop");
      item->mutable_answer()->set_provider_batch_id(step.provider_batch_id());
      item->mutable_answer()->mutable_usage()->set_prompt_tokens(1'000'000);
      item->mutable_answer()->mutable_usage()->set_completion_tokens(1'000'000);
    }
    for (const std::string& id : errored) {
      v1::BatchItem* item = report.add_items();
      item->set_custom_id(id);
      item->set_failure(v1::FAILURE_CLASS_RETRYABLE);
      item->set_error("server_error");
    }
    ASSERT_TRUE(coordinator_->ReportBatchStep(report).ok());
  }

  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::string worker_;
};

TEST_F(BatchPathTest, AJobIsSplitByTheProfilesLimitAndNeverLeasedOnline) {
  Submit(7);
  std::vector<v1::BatchStep> steps = Steps();
  ASSERT_EQ(steps.size(), 3u);
  std::set<std::string> custom_ids;
  for (const v1::BatchStep& s : steps) {
    EXPECT_EQ(s.kind(), v1::BATCH_STEP_CREATE);
    EXPECT_FALSE(s.find_first());
    EXPECT_EQ(s.tasks_size(), s.custom_ids_size());
    EXPECT_LE(s.tasks_size(), 3);
    for (const std::string& id : s.custom_ids()) {
      EXPECT_TRUE(BatchApi::ValidCustomId(id)) << id;
      custom_ids.insert(id);
    }
  }
  EXPECT_EQ(custom_ids.size(), 7u);
  EXPECT_EQ(LeaseOnline(), 0);
  // Handed out once: no second create for the same batch while its step
  // is held.
  EXPECT_TRUE(Steps().empty());
}

TEST_F(BatchPathTest, ResultsCommitAtTheBatchPriceAndTheRestIsSentAgain) {
  const v1::Job job = Submit(3);
  std::vector<v1::BatchStep> steps = Steps();
  ASSERT_EQ(steps.size(), 1u);
  Created(steps[0], "batch_1");
  EXPECT_TRUE(Steps().empty());  // not due before its poll interval
  clock_.Advance(std::chrono::milliseconds(1500));
  steps = Steps();
  ASSERT_EQ(steps.size(), 1u);
  ASSERT_EQ(steps[0].kind(), v1::BATCH_STEP_POLL);
  EXPECT_EQ(steps[0].provider_batch_id(), "batch_1");
  // t0-0 answered, t1-0 errored, t2-0 left out (never ran).
  Ended(steps[0], {"t0-0"}, {"t1-0"});
  auto mid = coordinator_->GetJob(job.id());
  ASSERT_TRUE(mid.ok());
  EXPECT_EQ(mid->counters().tasks_done(), 1);
  EXPECT_EQ(mid->counters().batch_answers(), 1);
  // 1M input at 1.0 and 1M output at 2.0 (the batch prices): 3 USD, not 6.
  EXPECT_DOUBLE_EQ(mid->counters().cost_usd(), 3.0);
  ASSERT_EQ(mid->batches_size(), 1);
  EXPECT_EQ(mid->batches(0).state(), v1::BATCH_STATE_ENDED);
  EXPECT_EQ(mid->batches(0).answered(), 1);
  EXPECT_EQ(mid->batches(0).errored(), 1);
  EXPECT_EQ(mid->batches(0).not_run(), 1);
  // The two others go out in a new batch, by batch again (--mode batch).
  EXPECT_EQ(LeaseOnline(), 0);
  steps = Steps();
  ASSERT_EQ(steps.size(), 1u);
  ASSERT_EQ(steps[0].kind(), v1::BATCH_STEP_CREATE);
  EXPECT_EQ(std::set<std::string>(steps[0].custom_ids().begin(),
                                  steps[0].custom_ids().end()),
            (std::set<std::string>{"t1-0", "t2-0"}));
  Created(steps[0], "batch_2");
  clock_.Advance(std::chrono::milliseconds(1500));
  steps = Steps();
  ASSERT_EQ(steps.size(), 1u);
  Ended(steps[0], {"t1-0", "t2-0"}, {});
  auto done = coordinator_->GetJob(job.id());
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(done->counters().tasks_done(), 3);
  EXPECT_EQ(done->counters().teacher_requests(), 3);
  EXPECT_DOUBLE_EQ(done->counters().cost_usd(), 9.0);
  EXPECT_EQ(done->counters().tasks_in_batches(), 0);
  // What metrics report (coordinator_metrics.h reads the snapshot).
  const CoordinatorSnapshot snapshot = coordinator_->Snapshot();
  ASSERT_EQ(snapshot.batches.size(), 1u);
  const CoordinatorSnapshot::TeacherBatchView& b = snapshot.batches[0];
  EXPECT_EQ(b.teacher, "sim");
  EXPECT_EQ(b.batches_by_state.at("ended"), 2);
  EXPECT_EQ(b.batches_by_state.at("open"), 0);
  EXPECT_EQ(b.tasks_in_batches, 0);
  EXPECT_EQ(b.oldest_open_age_seconds, 0);
  EXPECT_EQ(b.requests_by_outcome.at("succeeded"), 3);
  EXPECT_EQ(b.requests_by_outcome.at("errored"), 1);
  EXPECT_EQ(b.requests_by_outcome.at("not_run"), 1);
  EXPECT_EQ(snapshot.leases_by_teacher.at("sim"), 0);
}

TEST_F(BatchPathTest, AnOpenBatchShowsInTheSnapshotWithItsAge) {
  Submit(2);
  std::vector<v1::BatchStep> steps = Steps();
  ASSERT_EQ(steps.size(), 1u);
  Created(steps[0], "batch_1");
  clock_.Advance(std::chrono::seconds(30));
  const CoordinatorSnapshot snapshot = coordinator_->Snapshot();
  ASSERT_EQ(snapshot.batches.size(), 1u);
  EXPECT_EQ(snapshot.batches[0].batches_by_state.at("open"), 1);
  EXPECT_EQ(snapshot.batches[0].tasks_in_batches, 2);
  EXPECT_DOUBLE_EQ(snapshot.batches[0].oldest_open_age_seconds, 30.0);
  // A batch's tasks are not a worker's leases.
  EXPECT_EQ(snapshot.leases_by_teacher.at("sim"), 0);
}

TEST_F(BatchPathTest, AutoModeSendsRetriesOnline) {
  Submit(2, v1::JOB_MODE_AUTO);
  std::vector<v1::BatchStep> steps = Steps();
  ASSERT_EQ(steps.size(), 1u);
  Created(steps[0], "batch_1");
  clock_.Advance(std::chrono::milliseconds(1500));
  steps = Steps();
  ASSERT_EQ(steps.size(), 1u);
  Ended(steps[0], {"t0-0"}, {"t1-0"});
  EXPECT_EQ(LeaseOnline(), 1);
}

TEST_F(BatchPathTest, AfterACrashTheOpenBatchIsFoundAgainNotCreatedTwice) {
  const v1::Job job = Submit(2);
  std::vector<v1::BatchStep> steps = Steps();
  ASSERT_EQ(steps.size(), 1u);
  const std::string tag = steps[0].tag();
  // The coordinator dies after handing out the create and before any
  // report: the worker may have created the batch.
  Open();
  EXPECT_EQ(LeaseOnline(), 0);  // its tasks belong to the batch
  EXPECT_TRUE(Steps().empty());  // the old create may still report
  clock_.Advance(std::chrono::seconds(11));
  steps = Steps();
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].kind(), v1::BATCH_STEP_CREATE);
  EXPECT_TRUE(steps[0].find_first());
  EXPECT_EQ(steps[0].tag(), tag);
  EXPECT_EQ(steps[0].tasks_size(), 2);
  Created(steps[0], "batch_found");
  clock_.Advance(std::chrono::milliseconds(1500));
  steps = Steps();
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].provider_batch_id(), "batch_found");
  Ended(steps[0], {"t0-0", "t1-0"}, {});
  auto done = coordinator_->GetJob(job.id());
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::JOB_STATE_COMPLETED);
}

// A create handed out whose worker then vanished, and the job cancelled:
// the batch is looked for (never created again) and, found, cancelled at
// the provider; not found, the record ends.
TEST_F(BatchPathTest, ACancelledBatchWhoseCreateWasLostIsLookedForAndCancelled) {
  for (const bool found : {false, true}) {
    SCOPED_TRACE(found ? "found" : "not found");
    const v1::Job job = Submit(3);
    std::vector<v1::BatchStep> steps = Steps();
    ASSERT_EQ(steps.size(), 1u);
    ASSERT_EQ(steps[0].kind(), v1::BATCH_STEP_CREATE);
    ASSERT_TRUE(coordinator_->CancelJob(job.id()).ok());
    EXPECT_TRUE(Steps().empty());  // the create may still report
    clock_.Advance(std::chrono::seconds(11));
    steps = Steps();
    ASSERT_EQ(steps.size(), 1u);
    EXPECT_EQ(steps[0].kind(), v1::BATCH_STEP_CREATE);
    EXPECT_TRUE(steps[0].find_only());
    EXPECT_TRUE(steps[0].find_first());
    EXPECT_EQ(steps[0].request_count(), 3);
    EXPECT_EQ(steps[0].tasks_size(), 0);  // nothing to create with
    if (found) {
      Created(steps[0], "batch_lost");
      steps = Steps();
      ASSERT_EQ(steps.size(), 1u);
      EXPECT_EQ(steps[0].kind(), v1::BATCH_STEP_CANCEL);
      EXPECT_EQ(steps[0].provider_batch_id(), "batch_lost");
    } else {
      v1::BatchStepReport report;
      report.set_worker_id(worker_);
      report.set_lease_id(steps[0].lease_id());
      report.set_batch_id(steps[0].batch_id());
      report.set_kind(v1::BATCH_STEP_CREATE);
      report.set_status_code(static_cast<int>(absl::StatusCode::kNotFound));
      report.set_error("no batch tagged it at the provider");
      ASSERT_TRUE(coordinator_->ReportBatchStep(report).ok());
      EXPECT_TRUE(Steps().empty());
      auto ended = coordinator_->GetJob(job.id());
      ASSERT_TRUE(ended.ok());
      ASSERT_EQ(ended->batches_size(), 1);
      EXPECT_EQ(ended->batches(0).state(), v1::BATCH_STATE_ENDED);
    }
  }
}

TEST_F(BatchPathTest, AFullProviderQueueHoldsTheNextBatchBack) {
  Submit(6);
  std::vector<v1::BatchStep> steps = Steps(1);
  ASSERT_EQ(steps.size(), 1u);
  Created(steps[0], "batch_1");
  steps = Steps(1);
  ASSERT_EQ(steps.size(), 1u);
  v1::BatchStepReport report;
  report.set_worker_id(worker_);
  report.set_lease_id(steps[0].lease_id());
  report.set_batch_id(steps[0].batch_id());
  report.set_kind(v1::BATCH_STEP_CREATE);
  report.set_provider_batch_id("batch_2");
  report.set_provider_failed(true);
  report.set_token_limit(true);
  report.set_error("token_limit_exceeded");
  ASSERT_TRUE(coordinator_->ReportBatchStep(report).ok());
  // Held while batch_1 runs: no create, only batch_1's poll once due.
  for (const v1::BatchStep& s : Steps()) {
    EXPECT_NE(s.kind(), v1::BATCH_STEP_CREATE);
  }
  clock_.Advance(std::chrono::milliseconds(1500));
  steps = Steps();
  ASSERT_EQ(steps.size(), 1u);
  ASSERT_EQ(steps[0].kind(), v1::BATCH_STEP_POLL);
  Ended(steps[0], {"t0-0", "t1-0", "t2-0"}, {});
  // batch_1 ended: the held batch is created again, and its excluded id
  // is the failed one.
  steps = Steps(1);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].kind(), v1::BATCH_STEP_CREATE);
  EXPECT_FALSE(steps[0].find_first());
  bool excluded = false;
  for (const std::string& id : steps[0].exclude_provider_ids()) {
    excluded |= id == "batch_2";
  }
  EXPECT_TRUE(excluded);
}

TEST_F(BatchPathTest, ATeacherWithoutABatchApiIsRefusedAtSubmit) {
  TeacherProfile vllm = BatchProfile();
  vllm.name = "local";
  vllm.variant = "vllm";
  Coordinator coordinator(*store_, {vllm}, clock_);
  v1::JobSpec spec;
  spec.set_teacher("local");
  spec.set_model("m");
  spec.set_samples(1);
  spec.set_mode(v1::JOB_MODE_BATCH);
  auto submission = coordinator.BeginSubmission(spec);
  ASSERT_FALSE(submission.ok());
  EXPECT_NE(submission.status().message().find("has no batch API"),
            std::string::npos)
      << submission.status();
}

}  // namespace
}  // namespace distillery
