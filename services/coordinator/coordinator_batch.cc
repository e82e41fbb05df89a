// The Coordinator's batch path: jobs in --mode batch or auto have their
// tasks gathered into batch records, workers do each batch's steps, and the
// results commit like online answers. Where a batch is formed
// (FormBatchLocked), a step is handed out (LeaseBatchStep, DueStepLocked),
// and a step's outcome lands (ReportBatchStep).
//
// Exactly once: a batch's record, with its tasks, is stored before any
// worker is sent to create it, and every create is counted in the record
// before it is handed out; a create after one that may have reached the
// provider first looks for the batch by its tag (Find). A batch's tasks are
// leased to the batch itself, which never expires, so they are never sent
// online or in a second batch while it is open. Results commit with the
// record's settled flags in one store batch: a crash mid-way commits each
// result once.
#include <algorithm>
#include <chrono>
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

namespace distillery {
namespace {

// What a batch's custom_id is: unique within its job (so within the batch),
// and within ^[a-zA-Z0-9_-]{1,64}$ whatever the user's prompt ids are.
std::string CustomId(int64_t seq, int sample) {
  return absl::StrCat("t", seq, "-", sample);
}

bool Open(v1::BatchState state) {
  return state == v1::BATCH_STATE_CREATING || state == v1::BATCH_STATE_OPEN ||
         state == v1::BATCH_STATE_CANCELLING;
}

}  // namespace

bool Coordinator::OnlineNowLocked(const JobRuntime& rt) {
  const v1::JobSpec& spec = rt.job.spec();
  if (spec.mode() == v1::JOB_MODE_ONLINE) return true;
  if (line_builders_.count(spec.teacher()) == 0) return true;
  if (spec.mode() != v1::JOB_MODE_AUTO || spec.deadline_ms() <= 0) return false;
  // The last part of the window is kept for online calls: what batches have
  // not delivered by then is cancelled and sent online.
  const TeacherProfile* profile = ProfileFor(spec.teacher());
  const int64_t poll = profile ? profile->batch_poll_interval_ms : 30'000;
  const int64_t window = spec.deadline_ms() - rt.job.created_ms();
  const int64_t cutoff =
      spec.deadline_ms() - std::max<int64_t>(2 * poll, window / 5);
  const int64_t now = clock_.WallMillis();
  if (now >= cutoff) return true;
  // A new batch that is not expected to end by the cutoff goes online.
  const BatchBook::TeacherBatches& t = batches_.Teacher(spec.teacher());
  return t.observed > 0 &&
         now + static_cast<int64_t>(t.mean_duration_s * 1000) > cutoff;
}

absl::StatusOr<std::optional<v1::Task>> Coordinator::NextOnlineTaskLocked(
    JobRuntime& rt) {
  if (!rt.online_tasks.empty()) {
    v1::Task task = std::move(rt.online_tasks.front());
    rt.online_tasks.pop_front();
    return std::optional<v1::Task>(std::move(task));
  }
  if (!OnlineNowLocked(rt)) return std::optional<v1::Task>();
  return NextTaskLocked(rt);
}

void Coordinator::SendAgainLocked(JobRuntime& rt, v1::Task task) {
  if (rt.job.spec().mode() == v1::JOB_MODE_AUTO) {
    rt.online_tasks.push_back(std::move(task));  // auto: the rest goes online
  } else {
    scheduler_.Queue(rt.job.id()).PushBack(std::move(task));
  }
}

absl::Status Coordinator::StoreBatchRecordLocked(OpenBatch& batch) {
  StoreBatch writes;
  writes.batches.push_back(batch.record);
  return store_.Apply(writes);
}

absl::Status Coordinator::RecoverBatchesLocked() {
  ASSIGN_OR_RETURN(std::vector<v1::BatchRecord> records, store_.ListBatches());
  int open = 0;
  for (v1::BatchRecord& record : records) {
    const std::string job_id = record.job_id();
    if (!Open(record.summary().state())) {
      batches_.AddEnded(job_id, record.summary(), record.teacher());
      continue;
    }
    auto job = jobs_.find(job_id);
    OpenBatch& batch = batches_.Add(std::move(record));
    ++open;
    if (batch.record.create_attempts() > 0 &&
        batch.record.summary().state() == v1::BATCH_STATE_CREATING) {
      // A create asked for before the restart may still be under way.
      batch.not_before = clock_.Now() + options_.lease_duration;
    }
    const bool live = job != jobs_.end() &&
                      (job->second.job.state() == v1::JOB_STATE_RUNNING ||
                       job->second.job.state() == v1::JOB_STATE_PAUSED);
    if (!live) {
      batch.record.set_cancel_wanted(true);
      continue;
    }
    JobRuntime& rt = job->second;
    const int64_t reserve =
        batch.record.tasks_size() > 0
            ? batch.record.estimated_nano_usd() / batch.record.tasks_size()
            : 0;
    for (v1::BatchTask& bt : *batch.record.mutable_tasks()) {
      if (bt.settled()) continue;
      ASSIGN_OR_RETURN(std::optional<v1::Task> task,
                       store_.GetTask(job_id, bt.prompt_seq(), bt.sample()));
      if (!task || task->state() != v1::TASK_STATE_PENDING ||
          task->request_key() != bt.request_key() ||
          scheduler_.InFlight(bt.request_key())) {
        bt.set_settled(true);  // settled otherwise: nothing to wait for
        continue;
      }
      const int64_t lease_id = scheduler_.NextLeaseId();
      AddLeaseLocked(rt, lease_id, BatchBook::Holder(batch.record.summary().id()),
                     std::move(*task), reserve);
      scheduler_.FindLease(lease_id)->deadline = TimePoint::max();
      batch.leases[bt.custom_id()] = lease_id;
    }
  }
  if (open > 0) spdlog::info("recovered {} open batches", open);
  return absl::OkStatus();
}

absl::StatusOr<OpenBatch*> Coordinator::FormBatchLocked(JobRuntime& rt) {
  const v1::JobSpec& spec = rt.job.spec();
  auto builder = line_builders_.find(spec.teacher());
  const TeacherProfile* profile = ProfileFor(spec.teacher());
  if (builder == line_builders_.end() || profile == nullptr) return nullptr;
  const BatchApi& api = *builder->second;
  BatchLimits limits = api.DefaultLimits();
  if (profile->batch_max_requests > 0) {
    limits.max_requests =
        std::min(limits.max_requests, profile->batch_max_requests);
  }
  if (profile->batch_max_bytes > 0) {
    limits.max_bytes = std::min(limits.max_bytes, profile->batch_max_bytes);
  }
  // A create step carries the batch's requests in one gRPC message.
  limits.max_bytes = std::min<int64_t>(
      limits.max_bytes, static_cast<int64_t>(options_.max_lease_bytes / 10 * 9));

  ASSIGN_OR_RETURN(const int64_t number, store_.NextSequence("batch"));
  v1::BatchRecord record;
  const std::string id = absl::StrCat(rt.job.id(), "-b", number);
  record.mutable_summary()->set_id(id);
  record.mutable_summary()->set_state(v1::BATCH_STATE_CREATING);
  record.mutable_summary()->set_created_ms(clock_.WallMillis());
  record.set_job_id(rt.job.id());
  record.set_teacher(spec.teacher());
  record.set_model(spec.model());
  record.set_tag(absl::StrCat("distillery-", id, "-",
                              absl::Hex(worker_id_random_(), absl::kZeroPad8)));
  const std::string holder = BatchBook::Holder(id);
  std::vector<int64_t> leases;
  std::optional<v1::Prompt> prompt;  // shared by a prompt's samples
  int64_t prompt_seq = -1;
  int64_t bytes = 0;
  int64_t reserved = 0;
  TaskQueue& queue = scheduler_.Queue(rt.job.id());
  // Tasks taken into this batch go back where they were if it cannot be
  // stored.
  auto undo = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (auto it = leases.rbegin(); it != leases.rend(); ++it) {
      if (std::optional<Scheduler::Lease> l = EndLeaseLocked(*it)) {
        queue.PushFront(std::move(l->task));
      }
    }
  };
  while (record.tasks_size() < limits.max_requests) {
    absl::StatusOr<std::optional<v1::Task>> next = NextTaskLocked(rt);
    if (!next.ok()) {
      undo();
      return next.status();
    }
    if (!*next) break;
    v1::Task task = std::move(**next);
    absl::StatusOr<bool> answered = store_.HasAnswer(task.request_key());
    if (!answered.ok()) {
      undo();
      return LeaseReadFailed(rt, std::move(task), answered.status());
    }
    if (*answered) {
      if (absl::Status s = CompleteFromCacheLocked(rt, std::move(task));
          !s.ok()) {
        undo();
        return s;
      }
      continue;
    }
    if (scheduler_.InFlight(task.request_key())) {
      scheduler_.Wait(std::move(task));
      continue;
    }
    if (spec.mode() == v1::JOB_MODE_AUTO && task.attempts() > 0) {
      rt.online_tasks.push_back(std::move(task));  // auto: retries go online
      continue;
    }
    if (!prompt || prompt_seq != task.prompt_seq()) {
      absl::StatusOr<std::optional<v1::Prompt>> read =
          store_.GetPrompt(rt.job.id(), task.prompt_seq());
      if (!read.ok() || !*read) {
        undo();
        return LeaseReadFailed(
            rt, std::move(task),
            read.ok() ? absl::DataLossError("prompt missing") : read.status());
      }
      prompt = std::move(**read);
      prompt_seq = task.prompt_seq();
    }
    const std::string custom_id = CustomId(task.prompt_seq(), task.sample());
    v1::LeasedTask request;
    FillTaskRequest(spec, *prompt, task.sample(), &request);
    absl::StatusOr<std::string> line =
        api.BuildLine(custom_id, ToTeacherRequest(request));
    if (!line.ok()) {
      // The API cannot carry it: the online call fails it with the reason.
      rt.online_tasks.push_back(std::move(task));
      continue;
    }
    const int64_t line_bytes = static_cast<int64_t>(line->size()) + 1;
    if (record.tasks_size() > 0 && bytes + line_bytes > limits.max_bytes) {
      queue.PushFront(std::move(task));
      break;
    }
    int64_t reserve = 0;
    if (spec.budget_usd() > 0) {
      int64_t prompt_bytes = 0;
      for (const v1::ChatMessage& m : prompt->messages()) {
        prompt_bytes += m.content().size();
      }
      const double estimate = MaxRequestCostUsd(
          *profile, spec.model(), prompt_bytes, prompt->messages_size(),
          prompt->params().max_tokens() > 0 ? prompt->params().max_tokens()
                                            : spec.params().max_tokens(),
          /*batch=*/true);
      reserve = NanoUsdUp(estimate);
      const SpendGuard::Verdict verdict = spend_.Check(rt.job, reserve);
      if (verdict != SpendGuard::Verdict::kFits) {
        queue.PushFront(std::move(task));
        if (verdict == SpendGuard::Verdict::kPause && record.tasks_size() == 0 &&
            batches_.OpenTasksOf(rt.job.id()) == 0) {
          v1::Job paused = rt.job;
          PausedAtBudget(paused, estimate);
          RETURN_IF_ERROR(StoreJobLocked(rt, std::move(paused)));
        }
        break;
      }
    }
    bytes += line_bytes;
    reserved += reserve;
    v1::BatchTask* bt = record.add_tasks();
    bt->set_prompt_seq(task.prompt_seq());
    bt->set_sample(task.sample());
    bt->set_request_key(task.request_key());
    bt->set_custom_id(custom_id);
    const int64_t lease_id = scheduler_.NextLeaseId();
    AddLeaseLocked(rt, lease_id, holder, std::move(task), reserve);
    scheduler_.FindLease(lease_id)->deadline = TimePoint::max();
    leases.push_back(lease_id);
  }
  if (record.tasks_size() == 0) return nullptr;
  record.mutable_summary()->set_tasks(record.tasks_size());
  record.set_bytes(bytes);
  record.set_estimated_nano_usd(reserved);
  StoreBatch writes;
  writes.batches.push_back(record);
  if (absl::Status s = store_.Apply(writes); !s.ok()) {
    undo();
    metrics::StoreError("batch_record");
    return s;
  }
  OpenBatch& batch = batches_.Add(std::move(record));
  for (size_t i = 0; i < leases.size(); ++i) {
    batch.leases[batch.record.tasks(static_cast<int>(i)).custom_id()] =
        leases[i];
  }
  spdlog::info("job {}: batch {} formed: {} requests, {} bytes", rt.job.id(),
               id, batch.record.tasks_size(), bytes);
  ChangedLocked();
  return &batch;
}

