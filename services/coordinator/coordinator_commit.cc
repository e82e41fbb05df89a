// The Coordinator's commit path: a worker's report becomes one atomic store
// batch (tasks settled, answers stored once, counters, the job's end), then
// its in-memory effects (job records, leases ended, waiters released,
// metrics). Also answers from the cache, and a failed job's reason. Where a
// result commits: CommitResultLocked.
#include <map>
#include <optional>

#include <spdlog/spdlog.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "common/base/status_macros.h"
#include "common/job/job_state.h"
#include "common/job/task_request.h"
#include "common/metrics/metrics.h"
#include "services/coordinator/coordinator.h"
#include "services/coordinator/job_transitions.h"

namespace distillery {
namespace {

// A dead letter's error without the worker's " (after N attempts)", so that
// one cause counts once however many attempts each task took.
std::string FailureCause(const std::string& error) {
  const size_t at = error.rfind(" (after ");
  if (at != std::string::npos && absl::EndsWith(error, " attempts)")) {
    return error.substr(0, at);
  }
  return error;
}

// A --json-schema job's answer given as a call of the schema's forced tool
// (how Anthropic answers it): the call's arguments become the content, and
// the call is dropped. Any other answer is left as it is.
void StructuredContent(const std::string& schema_name, v1::Answer* answer) {
  if (answer->tool_calls_json().empty()) return;
  for (char c : answer->content()) {
    if (c != ' ' && c != '\n' && c != '\t' && c != '\r') return;
  }
  const nlohmann::json calls =
      nlohmann::json::parse(answer->tool_calls_json(), nullptr, false);
  if (!calls.is_array() || calls.size() != 1 || !calls[0].is_object()) return;
  const nlohmann::json& function = calls[0].value("function", nlohmann::json());
  if (!function.is_object() ||
      function.value("name", std::string()) !=
          (schema_name.empty() ? std::string("schema") : schema_name)) {
    return;
  }
  answer->set_content(function.value("arguments", std::string()));
  answer->clear_tool_calls_json();
}

}  // namespace

absl::Status Coordinator::CompleteFromCacheLocked(JobRuntime& rt,
                                                  v1::Task task) {
  if (rt.committing > 0) {
    // A report of this job is being written, with the job's record: a
    // record written now would be overwritten by it (or overwrite it).
    rt.after_commit.push_back(std::move(task));
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(std::optional<v1::Task> stored,
                   store_.GetTask(task.job_id(), task.prompt_seq(),
                                  task.sample()));
  if (!stored || stored->state() != v1::TASK_STATE_PENDING) {
    return absl::OkStatus();  // settled meanwhile: nothing to count twice
  }
  ASSIGN_OR_RETURN(std::optional<v1::Answer> answer,
                   store_.GetAnswer(task.request_key()));
  ReportCommit commit;
  v1::Job& job = commit.jobs.try_emplace(rt.job.id(), rt.job).first->second;
  task = std::move(*stored);
  task.set_state(v1::TASK_STATE_DONE);
  task.set_from_cache(true);
  v1::JobCounters* c = job.mutable_counters();
  c->set_tasks_done(c->tasks_done() + 1);
  c->set_cache_hits(c->cache_hits() + 1);
  if (answer && !answer->duplicate_of().empty()) {
    // The cached answer repeats an earlier one; export leaves it out, so
    // it counts as a duplicate here too.
    task.set_duplicate(true);
    c->set_duplicate_answers(c->duplicate_answers() + 1);
  }
  const TaskId id{task.job_id(), task.prompt_seq(), task.sample()};
  const std::string key = task.request_key();
  commit.tasks[id] = 0;
  commit.batch.tasks.push_back(std::move(task));
  if (!job.spec().verify().empty()) {
    ASSIGN_OR_RETURN(const std::string text,
                     AnswerTextLocked(key, commit.answers));
    RETURN_IF_ERROR(CheckAnswerLocked(rt, job, 0, text, &commit));
  }
  MaybeFinishLocked(job, commit.batch);
  commit.settled.emplace_back(job.id(), "cache_hit");
  return FinishReportLocked(commit);
}

void Coordinator::MaybeFinishLocked(v1::Job& job, const StoreBatch& pending) {
  // Called at once, under the lock this function holds.
  auto reason = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return DeadLetterReasonLocked(job, pending);
  };
  FinishIfSettled(job, clock_.WallMillis(), reason);
}

std::string Coordinator::DeadLetterReasonLocked(const v1::Job& job,
                                                const StoreBatch& pending) {
  // Read once, when a job fails: its dead letters as stored, overlaid with
  // those of the batch about to be written.
  std::map<std::pair<int64_t, int>, std::string> errors;
  absl::Status s = store_.ScanTasks(job.id(), 0, 0, [&](const v1::Task& t) {
    if (t.state() == v1::TASK_STATE_FAILED) {
      errors[{t.prompt_seq(), t.sample()}] = t.last_error();
    }
    return true;
  });
  for (const v1::Task& t : pending.tasks) {
    if (t.job_id() == job.id() && t.state() == v1::TASK_STATE_FAILED) {
      errors[{t.prompt_seq(), t.sample()}] = t.last_error();
    }
  }
  std::map<std::string, int64_t> causes;
  for (const auto& [ref, error] : errors) ++causes[FailureCause(error)];
  std::string cause;
  int64_t most = 0;
  for (const auto& [text, n] : causes) {
    if (n > most) {
      cause = text;
      most = n;
    }
  }
  std::string reason = absl::StrCat("all ", job.counters().tasks_total(),
                                    " tasks failed");
  if (!s.ok()) {
    absl::StrAppend(&reason, " (reading their errors failed: ", s.message(),
                    ")");
  } else if (most > 0) {
    absl::StrAppend(&reason, "; most common error (", most, " of ",
                    errors.size(), "): ", cause);
  }
  return reason;
}

absl::StatusOr<v1::ReportResponse> Coordinator::Report(
    const v1::ReportRequest& request) {
  // Reports commit one at a time, in order; the store write runs outside
  // mu_, so that leases are handed out while it is written. Meanwhile the
  // report's keys stay in flight (a task with the same key waits for the
  // answer), its jobs' records are its own (answers from the cache wait)
  // and its spend is reserved; the effects follow once it is stored.
  absl::MutexLock commit_lock(&commit_mu_);
  v1::ReportResponse response;
  ReportCommit commit;
  {
    absl::MutexLock lock(&mu_);
    auto w = workers_.find(request.worker_id());
    if (w == workers_.end()) {
      // A worker from before a restart: it registers again, announcing what
      // it holds (these results too), and then reports. Ignoring the results
      // instead would lose answers that were paid for.
      metrics::RefusedResult("unknown_worker");
      return absl::FailedPreconditionError(
          absl::StrCat("unknown worker '", request.worker_id(),
                       "'; register again"));
    }
    w->second.last_seen = clock_.Now();
    RETURN_IF_ERROR(
        BuildReportLocked(request, w->second.name, &commit, &response));
    SealCommitLocked(commit);
    BeginWriteLocked(commit);
  }
  const absl::Status written =
      commit.batch.empty() ? absl::OkStatus() : store_.Apply(commit.batch);
  {
    absl::MutexLock lock(&mu_);
    EndWriteLocked(commit);
    if (written.ok()) CommitEffectsLocked(commit);
    CompleteDeferredLocked(commit);
    RETURN_IF_ERROR(written);
    if (commit.refused > 0) {
      spdlog::warn("{} results from worker {} ignored: it never held their "
                   "tasks ({})",
                   commit.refused, request.worker_id(),
                   workers_.count(request.worker_id()) > 0
                       ? "a known worker"
                       : "an unknown worker, e.g. from before a restart");
    }
  }
  metrics::ReportedResults(response.accepted(), response.ignored());
  return response;
}

absl::Status Coordinator::BuildReportLocked(const v1::ReportRequest& request,
                                            const std::string& worker_name,
                                            ReportCommit* commit,
                                            v1::ReportResponse* response) {
  for (const v1::TaskResult& result : request.results()) {
    bool ignored = false;
    RETURN_IF_ERROR(CommitResultLocked(result, request.worker_id(),
                                       worker_name, commit, &ignored));
    if (ignored) {
      response->set_ignored(response->ignored() + 1);
    } else {
      response->set_accepted(response->accepted() + 1);
    }
  }
  return absl::OkStatus();
}

void Coordinator::BeginWriteLocked(ReportCommit& commit) {
  for (const std::string& key : commit.release_keys) {
    scheduler_.Committing(key);
  }
  for (const auto& [job_id, job] : commit.jobs) {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) continue;
    ++it->second.committing;
    const double added =
        job.counters().cost_usd() - it->second.job.counters().cost_usd();
    if (added > 0 && job.spec().budget_usd() > 0) {
      const int64_t nano = NanoUsdUp(added);
      spend_.Reserve(job_id, nano);
      commit.spend_in_write[job_id] = nano;
    }
  }
}

