// Coordinator: the one owner of Distillery's state, with no gRPC in it (the
// services in grpc_services.h are thin wrappers over it). It is a facade
// over parts that each own one concern; docs/DESIGN-NOTES.md ("Coordinator
// map") follows a prompt through them:
//   Submission (submission.h)       prompt lines -> stored prompts and tasks
//   job transitions (job_transitions.h)  every change of a job's state
//   Scheduler (scheduler.h)         queues, leases, keys in flight, holders
//   SpendGuard (spend_guard.h)      a job's spend within its budget
//   Budget (budget.h)               each teacher's cluster-wide rate budget
//   AnswerIndex (answer_index.h)    exact and near-duplicate answers
//   ExportJobs (exporter.h)         records out, without the lock
//   BatchBook (batch_book.h)        open batches, their steps, per teacher
//                                   what the provider's queue allows
// Where things happen: a lease starts in Lease (coordinator_leasing.cc) and
// expires in ExpireLeasesLocked there; a result commits in Report
// (coordinator_commit.cc); a job changes state only through
// job_transitions.h.
//
// Scheduling: tasks are stored in submission order; each running job's
// TaskQueue keeps a cursor into its tasks and the tasks to hand out again.
// Memory holds only leases, cursors and small queues, never a whole job.
// Before a task is leased, its request key is checked against stored
// answers (pay once); a key already in flight makes the task wait for that
// answer instead of being sent twice.
//
// The batch path (coordinator_batch.cc): a job in --mode batch or auto has
// its tasks gathered into batch records (stored before the provider is
// asked); a batch's tasks are leased to the batch itself (a pseudo-holder,
// never expiring), so nothing else sends them; workers do its steps
// (create, poll and collect, cancel) as leases of their own; results commit
// through the same CommitResultLocked as online answers.
//
// Verification and adaptive sampling (coordinator_verify.cc): a job with
// --verify has each answer checked as it commits, in the commit's batch;
// with --until-correct a wrong answer creates the prompt's next sample
// there too, so the next sample exists exactly when the wrong one is
// stored, and a restart finds it like any pending task.
//
// Restarts: a graceful stop (SaveLeases) leaves the lease table in the
// store and the next start restores it; after any restart workers announce
// the tasks they hold when they register again, and the coordinator takes
// those leases back instead of leasing the tasks to someone else. After an
// unclean stop (no saved table) leasing waits `restart_grace` for them.
#ifndef DISTILLERY_SERVICES_COORDINATOR_COORDINATOR_H_
#define DISTILLERY_SERVICES_COORDINATOR_COORDINATOR_H_

#include <cstdint>
#include <functional>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <random>
#include <string>
#include <string_view>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/status/statusor.h"
#include "common/base/clock.h"
#include "common/config/teachers.h"
#include "common/dataset/prompt_parser.h"
#include "common/rpc/message_limits.h"
#include "common/store/store.h"
#include "common/http/http_client.h"
#include "common/teacher/batch_api.h"
#include "common/verify/answer_check.h"
#include "common/verify/json_schema.h"
#include "services/coordinator/answer_index.h"
#include "services/coordinator/batch_book.h"
#include "services/coordinator/budget.h"
#include "services/coordinator/exporter.h"
#include "services/coordinator/scheduler.h"
#include "services/coordinator/spend_guard.h"
#include "services/coordinator/submission.h"
#include "distillery/v1/client_service.pb.h"
#include "distillery/v1/worker_service.pb.h"