absl::StatusOr<bool> Coordinator::DueStepLocked(OpenBatch& batch,
                                                v1::BatchStep* step) {
  const TimePoint now = clock_.Now();
  const int64_t now_ms = clock_.WallMillis();
  v1::BatchRecord& record = batch.record;
  if (batch.step_lease != 0 && batch.step_deadline > now) return false;
  batches_.EndStep(batch);  // a lapsed step is free for another worker
  auto job = jobs_.find(record.job_id());
  const bool job_live =
      job != jobs_.end() && (job->second.job.state() == v1::JOB_STATE_RUNNING ||
                             job->second.job.state() == v1::JOB_STATE_PAUSED);
  // An auto job past its cutoff takes what its batches delivered and sends
  // the rest online.
  if (job_live && job->second.job.spec().mode() == v1::JOB_MODE_AUTO &&
      OnlineNowLocked(job->second) && !record.cancel_wanted()) {
    record.set_cancel_wanted(true);
    RETURN_IF_ERROR(StoreBatchRecordLocked(batch));
  }
  v1::BatchStepKind kind = v1::BATCH_STEP_UNSPECIFIED;
  switch (record.summary().state()) {
    case v1::BATCH_STATE_CREATING: {
      if (record.cancel_wanted() && record.create_attempts() > 0) {
        // Its create's outcome was lost with its worker: a batch may run at
        // the provider. Looked for (never created); found, it is cancelled
        // like an open one and what ran is kept; not found, it ends below.
        if (now < batch.not_before) return false;
        kind = v1::BATCH_STEP_CREATE;
        step->set_find_only(true);
        break;
      }
      if (record.cancel_wanted()) {
        // Not created: its tasks go back (online for an auto job).
        StoreBatch writes;
        for (const auto& [custom_id, lease_id] : batch.leases) {
          std::optional<Scheduler::Lease> l = EndLeaseLocked(lease_id);
          if (l && job_live) SendAgainLocked(job->second, std::move(l->task));
        }
        batch.leases.clear();
        EndBatchLocked(batch, v1::BATCH_STATE_ENDED, &writes);
        RETURN_IF_ERROR(store_.Apply(writes));
        return false;
      }
      if (now < batch.not_before) return false;
      const BatchBook::TeacherBatches& t = batches_.Teacher(record.teacher());
      if (now < t.queue_full_until && batches_.AnyOpenFor(record.teacher())) {
        return false;  // the provider's queue is full: wait for a batch to end
      }
      kind = v1::BATCH_STEP_CREATE;
      break;
    }
    case v1::BATCH_STATE_OPEN:
      if (record.cancel_wanted()) {
        kind = v1::BATCH_STEP_CANCEL;
        break;
      }
      [[fallthrough]];
    case v1::BATCH_STATE_CANCELLING:
      if (now_ms < record.next_poll_ms()) return false;
      kind = v1::BATCH_STEP_POLL;
      break;
    default:
      return false;
  }
  step->set_kind(kind);
  step->set_batch_id(record.summary().id());
  step->set_teacher(record.teacher());
  step->set_model(record.model());
  step->set_provider_batch_id(record.summary().provider_batch_id());
  step->set_tag(record.tag());
  if (kind == v1::BATCH_STEP_CREATE) {
    step->set_find_first(record.create_attempts() > 0);
    step->set_created_after_s(record.summary().created_ms() / 1000 - 60);
    for (const auto& [id, other] : batches_.open()) {
      if (&other != &batch && !other.record.summary().provider_batch_id().empty()) {
        step->add_exclude_provider_ids(other.record.summary().provider_batch_id());
      }
    }
    for (const std::string& other : record.other_provider_ids()) {
      step->add_exclude_provider_ids(other);
    }
    if (step->find_only()) {
      step->set_find_first(true);
      step->set_request_count(record.tasks_size());
      return true;
    }
    if (!job_live) return false;
    std::vector<int64_t> seqs;
    for (const v1::BatchTask& bt : record.tasks()) {
      if (seqs.empty() || seqs.back() != bt.prompt_seq()) {
        seqs.push_back(bt.prompt_seq());
      }
    }
    ASSIGN_OR_RETURN(std::vector<std::optional<v1::Prompt>> prompts,
                     store_.GetPrompts(record.job_id(), seqs));
    size_t p = 0;
    for (const v1::BatchTask& bt : record.tasks()) {
      while (p < seqs.size() && seqs[p] != bt.prompt_seq()) ++p;
      if (p >= seqs.size() || !prompts[p]) {
        return absl::DataLossError(absl::StrCat(
            "batch ", record.summary().id(), ": no prompt ", bt.prompt_seq()));
      }
      v1::LeasedTask* t = step->add_tasks();
      t->set_job_id(record.job_id());
      t->set_prompt_seq(bt.prompt_seq());
      t->set_sample(bt.sample());
      t->set_request_key(bt.request_key());
      t->set_teacher(record.teacher());
      FillTaskRequest(job->second.job.spec(), *prompts[p], bt.sample(), t);
      t->set_model(record.model());
      step->add_custom_ids(bt.custom_id());
    }
    // Counted before it is handed out: after a crash, the next create looks
    // for this one first.
    record.set_create_attempts(record.create_attempts() + 1);
    record.set_create_started_ms(now_ms);
    RETURN_IF_ERROR(StoreBatchRecordLocked(batch));
  }
  return true;
}

