// Worker: the lease loop. It registers with the coordinator, leases tasks
// while it has room for a teacher, sends each to the teacher when its share
// of the teacher's cluster-wide budget allows (TeacherLimiter), retries
// retryable failures with backoff and retry-after, reports results in
// batches, and heartbeats to keep its leases, report what it learned of the
// teacher's limits and renew its budget shares. It holds no state worth
// keeping: kill it and its leases come back to the pool.
//
// Reports: a lease stays held (renewed by heartbeats) until the coordinator
// acknowledges its result. Every text from a teacher is repaired to valid
// UTF-8 before it enters a proto, reports are cut to fit one gRPC message,
// and a report the coordinator refuses is split in halves until the good
// results commit; a result refused on its own is sent as a failure with the
// reason instead of being resent forever. Reports go out on a thread of
// their own, one at a time and at most report_batch results each, while
// the loop goes on leasing and sending; it stops leasing while twice
// report_batch results await acknowledgement (the coordinator is then the
// slower side).
//
// Leases end three ways besides a report. A heartbeat answer revokes the
// leases that are no longer ours (job cancelled, lease lapsed): their tasks
// are dropped unsent. A coordinator that forgot us (it restarted) is told
// what we hold when we register again, and revokes what it will not give
// back. On Stop, tasks not sent are given back at once; requests still in
// flight when the drain ends are given back too (ABANDONED), and the last
// report is retried for up to final_report_timeout before the worker exits.
//
// Teacher calls complete on the HTTP client's event-loop thread; the lease
// loop runs on the thread that calls Run(). Nothing blocks per request. The
// loop waits on its clock (Clock::AwaitWithDeadline), so on a FakeClock a
// test moves time and the worker follows.
//
// Batch steps (create, poll, cancel a provider batch: batch_runner.h) run on
// a second thread when a teacher has a batch API; their leases ride on the
// same heartbeats.
//
// One class, three files along its paths: worker.cc (the loop, Stop and the
// drain), worker_lease.cc (register, heartbeat, lease, dispatch, teacher
// answers and retries), worker_report.cc (reports and acknowledgements).
#ifndef DISTILLERY_SERVICES_WORKER_WORKER_H_
#define DISTILLERY_SERVICES_WORKER_WORKER_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/base/clock.h"
#include "common/config/teachers.h"
#include "common/rpc/message_limits.h"
#include "common/teacher/batch_api.h"
#include "common/teacher/teacher.h"
#include "distillery/v1/worker_service.pb.h"
#include "services/worker/batch_runner.h"
#include "services/worker/coordinator_client.h"
#include "services/worker/teacher_limiter.h"

namespace distillery {

// use_n: the most choices asked for in one request.
inline constexpr size_t kMaxChoices = 16;

struct WorkerTeacher {
  TeacherProfile profile;
  Teacher* teacher;  // not owned
  // Its batch API, when it has one and this worker does batch steps; not
  // owned.
  BatchApi* batch = nullptr;
};

struct WorkerOptions {
  std::string name = "worker";
  // How long to wait before asking again when a lease came back empty.
  Duration idle_poll = std::chrono::milliseconds(100);
  // A worker holding nothing asks with a long poll instead: its lease waits
  // at the coordinator up to this long (LeaseRequest.wait_ms) and returns
  // the moment work appears, so a job submitted to an idle cluster starts
  // at once. 0 turns it off (idle_poll alone). Stop waits for it to end.
  Duration lease_wait = std::chrono::milliseconds(250);
  // Results are reported when this many are ready, or after report_delay;
  // also the most results one report message carries.
  int report_batch = 256;
  Duration report_delay = std::chrono::milliseconds(50);
  // On Stop(), how long in-flight requests may take to finish.
  Duration drain_timeout = std::chrono::seconds(30);
  // After the drain, how long the last report may keep failing (coordinator
  // unreachable) before the worker gives up on it and exits.
  Duration final_report_timeout = std::chrono::seconds(10);
  // Longest retry-after honoured; a longer one is capped.
  Duration max_retry_after = std::chrono::seconds(120);
  // Requests in flight to one teacher from this worker, at most.
  int max_in_flight = 256;
  // The coordinator's gRPC message limit (--max-message-mb): reports are
  // cut to fit it, and a result too large for any report is sent as a
  // failure saying so. A coordinator with a smaller limit refuses the larger
  // reports; they are then split until they fit.
  int max_message_bytes = kDefaultMaxMessageBytes;
  // After a report fails, the next waits this long, doubling up to
  // max_report_backoff, so an unreachable coordinator is not called in a
  // tight loop.
  Duration min_report_backoff = std::chrono::milliseconds(50);
  Duration max_report_backoff = std::chrono::seconds(1);
};

// Thread-safe: Stop() may be called from any thread while Run() runs.
class Worker {
 public:
  // `random` returns a uniform value in [0, 1) for backoff jitter.
  Worker(CoordinatorClient& coordinator, std::vector<WorkerTeacher> teachers,
         Clock& clock, WorkerOptions options,
         std::function<double()> random = nullptr);