namespace distillery {

// What the metrics collector reads on each scrape (see coordinator_metrics.h).
struct CoordinatorSnapshot {
  struct JobView {
    v1::Job job;
    int64_t last_progress_ms = 0;  // wall time of the last settled task
  };
  struct WorkerView {
    std::string id;
    double last_seen_age_seconds = 0;
  };
  std::vector<JobView> jobs;
  std::vector<WorkerView> workers;
  std::map<std::string, int64_t> leases_by_teacher;
  // Each teacher profile's budget: effective limits, learning, pause.
  std::vector<v1::TeacherStatus> teachers;
  // The batch path, per teacher with a batch API.
  struct TeacherBatchView {
    std::string teacher;
    std::map<std::string, int64_t> batches_by_state;  // "open", "ended", ...
    int64_t tasks_in_batches = 0;       // in batches not yet ended
    double oldest_open_age_seconds = 0;  // 0: none open
    std::map<std::string, int64_t> requests_by_outcome;  // since the start
  };
  std::vector<TeacherBatchView> batches;
};

// The longest a Lease waits for work (LeaseRequest.wait_ms is capped).
inline constexpr Duration kMaxLeaseWait = std::chrono::seconds(1);

struct CoordinatorOptions {
  // A lease not renewed by a heartbeat within this time returns its task.
  Duration lease_duration = std::chrono::seconds(60);
  Duration heartbeat_interval = std::chrono::seconds(5);
  // After a start that found running jobs but no lease table saved by a
  // graceful stop (a crash, kill -9), how long leasing waits so that live
  // workers can announce the tasks they still hold. 0: no wait.
  Duration restart_grace = Duration(0);
  // A lease restored from a graceful stop's table lasts this much longer
  // than a fresh one: its worker must first reconnect and register again
  // before it can renew it (gRPC's reconnect backoff, up to 2 s, plus
  // connection set-up; 5 s seen on a loaded machine). Expiring it sooner
  // leases the task again while the worker still sends it: paid twice.
  Duration restored_lease_allowance = std::chrono::seconds(10);
  // Tasks read from the store per refill of a job's ready queue.
  int scan_batch = 1024;
  // Prompts buffered before a submission writes them out.
  int submit_flush_prompts = 2048;
  int max_samples = 1000;
  BudgetOptions budget;
  // The longest prompt-file line a submission takes, in bytes.
  size_t max_prompt_bytes = kDefaultMaxPromptBytes;
  // A lease response is one gRPC message: its tasks add up to at most this
  // many bytes (always at least one task). The server sets it from
  // --max-message-mb.
  size_t max_lease_bytes = BatchBudgetBytes(kDefaultMaxMessageBytes);
  // Compare each new answer with earlier ones as it is committed (LSH
  // buckets in the store): answers get near_duplicate_of and jobs count
  // near_duplicate_answers live. It is the largest cost of a commit (16
  // bucket lookups and up to 16 index writes per answer, and its MinHash
  // signature; bench/results.md). Off, `export --near-dup-threshold` finds
  // the same near-duplicates, signing answers as it reads them.
  bool near_duplicates_at_commit = true;
  // Tasks whose recent lease holders are remembered after their lease ends
  // (expired, re-leased), so a late result is taken from those workers
  // only. The oldest are forgotten first; about 100 bytes each.
  size_t remembered_lease_holders = 1 << 17;
  // When set, jobs that Recover finds in the store are never leased (they
  // keep their state and tasks as they are), except those named in
  // `resume_recovered_jobs`. `distillery run` sets it: it harvests only the
  // job it submits or was asked to resume, never one an earlier, interrupted
  // run left behind.
  bool hold_recovered_jobs = false;
  std::set<std::string> resume_recovered_jobs;
};

// Thread-safe: one lock (mu_) over the parts, which are not thread-safe
// themselves; exports read the store outside it. A report's store write
// runs outside mu_ too, so that leasing goes on while it is written: reports
// (and everything else that changes a job a report could be changing)
// commit one at a time under commit_mu_, and until a report's write ends its
// request keys stay in flight and its jobs' cache hits wait (see Report).
class Coordinator {
 public:
  Coordinator(Store& store, std::vector<TeacherProfile> teachers,
              Clock& clock, CoordinatorOptions options = {});

  // Loads jobs from the store; removes submissions cut short by a crash.
  absl::Status Recover();

