// Coordinator: the one owner of Distillery's state, with no gRPC in it. It
// takes prompt sets (as Submissions), splits them into tasks, leases tasks
// to workers, commits their results exactly once, and serves job status and
// exports. The gRPC services in grpc_services.h are thin wrappers over it.
//
// Scheduling: tasks are stored in submission order; each running job keeps a
// cursor into its tasks and a queue of tasks to hand out again (expired
// leases). Memory holds only leases, cursors and small queues, never a whole
// job. Before a task is leased, its request key is checked against stored
// answers (pay once); a key already in flight makes the task wait for that
// answer instead of being sent twice.
//
// Restarts: a graceful stop (SaveLeases) leaves the lease table in the
// store and the next start restores it; after any restart workers announce
// the tasks they hold when they register again, and the coordinator takes
// those leases back instead of leasing the tasks to someone else. After an
// unclean stop (no saved table) leasing waits `restart_grace` for them.
#ifndef DISTILLERY_SERVICES_COORDINATOR_COORDINATOR_H_
#define DISTILLERY_SERVICES_COORDINATOR_COORDINATOR_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/base/clock.h"
#include "common/config/teachers.h"
#include "common/dataset/prompt_parser.h"
#include "common/rpc/message_limits.h"
#include "common/store/store.h"
#include "services/coordinator/budget.h"
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
};

struct CoordinatorOptions {
  // A lease not renewed by a heartbeat within this time returns its task.
  Duration lease_duration = std::chrono::seconds(60);
  Duration heartbeat_interval = std::chrono::seconds(5);
  // After a start that found running jobs but no lease table saved by a
  // graceful stop (a crash, kill -9), how long leasing waits so that live
  // workers can announce the tasks they still hold. 0: no wait.
  Duration restart_grace = Duration(0);
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

class Coordinator;

// One prompt set streaming in. Prompts are written to the store under a job
// in state SUBMITTING, invisible to scheduling and listing, so memory stays
// bounded; Commit makes the job visible in one write, Abort (or a
// coordinator restart) removes every trace of it. Not thread-safe: one per
// client stream.
class Submission {
 public:
  ~Submission();  // aborts unless committed
  // Parses and stores the next lines of the prompt file.
  absl::Status AddLines(const google::protobuf::RepeatedPtrField<std::string>&
                            lines);
  absl::StatusOr<v1::Job> Commit();
  void Abort();
  const std::string& job_id() const { return job_.id(); }

 private:
  friend class Coordinator;
  Submission(Coordinator* coordinator, v1::Job job, int64_t job_number)
      : coordinator_(coordinator), job_(std::move(job)),
        job_number_(job_number) {}
  absl::Status Flush();
  // DuplicatePromptIdError when an earlier line has `prompt`'s id; else
  // notes the id. Ids seen are in the store's scratch space (flushed with
  // the prompts), so memory holds only those of the batch not yet written.
  absl::Status CheckUniqueId(const v1::Prompt& prompt);
  void DeleteIds();

  Coordinator* coordinator_;
  v1::Job job_;
  const int64_t job_number_;  // the n of job_'s id, given back on Abort
  int64_t line_number_ = 0;
  int64_t next_seq_ = 0;
  StoreBatch pending_;
  int pending_prompts_ = 0;
  std::map<std::string, int64_t> pending_ids_;  // scratch key -> line
  bool finished_ = false;
};

// Thread-safe.
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
  // Streams the records of the requested jobs, job by job in the order
  // given, each in submission order (prompt, then sample), keeping those that
  // pass the request's filters. Unless include_duplicates, a stored answer
  // is emitted once per export: identical answers (duplicate_of) and cache
  // hits of an answer already emitted (a repeated prompt) are left out.
  // Memory does not grow with the number of records: near-duplicate removal
  // and the repeat check keep their keys in the store's scratch space. Stops
  // early, OK, when `emit` returns false.
  absl::Status Export(const v1::ExportRequest& request,
                      const std::function<bool(v1::ExportRecord&&)>& emit);

  // --- Worker API ---
  // A new worker id, "NAME-" and 16 random hex digits: unique among this
  // coordinator's workers and, with odds of 2^-64, across its restarts, so
  // a worker still using an id from before a restart is never taken for
  // one registered since.
  v1::RegisterResponse Register(const v1::RegisterRequest& request);
  absl::StatusOr<v1::LeaseResponse> Lease(const v1::LeaseRequest& request);
  absl::StatusOr<v1::ReportResponse> Report(const v1::ReportRequest& request);
  v1::HeartbeatResponse Heartbeat(const v1::HeartbeatRequest& request);
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
  struct TaskRef {
    int64_t seq = 0;
    int sample = 0;
  };
  struct JobRuntime {
    v1::Job job;              // as last committed
    TaskRef cursor;           // next task position to read from the store
    bool scanned_all = false;
    std::deque<v1::Task> ready;     // read from the store, not yet leased
    std::deque<v1::Task> returned;  // from expired or abandoned leases
    // The estimated cost of the leases that reserve against the job's
    // budget, in whole nano-dollars, and how many they are. Integers: a sum
    // of doubles added and taken away in another order does not come back
    // to zero, and a residue would keep the job waiting for no lease.
    int64_t reserved_nano_usd = 0;
    int reserving_leases = 0;
    int64_t last_progress_ms = 0;   // wall time; not persisted
  };
  struct LeaseInfo {
    std::string worker_id;
    v1::Task task;
    TimePoint deadline;
    bool reserves = false;           // counted in the job's reservations
    int64_t reserved_nano_usd = 0;   // the task's estimated cost
  };
  struct WorkerInfo {
    std::string name;
    TimePoint last_seen;
    std::vector<std::string> teachers;  // the profiles it can call
  };