  // Runs until Stop() and the drain that follows. Returns non-OK only when
  // the worker cannot start (e.g. no teachers).
  absl::Status Run() ABSL_LOCKS_EXCLUDED(mu_);
  // Stops leasing; requests in flight finish (up to drain_timeout), tasks
  // waiting for a retry are given back, everything is reported.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // Counters for tests and logs.
  int64_t requests_sent() const ABSL_LOCKS_EXCLUDED(mu_);
  int64_t results_reported() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Pending {
    v1::LeasedTask task;
    int teacher_index = 0;
    int attempts = 0;
    TimePoint started;
    TeacherRequest request;
    double reserved_tokens = 0;
    // use_n: the prompt's other samples riding on this request as choices
    // 1, 2, ... (request.choices counts them all). Riders never sit in a
    // queue or a retry: a failed request disbands, each task on its own.
    std::vector<Pending> riders;
  };
  struct TeacherState {
    WorkerTeacher config;
    std::unique_ptr<TeacherLimiter> limiter;
    std::deque<Pending> queue;  // leased, waiting for budget
    int in_flight = 0;
    int busy = 0;  // queued, in flight or waiting for a retry
    // The coordinator had work for this teacher at the last lease: the
    // share asked for is what the worker could use (--max-in-flight), not
    // only what it holds, so that shares are fair from the first heartbeat.
    bool more_work = false;
    // The demand the last heartbeat reported.
    int64_t reported_demand = 0;
    // use_n was refused (HTTP 400 for n > 1, or fewer choices than asked):
    // one request per sample from then on.
    bool n_refused = false;
    // A teacher-down answer pauses the teacher here at once. A share lifts
    // that pause only once the coordinator has it: not while such a result
    // awaits acknowledgement (down_leases), nor from a heartbeat begun
    // before the last was acknowledged (numbered up to pause_held_through).
    std::set<int64_t> down_leases;
    int64_t pause_held_through = 0;
  };