  // --- Client API ---
  absl::StatusOr<std::unique_ptr<Submission>> BeginSubmission(
      const v1::JobSpec& spec);
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id);
  std::vector<v1::Job> ListJobs();
  absl::StatusOr<v1::Job> CancelJob(const std::string& job_id);
  // Moves the job's FAILED (dead-lettered) tasks back to PENDING, attempts
  // and last error cleared, and a COMPLETED or FAILED job back to RUNNING.
  // Each chunk of tasks is written in one batch with the job's adjusted
  // counters, so a crash midway leaves counters that match the tasks. NOT_FOUND
  // for an unknown job, FAILED_PRECONDITION for a cancelled one. A job
  // without dead letters is returned as it is, nothing written.
  absl::StatusOr<v1::Job> RetryJob(const std::string& job_id);
  // Waits until the job differs from `last_seen` or `max_wait` passes, then
  // returns the job as it is.
  absl::StatusOr<v1::Job> WaitForJobChange(const std::string& job_id,
                                           const v1::Job& last_seen,
                                           Duration max_wait);
  // Waits until the job is settled for now (IsSettledForNow: ended, or
  // paused for a human) or `max_wait` passes, then returns the job as it
  // is. A watch paces its updates with it: the one that settles the job is
  // not held back.
  absl::StatusOr<v1::Job> WaitForJobToSettle(const std::string& job_id,
                                             Duration max_wait);
  // Streams the records of the requested jobs, job by job in the order
  // given, each in submission order (prompt, then sample), keeping those that
  // pass the request's filters. Unless include_duplicates, a stored answer
  // is emitted once per export: identical answers (duplicate_of) and cache
  // hits of an answer already emitted (a repeated prompt) are left out.
  // Memory does not grow with the number of records: near-duplicate removal
  // and the repeat check keep their keys in the store's scratch space. Stops
  // early, OK, when `emit` returns false. `counts` (when given) says what
  // the checks left out. The records go out as the store's bytes: the
  // gRPC stream sends them as they are.
  absl::Status ExportBytes(const v1::ExportRequest& request,
                           const ExportEmit& emit,
                           ExportCounts* counts = nullptr);
  // The same, each record parsed: for callers that read the fields.
  absl::Status Export(const v1::ExportRequest& request,
                      const std::function<bool(v1::ExportRecord&&)>& emit,
                      ExportCounts* counts = nullptr);

  // --- Worker API ---
  // A new worker id, "NAME-" and 16 random hex digits: unique among this
  // coordinator's workers and, with odds of 2^-64, across its restarts, so
  // a worker still using an id from before a restart is never taken for
  // one registered since.
  v1::RegisterResponse Register(const v1::RegisterRequest& request);
  // Up to max_tasks tasks of the request's teachers. With wait_ms, an
  // answer with none waits (up to kMaxLeaseWait) for a change to the jobs
  // (a submit, a resume, a commit) and looks again: an idle worker starts
  // on a new job at once instead of at its next poll.
  absl::StatusOr<v1::LeaseResponse> Lease(const v1::LeaseRequest& request);
  // Ends every Lease wait in progress (each answers what it has: nothing),
  // for an in-process worker that stops.
  void EndLeaseWaits();
  absl::StatusOr<v1::ReportResponse> Report(const v1::ReportRequest& request);
  v1::HeartbeatResponse Heartbeat(const v1::HeartbeatRequest& request);
  // The batch path: steps due (creates, polls, cancels) for the worker's
  // teachers, forming new batches from batch jobs' tasks as needed.
  absl::StatusOr<v1::LeaseBatchStepResponse> LeaseBatchStep(
      const v1::LeaseBatchStepRequest& request);
  // What a worker did for a batch: its provider ids, its state, its results
  // (committed like online answers). Results are used even from a step that
  // is no longer the worker's: they are paid for.
  absl::StatusOr<v1::BatchStepReportResponse> ReportBatchStep(
      const v1::BatchStepReport& report);
  // Lifts a teacher's cluster-wide pause (its key or quota was fixed).
  absl::StatusOr<v1::TeacherStatus> ResumeTeacher(const std::string& teacher);
  // Resumes a job paused at its budget; `budget_usd` > 0 replaces the
  // budget, and must leave room for more spend.
  absl::StatusOr<v1::Job> ResumeJob(const std::string& job_id,
                                    double budget_usd);