absl::StatusOr<v1::LeaseBatchStepResponse> Coordinator::LeaseBatchStep(
    const v1::LeaseBatchStepRequest& request) {
  absl::MutexLock commit_lock(&commit_mu_);  // see commit_mu_
  absl::MutexLock lock(&mu_);
  auto worker = workers_.find(request.worker_id());
  if (worker == workers_.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unknown worker '", request.worker_id(), "'; register again"));
  }
  worker->second.last_seen = clock_.Now();
  v1::LeaseBatchStepResponse response;
  response.set_next_due_ms(1000);
  if (leases_saved_ || clock_.Now() < leasing_resumes_) return response;
  ExpireLeasesLocked();
  const int max_steps = std::max(1, request.max_steps());
  auto serves = [&](const std::string& teacher) {
    return std::find(request.teachers().begin(), request.teachers().end(),
                     teacher) != request.teachers().end();
  };
  auto hand_out = [&](OpenBatch& batch, v1::BatchStep step)
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    batch.step_lease = scheduler_.NextLeaseId();
    batch.step_worker = request.worker_id();
    batch.step_deadline = clock_.Now() + options_.lease_duration;
    batch.step_kind = step.kind();
    step.set_lease_id(batch.step_lease);
    *response.add_steps() = std::move(step);
  };
  std::vector<std::string> ids;
  for (const auto& [id, batch] : batches_.open()) ids.push_back(id);
  for (const std::string& id : ids) {
    if (response.steps_size() >= max_steps) break;
    OpenBatch* batch = batches_.Find(id);
    if (batch == nullptr || !serves(batch->record.teacher())) continue;
    if (budget_.Paused(batch->record.teacher())) continue;
    v1::BatchStep step;
    ASSIGN_OR_RETURN(bool due, DueStepLocked(*batch, &step));
    if (due) hand_out(*batch, std::move(step));
  }
  for (auto& [job_id, rt] : jobs_) {
    if (response.steps_size() >= max_steps) break;
    if (rt.job.state() != v1::JOB_STATE_RUNNING || held_jobs_.count(job_id) ||
        !serves(rt.job.spec().teacher()) ||
        budget_.Paused(rt.job.spec().teacher()) || OnlineNowLocked(rt)) {
      continue;
    }
    const BatchBook::TeacherBatches& t = batches_.Teacher(rt.job.spec().teacher());
    if (clock_.Now() < t.queue_full_until &&
        batches_.AnyOpenFor(rt.job.spec().teacher())) {
      continue;
    }
    while (response.steps_size() < max_steps) {
      ASSIGN_OR_RETURN(OpenBatch * batch, FormBatchLocked(rt));
      if (batch == nullptr) break;
      v1::BatchStep step;
      ASSIGN_OR_RETURN(bool due, DueStepLocked(*batch, &step));
      if (due) hand_out(*batch, std::move(step));
    }
  }
  // The soonest poll due, so the worker asks again in time.
  int64_t soonest = 1000;
  const int64_t now_ms = clock_.WallMillis();
  for (const auto& [id, batch] : batches_.open()) {
    if (batch.record.summary().state() == v1::BATCH_STATE_CREATING) continue;
    soonest = std::min(soonest, batch.record.next_poll_ms() - now_ms);
  }
  response.set_next_due_ms(std::max<int64_t>(soonest, 20));
  return response;
}