  // Registers (again), announcing the tasks held, and drops those whose
  // leases the coordinator revokes.
  void RegisterUntilDone() ABSL_LOCKS_EXCLUDED(mu_);
  // Every task this worker holds, by lease id: queued, in flight, waiting
  // for a retry, or with a result not yet reported.
  std::vector<v1::HeldTask> HeldTasksLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gives back (unattempted, ABANDONED with `why`) the tasks queued for `t`.
  void GiveBackQueuedLocked(TeacherState& t, const char* why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the unsent tasks of leases that are no longer ours; requests in
  // flight for them are not retried.
  void DropRevokedLocked(const google::protobuf::RepeatedField<int64_t>& ids)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // At the end of the drain: gives back the requests still in flight.
  void GiveBackInFlightLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Notes whether a coordinator call reached it; `knows_us` when its answer
  // shows the coordinator knows this worker and its leases.
  void NoteCoordinatorCall(const absl::Status& status, bool knows_us)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Sends what the budget allows from the teachers' queues; returns how long
  // until more may be sent.
  Duration DispatchReady() ABSL_LOCKS_EXCLUDED(mu_);
  void Dispatch(std::vector<Pending> batch) ABSL_LOCKS_EXCLUDED(mu_);
  // Tasks worth holding for a teacher: enough to keep its budget busy.
  int HoldCapLocked(TeacherState& t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // No task held (queued, in flight or waiting for a retry).
  bool HoldsNothingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Nothing held and no result waiting or being reported: when a long poll
  // of the coordinator may wait.
  bool IdleLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A report should go now: report_batch results, the oldest report_delay
  // old, nothing held (no more are coming soon), or stopping.
  bool ReportDueLocked(TimePoint now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The share of the teacher's limits this worker asks for: what it could
  // use while the coordinator has more work, else what it holds.
  int64_t DemandLocked(const TeacherState& t) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The coordinator granted no concurrency although this worker asked for
  // some (others hold all of it until they renew): the worker holds no
  // tasks it cannot send, and asks again soon.
  bool StarvedLocked(const TeacherState& t) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnTeacherResult(Pending pending, TeacherResult result)
      ABSL_LOCKS_EXCLUDED(mu_);
  // One task's share of a teacher's result: an answer (choice
  // `choice_index` of its request) for the report, a retry, or a failure.
  void SettleLocked(Pending& pending, TeacherResult result, int choice_index)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // use_n: whether `p` may ride on `head`'s request; how many of the
  // queue's tasks may ride on its front's.
  static bool CanRide(const Pending& head, const Pending& p);
  int CountRidersLocked(const TeacherState& t)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // use_n: takes the queued samples of `front`'s prompt (up to
  // kMaxChoices in all) that can ride on its request.
  void TakeRidersLocked(TeacherState& t, Pending* front)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A rider (or the head) of a request that refused n, sent again alone:
  // back to the head of its queue, unattempted.
  void SendAloneLocked(Pending p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Notes `p` as in flight (a stub without its messages, by lease id).
  void NoteInFlightLocked(const Pending& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Duration Backoff(int attempts, const TeacherResult& result);
  void Finish(Pending& pending, v1::TaskResult result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LeaseMore() ABSL_LOCKS_EXCLUDED(mu_);
  // Reports the results due (all of them when `force`), unless a failed
  // report's backoff is still running. Returns false when results are left
  // to report later.
  bool ReportSome(bool force) ABSL_LOCKS_EXCLUDED(mu_, report_mu_);
  // The reporter thread: reports run there, one at a time, so that the
  // loop leases and sends while the coordinator commits a report. The loop
  // hands a report over (HandOverReportIfDue) when one is due and none is
  // in progress; the thread runs ReportSome and wakes the loop.
  void ReportLoop() ABSL_LOCKS_EXCLUDED(mu_);
  void HandOverReportIfDue() ABSL_LOCKS_EXCLUDED(mu_);
  // A report found the coordinator did not know us: register again (on the
  // loop's thread, the one that registers), and report as soon as known.
  void RegisterIfReportAsked() ABSL_LOCKS_EXCLUDED(mu_);
  // Sends `batch` in one report; on a refusal, splits it (or repairs a lone
  // result). Results not acknowledged go to `*unsent`. Returns false when
  // the coordinator could not take reports now (unreachable, or it refuses
  // even a repaired result): the caller stops sending and keeps the rest.
  bool SendReport(const std::string& worker_id,
                  std::vector<v1::TaskResult> batch,
                  std::vector<v1::TaskResult>* unsent)
      ABSL_LOCKS_EXCLUDED(mu_) ABSL_EXCLUSIVE_LOCKS_REQUIRED(report_mu_);
  // Ends the leases of acknowledged results.
  void Acknowledge(const v1::ReportRequest& request)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The bytes one report's results may take.
  size_t ReportBudget() const {
    return BatchBudgetBytes(options_.max_message_bytes);
  }
  void HeartbeatIfDue() ABSL_LOCKS_EXCLUDED(mu_);

  // The batch thread (batch_runner.h), for teachers with a batch API.
  void RunBatchSteps() ABSL_LOCKS_EXCLUDED(mu_);
  BatchRunnerHost BatchHost();

  CoordinatorClient& coordinator_;
  Clock& clock_;
  const WorkerOptions options_;
  std::function<double()> random_;

  // One lock for the worker's state; the loop waits on it through clock_
  // (Clock::AwaitWithDeadline), so any change a condition reads wakes it.
  mutable absl::Mutex mu_;
  std::vector<TeacherState> teachers_ ABSL_GUARDED_BY(mu_);
  std::string worker_id_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool slot_freed_ ABSL_GUARDED_BY(mu_) = false;  // wakes the loop to send
  int64_t heartbeats_begun_ ABSL_GUARDED_BY(mu_) = 0;
  // The last lease was a long poll that came back empty at its end: lease
  // again without sleeping.
  bool lease_waited_ ABSL_GUARDED_BY(mu_) = false;
  // The reporter thread (ReportLoop): a report asked for, one running, one
  // just ended (wakes the loop), and the thread asked to end.
  bool report_wanted_ ABSL_GUARDED_BY(mu_) = false;
  bool report_in_progress_ ABSL_GUARDED_BY(mu_) = false;
  bool report_finished_ ABSL_GUARDED_BY(mu_) = false;
  bool reporter_stop_ ABSL_GUARDED_BY(mu_) = false;
  // Results taken out of results_ by the report in progress.
  int results_reporting_ ABSL_GUARDED_BY(mu_) = 0;
  // One ReportSome at a time (the reporter thread's, or the final ones).
  absl::Mutex report_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  // False after a call to the coordinator failed as unreachable: queued
  // tasks are not sent then, since a restarted coordinator re-leases them.
  bool coordinator_reachable_ ABSL_GUARDED_BY(mu_) = true;
  // Leases of tasks leased and not yet acknowledged by a successful report.
  std::set<int64_t> held_leases_ ABSL_GUARDED_BY(mu_);
  // Batch steps being done by the batch thread: renewed like leases.
  std::set<int64_t> held_steps_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<BatchRunner> batch_runner_;  // set in Run, when needed
  // Requests being answered, by lease id (the task without its messages).
  std::map<int64_t, Pending> in_flight_ ABSL_GUARDED_BY(mu_);
  // In flight, but the lease is not ours any more: never retried.
  std::set<int64_t> revoked_in_flight_ ABSL_GUARDED_BY(mu_);
  // In flight when the drain ended and given back: their answers are not
  // reported (the task may already be someone else's).
  std::set<int64_t> given_back_ ABSL_GUARDED_BY(mu_);
  std::multimap<TimePoint, Pending> retries_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::TaskResult> results_ ABSL_GUARDED_BY(mu_);
  TimePoint oldest_result_ ABSL_GUARDED_BY(mu_);
  // Set when a report found the coordinator does not know us (it
  // restarted), once its results are back in results_ (so that the
  // registration announces their tasks): the loop registers again before
  // the next report (RegisterIfReportAsked).
  bool register_before_report_ ABSL_GUARDED_BY(mu_) = false;
  // The same, seen by the report in progress (SendReport), passed on when
  // ReportSome puts the results back.
  bool report_found_us_unknown_ ABSL_GUARDED_BY(report_mu_) = false;
  // Backoff after a failed report: none before report_retry_at_.
  TimePoint report_retry_at_ ABSL_GUARDED_BY(mu_);
  Duration report_backoff_ ABSL_GUARDED_BY(mu_) = Duration(0);
  TimePoint next_heartbeat_ ABSL_GUARDED_BY(mu_);
  TimePoint last_heartbeat_ ABSL_GUARDED_BY(mu_);
  Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = std::chrono::seconds(5);
  int64_t requests_sent_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t results_reported_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_WORKER_WORKER_H_
