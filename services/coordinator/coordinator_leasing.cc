// The Coordinator's worker side, leasing: workers registering and
// heartbeating, tasks leased (read from the store into the Scheduler's
// queues, checked against the cache and the spend guard), leases renewed,
// expired and returned, and the lease table saved at a graceful stop and
// taken back after a restart. Where a lease starts (Lease), expires
// (ExpireLeasesLocked) and ends without a result (ReturnLeaseLocked).
#include <algorithm>
#include <optional>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/job/job_state.h"
#include "common/job/task_request.h"
#include "common/metrics/metrics.h"
#include "common/rpc/message_limits.h"
#include "services/coordinator/coordinator.h"
#include "services/coordinator/job_transitions.h"
#include "services/coordinator/submission.h"

namespace distillery {
namespace {

// Where a graceful stop leaves the lease table: a scratch key at or above
// "\x80", which Recover's sweep of export scratch (below "\x80") keeps.
const std::string& SavedLeasesKey() {
  static const std::string* key = new std::string("\x80" "saved-leases");
  return *key;
}

bool SameTask(const v1::Task& task, const v1::HeldTask& held) {
  return task.job_id() == held.job_id() &&
         task.prompt_seq() == held.prompt_seq() &&
         task.sample() == held.sample() &&
         task.request_key() == held.request_key();
}

}  // namespace

absl::Status Coordinator::Recover() {
  // Scratch is per operation; what is there was left by a crash mid-export
  // or mid-submission. Export keys start with a be64 export id below 2^63,
  // so below "\x80"; submissions keep their prompt ids above it.
  RETURN_IF_ERROR(store_.DeleteScratch(std::string(), std::string("\x80")));
  RETURN_IF_ERROR(DeleteAllSubmissionIds(store_));
  ASSIGN_OR_RETURN(std::vector<v1::Job> jobs, store_.ListJobs());
  absl::MutexLock lock(&mu_);
  // Lease ids are not stored with tasks; starting them from the clock keeps
  // a worker's lease from before a restart from matching a new one.
  scheduler_.LeaseIdsFrom(clock_.WallMillis() * 1000 + 1);
  bool any_running = false;
  for (v1::Job& job : jobs) {
    if (job.state() == v1::JOB_STATE_SUBMITTING) {
      RETURN_IF_ERROR(store_.DeleteJob(job.id()));
      continue;
    }
    metrics::InitTaskSeries(job.spec().teacher(), job.spec().model());
    any_running |= job.state() == v1::JOB_STATE_RUNNING;
    if (options_.hold_recovered_jobs &&
        !options_.resume_recovered_jobs.count(job.id())) {
      held_jobs_.insert(job.id());
    }
    JobRuntime& rt = jobs_[job.id()];
    rt.last_progress_ms = job.state() == v1::JOB_STATE_RUNNING
                              ? clock_.WallMillis()
                              : (job.finished_ms() ? job.finished_ms()
                                                   : job.created_ms());
    rt.job = std::move(job);
  }
  RETURN_IF_ERROR(RecoverBatchesLocked());
  ASSIGN_OR_RETURN(bool restored, RestoreLeasesLocked());
  if (!restored && any_running && options_.restart_grace > Duration(0)) {
    // Workers may still hold tasks leased before the crash: give them time
    // to register again and announce them before anything is leased.
    leasing_resumes_ = clock_.Now() + options_.restart_grace;
    spdlog::info("no lease table from a graceful stop: leasing waits {} ms "
                 "for workers to announce the tasks they hold",
                 std::chrono::duration_cast<std::chrono::milliseconds>(
                     options_.restart_grace)
                     .count());
  }
  return absl::OkStatus();
}

std::optional<Scheduler::Lease> Coordinator::EndLeaseLocked(int64_t lease_id) {
  std::optional<Scheduler::Lease> lease = scheduler_.EndLease(lease_id);
  if (lease && lease->reserves) {
    spend_.Release(lease->task.job_id(), lease->reserved_nano_usd);
  }
  return lease;
}

void Coordinator::AddLeaseLocked(JobRuntime& rt, int64_t lease_id,
                                 const std::string& worker_id, v1::Task task,
                                 int64_t reserved_nano_usd) {
  const bool reserves = rt.job.spec().budget_usd() > 0;
  if (reserves) spend_.Reserve(rt.job.id(), reserved_nano_usd);
  scheduler_.AddLease(
      lease_id, Scheduler::Lease{worker_id, std::move(task),
                                 clock_.Now() + options_.lease_duration,
                                 reserves, reserves ? reserved_nano_usd : 0});
}

absl::StatusOr<bool> Coordinator::AdoptLeaseLocked(const std::string& worker_id,
                                                   const v1::HeldTask& held) {
  auto job = jobs_.find(held.job_id());
  if (job == jobs_.end() || job->second.job.state() != v1::JOB_STATE_RUNNING) {
    return false;
  }
  JobRuntime& rt = job->second;
  if (const Scheduler::Lease* known = scheduler_.FindLease(held.lease_id())) {
    // Known (a restored table, or we never forgot): it changes hands to the
    // worker's new id.
    if (!SameTask(known->task, held)) return false;
    scheduler_.Reassign(held.lease_id(), worker_id,
                        clock_.Now() + options_.lease_duration);
    return true;
  }
  if (scheduler_.InFlight(held.request_key())) return false;
  ASSIGN_OR_RETURN(std::optional<v1::Task> task,
                   store_.GetTask(held.job_id(), held.prompt_seq(),
                                  held.sample()));
  if (!task || task->state() != v1::TASK_STATE_PENDING ||
      task->request_key() != held.request_key()) {
    return false;
  }
  int64_t reserve = 0;
  if (rt.job.spec().budget_usd() > 0) {
    ASSIGN_OR_RETURN(std::optional<v1::Prompt> prompt,
                     store_.GetPrompt(held.job_id(), held.prompt_seq()));
    if (!prompt) return false;
    reserve = NanoUsdUp(MaxTaskCostLocked(rt, *prompt));
  }
  // Ids from before a restart are below the ones it hands out, but a lease
  // taken back must never share its id with a new one.
  scheduler_.LeaseIdsFrom(held.lease_id() + 1);
  AddLeaseLocked(rt, held.lease_id(), worker_id, std::move(*task), reserve);
  return true;
}

absl::StatusOr<int> Coordinator::SaveLeases() {
  absl::MutexLock commit_lock(&commit_mu_);  // see commit_mu_
  absl::MutexLock lock(&mu_);
  v1::SavedLeases saved;
  for (const auto& [id, lease] : scheduler_.leases()) {
    // A batch's leases come back from its record, not from this table.
    if (lease.worker_id.rfind("batch:", 0) == 0) continue;
    v1::SavedLease* s = saved.add_leases();
    v1::HeldTask* t = s->mutable_task();
    t->set_job_id(lease.task.job_id());
    t->set_prompt_seq(lease.task.prompt_seq());
    t->set_sample(lease.task.sample());
    t->set_request_key(lease.task.request_key());
    t->set_lease_id(id);
    s->set_worker_id(lease.worker_id);
  }
  StoreBatch batch;
  batch.scratch.emplace_back(SavedLeasesKey(), saved.SerializeAsString());
  RETURN_IF_ERROR(store_.Apply(batch));
  leases_saved_ = true;
  return saved.leases_size();
}

absl::StatusOr<bool> Coordinator::RestoreLeasesLocked() {
  ASSIGN_OR_RETURN(std::optional<std::string> value,
                   store_.FindScratch(SavedLeasesKey()));
  if (!value) return false;
  v1::SavedLeases saved;
  if (!saved.ParseFromString(*value)) {
    return absl::DataLossError("the saved lease table does not parse");
  }
  int restored = 0;
  const TimePoint deadline = clock_.Now() + options_.lease_duration +
                             options_.restored_lease_allowance;
  for (const v1::SavedLease& lease : saved.leases()) {
    ASSIGN_OR_RETURN(bool adopted,
                     AdoptLeaseLocked(lease.worker_id(), lease.task()));
    if (!adopted) continue;
    ++restored;
    // Its worker renews it only once it has registered again.
    scheduler_.FindLease(lease.task().lease_id())->deadline = deadline;
  }
  // Used once: a later crash must not bring back leases long ended.
  RETURN_IF_ERROR(store_.DeleteScratch(SavedLeasesKey(),
                                       SavedLeasesKey() + std::string(1, '\0')));
  spdlog::info("restored {} of {} leases saved by the last graceful stop",
               restored, saved.leases_size());
  return true;
}

double Coordinator::MaxTaskCostLocked(const JobRuntime& rt,
                                      const v1::Prompt& prompt) {
  const TeacherProfile* profile = ProfileFor(rt.job.spec().teacher());
  if (profile == nullptr) return 0;
  int64_t bytes = 0;
  for (const v1::ChatMessage& m : prompt.messages()) bytes += m.content().size();
  return MaxRequestCostUsd(*profile, rt.job.spec().model(), bytes,
                           prompt.messages_size(),
                           prompt.params().max_tokens() > 0
                               ? prompt.params().max_tokens()
                               : rt.job.spec().params().max_tokens());
}

v1::RegisterResponse Coordinator::Register(const v1::RegisterRequest& request) {
  absl::MutexLock lock(&mu_);
  // NAME-SUFFIX: the name the worker was given (--name, else its host),
  // which its answers carry, then what makes the id unique. A counter would
  // restart with the coordinator and hand a new worker the id a live one
  // still uses from before the restart (two workers then act as one).
  // Random suffixes do not repeat across restarts; they are also
  // unguessable by other holders of the worker token.
  std::string id;
  do {
    id = absl::StrCat(request.name().empty() ? "worker" : request.name(), "-",
                      absl::Hex(worker_id_random_(), absl::kZeroPad16));
  } while (workers_.count(id) > 0);
  workers_[id] = WorkerInfo{
      request.name(), clock_.Now(),
      std::vector<std::string>(request.teachers().begin(),
                               request.teachers().end())};
  ChangedLocked();  // jobs of its teachers now have a live worker
  v1::RegisterResponse response;
  response.set_worker_id(id);
  // A worker registering again (we restarted, or forgot it) names what it
  // holds; the leases we take back are its, the others it drops unsent.
  int adopted = 0;
  for (const v1::HeldTask& held : request.held_tasks()) {
    absl::StatusOr<bool> ok = AdoptLeaseLocked(id, held);
    if (ok.ok() && *ok) {
      ++adopted;
    } else {
      response.add_revoked_lease_ids(held.lease_id());
    }
  }
  if (request.held_tasks_size() > 0) {
    budget_.NoteTrafficBeforeReports();
    spdlog::info("worker {} holds {} tasks: {} taken back, {} revoked", id,
                 request.held_tasks_size(), adopted,
                 response.revoked_lease_ids_size());
  }
  response.set_lease_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                            options_.lease_duration)
                            .count());
  response.set_heartbeat_ms(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          options_.heartbeat_interval)
          .count());
  return response;
}

