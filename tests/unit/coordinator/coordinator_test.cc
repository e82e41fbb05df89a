// The coordinator on a real RocksDB store in a temp dir, driven by a
// FakeClock: submissions, leases, reports, the pay-once cache, duplicate
// answers, expiry, recovery after a restart, and export.
#include "services/coordinator/coordinator.h"
#include "tests/unit/coordinator/coordinator_steps.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/base/clock.h"
#include "common/dedup/keys.h"
#include "common/metrics/metrics.h"
#include "common/store/store.h"
#include "common/store/store_wrapper.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace distillery {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "coordinator_test.XXXXXX";
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TeacherProfile Profile(const std::string& name) {
  TeacherProfile p;
  p.name = name;
  p.base_url = "http://127.0.0.1:9/v1";
  return p;
}

std::string PromptLine(const std::string& text) {
  return "{\"prompt\": \"" + text + "\"}";
}

std::vector<std::string> PromptLines(const std::vector<std::string>& texts) {
  std::vector<std::string> out;
  for (const std::string& t : texts) out.push_back(PromptLine(t));
  return out;
}

google::protobuf::RepeatedPtrField<std::string> Lines(
    const std::vector<std::string>& lines) {
  return google::protobuf::RepeatedPtrField<std::string>(lines.begin(),
                                                         lines.end());
}

v1::TaskResult Success(const v1::LeasedTask& t, const std::string& content,
                       int attempts = 1) {
  v1::TaskResult r = testing::ResultFor(t, attempts);
  v1::Answer* a = r.mutable_answer();
  a->set_content(content);
  a->set_reasoning("reasoning for " + content);
  a->set_finish_reason("stop");
  a->set_raw_body("{\"raw\": true}");
  a->set_provider_id("chatcmpl-" + std::to_string(t.prompt_seq()));
  a->mutable_usage()->set_prompt_tokens(10);
  a->mutable_usage()->set_completion_tokens(5);
  a->mutable_usage()->set_reasoning_tokens(2);
  return r;
}

v1::TaskResult Failure(const v1::LeasedTask& t, v1::FailureClass failure,
                       const std::string& error, int attempts = 1) {
  v1::TaskResult r = testing::ResultFor(t, attempts);
  r.set_failure(failure);
  r.set_error(error);
  return r;
}

// The real store, failing the next N calls of a kind on cue.
class FaultyStore : public StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;
  int fail_get_task = 0;
  int fail_scan = 0;
  int fail_get_answer = 0;
  int fail_has_answer = 0;
  int fail_get_prompt = 0;
  int applies_before_failing = -1;  // -1: never fail Apply
  // When set, the next Apply notifies `apply_entered` and writes only once
  // the test notifies the gate: a write caught in the middle.
  std::atomic<absl::Notification*> apply_gate{nullptr};
  absl::Notification apply_entered;

  absl::StatusOr<bool> HasAnswer(const std::string& request_key) override {
    if (Take(fail_has_answer)) return Injected();
    return StoreWrapper::HasAnswer(request_key);
  }
  absl::StatusOr<std::optional<v1::Prompt>> GetPrompt(const std::string& job_id,
                                                      int64_t seq) override {
    if (Take(fail_get_prompt)) return Injected();
    return StoreWrapper::GetPrompt(job_id, seq);
  }

  absl::StatusOr<std::optional<v1::Task>> GetTask(const std::string& job_id,
                                                  int64_t seq,
                                                  int sample) override {
    if (Take(fail_get_task)) return Injected();
    return StoreWrapper::GetTask(job_id, seq, sample);
  }
  absl::Status ScanTasks(
      const std::string& job_id, int64_t from_seq, int from_sample,
      const std::function<bool(const v1::Task&)>& fn) override {
    if (Take(fail_scan)) {
      // Fails part way, after handing out some tasks, as a real read can.
      int n = 0;
      (void)StoreWrapper::ScanTasks(job_id, from_seq, from_sample,
                                    [&](const v1::Task& t) {
                                      return fn(t) && ++n < 1;
                                    });
      return Injected();
    }
    return StoreWrapper::ScanTasks(job_id, from_seq, from_sample, fn);
  }
  absl::StatusOr<std::optional<v1::Answer>> GetAnswer(
      const std::string& request_key) override {
    if (Take(fail_get_answer)) return Injected();
    return StoreWrapper::GetAnswer(request_key);
  }
  absl::Status Apply(const StoreBatch& batch) override {
    if (absl::Notification* gate = apply_gate.exchange(nullptr)) {
      apply_entered.Notify();
      gate->WaitForNotification();
    }
    if (applies_before_failing == 0) return Injected();
    if (applies_before_failing > 0) --applies_before_failing;
    return StoreWrapper::Apply(batch);
  }

 private:
  static bool Take(int& n) {
    if (n <= 0) return false;
    --n;
    return true;
  }
  static absl::Status Injected() {
    return absl::UnavailableError("injected store failure");
  }
};

// The value of a counter series in this process's metrics, 0 when absent.
double MetricValue(const std::string& series) {
  const std::string text = metrics::TextExposition();
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return 0;
  return std::stod(text.substr(at + series.size() + 2));
}

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start() {
    absl::StatusOr<std::unique_ptr<Store>> store =
        OpenRocksDbStore(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    faulty_ = std::make_unique<FaultyStore>(*store_);
    coordinator_ =
        std::make_unique<Coordinator>(*faulty_, teachers_, clock_, options_);
    absl::Status s = coordinator_->Recover();
    ASSERT_TRUE(s.ok()) << s;
  }
  // A coordinator restart: everything in memory is lost, the store stays.
  void Restart() {
    coordinator_.reset();
    faulty_.reset();
    store_.reset();
    Start();
  }

  static v1::JobSpec Spec(int samples = 1) {
    v1::JobSpec spec;
    spec.set_teacher("sim");
    spec.set_model("gpt-test");
    spec.set_samples(samples);
    return spec;
  }

  absl::StatusOr<v1::Job> Submit(const std::vector<std::string>& lines,
                                 const v1::JobSpec& spec = Spec()) {
    absl::StatusOr<std::unique_ptr<Submission>> submission =
        coordinator_->BeginSubmission(spec);
    if (!submission.ok()) return submission.status();
    if (absl::Status s = (*submission)->AddLines(Lines(lines)); !s.ok()) {
      return s;
    }
    return (*submission)->Commit();
  }
  v1::Job MustSubmit(const std::vector<std::string>& lines,
                     const v1::JobSpec& spec = Spec()) {
    absl::StatusOr<v1::Job> job = Submit(lines, spec);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }

  std::string Register(const std::string& name = "w") {
    v1::RegisterRequest request;
    request.set_name(name);
    request.add_teachers("sim");
    return coordinator_->Register(request).worker_id();
  }

  static v1::LeaseRequest LeaseRequestFor(
      const std::string& worker, int max_tasks,
      const std::vector<std::string>& teachers = {"sim"}, int wait_ms = 0) {
    v1::LeaseRequest request;
    request.set_worker_id(worker);
    request.set_max_tasks(max_tasks);
    for (const std::string& t : teachers) request.add_teachers(t);
    request.set_wait_ms(wait_ms);
    return request;
  }
  absl::StatusOr<v1::LeaseResponse> TryLease(
      const std::string& worker, int max_tasks,
      const std::vector<std::string>& teachers = {"sim"}) {
    return coordinator_->Lease(LeaseRequestFor(worker, max_tasks, teachers));
  }
  std::vector<v1::LeasedTask> Lease(const std::string& worker, int max_tasks,
                                    const std::vector<std::string>& teachers = {
                                        "sim"}) {
    absl::StatusOr<v1::LeaseResponse> response =
        TryLease(worker, max_tasks, teachers);
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return {};
    return std::vector<v1::LeasedTask>(response->tasks().begin(),
                                       response->tasks().end());
  }

  absl::StatusOr<v1::ReportResponse> TryReport(
      const std::string& worker, const std::vector<v1::TaskResult>& results) {
    v1::ReportRequest request;
    request.set_worker_id(worker);
    for (const v1::TaskResult& r : results) *request.add_results() = r;
    return coordinator_->Report(request);
  }

  v1::ReportResponse Report(const std::string& worker,
                            const std::vector<v1::TaskResult>& results) {
    absl::StatusOr<v1::ReportResponse> response = TryReport(worker, results);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : v1::ReportResponse();
  }

  bool Heartbeat(const std::string& worker, std::vector<int64_t> leases) {
    v1::HeartbeatRequest request;
    request.set_worker_id(worker);
    for (int64_t id : leases) request.add_held_lease_ids(id);
    return coordinator_->Heartbeat(request).known();
  }

  v1::Job GetJob(const std::string& id) {
    absl::StatusOr<v1::Job> job = coordinator_->GetJob(id);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }

  v1::Task StoredTask(const std::string& job, int64_t seq, int sample = 0) {
    absl::StatusOr<std::optional<v1::Task>> task =
        store_->GetTask(job, seq, sample);
    EXPECT_TRUE(task.ok() && task->has_value()) << job << "/" << seq;
    return task.ok() && task->has_value() ? **task : v1::Task();
  }
  std::vector<v1::Task> StoredTasks(const std::string& job) {
    std::vector<v1::Task> out;
    absl::Status s = store_->ScanTasks(job, 0, 0, [&](const v1::Task& t) {
      out.push_back(t);
      return true;
    });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }
  v1::Answer StoredAnswer(const std::string& request_key) {
    absl::StatusOr<std::optional<v1::Answer>> answer =
        store_->GetAnswer(request_key);
    EXPECT_TRUE(answer.ok() && answer->has_value());
    return answer.ok() && answer->has_value() ? **answer : v1::Answer();
  }

  std::vector<v1::ExportRecord> Export(const std::vector<std::string>& jobs,
                                       bool include_duplicates = false,
                                       bool include_failed = false) {
    v1::ExportRequest request;
    for (const std::string& j : jobs) request.add_job_ids(j);
    request.set_include_duplicates(include_duplicates);
    request.set_include_failed(include_failed);
    std::vector<v1::ExportRecord> out;
    absl::Status s = coordinator_->Export(request, [&](v1::ExportRecord&& r) {
      out.push_back(std::move(r));
      return true;
    });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  TempDir dir_;
  FakeClock clock_;
  std::vector<TeacherProfile> teachers_ = {Profile("sim")};
  CoordinatorOptions options_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<FaultyStore> faulty_;  // what the coordinator uses
  std::unique_ptr<Coordinator> coordinator_;
};

// ---------------------------------------------------------------- Submission

TEST_F(CoordinatorTest, SubmitCreatesARunningJobWithCounters) {
  v1::JobSpec spec = Spec(2);
  spec.set_system_prompt("Be brief.");
  spec.set_source("prompts.jsonl");
  v1::Job job = MustSubmit(
      {PromptLine("a"), "", R"({"id": "x", "prompt": "b"})", PromptLine("c")},
      spec);
  EXPECT_EQ(job.id(), "job-000001");
  EXPECT_EQ(job.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(job.counters().prompts(), 3);
  EXPECT_EQ(job.counters().tasks_total(), 6);
  EXPECT_EQ(job.counters().tasks_done(), 0);
  EXPECT_EQ(job.created_ms(), clock_.WallMillis());
  EXPECT_EQ(job.spec().source(), "prompts.jsonl");

  std::vector<v1::Job> listed = coordinator_->ListJobs();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].id(), job.id());
  EXPECT_EQ(GetJob(job.id()).counters().tasks_total(), 6);
  EXPECT_EQ((*store_->GetJob(job.id()))->state(), v1::JOB_STATE_RUNNING);

  std::vector<v1::Task> tasks = StoredTasks(job.id());
  ASSERT_EQ(tasks.size(), 6u);
  for (size_t i = 0; i < tasks.size(); ++i) {
    EXPECT_EQ(tasks[i].prompt_seq(), static_cast<int64_t>(i / 2));
    EXPECT_EQ(tasks[i].sample(), static_cast<int>(i % 2));
    EXPECT_EQ(tasks[i].state(), v1::TASK_STATE_PENDING);
    EXPECT_EQ(tasks[i].request_key().size(), 16u);
  }

  v1::Prompt first = **store_->GetPrompt(job.id(), 0);
  EXPECT_EQ(first.id(), "1");
  ASSERT_EQ(first.messages_size(), 2);
  EXPECT_EQ(first.messages(0).role(), "system");
  EXPECT_EQ(first.messages(0).content(), "Be brief.");
  EXPECT_EQ(first.messages(1).content(), "a");
  v1::Prompt second = **store_->GetPrompt(job.id(), 1);
  EXPECT_EQ(second.id(), "x");
  EXPECT_EQ(second.line(), 3);
  v1::Prompt third = **store_->GetPrompt(job.id(), 2);
  EXPECT_EQ(third.id(), "4");
  EXPECT_EQ(third.line(), 4);
}

TEST_F(CoordinatorTest, LineNumbersContinueAcrossAddLinesCalls) {
  absl::StatusOr<std::unique_ptr<Submission>> sub =
      coordinator_->BeginSubmission(Spec());
  ASSERT_TRUE(sub.ok()) << sub.status();
  ASSERT_TRUE((*sub)->AddLines(Lines({PromptLine("a"), PromptLine("b")})).ok());
  absl::Status s = (*sub)->AddLines(Lines({"", "{oops"}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), StartsWith("line 4: "));
}

TEST_F(CoordinatorTest, BadLineRejectsTheWholeSubmission) {
  absl::StatusOr<std::unique_ptr<Submission>> sub =
      coordinator_->BeginSubmission(Spec());
  ASSERT_TRUE(sub.ok()) << sub.status();
  const std::string job_id = (*sub)->job_id();
  absl::Status s = (*sub)->AddLines(
      Lines({PromptLine("a"), R"({"prompt": "b")", PromptLine("c")}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), StartsWith("line 2: "));
  sub->reset();  // as the gRPC service does when it returns the error

  EXPECT_TRUE(coordinator_->ListJobs().empty());
  EXPECT_EQ(coordinator_->GetJob(job_id).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->ListJobs()->empty());
  EXPECT_TRUE(StoredTasks(job_id).empty());
  EXPECT_FALSE(store_->GetPrompt(job_id, 0)->has_value());
}

