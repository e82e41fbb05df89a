// The worker's lease loop against a real in-process Coordinator (on a temp
// RocksDB store) through a CoordinatorClient adapter, with a scripted
// FakeTeacher (tests/testing). The loop runs on its own thread on a
// FakeClock with a 1 ms idle poll; while a test waits for a condition, the
// fakes move that clock to the worker's next deadline each time the worker
// waits on it (RunClockUntil). Nothing sleeps or reads the real clock.
#include "services/worker/worker.h"

#include <stdlib.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/base/clock.h"
#include "common/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/coordinator/coordinator.h"
#include "tests/testing/clock_driver.h"
#include "tests/testing/fake_teacher.h"
#include "tests/testing/in_process_coordinator_client.h"

namespace distillery {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "worker_test.XXXXXX";
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

using testing::Answer;
using testing::Fail;
using testing::FakeTeacher;
using InProcessClient = testing::InProcessCoordinatorClient;

// Runs a worker on its own thread; stops and joins it when done.
class WorkerThread {
 public:
  WorkerThread(Worker& worker, FakeClock& clock)
      : worker_(worker), clock_(clock), thread_([this] {
          absl::Status status = worker_.Run();
          absl::MutexLock lock(&mu_);
          status_ = std::move(status);
          returned_ = true;
        }) {}
  ~WorkerThread() { (void)Stop(); }
  // Stops the worker and runs its clock through the drain until Run
  // returns; Run's status.
  absl::Status Stop() {
    if (thread_.joinable()) {
      worker_.Stop();
      EXPECT_TRUE(testing::RunClockUntil(clock_, [&] {
        absl::MutexLock lock(&mu_);
        return returned_;
      })) << "the worker did not stop";
      thread_.join();
    }
    absl::MutexLock lock(&mu_);
    return status_;
  }

 private:
  Worker& worker_;
  FakeClock& clock_;
  absl::Mutex mu_;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  bool returned_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

bool IsTerminal(v1::JobState s) {
  return s == v1::JOB_STATE_COMPLETED || s == v1::JOB_STATE_FAILED ||
         s == v1::JOB_STATE_CANCELLED;
}

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Store>> store =
        OpenRocksDbStore(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    TeacherProfile sim;
    sim.name = "sim";
    sim.base_url = "http://127.0.0.1:9/v1";
    // No cluster-wide rate limits here: these tests are about the lease
    // loop; the budget has its own tests. Concurrency is capped locally.
    sim.rpm = 0;
    sim.tpm = 0;
    sim.max_concurrency = 0;
    sim.max_attempts = 5;
    CoordinatorOptions options;
    options.heartbeat_interval = milliseconds(50);
    UseProfile(sim, options);
  }

  // (Re)starts the coordinator on the same store with `profile` as its only
  // teacher, which the workers then use too.
  void UseProfile(const TeacherProfile& profile,
                  const CoordinatorOptions& options) {
    coordinator_ = std::make_unique<Coordinator>(
        *store_, std::vector<TeacherProfile>{profile}, coordinator_clock_,
        options);
    ASSERT_TRUE(coordinator_->Recover().ok());
    client_ = std::make_unique<InProcessClient>(*coordinator_, &clock_);
    profile_ = profile;
  }

  WorkerOptions Options() const {
    WorkerOptions o;
    o.max_in_flight = max_in_flight_;
    o.name = "test-worker";
    o.idle_poll = milliseconds(1);
    o.report_delay = milliseconds(1);
    o.drain_timeout = seconds(5);
    // The coordinator's clock stands still here, so a long poll would wait
    // for ever; LeaseWaitsAtTheCoordinatorWhileIdle turns it on.
    o.lease_wait = milliseconds(0);
    return o;
  }

  v1::Job Submit(int prompts, v1::JobSpec spec = {}) {
    if (spec.teacher().empty()) spec.set_teacher("sim");
    if (spec.model().empty()) spec.set_model("gpt-test");
    if (spec.samples() == 0) spec.set_samples(1);
    absl::StatusOr<std::unique_ptr<Submission>> sub =
        coordinator_->BeginSubmission(spec);
    EXPECT_TRUE(sub.ok()) << sub.status();
    google::protobuf::RepeatedPtrField<std::string> lines;
    for (int i = 0; i < prompts; ++i) {
      lines.Add("{\"prompt\": \"p" + std::to_string(i) + "\"}");
    }
    EXPECT_TRUE((*sub)->AddLines(lines).ok());
    absl::StatusOr<v1::Job> job = (*sub)->Commit();
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }

  // Runs the worker's clock until the job reaches a final state; the job.
  v1::Job WaitForEnd(const std::string& job_id) {
    v1::Job job;
    testing::RunClockUntil(clock_, [&] {
      job = *coordinator_->GetJob(job_id);
      return IsTerminal(job.state());
    });
    EXPECT_TRUE(IsTerminal(job.state())) << job.DebugString();
    return job;
  }
  // Runs the worker's clock until `done()`.
  bool RunUntil(const std::function<bool()>& done) {
    return testing::RunClockUntil(clock_, done);
  }

  v1::Task StoredTask(const std::string& job_id, int64_t seq, int sample = 0) {
    absl::StatusOr<std::optional<v1::Task>> t =
        store_->GetTask(job_id, seq, sample);
    EXPECT_TRUE(t.ok() && t->has_value());
    return t.ok() && t->has_value() ? **t : v1::Task();
  }

  std::vector<WorkerTeacher> Teachers(Teacher& teacher) {
    return {WorkerTeacher{profile_, &teacher}};
  }