v1::HeartbeatResponse Coordinator::Heartbeat(
    const v1::HeartbeatRequest& request) {
  absl::MutexLock lock(&mu_);
  v1::HeartbeatResponse response;
  auto worker = workers_.find(request.worker_id());
  if (worker == workers_.end()) {
    response.set_known(false);
    return response;
  }
  const TimePoint now = clock_.Now();
  worker->second.last_seen = now;
  for (int64_t id : request.held_lease_ids()) {
    if (!scheduler_.Renew(id, request.worker_id(),
                          now + options_.lease_duration) &&
        !batches_.RenewStep(id, request.worker_id(),
                            now + options_.lease_duration)) {
      // Cancelled, or lapsed and perhaps leased again: sending it now could
      // only pay for an answer nobody will keep, or pay twice.
      response.add_revoked_lease_ids(id);
    }
  }
  for (v1::BudgetShare& share :
       budget_.OnHeartbeat(request.worker_id(), request.demands())) {
    *response.add_shares() = std::move(share);
  }
  response.set_known(true);
  return response;
}

absl::StatusOr<std::optional<v1::Task>> Coordinator::NextTaskLocked(
    JobRuntime& rt) {
  TaskQueue& queue = scheduler_.Queue(rt.job.id());
  while (true) {
    if (std::optional<v1::Task> task = queue.Pop()) return task;
    if (!queue.NeedsScan()) return std::nullopt;
    // No queued copy is read again before leasing: a task settled since it
    // was queued is skipped by the queue (Scheduler::Settled).
    std::vector<v1::Task> pending;
    int scanned = 0;
    TaskQueue::Position last = queue.cursor();
    bool any = false;
    absl::Status s = store_.ScanTasks(
        rt.job.id(), queue.cursor().seq, queue.cursor().sample,
        [&](const v1::Task& t) {
          any = true;
          last = {t.prompt_seq(), t.sample()};
          if (t.state() == v1::TASK_STATE_PENDING) pending.push_back(t);
          return ++scanned < options_.scan_batch;
        });
    if (!s.ok()) {
      // The cursor did not move: the next call reads the same tasks again.
      metrics::StoreError("lease_scan");
      spdlog::error("job {}: reading tasks to lease failed: {}", rt.job.id(),
                    std::string(s.message()));
      return s;
    }
    const bool end = !any || scanned < options_.scan_batch;
    queue.AddScanned(std::move(pending),
                     end ? last : TaskQueue::Position{last.seq, last.sample + 1},
                     end);
  }
}