void Coordinator::EndBatchLocked(OpenBatch& batch, v1::BatchState state,
                                 StoreBatch* writes) {
  v1::BatchRecord record = batch.record;
  record.mutable_summary()->set_state(state);
  record.mutable_summary()->set_ended_ms(clock_.WallMillis());
  record.clear_tasks();  // settled: the summary is what stays
  writes->batches.push_back(record);
  const std::string id = record.summary().id();
  if (state == v1::BATCH_STATE_ENDED && record.summary().created_ms() > 0 &&
      !record.summary().provider_batch_id().empty()) {
    batches_.ObserveDuration(
        record.teacher(),
        (record.summary().ended_ms() - record.summary().created_ms()) / 1000.0);
  }
  // A batch ending frees room in the provider's queue.
  batches_.Teacher(record.teacher()).queue_full_until = TimePoint();
  batches_.End(id, record.job_id(), record.summary(), record.teacher());
  ChangedLocked();
}

absl::Status Coordinator::ReturnBatchTaskLocked(int64_t lease_id,
                                                bool count_attempt,
                                                const std::string& error,
                                                const std::string& worker_name,
                                                ReportCommit* commit) {
  const Scheduler::Lease* lease = scheduler_.FindLease(lease_id);
  if (lease == nullptr) return absl::OkStatus();
  const v1::Task task = lease->task;
  auto job = jobs_.find(task.job_id());
  const TeacherProfile* profile =
      job == jobs_.end() ? nullptr : ProfileFor(job->second.job.spec().teacher());
  const int max_attempts = profile ? profile->max_attempts : 5;
  if (count_attempt && task.attempts() + 1 >= max_attempts) {
    // Its attempts are spent: a dead letter with the reason, as online.
    v1::TaskResult result;
    result.set_job_id(task.job_id());
    result.set_prompt_seq(task.prompt_seq());
    result.set_sample(task.sample());
    result.set_request_key(task.request_key());
    result.set_lease_id(lease_id);
    result.set_failure(v1::FAILURE_CLASS_RETRYABLE);
    result.set_error(absl::StrCat(error, " (after ", task.attempts() + 1,
                                  " attempts)"));
    result.set_attempts(1);
    bool ignored = false;
    return CommitResultLocked(result, lease->worker_id, worker_name, commit,
                              &ignored);
  }
  std::optional<Scheduler::Lease> ended = EndLeaseLocked(lease_id);
  v1::Task back = std::move(ended->task);
  if (count_attempt) {
    back.set_attempts(back.attempts() + 1);
    back.set_last_error(error);
    const auto ref =
        std::make_tuple(back.job_id(), back.prompt_seq(), back.sample());
    commit->tasks[ref] = commit->batch.tasks.size();
    commit->batch.tasks.push_back(back);
  }
  if (job != jobs_.end() && (job->second.job.state() == v1::JOB_STATE_RUNNING ||
                             job->second.job.state() == v1::JOB_STATE_PAUSED)) {
    SendAgainLocked(job->second, std::move(back));
  }
  commit->release_keys.push_back(task.request_key());
  return absl::OkStatus();
}