void Coordinator::EndWriteLocked(ReportCommit& commit) {
  for (const std::string& key : commit.release_keys) {
    scheduler_.CommitWritten(key);
  }
  for (const auto& [job_id, nano] : commit.spend_in_write) {
    spend_.Release(job_id, nano);
  }
  for (const auto& [job_id, job] : commit.jobs) {
    auto it = jobs_.find(job_id);
    if (it != jobs_.end()) --it->second.committing;
  }
}

void Coordinator::CompleteDeferredLocked(const ReportCommit& commit) {
  for (const auto& [job_id, job] : commit.jobs) {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end() || it->second.committing > 0) continue;
    JobRuntime& rt = it->second;
    std::vector<v1::Task> waiting;
    waiting.swap(rt.after_commit);
    for (v1::Task& task : waiting) {
      if (IsTerminal(rt.job.state())) break;
      v1::Task copy = task;
      if (absl::Status s = CompleteFromCacheLocked(rt, std::move(copy));
          !s.ok()) {
        // Still pending: leased again, found answered then.
        spdlog::error("job {}: answering task {}/{} from the cache failed: {}",
                      job_id, task.prompt_seq(), task.sample(),
                      std::string(s.message()));
        scheduler_.Queue(job_id).PushBack(std::move(task));
      }
    }
  }
}