  // Returns the tasks of leases past their deadline to their jobs. Called on
  // every Lease and by the server's housekeeping timer.
  void ExpireLeases();

  // For a graceful stop: writes the lease table to the store, for the next
  // Recover to restore, and leases nothing more. Returns the leases saved.
  absl::StatusOr<int> SaveLeases();

  const CoordinatorOptions& options() const { return options_; }
  // A copy of the state metrics report. Cost: one copy of each job record.
  CoordinatorSnapshot Snapshot();

 private:
  friend class Submission;
  struct JobRuntime {
    v1::Job job;                   // as last committed
    int64_t last_progress_ms = 0;  // wall time; not persisted
    // A batch or auto job's tasks routed to online calls (retries in auto,
    // requests a batch line cannot carry); leased before its queue.
    std::deque<v1::Task> online_tasks;
    // The job's --verify check, made when first needed (a regex compiles
    // once per job, not per answer).
    std::shared_ptr<const AnswerChecker> checker;
    // The job's --json-schema, compiled when first needed.
    std::shared_ptr<const JsonSchemaValidator> schema;
    // Reports of this job being written outside mu_ (Report): while any is,
    // nothing else writes the job's record, which the report's write
    // carries; answers from the cache wait in after_commit until it ends.
    int committing = 0;
    std::vector<v1::Task> after_commit;
  };
  struct WorkerInfo {
    std::string name;
    TimePoint last_seen;
    std::vector<std::string> teachers;  // the profiles it can call
  };

