// Worker, the report/ack path: results wait in results_ until a report
// is due (a full batch, report_delay, or the drain), are handed to the
// reporter thread (ReportLoop), go out in reports cut to fit one gRPC
// message and report_batch results, are split in halves when the
// coordinator refuses a report for what it holds, and end their leases
// when acknowledged. A report that cannot be sent keeps every result (each
// was paid for) and is retried after a backoff. Thread-safe: state is
// under mu_ (worker.h).
#include <algorithm>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/base/json_string.h"
#include "services/worker/worker.h"

namespace distillery {
namespace {

// Errors that say nothing about a report's content: the coordinator is away,
// slow or not letting us in. The report is kept whole and sent again.
bool IsTransientReportError(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) ||
         absl::IsCancelled(status) || absl::IsUnauthenticated(status) ||
         absl::IsPermissionDenied(status);
}

// A failure result in place of `original`, which cannot be committed (too
// large for a message, or refused by the coordinator): the task settles
// with the reason, and its lease ends, instead of being resent forever.
v1::TaskResult FailureInsteadOf(const v1::TaskResult& original,
                                std::string_view reason) {
  constexpr size_t kMaxReason = 1000;
  v1::TaskResult r;
  r.set_job_id(original.job_id());
  r.set_prompt_seq(original.prompt_seq());
  r.set_sample(original.sample());
  r.set_request_key(original.request_key());
  r.set_lease_id(original.lease_id());
  r.set_attempts(original.attempts());
  r.set_failure(original.has_answer() ||
                        original.failure() == v1::FAILURE_CLASS_UNSPECIFIED
                    ? v1::FAILURE_CLASS_PERMANENT
                    : original.failure());
  r.set_error(RepairUtf8(reason.substr(0, kMaxReason)));
  return r;
}
}  // namespace

void Worker::Finish(Pending& pending, v1::TaskResult result) {
  const v1::LeasedTask& t = pending.task;
  result.set_job_id(t.job_id());
  result.set_prompt_seq(t.prompt_seq());
  result.set_sample(t.sample());
  result.set_request_key(t.request_key());
  result.set_lease_id(t.lease_id());
  result.set_attempts(pending.attempts);
  // The lease stays held (heartbeats renew it) until a report is
  // acknowledged: an expired lease would be paid for again elsewhere.
  const size_t bytes = RepeatedEntryBytes(result.ByteSizeLong());
  if (bytes > ReportBudget()) {
    spdlog::error("result of task {}/{} is {} bytes, too large for a report",
                  t.job_id(), t.prompt_seq(), bytes);
    result = FailureInsteadOf(
        result,
        absl::StrCat("the result is ", bytes,
                     " bytes and does not fit in one report (at most ",
                     ReportBudget(), " bytes; --max-message-mb)"));
  }
  TeacherState& state = teachers_[pending.teacher_index];
  --state.busy;
  if (result.failure() == v1::FAILURE_CLASS_TEACHER_DOWN) {
    state.down_leases.insert(t.lease_id());
  }
  if (results_.empty()) oldest_result_ = clock_.Now();
  results_.push_back(std::move(result));
}

bool Worker::ReportSome(bool force) {
  absl::MutexLock report_lock(&report_mu_);
  std::vector<v1::TaskResult> results;
  std::string worker_id;
  {
    absl::MutexLock lock(&mu_);
    if (results_.empty()) return true;
    const TimePoint now = clock_.Now();
    if (now < report_retry_at_) return false;
    const bool due = force || ReportDueLocked(now);
    if (!due) return true;
    results.swap(results_);
    results_reporting_ = static_cast<int>(results.size());
    worker_id = worker_id_;
  }
  // One report per run of results that fits in a message, and at most
  // report_batch results each: results that piled up while a report was
  // in progress go out as several commits of the usual size, not one whose
  // size grows with the coordinator's delay.
  const size_t budget = ReportBudget();
  const size_t most = static_cast<size_t>(std::max(1, options_.report_batch));
  std::vector<v1::TaskResult> unsent;
  bool reachable = true;
  for (size_t i = 0; i < results.size();) {
    std::vector<v1::TaskResult> batch;
    size_t bytes = 0;
    while (i < results.size()) {
      const size_t b = RepeatedEntryBytes(results[i].ByteSizeLong());
      if (!batch.empty() && (bytes + b > budget || batch.size() >= most)) {
        break;
      }
      bytes += b;
      batch.push_back(std::move(results[i++]));
    }
    if (reachable) {
      reachable = SendReport(worker_id, std::move(batch), &unsent);
    } else {
      for (v1::TaskResult& r : batch) unsent.push_back(std::move(r));
    }
  }
  absl::MutexLock lock(&mu_);
  results_reporting_ = 0;
  if (unsent.empty()) {
    report_backoff_ = Duration(0);
    return results_.empty();
  }
  // Keep every result (paid for!), ahead of newer ones, and try again after
  // a backoff.
  report_backoff_ = std::clamp<Duration>(2 * report_backoff_,
                                         options_.min_report_backoff,
                                         options_.max_report_backoff);
  report_retry_at_ = clock_.Now() + report_backoff_;
  oldest_result_ = clock_.Now();
  for (v1::TaskResult& r : results_) unsent.push_back(std::move(r));
  results_ = std::move(unsent);
  if (report_found_us_unknown_) {
    report_found_us_unknown_ = false;
    register_before_report_ = true;
  }
  return false;
}