bool Coordinator::HeldByLocked(const v1::TaskResult& result,
                               const std::string& worker_id) {
  return scheduler_.HeldBy(
      TaskId{result.job_id(), result.prompt_seq(), result.sample()},
      result.lease_id(), result.request_key(), worker_id);
}

absl::Status Coordinator::FinishReportLocked(ReportCommit& commit) {
  SealCommitLocked(commit);
  if (!commit.batch.empty()) RETURN_IF_ERROR(store_.Apply(commit.batch));
  CommitEffectsLocked(commit);
  return absl::OkStatus();
}

void Coordinator::SealCommitLocked(ReportCommit& commit) {
  for (auto& [job_id, job] : commit.jobs) commit.batch.jobs.push_back(job);
}

void Coordinator::CommitEffectsLocked(ReportCommit& commit) {
  // Settled tasks are never handed out again (a queued copy is skipped),
  // and need no holders any more (a later result is ignored as late
  // anyway); forgotten only now that the settling is stored.
  for (const auto& [id, index] : commit.tasks) {
    const v1::Task& task = commit.batch.tasks[index];
    if (task.state() == v1::TASK_STATE_DONE ||
        task.state() == v1::TASK_STATE_FAILED) {
      scheduler_.Settled(task);
      scheduler_.holders().Forget(id);
    }
  }
  const int64_t now_ms = clock_.WallMillis();
  for (auto& [job_id, job] : commit.jobs) {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) continue;
    LogStateChange(it->second.job, job);
    it->second.job = std::move(job);
  }
  // Adaptive sampling's next samples, stored now: queued for leasing (a
  // job not running finds them in the store when it runs again).
  for (size_t index : commit.spawned) {
    const v1::Task& task = commit.batch.tasks[index];
    auto it = jobs_.find(task.job_id());
    if (it != jobs_.end() && it->second.job.state() == v1::JOB_STATE_RUNNING) {
      scheduler_.Queue(task.job_id()).Add(task);
    }
  }
  for (const auto& [job_id, result] : commit.checked) {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) continue;
    const v1::JobSpec& spec = it->second.job.spec();
    metrics::AnswerChecked(spec.teacher(), spec.model(), result);
  }
  for (const auto& [job_id, outcome] : commit.settled) {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) continue;
    const v1::JobSpec& spec = it->second.job.spec();
    metrics::TaskSettled(spec.teacher(), spec.model(), outcome);
    it->second.last_progress_ms = now_ms;
  }
  if (!commit.jobs.empty()) ChangedLocked();
  for (const std::string& key : commit.release_keys) ReleaseWaitersLocked(key);
}