  TempDir dir_;
  FakeClock coordinator_clock_;
  FakeClock clock_;  // the worker's
  std::unique_ptr<Store> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<InProcessClient> client_;
  TeacherProfile profile_;
  int max_in_flight_ = 4;
  std::function<double()> no_jitter_ = [] { return 0.0; };
};

TEST_F(WorkerTest, AnswersEveryTask) {
  v1::JobSpec spec;
  spec.mutable_params()->set_temperature(0.3);
  spec.mutable_params()->set_max_tokens(32);
  v1::Job job = Submit(5, spec);
  FakeTeacher teacher(clock_, [](const TeacherRequest& r, int) {
    return Answer("answer to " + r.messages.back().content);
  });
  Worker worker(*client_, Teachers(teacher), clock_, Options(),
                no_jitter_);
  WorkerThread thread(worker, clock_);

  v1::Job done = WaitForEnd(job.id());
  EXPECT_TRUE(thread.Stop().ok());
  EXPECT_EQ(done.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(done.counters().tasks_done(), 5);
  EXPECT_EQ(done.counters().teacher_requests(), 5);
  EXPECT_EQ(done.counters().prompt_tokens(), 15);
  EXPECT_EQ(done.counters().completion_tokens(), 20);
  EXPECT_EQ(worker.requests_sent(), 5);
  EXPECT_EQ(worker.results_reported(), 5);

  for (int seq = 0; seq < 5; ++seq) {
    v1::Task task = StoredTask(job.id(), seq);
    EXPECT_EQ(task.state(), v1::TASK_STATE_DONE);
    EXPECT_EQ(task.attempts(), 1);
    v1::Answer answer = **store_->GetAnswer(task.request_key());
    EXPECT_EQ(answer.content(), "answer to p" + std::to_string(seq));
    EXPECT_EQ(answer.worker(), "test-worker");
    EXPECT_EQ(answer.provider_id(), "fake-1");
    EXPECT_GT(answer.received_ms(), 0);
  }
  std::vector<FakeTeacher::Call> calls = teacher.calls();
  ASSERT_EQ(calls.size(), 5u);
  for (const FakeTeacher::Call& c : calls) {
    EXPECT_EQ(c.request.model, "gpt-test");
    ASSERT_EQ(c.request.messages.size(), 1u);
    EXPECT_EQ(c.request.messages[0].role, "user");
    EXPECT_EQ(c.request.params.max_tokens, 32);
    ASSERT_TRUE(c.request.params.temperature.has_value());
    EXPECT_DOUBLE_EQ(*c.request.params.temperature, 0.3);
    EXPECT_FALSE(c.request.params.seed.has_value());
  }
}


// An idle worker waits for work at the coordinator (a long poll), so a job
// submitted then is leased at once; its last results are reported at once
// too, not after report_delay: with nothing held, none are coming to share
// the report.
TEST_F(WorkerTest, AnIdleWorkerWaitsAtTheCoordinatorAndReportsItsLastResultsAtOnce) {
  FakeTeacher teacher(clock_, [](const TeacherRequest& r, int) {
    return Answer("answer to " + r.messages.back().content);
  });
  WorkerOptions options = Options();
  options.lease_wait = seconds(1);
  options.report_delay = seconds(10);
  Worker worker(*client_, Teachers(teacher), clock_, options, no_jitter_);
  WorkerThread thread(worker, clock_);
  ASSERT_TRUE(coordinator_clock_.WaitForWaiters(1))
      << "the idle worker did not wait at the coordinator";

  const TimePoint submitted = clock_.Now();
  v1::Job job = Submit(3);
  v1::Job done = WaitForEnd(job.id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(done.counters().tasks_done(), 3);
  EXPECT_LT(clock_.Now() - submitted, options.report_delay)
      << "the last results waited for report_delay";

  // Idle again, it waits at the coordinator again; Stop takes effect when
  // that wait ends.
  ASSERT_TRUE(RunUntil([&] { return coordinator_clock_.waiters() >= 1; }));
  worker.Stop();
  coordinator_clock_.Advance(kMaxLeaseWait);
  EXPECT_TRUE(thread.Stop().ok());
}
TEST_F(WorkerTest, PassesEverySamplingParameter) {
  v1::JobSpec spec;
  spec.set_samples(2);
  spec.set_system_prompt("Be brief.");
  spec.mutable_params()->set_top_p(0.9);
  spec.mutable_params()->set_seed(5);
  spec.mutable_params()->add_stop("END");
  v1::Job job = Submit(1, spec);
  FakeTeacher teacher(clock_, [](const TeacherRequest& r, int n) {
    return Answer("seed " + std::to_string(r.params.seed.value_or(-1)));
  });
  Worker worker(*client_, Teachers(teacher), clock_, Options(),
                no_jitter_);
  WorkerThread thread(worker, clock_);
  EXPECT_EQ(WaitForEnd(job.id()).state(), v1::JOB_STATE_COMPLETED);
  EXPECT_TRUE(thread.Stop().ok());

  std::vector<FakeTeacher::Call> calls = teacher.calls();
  ASSERT_EQ(calls.size(), 2u);
  std::vector<int64_t> seeds;
  for (const FakeTeacher::Call& c : calls) {
    ASSERT_EQ(c.request.messages.size(), 2u);
    EXPECT_EQ(c.request.messages[0].role, "system");
    EXPECT_EQ(c.request.messages[0].content, "Be brief.");
    EXPECT_EQ(c.request.messages[1].content, "p0");
    ASSERT_TRUE(c.request.params.top_p.has_value());
    EXPECT_DOUBLE_EQ(*c.request.params.top_p, 0.9);
    EXPECT_FALSE(c.request.params.temperature.has_value());
    EXPECT_EQ(c.request.params.stop, std::vector<std::string>{"END"});
    seeds.push_back(c.request.params.seed.value_or(-1));
  }
  std::sort(seeds.begin(), seeds.end());
  EXPECT_EQ(seeds, (std::vector<int64_t>{5, 6}));
}

TEST_F(WorkerTest, RetriesRetryableFailuresThenSucceeds) {
  v1::Job job = Submit(2);
  FakeTeacher teacher(clock_, [](const TeacherRequest& r, int n) {
    if (n == 1) {
      return Fail(FailureKind::kRetryable,
                  absl::UnavailableError("HTTP 503: overloaded"),
                  milliseconds(1));
    }
    if (n == 2) {
      return Fail(FailureKind::kRateLimited,
                  absl::ResourceExhaustedError("HTTP 429: slow down"),
                  milliseconds(1));
    }
    return Answer("finally " + r.messages.back().content);
  });
  Worker worker(*client_, Teachers(teacher), clock_, Options(),
                no_jitter_);
  WorkerThread thread(worker, clock_);
  v1::Job done = WaitForEnd(job.id());
  EXPECT_TRUE(thread.Stop().ok());

  EXPECT_EQ(done.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(done.counters().tasks_done(), 2);
  EXPECT_EQ(done.counters().tasks_failed(), 0);
  EXPECT_EQ(done.counters().teacher_requests(), 2);
  EXPECT_EQ(teacher.attempts("p0"), 3);
  EXPECT_EQ(teacher.attempts("p1"), 3);
  EXPECT_EQ(worker.requests_sent(), 6);
  for (int seq = 0; seq < 2; ++seq) {
    v1::Task task = StoredTask(job.id(), seq);
    EXPECT_EQ(task.state(), v1::TASK_STATE_DONE);
    EXPECT_EQ(task.attempts(), 3);
    EXPECT_EQ((**store_->GetAnswer(task.request_key())).content(),
              "finally p" + std::to_string(seq));
  }
}

TEST_F(WorkerTest, RetryAfterIsCappedByMaxRetryAfter) {
  v1::Job job = Submit(1);
  FakeTeacher teacher(clock_, [](const TeacherRequest&, int n) {
    if (n == 1) {
      return Fail(FailureKind::kRateLimited,
                  absl::ResourceExhaustedError("HTTP 429"),
                  std::chrono::hours(1));
    }
    return Answer("ok");
  });
  WorkerOptions options = Options();
  options.max_retry_after = milliseconds(1);
  Worker worker(*client_, Teachers(teacher), clock_, options,
                no_jitter_);
  WorkerThread thread(worker, clock_);
  // An uncapped hour-long wait would run into WaitForEnd's limit.
  EXPECT_EQ(WaitForEnd(job.id()).state(), v1::JOB_STATE_COMPLETED);
  EXPECT_TRUE(thread.Stop().ok());
  EXPECT_EQ(StoredTask(job.id(), 0).attempts(), 2);
}

// Without retry-after the worker backs off 0.5 s, then 1 s (no jitter),
// measured on the worker's FakeClock: the driver moves time only to the
// deadlines the worker waits for, so a retry sent early would show as a
// shorter gap.
TEST_F(WorkerTest, BacksOffExponentiallyOnTheClock) {
  v1::Job job = Submit(1);
  FakeTeacher teacher(clock_, [](const TeacherRequest&, int n) {
    if (n < 3) {
      return Fail(FailureKind::kRetryable, absl::UnavailableError("HTTP 502"));
    }
    return Answer("third time");
  });
  Worker worker(*client_, Teachers(teacher), clock_, Options(), no_jitter_);
  WorkerThread thread(worker, clock_);

  ASSERT_TRUE(teacher.WaitForCalls(3));
  std::vector<FakeTeacher::Call> calls = teacher.calls();
  EXPECT_EQ(calls[1].at - calls[0].at, milliseconds(500));
  EXPECT_EQ(calls[2].at - calls[1].at, milliseconds(1000));
  EXPECT_EQ(WaitForEnd(job.id()).state(), v1::JOB_STATE_COMPLETED);
  EXPECT_TRUE(thread.Stop().ok());
  EXPECT_EQ(StoredTask(job.id(), 0).attempts(), 3);
}

TEST_F(WorkerTest, PermanentFailureIsNotRetried) {
  v1::Job job = Submit(1);
  FakeTeacher teacher(clock_, [](const TeacherRequest&, int) {
    return Fail(FailureKind::kPermanent,
                absl::InvalidArgumentError("HTTP 400: context too long"));
  });
  Worker worker(*client_, Teachers(teacher), clock_, Options(),
                no_jitter_);
  WorkerThread thread(worker, clock_);
  v1::Job done = WaitForEnd(job.id());
  EXPECT_TRUE(thread.Stop().ok());

  // Its only task failed: the job failed.
  EXPECT_EQ(done.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(done.counters().tasks_failed(), 1);
  EXPECT_EQ(done.counters().tasks_done(), 0);
  EXPECT_EQ(teacher.attempts("p0"), 1);
  v1::Task task = StoredTask(job.id(), 0);
  EXPECT_EQ(task.state(), v1::TASK_STATE_FAILED);
  EXPECT_EQ(task.attempts(), 1);
  EXPECT_THAT(task.last_error(), HasSubstr("HTTP 400: context too long"));
  EXPECT_THAT(task.last_error(), HasSubstr("after 1 attempts"));
}

TEST_F(WorkerTest, ExhaustedAttemptsFailTheTask) {
  profile_.max_attempts = 2;
  v1::Job job = Submit(1);
  FakeTeacher teacher(clock_, [](const TeacherRequest&, int) {
    return Fail(FailureKind::kRetryable,
                absl::UnavailableError("HTTP 503: overloaded"),
                milliseconds(1));
  });
  Worker worker(*client_, Teachers(teacher), clock_, Options(),
                no_jitter_);
  WorkerThread thread(worker, clock_);
  v1::Job done = WaitForEnd(job.id());
  EXPECT_TRUE(thread.Stop().ok());

  // Its only task failed: the job failed.
  EXPECT_EQ(done.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(done.counters().tasks_failed(), 1);
  EXPECT_EQ(teacher.attempts("p0"), 2);
  v1::Task task = StoredTask(job.id(), 0);
  EXPECT_EQ(task.state(), v1::TASK_STATE_FAILED);
  EXPECT_EQ(task.attempts(), 2);
  EXPECT_THAT(task.last_error(), HasSubstr("HTTP 503: overloaded"));
  EXPECT_THAT(task.last_error(), HasSubstr("after 2 attempts"));
}

TEST_F(WorkerTest, TeacherDownPausesTheTeacher) {
  max_in_flight_ = 1;
  v1::Job job = Submit(3);
  FakeTeacher teacher(clock_, [](const TeacherRequest&, int) {
    return Fail(FailureKind::kTeacherDown,
                absl::PermissionDeniedError("HTTP 401: invalid api key"));
  });
  Worker worker(*client_, Teachers(teacher), clock_, Options(),
                no_jitter_);
  WorkerThread thread(worker, clock_);
  v1::Job seen;
  ASSERT_TRUE(RunUntil([&] {
    seen = *coordinator_->GetJob(job.id());
    return seen.teacher_status().paused();
  }));
  // Give a wrongly unpaused worker time (its own) to send more.
  const TimePoint later = clock_.Now() + milliseconds(200);
  ASSERT_TRUE(RunUntil([&] { return clock_.Now() >= later; }));
  EXPECT_TRUE(thread.Stop().ok());

  EXPECT_TRUE(seen.teacher_status().paused());
  EXPECT_THAT(seen.teacher_status().pause_reason(),
              HasSubstr("HTTP 401: invalid api key"));
  EXPECT_EQ(seen.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(teacher.attempts("p0"), 1) << "teacher-down is not retried";
  EXPECT_EQ(teacher.attempts("p1") + teacher.attempts("p2"), 0)
      << "a paused teacher gets no more requests";
  EXPECT_EQ(seen.counters().tasks_failed(), 0);
}

// The worker's own pause after a teacher-down answer holds while the
// coordinator has not committed that result: heartbeats answered meanwhile
// (their shares say "not paused") must not let another request out.
TEST_F(WorkerTest, ATeacherDownPauseHoldsUntilTheCoordinatorHasTheResult) {
  max_in_flight_ = 1;
  v1::Job job = Submit(3);
  FakeTeacher teacher(clock_, [](const TeacherRequest&, int) {
    return Fail(FailureKind::kTeacherDown,
                absl::PermissionDeniedError("HTTP 401: invalid api key"));
  });
  client_->FailNextReports(3);
  Worker worker(*client_, Teachers(teacher), clock_, Options(), no_jitter_);
  WorkerThread thread(worker, clock_);
  ASSERT_TRUE(client_->WaitForFailedReports(3));
  // A heartbeat begun after the failures, answered before any commit.
  ASSERT_TRUE(client_->WaitForFreshHeartbeat());
  EXPECT_FALSE(coordinator_->GetJob(job.id())->teacher_status().paused());
  EXPECT_EQ(teacher.attempts("p1") + teacher.attempts("p2"), 0)
      << "a heartbeat from before the commit lifted the pause";
  ASSERT_TRUE(RunUntil([&] {
    return coordinator_->GetJob(job.id())->teacher_status().paused();
  }));
  EXPECT_TRUE(thread.Stop().ok());
  EXPECT_EQ(teacher.attempts("p0"), 1);
  EXPECT_EQ(teacher.attempts("p1") + teacher.attempts("p2"), 0);
}

TEST_F(WorkerTest, RespectsMaxConcurrency) {
  max_in_flight_ = 2;
  v1::Job job = Submit(6);
  FakeTeacher teacher(
      clock_,
      [](const TeacherRequest& r, int) {
        return Answer("a " + r.messages.back().content);
      },
      /*async=*/true);
  Worker worker(*client_, Teachers(teacher), clock_, Options(),
                no_jitter_);
  WorkerThread thread(worker, clock_);

  ASSERT_TRUE(teacher.WaitForInFlight(2));
  for (int answered = 1; answered <= 6; ++answered) {
    ASSERT_TRUE(teacher.AnswerOne()) << "answer " << answered;
    // Let the worker refill its free slot (and, if it were wrong, more)
    // before the next answer; every Ask updates the peak.
    ASSERT_TRUE(teacher.WaitForInFlight(std::min(2, 6 - answered)));
  }
  v1::Job done = WaitForEnd(job.id());
  EXPECT_TRUE(thread.Stop().ok());
  EXPECT_EQ(done.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(done.counters().tasks_done(), 6);
  EXPECT_EQ(teacher.peak(), 2);
}

// A teacher whose limits nobody knows (the profile sets none, it announces
// none: vLLM, Ollama, llama.cpp) is not held to a guess: the worker sends
// as many requests as it may have in flight at once, before any share and
// without the clock moving on.
TEST_F(WorkerTest, WithNoLimitKnownSendsUpToItsCapAtOnce) {
  TeacherProfile unknown = profile_;
  unknown.rpm = -1;
  unknown.tpm = -1;
  CoordinatorOptions options;
  options.heartbeat_interval = milliseconds(50);
  UseProfile(unknown, options);
  max_in_flight_ = 64;
  v1::Job job = Submit(100);
  FakeTeacher teacher(
      clock_,
      [](const TeacherRequest& r, int) {
        return Answer("a " + r.messages.back().content);
      },
      /*async=*/true);
  const TimePoint start = clock_.Now();
  Worker worker(*client_, Teachers(teacher), clock_, Options(), no_jitter_);
  WorkerThread thread(worker, clock_);

  ASSERT_TRUE(teacher.WaitForInFlight(64));
  // The lease loop's own polls are the only time that passed: a rate, even
  // a generous guess, would have spread 64 requests over a share's refills.
  EXPECT_LT(clock_.Now() - start, milliseconds(100));
  for (int answered = 0; answered < 100; ++answered) {
    ASSERT_TRUE(teacher.AnswerOne()) << "answer " << answered;
  }
  v1::Job done = WaitForEnd(job.id());
  EXPECT_TRUE(thread.Stop().ok());
  EXPECT_EQ(done.counters().tasks_done(), 100);
  EXPECT_EQ(teacher.peak(), 64) << "never above the cap";
}

// Concurrency is shared out by the coordinator, and the first worker to
// ask holds all of it until it renews its share (a heartbeat interval). A
// worker that joins then is granted none: it gives back the tasks it leased
// to show its demand, at once, rather than sitting on them until its next
// heartbeat while the first worker runs out of work.
TEST_F(WorkerTest, AWorkerGrantedNoConcurrencyGivesItsTasksBack) {
  TeacherProfile capped = profile_;
  capped.max_concurrency = 4;
  CoordinatorOptions options;
  options.heartbeat_interval = seconds(5);  // within the 6 s share ttl
  UseProfile(capped, options);
  max_in_flight_ = 4;
  v1::Job job = Submit(16);
  auto answer = [](const TeacherRequest& r, int) {
    return Answer("a " + r.messages.back().content);
  };
  FakeTeacher first_teacher(clock_, answer, /*async=*/true);
  FakeTeacher second_teacher(clock_, answer, /*async=*/true);
  const TimePoint start = clock_.Now();
  WorkerOptions first_options = Options();
  first_options.name = "first";
  Worker first(*client_, Teachers(first_teacher), clock_, first_options,
               no_jitter_);
  WorkerThread first_thread(first, clock_);
  ASSERT_TRUE(first_teacher.WaitForInFlight(4)) << "the whole limit";

  WorkerOptions second_options = Options();
  second_options.name = "second";
  Worker second(*client_, Teachers(second_teacher), clock_, second_options,
                no_jitter_);
  WorkerThread second_thread(second, clock_);
  // The second worker has leased, asked for a share and been granted none.
  ASSERT_TRUE(RunUntil([&] {
    return coordinator_->GetJob(job.id())->counters().tasks_done() == 0 &&
           clock_.Now() - start > milliseconds(400);
  }));
  for (int answered = 0; answered < 16; ++answered) {
    ASSERT_TRUE(first_teacher.AnswerOne()) << "answer " << answered;
  }
  v1::Job done = WaitForEnd(job.id());
  EXPECT_EQ(done.counters().tasks_done(), 16);
  EXPECT_EQ(second_teacher.calls().size(), 0u) << "it had no share";
  // Nobody waited for a heartbeat interval: the second worker's tasks went
  // back to the first as soon as it had no share for them.
  EXPECT_LT(clock_.Now() - start, seconds(5));
  EXPECT_TRUE(second_thread.Stop().ok());
  EXPECT_TRUE(first_thread.Stop().ok());
}

TEST_F(WorkerTest, StopGivesBackTasksWaitingForARetry) {
  v1::Job job = Submit(1);
  FakeTeacher teacher(clock_, [](const TeacherRequest&, int) {
    return Fail(FailureKind::kRateLimited,
                absl::ResourceExhaustedError("HTTP 429"),
                std::chrono::minutes(10));
  });
  Worker worker(*client_, Teachers(teacher), clock_, Options(),
                no_jitter_);
  WorkerThread thread(worker, clock_);
  ASSERT_TRUE(teacher.WaitForCalls(1));
  ASSERT_TRUE(client_->SyncLoop());  // the retry is scheduled, 2 min out
  EXPECT_TRUE(thread.Stop().ok());

  EXPECT_EQ(worker.results_reported(), 1);
  std::vector<v1::TaskResult> results = client_->results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].failure(), v1::FAILURE_CLASS_ABANDONED);
  v1::Job after = *coordinator_->GetJob(job.id());
  EXPECT_EQ(after.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(after.counters().tasks_failed(), 0);
  EXPECT_EQ(StoredTask(job.id(), 0).state(), v1::TASK_STATE_PENDING);

  // Another worker gets it at once, without waiting for the lease to expire.
  v1::RegisterRequest reg;
  reg.set_name("other");
  v1::LeaseRequest lease;
  lease.set_worker_id(coordinator_->Register(reg).worker_id());
  lease.set_max_tasks(10);
  lease.add_teachers("sim");
  EXPECT_EQ(coordinator_->Lease(lease)->tasks_size(), 1);
}

TEST_F(WorkerTest, RegistersAgainWhenTheCoordinatorForgetsIt) {
  v1::Job job = Submit(2);
  client_->FailNextLeases(1);
  FakeTeacher teacher(clock_,
                      [](const TeacherRequest&, int) { return Answer("ok"); });
  Worker worker(*client_, Teachers(teacher), clock_, Options(),
                no_jitter_);
  WorkerThread thread(worker, clock_);
  EXPECT_EQ(WaitForEnd(job.id()).state(), v1::JOB_STATE_COMPLETED);
  EXPECT_TRUE(thread.Stop().ok());
  EXPECT_EQ(client_->registers(), 2);
}

TEST_F(WorkerTest, KeepsResultsWhenAReportFails) {
  v1::Job job = Submit(3);
  client_->FailNextReports(2);
  FakeTeacher teacher(clock_, [](const TeacherRequest& r, int) {
    return Answer("answer " + r.messages.back().content);
  });
  Worker worker(*client_, Teachers(teacher), clock_, Options(),
                no_jitter_);
  WorkerThread thread(worker, clock_);
  v1::Job done = WaitForEnd(job.id());
  EXPECT_TRUE(thread.Stop().ok());

  EXPECT_EQ(client_->failed_reports(), 2);
  EXPECT_EQ(done.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(done.counters().tasks_done(), 3);
  EXPECT_EQ(worker.requests_sent(), 3) << "a paid answer was asked again";
  EXPECT_EQ(worker.results_reported(), 3);
}

TEST_F(WorkerTest, HeartbeatsKeepALongRequestLeased) {
  v1::Job job = Submit(1);
  FakeTeacher teacher(
      clock_,
      [](const TeacherRequest&, int) { return Answer("slow"); },
      /*async=*/true);
  Worker worker(*client_, Teachers(teacher), clock_, Options(),
                no_jitter_);
  WorkerThread thread(worker, clock_);
  ASSERT_TRUE(teacher.WaitForInFlight(1));
  std::vector<int64_t> leased = client_->leased_ids();
  ASSERT_EQ(leased.size(), 1u);

  // The lease lasts 60 s on the coordinator's clock; the worker heartbeats
  // every 50 ms of real time.
  coordinator_clock_.Advance(seconds(50));
  ASSERT_TRUE(client_->WaitForHeartbeatWith(leased[0]));
  coordinator_clock_.Advance(seconds(50));  // past the unrenewed deadline
  v1::RegisterRequest reg;
  reg.set_name("thief");
  v1::LeaseRequest lease;
  lease.set_worker_id(coordinator_->Register(reg).worker_id());
  lease.set_max_tasks(10);
  lease.add_teachers("sim");
  EXPECT_EQ(coordinator_->Lease(lease)->tasks_size(), 0)
      << "the lease expired although the worker heartbeat it";

  ASSERT_TRUE(teacher.AnswerOne());
  v1::Job done = WaitForEnd(job.id());
  EXPECT_TRUE(thread.Stop().ok());
  EXPECT_EQ(done.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(done.counters().teacher_requests(), 1);
}

// A teacher's text in another charset (a Latin-1 HTML 400, stray bytes in
// an answer) is repaired to UTF-8: the report parses and everything commits.
TEST_F(WorkerTest, RepairsInvalidUtf8FromTheTeacher) {
  v1::Job job = Submit(3);
  FakeTeacher teacher(clock_, [](const TeacherRequest& r, int) {
    const std::string& p = r.messages.back().content;
    if (p == "p0") {
      return Fail(FailureKind::kPermanent,
                  absl::InvalidArgumentError(
                      "HTTP 400: <p>caract\xE8re non autoris\xE9</p>"));
    }
    TeacherResult a = Answer(p == "p1" ? "caf\xE9 cr\xE8me" : "fine");
    if (p == "p1") {
      a.answer.finish_reason = "st\xFFop";
      a.answer.provider_id = "id-\xC3";
      a.answer.reasoning = "\xED\xA0\x80";
    }
    return a;
  });
  Worker worker(*client_, Teachers(teacher), clock_, Options(),
                no_jitter_);
  WorkerThread thread(worker, clock_);
  v1::Job done = WaitForEnd(job.id());
  EXPECT_TRUE(thread.Stop().ok());

  EXPECT_EQ(done.counters().tasks_done(), 2);
  EXPECT_EQ(done.counters().tasks_failed(), 1);
  EXPECT_EQ(client_->refused_reports(), 0);
  EXPECT_EQ(worker.requests_sent(), 3);
  v1::Task failed = StoredTask(job.id(), 0);
  EXPECT_EQ(failed.state(), v1::TASK_STATE_FAILED);
  EXPECT_THAT(failed.last_error(),
              HasSubstr("caract\xEF\xBF\xBDre non autoris\xEF\xBF\xBD"));
  v1::Answer answer = **store_->GetAnswer(StoredTask(job.id(), 1).request_key());
  EXPECT_EQ(answer.content(), "caf\xEF\xBF\xBD cr\xEF\xBF\xBDme");
  EXPECT_EQ(answer.finish_reason(), "st\xEF\xBF\xBDop");
  EXPECT_EQ(answer.provider_id(), "id-\xEF\xBF\xBD");
}

// One result the coordinator refuses does not hold back the others: the
// report is split until the good results commit, and the refused one is
// reported as a failure with the reason, not resent forever.
TEST_F(WorkerTest, SplitsARefusedReportAndFailsTheResultItCannotTake) {
  max_in_flight_ = 16;
  v1::Job job = Submit(12);
  client_->RefuseAnswer("poison");
  FakeTeacher teacher(clock_, [](const TeacherRequest& r, int) {
    const std::string& p = r.messages.back().content;
    return Answer(p == "p5" ? "poison" : "good " + p);
  });
  WorkerOptions options = Options();
  options.report_delay = milliseconds(200);  // results gather in one report
  Worker worker(*client_, Teachers(teacher), clock_, options,
                no_jitter_);
  WorkerThread thread(worker, clock_);
  v1::Job done = WaitForEnd(job.id());
  EXPECT_TRUE(thread.Stop().ok());

  EXPECT_GE(client_->refused_reports(), 1);
  EXPECT_EQ(done.counters().tasks_done(), 11);
  EXPECT_EQ(done.counters().tasks_failed(), 1);
  EXPECT_EQ(worker.requests_sent(), 12) << "an answer was paid for twice";
  for (int seq = 0; seq < 12; ++seq) {
    v1::Task task = StoredTask(job.id(), seq);
    if (seq == 5) {
      EXPECT_EQ(task.state(), v1::TASK_STATE_FAILED);
      EXPECT_THAT(task.last_error(), HasSubstr("refused"));
      EXPECT_THAT(task.last_error(),
                  HasSubstr("a result the coordinator refuses"));
    } else {
      EXPECT_EQ(task.state(), v1::TASK_STATE_DONE) << seq;
    }
  }
}

// A coordinator whose message limit is below what the worker was told:
// the reports it refuses as too large are split until they fit.
TEST_F(WorkerTest, SplitsReportsACoordinatorRefusesAsTooLarge) {
  max_in_flight_ = 32;
  v1::Job job = Submit(30);
  client_->RefuseReportsOver(64 << 10);
  FakeTeacher teacher(clock_, [](const TeacherRequest& r, int) {
    return Answer(r.messages.back().content + std::string(10 << 10, 'x'));
  });
  WorkerOptions options = Options();
  options.report_delay = milliseconds(200);
  Worker worker(*client_, Teachers(teacher), clock_, options,
                no_jitter_);
  WorkerThread thread(worker, clock_);
  v1::Job done = WaitForEnd(job.id());
  EXPECT_TRUE(thread.Stop().ok());
  EXPECT_EQ(done.counters().tasks_done(), 30);
  EXPECT_EQ(done.counters().tasks_failed(), 0);
  EXPECT_EQ(worker.requests_sent(), 30);
}

// Told the limit, the worker cuts its reports to fit it before sending.
TEST_F(WorkerTest, CutsReportsToTheMessageLimit) {
  max_in_flight_ = 32;
  v1::Job job = Submit(30);
  client_->RefuseReportsOver(64 << 10);
  FakeTeacher teacher(clock_, [](const TeacherRequest& r, int) {
    return Answer(r.messages.back().content + std::string(10 << 10, 'x'));
  });
  WorkerOptions options = Options();
  options.report_delay = milliseconds(200);
  options.max_message_bytes = 64 << 10;
  Worker worker(*client_, Teachers(teacher), clock_, options,
                no_jitter_);
  WorkerThread thread(worker, clock_);
  v1::Job done = WaitForEnd(job.id());
  EXPECT_TRUE(thread.Stop().ok());
  EXPECT_EQ(done.counters().tasks_done(), 30);
  EXPECT_EQ(client_->refused_reports(), 0);
  EXPECT_LE(client_->largest_report(), size_t{64} << 10);
  EXPECT_GT(client_->largest_report(), size_t{20} << 10) << "not batched";
}

// A result larger than any report could be is failed with the reason.
TEST_F(WorkerTest, AResultTooLargeForAnyReportFailsWithAReason) {
  v1::Job job = Submit(2);
  FakeTeacher teacher(clock_, [](const TeacherRequest& r, int) {
    return Answer(r.messages.back().content == "p0"
                      ? std::string(100 << 10, 'y')
                      : "small");
  });
  WorkerOptions options = Options();
  options.max_message_bytes = 32 << 10;
  Worker worker(*client_, Teachers(teacher), clock_, options,
                no_jitter_);
  WorkerThread thread(worker, clock_);
  v1::Job done = WaitForEnd(job.id());
  EXPECT_TRUE(thread.Stop().ok());
  EXPECT_EQ(done.counters().tasks_done(), 1);
  EXPECT_EQ(done.counters().tasks_failed(), 1);
  v1::Task task = StoredTask(job.id(), 0);
  EXPECT_EQ(task.state(), v1::TASK_STATE_FAILED);
  EXPECT_THAT(task.last_error(), HasSubstr("does not fit in one report"));
}

// Results that pile up while reports fail (or while one is in progress)
// go out in reports of at most report_batch results each, and the worker
// stops taking work once twice that many wait: the coordinator commits
// them at the usual size, whatever its delay.
TEST_F(WorkerTest, PiledUpResultsGoOutInReportsOfTheUsualSize) {
  v1::Job job = Submit(40);
  client_->FailNextReports(1 << 30);
  FakeTeacher teacher(clock_,
                      [](const TeacherRequest&, int) { return Answer("ok"); });
  WorkerOptions options = Options();
  options.report_batch = 4;
  Worker worker(*client_, Teachers(teacher), clock_, options, no_jitter_);
  WorkerThread thread(worker, clock_);
  ASSERT_TRUE(teacher.WaitForCalls(8));
  ASSERT_TRUE(client_->WaitForFailedReports(3));
  // Twice a report's worth waiting, plus at most one lease of four.
  EXPECT_LE(worker.requests_sent(), 12) << "took more work while nothing "
                                           "could be reported";

  client_->FailNextReports(0);
  v1::Job done = WaitForEnd(job.id());
  EXPECT_TRUE(thread.Stop().ok());
  EXPECT_EQ(done.counters().tasks_done(), 40);
  EXPECT_EQ(worker.requests_sent(), 40);
  EXPECT_GT(client_->most_results_in_a_report(), 0);
  EXPECT_LE(client_->most_results_in_a_report(), 4);
}

// A finished result's lease is held (named in heartbeats) until a report
// is acknowledged, so it does not expire while the coordinator is away.
TEST_F(WorkerTest, HoldsALeaseUntilItsResultIsAcknowledged) {
  v1::Job job = Submit(1);
  client_->FailNextReports(1 << 30);
  FakeTeacher teacher(clock_,
                      [](const TeacherRequest&, int) { return Answer("ok"); });
  Worker worker(*client_, Teachers(teacher), clock_, Options(),
                no_jitter_);
  WorkerThread thread(worker, clock_);
  ASSERT_TRUE(teacher.WaitForCalls(1));
  std::vector<int64_t> leased = client_->leased_ids();
  ASSERT_EQ(leased.size(), 1u);
  // Reports run on their own thread: a heartbeat may come before the
  // first report fails, so the one checked begins after a failure.
  ASSERT_TRUE(client_->WaitForFailedReports(1));
  ASSERT_TRUE(client_->WaitForHeartbeatWith(leased[0]))
      << "the lease of an unreported result was dropped";

  client_->FailNextReports(0);
  v1::Job done = WaitForEnd(job.id());
  EXPECT_EQ(done.counters().tasks_done(), 1);
  EXPECT_TRUE(client_->WaitForHeartbeatWithout(leased[0]));
  EXPECT_TRUE(thread.Stop().ok());
  EXPECT_EQ(worker.requests_sent(), 1);
}

TEST_F(WorkerTest, CancelDropsQueuedTasksAtTheNextHeartbeat) {
  // One request at a time cluster-wide: the worker holds more than it sends.
  profile_.max_concurrency = 1;
  CoordinatorOptions options;
  options.heartbeat_interval = milliseconds(50);
  coordinator_ = std::make_unique<Coordinator>(
      *store_, std::vector<TeacherProfile>{profile_}, coordinator_clock_,
      options);
  ASSERT_TRUE(coordinator_->Recover().ok());
  client_ = std::make_unique<InProcessClient>(*coordinator_, &clock_);
  v1::Job job = Submit(4);
  FakeTeacher teacher(
      clock_,
      [](const TeacherRequest&, int) { return Answer("late"); },
      /*async=*/true);
  Worker worker(*client_, Teachers(teacher), clock_, Options(),
                no_jitter_);
  WorkerThread thread(worker, clock_);
  ASSERT_TRUE(teacher.WaitForInFlight(1));

  ASSERT_TRUE(coordinator_->CancelJob(job.id()).ok());
  ASSERT_TRUE(client_->WaitForFreshHeartbeat());
  // The answer already asked for arrives and is reported; nothing queued is
  // sent after it.
  ASSERT_TRUE(teacher.AnswerOne());
  ASSERT_TRUE(client_->WaitForReports(1));
  ASSERT_TRUE(client_->SyncLoop());
  EXPECT_TRUE(thread.Stop().ok());
  EXPECT_EQ(teacher.calls().size(), 1u) << "sent a task of a cancelled job";
  EXPECT_EQ(coordinator_->GetJob(job.id())->state(),
            v1::JOB_STATE_CANCELLED);
}

TEST_F(WorkerTest, StopAtTheDrainDeadlineGivesBackRequestsInFlight) {
  v1::Job job = Submit(1);
  FakeTeacher teacher(
      clock_,
      [](const TeacherRequest&, int) { return Answer("too late"); },
      /*async=*/true);
  WorkerOptions options = Options();
  options.drain_timeout = milliseconds(20);
  Worker worker(*client_, Teachers(teacher), clock_, options,
                no_jitter_);
  WorkerThread thread(worker, clock_);
  ASSERT_TRUE(teacher.WaitForInFlight(1));
  EXPECT_TRUE(thread.Stop().ok());

  std::vector<v1::TaskResult> results = client_->results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].failure(), v1::FAILURE_CLASS_ABANDONED);
  // Leased again at once, not at the lease deadline.
  v1::RegisterRequest reg;
  reg.set_name("other");
  v1::LeaseRequest lease;
  lease.set_worker_id(coordinator_->Register(reg).worker_id());
  lease.set_max_tasks(10);
  lease.add_teachers("sim");
  EXPECT_EQ(coordinator_->Lease(lease)->tasks_size(), 1);
  // The answer that comes after it was given back is not reported.
  ASSERT_TRUE(teacher.AnswerOne());
  EXPECT_EQ(client_->results().size(), 1u);
  EXPECT_EQ(StoredTask(job.id(), 0).state(), v1::TASK_STATE_PENDING);
}

TEST_F(WorkerTest, LastReportIsRetriedAfterTheDrain) {
  v1::Job job = Submit(1);
  client_->FailNextReports(1'000'000);
  FakeTeacher teacher(clock_,
                      [](const TeacherRequest&, int) { return Answer("ok"); });
  WorkerOptions options = Options();
  options.drain_timeout = Duration(0);
  Worker worker(*client_, Teachers(teacher), clock_, options,
                no_jitter_);
  WorkerThread thread(worker, clock_);
  ASSERT_TRUE(client_->WaitForFailedReports(1));
  worker.Stop();
  client_->FailNextReports(0);  // the coordinator is back
  EXPECT_TRUE(thread.Stop().ok());
  EXPECT_EQ(worker.results_reported(), 1) << "the paid answer was lost";
  EXPECT_EQ(coordinator_->GetJob(job.id())->state(),
            v1::JOB_STATE_COMPLETED);
}

// A coordinator that restarted refuses the report of a worker it does not
// know: the worker registers again, announcing the result's task, and then
// reports it. The answer is paid for once and kept.
TEST_F(WorkerTest, AReportRefusedAsFromAnUnknownWorkerRegistersAgainFirst) {
  v1::Job job = Submit(1);
  client_->ForgetWorkerAtNextReports(1);
  FakeTeacher teacher(clock_,
                      [](const TeacherRequest&, int) { return Answer("ok"); });
  Worker worker(*client_, Teachers(teacher), clock_, Options(),
                no_jitter_);
  WorkerThread thread(worker, clock_);
  v1::Job done = WaitForEnd(job.id());
  EXPECT_TRUE(thread.Stop().ok());

  EXPECT_EQ(done.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(done.counters().tasks_done(), 1);
  EXPECT_EQ(worker.requests_sent(), 1) << "the answer was paid for twice";
  EXPECT_EQ(client_->registers(), 2);
  const v1::RegisterRequest again = client_->last_register();
  ASSERT_EQ(again.held_tasks_size(), 1) << "the result's task not announced";
  EXPECT_EQ(again.held_tasks(0).job_id(), job.id());
  EXPECT_EQ(again.held_tasks(0).prompt_seq(), 0);
}

TEST_F(WorkerTest, AnnouncesWhatItHoldsWhenRegisteringAgain) {
  v1::Job job = Submit(3);
  FakeTeacher teacher(
      clock_,
      [](const TeacherRequest& r, int) {
        return Answer("a " + r.messages.back().content);
      },
      /*async=*/true);
  Worker worker(*client_, Teachers(teacher), clock_, Options(),
                no_jitter_);
  WorkerThread thread(worker, clock_);
  ASSERT_TRUE(teacher.WaitForInFlight(3));
  client_->FailNextLeases(1);  // "unknown worker": the coordinator forgot us
  const int before = client_->registers();
  ASSERT_TRUE(client_->SyncLoop());
  ASSERT_EQ(client_->registers(), before + 1);
  v1::RegisterRequest again = client_->last_register();
  std::vector<int64_t> announced;
  for (const v1::HeldTask& h : again.held_tasks()) {
    announced.push_back(h.lease_id());
    EXPECT_EQ(h.job_id(), job.id());
  }
  std::vector<int64_t> leased = client_->leased_ids();
  std::sort(leased.begin(), leased.end());
  EXPECT_EQ(announced, leased);

  for (int i = 0; i < 3; ++i) ASSERT_TRUE(teacher.AnswerOne());
  v1::Job done = WaitForEnd(job.id());
  EXPECT_TRUE(thread.Stop().ok());
  EXPECT_EQ(done.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(teacher.calls().size(), 3u);
}

TEST_F(WorkerTest, RunWithoutTeachersFails) {
  Worker worker(*client_, {}, clock_, Options(), no_jitter_);
  absl::Status s = worker.Run();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(client_->registers(), 0);
}

}  // namespace
}  // namespace distillery