absl::Status Coordinator::FailBatchLocked(OpenBatch& batch,
                                          const std::string& error) {
  spdlog::warn("batch {} refused by the provider: {}",
               batch.record.summary().id(), error);
  ReportCommit commit;
  for (const auto& [custom_id, lease_id] : batch.leases) {
    RETURN_IF_ERROR(ReturnBatchTaskLocked(
        lease_id, /*count_attempt=*/true,
        absl::StrCat("batch refused: ", error), "", &commit));
  }
  batch.leases.clear();
  batch.record.mutable_summary()->set_error(error);
  EndBatchLocked(batch, v1::BATCH_STATE_FAILED, &commit.batch);
  return FinishReportLocked(commit);
}

absl::Status Coordinator::CommitBatchItemsLocked(
    OpenBatch& batch, const v1::BatchStepReport& report,
    const std::string& worker_name, v1::BatchStepReportResponse* response) {
  ReportCommit commit;
  v1::BatchSummary* summary = batch.record.mutable_summary();
  const std::string holder = BatchBook::Holder(summary->id());
  BatchBook::TeacherBatches& stats = batches_.Teacher(batch.record.teacher());
  for (const v1::BatchItem& item : report.items()) {
    auto at = batch.index.find(item.custom_id());
    if (at == batch.index.end() ||
        batch.record.tasks(at->second).settled()) {
      response->set_ignored(response->ignored() + 1);
      continue;
    }
    v1::BatchTask* bt = batch.record.mutable_tasks(at->second);
    bt->set_settled(true);
    response->set_accepted(response->accepted() + 1);
    auto lease = batch.leases.find(item.custom_id());
    if (lease == batch.leases.end()) continue;  // the job was cancelled
    const int64_t lease_id = lease->second;
    batch.leases.erase(lease);
    if (item.not_run()) {
      summary->set_not_run(summary->not_run() + 1);
      ++stats.requests_by_outcome[BatchBook::kNotRun];
      RETURN_IF_ERROR(ReturnBatchTaskLocked(lease_id, false, "", worker_name,
                                            &commit));
      continue;
    }
    v1::TaskResult result;
    result.set_job_id(batch.record.job_id());
    result.set_prompt_seq(bt->prompt_seq());
    result.set_sample(bt->sample());
    result.set_request_key(bt->request_key());
    result.set_lease_id(lease_id);
    result.set_attempts(1);
    if (item.failure() == v1::FAILURE_CLASS_UNSPECIFIED) {
      summary->set_answered(summary->answered() + 1);
      ++stats.requests_by_outcome[BatchBook::kSucceeded];
      *result.mutable_answer() = item.answer();
      bool ignored = false;
      RETURN_IF_ERROR(
          CommitResultLocked(result, holder, worker_name, &commit, &ignored));
      continue;
    }
    summary->set_errored(summary->errored() + 1);
    if (item.failure() == v1::FAILURE_CLASS_PERMANENT) {
      ++stats.requests_by_outcome[BatchBook::kDead];
      result.set_failure(v1::FAILURE_CLASS_PERMANENT);
      result.set_error(item.error());
      bool ignored = false;
      RETURN_IF_ERROR(
          CommitResultLocked(result, holder, worker_name, &commit, &ignored));
      continue;
    }
    ++stats.requests_by_outcome[BatchBook::kErrored];
    RETURN_IF_ERROR(ReturnBatchTaskLocked(lease_id, true, item.error(),
                                          worker_name, &commit));
  }
  if (report.last()) {
    // What the results left out never ran: sent again.
    for (v1::BatchTask& bt : *batch.record.mutable_tasks()) {
      if (bt.settled()) continue;
      bt.set_settled(true);
      auto lease = batch.leases.find(bt.custom_id());
      if (lease == batch.leases.end()) continue;
      summary->set_not_run(summary->not_run() + 1);
      ++stats.requests_by_outcome[BatchBook::kNotRun];
      RETURN_IF_ERROR(ReturnBatchTaskLocked(lease->second, false, "",
                                            worker_name, &commit));
      batch.leases.erase(lease);
    }
    EndBatchLocked(batch, v1::BATCH_STATE_ENDED, &commit.batch);
  } else {
    commit.batch.batches.push_back(batch.record);
  }
  return FinishReportLocked(commit);
}