absl::Status Coordinator::CommitResultLocked(const v1::TaskResult& result,
                                             const std::string& worker_id,
                                             const std::string& worker_name,
                                             ReportCommit* commit,
                                             bool* ignored) {
  const std::string& key = result.request_key();
  // Only a worker the task was leased to may settle it: the worker token is
  // shared by all workers, and would otherwise let its holder write answers
  // into any pending task. Checked before anything else, so a refused
  // result does not end the real holder's lease either.
  if (!HeldByLocked(result, worker_id)) {
    metrics::RefusedResult(workers_.count(worker_id) > 0 ? "not_holder"
                                                         : "unknown_worker");
    ++commit->refused;
    *ignored = true;
    return absl::OkStatus();
  }
  // The lease ends now, whatever the result; a late report (lease expired
  // and perhaps re-leased) is still used below if the task is not done.
  bool lease_current = false;
  if (const Scheduler::Lease* lease = scheduler_.FindLease(result.lease_id());
      lease != nullptr && lease->task.request_key() == key &&
      lease->task.job_id() == result.job_id()) {
    lease_current = true;
    EndLeaseLocked(result.lease_id());
  }
  auto job_it = jobs_.find(result.job_id());
  const auto task_ref =
      std::make_tuple(result.job_id(), result.prompt_seq(), result.sample());
  std::optional<v1::Task> stored;
  if (auto in_batch = commit->tasks.find(task_ref);
      in_batch != commit->tasks.end()) {
    stored = commit->batch.tasks[in_batch->second];  // reported twice
  } else {
    ASSIGN_OR_RETURN(stored, store_.GetTask(result.job_id(),
                                            result.prompt_seq(),
                                            result.sample()));
  }
  if (job_it == jobs_.end() || !stored || stored->request_key() != key ||
      stored->state() != v1::TASK_STATE_PENDING) {
    *ignored = true;
    if (lease_current) commit->release_keys.push_back(key);
    return absl::OkStatus();
  }
  JobRuntime& rt = job_it->second;
  v1::Task task = std::move(*stored);
  task.set_attempts(task.attempts() + result.attempts());
  if (result.failure() == v1::FAILURE_CLASS_ABANDONED) {
    // Given back unattempted: nothing to store. Without a current lease,
    // expiry has already returned it (and it may be leased again), so there
    // is nothing to do.
    if (lease_current && rt.job.state() == v1::JOB_STATE_RUNNING) {
      scheduler_.Queue(task.job_id()).PushBack(std::move(task));
    }
    commit->release_keys.push_back(key);
    return absl::OkStatus();
  }
  // The job as this report has left it so far (counters add up across its
  // results); stored once, with the batch.
  v1::Job& job =
      commit->jobs.try_emplace(result.job_id(), rt.job).first->second;
  v1::JobCounters* c = job.mutable_counters();
  StoreBatch& batch = commit->batch;
  const char* settled = nullptr;  // the metrics outcome, once committed
  // The text --verify checks: the answer as stored and exported.
  std::optional<std::string> check_text;
  const bool checks = !job.spec().verify().empty();

  // A --json-schema job's answer is checked before anything counts it as
  // answered: one that does not match is asked again (or dead-lettered).
  v1::TaskResult structured;
  const v1::TaskResult* effective = &result;
  if (!job.spec().json_schema().empty() &&
      result.failure() == v1::FAILURE_CLASS_UNSPECIFIED) {
    structured = result;
    ASSIGN_OR_RETURN(const bool keep,
                     CheckSchemaLocked(rt, job, task, lease_current,
                                       &structured, commit));
    if (!keep) return absl::OkStatus();
    effective = &structured;
  }
  const v1::TaskResult& r = *effective;

  if (r.failure() == v1::FAILURE_CLASS_UNSPECIFIED) {
    ASSIGN_OR_RETURN(const bool answered,
                     answer_index_.Answered(key, commit->answers));
    const double cost = CountSpendLocked(r.answer(), &job);
    settled = "answered";
    if (answered) {
      // Another task with the same key won the race; keep the first answer.
      task.set_from_cache(true);
      if (checks) {
        ASSIGN_OR_RETURN(check_text, AnswerTextLocked(key, commit->answers));
      }
    } else {
      if (checks) check_text = r.answer().content();
      v1::Answer answer = r.answer();
      answer.set_cost_usd(cost);
      answer.set_request_key(key);
      answer.set_teacher(job.spec().teacher());
      answer.set_model(job.spec().model());
      *answer.mutable_params() = TaskParams(job.spec(), task.prompt_params(), task.sample());
      answer.set_sample(task.sample());
      answer.set_worker(worker_name);
      if (answer.received_ms() == 0) answer.set_received_ms(clock_.WallMillis());
      ASSIGN_OR_RETURN(const AnswerIndex::Kind kind,
                       answer_index_.Add(std::move(answer), task,
                                         &commit->answers));
      if (kind == AnswerIndex::Kind::kDuplicate) {
        task.set_duplicate(true);
        c->set_duplicate_answers(c->duplicate_answers() + 1);
        settled = "duplicate";
      } else if (kind == AnswerIndex::Kind::kNearDuplicate) {
        c->set_near_duplicate_answers(c->near_duplicate_answers() + 1);
      }
    }
    task.set_state(v1::TASK_STATE_DONE);
    task.clear_last_error();
    c->set_tasks_done(c->tasks_done() + 1);
  } else if (r.failure() == v1::FAILURE_CLASS_TEACHER_DOWN) {
    // No request to this teacher can succeed (bad key, no quota): pause the
    // teacher for the whole cluster rather than burn through its tasks. The
    // task waits, pending, for `distillery resume-teacher`.
    budget_.Pause(job.spec().teacher(), r.error());
    task.set_last_error(r.error());
    if (lease_current && rt.job.state() == v1::JOB_STATE_RUNNING) {
      scheduler_.Queue(task.job_id()).PushBack(task);
    }
  } else {
    task.set_state(v1::TASK_STATE_FAILED);
    task.set_last_error(r.error());
    c->set_tasks_failed(c->tasks_failed() + 1);
    settled = "failed";
  }
  const size_t index = batch.tasks.size();
  commit->tasks[task_ref] = index;
  batch.tasks.push_back(std::move(task));
  if (check_text) {
    RETURN_IF_ERROR(CheckAnswerLocked(rt, job, index, *check_text, commit));
  }
  MaybeFinishLocked(job, batch);
  if (settled != nullptr) commit->settled.emplace_back(r.job_id(), settled);
  commit->release_keys.push_back(key);
  return absl::OkStatus();
}