  absl::Status CommitSubmission(Submission* submission)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Takes the next task to hand out from `rt`, or false when none is left.
  // A store error is returned (logged, counted) with the candidate back at
  // the head of its queue: the task is neither lost nor reported as absent.
  absl::StatusOr<bool> NextTaskLocked(JobRuntime& rt, v1::Task* task)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CompleteFromCacheLocked(JobRuntime& rt, v1::Task task)
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
    StoreBatch batch;
    std::map<std::string, v1::Job> jobs;  // by id: the job after this report
    std::map<std::tuple<std::string, int64_t, int>, size_t> tasks;  // index
    std::map<std::string, size_t> answers;  // request key -> index in batch
    std::map<std::string, std::string> content;  // hash -> request key
    std::map<std::string, std::string> lsh;      // band -> request key
    std::vector<std::pair<std::string, const char*>> settled;  // job, outcome
    std::vector<std::string> release_keys;  // keys whose waiters to release
    int refused = 0;  // results from a worker that never held the task
  };
  // Adds one result to `commit`. Leases end and abandoned tasks return to
  // their queues at once; everything stored waits for the batch.
  // A result is used only from a worker that holds or recently held the
  // task's lease; others are ignored and counted.
  absl::Status CommitResultLocked(const v1::TaskResult& result,
                                  const std::string& worker_id,
                                  const std::string& worker_name,
                                  ReportCommit* commit, bool* ignored)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies `commit` and then its in-memory effects.
  absl::Status FinishReportLocked(ReportCommit& commit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Signs a new, non-duplicate answer (MinHash), marks it near_duplicate_of
  // an earlier answer that shares an LSH bucket with estimated Jaccard >=
  // kDefaultNearDuplicateThreshold, and adds its empty buckets to `commit`.
  absl::Status IndexNearDuplicatesLocked(v1::Answer* answer,
                                         ReportCommit* commit)
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
  // The job as clients see it: the stored record plus its teacher's budget.
  v1::Job JobViewLocked(const JobRuntime& rt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::SamplingParams EffectiveParams(const v1::JobSpec& spec, int sample) const;
  // The profile of `teacher`, or null when the teachers file lost it.
  const TeacherProfile* ProfileFor(const std::string& teacher) const;
  // The most a task of `rt`'s job can cost: prompt (estimated from its
  // bytes) at the input price plus max_tokens at the output price.
  double EstimateTaskCostLocked(const JobRuntime& rt, const v1::Prompt& prompt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  using TaskId = std::tuple<std::string, int64_t, int>;  // job, seq, sample
  // Remembers `worker_id` among the task's recent holders.
  void NoteHolderLocked(const v1::Task& task, const std::string& worker_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True when `worker_id` holds the result's task now (by its lease id or
  // by the task's request key) or held it recently.
  bool HeldByLocked(const v1::TaskResult& result, const std::string& worker_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends a lease's cost reservation.
  void ReleaseReservationLocked(const LeaseInfo& lease)
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
  // Restores the lease table a graceful stop saved; false when none was.
  absl::StatusOr<bool> RestoreLeasesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Store& store_;
  const std::vector<TeacherProfile> teachers_;
  Clock& clock_;
  const CoordinatorOptions options_;

  std::mutex mu_;
  std::condition_variable changed_;
  // Jobs by id; ids sort by creation, so iteration is first-come first-served.
  std::map<std::string, JobRuntime> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, LeaseInfo> leases_ ABSL_GUARDED_BY(mu_);
  int64_t next_lease_id_ ABSL_GUARDED_BY(mu_) = 1;
  // No lease before this time (restart_grace), and none after SaveLeases.
  TimePoint leasing_resumes_ ABSL_GUARDED_BY(mu_);
  bool leases_saved_ ABSL_GUARDED_BY(mu_) = false;
  // Request keys being answered now, and tasks waiting for those answers.
  std::map<std::string, int64_t> inflight_keys_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<v1::Task>> key_waiters_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, WorkerInfo> workers_ ABSL_GUARDED_BY(mu_);
  // Jobs not to lease (CoordinatorOptions::hold_recovered_jobs).
  std::set<std::string> held_jobs_ ABSL_GUARDED_BY(mu_);
  Budget budget_ ABSL_GUARDED_BY(mu_);
  // Numbers of aborted submissions' job ids, handed out again first.
  std::set<int64_t> free_job_numbers_ ABSL_GUARDED_BY(mu_);
  // Worker id suffixes: seeded from the OS at each start, so two starts do
  // not repeat each other's ids.
  std::mt19937_64 worker_id_random_ ABSL_GUARDED_BY(mu_);
  // Recent lease holders by task (at most kHoldersPerTask each, newest
  // last), and the order tasks entered, to forget the oldest beyond
  // options_.remembered_lease_holders. An entry's generation tells whether
  // a queued order entry is still its own (a forgotten and re-added task is
  // queued again under a new generation).
  struct Holders {
    std::vector<std::string> workers;
    uint64_t generation = 0;
  };
  std::map<TaskId, Holders> holders_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<TaskId, uint64_t>> holder_order_ ABSL_GUARDED_BY(mu_);
  uint64_t next_holder_generation_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_COORDINATOR_H_