// Splits are assigned by id: two prompts with one id would land together
// and one of them could not be told apart in the dataset.
TEST_F(CoordinatorTest, DuplicateIdsRejectTheSubmissionNamingBothLines) {
  // Across a flush, so the first id is found in the store, not in memory.
  options_.submit_flush_prompts = 2;
  Restart();
  absl::StatusOr<v1::Job> job = Submit(
      {R"({"id": "q1", "prompt": "a"})", R"({"id": "q2", "prompt": "b"})", "",
       R"({"id": "q3", "prompt": "c"})", R"({"id": "q1", "prompt": "d"})"});
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(job.status().message()),
              StartsWith("line 5: duplicate id \"q1\", first on line 1"));
  EXPECT_TRUE(coordinator_->ListJobs().empty());
  EXPECT_TRUE(store_->ListJobs()->empty());

  // Within one batch, and an explicit id equal to another line's number.
  job = Submit({PromptLine("a"), R"({"id": 1, "prompt": "b"})"});
  ASSERT_FALSE(job.ok());
  EXPECT_THAT(std::string(job.status().message()),
              StartsWith("line 2: duplicate id \"1\", first on line 1"));

  // The same ids in another job are fine, and so is the first file again
  // once the duplicate is gone: nothing of the refused ones was kept.
  EXPECT_TRUE(Submit({R"({"id": "q1", "prompt": "a"})",
                      R"({"id": "q2", "prompt": "b"})",
                      R"({"id": "q3", "prompt": "c"})"})
                  .ok());
  EXPECT_TRUE(Submit({R"({"id": "q1", "prompt": "x"})"}).ok());
}

// A large chunk is parsed on several threads (one per core) and taken in
// order: every prompt keeps its line, the first bad line is the one named,
// and ids are checked across the parts.
TEST_F(CoordinatorTest, ALargeChunkIsCheckedInLineOrder) {
  constexpr int kLines = 3000;
  std::vector<std::string> lines;
  for (int i = 0; i < kLines; ++i) lines.push_back(PromptLine(absl::StrCat("p", i)));
  v1::Job job = MustSubmit(lines);
  EXPECT_EQ(job.counters().prompts(), kLines);
  for (int seq : {0, 1, kLines / 2, kLines - 1}) {
    std::optional<v1::Prompt> prompt = *store_->GetPrompt(job.id(), seq);
    ASSERT_TRUE(prompt.has_value()) << seq;
    EXPECT_EQ(prompt->line(), seq + 1);
    EXPECT_EQ(prompt->messages(0).content(), absl::StrCat("p", seq));
  }

  // Two bad lines in different parts: the earlier is named.
  std::vector<std::string> bad = lines;
  bad[2500] = "{oops";
  bad[700] = R"({"prompt": 7})";
  absl::StatusOr<v1::Job> refused = Submit(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), StartsWith("line 701: "));

  // A duplicate id across the parts.
  std::vector<std::string> dup = lines;
  dup[100] = R"({"id": "same", "prompt": "a"})";
  dup[2900] = R"({"id": "same", "prompt": "b"})";
  refused = Submit(dup);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()),
              StartsWith("line 2901: duplicate id \"same\", first on line 101"));
  EXPECT_EQ(coordinator_->ListJobs().size(), 1u);
}

TEST_F(CoordinatorTest, SubmissionLeavesNoIdsInScratchSpace) {
  v1::Job job = MustSubmit({R"({"id": "q1", "prompt": "a"})"});
  std::string key = "\x81" + job.id();
  key.push_back('\0');
  key += "q1";
  EXPECT_FALSE(store_->FindScratch(key)->has_value());
}