absl::StatusOr<bool> Coordinator::CheckSchemaLocked(JobRuntime& rt,
                                                    v1::Job& job,
                                                    v1::Task& task,
                                                    bool lease_current,
                                                    v1::TaskResult* result,
                                                    ReportCommit* commit) {
  const v1::JobSpec& spec = job.spec();
  if (rt.schema == nullptr) {
    // Compiled at submission too; a failure here means the spec was
    // changed in the store.
    ASSIGN_OR_RETURN(std::unique_ptr<JsonSchemaValidator> schema,
                     JsonSchemaValidator::Create(spec.json_schema()));
    rt.schema = std::move(schema);
  }
  v1::Answer* answer = result->mutable_answer();
  // Anthropic answers a forced tool: the call's input is the answer.
  StructuredContent(spec.json_schema_name(), answer);
  const absl::Status valid = rt.schema->Validate(answer->content());
  if (valid.ok()) return true;
  // Paid for, though thrown away: it counts.
  CountSpendLocked(*answer, &job);
  v1::JobCounters* c = job.mutable_counters();
  c->set_schema_failures(c->schema_failures() + 1);
  metrics::SchemaFailure(spec.teacher(), spec.model());
  const TeacherProfile* profile = ProfileFor(spec.teacher());
  const int max_attempts = profile != nullptr ? profile->max_attempts : 5;
  const std::string error = std::string(valid.message());
  if (task.attempts() >= max_attempts) {
    // Dead-lettered below, like any failure, with the validation error.
    result->clear_answer();
    result->set_failure(v1::FAILURE_CLASS_PERMANENT);
    result->set_error(absl::StrCat(error, " (after ", task.attempts(),
                                   " attempts)"));
    return true;
  }
  // Asked again: a new lease, a new request (the answer is not stored, so
  // its key has none).
  task.set_last_error(error);
  const auto task_ref =
      std::make_tuple(task.job_id(), task.prompt_seq(), task.sample());
  commit->tasks[task_ref] = commit->batch.tasks.size();
  commit->batch.tasks.push_back(task);
  if (lease_current && (rt.job.state() == v1::JOB_STATE_RUNNING ||
                        rt.job.state() == v1::JOB_STATE_PAUSED)) {
    SendAgainLocked(rt, std::move(task));
  }
  commit->release_keys.push_back(result->request_key());
  return false;
}