absl::Status Coordinator::LeaseReadFailed(JobRuntime& rt, v1::Task task,
                                          absl::Status status) {
  // Still pending as far as anyone knows: it must stay queued, or its job
  // would never finish.
  metrics::StoreError("lease_read");
  spdlog::error("job {}: reading task {}/{} to lease failed: {}", rt.job.id(),
                task.prompt_seq(), task.sample(),
                std::string(status.message()));
  scheduler_.Queue(rt.job.id()).PushFront(std::move(task));
  return status;
}

absl::StatusOr<v1::LeaseResponse> Coordinator::Lease(
    const v1::LeaseRequest& request) {
  absl::MutexLock lock(&mu_);
  const uint64_t ended = lease_waits_ended_;
  const TimePoint wait_until =
      clock_.Now() + std::min<Duration>(std::chrono::milliseconds(std::max(
                                            0, request.wait_ms())),
                                        kMaxLeaseWait);
  while (true) {
    absl::StatusOr<v1::LeaseResponse> response = LeaseReadyLocked(request);
    if (!response.ok() || response->tasks_size() > 0 ||
        clock_.Now() >= wait_until) {
      return response;
    }
    // Nothing ready: wait for the jobs to change (ChangedLocked: a submit,
    // a resume or retry, a commit that frees waiting keys), then look
    // again. mu_ is released while waiting.
    const uint64_t seen = version_;
    auto changed = [this, seen, ended]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return version_ != seen || lease_waits_ended_ != ended;
    };
    if (!clock_.AwaitWithDeadline(&mu_, absl::Condition(&changed),
                                  wait_until) ||
        lease_waits_ended_ != ended) {
      return response;
    }
  }
}

