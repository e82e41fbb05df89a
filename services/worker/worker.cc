// Worker, the stop/drain path and the loop that ties the paths together:
// construction, Run's loop (each turn heartbeats, hands a due report to the
// reporter thread, leases and dispatches, then waits on the clock for the
// next thing due or a state change), Stop, and the drain that gives back
// what will not be answered. Reports run on their own thread (ReportLoop),
// so that the coordinator commits one while the loop leases and sends.
// The lease/queue path is in worker_lease.cc, the report/ack path in
// worker_report.cc. Thread-safe: state is under mu_ (worker.h).
#include "services/worker/worker.h"

#include <algorithm>
#include <map>
#include <random>
#include <thread>

#include <spdlog/spdlog.h>

namespace distillery {

Worker::Worker(CoordinatorClient& coordinator,
               std::vector<WorkerTeacher> teachers, Clock& clock,
               WorkerOptions options, std::function<double()> random)
    : coordinator_(coordinator),
      clock_(clock),
      options_(std::move(options)),
      random_(std::move(random)) {
  if (!random_) {
    auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
    auto mu = std::make_shared<absl::Mutex>();
    random_ = [engine, mu] {
      absl::MutexLock lock(mu.get());
      return std::uniform_real_distribution<double>(0.0, 1.0)(*engine);
    };
  }
  for (WorkerTeacher& t : teachers) {
    TeacherState state;
    state.limiter = std::make_unique<TeacherLimiter>(
        clock_, t.profile, options_.max_in_flight, options_.max_retry_after);
    state.config = std::move(t);
    teachers_.push_back(std::move(state));
  }
}

int64_t Worker::requests_sent() const {
  absl::MutexLock lock(&mu_);
  return requests_sent_;
}

int64_t Worker::results_reported() const {
  absl::MutexLock lock(&mu_);
  return results_reported_;
}

void Worker::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  coordinator_.EndLeaseWaits();
}