// `distillery run` on a data dir with an interrupted job: the old job stays
// as it was; only the new job and a job named to resume are harvested.
TEST_F(CoordinatorTest, HeldRecoveredJobsAreNeverLeased) {
  v1::Job old_job = MustSubmit(PromptLines({"a", "b"}));
  v1::Job resumed = MustSubmit(PromptLines({"c"}));
  options_.hold_recovered_jobs = true;
  options_.resume_recovered_jobs = {resumed.id()};
  Restart();
  v1::Job fresh = MustSubmit(PromptLines({"d"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  std::set<std::string> jobs;
  for (const v1::LeasedTask& t : tasks) jobs.insert(t.job_id());
  EXPECT_EQ(tasks.size(), 2u);
  EXPECT_EQ(jobs, (std::set<std::string>{resumed.id(), fresh.id()}));
  v1::Job held = GetJob(old_job.id());
  EXPECT_EQ(held.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(held.counters().tasks_done(), 0);
  // A coordinator without the option harvests it as before.
  options_.hold_recovered_jobs = false;
  Restart();
  int old_tasks = 0;
  for (const v1::LeasedTask& t : Lease(Register(), 10)) {
    old_tasks += t.job_id() == old_job.id();
  }
  EXPECT_EQ(old_tasks, 2);
}

TEST_F(CoordinatorTest, SubmissionWritesInBatchesInvisiblyUntilCommit) {
  options_.submit_flush_prompts = 2;
  Restart();
  absl::StatusOr<std::unique_ptr<Submission>> sub =
      coordinator_->BeginSubmission(Spec());
  ASSERT_TRUE(sub.ok()) << sub.status();
  const std::string job_id = (*sub)->job_id();
  ASSERT_TRUE((*sub)->AddLines(Lines(PromptLines({"a", "b", "c"}))).ok());
  // Two prompts reached the store, under a job nobody sees yet.
  EXPECT_EQ(StoredTasks(job_id).size(), 2u);
  EXPECT_EQ((*store_->GetJob(job_id))->state(), v1::JOB_STATE_SUBMITTING);
  EXPECT_TRUE(coordinator_->ListJobs().empty());
  const std::string w = Register();
  EXPECT_TRUE(Lease(w, 10).empty());

  absl::StatusOr<v1::Job> job = (*sub)->Commit();
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(job->counters().prompts(), 3);
  EXPECT_EQ(StoredTasks(job_id).size(), 3u);
  EXPECT_EQ(Lease(w, 10).size(), 3u);
  // Commit is once only.
  EXPECT_EQ((*sub)->Commit().status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(CoordinatorTest, BadLineAfterAFlushLeavesNoTrace) {
  options_.submit_flush_prompts = 2;
  Restart();
  std::vector<std::string> lines =
      PromptLines({"l1", "l2", "l3", "l4", "l5", "l6"});
  lines.push_back("not json");  // line 7, after three flushes
  lines.push_back(PromptLine("l8"));
  absl::StatusOr<std::unique_ptr<Submission>> sub =
      coordinator_->BeginSubmission(Spec());
  ASSERT_TRUE(sub.ok()) << sub.status();
  const std::string job_id = (*sub)->job_id();
  absl::Status s = (*sub)->AddLines(Lines(lines));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), StartsWith("line 7: "));
  sub->reset();

  EXPECT_TRUE(coordinator_->ListJobs().empty());
  EXPECT_TRUE(store_->ListJobs()->empty());
  EXPECT_TRUE(StoredTasks(job_id).empty());
  for (int seq = 0; seq < 6; ++seq) {
    EXPECT_FALSE(store_->GetPrompt(job_id, seq)->has_value()) << seq;
  }
}

// Was a bug (services/coordinator/coordinator.cc, Submission::AddLines): a rejected
// line returns the error but leaves the Submission open. Its flushed prompts
// stay in the store until the object dies, and a caller that goes on to
// Commit() gets a RUNNING job of the lines before the bad one (here 6 of 8),
// although "any bad line rejects the whole submission" (client_service.proto).
// Fix: on a parse or flush error, call Abort() before returning it.
TEST_F(CoordinatorTest, RejectedSubmissionCannotBeCommitted) {
  options_.submit_flush_prompts = 2;
  Restart();
  std::vector<std::string> lines =
      PromptLines({"l1", "l2", "l3", "l4", "l5", "l6"});
  lines.push_back("not json");
  lines.push_back(PromptLine("l8"));
  absl::StatusOr<std::unique_ptr<Submission>> sub =
      coordinator_->BeginSubmission(Spec());
  ASSERT_TRUE(sub.ok()) << sub.status();
  const std::string job_id = (*sub)->job_id();
  ASSERT_FALSE((*sub)->AddLines(Lines(lines)).ok());

  EXPECT_TRUE(StoredTasks(job_id).empty())
      << "prompts of a rejected submission are still stored";
  absl::StatusOr<v1::Job> committed = (*sub)->Commit();
  EXPECT_FALSE(committed.ok()) << "committed a rejected submission with "
                               << committed->counters().prompts() << " prompts";
  EXPECT_TRUE(coordinator_->ListJobs().empty());
}

TEST_F(CoordinatorTest, SubmissionDroppedWithoutCommitLeavesNoTrace) {
  std::string job_id;
  {
    absl::StatusOr<std::unique_ptr<Submission>> sub =
        coordinator_->BeginSubmission(Spec());
    ASSERT_TRUE(sub.ok()) << sub.status();
    job_id = (*sub)->job_id();
    ASSERT_TRUE((*sub)->AddLines(Lines(PromptLines({"a", "b"}))).ok());
  }
  EXPECT_TRUE(store_->ListJobs()->empty());
  EXPECT_TRUE(StoredTasks(job_id).empty());
  EXPECT_TRUE(coordinator_->ListJobs().empty());
}

TEST_F(CoordinatorTest, SubmissionWithoutPromptsIsRejected) {
  absl::StatusOr<v1::Job> job = Submit({"", "   ", "\t"});
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(), HasSubstr("no prompts"));
  EXPECT_TRUE(store_->ListJobs()->empty());
  EXPECT_TRUE(coordinator_->ListJobs().empty());
}

TEST_F(CoordinatorTest, InvalidSpecsAreRejectedBeforeAnythingIsWritten) {
  struct Case {
    const char* name;
    std::function<void(v1::JobSpec&)> mutate;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"no teacher", [](v1::JobSpec& s) { s.clear_teacher(); },
       "teacher is required"},
      {"unknown teacher", [](v1::JobSpec& s) { s.set_teacher("nope"); },
       "unknown teacher 'nope'; known: sim"},
      {"no model", [](v1::JobSpec& s) { s.clear_model(); },
       "model is required"},
      {"samples 0", [](v1::JobSpec& s) { s.set_samples(0); },
       "samples must be between 1 and 1000, got 0"},
      {"samples -1", [](v1::JobSpec& s) { s.set_samples(-1); }, "samples"},
      {"samples 1001", [](v1::JobSpec& s) { s.set_samples(1001); }, "got 1001"},
      {"max_tokens",
       [](v1::JobSpec& s) { s.mutable_params()->set_max_tokens(-1); },
       "max_tokens"},
      {"temperature",
       [](v1::JobSpec& s) { s.mutable_params()->set_temperature(2.5); },
       "temperature"},
      {"top_p 0", [](v1::JobSpec& s) { s.mutable_params()->set_top_p(0); },
       "top_p"},
      {"top_p 1.5", [](v1::JobSpec& s) { s.mutable_params()->set_top_p(1.5); },
       "top_p"},
      {"system", [](v1::JobSpec& s) { s.set_system_prompt("\xC0\xAF"); },
       "UTF-8"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    v1::JobSpec spec = Spec();
    c.mutate(spec);
    absl::StatusOr<std::unique_ptr<Submission>> sub =
        coordinator_->BeginSubmission(spec);
    ASSERT_FALSE(sub.ok());
    EXPECT_EQ(sub.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(sub.status().message(), HasSubstr(c.message));
  }
  EXPECT_TRUE(store_->ListJobs()->empty());
  // No job id was used up either.
  EXPECT_EQ(MustSubmit({PromptLine("a")}).id(), "job-000001");
}

// ---------------------------------------------------------------- Leasing

TEST_F(CoordinatorTest, RegisterGivesDistinctIdsAndTimings) {
  v1::RegisterRequest request;
  request.set_name("box");
  v1::RegisterResponse a = coordinator_->Register(request);
  v1::RegisterResponse b = coordinator_->Register(request);
  EXPECT_NE(a.worker_id(), b.worker_id());
  EXPECT_THAT(a.worker_id(), HasSubstr("box"));
  EXPECT_EQ(a.lease_ms(), 60'000);
  EXPECT_EQ(a.heartbeat_ms(), 5'000);
  EXPECT_TRUE(Heartbeat(a.worker_id(), {}));
  EXPECT_FALSE(Heartbeat("ghost", {}));
}

TEST_F(CoordinatorTest, LeaseFromAnUnknownWorkerIsFailedPrecondition) {
  MustSubmit({PromptLine("a")});
  absl::StatusOr<v1::LeaseResponse> response = TryLease("ghost", 10);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(response.status().message(), HasSubstr("ghost"));
}

TEST_F(CoordinatorTest, LeaseReturnsTasksWithMessagesAndParams) {
  v1::JobSpec spec = Spec();
  spec.set_system_prompt("Be brief.");
  spec.mutable_params()->set_max_tokens(64);
  spec.mutable_params()->set_temperature(0.7);
  spec.mutable_params()->add_stop("\n\n");
  v1::Job job = MustSubmit(PromptLines({"a", "b", "c"}), spec);
  const std::string w = Register();

  EXPECT_TRUE(Lease(w, 0).empty());
  absl::StatusOr<v1::LeaseResponse> response = TryLease(w, 2);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->lease_deadline_ms(), 60'000);
  ASSERT_EQ(response->tasks_size(), 2);

  const v1::LeasedTask& t0 = response->tasks(0);
  EXPECT_EQ(t0.job_id(), job.id());
  EXPECT_EQ(t0.prompt_seq(), 0);
  EXPECT_EQ(t0.sample(), 0);
  EXPECT_EQ(t0.teacher(), "sim");
  EXPECT_EQ(t0.model(), "gpt-test");
  ASSERT_EQ(t0.messages_size(), 2);
  EXPECT_EQ(t0.messages(0).role(), "system");
  EXPECT_EQ(t0.messages(0).content(), "Be brief.");
  EXPECT_EQ(t0.messages(1).role(), "user");
  EXPECT_EQ(t0.messages(1).content(), "a");
  EXPECT_EQ(t0.params().max_tokens(), 64);
  EXPECT_DOUBLE_EQ(t0.params().temperature(), 0.7);
  ASSERT_EQ(t0.params().stop_size(), 1);
  EXPECT_EQ(t0.params().stop(0), "\n\n");
  EXPECT_FALSE(t0.params().has_seed());
  EXPECT_EQ(t0.request_key(), StoredTask(job.id(), 0).request_key());
  EXPECT_EQ(t0.request_key(),
            RequestKey(teachers_[0], "gpt-test", t0.messages(), spec.params(), 0));

  const v1::LeasedTask& t1 = response->tasks(1);
  EXPECT_EQ(t1.prompt_seq(), 1);
  EXPECT_EQ(t1.messages(1).content(), "b");
  EXPECT_NE(t0.lease_id(), t1.lease_id());
  EXPECT_NE(t0.request_key(), t1.request_key());

  std::vector<v1::LeasedTask> rest = Lease(w, 10);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].prompt_seq(), 2);
  EXPECT_TRUE(Lease(w, 10).empty());
}

TEST_F(CoordinatorTest, LeasePagesThroughTheStoreInScanBatches) {
  options_.scan_batch = 2;
  Restart();
  // Prompt "b" is answered by an earlier job, so its tasks are skipped.
  MustSubmit(PromptLines({"b"}), Spec(2));
  const std::string w = Register();
  std::vector<v1::LeasedTask> pre = Lease(w, 10);
  ASSERT_EQ(pre.size(), 2u);
  Report(w, {Success(pre[0], "b0"), Success(pre[1], "b1")});

  v1::Job job = MustSubmit(PromptLines({"a", "b", "c", "d"}), Spec(2));
  std::vector<std::pair<int64_t, int>> leased;
  for (const v1::LeasedTask& t : Lease(w, 3)) {
    leased.emplace_back(t.prompt_seq(), t.sample());
  }
  for (const v1::LeasedTask& t : Lease(w, 10)) {
    leased.emplace_back(t.prompt_seq(), t.sample());
  }
  EXPECT_EQ(leased, (std::vector<std::pair<int64_t, int>>{
                        {0, 0}, {0, 1}, {2, 0}, {2, 1}, {3, 0}, {3, 1}}));
  EXPECT_TRUE(Lease(w, 10).empty());
  EXPECT_EQ(GetJob(job.id()).counters().cache_hits(), 2);
}

// A lease is one gRPC message: its tasks stop at max_lease_bytes, whatever
// max_tasks asks, and always include one even when it alone is larger.
TEST_F(CoordinatorTest, LeaseIsCutToItsByteBudget) {
  options_.max_lease_bytes = 10 << 10;
  Restart();
  std::vector<std::string> prompts;
  for (int i = 0; i < 10; ++i) {
    prompts.push_back(std::to_string(i) + std::string(3000, 'x'));
  }
  prompts.push_back(std::string(30000, 'y'));  // over the budget on its own
  MustSubmit(PromptLines(prompts));
  const std::string w = Register();
  std::set<int64_t> seen;
  int leases = 0;
  while (true) {
    absl::StatusOr<v1::LeaseResponse> response = TryLease(w, 100);
    ASSERT_TRUE(response.ok()) << response.status();
    if (response->tasks_size() == 0) break;
    ++leases;
    if (response->tasks_size() > 1) {
      EXPECT_LE(response->ByteSizeLong(), options_.max_lease_bytes);
    }
    EXPECT_LE(response->tasks_size(), 3);
    for (const v1::LeasedTask& t : response->tasks()) {
      EXPECT_TRUE(seen.insert(t.prompt_seq()).second) << t.prompt_seq();
    }
  }
  EXPECT_EQ(seen.size(), 11u) << "every task is leased, once";
  EXPECT_GE(leases, 5);
}

TEST_F(CoordinatorTest, LeaseServesOnlyTheRequestedTeachers) {
  teachers_ = {Profile("sim"), Profile("other")};
  Restart();
  v1::JobSpec other = Spec();
  other.set_teacher("other");
  v1::Job other_job = MustSubmit(PromptLines({"a", "b"}), other);
  v1::Job sim_job = MustSubmit(PromptLines({"c"}));
  const std::string w = Register();

  EXPECT_TRUE(Lease(w, 10, {}).empty());
  EXPECT_TRUE(Lease(w, 10, {"gemini"}).empty());
  std::vector<v1::LeasedTask> sim = Lease(w, 10, {"sim"});
  ASSERT_EQ(sim.size(), 1u);
  EXPECT_EQ(sim[0].job_id(), sim_job.id());
  EXPECT_EQ(sim[0].teacher(), "sim");
  std::vector<v1::LeasedTask> others = Lease(w, 10, {"sim", "other"});
  ASSERT_EQ(others.size(), 2u);
  EXPECT_EQ(others[0].job_id(), other_job.id());
  EXPECT_EQ(others[1].teacher(), "other");
}

// A long poll (wait_ms): an idle worker's lease waits for work and is
// answered when a job is submitted, with the clock standing still.
TEST_F(CoordinatorTest, AnIdleLeaseWaitsAndIsAnsweredWhenAJobIsSubmitted) {
  const std::string w = Register();
  const v1::LeaseRequest request =
      LeaseRequestFor(w, 10, {"sim"}, 1000);
  absl::StatusOr<v1::LeaseResponse> response;
  std::thread lease([&] { response = coordinator_->Lease(request); });
  ASSERT_TRUE(clock_.WaitForWaiters(1)) << "the lease did not wait";
  v1::Job job = MustSubmit(PromptLines({"a", "b", "c"}));
  lease.join();
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->tasks_size(), 3);
  EXPECT_EQ(response->tasks(0).job_id(), job.id());
  EXPECT_TRUE(Lease(w, 10).empty());  // all three were leased
}

TEST_F(CoordinatorTest, ALeaseWaitEndsEmptyAtItsDeadlineCappedAtOneSecond) {
  // A job of another teacher changes the jobs, wakes the lease and still
  // leaves nothing for it: it waits on to its deadline.
  teachers_ = {Profile("sim"), Profile("other")};
  Restart();
  const std::string w = Register();
  const v1::LeaseRequest request =
      LeaseRequestFor(w, 10, {"sim"}, 600'000);  // capped at kMaxLeaseWait
  absl::StatusOr<v1::LeaseResponse> response;
  std::thread lease([&] { response = coordinator_->Lease(request); });
  ASSERT_TRUE(clock_.WaitForWaiters(1));
  const int64_t awaits = clock_.awaits_started();
  v1::JobSpec other = Spec();
  other.set_teacher("other");
  MustSubmit(PromptLines({"x"}), other);
  ASSERT_TRUE(clock_.WaitForNextAwait(awaits)) << "the lease did not wait on";
  clock_.Advance(kMaxLeaseWait);
  lease.join();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->tasks_size(), 0);
  EXPECT_GT(response->lease_deadline_ms(), 0);
}

TEST_F(CoordinatorTest, EndLeaseWaitsEndsAWaitingLease) {
  const std::string w = Register();
  const v1::LeaseRequest request =
      LeaseRequestFor(w, 10, {"sim"}, 1000);
  absl::StatusOr<v1::LeaseResponse> response;
  std::thread lease([&] { response = coordinator_->Lease(request); });
  ASSERT_TRUE(clock_.WaitForWaiters(1));
  coordinator_->EndLeaseWaits();
  lease.join();  // with the clock standing still
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->tasks_size(), 0);
}

TEST_F(CoordinatorTest, AWaitingLeaseFromAnUnknownWorkerFailsAtOnce) {
  const v1::LeaseRequest request =
      LeaseRequestFor("ghost", 10, {"sim"}, 1000);
  absl::StatusOr<v1::LeaseResponse> response = coordinator_->Lease(request);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(CoordinatorTest, ReportSuccessCommitsTheAnswer) {
  v1::Job job = MustSubmit(PromptLines({"a", "b"}));
  const std::string w = Register("worker-a");
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 2u);

  v1::ReportResponse r = Report(w, {Success(tasks[0], "Answer A.", 2)});
  EXPECT_EQ(r.accepted(), 1);
  EXPECT_EQ(r.ignored(), 0);

  v1::Job after = GetJob(job.id());
  EXPECT_EQ(after.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(after.counters().tasks_done(), 1);
  EXPECT_EQ(after.counters().teacher_requests(), 1);
  EXPECT_EQ(after.counters().prompt_tokens(), 10);
  EXPECT_EQ(after.counters().completion_tokens(), 5);
  EXPECT_EQ(after.counters().reasoning_tokens(), 2);
  EXPECT_EQ(after.counters().cache_hits(), 0);
  EXPECT_EQ(after.finished_ms(), 0);
  // The counters are durable with the task, not only in memory.
  EXPECT_EQ((*store_->GetJob(job.id()))->counters().tasks_done(), 1);

  v1::Task task = StoredTask(job.id(), 0);
  EXPECT_EQ(task.state(), v1::TASK_STATE_DONE);
  EXPECT_EQ(task.attempts(), 2);
  EXPECT_FALSE(task.from_cache());
  EXPECT_FALSE(task.duplicate());
  EXPECT_EQ(StoredTask(job.id(), 1).state(), v1::TASK_STATE_PENDING);

  v1::Answer answer = StoredAnswer(tasks[0].request_key());
  EXPECT_EQ(answer.content(), "Answer A.");
  EXPECT_EQ(answer.reasoning(), "reasoning for Answer A.");
  EXPECT_EQ(answer.finish_reason(), "stop");
  EXPECT_EQ(answer.teacher(), "sim");
  EXPECT_EQ(answer.model(), "gpt-test");
  EXPECT_EQ(answer.sample(), 0);
  EXPECT_EQ(answer.worker(), "worker-a");
  EXPECT_EQ(answer.request_key(), tasks[0].request_key());
  EXPECT_EQ(answer.received_ms(), clock_.WallMillis());
  EXPECT_EQ(answer.usage().prompt_tokens(), 10);
  EXPECT_TRUE(answer.duplicate_of().empty());
  EXPECT_EQ(answer.raw_body(), "{\"raw\": true}");

  clock_.Advance(std::chrono::seconds(3));
  EXPECT_EQ(Report(w, {Success(tasks[1], "Answer B.")}).accepted(), 1);
  v1::Job done = GetJob(job.id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(done.counters().tasks_done(), 2);
  EXPECT_EQ(done.finished_ms(), clock_.WallMillis());
  EXPECT_EQ((*store_->GetJob(job.id()))->state(), v1::JOB_STATE_COMPLETED);
}

TEST_F(CoordinatorTest, SecondJobWithTheSamePromptsIsAnsweredFromCache) {
  v1::Job first = MustSubmit(PromptLines({"a", "b"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 2u);
  Report(w, {Success(tasks[0], "A"), Success(tasks[1], "B")});
  ASSERT_EQ(GetJob(first.id()).state(), v1::JOB_STATE_COMPLETED);

  v1::Job second = MustSubmit(PromptLines({"a", "b"}));
  EXPECT_EQ(second.state(), v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(Lease(w, 10).empty()) << "an answered request was sent again";
  v1::Job after = GetJob(second.id());
  EXPECT_EQ(after.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(after.counters().tasks_done(), 2);
  EXPECT_EQ(after.counters().cache_hits(), 2);
  EXPECT_EQ(after.counters().teacher_requests(), 0);
  for (const v1::Task& t : StoredTasks(second.id())) {
    EXPECT_EQ(t.state(), v1::TASK_STATE_DONE);
    EXPECT_TRUE(t.from_cache());
  }
  std::vector<v1::ExportRecord> records = Export({second.id()});
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].answer().content(), "A");
  EXPECT_EQ(records[1].answer().content(), "B");

  // A different model is a different request: nothing is cached.
  v1::JobSpec other_model = Spec();
  other_model.set_model("gpt-test-2");
  MustSubmit(PromptLines({"a", "b"}), other_model);
  EXPECT_EQ(Lease(w, 10).size(), 2u);
}

// A report's store write runs outside the coordinator's lock: leases are
// handed out meanwhile, but not the report's request keys (a task with the
// same prompt waits for the answer being written, then takes it from the
// cache: paid once), and the job counts nothing until the write is stored.
TEST_F(CoordinatorTest, LeasesGoOnWhileAReportIsWrittenAndItsKeysWait) {
  v1::Job job = MustSubmit(PromptLines({"one", "two", "one"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> first = Lease(w, 1);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(first[0].prompt_seq(), 0);

  absl::Notification gate;
  faulty_->apply_gate = &gate;
  std::thread reporter([&] { Report(w, {Success(first[0], "ONE")}); });
  faulty_->apply_entered.WaitForNotification();

  const std::string other = Register("other");
  std::vector<v1::LeasedTask> during = Lease(other, 10);
  ASSERT_EQ(during.size(), 1u) << "prompt 2 repeats prompt 0, being written";
  EXPECT_EQ(during[0].prompt_seq(), 1);
  EXPECT_EQ(GetJob(job.id()).counters().tasks_done(), 0);
  EXPECT_EQ(StoredTask(job.id(), 0).state(), v1::TASK_STATE_PENDING);

  gate.Notify();
  reporter.join();
  v1::Job after = GetJob(job.id());
  EXPECT_EQ(after.counters().tasks_done(), 2);  // prompt 0, and 2 from it
  EXPECT_EQ(after.counters().cache_hits(), 1);
  EXPECT_EQ(after.counters().teacher_requests(), 1);
  EXPECT_TRUE(StoredTask(job.id(), 2).from_cache());
  EXPECT_TRUE(Lease(other, 10).empty());

  Report(other, {Success(during[0], "TWO")});
  after = GetJob(job.id());
  EXPECT_EQ(after.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(after.counters().tasks_done(), 3);
  // The job record as stored matches memory: nothing written meanwhile
  // was lost under the report's record.
  Restart();
  EXPECT_EQ(GetJob(job.id()).counters().tasks_done(), 3);
  EXPECT_EQ(GetJob(job.id()).counters().cache_hits(), 1);
}

// A report whose store write fails changes nothing: the job counts nothing,
// the task stays pending, and the worker's retry of the same report
// commits it once.
TEST_F(CoordinatorTest, AReportWhoseWriteFailsCountsNothingAndItsRetryCommits) {
  v1::Job job = MustSubmit(PromptLines({"one"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 1);
  ASSERT_EQ(tasks.size(), 1u);

  faulty_->applies_before_failing = 0;
  absl::StatusOr<v1::ReportResponse> failed =
      TryReport(w, {Success(tasks[0], "ONE")});
  faulty_->applies_before_failing = -1;
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(failed.status().message(), HasSubstr("injected"));
  EXPECT_EQ(GetJob(job.id()).counters().tasks_done(), 0);
  EXPECT_EQ(StoredTask(job.id(), 0).state(), v1::TASK_STATE_PENDING);
  EXPECT_TRUE(Lease(w, 1).empty()) << "sent again while its answer is held";

  v1::ReportResponse retried = Report(w, {Success(tasks[0], "ONE")});
  EXPECT_EQ(retried.accepted(), 1);
  v1::Job after = GetJob(job.id());
  EXPECT_EQ(after.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(after.counters().tasks_done(), 1);
  EXPECT_EQ(after.counters().teacher_requests(), 1);
}

// The profile's settings are part of the request's identity: the same
// prompts under a profile pointed elsewhere, or asking for another
// response_format, are new requests (sent, not served from the cache), while
// a setting that does not change the answer (stream) still hits. Old tasks
// keep the keys they were stored with.
TEST_F(CoordinatorTest, AChangedTeacherProfileIsNotACacheHit) {
  v1::Job first = MustSubmit(PromptLines({"a", "b"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 2u);
  Report(w, {Success(tasks[0], "A"), Success(tasks[1], "B")});
  const std::string first_key = StoredTask(first.id(), 0).request_key();

  teachers_[0].stream = true;
  Restart();
  v1::Job streamed = MustSubmit(PromptLines({"a", "b"}));
  EXPECT_TRUE(Lease(Register(), 10).empty());
  EXPECT_EQ(GetJob(streamed.id()).counters().cache_hits(), 2);

  teachers_[0].base_url = "http://127.0.0.1:10/v1";
  Restart();
  EXPECT_EQ(StoredTask(first.id(), 0).request_key(), first_key);
  const std::string w2 = Register();
  v1::Job moved = MustSubmit(PromptLines({"a", "b"}));
  std::vector<v1::LeasedTask> again = Lease(w2, 10);
  ASSERT_EQ(again.size(), 2u) << "answers from the old base_url were served";
  EXPECT_NE(again[0].request_key(), first_key);
  Report(w2, {Success(again[0], "A2"), Success(again[1], "B2")});
  EXPECT_EQ(GetJob(moved.id()).counters().cache_hits(), 0);

  teachers_[0].response_format_json = R"({"type":"json_object"})";
  Restart();
  const std::string w3 = Register();
  v1::Job formatted = MustSubmit(PromptLines({"a", "b"}));
  EXPECT_EQ(Lease(w3, 10).size(), 2u)
      << "answers without the response_format were served";
  EXPECT_EQ(GetJob(formatted.id()).counters().cache_hits(), 0);
  EXPECT_EQ(GetJob(first.id()).state(), v1::JOB_STATE_COMPLETED);
}

TEST_F(CoordinatorTest, IdenticalPromptsInOneJobAreAskedOnce) {
  v1::Job job = MustSubmit(PromptLines({"same", "same", "other"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[0].prompt_seq(), 0);
  EXPECT_EQ(tasks[1].prompt_seq(), 2);

  Report(w, {Success(tasks[0], "S")});
  v1::Job after = GetJob(job.id());
  EXPECT_EQ(after.counters().tasks_done(), 2);
  EXPECT_EQ(after.counters().cache_hits(), 1);
  EXPECT_EQ(after.counters().teacher_requests(), 1);
  v1::Task waiter = StoredTask(job.id(), 1);
  EXPECT_EQ(waiter.state(), v1::TASK_STATE_DONE);
  EXPECT_TRUE(waiter.from_cache());
  EXPECT_TRUE(Lease(w, 10).empty());

  Report(w, {Success(tasks[1], "O")});
  EXPECT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(GetJob(job.id()).counters().tasks_done(), 3);
}

TEST_F(CoordinatorTest, WaitingDuplicateGoesBackWhenTheLeaseExpires) {
  v1::Job job = MustSubmit(PromptLines({"same", "same"}));
  const std::string w1 = Register("w1");
  ASSERT_EQ(Lease(w1, 10).size(), 1u);

  clock_.Advance(std::chrono::seconds(61));
  const std::string w2 = Register("w2");
  std::vector<v1::LeasedTask> again = Lease(w2, 10);
  ASSERT_EQ(again.size(), 1u) << "the key is sent once at a time";
  Report(w2, {Success(again[0], "S")});
  v1::Job after = GetJob(job.id());
  EXPECT_EQ(after.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(after.counters().tasks_done(), 2);
  EXPECT_EQ(after.counters().cache_hits(), 1);
}

TEST_F(CoordinatorTest, ExpiredLeaseGoesToAnotherWorker) {
  v1::Job job = MustSubmit(PromptLines({"a"}));
  const std::string w1 = Register("w1");
  const std::string w2 = Register("w2");
  std::vector<v1::LeasedTask> first = Lease(w1, 10);
  ASSERT_EQ(first.size(), 1u);

  clock_.Advance(std::chrono::seconds(59));
  EXPECT_TRUE(Lease(w2, 10).empty());
  clock_.Advance(std::chrono::seconds(2));
  std::vector<v1::LeasedTask> second = Lease(w2, 10);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].job_id(), job.id());
  EXPECT_EQ(second[0].prompt_seq(), 0);
  EXPECT_EQ(second[0].request_key(), first[0].request_key());
  EXPECT_NE(second[0].lease_id(), first[0].lease_id());
  EXPECT_EQ(second[0].messages(0).content(), "a");
}

TEST_F(CoordinatorTest, ExpireLeasesReturnsTasksWithoutALease) {
  MustSubmit(PromptLines({"a"}));
  const std::string w = Register();
  ASSERT_EQ(Lease(w, 10).size(), 1u);
  clock_.Advance(std::chrono::minutes(2));
  coordinator_->ExpireLeases();
  EXPECT_EQ(Lease(w, 10).size(), 1u);
}

TEST_F(CoordinatorTest, HeartbeatRenewsOnlyTheWorkersOwnLeases) {
  MustSubmit(PromptLines({"a"}));
  const std::string w1 = Register("w1");
  const std::string w2 = Register("w2");
  std::vector<v1::LeasedTask> tasks = Lease(w1, 10);
  ASSERT_EQ(tasks.size(), 1u);

  clock_.Advance(std::chrono::seconds(50));
  EXPECT_TRUE(Heartbeat(w1, {tasks[0].lease_id()}));
  clock_.Advance(std::chrono::seconds(50));  // 100 s after the lease
  EXPECT_TRUE(Lease(w2, 10).empty());
  // Another worker naming the lease does not renew it.
  EXPECT_TRUE(Heartbeat(w2, {tasks[0].lease_id()}));
  clock_.Advance(std::chrono::seconds(11));  // 61 s after the renewal
  EXPECT_EQ(Lease(w2, 10).size(), 1u);
}

TEST_F(CoordinatorTest, LateReportAfterExpiryIsAccepted) {
  v1::Job job = MustSubmit(PromptLines({"a"}));
  const std::string w1 = Register("w1");
  std::vector<v1::LeasedTask> tasks = Lease(w1, 10);
  ASSERT_EQ(tasks.size(), 1u);
  clock_.Advance(std::chrono::seconds(61));
  coordinator_->ExpireLeases();

  v1::ReportResponse r = Report(w1, {Success(tasks[0], "late but paid for")});
  EXPECT_EQ(r.accepted(), 1);
  EXPECT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(StoredAnswer(tasks[0].request_key()).content(),
            "late but paid for");
  // The returned task is done now: nobody gets it again.
  EXPECT_TRUE(Lease(Register("w2"), 10).empty());
}

TEST_F(CoordinatorTest, LateReportBeatsTheReLease) {
  v1::Job job = MustSubmit(PromptLines({"a"}));
  const std::string w1 = Register("w1");
  const std::string w2 = Register("w2");
  std::vector<v1::LeasedTask> first = Lease(w1, 10);
  ASSERT_EQ(first.size(), 1u);
  clock_.Advance(std::chrono::seconds(61));
  std::vector<v1::LeasedTask> second = Lease(w2, 10);
  ASSERT_EQ(second.size(), 1u);

  EXPECT_EQ(Report(w1, {Success(first[0], "from w1")}).accepted(), 1);
  v1::ReportResponse r = Report(w2, {Success(second[0], "from w2")});
  EXPECT_EQ(r.accepted(), 0);
  EXPECT_EQ(r.ignored(), 1);
  v1::Job after = GetJob(job.id());
  EXPECT_EQ(after.counters().tasks_done(), 1);
  EXPECT_EQ(after.counters().teacher_requests(), 1);
  EXPECT_EQ(StoredAnswer(first[0].request_key()).content(), "from w1");
}

TEST_F(CoordinatorTest, RepeatedOrMismatchedReportsAreIgnored) {
  v1::Job job = MustSubmit(PromptLines({"a", "b"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(Report(w, {Success(tasks[0], "first")}).accepted(), 1);

  v1::ReportResponse again = Report(w, {Success(tasks[0], "second")});
  EXPECT_EQ(again.accepted(), 0);
  EXPECT_EQ(again.ignored(), 1);
  v1::Job after = GetJob(job.id());
  EXPECT_EQ(after.counters().tasks_done(), 1);
  EXPECT_EQ(after.counters().teacher_requests(), 1);
  EXPECT_EQ(after.counters().prompt_tokens(), 10);
  EXPECT_EQ(StoredAnswer(tasks[0].request_key()).content(), "first");

  // A result whose request key is not the task's is not trusted.
  v1::TaskResult wrong = Success(tasks[1], "wrong");
  wrong.set_request_key(tasks[0].request_key());
  EXPECT_EQ(Report(w, {wrong}).ignored(), 1);
  EXPECT_EQ(StoredTask(job.id(), 1).state(), v1::TASK_STATE_PENDING);

  // Unknown jobs and tasks are ignored too.
  v1::TaskResult unknown = Success(tasks[1], "x");
  unknown.set_job_id("job-999999");
  EXPECT_EQ(Report(w, {unknown}).ignored(), 1);
}

// A report is committed as one batch: its results see each other as if
// each had been stored before the next.
TEST_F(CoordinatorTest, OneReportsResultsSeeEachOther) {
  v1::Job job = MustSubmit(PromptLines({"a", "b", "c"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 3u);
  v1::ReportResponse response =
      Report(w, {Success(tasks[0], "Same text."), Success(tasks[1], "Same text."),
                 Success(tasks[0], "Same task again."),
                 Success(tasks[2], "Other text.")});
  EXPECT_EQ(response.accepted(), 3);
  EXPECT_EQ(response.ignored(), 1);
  v1::Job after = GetJob(job.id());
  EXPECT_EQ(after.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(after.counters().tasks_done(), 3);
  EXPECT_EQ(after.counters().teacher_requests(), 3);
  EXPECT_EQ(after.counters().duplicate_answers(), 1);
  EXPECT_EQ(StoredAnswer(tasks[0].request_key()).content(), "Same text.");
  EXPECT_EQ(StoredAnswer(tasks[1].request_key()).duplicate_of(),
            tasks[0].request_key());
  EXPECT_EQ(StoredTask(job.id(), 0).attempts(), 1);

  // The job record written with the batch agrees after a restart.
  Restart();
  v1::Job reloaded = GetJob(job.id());
  EXPECT_EQ(reloaded.counters().tasks_done(), 3);
  EXPECT_EQ(reloaded.counters().duplicate_answers(), 1);
  EXPECT_EQ(reloaded.state(), v1::JOB_STATE_COMPLETED);
}

TEST_F(CoordinatorTest, IdenticalAnswersAreStoredOnce) {
  v1::Job job = MustSubmit(PromptLines({"a", "b", "c"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 3u);
  Report(w, {Success(tasks[0], "The same answer.")});
  Report(w, {Success(tasks[1], "  The same\nanswer. ")});
  Report(w, {Success(tasks[2], "A different answer.")});

  v1::Job after = GetJob(job.id());
  EXPECT_EQ(after.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(after.counters().tasks_done(), 3);
  EXPECT_EQ(after.counters().duplicate_answers(), 1);

  v1::Answer first = StoredAnswer(tasks[0].request_key());
  EXPECT_EQ(first.content(), "The same answer.");
  EXPECT_TRUE(first.duplicate_of().empty());
  v1::Answer dup = StoredAnswer(tasks[1].request_key());
  EXPECT_EQ(dup.duplicate_of(), tasks[0].request_key());
  EXPECT_EQ(dup.content(), "");
  EXPECT_EQ(dup.reasoning(), "");
  EXPECT_EQ(dup.raw_body(), "");
  EXPECT_EQ(dup.worker(), "w");  // provenance is kept
  EXPECT_TRUE(StoredTask(job.id(), 1).duplicate());
  EXPECT_FALSE(StoredTask(job.id(), 0).duplicate());

  std::vector<v1::ExportRecord> plain = Export({job.id()});
  ASSERT_EQ(plain.size(), 2u);
  EXPECT_EQ(plain[0].task().prompt_seq(), 0);
  EXPECT_EQ(plain[1].task().prompt_seq(), 2);

  std::vector<v1::ExportRecord> all = Export({job.id()}, true);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[1].task().prompt_seq(), 1);
  EXPECT_EQ(all[1].answer().content(), "The same answer.");
  EXPECT_EQ(all[1].answer().reasoning(), "reasoning for The same answer.");
  EXPECT_EQ(all[1].answer().duplicate_of(), tasks[0].request_key());
}

// Was a bug (services/coordinator/coordinator.cc, CompleteFromCacheLocked vs
// Export): a task answered from the cache by an answer that is itself a
// duplicate (duplicate_of set) is neither marked duplicate nor counted in
// duplicate_answers, yet Export drops it by default. Here job 2 reports
// tasks_done 1, duplicate_answers 0, and exports nothing.
// Fix: in CompleteFromCacheLocked read the cached answer and, when its
// duplicate_of is set, set task.duplicate and count duplicate_answers (or
// have Export skip only duplicates whose first answer it has emitted).
TEST_F(CoordinatorTest, CachedDuplicateIsCountedLikeOne) {
  MustSubmit(PromptLines({"a", "b"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 2u);
  Report(w, {Success(tasks[0], "Same."), Success(tasks[1], "Same.")});

  v1::Job second = MustSubmit(PromptLines({"b"}));
  EXPECT_TRUE(Lease(w, 10).empty());
  v1::Job after = GetJob(second.id());
  ASSERT_EQ(after.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(after.counters().cache_hits(), 1);
  EXPECT_EQ(Export({second.id()}, /*include_duplicates=*/true).size(), 1u);

  const int64_t expected_records =
      after.counters().tasks_done() - after.counters().duplicate_answers();
  EXPECT_EQ(static_cast<int64_t>(Export({second.id()}).size()),
            expected_records)
      << "tasks_done " << after.counters().tasks_done()
      << ", duplicate_answers " << after.counters().duplicate_answers();
}

TEST_F(CoordinatorTest, PermanentFailureDeadLettersTheTask) {
  v1::Job job = MustSubmit(PromptLines({"a", "b"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 2u);
  v1::ReportResponse r = Report(
      w,
      {Failure(tasks[0], v1::FAILURE_CLASS_PERMANENT, "HTTP 400: too long")});
  EXPECT_EQ(r.accepted(), 1);

  v1::Task failed = StoredTask(job.id(), 0);
  EXPECT_EQ(failed.state(), v1::TASK_STATE_FAILED);
  EXPECT_EQ(failed.last_error(), "HTTP 400: too long");
  EXPECT_EQ(failed.attempts(), 1);
  v1::Job after = GetJob(job.id());
  EXPECT_EQ(after.counters().tasks_failed(), 1);
  EXPECT_EQ(after.state(), v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(Lease(w, 10).empty()) << "a failed task was leased again";

  Report(w, {Success(tasks[1], "B")});
  after = GetJob(job.id());
  EXPECT_EQ(after.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(after.counters().tasks_done(), 1);
  EXPECT_EQ(after.counters().tasks_failed(), 1);
}

TEST_F(CoordinatorTest, ExhaustedRetriesFailTheTask) {
  v1::Job job = MustSubmit(PromptLines({"a"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 1u);
  Report(w, {Failure(tasks[0], v1::FAILURE_CLASS_RETRYABLE, "HTTP 503", 5)});
  v1::Task task = StoredTask(job.id(), 0);
  EXPECT_EQ(task.state(), v1::TASK_STATE_FAILED);
  EXPECT_EQ(task.attempts(), 5);
  // Its only task failed: the job failed (issue 18), with the reason.
  EXPECT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(GetJob(job.id()).error(), HasSubstr("HTTP 503"));
  EXPECT_EQ(GetJob(job.id()).counters().tasks_failed(), 1);
}

TEST_F(CoordinatorTest, RetryJobHarvestsDeadLettersAgain) {
  v1::Job job = MustSubmit(PromptLines({"a", "b", "c"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 3u);
  Report(w, {Failure(tasks[0], v1::FAILURE_CLASS_PERMANENT, "HTTP 400", 1),
             Success(tasks[1], "B"),
             Failure(tasks[2], v1::FAILURE_CLASS_RETRYABLE, "HTTP 503", 5)});
  ASSERT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_COMPLETED);
  ASSERT_EQ(GetJob(job.id()).counters().tasks_failed(), 2);

  absl::StatusOr<v1::Job> retried = coordinator_->RetryJob(job.id());
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(retried->finished_ms(), 0);
  EXPECT_EQ(retried->counters().tasks_failed(), 0);
  EXPECT_EQ(retried->counters().tasks_done(), 1);
  // Stored atomically with the tasks: a restart sees the same.
  EXPECT_EQ((*store_->GetJob(job.id()))->counters().tasks_failed(), 0);
  for (int64_t seq : {0, 2}) {
    v1::Task t = StoredTask(job.id(), seq);
    EXPECT_EQ(t.state(), v1::TASK_STATE_PENDING);
    EXPECT_EQ(t.attempts(), 0);
    EXPECT_EQ(t.last_error(), "");
  }
  EXPECT_EQ(StoredTask(job.id(), 1).state(), v1::TASK_STATE_DONE);

  std::vector<v1::LeasedTask> again = Lease(w, 10);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].prompt_seq(), 0);
  EXPECT_EQ(again[1].prompt_seq(), 2);
  Report(w, {Success(again[0], "A"), Success(again[1], "C")});
  v1::Job done = GetJob(job.id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(done.counters().tasks_done(), 3);
  EXPECT_EQ(done.counters().tasks_failed(), 0);
}

TEST_F(CoordinatorTest, RetryJobWithNothingFailedChangesNothing) {
  v1::Job job = MustSubmit(PromptLines({"a"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 1u);
  Report(w, {Success(tasks[0], "A")});
  absl::StatusOr<v1::Job> retried = coordinator_->RetryJob(job.id());
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->state(), v1::JOB_STATE_COMPLETED);
  EXPECT_TRUE(Lease(w, 10).empty());
}

// Issue 18: the retry rewrote finished_ms (an elapsed 1.4 s became 175 s).
TEST_F(CoordinatorTest, RetryJobWithNothingFailedKeepsItsFinishTime) {
  v1::Job job = MustSubmit(PromptLines({"a"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 1u);
  Report(w, {Success(tasks[0], "A")});
  const int64_t finished = GetJob(job.id()).finished_ms();
  ASSERT_GT(finished, 0);
  clock_.Advance(std::chrono::seconds(170));
  ASSERT_TRUE(coordinator_->RetryJob(job.id()).ok());
  EXPECT_EQ(GetJob(job.id()).finished_ms(), finished);
  EXPECT_EQ((*store_->GetJob(job.id()))->finished_ms(), finished);
}

// Issue 18: every task failed and the job said "completed".
TEST_F(CoordinatorTest, AJobWhoseEveryTaskFailedEndsFailedWithTheReason) {
  v1::Job job = MustSubmit(PromptLines({"a", "b", "c"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 3u);
  Report(w, {Failure(tasks[0], v1::FAILURE_CLASS_PERMANENT,
                     "HTTP 400 from teacher: bad (after 1 attempts)")});
  Report(w, {Failure(tasks[1], v1::FAILURE_CLASS_RETRYABLE,
                     "HTTP 500 from teacher (after 5 attempts)"),
             Failure(tasks[2], v1::FAILURE_CLASS_PERMANENT,
                     "HTTP 400 from teacher: bad (after 2 attempts)")});
  const v1::Job failed = GetJob(job.id());
  EXPECT_EQ(failed.state(), v1::JOB_STATE_FAILED);
  EXPECT_GT(failed.finished_ms(), 0);
  EXPECT_EQ(failed.error(),
            "all 3 tasks failed; most common error (2 of 3): HTTP 400 from "
            "teacher: bad");
  EXPECT_EQ((*store_->GetJob(job.id()))->state(), v1::JOB_STATE_FAILED);
  // Retry takes it back to running, error cleared.
  absl::StatusOr<v1::Job> retried = coordinator_->RetryJob(job.id());
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(retried->error(), "");
  // One answer is enough for "completed".
  tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 3u);
  Report(w, {Success(tasks[0], "A"),
             Failure(tasks[1], v1::FAILURE_CLASS_PERMANENT, "x"),
             Failure(tasks[2], v1::FAILURE_CLASS_PERMANENT, "y")});
  EXPECT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_COMPLETED);
}

// Issue 18: a rejected submission burnt a job id.
TEST_F(CoordinatorTest, ARejectedSubmissionUsesNoJobId) {
  EXPECT_FALSE(Submit({PromptLine("a"), "not json"}).ok());
  EXPECT_FALSE(Submit({}).ok());  // no prompts
  EXPECT_EQ(MustSubmit(PromptLines({"a"})).id(), "job-000001");
  EXPECT_FALSE(Submit({"{}"}).ok());
  EXPECT_EQ(MustSubmit(PromptLines({"b"})).id(), "job-000002");
}

// Issue 18: `--name w2` became worker "w2-w2"; answers name the worker as
// it was named, and jobs know how many live workers serve their teacher.
TEST_F(CoordinatorTest, WorkerIdsStartWithTheNameAndAnswersCarryIt) {
  v1::Job job = MustSubmit(PromptLines({"a"}));
  EXPECT_EQ(job.teacher_status().live_workers(), 0);
  const std::string w = Register("w2");
  EXPECT_THAT(w, StartsWith("w2-"));
  EXPECT_EQ(w.find("w2-w2"), std::string::npos) << w;
  EXPECT_EQ(GetJob(job.id()).teacher_status().live_workers(), 1);
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 1u);
  Report(w, {Success(tasks[0], "A")});
  EXPECT_EQ(StoredAnswer(tasks[0].request_key()).worker(), "w2");
  // Silent for three heartbeat intervals: no longer live.
  clock_.Advance(3 * options_.heartbeat_interval + std::chrono::seconds(1));
  EXPECT_EQ(GetJob(job.id()).teacher_status().live_workers(), 0);
}

// Issue 18: prompts repeated in a file were exported once per repeat.
TEST_F(CoordinatorTest, ExportLeavesOutARepeatedPromptsCachedAnswer) {
  v1::Job job = MustSubmit(PromptLines({"a", "b", "a", "a"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 2u);  // the repeats wait for the first answer
  Report(w, {Success(tasks[0], "A"), Success(tasks[1], "B")});
  ASSERT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_COMPLETED);
  ASSERT_EQ(GetJob(job.id()).counters().cache_hits(), 2);
  std::vector<v1::ExportRecord> records = Export({job.id()});
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].answer().content(), "A");
  EXPECT_EQ(records[1].answer().content(), "B");
  EXPECT_EQ(Export({job.id()}, /*include_duplicates=*/true).size(), 4u);
  // Exported with a later job that asked the same again: still once.
  v1::Job again = MustSubmit(PromptLines({"a"}));
  EXPECT_TRUE(Lease(w, 10).empty());  // from the cache
  ASSERT_EQ(GetJob(again.id()).state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(Export({job.id(), again.id()}).size(), 2u);
  EXPECT_EQ(Export({again.id()}).size(), 1u);
}

TEST_F(CoordinatorTest, RetryJobRejectsUnknownAndCancelledJobs) {
  absl::StatusOr<v1::Job> unknown = coordinator_->RetryJob("job-999999");
  EXPECT_TRUE(absl::IsNotFound(unknown.status())) << unknown.status();
  EXPECT_THAT(unknown.status().message(), HasSubstr("no job 'job-999999'"));
  v1::Job job = MustSubmit(PromptLines({"a"}));
  ASSERT_TRUE(coordinator_->CancelJob(job.id()).ok());
  absl::StatusOr<v1::Job> cancelled = coordinator_->RetryJob(job.id());
  EXPECT_TRUE(absl::IsFailedPrecondition(cancelled.status()))
      << cancelled.status();
  EXPECT_THAT(cancelled.status().message(), HasSubstr("cancelled"));
}

TEST_F(CoordinatorTest, OversizedLineRejectsTheSubmission) {
  options_.max_prompt_bytes = 64;
  Restart();
  const std::string big = PromptLine(std::string(100, 'x'));
  absl::StatusOr<v1::Job> job = Submit({PromptLine("ok"), big});
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().message(),
            absl::StrCat("line 2: prompt is ", big.size(),
                         " bytes, over the limit of 64"));
  EXPECT_TRUE(coordinator_->ListJobs().empty());
  EXPECT_TRUE((*store_->ListJobs()).empty());

  // The system prompt goes with every line: the same limit, checked once,
  // before anything is written.
  v1::JobSpec spec = Spec();
  spec.set_system_prompt(std::string(65, 's'));
  absl::StatusOr<std::unique_ptr<Submission>> refused =
      coordinator_->BeginSubmission(spec);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(),
            "spec: system prompt is 65 bytes, over the limit of 64");
  EXPECT_TRUE((*store_->ListJobs()).empty());
}

TEST_F(CoordinatorTest, TeacherDownPausesTheTeacherUntilResumed) {
  v1::Job job = MustSubmit(PromptLines({"a", "b", "c"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 1);
  ASSERT_EQ(tasks.size(), 1u);
  clock_.Advance(std::chrono::seconds(1));
  Report(w, {Failure(tasks[0], v1::FAILURE_CLASS_TEACHER_DOWN,
                     "HTTP 401: invalid api key")});

  v1::Job after = GetJob(job.id());
  EXPECT_EQ(after.state(), v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(after.teacher_status().paused());
  EXPECT_THAT(after.teacher_status().pause_reason(),
              HasSubstr("HTTP 401: invalid api key"));
  v1::Task task = StoredTask(job.id(), 0);
  EXPECT_EQ(task.state(), v1::TASK_STATE_PENDING);
  EXPECT_EQ(task.last_error(), "HTTP 401: invalid api key");
  // Paused cluster-wide: nothing more is leased for this teacher ...
  EXPECT_TRUE(Lease(w, 10).empty());
  // ... until a human resumes it; then every task, the refused one too,
  // is leased again.
  ASSERT_TRUE(coordinator_->ResumeTeacher("sim").ok());
  EXPECT_FALSE(GetJob(job.id()).teacher_status().paused());
  EXPECT_EQ(Lease(w, 10).size(), 3u);
  EXPECT_FALSE(coordinator_->ResumeTeacher("nope").ok());
}

TEST_F(CoordinatorTest, AbandonedTaskIsLeasedAgainAtOnce) {
  v1::Job job = MustSubmit(PromptLines({"a"}));
  const std::string w1 = Register("w1");
  const std::string w2 = Register("w2");
  std::vector<v1::LeasedTask> first = Lease(w1, 10);
  ASSERT_EQ(first.size(), 1u);
  Report(w1, {Failure(first[0], v1::FAILURE_CLASS_ABANDONED, "stopping", 0)});

  v1::Job after = GetJob(job.id());
  EXPECT_EQ(after.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(after.counters().tasks_done(), 0);
  EXPECT_EQ(after.counters().tasks_failed(), 0);
  EXPECT_EQ(StoredTask(job.id(), 0).state(), v1::TASK_STATE_PENDING);

  std::vector<v1::LeasedTask> second = Lease(w2, 10);  // no clock advance
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].request_key(), first[0].request_key());
  EXPECT_NE(second[0].lease_id(), first[0].lease_id());
}

TEST_F(CoordinatorTest, CancelJobStopsLeasing) {
  v1::Job job = MustSubmit(PromptLines({"a", "b", "c"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 1);
  ASSERT_EQ(tasks.size(), 1u);

  absl::StatusOr<v1::Job> cancelled = coordinator_->CancelJob(job.id());
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(cancelled->finished_ms(), clock_.WallMillis());
  EXPECT_EQ((*store_->GetJob(job.id()))->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(Lease(w, 10).empty());
  clock_.Advance(std::chrono::minutes(5));  // expiry does not revive it
  EXPECT_TRUE(Lease(w, 10).empty());

  // An answer already paid for is kept, but the job stays cancelled.
  Report(w, {Success(tasks[0], "A")});
  EXPECT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(coordinator_->CancelJob(job.id())->state(),
            v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(coordinator_->CancelJob("job-404").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CoordinatorTest, CancelOfAFinishedJobChangesNothing) {
  v1::Job job = MustSubmit(PromptLines({"a"}));
  const std::string w = Register();
  Report(w, {Success(Lease(w, 1).at(0), "A")});
  ASSERT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(coordinator_->CancelJob(job.id())->state(),
            v1::JOB_STATE_COMPLETED);
}

TEST_F(CoordinatorTest, CancelEndsTheJobsLeasesAndHeartbeatsRevokeThem) {
  v1::Job job = MustSubmit(PromptLines({"a", "b", "c"}));
  v1::Job other = MustSubmit(PromptLines({"x"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 4);
  ASSERT_EQ(tasks.size(), 4u);
  ASSERT_EQ(tasks[3].job_id(), other.id());

  ASSERT_TRUE(coordinator_->CancelJob(job.id()).ok());
  // The next heartbeat names the cancelled job's leases as no longer ours;
  // the other job's lease is renewed as before.
  v1::HeartbeatRequest request;
  request.set_worker_id(w);
  for (const v1::LeasedTask& t : tasks) request.add_held_lease_ids(t.lease_id());
  v1::HeartbeatResponse response = coordinator_->Heartbeat(request);
  EXPECT_TRUE(response.known());
  EXPECT_THAT(response.revoked_lease_ids(),
              ElementsAre(tasks[0].lease_id(), tasks[1].lease_id(),
                          tasks[2].lease_id()));
  EXPECT_EQ(coordinator_->Snapshot().leases_by_teacher["sim"], 1);

  // An answer paid for before the worker heard is still kept.
  EXPECT_EQ(Report(w, {Success(tasks[0], "A")}).accepted(), 1);
  EXPECT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(StoredTask(job.id(), 0).state(), v1::TASK_STATE_DONE);
}

TEST_F(CoordinatorTest, HeartbeatRevokesALeaseThatLapsed) {
  MustSubmit(PromptLines({"a"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 1);
  ASSERT_EQ(tasks.size(), 1u);
  clock_.Advance(options_.lease_duration + std::chrono::seconds(1));
  coordinator_->ExpireLeases();
  const std::string thief = Register("thief");
  ASSERT_EQ(Lease(thief, 1).size(), 1u);  // leased again elsewhere

  v1::HeartbeatRequest request;
  request.set_worker_id(w);
  request.add_held_lease_ids(tasks[0].lease_id());
  EXPECT_THAT(coordinator_->Heartbeat(request).revoked_lease_ids(),
              ElementsAre(tasks[0].lease_id()));
}

// ---------------------------------------------------------------- Recovery

TEST_F(CoordinatorTest, RecoverKeepsJobsAndReleasesUnfinishedTasks) {
  v1::Job job = MustSubmit(PromptLines({"a", "b", "c"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 2);
  ASSERT_EQ(tasks.size(), 2u);
  Report(w, {Success(tasks[0], "A")});

  Restart();

  v1::Job recovered = GetJob(job.id());
  EXPECT_EQ(recovered.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(recovered.counters().prompts(), 3);
  EXPECT_EQ(recovered.counters().tasks_total(), 3);
  EXPECT_EQ(recovered.counters().tasks_done(), 1);
  EXPECT_EQ(recovered.counters().teacher_requests(), 1);
  EXPECT_EQ(coordinator_->ListJobs().size(), 1u);
  // The coordinator forgot its workers.
  EXPECT_EQ(TryLease(w, 10).status().code(),
            absl::StatusCode::kFailedPrecondition);

  const std::string w2 = Register("w2");
  std::vector<v1::LeasedTask> again = Lease(w2, 10);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].prompt_seq(), 1);  // leased before, never reported
  EXPECT_EQ(again[1].prompt_seq(), 2);
  Report(w2, {Success(again[0], "B"), Success(again[1], "C")});
  EXPECT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(GetJob(job.id()).counters().tasks_done(), 3);
  EXPECT_EQ(Export({job.id()}).size(), 3u);

  // Job ids keep counting after the restart.
  EXPECT_EQ(MustSubmit(PromptLines({"d"})).id(), "job-000002");
}

TEST_F(CoordinatorTest, RecoverRemovesASubmissionCutShortByACrash) {
  StoreBatch batch;
  v1::Job crashed;
  crashed.set_id("job-000042");
  crashed.set_state(v1::JOB_STATE_SUBMITTING);
  *crashed.mutable_spec() = Spec();
  batch.jobs.push_back(crashed);
  v1::Prompt prompt;
  prompt.set_id("1");
  prompt.add_messages()->set_content("a");
  batch.AddPrompt("job-000042", 0, prompt);
  v1::Task task;
  task.set_job_id("job-000042");
  task.set_state(v1::TASK_STATE_PENDING);
  task.set_request_key("k");
  batch.tasks.push_back(task);
  ASSERT_TRUE(store_->Apply(batch).ok());
  v1::Job kept = MustSubmit(PromptLines({"b"}));

  Restart();

  std::vector<v1::Job> jobs = coordinator_->ListJobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].id(), kept.id());
  EXPECT_FALSE(store_->GetJob("job-000042")->has_value());
  EXPECT_FALSE(store_->GetPrompt("job-000042", 0)->has_value());
  EXPECT_TRUE(StoredTasks("job-000042").empty());
  EXPECT_EQ(StoredTasks(kept.id()).size(), 1u);
  EXPECT_EQ(Lease(Register(), 10).size(), 1u);
}

// Was a bug (services/coordinator/coordinator.cc, NextTaskLocked and
// CompleteFromCacheLocked): tasks read into a job's `ready` queue are not
// re-checked against the store before they are counted. After a restart, a
// worker still holding a pre-restart lease reports that task while it sits
// in `ready`; the report commits it (tasks_done + 1), then Lease pops the
// stale PENDING copy, finds its answer and counts it again as a cache hit.
// The job then reaches COMPLETED while a task is still pending.
// Fix: re-read the task in NextTaskLocked for `ready` too (as is done for
// `returned`), or make CompleteFromCacheLocked skip a task whose stored state
// is no longer PENDING.
// Leases are not stored: after a restart, a result for a lease from before
// it comes from a worker the new coordinator never leased the task to, and
// is not taken (any holder of the worker token could claim such a lease).
// The task is leased again and counted once.
TEST_F(CoordinatorTest, LateReportFromBeforeARestartIsCountedOnce) {
  v1::Job job = MustSubmit(PromptLines({"a", "b", "c"}));
  const std::string w1 = Register("w1");
  std::vector<v1::LeasedTask> old = Lease(w1, 2);
  ASSERT_EQ(old.size(), 2u);

  Restart();

  const std::string w2 = Register("w2");
  std::vector<v1::LeasedTask> first = Lease(w2, 1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].prompt_seq(), 0);
  // The restarted coordinator does not know w1: it must register again
  // (announcing what it holds) before its results count.
  absl::StatusOr<v1::ReportResponse> late =
      TryReport(w1, {Success(old[1], "B")});
  EXPECT_TRUE(absl::IsFailedPrecondition(late.status())) << late.status();
  EXPECT_THAT(std::string(late.status().message()), HasSubstr("register again"));
  EXPECT_EQ(GetJob(job.id()).counters().tasks_done(), 0);
  EXPECT_EQ(StoredTask(job.id(), 1).state(), v1::TASK_STATE_PENDING);

  std::vector<v1::LeasedTask> next = Lease(w2, 2);
  ASSERT_EQ(next.size(), 2u);
  EXPECT_EQ(next[0].prompt_seq(), 1);
  EXPECT_EQ(next[1].prompt_seq(), 2);
  Report(w2, {Success(first[0], "A"), Success(next[0], "B"),
              Success(next[1], "C")});
  v1::Job after = GetJob(job.id());
  EXPECT_EQ(after.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(after.counters().tasks_done(), 3);
  EXPECT_EQ(after.counters().teacher_requests(), 3);
  int done = 0;
  for (const v1::Task& t : StoredTasks(job.id())) {
    done += t.state() == v1::TASK_STATE_DONE;
  }
  EXPECT_EQ(done, 3);
}

// ------------------------------------------------------ Lease holders, ids

TEST_F(CoordinatorTest, WorkerIdsNeverRepeatAcrossRestarts) {
  std::set<std::string> ids;
  constexpr int kPerBoot = 500;
  for (int boot = 0; boot < 3; ++boot) {
    for (int i = 0; i < kPerBoot; ++i) {
      const std::string id = Register("box");
      EXPECT_THAT(id, StartsWith("box-"));
      EXPECT_TRUE(ids.insert(id).second)
          << id << " given twice (boot " << boot << ")";
    }
    Restart();
  }
  EXPECT_EQ(ids.size(), 3u * kPerBoot);
}

TEST_F(CoordinatorTest, ResultFromAWorkerThatNeverHeldTheTaskIsIgnored) {
  v1::Job job = MustSubmit(PromptLines({"a"}));
  const std::string holder = Register("holder");
  const std::string other = Register("other");
  std::vector<v1::LeasedTask> tasks = Lease(holder, 10);
  ASSERT_EQ(tasks.size(), 1u);
  const double not_holder_before =
      MetricValue("distillery_refused_results_total{reason=\"not_holder\"}");
  const double unknown_before = MetricValue(
      "distillery_refused_results_total{reason=\"unknown_worker\"}");

  // Another worker, even with the holder's lease id, writes nothing.
  v1::ReportResponse r = Report(other, {Success(tasks[0], "forged")});
  EXPECT_EQ(r.accepted(), 0);
  EXPECT_EQ(r.ignored(), 1);
  // An unknown worker is told to register; nothing of its report is used.
  absl::StatusOr<v1::ReportResponse> unknown =
      TryReport("w999-intruder", {Success(tasks[0], "forged")});
  EXPECT_TRUE(absl::IsFailedPrecondition(unknown.status()))
      << unknown.status();
  EXPECT_EQ(StoredTask(job.id(), 0).state(), v1::TASK_STATE_PENDING);
  EXPECT_EQ(GetJob(job.id()).counters().teacher_requests(), 0);
  EXPECT_EQ(MetricValue(
                "distillery_refused_results_total{reason=\"not_holder\"}"),
            not_holder_before + 1);
  EXPECT_EQ(MetricValue(
                "distillery_refused_results_total{reason=\"unknown_worker\"}"),
            unknown_before + 1);

  // The holder's lease was not ended by the forgeries: it still reports.
  r = Report(holder, {Success(tasks[0], "real")});
  EXPECT_EQ(r.accepted(), 1);
  EXPECT_EQ(StoredAnswer(tasks[0].request_key()).content(), "real");
  EXPECT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_COMPLETED);
}

TEST_F(CoordinatorTest, ExpiredLeaseIsTakenOnlyFromItsHolder) {
  v1::Job job = MustSubmit(PromptLines({"a"}));
  const std::string holder = Register("holder");
  const std::string other = Register("other");
  std::vector<v1::LeasedTask> tasks = Lease(holder, 10);
  ASSERT_EQ(tasks.size(), 1u);
  clock_.Advance(std::chrono::seconds(61));
  coordinator_->ExpireLeases();  // back in the pool, not leased again yet

  EXPECT_EQ(Report(other, {Success(tasks[0], "forged")}).ignored(), 1);
  EXPECT_EQ(StoredTask(job.id(), 0).state(), v1::TASK_STATE_PENDING);
  EXPECT_EQ(Report(holder, {Success(tasks[0], "late")}).accepted(), 1);
  EXPECT_EQ(StoredAnswer(tasks[0].request_key()).content(), "late");
}

TEST_F(CoordinatorTest, RememberedHoldersAreBounded) {
  options_.remembered_lease_holders = 2;
  Restart();
  MustSubmit(PromptLines({"a", "b", "c"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 3u);
  clock_.Advance(std::chrono::seconds(61));
  coordinator_->ExpireLeases();
  // Three tasks held, two remembered: the oldest is forgotten.
  EXPECT_EQ(Report(w, {Success(tasks[0], "A")}).ignored(), 1);
  EXPECT_EQ(Report(w, {Success(tasks[1], "B")}).accepted(), 1);
  EXPECT_EQ(Report(w, {Success(tasks[2], "C")}).accepted(), 1);
}

// ------------------------------------------------------ Store failures

// A task whose cache check or prompt read fails at lease time stays queued
// (it used to leave the queue while pending, and its job never finished
// until a restart).
TEST_F(CoordinatorTest, TaskWhoseReadFailsIsLeasedLater) {
  v1::Job job = MustSubmit(PromptLines({"a", "b"}));
  const std::string w = Register();
  const double before =
      MetricValue("distillery_store_errors_total{operation=\"lease_read\"}");
  faulty_->fail_has_answer = 1;
  absl::StatusOr<v1::LeaseResponse> failed = TryLease(w, 10);
  EXPECT_FALSE(failed.ok()) << "a failed read was taken for no task";
  faulty_->fail_get_prompt = 1;
  failed = TryLease(w, 10);
  EXPECT_FALSE(failed.ok()) << "a failed prompt read was taken for no task";
  EXPECT_EQ(
      MetricValue("distillery_store_errors_total{operation=\"lease_read\"}"),
      before + 2);

  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[0].prompt_seq(), 0);
  Report(w, {Success(tasks[0], "A"), Success(tasks[1], "B")});
  EXPECT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_COMPLETED);
}

// Leasing reads no task twice: a task queued and then settled by a late
// result is skipped, not read again to see whether it is still pending.
TEST_F(CoordinatorTest, LeasingDoesNotReReadQueuedTasks) {
  options_.lease_duration = std::chrono::seconds(10);
  Restart();
  v1::Job job = MustSubmit(PromptLines({"a", "b", "c"}));
  const std::string w1 = Register();
  std::vector<v1::LeasedTask> first = Lease(w1, 1);
  ASSERT_EQ(first.size(), 1u);
  // w1's lease lapses: its task goes back to the queue, then w1's late
  // answer settles it while it is queued.
  clock_.Advance(std::chrono::seconds(11));
  coordinator_->ExpireLeases();
  Report(w1, {Success(first[0], "late")});
  ASSERT_EQ(GetJob(job.id()).counters().tasks_done(), 1);

  faulty_->fail_get_task = 1000;  // leasing must not need a task read
  const std::string w2 = Register();
  std::vector<v1::LeasedTask> rest = Lease(w2, 10);
  faulty_->fail_get_task = 0;
  ASSERT_EQ(rest.size(), 2u) << "the settled task was handed out again";
  EXPECT_EQ(rest[0].prompt_seq(), 1);
  EXPECT_EQ(rest[1].prompt_seq(), 2);
}

TEST_F(CoordinatorTest, ScanErrorIsAnErrorNotAnEmptyLease) {
  v1::Job job = MustSubmit(PromptLines({"a", "b", "c"}));
  const std::string w = Register();
  faulty_->fail_scan = 1;
  absl::StatusOr<v1::LeaseResponse> failed = TryLease(w, 10);
  EXPECT_FALSE(failed.ok()) << "a failed scan was taken for no task";
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 3u);
  Report(w, {Success(tasks[0], "A"), Success(tasks[1], "B"),
             Success(tasks[2], "C")});
  EXPECT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_COMPLETED);
}

TEST_F(CoordinatorTest, ExportFailsWhenADuplicatesOriginalCannotBeRead) {
  v1::Job job = MustSubmit(PromptLines({"a", "b"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 2u);
  Report(w, {Success(tasks[0], "same"), Success(tasks[1], "same")});
  ASSERT_EQ(Export({job.id()}, /*include_duplicates=*/true).size(), 2u);

  faulty_->fail_get_answer = 1;
  v1::ExportRequest request;
  request.add_job_ids(job.id());
  request.set_include_duplicates(true);
  std::vector<v1::ExportRecord> records;
  absl::Status s = coordinator_->Export(request, [&](v1::ExportRecord&& r) {
    records.push_back(std::move(r));
    return true;
  });
  EXPECT_FALSE(s.ok()) << "exported a duplicate without its text";
  for (const v1::ExportRecord& r : records) {
    EXPECT_EQ(r.answer().content(), "same");
  }
}

// A retry that fails part way leaves memory as the store has it: the chunks
// written are retried, the rest stays dead-lettered, and the counters that
// later writes store match the tasks.
TEST_F(CoordinatorTest, RetryThatFailsPartWayKeepsCountersInStep) {
  constexpr int kTasks = 1100;  // more than one retry chunk (1024)
  std::vector<std::string> texts;
  for (int i = 0; i < kTasks; ++i) texts.push_back(absl::StrCat("p", i));
  v1::Job job = MustSubmit(PromptLines(texts));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 2 * kTasks);
  ASSERT_EQ(tasks.size(), static_cast<size_t>(kTasks));
  std::vector<v1::TaskResult> failures;
  for (const v1::LeasedTask& t : tasks) {
    failures.push_back(Failure(t, v1::FAILURE_CLASS_PERMANENT, "HTTP 400"));
  }
  Report(w, failures);
  ASSERT_EQ(GetJob(job.id()).counters().tasks_failed(), kTasks);

  faulty_->applies_before_failing = 1;  // the first chunk, not the second
  EXPECT_FALSE(coordinator_->RetryJob(job.id()).ok());
  faulty_->applies_before_failing = -1;

  auto stored_failed = [&] {
    int n = 0;
    for (const v1::Task& t : StoredTasks(job.id())) {
      n += t.state() == v1::TASK_STATE_FAILED;
    }
    return n;
  };
  ASSERT_EQ(stored_failed(), kTasks - 1024);
  v1::Job now = GetJob(job.id());
  EXPECT_EQ(now.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(now.counters().tasks_failed(), kTasks - 1024);

  // A later write of the job stores counters that match its tasks.
  std::vector<v1::LeasedTask> again = Lease(w, 1);
  ASSERT_EQ(again.size(), 1u);
  Report(w, {Success(again[0], "A")});
  v1::Job stored = **store_->GetJob(job.id());
  EXPECT_EQ(stored.counters().tasks_failed(), stored_failed());
  EXPECT_EQ(stored.counters().tasks_done(), 1);

  // And a retry that goes through finishes the work.
  ASSERT_TRUE(coordinator_->RetryJob(job.id()).ok());
  EXPECT_EQ(stored_failed(), 0);
  EXPECT_EQ(GetJob(job.id()).counters().tasks_failed(), 0);
}

// ---------------------------------------------------------------- Restarts

v1::HeldTask Held(const v1::LeasedTask& t) {
  v1::HeldTask h;
  h.set_job_id(t.job_id());
  h.set_prompt_seq(t.prompt_seq());
  h.set_sample(t.sample());
  h.set_request_key(t.request_key());
  h.set_lease_id(t.lease_id());
  return h;
}

// A restored lease outlives a fresh one by restored_lease_allowance: its
// worker can renew it only after reconnecting and registering again, and a
// lease that lapsed meanwhile would be leased to another worker while the
// first still sends it (seen in the chaos test: paid twice).
TEST_F(CoordinatorTest, ARestoredLeaseWaitsForItsWorkerToReconnect) {
  options_.lease_duration = std::chrono::seconds(3);
  options_.restored_lease_allowance = std::chrono::seconds(10);
  Restart();
  MustSubmit(PromptLines({"a"}));
  const std::string w1 = Register("w1");
  std::vector<v1::LeasedTask> held = Lease(w1, 1);
  ASSERT_EQ(held.size(), 1u);
  ASSERT_TRUE(coordinator_->SaveLeases().ok());
  Restart();
  // Past a fresh lease's deadline, before w1 is back: nothing to lease.
  clock_.Advance(std::chrono::seconds(5));
  const std::string w2 = Register("w2");
  EXPECT_TRUE(Lease(w2, 10).empty()) << "a restored lease lapsed too soon";
  // w1 comes back and takes its lease over.
  v1::RegisterRequest again;
  again.set_name("w1");
  again.add_teachers("sim");
  *again.add_held_tasks() = Held(held[0]);
  EXPECT_TRUE(coordinator_->Register(again).revoked_lease_ids().empty());
  // A worker that never comes back: its task returns after the allowance.
  ASSERT_TRUE(coordinator_->SaveLeases().ok());
  Restart();
  clock_.Advance(std::chrono::seconds(14));
  EXPECT_EQ(Lease(Register("w3"), 10).size(), 1u);
}

TEST_F(CoordinatorTest, GracefulStopSavesTheLeasesAndTheRestartKeepsThem) {
  options_.restart_grace = std::chrono::seconds(30);  // not needed: saved
  Restart();
  v1::Job job = MustSubmit(PromptLines({"a", "b", "c", "d"}));
  const std::string w1 = Register("w1");
  std::vector<v1::LeasedTask> held = Lease(w1, 2);
  ASSERT_EQ(held.size(), 2u);
  absl::StatusOr<int> saved = coordinator_->SaveLeases();
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_EQ(*saved, 2);
  EXPECT_TRUE(Lease(Register("late"), 10).empty()) << "leased after saving";

  Restart();

  // Another worker gets only what nobody holds, at once.
  const std::string w2 = Register("w2");
  std::vector<v1::LeasedTask> rest = Lease(w2, 10);
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].prompt_seq(), 2);
  EXPECT_EQ(rest[1].prompt_seq(), 3);
  // w1 registers again (the coordinator forgot its id) naming what it holds:
  // its leases change hands to the new id, and it reports with its old ids.
  v1::RegisterRequest again;
  again.set_name("w1");
  again.add_teachers("sim");
  for (const v1::LeasedTask& t : held) *again.add_held_tasks() = Held(t);
  v1::RegisterResponse response = coordinator_->Register(again);
  EXPECT_TRUE(response.revoked_lease_ids().empty());
  EXPECT_TRUE(Heartbeat(response.worker_id(),
                        {held[0].lease_id(), held[1].lease_id()}));
  clock_.Advance(options_.lease_duration - std::chrono::seconds(1));
  EXPECT_TRUE(Heartbeat(response.worker_id(),
                        {held[0].lease_id(), held[1].lease_id()}));
  EXPECT_TRUE(Heartbeat(w2, {rest[0].lease_id(), rest[1].lease_id()}));
  clock_.Advance(std::chrono::seconds(2));  // past the restored deadline
  EXPECT_TRUE(Lease(w2, 10).empty()) << "the heartbeat did not renew them";
  EXPECT_EQ(Report(response.worker_id(),
                   {Success(held[0], "A"), Success(held[1], "B")})
                .accepted(),
            2);
  Report(w2, {Success(rest[0], "C"), Success(rest[1], "D")});
  v1::Job done = GetJob(job.id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(done.counters().teacher_requests(), 4) << "a task was asked twice";

  // The saved table is used once: a crash now restores nothing stale.
  Restart();
  EXPECT_EQ(coordinator_->Snapshot().leases_by_teacher["sim"], 0);
}

TEST_F(CoordinatorTest, AfterACrashLeasingWaitsForWorkersToAnnounceTasks) {
  options_.restart_grace = std::chrono::seconds(2);
  Restart();
  v1::Job job = MustSubmit(PromptLines({"a", "b", "c"}));
  const std::string w1 = Register("w1");
  std::vector<v1::LeasedTask> held = Lease(w1, 2);
  ASSERT_EQ(held.size(), 2u);

  Restart();  // no SaveLeases: a crash

  const std::string w2 = Register("w2");
  EXPECT_TRUE(Lease(w2, 10).empty()) << "leased during the grace period";
  v1::RegisterRequest again;
  again.set_name("w1");
  again.add_teachers("sim");
  for (const v1::LeasedTask& t : held) *again.add_held_tasks() = Held(t);
  v1::RegisterResponse response = coordinator_->Register(again);
  EXPECT_TRUE(response.revoked_lease_ids().empty());
  clock_.Advance(std::chrono::seconds(2));
  std::vector<v1::LeasedTask> rest = Lease(w2, 10);
  ASSERT_EQ(rest.size(), 1u) << "a task w1 announced was leased again";
  EXPECT_EQ(rest[0].prompt_seq(), 2);
  EXPECT_GT(rest[0].lease_id(), std::max(held[0].lease_id(),
                                         held[1].lease_id()));
  Report(response.worker_id(), {Success(held[0], "A"), Success(held[1], "B")});
  Report(w2, {Success(rest[0], "C")});
  EXPECT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(GetJob(job.id()).counters().teacher_requests(), 3);
}

TEST_F(CoordinatorTest, AnnouncedTasksThatCannotBeTakenBackAreRevoked) {
  v1::Job job = MustSubmit(PromptLines({"a", "b", "c"}));
  v1::Job cancelled = MustSubmit(PromptLines({"x"}));
  const std::string w1 = Register("w1");
  std::vector<v1::LeasedTask> held = Lease(w1, 4);
  ASSERT_EQ(held.size(), 4u);
  Report(w1, {Success(held[0], "A")});

  Restart();

  ASSERT_TRUE(coordinator_->CancelJob(cancelled.id()).ok());
  const std::string w2 = Register("w2");
  std::vector<v1::LeasedTask> stolen = Lease(w2, 1);  // grace 0: at once
  ASSERT_EQ(stolen.size(), 1u);
  EXPECT_EQ(stolen[0].prompt_seq(), 1);
  v1::RegisterRequest again;
  again.set_name("w1");
  for (const v1::LeasedTask& t : held) *again.add_held_tasks() = Held(t);
  v1::HeldTask wrong = Held(held[2]);
  wrong.set_request_key("not the task's key");
  wrong.set_lease_id(held[2].lease_id() + 1000);
  *again.add_held_tasks() = wrong;
  v1::RegisterResponse response = coordinator_->Register(again);
  // Done, leased to w2, cancelled, and a key that is not the task's: all
  // revoked; only task 2 is taken back.
  EXPECT_THAT(response.revoked_lease_ids(),
              ElementsAre(held[0].lease_id(), held[1].lease_id(),
                          held[3].lease_id(), wrong.lease_id()));
  EXPECT_TRUE(Lease(w2, 10).empty());
  EXPECT_EQ(Report(response.worker_id(), {Success(held[2], "C")}).accepted(),
            1);
  Report(w2, {Success(stolen[0], "B")});
  EXPECT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_COMPLETED);
}

// ---------------------------------------------------------------- Budgets

class BudgetCoordinatorTest : public CoordinatorTest {
 protected:
  void SetUp() override {
    // $0.001 a prompt token, completions free: a task's most cost is its
    // estimated prompt tokens in thousandths of a dollar, which no binary
    // fraction holds exactly (0.1 + 0.2 - 0.1 - 0.2 != 0).
    teachers_[0].pricing["*"] = ModelPrice{1000, 0, 0};
    CoordinatorTest::SetUp();
  }
  static v1::JobSpec BudgetSpec(double budget_usd) {
    v1::JobSpec spec = Spec();
    spec.set_budget_usd(budget_usd);
    spec.mutable_params()->set_max_tokens(1);
    return spec;
  }
  // A prompt estimated at `tokens` tokens: (bytes + 3) / 4, plus 4 for its
  // one message.
  static std::string PromptOf(int tokens, char c) {
    return PromptLine(std::string(4 * (tokens - 4), c));
  }
  static v1::TaskResult Costing(const v1::LeasedTask& t, int prompt_tokens) {
    v1::TaskResult r = Success(t, "answer " + std::to_string(t.prompt_seq()));
    r.mutable_answer()->mutable_usage()->set_prompt_tokens(prompt_tokens);
    r.mutable_answer()->mutable_usage()->set_completion_tokens(0);
    r.mutable_answer()->mutable_usage()->set_reasoning_tokens(0);
    return r;
  }
};

TEST_F(BudgetCoordinatorTest, JobAtItsBudgetPausesOnceNothingIsInFlight) {
  v1::Job job = MustSubmit({PromptOf(100, 'a'), PromptOf(200, 'b'),
                            PromptOf(300, 'c'), PromptOf(100, 'd')},
                           BudgetSpec(0.62));
  const std::string a = Register("a"), b = Register("b"), c = Register("c");
  std::vector<v1::LeasedTask> ta = Lease(a, 1), tb = Lease(b, 1),
                              tc = Lease(c, 1);
  ASSERT_EQ(ta.size() + tb.size() + tc.size(), 3u);
  // $0.60 reserved; $0.10 more could pass $0.62: wait for the answers.
  EXPECT_TRUE(Lease(a, 1).empty());
  EXPECT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_RUNNING);
  Report(a, {Costing(ta[0], 100)});
  EXPECT_TRUE(Lease(a, 1).empty());
  Report(b, {Costing(tb[0], 200)});
  EXPECT_TRUE(Lease(b, 1).empty());
  EXPECT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_RUNNING);
  Report(c, {Costing(tc[0], 300)});
  // Nothing in flight: $0.60 spent and $0.10 more could pass the budget.
  EXPECT_TRUE(Lease(c, 1).empty());
  v1::Job paused = GetJob(job.id());
  EXPECT_EQ(paused.state(), v1::JOB_STATE_PAUSED)
      << "stuck running with nothing in flight";
  EXPECT_THAT(paused.error(), HasSubstr("budget of $0.6200 reached"));
  EXPECT_THAT(paused.error(), HasSubstr("could cost up to $0.1000"));
}

// Several workers leasing and reporting in random order, answers costing
// up to their estimate: the job never spends past its budget, and whenever
// nothing is in flight and a lease comes back empty, it has ended (paused
// or completed), never left running.
TEST_F(BudgetCoordinatorTest, SeveralWorkersNeverLeaveABudgetedJobHanging) {
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    std::vector<std::string> lines;  // distinct prompts of 1 to 1600 bytes
    for (int i = 0; i < 30; ++i) {
      lines.push_back(PromptLine(
          std::to_string(seed * 100 + i) +
          std::string(std::uniform_int_distribution<int>(1, 1600)(rng), 'x')));
    }
    const double budget =
        std::uniform_real_distribution<double>(0.3, 4.0)(rng);
    v1::Job job = MustSubmit(lines, BudgetSpec(budget));
    std::vector<std::string> workers = {Register("a"), Register("b"),
                                        Register("c")};
    std::vector<std::vector<v1::LeasedTask>> held(workers.size());
    for (int step = 0; step < 2000; ++step) {
      v1::Job now = GetJob(job.id());
      ASSERT_LE(now.counters().cost_usd(), budget + 1e-9);
      if (now.state() != v1::JOB_STATE_RUNNING) break;
      const size_t w = std::uniform_int_distribution<size_t>(
          0, workers.size() - 1)(rng);
      if (!held[w].empty() && rng() % 2 == 0) {
        const size_t i =
            std::uniform_int_distribution<size_t>(0, held[w].size() - 1)(rng);
        const v1::LeasedTask t = held[w][i];
        held[w].erase(held[w].begin() + i);
        const int estimate = (static_cast<int>(t.messages(0).content().size()) +
                              3) / 4 + 4;
        Report(workers[w],
               {Costing(t, std::uniform_int_distribution<int>(1, estimate)(
                               rng))});
        continue;
      }
      std::vector<v1::LeasedTask> got =
          Lease(workers[w], std::uniform_int_distribution<int>(1, 3)(rng));
      bool none_held = got.empty();
      for (const auto& h : held) none_held &= h.empty();
      if (none_held) {
        ASSERT_NE(GetJob(job.id()).state(), v1::JOB_STATE_RUNNING)
            << "nothing in flight, nothing leased, job still running";
      }
      held[w].insert(held[w].end(), got.begin(), got.end());
    }
    v1::Job end = GetJob(job.id());
    EXPECT_NE(end.state(), v1::JOB_STATE_RUNNING);
    EXPECT_LE(end.counters().cost_usd(), budget + 1e-9);
  }
}

// ---------------------------------------------------------------- Samples

TEST_F(CoordinatorTest, SamplesGetDistinctKeysAndSeeds) {
  v1::Job job = MustSubmit(PromptLines({"a"}), Spec(2));
  std::vector<v1::Task> tasks = StoredTasks(job.id());
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_NE(tasks[0].request_key(), tasks[1].request_key());

  const std::string w = Register();
  std::vector<v1::LeasedTask> leased = Lease(w, 10);
  ASSERT_EQ(leased.size(), 2u);
  EXPECT_EQ(leased[0].sample(), 0);
  EXPECT_FALSE(leased[0].params().has_seed());
  EXPECT_EQ(leased[1].sample(), 1);
  ASSERT_TRUE(leased[1].params().has_seed());
  EXPECT_EQ(leased[1].params().seed(), 1);

  Report(w, {Success(leased[0], "one"), Success(leased[1], "two")});
  EXPECT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_COMPLETED);
  v1::Answer second = StoredAnswer(leased[1].request_key());
  EXPECT_EQ(second.sample(), 1);
  EXPECT_EQ(second.params().seed(), 1);

  // With a seed given, sample 0 keeps it and later samples offset it.
  v1::JobSpec seeded = Spec(3);
  seeded.mutable_params()->set_seed(10);
  MustSubmit(PromptLines({"b"}), seeded);
  std::vector<v1::LeasedTask> s = Lease(w, 10);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].params().seed(), 10);
  EXPECT_EQ(s[1].params().seed(), 11);
  EXPECT_EQ(s[2].params().seed(), 12);
  EXPECT_EQ(std::set<std::string>(
                {s[0].request_key(), s[1].request_key(), s[2].request_key()})
                .size(),
            3u);
}

// A key is made from the request as sent: sample 1 of `--seed 5 --samples
// 2` sends seed 6, as sample 0 of `--seed 6` does, so the second job is
// answered from the cache instead of paying for the same request again.
TEST_F(CoordinatorTest, TheSameSeedSentIsTheSameRequestWhateverTheSample) {
  v1::JobSpec five = Spec(2);
  five.mutable_params()->set_seed(5);
  v1::Job first = MustSubmit(PromptLines({"a"}), five);
  const std::string w = Register();
  std::vector<v1::LeasedTask> leased = Lease(w, 10);
  ASSERT_EQ(leased.size(), 2u);
  ASSERT_EQ(leased[1].params().seed(), 6);
  Report(w, {Success(leased[0], "five"), Success(leased[1], "six")});
  ASSERT_EQ(GetJob(first.id()).state(), v1::JOB_STATE_COMPLETED);

  v1::JobSpec six = Spec(1);
  six.mutable_params()->set_seed(6);
  v1::Job second = MustSubmit(PromptLines({"a"}), six);
  EXPECT_EQ(StoredTask(second.id(), 0).request_key(), leased[1].request_key());
  EXPECT_TRUE(Lease(w, 10).empty()) << "seed 6 was asked twice";
  const v1::Job after = GetJob(second.id());
  EXPECT_EQ(after.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(after.counters().cache_hits(), 1);
  std::vector<v1::ExportRecord> records = Export({second.id()});
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].answer().content(), "six");

  // Sample 1 of an unseeded job sends seed 1: the same request as seed 1.
  v1::Job unseeded = MustSubmit(PromptLines({"b"}), Spec(2));
  std::vector<v1::LeasedTask> u = Lease(w, 10);
  ASSERT_EQ(u.size(), 2u);
  Report(w, {Success(u[0], "b0"), Success(u[1], "b1")});
  ASSERT_EQ(GetJob(unseeded.id()).state(), v1::JOB_STATE_COMPLETED);
  v1::JobSpec one = Spec(1);
  one.mutable_params()->set_seed(1);
  v1::Job seeded_one = MustSubmit(PromptLines({"b"}), one);
  EXPECT_TRUE(Lease(w, 10).empty()) << "seed 1 was asked twice";
  EXPECT_EQ(GetJob(seeded_one.id()).counters().cache_hits(), 1);
}

// ---------------------------------------------------------------- Export

TEST_F(CoordinatorTest, ExportFollowsSubmissionOrder) {
  v1::Job job =
      MustSubmit({R"({"id": "p-a", "prompt": "a", "metadata": {"k": 1}})",
                  PromptLine("b"), PromptLine("c")},
                 Spec(2));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 6u);
  for (auto it = tasks.rbegin(); it != tasks.rend(); ++it) {
    Report(w, {Success(*it, "answer " + std::to_string(it->prompt_seq()) + "/" +
                                std::to_string(it->sample()))});
  }
  ASSERT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_COMPLETED);

  std::vector<v1::ExportRecord> records = Export({job.id()});
  ASSERT_EQ(records.size(), 6u);
  for (size_t i = 0; i < records.size(); ++i) {
    const int64_t seq = i / 2;
    const int sample = i % 2;
    EXPECT_EQ(records[i].job_id(), job.id());
    EXPECT_EQ(records[i].task().prompt_seq(), seq);
    EXPECT_EQ(records[i].task().sample(), sample);
    EXPECT_EQ(records[i].answer().content(),
              "answer " + std::to_string(seq) + "/" + std::to_string(sample));
    EXPECT_EQ(records[i].prompt().line(), seq + 1);
  }
  EXPECT_EQ(records[0].prompt().id(), "p-a");
  EXPECT_EQ(records[0].prompt().metadata_json(), R"({"k": 1})");
  EXPECT_EQ(records[0].prompt().messages(0).content(), "a");
  EXPECT_EQ(records[5].prompt().messages(0).content(), "c");

  // Jobs come in the order asked for.
  v1::Job cached = MustSubmit(PromptLines({"a"}), Spec(1));
  Lease(w, 10);  // completes it from the cache
  // The answer they share is exported once, with the first job asked for.
  std::vector<v1::ExportRecord> both = Export({cached.id(), job.id()});
  ASSERT_EQ(both.size(), 6u);
  EXPECT_EQ(both[0].job_id(), cached.id());
  EXPECT_TRUE(both[0].task().from_cache());
  EXPECT_EQ(both[1].job_id(), job.id());
  EXPECT_EQ(Export({cached.id(), job.id()}, /*include_duplicates=*/true).size(),
            7u);

  // emit returning false stops the export, without an error.
  v1::ExportRequest request;
  request.add_job_ids(job.id());
  int emitted = 0;
  EXPECT_TRUE(
      coordinator_
          ->Export(request, [&](v1::ExportRecord&&) { return ++emitted < 2; })
          .ok());
  EXPECT_EQ(emitted, 2);
}

// Exports read in batches of tasks: records stay in order across batch
// boundaries, with samples, failures and filters in between.
TEST_F(CoordinatorTest, ExportOrderHoldsAcrossReadBatches) {
  std::vector<std::string> texts;
  for (int i = 0; i < 300; ++i) texts.push_back("q" + std::to_string(i));
  v1::Job job = MustSubmit(PromptLines(texts), Spec(/*samples=*/2));
  const std::string w = Register();
  std::vector<v1::TaskResult> results;
  for (const v1::LeasedTask& t : Lease(w, 1000)) {
    if (t.prompt_seq() % 7 == 3 && t.sample() == 1) {
      v1::TaskResult failed = Success(t, "");
      failed.clear_answer();
      failed.set_failure(v1::FAILURE_CLASS_PERMANENT);
      failed.set_error("HTTP 400: no");
      results.push_back(failed);
    } else {
      results.push_back(Success(t, "answer " + std::to_string(t.prompt_seq()) +
                                       "/" + std::to_string(t.sample())));
    }
  }
  ASSERT_EQ(results.size(), 600u);
  Report(w, results);
  ASSERT_EQ(GetJob(job.id()).state(), v1::JOB_STATE_COMPLETED);

  std::vector<v1::ExportRecord> records = Export({job.id()});
  ASSERT_EQ(records.size(), 600u - 43u);  // seq 3, 10, ..., 297: 43 failed
  int64_t last = -1;
  for (const v1::ExportRecord& r : records) {
    const int64_t position = 2 * r.task().prompt_seq() + r.task().sample();
    EXPECT_GT(position, last);
    last = position;
    EXPECT_EQ(r.prompt().messages(0).content(),
              "q" + std::to_string(r.task().prompt_seq()));
    EXPECT_EQ(r.answer().content(),
              "answer " + std::to_string(r.task().prompt_seq()) + "/" +
                  std::to_string(r.task().sample()));
  }
  EXPECT_EQ(Export({job.id()}, false, /*include_failed=*/true).size(), 600u);
}

TEST_F(CoordinatorTest, ExportIncludesFailedOnlyWhenAsked) {
  v1::Job job = MustSubmit(PromptLines({"a", "b", "c"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 10);
  ASSERT_EQ(tasks.size(), 3u);
  Report(w, {Success(tasks[0], "A"),
             Failure(tasks[1], v1::FAILURE_CLASS_PERMANENT, "HTTP 400")});
  // Task 2 is still pending: never exported.

  std::vector<v1::ExportRecord> done = Export({job.id()});
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].task().prompt_seq(), 0);

  std::vector<v1::ExportRecord> with_failed = Export({job.id()}, false, true);
  ASSERT_EQ(with_failed.size(), 2u);
  EXPECT_EQ(with_failed[1].task().prompt_seq(), 1);
  EXPECT_EQ(with_failed[1].task().state(), v1::TASK_STATE_FAILED);
  EXPECT_EQ(with_failed[1].task().last_error(), "HTTP 400");
  EXPECT_FALSE(with_failed[1].has_answer());
  EXPECT_EQ(with_failed[1].prompt().messages(0).content(), "b");
}

TEST_F(CoordinatorTest, ExportRejectsMissingOrUnknownJobs) {
  v1::Job job = MustSubmit(PromptLines({"a"}));
  int emitted = 0;
  auto count = [&](v1::ExportRecord&&) { return ++emitted > 0; };
  v1::ExportRequest none;
  EXPECT_EQ(coordinator_->Export(none, count).code(),
            absl::StatusCode::kInvalidArgument);
  v1::ExportRequest unknown;
  unknown.add_job_ids(job.id());
  unknown.add_job_ids("job-404");
  absl::Status s = coordinator_->Export(unknown, count);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("job-404"));
  EXPECT_EQ(emitted, 0);
}

// ---------------------------------------------------------------- Watching

TEST_F(CoordinatorTest, WaitForJobChangeWakesOnACommitOrAtItsDeadline) {
  v1::Job job = MustSubmit(PromptLines({"a"}));
  const std::string w = Register();
  std::vector<v1::LeasedTask> tasks = Lease(w, 1);
  ASSERT_EQ(tasks.size(), 1u);
  const v1::Job before = GetJob(job.id());

  // Unchanged: returns as it is when the clock reaches max_wait.
  absl::StatusOr<v1::Job> same;
  std::thread timed_out([&] {
    same = coordinator_->WaitForJobChange(job.id(), before,
                                          std::chrono::seconds(5));
  });
  ASSERT_TRUE(clock_.WaitForWaiters(1));
  clock_.Advance(std::chrono::seconds(5));
  timed_out.join();
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->counters().tasks_done(), 0);

  // A commit wakes it long before its deadline (the clock does not move).
  absl::StatusOr<v1::Job> seen;
  std::thread watcher([&] {
    seen = coordinator_->WaitForJobChange(job.id(), GetJob(job.id()),
                                          std::chrono::seconds(60));
  });
  ASSERT_TRUE(clock_.WaitForWaiters(1));
  Report(w, {Success(tasks[0], "A")});
  watcher.join();
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(seen->state(), v1::JOB_STATE_COMPLETED);

  EXPECT_EQ(
      coordinator_
          ->WaitForJobChange("job-404", before, std::chrono::milliseconds(1))
          .status()
          .code(),
      absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace distillery