void Coordinator::EndLeaseWaits() {
  absl::MutexLock lock(&mu_);
  ++lease_waits_ended_;
}

absl::StatusOr<v1::LeaseResponse> Coordinator::LeaseReadyLocked(
    const v1::LeaseRequest& request) {
  ExpireLeasesLocked();
  v1::LeaseResponse response;
  auto worker = workers_.find(request.worker_id());
  if (worker == workers_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("unknown worker '", request.worker_id(),
                     "'; register again"));
  }
  worker->second.last_seen = clock_.Now();
  response.set_lease_deadline_ms(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          options_.lease_duration)
          .count());
  if (leases_saved_ || clock_.Now() < leasing_resumes_) return response;
  // The response is one gRPC message: tasks stop before their bytes would
  // pass max_lease_bytes, whatever the prompts weigh.
  size_t lease_bytes = 0;
  bool lease_full = false;
  for (auto& [job_id, rt] : jobs_) {
    if (response.tasks_size() >= request.max_tasks() || lease_full) break;
    if (rt.job.state() != v1::JOB_STATE_RUNNING) continue;
    if (held_jobs_.count(job_id)) continue;
    if (budget_.Paused(rt.job.spec().teacher())) continue;
    bool served = false;
    for (const std::string& t : request.teachers()) {
      served |= (t == rt.job.spec().teacher());
    }
    if (!served) continue;
    std::optional<v1::Prompt> prompt;  // shared by a prompt's samples
    int64_t prompt_seq = -1;
    size_t prompt_bytes = 0;  // its messages, as a LeasedTask carries them
    TaskQueue& queue = scheduler_.Queue(job_id);
    while (response.tasks_size() < request.max_tasks() &&
           rt.job.state() == v1::JOB_STATE_RUNNING) {
      ASSIGN_OR_RETURN(std::optional<v1::Task> next, NextOnlineTaskLocked(rt));
      if (!next) break;
      v1::Task task = std::move(*next);
      absl::StatusOr<bool> answered = store_.HasAnswer(task.request_key());
      if (!answered.ok()) {
        return LeaseReadFailed(rt, std::move(task), answered.status());
      }
      if (*answered) {
        RETURN_IF_ERROR(CompleteFromCacheLocked(rt, std::move(task)));
        continue;
      }
      if (scheduler_.InFlight(task.request_key())) {
        scheduler_.Wait(std::move(task));
        continue;
      }
      if (task.prompt_seq() != prompt_seq) {
        absl::StatusOr<std::optional<v1::Prompt>> read =
            store_.GetPrompt(job_id, task.prompt_seq());
        if (!read.ok()) {
          return LeaseReadFailed(rt, std::move(task), read.status());
        }
        std::optional<v1::Prompt>& p = *read;
        if (!p) {
          return absl::DataLossError(absl::StrCat(
              "job ", job_id, ": no prompt for task ", task.prompt_seq()));
        }
        prompt = std::move(p);
        prompt_seq = task.prompt_seq();
        prompt_bytes = 0;
        for (const v1::ChatMessage& m : prompt->messages()) {
          prompt_bytes += RepeatedEntryBytes(m.ByteSizeLong());
        }
        prompt_bytes += RepeatedEntryBytes(prompt->tools_json().size()) +
                        RepeatedEntryBytes(prompt->tool_choice_json().size());
      }
      // An upper bound of the LeasedTask's size: the messages, the strings,
      // the params and 96 bytes for the numbers, tags and lengths.
      const size_t task_bytes = RepeatedEntryBytes(
          prompt_bytes + job_id.size() + task.request_key().size() +
          rt.job.spec().teacher().size() + rt.job.spec().model().size() +
          rt.job.spec().params().ByteSizeLong() +
          rt.job.spec().json_schema().size() +
          rt.job.spec().json_schema_name().size() +
          task.prompt_params().ByteSizeLong() + 96);
      if (response.tasks_size() > 0 &&
          lease_bytes + task_bytes > options_.max_lease_bytes) {
        queue.PushFront(std::move(task));
        lease_full = true;
        break;
      }
      int64_t reserve = 0;
      if (rt.job.spec().budget_usd() > 0) {
        const double estimate = MaxTaskCostLocked(rt, *prompt);
        reserve = NanoUsdUp(estimate);
        const SpendGuard::Verdict verdict = spend_.Check(rt.job, reserve);
        if (verdict != SpendGuard::Verdict::kFits) {
          // The next task could take spend past the budget. While requests
          // are in flight their real cost may leave room: wait for them.
          // Then pause, with the spend final.
          queue.PushFront(std::move(task));
          // A report of the job being written carries the job's record:
          // the pause waits for the next lease after it.
          if (verdict == SpendGuard::Verdict::kPause && rt.committing == 0) {
            v1::Job paused = rt.job;
            PausedAtBudget(paused, estimate);
            RETURN_IF_ERROR(StoreJobLocked(rt, std::move(paused)));
          }
          break;
        }
      }
      lease_bytes += task_bytes;
      const int64_t lease_id = scheduler_.NextLeaseId();
      v1::LeasedTask* out = response.add_tasks();
      out->set_job_id(job_id);
      out->set_prompt_seq(task.prompt_seq());
      out->set_sample(task.sample());
      out->set_request_key(task.request_key());
      out->set_teacher(rt.job.spec().teacher());
      FillTaskRequest(rt.job.spec(), *prompt, task.sample(), out);
      out->set_lease_id(lease_id);
      AddLeaseLocked(rt, lease_id, request.worker_id(), std::move(task),
                     reserve);
    }
  }
  return response;
}