absl::Status Worker::Run() {
  {
    absl::MutexLock lock(&mu_);
    if (teachers_.empty()) {
      return absl::FailedPreconditionError(
          "worker has no usable teacher profile");
    }
  }
  RegisterUntilDone();
  std::thread reporter([this] { ReportLoop(); });
  std::thread batch_thread;
  {
    std::map<std::string, BatchApi*> apis;
    std::map<std::string, TeacherProfile> profiles;
    {
      absl::MutexLock lock(&mu_);
      for (const TeacherState& t : teachers_) {
        if (t.config.batch == nullptr) continue;
        apis[t.config.profile.name] = t.config.batch;
        profiles[t.config.profile.name] = t.config.profile;
      }
    }
    if (!apis.empty()) {
      BatchRunnerOptions batch_options;
      batch_options.report_bytes = ReportBudget();
      batch_runner_ = std::make_unique<BatchRunner>(
          coordinator_, std::move(apis), std::move(profiles), clock_,
          BatchHost(), batch_options);
      batch_thread = std::thread([this] { batch_runner_->Run(); });
    }
  }
  TimePoint drain_deadline{};
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      slot_freed_ = false;
      report_finished_ = false;
      const TimePoint now = clock_.Now();
      if (stopping_) {
        if (drain_deadline == TimePoint{}) {
          if (batch_runner_) batch_runner_->Stop();
          drain_deadline = now + options_.drain_timeout;
          spdlog::info("worker draining: {} tasks held", held_leases_.size());
        }
        // Tasks waiting for a retry go back unattempted-now; the coordinator
        // hands them to another worker.
        for (auto& [when, pending] : retries_) {
          v1::TaskResult r;
          r.set_failure(v1::FAILURE_CLASS_ABANDONED);
          r.set_error("worker stopping");
          Finish(pending, std::move(r));
        }
        retries_.clear();
        for (TeacherState& t : teachers_) {
          GiveBackQueuedLocked(t, "worker stopping");
        }
        // Requests the drain could not wait for go back too, so that the
        // coordinator leases them again at once instead of at their
        // deadline; their answers, if any come, are not reported.
        if (now >= drain_deadline && !in_flight_.empty()) {
          GiveBackInFlightLocked();
        }
        bool busy = false;
        for (const TeacherState& t : teachers_) busy |= t.busy > 0;
        if (!busy && results_.empty() && !report_in_progress_) break;
        if (now >= drain_deadline + options_.final_report_timeout) {
          spdlog::error("worker stopping with {} results it could not "
                        "report; their tasks return at their lease deadline",
                        results_.size());
          break;
        }
      } else {
        // Retries wait for budget like everything else, ahead of new work.
        for (auto it = retries_.begin();
             it != retries_.end() && it->first <= now;) {
          TeacherState& t = teachers_[it->second.teacher_index];
          t.queue.push_front(std::move(it->second));
          it = retries_.erase(it);
        }
      }
    }
    RegisterIfReportAsked();
    HeartbeatIfDue();
    HandOverReportIfDue();
    LeaseMore();
    const Duration budget_wait = DispatchReady();

    absl::MutexLock lock(&mu_);
    const TimePoint now = clock_.Now();
    TimePoint deadline =
        lease_waited_ ? now
                      : now + std::min<Duration>(options_.idle_poll, budget_wait);
    lease_waited_ = false;
    if (!results_.empty() && !report_in_progress_) {
      deadline = std::min(
          deadline,
          std::max(oldest_result_ + options_.report_delay, report_retry_at_));
    }
    if (!retries_.empty()) {
      deadline = std::min(deadline, retries_.begin()->first);
    }
    // While draining, stopping_ stays set: it must not end every wait. The
    // condition reads no clock (absl evaluates it in whichever thread
    // unlocks mu_): a full batch wakes the loop unless a report backoff was
    // running when the wait began, and then the deadline covers it.
    const bool drain_started = drain_deadline != TimePoint{};
    const bool may_report = now >= report_retry_at_;
    auto woken = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return (stopping_ && !drain_started) || slot_freed_ ||
             report_finished_ ||
             (may_report && !report_in_progress_ &&
              static_cast<int>(results_.size()) >= options_.report_batch);
    };
    clock_.AwaitWithDeadline(&mu_, absl::Condition(&woken), deadline);
  }
  // Every result was paid for. The drain above retried failed reports until
  // its deadline; a few more attempts (with the backoff) give a coordinator
  // that is just coming back its chance.
  {
    absl::MutexLock lock(&mu_);
    reporter_stop_ = true;
  }
  reporter.join();
  constexpr int kFinalReportAttempts = 5;
  for (int attempt = 1; !ReportSome(/*force=*/true); ++attempt) {
    RegisterIfReportAsked();
    absl::MutexLock lock(&mu_);
    if (attempt >= kFinalReportAttempts) {
      spdlog::error("worker stopping with {} results the coordinator did not "
                    "acknowledge",
                    results_.size());
      break;
    }
    static constexpr bool kNever = false;
    clock_.AwaitWithDeadline(
        &mu_, absl::Condition(&kNever),
        std::max(clock_.Now() + std::chrono::milliseconds(1),
                 report_retry_at_));
  }
  if (batch_thread.joinable()) {
    batch_runner_->Stop();
    batch_thread.join();
  }
  spdlog::info("worker stopped after {} teacher requests", requests_sent());
  return absl::OkStatus();
}

BatchRunnerHost Worker::BatchHost() {
  BatchRunnerHost host;
  host.worker_id = [this] {
    absl::MutexLock lock(&mu_);
    return worker_id_;
  };
  host.hold = [this](int64_t id) {
    absl::MutexLock lock(&mu_);
    held_steps_.insert(id);
  };
  host.release = [this](int64_t id) {
    absl::MutexLock lock(&mu_);
    held_steps_.erase(id);
  };
  // The next heartbeat, at once, finds the coordinator does not know us
  // and registers again.
  host.register_again = [this] {
    absl::MutexLock lock(&mu_);
    next_heartbeat_ = clock_.Now();
  };
  return host;
}

void Worker::GiveBackInFlightLocked() {
  for (auto& [id, stub] : in_flight_) {
    if (!given_back_.insert(id).second) continue;
    v1::TaskResult r;
    r.set_failure(v1::FAILURE_CLASS_ABANDONED);
    r.set_error("worker stopped before the teacher answered");
    Finish(stub, std::move(r));
  }
  spdlog::warn("drain ended with {} requests in flight: given back",
               in_flight_.size());
  in_flight_.clear();
}

}  // namespace distillery