  absl::Status CommitSubmission(Submission* submission)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Takes the next task to hand out from `rt`, or nullopt when none is left.
  // A store error is returned (logged, counted) with the candidate back at
  // the head of its queue: the task is neither lost nor reported as absent.
  absl::StatusOr<std::optional<v1::Task>> NextTaskLocked(JobRuntime& rt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CompleteFromCacheLocked(JobRuntime& rt, v1::Task task)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One look for tasks: Lease without the wait.
  absl::StatusOr<v1::LeaseResponse> LeaseReadyLocked(
      const v1::LeaseRequest& request) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A read for `task` failed while leasing it: logged, counted, and the
  // task put back at the head of its queue. Returns `status`.
  absl::Status LeaseReadFailed(JobRuntime& rt, v1::Task task,
                               absl::Status status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Hands the tasks waiting on `request_key` on: answered from the cache if
  // an answer now exists, else back to their queues.
  void ReleaseWaitersLocked(const std::string& request_key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The writes of one Report, applied as one batch (one WAL write, each job
  // record written once), and an overlay of what they add, so that a later
  // result of the same report sees an earlier one's task, answer, content
  // hash and LSH buckets as if they were stored. Effects that must follow
  // the write (in-memory job state, metrics, waiters) are collected here and
  // run by FinishReportLocked once it succeeded.
  struct ReportCommit {
    ReportCommit() : answers(&batch) {}
    ReportCommit(const ReportCommit&) = delete;
    ReportCommit& operator=(const ReportCommit&) = delete;
    StoreBatch batch;
    PendingAnswers answers;  // over batch
    std::map<std::string, v1::Job> jobs;  // by id: the job after this report
    std::map<TaskId, size_t> tasks;  // index in batch.tasks
    std::vector<std::pair<std::string, const char*>> settled;  // job, outcome
    std::vector<std::string> release_keys;  // keys whose waiters to release
    int refused = 0;  // results from a worker that never held the task
    // Indexes in batch.tasks of tasks this commit creates (adaptive
    // sampling's next samples): queued once the batch is stored.
    std::vector<size_t> spawned;
    // (job id, result) of each answer checked: metrics, once stored.
    std::vector<std::pair<std::string, const char*>> checked;
    // While the batch is written outside mu_: the spend it adds, by job,
    // reserved so that leasing meanwhile sees it (nano-USD).
    std::map<std::string, int64_t> spend_in_write;
  };
  // Report's first step, under mu_: its results added to `commit`.
  absl::Status BuildReportLocked(const v1::ReportRequest& request,
                                 const std::string& worker_name,
                                 ReportCommit* commit,
                                 v1::ReportResponse* response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Before `commit` is written outside mu_: its keys stay in flight, its
  // jobs' records are its own and its spend is reserved until
  // EndWriteLocked.
  void BeginWriteLocked(ReportCommit& commit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndWriteLocked(ReportCommit& commit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Answers from the cache that waited for `commit`'s jobs, given now.
  void CompleteDeferredLocked(const ReportCommit& commit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The job records `commit` leaves, added to its batch (once, before the
  // write).
  void SealCommitLocked(ReportCommit& commit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What follows a stored commit in memory: settled tasks forgotten, job
  // records taken, spawned tasks queued, metrics, waiters released.
  void CommitEffectsLocked(ReportCommit& commit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds one result to `commit`. Leases end and abandoned tasks return to
  // their queues at once; everything stored waits for the batch.
  // A result is used only from a worker that holds or recently held the
  // task's lease; others are ignored and counted.
  absl::Status CommitResultLocked(const v1::TaskResult& result,
                                  const std::string& worker_id,
                                  const std::string& worker_name,
                                  ReportCommit* commit, bool* ignored)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Verification and adaptive sampling (coordinator_verify.cc). For a job
  // with JobSpec.verify, checks `content`, the answer of the task at
  // `index` in commit->batch.tasks (settled DONE there), against its
  // reference: sets its verify_state and extracted_answer, counts the result
  // in `job`, and counts the prompt as passed when this answer is its
  // PassingAnswers-th verified one. With until_correct, a wrong answer adds
  // the prompt's next samples to the commit (tasks_total grows), as many as
  // it still needs with the ones pending, up to max_samples. No-op
  // without verify.
  // A --json-schema job's answer in `*result` (a success), made its JSON
  // (StructuredContent) and validated. True: keep committing `*result`
  // (valid, or at max_attempts turned into a failure with the validation
  // error). False: the task is asked again, in `commit`, and nothing more
  // is to be done. The answer's spend is counted either way.
  absl::StatusOr<bool> CheckSchemaLocked(JobRuntime& rt, v1::Job& job,
                                         v1::Task& task, bool lease_current,
                                         v1::TaskResult* result,
                                         ReportCommit* commit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds an answer's requests, tokens and cost to `job`'s counters;
  // returns its cost.
  double CountSpendLocked(const v1::Answer& answer, v1::Job* job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckAnswerLocked(JobRuntime& rt, v1::Job& job, size_t index,
                                 std::string_view content,
                                 ReportCommit* commit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The tasks of prompt `seq` of `job_id` as the store holds them with
  // `commit` over them, by sample.
  absl::StatusOr<std::vector<v1::Task>> PromptTasksLocked(
      const std::string& job_id, int64_t seq, const ReportCommit& commit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The text of the answer stored (or pending in `pending`) under
  // `request_key`, following duplicate_of to the text's first answer.
  absl::StatusOr<std::string> AnswerTextLocked(const std::string& request_key,
                                               const PendingAnswers& pending)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies `commit` (under mu_) and then its in-memory effects.
  absl::Status FinishReportLocked(ReportCommit& commit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // When all tasks are settled, ends the job: COMPLETED when any was
  // answered, else FAILED with DeadLetterReasonLocked as its error. Mutates
  // `job` only; `pending` holds the tasks about to be written with it.
  void MaybeFinishLocked(v1::Job& job, const StoreBatch& pending)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // "all N tasks failed; most common error (K of N): ..." from the job's
  // dead letters in the store and in `pending`.
  std::string DeadLetterReasonLocked(const v1::Job& job,
                                     const StoreBatch& pending)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The teacher's budget status plus its live workers: registered workers
  // serving it, heard from within three heartbeat intervals.
  v1::TeacherStatus TeacherStatusLocked(const std::string& teacher)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes job number `n` (of an aborted submission) the next one handed out.
  void ReleaseJobNumber(int64_t n) ABSL_LOCKS_EXCLUDED(mu_);
  void ExpireLeasesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReturnLeaseLocked(int64_t lease_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ChangedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stores `job` (the record after a change of state), logs the change and
  // makes it `rt`'s; watchers wake.
  absl::Status StoreJobLocked(JobRuntime& rt, v1::Job job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The job as clients see it: the stored record plus its teacher's budget.
  v1::Job JobViewLocked(const JobRuntime& rt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The profile of `teacher`, or null when the teachers file lost it.
  const TeacherProfile* ProfileFor(const std::string& teacher) const;
  // The most a task of `rt`'s job can cost (MaxRequestCostUsd).
  double MaxTaskCostLocked(const JobRuntime& rt, const v1::Prompt& prompt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True when `worker_id` holds the result's task now (by its lease id or
  // by the task's request key) or held it recently.
  bool HeldByLocked(const v1::TaskResult& result, const std::string& worker_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends lease `lease_id`, if it exists, and its cost reservation.
  std::optional<Scheduler::Lease> EndLeaseLocked(int64_t lease_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records lease `lease_id` of `task` to `worker_id`: its request key in
  // flight and, when the job has a budget, its reservation.
  void AddLeaseLocked(JobRuntime& rt, int64_t lease_id,
                      const std::string& worker_id, v1::Task task,
                      int64_t reserved_nano_usd)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes back a lease that `worker_id` says it holds (announced on
  // registering, or saved by a graceful stop): true when the lease now is
  // the worker's, false when the task must not be worked on (done, job not
  // running, or its key leased to another).
  absl::StatusOr<bool> AdoptLeaseLocked(const std::string& worker_id,
                                        const v1::HeldTask& held)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // --- The batch path (coordinator_batch.cc) ---
  // Whether `rt`'s tasks go online now: online jobs, and auto jobs past
  // their deadline's cutoff (or whose batches are not expected to end by
  // it).
  bool OnlineNowLocked(const JobRuntime& rt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The next task to lease online from `rt`: its online_tasks, then (when
  // the job is online now) its queue.
  absl::StatusOr<std::optional<v1::Task>> NextOnlineTaskLocked(JobRuntime& rt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rebuilds the batch book from the store's records.
  absl::Status RecoverBatchesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gathers `rt`'s next tasks into a new stored batch record; null when
  // none is due (no tasks, budget, limits).
  absl::StatusOr<OpenBatch*> FormBatchLocked(JobRuntime& rt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The step due for `batch` now, if any, filled in `step`.
  absl::StatusOr<bool> DueStepLocked(OpenBatch& batch, v1::BatchStep* step)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A task back from a batch: to its queue (batch mode), or online (auto).
  void SendAgainLocked(JobRuntime& rt, v1::Task task)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status StoreBatchRecordLocked(OpenBatch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Commits `items` of an ended batch (and, when `last`, sends the tasks
  // the results left out again), with the record, in one store batch.
  absl::Status CommitBatchItemsLocked(OpenBatch& batch,
                                      const v1::BatchStepReport& report,
                                      const std::string& worker_name,
                                      v1::BatchStepReportResponse* response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The task of lease `lease_id` goes back to be sent again (by batch, or
  // online in auto), its attempt counted when `count_attempt`, or dead
  // -lettered when its attempts are spent.
  absl::Status ReturnBatchTaskLocked(int64_t lease_id, bool count_attempt,
                                     const std::string& error,
                                     const std::string& worker_name,
                                     ReportCommit* commit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends a batch the provider refused: its tasks go back with an attempt
  // counted, the record FAILED with `error`.
  absl::Status FailBatchLocked(OpenBatch& batch, const std::string& error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the open batch: record ENDED (tasks dropped from it), summary kept.
  void EndBatchLocked(OpenBatch& batch, v1::BatchState state,
                      StoreBatch* writes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Asks for the job's open batches to be cancelled at the provider.
  absl::Status CancelBatchesOfJobLocked(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The job's batches, for its view.
  void AddBatchViewLocked(v1::Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The batch figures metrics report, per teacher with a batch API.
  void AddBatchSnapshotLocked(CoordinatorSnapshot* snapshot)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Restores the lease table a graceful stop saved; false when none was.
  absl::StatusOr<bool> RestoreLeasesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Waits until `done` holds for the job's view, or `max_wait` passes, then
  // returns the view (WaitForJobChange, WaitForJobToSettle).
  absl::StatusOr<v1::Job> WaitForJob(
      const std::string& job_id, Duration max_wait,
      const std::function<bool(const v1::Job& view)>& done)
      ABSL_LOCKS_EXCLUDED(mu_);

  Store& store_;
  const std::vector<TeacherProfile> teachers_;
  Clock& clock_;
  const CoordinatorOptions options_;

  // Held by a report through its commit, its store write outside mu_
  // included, and by every other change of a job's record or tasks that a
  // report could be writing too (cancel, retry, resume, the batch path, the
  // lease table saved): those wait for the write, and commits stay in order.
  // Leasing and heartbeats take only mu_.
  absl::Mutex commit_mu_;
  absl::Mutex mu_ ABSL_ACQUIRED_AFTER(commit_mu_);
  // Bumped by ChangedLocked: what WaitForJobChange waits on.
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t lease_waits_ended_ ABSL_GUARDED_BY(mu_) = 0;  // EndLeaseWaits
  // Jobs by id; ids sort by creation, so iteration is first-come first-served.
  std::map<std::string, JobRuntime> jobs_ ABSL_GUARDED_BY(mu_);
  Scheduler scheduler_ ABSL_GUARDED_BY(mu_);
  // No lease before this time (restart_grace), and none after SaveLeases.
  TimePoint leasing_resumes_ ABSL_GUARDED_BY(mu_);
  bool leases_saved_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, WorkerInfo> workers_ ABSL_GUARDED_BY(mu_);
  // Jobs not to lease (CoordinatorOptions::hold_recovered_jobs).
  std::set<std::string> held_jobs_ ABSL_GUARDED_BY(mu_);
  Budget budget_ ABSL_GUARDED_BY(mu_);
  SpendGuard spend_ ABSL_GUARDED_BY(mu_);
  AnswerIndex answer_index_ ABSL_GUARDED_BY(mu_);
  BatchBook batches_ ABSL_GUARDED_BY(mu_);
  // Builds batch lines to measure them (never sends: its HttpClient fails
  // every call), by teacher; only teachers with a batch API.
  std::unique_ptr<HttpClient> no_http_;
  std::map<std::string, std::unique_ptr<BatchApi>> line_builders_;
  // Numbers of aborted submissions' job ids, handed out again first.
  std::set<int64_t> free_job_numbers_ ABSL_GUARDED_BY(mu_);
  // Worker id suffixes: seeded from the OS at each start, so two starts do
  // not repeat each other's ids.
  std::mt19937_64 worker_id_random_ ABSL_GUARDED_BY(mu_);
};

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_COORDINATOR_H_