absl::StatusOr<v1::BatchStepReportResponse> Coordinator::ReportBatchStep(
    const v1::BatchStepReport& report) {
  absl::MutexLock commit_lock(&commit_mu_);  // see commit_mu_
  absl::MutexLock lock(&mu_);
  auto worker = workers_.find(report.worker_id());
  if (worker == workers_.end()) {
    // It registers again and sends the report again: a created batch's id
    // or paid results must not be dropped.
    return absl::FailedPreconditionError(absl::StrCat(
        "unknown worker '", report.worker_id(), "'; register again"));
  }
  worker->second.last_seen = clock_.Now();
  const std::string worker_name = worker->second.name;
  v1::BatchStepReportResponse response;
  OpenBatch* batch = batches_.Find(report.batch_id());
  if (batch == nullptr) {
    response.set_ignored(report.items_size());
    return response;
  }
  response.set_step_valid(batch->step_lease == report.lease_id() &&
                          batch->step_worker == report.worker_id());
  v1::BatchRecord& record = batch->record;
  v1::BatchSummary* summary = record.mutable_summary();
  const TeacherProfile* profile = ProfileFor(record.teacher());
  const int64_t poll = profile ? profile->batch_poll_interval_ms : 30'000;
  const int64_t now_ms = clock_.WallMillis();
  const auto code = static_cast<absl::StatusCode>(report.status_code());
  auto end_step = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (response.step_valid()) batches_.EndStep(*batch);
  };
  auto queue_full = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // Held back until one of the teacher's batches ends (or, with none
    // open, for a few polls).
    batches_.Teacher(record.teacher()).queue_full_until =
        clock_.Now() + std::chrono::milliseconds(10 * poll);
    spdlog::info("teacher {}: the provider's batch queue is full; batch {} "
                 "waits for running batches",
                 record.teacher(), summary->id());
  };
  if (report.provider_failed()) {
    // The provider failed the batch at validation: nothing ran.
    end_step();
    if (!report.provider_batch_id().empty()) {
      record.add_other_provider_ids(report.provider_batch_id());
    }
    if (report.token_limit()) {
      queue_full();
      summary->set_state(v1::BATCH_STATE_CREATING);
      summary->clear_provider_batch_id();
      record.set_create_attempts(0);  // nothing of it runs at the provider
      RETURN_IF_ERROR(StoreBatchRecordLocked(*batch));
      ChangedLocked();
      return response;
    }
    RETURN_IF_ERROR(FailBatchLocked(*batch, report.error()));
    return response;
  }
  if (code != absl::StatusCode::kOk) {
    end_step();
    if (report.kind() == v1::BATCH_STEP_CREATE &&
        code == absl::StatusCode::kResourceExhausted) {
      queue_full();
      record.set_create_attempts(0);  // refused: not created
      RETURN_IF_ERROR(StoreBatchRecordLocked(*batch));
    } else if (report.kind() == v1::BATCH_STEP_CREATE &&
               code == absl::StatusCode::kInvalidArgument) {
      RETURN_IF_ERROR(FailBatchLocked(*batch, report.error()));
    } else if (report.kind() == v1::BATCH_STEP_CREATE &&
               code == absl::StatusCode::kNotFound &&
               record.cancel_wanted()) {
      // A find-only step: the lost create never made a batch. It ends at
      // its next step, its tasks sent again.
      spdlog::info("batch {}: no batch tagged {} at the provider",
                   summary->id(), record.tag());
      record.set_create_attempts(0);
      RETURN_IF_ERROR(StoreBatchRecordLocked(*batch));
    } else if (report.kind() == v1::BATCH_STEP_POLL &&
               code == absl::StatusCode::kNotFound) {
      RETURN_IF_ERROR(FailBatchLocked(
          *batch, absl::StrCat("the provider no longer has batch ",
                               summary->provider_batch_id())));
    } else {
      spdlog::warn("batch {}: step failed, retried: {}", summary->id(),
                   report.error());
      record.set_next_poll_ms(now_ms + poll);
    }
    ChangedLocked();
    return response;
  }
  switch (report.kind()) {
    case v1::BATCH_STEP_CREATE: {
      end_step();
      if (summary->state() == v1::BATCH_STATE_CREATING) {
        summary->set_provider_batch_id(report.provider_batch_id());
        summary->set_state(v1::BATCH_STATE_OPEN);
        summary->set_provider_status(report.provider_status());
        record.set_input_file_id(report.input_file_id());
        record.set_next_poll_ms(now_ms + poll);
        spdlog::info("batch {} created at the provider as {}", summary->id(),
                     report.provider_batch_id());
      } else if (report.provider_batch_id() != summary->provider_batch_id()) {
        // A second batch for the same tasks (a create that outlived its
        // step): cancelled, its results never used.
        spdlog::warn("batch {}: a second provider batch {} for its tasks; "
                     "cancelling it",
                     summary->id(), report.provider_batch_id());
        record.add_other_provider_ids(report.provider_batch_id());
      }
      RETURN_IF_ERROR(StoreBatchRecordLocked(*batch));
      break;
    }
    case v1::BATCH_STEP_CANCEL:
      end_step();
      summary->set_state(v1::BATCH_STATE_CANCELLING);
      record.set_next_poll_ms(now_ms);
      RETURN_IF_ERROR(StoreBatchRecordLocked(*batch));
      break;
    case v1::BATCH_STEP_POLL: {
      summary->set_provider_status(report.provider_status());
      if (!report.ended()) {
        end_step();
        record.set_next_poll_ms(now_ms + poll);
        RETURN_IF_ERROR(StoreBatchRecordLocked(*batch));
        break;
      }
      if (response.step_valid() && !report.last()) {
        batch->step_deadline = clock_.Now() + options_.lease_duration;
      } else {
        end_step();
      }
      const std::string id = summary->id();
      RETURN_IF_ERROR(
          CommitBatchItemsLocked(*batch, report, worker_name, &response));
      if (report.last()) {
        spdlog::info("batch {} ended ({}): results committed", id,
                     report.provider_status());
      }
      break;
    }
    default:
      return absl::InvalidArgumentError("batch step report without a kind");
  }
  ChangedLocked();
  return response;
}

