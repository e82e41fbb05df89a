// The Coordinator's client side: jobs in memory and their view, the
// client API (submit, status, watch, cancel, retry, resume), recovery at
// start and the metrics snapshot. Leasing is in coordinator_leasing.cc and
// the commit of results in coordinator_commit.cc.
#include "services/coordinator/coordinator.h"

#include <algorithm>
#include <optional>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/job/job_state.h"
#include "common/metrics/metrics.h"
#include "google/protobuf/util/message_differencer.h"
#include "services/coordinator/exporter.h"
#include "services/coordinator/job_transitions.h"
#include "common/http/no_http_client.h"
#include "common/teacher/teacher_factory.h"

namespace distillery {

Coordinator::Coordinator(Store& store, std::vector<TeacherProfile> teachers,
                         Clock& clock, CoordinatorOptions options)
    : store_(store),
      teachers_(std::move(teachers)),
      clock_(clock),
      options_(options),
      scheduler_(options.remembered_lease_holders),
      budget_(clock, teachers_, options.budget),
      answer_index_(store, options.near_duplicates_at_commit),
      no_http_(MakeNoHttpClient()) {
  for (const TeacherProfile& profile : teachers_) {
    if (!HasBatchApi(profile)) continue;
    absl::StatusOr<std::unique_ptr<BatchApi>> api =
        MakeBatchApi(profile, std::string(), *no_http_);
    if (api.ok()) line_builders_[profile.name] = *std::move(api);
  }
  // 128 bits of OS entropy: a 32-bit seed would repeat a whole boot's ids
  // once in 2^32 starts.
  std::random_device entropy;
  std::seed_seq seed{entropy(), entropy(), entropy(), entropy()};
  worker_id_random_.seed(seed);
}

v1::Job Coordinator::JobViewLocked(const JobRuntime& rt) {
  v1::Job job = rt.job;
  *job.mutable_teacher_status() = TeacherStatusLocked(job.spec().teacher());
  AddBatchViewLocked(&job);
  return job;
}

v1::TeacherStatus Coordinator::TeacherStatusLocked(const std::string& teacher) {
  v1::TeacherStatus status = budget_.Status(teacher);
  const TimePoint live_after = clock_.Now() - 3 * options_.heartbeat_interval;
  int64_t live = 0;
  for (const auto& [id, worker] : workers_) {
    if (worker.last_seen >= live_after &&
        std::find(worker.teachers.begin(), worker.teachers.end(), teacher) !=
            worker.teachers.end()) {
      ++live;
    }
  }
  status.set_live_workers(live);
  return status;
}

void Coordinator::ReleaseJobNumber(int64_t n) {
  absl::MutexLock lock(&mu_);
  free_job_numbers_.insert(n);
}

absl::StatusOr<v1::Job> Coordinator::ResumeJob(const std::string& job_id,
                                               double budget_usd) {
  absl::MutexLock commit_lock(&commit_mu_);  // see commit_mu_
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  }
  JobRuntime& rt = it->second;
  ASSIGN_OR_RETURN(v1::Job job, Resumed(rt.job, budget_usd));
  RETURN_IF_ERROR(StoreJobLocked(rt, std::move(job)));
  return JobViewLocked(rt);
}

absl::StatusOr<v1::TeacherStatus> Coordinator::ResumeTeacher(
    const std::string& teacher) {
  absl::MutexLock lock(&mu_);
  if (!budget_.Resume(teacher)) {
    return absl::NotFoundError(absl::StrCat("unknown teacher '", teacher, "'"));
  }
  ChangedLocked();
  return TeacherStatusLocked(teacher);
}

absl::StatusOr<std::unique_ptr<Submission>> Coordinator::BeginSubmission(
    const v1::JobSpec& spec) {
  RETURN_IF_ERROR(ValidateJobSpec(spec, teachers_, options_.max_samples,
                                  options_.max_prompt_bytes));
  // A rejected submission gives its id back (Submission::Abort), so ids
  // count accepted jobs: reuse the smallest returned one first.
  std::optional<int64_t> reused;
  {
    absl::MutexLock lock(&mu_);
    if (!free_job_numbers_.empty()) {
      reused = *free_job_numbers_.begin();
      free_job_numbers_.erase(free_job_numbers_.begin());
    }
  }
  int64_t n = 0;
  if (reused) {
    n = *reused;
  } else {
    ASSIGN_OR_RETURN(n, store_.NextSequence("job"));
  }
  v1::Job job;
  job.set_id(JobIdFor(n));
  *job.mutable_spec() = spec;
  job.set_state(v1::JOB_STATE_SUBMITTING);
  job.set_created_ms(clock_.WallMillis());
  StoreBatch batch;
  batch.jobs.push_back(job);
  if (absl::Status s = store_.Apply(batch); !s.ok()) {
    ReleaseJobNumber(n);
    return s;
  }
  const TeacherProfile* teacher = ProfileFor(spec.teacher());  // validated
  return std::unique_ptr<Submission>(
      new Submission(this, store_, *teacher, std::move(job), n));
}