void Coordinator::ReleaseWaitersLocked(const std::string& request_key) {
  std::vector<v1::Task> waiters = scheduler_.TakeWaiters(request_key);
  if (waiters.empty()) return;
  absl::StatusOr<bool> answered = store_.HasAnswer(request_key);
  for (v1::Task& task : waiters) {
    auto job = jobs_.find(task.job_id());
    if (job == jobs_.end() || IsTerminal(job->second.job.state())) continue;
    if (answered.ok() && *answered &&
        CompleteFromCacheLocked(job->second, task).ok()) {
      continue;
    }
    scheduler_.Queue(task.job_id()).PushBack(std::move(task));
  }
}

void Coordinator::ReturnLeaseLocked(int64_t lease_id) {
  std::optional<Scheduler::Lease> lease = EndLeaseLocked(lease_id);
  if (!lease) return;
  const std::string key = lease->task.request_key();
  auto job = jobs_.find(lease->task.job_id());
  if (job != jobs_.end() && (job->second.job.state() == v1::JOB_STATE_RUNNING ||
                             job->second.job.state() == v1::JOB_STATE_PAUSED)) {
    scheduler_.Queue(lease->task.job_id()).PushBack(std::move(lease->task));
  }
  ReleaseWaitersLocked(key);
}

void Coordinator::ExpireLeases() {
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
}

void Coordinator::ExpireLeasesLocked() {
  for (int64_t id : scheduler_.ExpiredBy(clock_.Now())) {
    const Scheduler::Lease* lease = scheduler_.FindLease(id);
    auto job = jobs_.find(lease->task.job_id());
    metrics::LeaseExpired(job == jobs_.end() ? "" : job->second.job.spec().teacher());
    ReturnLeaseLocked(id);
  }
}

}  // namespace distillery