absl::Status Coordinator::CancelBatchesOfJobLocked(const std::string& job_id) {
  for (auto& [id, batch] : batches_.open()) {
    if (batch.record.job_id() != job_id || batch.record.cancel_wanted()) {
      continue;
    }
    batch.record.set_cancel_wanted(true);
    batch.leases.clear();  // the job's leases end with it
    RETURN_IF_ERROR(StoreBatchRecordLocked(batch));
  }
  return absl::OkStatus();
}

void Coordinator::AddBatchViewLocked(v1::Job* job) {
  for (v1::BatchSummary& s : batches_.SummariesOf(job->id())) {
    *job->add_batches() = std::move(s);
  }
  job->mutable_counters()->set_tasks_in_batches(
      batches_.OpenTasksOf(job->id()));
}

void Coordinator::AddBatchSnapshotLocked(CoordinatorSnapshot* snapshot) {
  static constexpr const char* kStates[] = {"creating", "open", "cancelling",
                                            "ended", "failed"};
  static constexpr const char* kOutcomes[] = {"succeeded", "errored",
                                              "not_run", "dead"};
  std::map<std::string, CoordinatorSnapshot::TeacherBatchView> views;
  for (const auto& [teacher, builder] : line_builders_) {
    CoordinatorSnapshot::TeacherBatchView& v = views[teacher];
    v.teacher = teacher;
    for (const char* state : kStates) v.batches_by_state[state] = 0;
    const BatchBook::TeacherBatches& t = batches_.Teacher(teacher);
    for (int i = 0; i < 4; ++i) {
      v.requests_by_outcome[kOutcomes[i]] = t.requests_by_outcome[i];
    }
  }
  const int64_t now_ms = clock_.WallMillis();
  for (const auto& [teacher, summary] : batches_.AllByTeacher()) {
    auto v = views.find(teacher);
    if (v == views.end()) continue;
    const int state = static_cast<int>(summary.state());
    if (state >= 1 && state <= 5) ++v->second.batches_by_state[kStates[state - 1]];
    if (Open(summary.state())) {
      v->second.oldest_open_age_seconds =
          std::max(v->second.oldest_open_age_seconds,
                   std::max<int64_t>(now_ms - summary.created_ms(), 0) / 1000.0);
    }
  }
  for (const auto& [id, batch] : batches_.open()) {
    auto v = views.find(batch.record.teacher());
    if (v == views.end()) continue;
    for (const v1::BatchTask& t : batch.record.tasks()) {
      v->second.tasks_in_batches += t.settled() ? 0 : 1;
    }
  }
  for (auto& [teacher, view] : views) snapshot->batches.push_back(std::move(view));
}

}  // namespace distillery