absl::Status Coordinator::CommitSubmission(Submission* submission) {
  StoreBatch batch;
  batch.jobs.push_back(submission->job_);
  RETURN_IF_ERROR(store_.Apply(batch));
  metrics::PromptsSubmitted(submission->job_.counters().prompts());
  metrics::InitTaskSeries(submission->job_.spec().teacher(),
                          submission->job_.spec().model());
  absl::MutexLock lock(&mu_);
  JobRuntime& rt = jobs_[submission->job_.id()];
  rt.job = submission->job_;
  rt.last_progress_ms = clock_.WallMillis();
  if (TeacherStatusLocked(rt.job.spec().teacher()).live_workers() == 0) {
    spdlog::warn("job {}: no live worker serves teacher {}; it waits for one",
                 rt.job.id(), rt.job.spec().teacher());
  }
  ChangedLocked();
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> Coordinator::GetJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  }
  return JobViewLocked(it->second);
}

std::vector<v1::Job> Coordinator::ListJobs() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Job> out;
  for (const auto& [id, rt] : jobs_) out.push_back(JobViewLocked(rt));
  return out;
}

absl::StatusOr<v1::Job> Coordinator::CancelJob(const std::string& job_id) {
  absl::MutexLock commit_lock(&commit_mu_);  // see commit_mu_
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  }
  v1::Job job = it->second.job;
  if (!Cancelled(job, clock_.WallMillis())) return job;
  RETURN_IF_ERROR(StoreJobLocked(it->second, job));
  scheduler_.DropQueue(job_id);
  // End its leases now: workers learn at their next heartbeat that these
  // leases are revoked and drop the tasks they have not sent.
  for (int64_t id : scheduler_.LeasesOfJob(job_id)) ReturnLeaseLocked(id);
  // Its open batches are cancelled at the provider by the next worker to
  // ask for a batch step.
  RETURN_IF_ERROR(CancelBatchesOfJobLocked(job_id));
  return job;
}

absl::StatusOr<v1::Job> Coordinator::RetryJob(const std::string& job_id) {
  constexpr size_t kRetryChunk = 1024;
  absl::MutexLock commit_lock(&commit_mu_);  // see commit_mu_
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  }
  JobRuntime& rt = it->second;
  if (rt.job.state() == v1::JOB_STATE_CANCELLED) {
    return absl::FailedPreconditionError(
        absl::StrCat("job '", job_id, "' was cancelled; submit it again"));
  }
  v1::Job job = rt.job;
  const v1::Job before = rt.job;
  if (job.counters().tasks_failed() == 0) {
    // Nothing was dead-lettered: the job stays as it is, finished time and
    // all.
    return JobViewLocked(rt);
  }
  Reopened(job);
  // rt.job follows the store chunk by chunk: when a chunk fails, memory
  // holds the job as the chunks before it stored it, so the next write of
  // the job record (a report, a lease from the cache) stores counters that
  // match the tasks, and the tasks retried so far are leased.
  bool wrote = false;
  StoreBatch batch;
  auto flush = [&]() -> absl::Status {
    batch.jobs.push_back(job);
    absl::Status s = store_.Apply(batch);
    batch = StoreBatch();
    if (!s.ok()) return s;
    rt.job = job;
    wrote = true;
    return absl::OkStatus();
  };
  absl::Status status;
  absl::Status scan_status = store_.ScanTasks(job_id, 0, 0, [&](const v1::Task& t) {
    if (t.state() != v1::TASK_STATE_FAILED) return true;
    v1::Task task = t;
    task.set_state(v1::TASK_STATE_PENDING);
    task.set_attempts(0);
    task.clear_last_error();
    batch.tasks.push_back(std::move(task));
    v1::JobCounters* c = job.mutable_counters();
    c->set_tasks_failed(c->tasks_failed() - 1);
    if (batch.tasks.size() >= kRetryChunk) {
      status = flush();
      if (!status.ok()) return false;
    }
    return true;
  });
  if (status.ok()) status = scan_status;
  if (status.ok()) status = flush();
  if (wrote) {
    // Scan the job again from its start: retried tasks are found there.
    // Tasks already leased are found too, and are harmless: a leased key
    // makes its copy wait.
    scheduler_.Queue(job_id).Rescan();
    rt.last_progress_ms = clock_.WallMillis();
    ChangedLocked();
  }
  if (!status.ok()) {
    metrics::StoreError("retry");
    spdlog::error("job {}: retry stopped part way{}: {}", job_id,
                  wrote ? " (the tasks before were retried)" : "",
                  std::string(status.message()));
    return status;
  }
  spdlog::info("job {}: {} dead-lettered tasks sent back to be harvested",
               job_id, before.counters().tasks_failed() -
                           job.counters().tasks_failed());
  LogStateChange(before, job);
  return JobViewLocked(rt);
}