double Coordinator::CountSpendLocked(const v1::Answer& answer, v1::Job* job) {
  v1::JobCounters* c = job->mutable_counters();
  // Choices after the first of one request (use_n) were billed with it.
  if (answer.choice_index() == 0) {
    c->set_teacher_requests(c->teacher_requests() + 1);
  }
  const v1::Usage& u = answer.usage();
  c->set_prompt_tokens(c->prompt_tokens() + u.prompt_tokens());
  c->set_completion_tokens(c->completion_tokens() + u.completion_tokens());
  c->set_reasoning_tokens(c->reasoning_tokens() + u.reasoning_tokens());
  c->set_cached_tokens(c->cached_tokens() + u.cached_tokens());
  // An answer from a provider's batch costs the batch price.
  const bool batched = !answer.provider_batch_id().empty();
  if (batched && answer.choice_index() == 0) {
    c->set_batch_answers(c->batch_answers() + 1);
  }
  double cost = 0;
  if (const TeacherProfile* profile = ProfileFor(job->spec().teacher())) {
    cost = CostUsd(*profile, job->spec().model(), u.prompt_tokens(),
                   u.cached_tokens(), u.completion_tokens(), batched);
    c->set_cost_usd(c->cost_usd() + cost);
  }
  return cost;
}

}  // namespace distillery