void Worker::RegisterIfReportAsked() {
  {
    absl::MutexLock lock(&mu_);
    if (!register_before_report_) return;
    register_before_report_ = false;
    report_retry_at_ = clock_.Now();  // report as soon as we are known
  }
  RegisterUntilDone();
}

bool Worker::ReportDueLocked(TimePoint now) const {
  // With nothing held no more results are coming to share the report: the
  // last answers of a job are not kept waiting for report_delay.
  return stopping_ ||
         static_cast<int>(results_.size()) >= options_.report_batch ||
         now - oldest_result_ >= options_.report_delay || HoldsNothingLocked();
}

void Worker::HandOverReportIfDue() {
  absl::MutexLock lock(&mu_);
  if (report_in_progress_ || results_.empty()) return;
  const TimePoint now = clock_.Now();
  if (now < report_retry_at_) return;
  if (!ReportDueLocked(now)) return;
  report_in_progress_ = true;
  report_wanted_ = true;
}

void Worker::ReportLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto asked = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return report_wanted_ || reporter_stop_;
      };
      mu_.Await(absl::Condition(&asked));
      if (!report_wanted_) return;
      report_wanted_ = false;
    }
    ReportSome(/*force=*/false);
    absl::MutexLock lock(&mu_);
    report_in_progress_ = false;
    report_finished_ = true;
  }
}

bool Worker::SendReport(const std::string& worker_id,
                        std::vector<v1::TaskResult> batch,
                        std::vector<v1::TaskResult>* unsent) {
  v1::ReportRequest request;
  request.set_worker_id(worker_id);
  for (v1::TaskResult& r : batch) *request.add_results() = std::move(r);
  absl::StatusOr<v1::ReportResponse> response = coordinator_.Report(request);
  NoteCoordinatorCall(response.status(), /*knows_us=*/false);
  if (response.ok()) {
    Acknowledge(request);
    return true;
  }
  const absl::Status& status = response.status();
  auto keep_all = [&] {
    for (v1::TaskResult& r : *request.mutable_results()) {
      unsent->push_back(std::move(r));
    }
  };
  if (absl::IsFailedPrecondition(status)) {
    // The coordinator restarted and does not know us: register again
    // (announcing these results' tasks, once they are back in results_),
    // then report them.
    spdlog::warn("report of {} results refused: {}; registering again",
                 request.results_size(), std::string(status.message()));
    keep_all();
    report_found_us_unknown_ = true;
    return false;
  }
  if (IsTransientReportError(status)) {
    spdlog::warn("report of {} results failed: {}; will retry",
                 request.results_size(), std::string(status.message()));
    keep_all();
    return false;
  }
  // Refused for what it holds (a result the coordinator cannot take, or a
  // message over its limit): halves commit what is good in them.
  const int n = request.results_size();
  if (n > 1) {
    spdlog::warn("report of {} results refused ({}); splitting it", n,
                 std::string(status.message()));
    std::vector<v1::TaskResult> first, second;
    for (int i = 0; i < n; ++i) {
      (i < n / 2 ? first : second)
          .push_back(std::move(*request.mutable_results(i)));
    }
    if (!SendReport(worker_id, std::move(first), unsent)) {
      for (v1::TaskResult& r : second) unsent->push_back(std::move(r));
      return false;
    }
    return SendReport(worker_id, std::move(second), unsent);
  }
  v1::TaskResult& original = *request.mutable_results(0);
  spdlog::error("the coordinator refused the result of task {}/{}: {}; "
                "reporting it as failed",
                original.job_id(), original.prompt_seq(),
                std::string(status.message()));
  v1::ReportRequest repaired;
  repaired.set_worker_id(worker_id);
  *repaired.add_results() = FailureInsteadOf(
      original, absl::StrCat("the coordinator refused the result: ",
                             status.ToString()));
  absl::StatusOr<v1::ReportResponse> again = coordinator_.Report(repaired);
  NoteCoordinatorCall(again.status(), /*knows_us=*/false);
  if (again.ok()) {
    Acknowledge(repaired);
    return true;
  }
  // Even a bare failure is refused: the fault is the coordinator's (a full
  // disk), not this result's. Keep the original for later.
  spdlog::warn("the coordinator refused a failure report too ({}); will "
               "retry",
               std::string(again.status().message()));
  unsent->push_back(std::move(original));
  return false;
}

void Worker::Acknowledge(const v1::ReportRequest& request) {
  absl::MutexLock lock(&mu_);
  for (const v1::TaskResult& r : request.results()) {
    held_leases_.erase(r.lease_id());
    if (r.failure() != v1::FAILURE_CLASS_TEACHER_DOWN) continue;
    for (TeacherState& t : teachers_) {
      if (t.down_leases.erase(r.lease_id()) > 0 && t.down_leases.empty()) {
        // Heartbeats already begun may carry shares from before the commit.
        t.pause_held_through = heartbeats_begun_;
      }
    }
  }
  results_reported_ += request.results_size();
}

}  // namespace distillery