absl::StatusOr<v1::Job> Coordinator::WaitForJobChange(
    const std::string& job_id, const v1::Job& last_seen, Duration max_wait) {
  return WaitForJob(job_id, max_wait, [&last_seen](const v1::Job& view) {
    return !google::protobuf::util::MessageDifferencer::Equals(view,
                                                               last_seen);
  });
}

absl::StatusOr<v1::Job> Coordinator::WaitForJobToSettle(
    const std::string& job_id, Duration max_wait) {
  return WaitForJob(job_id, max_wait, [](const v1::Job& view) {
    return IsSettledForNow(view.state());
  });
}

absl::StatusOr<v1::Job> Coordinator::WaitForJob(
    const std::string& job_id, Duration max_wait,
    const std::function<bool(const v1::Job& view)>& done) {
  absl::MutexLock lock(&mu_);
  const TimePoint deadline = clock_.Now() + max_wait;
  while (true) {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) {
      return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
    }
    v1::Job view = JobViewLocked(it->second);
    if (done(view)) return view;
    const uint64_t seen = version_;
    auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return version_ != seen;
    };
    if (!clock_.AwaitWithDeadline(&mu_, absl::Condition(&changed), deadline)) {
      return view;
    }
  }
}

void Coordinator::ChangedLocked() { ++version_; }

absl::Status Coordinator::StoreJobLocked(JobRuntime& rt, v1::Job job) {
  StoreBatch batch;
  batch.jobs.push_back(job);
  RETURN_IF_ERROR(store_.Apply(batch));
  LogStateChange(rt.job, job);
  rt.job = std::move(job);
  ChangedLocked();
  return absl::OkStatus();
}

const TeacherProfile* Coordinator::ProfileFor(const std::string& teacher) const {
  for (const TeacherProfile& p : teachers_) {
    if (p.name == teacher) return &p;
  }
  return nullptr;
}

CoordinatorSnapshot Coordinator::Snapshot() {
  absl::MutexLock lock(&mu_);
  CoordinatorSnapshot snapshot;
  for (const auto& [id, rt] : jobs_) {
    snapshot.jobs.push_back({rt.job, rt.last_progress_ms});
  }
  for (const TeacherProfile& p : teachers_) {
    snapshot.leases_by_teacher[p.name] = 0;  // a series even when idle
    snapshot.teachers.push_back(TeacherStatusLocked(p.name));
  }
  const TimePoint now = clock_.Now();
  for (const auto& [id, worker] : workers_) {
    snapshot.workers.push_back(
        {id, std::chrono::duration<double>(now - worker.last_seen).count()});
  }
  for (const auto& [id, lease] : scheduler_.leases()) {
    if (lease.worker_id.rfind("batch:", 0) == 0) continue;  // not a worker's
    auto job = jobs_.find(lease.task.job_id());
    if (job != jobs_.end()) {
      ++snapshot.leases_by_teacher[job->second.job.spec().teacher()];
    }
  }
  AddBatchSnapshotLocked(&snapshot);
  return snapshot;
}

// ---------------------------------------------------------------- Export

absl::Status Coordinator::Export(
    const v1::ExportRequest& request,
    const std::function<bool(v1::ExportRecord&&)>& emit,
    ExportCounts* counts) {
  absl::Status corrupt;
  absl::Status s = ExportBytes(
      request,
      [&](const ExportRecordBytes& bytes) {
        absl::StatusOr<v1::ExportRecord> record = bytes.Parse();
        if (!record.ok()) {
          corrupt = record.status();
          return false;
        }
        return emit(std::move(*record));
      },
      counts);
  return s.ok() ? corrupt : s;
}

absl::Status Coordinator::ExportBytes(const v1::ExportRequest& request,
                                      const ExportEmit& emit,
                                      ExportCounts* counts) {
  if (request.job_ids().empty()) {
    return absl::InvalidArgumentError("export: no job given");
  }
  std::vector<v1::Job> jobs;
  for (const std::string& job_id : request.job_ids()) {
    ASSIGN_OR_RETURN(v1::Job job, GetJob(job_id));
    // A job named twice is exported once, in its first place.
    const bool seen =
        std::any_of(jobs.begin(), jobs.end(),
                    [&](const v1::Job& j) { return j.id() == job.id(); });
    if (!seen) jobs.push_back(std::move(job));
  }
  return ExportJobs(store_, request, jobs, emit, counts);
}

}  // namespace distillery
