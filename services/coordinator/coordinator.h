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
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/base/clock.h"
#include "common/config/teachers.h"
#include "common/dataset/prompt_parser.h"
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
  // Tasks read from the store per refill of a job's ready queue.
  int scan_batch = 1024;
  // Prompts buffered before a submission writes them out.
  int submit_flush_prompts = 2048;
  int max_samples = 1000;
  BudgetOptions budget;
  // The longest prompt-file line a submission takes, in bytes.
  size_t max_prompt_bytes = kDefaultMaxPromptBytes;
  // Compare each new answer with earlier ones as it is committed (LSH
  // buckets in the store): answers get near_duplicate_of and jobs count
  // near_duplicate_answers live. It is the largest cost of a commit (16
  // bucket lookups and up to 16 index writes per answer, and its MinHash
  // signature; bench/results.md). Off, `export --near-dup-threshold` finds
  // the same near-duplicates, signing answers as it reads them.
  bool near_duplicates_at_commit = true;
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
  Submission(Coordinator* coordinator, v1::Job job)
      : coordinator_(coordinator), job_(std::move(job)) {}
  absl::Status Flush();
  // DuplicatePromptIdError when an earlier line has `prompt`'s id; else
  // notes the id. Ids seen are in the store's scratch space (flushed with
  // the prompts), so memory holds only those of the batch not yet written.
  absl::Status CheckUniqueId(const v1::Prompt& prompt);
  void DeleteIds();

  Coordinator* coordinator_;
  v1::Job job_;
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
  // for an unknown job, FAILED_PRECONDITION for a cancelled one.
  absl::StatusOr<v1::Job> RetryJob(const std::string& job_id);
  // Waits until the job differs from `last_seen` or `max_wait` passes, then
  // returns the job as it is.
  absl::StatusOr<v1::Job> WaitForJobChange(const std::string& job_id,
                                           const v1::Job& last_seen,
                                           Duration max_wait);
  // Streams the records of the requested jobs, job by job in the order
  // given, each in submission order (prompt, then sample), keeping those that
  // pass the request's filters. Memory does not grow with the number of
  // records: near-duplicate removal keeps its index in the store's scratch
  // space. Stops early, OK, when `emit` returns false.
  absl::Status Export(const v1::ExportRequest& request,
                      const std::function<bool(v1::ExportRecord&&)>& emit);

  // --- Worker API ---
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
    double reserved_usd = 0;        // estimated cost of tasks in flight
    int64_t last_progress_ms = 0;   // wall time; not persisted
  };
  struct LeaseInfo {
    std::string worker_id;
    v1::Task task;
    TimePoint deadline;
    double reserved_usd = 0;  // the task's estimated cost, against a budget
  };
  struct WorkerInfo {
    std::string name;
    TimePoint last_seen;
  };

  absl::Status CommitSubmission(Submission* submission)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Takes the next task to hand out from `rt`, or false when none is left.
  bool NextTaskLocked(JobRuntime& rt, v1::Task* task)
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
  };
  // Adds one result to `commit`. Leases end and abandoned tasks return to
  // their queues at once; everything stored waits for the batch.
  absl::Status CommitResultLocked(const v1::TaskResult& result,
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
  // Updates state when all tasks are settled. Mutates `job` only.
  void MaybeFinishLocked(v1::Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
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
  // Ends a lease's cost reservation.
  void ReleaseReservationLocked(const LeaseInfo& lease)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

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
  // Request keys being answered now, and tasks waiting for those answers.
  std::map<std::string, int64_t> inflight_keys_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<v1::Task>> key_waiters_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, WorkerInfo> workers_ ABSL_GUARDED_BY(mu_);
  // Jobs not to lease (CoordinatorOptions::hold_recovered_jobs).
  std::set<std::string> held_jobs_ ABSL_GUARDED_BY(mu_);
  Budget budget_ ABSL_GUARDED_BY(mu_);
  int64_t next_worker_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_COORDINATOR_H_
