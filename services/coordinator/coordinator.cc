#include "services/coordinator/coordinator.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <optional>

#include <spdlog/spdlog.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/status_macros.h"
#include "common/job/job_state.h"
#include "common/metrics/metrics.h"
#include "common/dataset/export_filter.h"
#include "common/dataset/prompt_parser.h"
#include "common/dedup/keys.h"
#include "common/dedup/minhash.h"
#include "google/protobuf/util/message_differencer.h"

namespace distillery {
namespace {

// A submission's prompt ids, in the scratch family: "\x81" job id "\0" id
// -> line number. Above the be64 export ids (below "\x80").
constexpr char kSubmissionIds = '\x81';

std::string SubmissionIdKey(const std::string& job_id, const std::string& id) {
  std::string key(1, kSubmissionIds);
  absl::StrAppend(&key, job_id);
  key.push_back('\0');
  key += id;
  return key;
}

// The [begin, end) of the ids of `job_id`'s submission; of every
// submission's when `job_id` is empty.
std::pair<std::string, std::string> SubmissionIdRange(
    const std::string& job_id) {
  if (job_id.empty()) {
    return {std::string(1, kSubmissionIds),
            std::string(1, static_cast<char>(kSubmissionIds + 1))};
  }
  std::string begin = SubmissionIdKey(job_id, "");
  std::string end = begin;
  end.back() = '\1';
  return {std::move(begin), std::move(end)};
}

// Tasks an export reads answers and prompts for at once.
constexpr size_t kExportReadBatch = 256;

// Where a graceful stop leaves the lease table: a scratch key at or above
// "\x80", which Recover's sweep of export scratch (below "\x80") keeps.
const std::string& SavedLeasesKey() {
  static const std::string* key = new std::string("\x80" "saved-leases");
  return *key;
}

// Dollars in whole nano-dollars, costs rounded up and budgets down, so that
// the budget check errs on the side of spending less. Exact integers: the
// reservations of leases add and subtract in any order without residue.
int64_t NanoUsdUp(double usd) {
  return static_cast<int64_t>(std::ceil(usd * 1e9));
}
int64_t NanoUsdDown(double usd) {
  return static_cast<int64_t>(std::floor(usd * 1e9));
}

bool SameTask(const v1::Task& task, const v1::HeldTask& held) {
  return task.job_id() == held.job_id() &&
         task.prompt_seq() == held.prompt_seq() &&
         task.sample() == held.sample() &&
         task.request_key() == held.request_key();
}

// The value of `key` as a report's batch has it (written by an earlier
// result of the same report), else as the store has it.
template <typename StoreLookup>
absl::StatusOr<std::optional<std::string>> FindInBatchOrStore(
    const std::map<std::string, std::string>& batch, const std::string& key,
    StoreLookup&& lookup) {
  if (auto it = batch.find(key); it != batch.end()) {
    return std::optional<std::string>(it->second);
  }
  return lookup();
}

// A dead letter's error without the worker's " (after N attempts)", so that
// one cause counts once however many attempts each task took.
std::string FailureCause(const std::string& error) {
  const size_t at = error.rfind(" (after ");
  if (at != std::string::npos && absl::EndsWith(error, " attempts)")) {
    return error.substr(0, at);
  }
  return error;
}

// One log line when a job changes state, with its figures when it ends.
void LogStateChange(const v1::Job& before, const v1::Job& after) {
  if (before.state() == after.state()) return;
  const v1::JobCounters& c = after.counters();
  if (IsTerminal(after.state())) {
    const int64_t end_ms = after.finished_ms();
    spdlog::info(
        "job {} {}: {}/{} tasks answered ({} from cache), {} failed, {} "
        "teacher requests, ${:.4f}, {:.1f}s{}{}",
        after.id(), JobStateName(after.state()), c.tasks_done(),
        c.tasks_total(), c.cache_hits(), c.tasks_failed(),
        c.teacher_requests(), c.cost_usd(),
        end_ms > after.created_ms() ? (end_ms - after.created_ms()) / 1000.0
                                    : 0.0,
        after.error().empty() ? "" : ": ", after.error());
    return;
  }
  spdlog::info("job {} {} -> {}{}{}", after.id(), JobStateName(before.state()),
               JobStateName(after.state()), after.error().empty() ? "" : ": ",
               after.error());
}

std::string JobIdFor(int64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "job-%06lld", static_cast<long long>(n));
  return buf;
}

absl::Status ValidateSpec(const v1::JobSpec& spec,
                          const std::vector<TeacherProfile>& teachers,
                          int max_samples) {
  if (spec.teacher().empty()) {
    return absl::InvalidArgumentError("spec: teacher is required");
  }
  if (absl::StatusOr<TeacherProfile> p = FindTeacher(teachers, spec.teacher());
      !p.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec: ", p.status().message()));
  }
  if (spec.model().empty()) {
    return absl::InvalidArgumentError("spec: model is required");
  }
  if (spec.samples() < 1 || spec.samples() > max_samples) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec: samples must be between 1 and ", max_samples, ", got ",
        spec.samples()));
  }
  const v1::SamplingParams& p = spec.params();
  if (p.max_tokens() < 0) {
    return absl::InvalidArgumentError("spec: max_tokens must not be negative");
  }
  if (p.has_temperature() && (p.temperature() < 0 || p.temperature() > 2)) {
    return absl::InvalidArgumentError("spec: temperature must be in [0, 2]");
  }
  if (p.has_top_p() && (p.top_p() <= 0 || p.top_p() > 1)) {
    return absl::InvalidArgumentError("spec: top_p must be in (0, 1]");
  }
  if (spec.budget_usd() < 0) {
    return absl::InvalidArgumentError("spec: budget_usd must not be negative");
  }
  if (spec.budget_usd() > 0) {
    absl::StatusOr<TeacherProfile> profile = FindTeacher(teachers, spec.teacher());
    if (profile.ok() && !PriceFor(*profile, spec.model())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spec: a budget needs a price: teacher '", spec.teacher(),
          "' has no pricing for model '", spec.model(),
          "' (add it under pricing: in the teachers file)"));
    }
  }
  if (!IsValidUtf8(spec.system_prompt())) {
    return absl::InvalidArgumentError("spec: system prompt is not UTF-8");
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------- Submission

Submission::~Submission() {
  if (!finished_) Abort();
}

absl::Status Submission::AddLines(
    const google::protobuf::RepeatedPtrField<std::string>& lines) {
  if (finished_) return absl::FailedPreconditionError("submission finished");
  const v1::JobSpec& spec = job_.spec();
  // BeginSubmission checked that the profile exists; it is looked up, not
  // copied, once per batch of lines.
  const TeacherProfile* teacher =
      FindTeacherOrNull(coordinator_->teachers_, spec.teacher());
  if (teacher == nullptr) {
    Abort();
    return absl::InternalError("the job's teacher profile is gone");
  }
  for (const std::string& line : lines) {
    ++line_number_;
    absl::StatusOr<std::optional<v1::Prompt>> parsed =
        ParsePromptLine(line, line_number_, spec.system_prompt(),
                        coordinator_->options_.max_prompt_bytes);
    if (!parsed.ok()) {
      Abort();  // one bad line rejects the whole submission
      return parsed.status();
    }
    std::optional<v1::Prompt>& prompt = *parsed;
    if (!prompt) continue;
    if (absl::Status s = CheckUniqueId(*prompt); !s.ok()) {
      Abort();
      return s;
    }
    const int64_t seq = next_seq_++;
    for (int s = 0; s < spec.samples(); ++s) {
      v1::Task task;
      task.set_job_id(job_.id());
      task.set_prompt_seq(seq);
      task.set_sample(s);
      task.set_state(v1::TASK_STATE_PENDING);
      task.set_request_key(RequestKey(*teacher, spec.model(),
                                      prompt->messages(), spec.params(), s));
      pending_.tasks.push_back(std::move(task));
    }
    pending_.AddPrompt(job_.id(), seq, std::move(*prompt));
    if (++pending_prompts_ >= coordinator_->options_.submit_flush_prompts) {
      if (absl::Status s = Flush(); !s.ok()) {
        Abort();
        return s;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Submission::Flush() {
  if (pending_.empty()) return absl::OkStatus();
  absl::Status s = coordinator_->store_.Apply(pending_);
  pending_ = StoreBatch();
  pending_prompts_ = 0;
  pending_ids_.clear();
  return s;
}

absl::Status Submission::CheckUniqueId(const v1::Prompt& prompt) {
  std::string key = SubmissionIdKey(job_.id(), prompt.id());
  int64_t first = 0;
  if (auto it = pending_ids_.find(key); it != pending_ids_.end()) {
    first = it->second;
  } else {
    ASSIGN_OR_RETURN(std::optional<std::string> stored,
                     coordinator_->store_.FindScratch(key));
    if (stored && !absl::SimpleAtoi(*stored, &first)) first = -1;
  }
  if (first != 0) {
    return DuplicatePromptIdError(prompt.line(), prompt.id(), first);
  }
  pending_.scratch.emplace_back(key, absl::StrCat(prompt.line()));
  pending_ids_.emplace(std::move(key), prompt.line());
  return absl::OkStatus();
}

void Submission::DeleteIds() {
  // Best effort: what is left, Recover deletes.
  const auto [begin, end] = SubmissionIdRange(job_.id());
  (void)coordinator_->store_.DeleteScratch(begin, end);
}

absl::StatusOr<v1::Job> Submission::Commit() {
  if (finished_) return absl::FailedPreconditionError("submission finished");
  if (next_seq_ == 0) {
    Abort();
    return absl::InvalidArgumentError("the prompt file has no prompts");
  }
  if (absl::Status s = Flush(); !s.ok()) {
    Abort();
    return s;
  }
  job_.mutable_counters()->set_prompts(next_seq_);
  job_.mutable_counters()->set_tasks_total(next_seq_ * job_.spec().samples());
  job_.set_state(v1::JOB_STATE_RUNNING);
  if (absl::Status s = coordinator_->CommitSubmission(this); !s.ok()) {
    Abort();
    return s;
  }
  finished_ = true;
  DeleteIds();
  // As clients see it, with its teacher's status (live workers included).
  absl::StatusOr<v1::Job> view = coordinator_->GetJob(job_.id());
  return view.ok() ? *view : job_;
}

void Submission::Abort() {
  if (finished_) return;
  finished_ = true;
  pending_ = StoreBatch();
  pending_ids_.clear();
  // Best effort: a failure here leaves a SUBMITTING job that Recover removes
  // (and its id stays used).
  if (coordinator_->store_.DeleteJob(job_.id()).ok()) {
    coordinator_->ReleaseJobNumber(job_number_);
  }
  DeleteIds();
}

// --------------------------------------------------------------- Coordinator

Coordinator::Coordinator(Store& store, std::vector<TeacherProfile> teachers,
                         Clock& clock, CoordinatorOptions options)
    : store_(store),
      teachers_(std::move(teachers)),
      clock_(clock),
      options_(options),
      budget_(clock, teachers_, options.budget) {
  // 128 bits of OS entropy: a 32-bit seed would repeat a whole boot's ids
  // once in 2^32 starts.
  std::random_device entropy;
  std::seed_seq seed{entropy(), entropy(), entropy(), entropy()};
  worker_id_random_.seed(seed);
}

v1::Job Coordinator::JobViewLocked(const JobRuntime& rt) {
  v1::Job job = rt.job;
  *job.mutable_teacher_status() = TeacherStatusLocked(job.spec().teacher());
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
  std::lock_guard<std::mutex> lock(mu_);
  free_job_numbers_.insert(n);
}

void Coordinator::ReleaseReservationLocked(const LeaseInfo& lease) {
  if (!lease.reserves) return;
  auto job = jobs_.find(lease.task.job_id());
  if (job == jobs_.end()) return;
  JobRuntime& rt = job->second;
  rt.reserved_nano_usd -= lease.reserved_nano_usd;
  --rt.reserving_leases;
  assert(rt.reserving_leases >= 0 && rt.reserved_nano_usd >= 0);
}

void Coordinator::AddLeaseLocked(JobRuntime& rt, int64_t lease_id,
                                 const std::string& worker_id, v1::Task task,
                                 int64_t reserved_nano_usd) {
  const bool reserves = rt.job.spec().budget_usd() > 0;
  if (reserves) {
    rt.reserved_nano_usd += reserved_nano_usd;
    ++rt.reserving_leases;
  }
  NoteHolderLocked(task, worker_id);
  inflight_keys_[task.request_key()] = lease_id;
  leases_[lease_id] =
      LeaseInfo{worker_id, std::move(task),
                clock_.Now() + options_.lease_duration, reserves,
                reserves ? reserved_nano_usd : 0};
}

absl::StatusOr<bool> Coordinator::AdoptLeaseLocked(const std::string& worker_id,
                                                   const v1::HeldTask& held) {
  auto job = jobs_.find(held.job_id());
  if (job == jobs_.end() || job->second.job.state() != v1::JOB_STATE_RUNNING) {
    return false;
  }
  JobRuntime& rt = job->second;
  if (auto it = leases_.find(held.lease_id()); it != leases_.end()) {
    // Known (a restored table, or we never forgot): it changes hands to the
    // worker's new id.
    if (!SameTask(it->second.task, held)) return false;
    NoteHolderLocked(it->second.task, worker_id);
    it->second.worker_id = worker_id;
    it->second.deadline = clock_.Now() + options_.lease_duration;
    return true;
  }
  if (inflight_keys_.count(held.request_key())) return false;
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
    reserve = NanoUsdUp(EstimateTaskCostLocked(rt, *prompt));
  }
  // Ids from before a restart are below the ones it hands out, but a lease
  // taken back must never share its id with a new one.
  next_lease_id_ = std::max(next_lease_id_, held.lease_id() + 1);
  AddLeaseLocked(rt, held.lease_id(), worker_id, std::move(*task), reserve);
  return true;
}

absl::StatusOr<int> Coordinator::SaveLeases() {
  std::lock_guard<std::mutex> lock(mu_);
  v1::SavedLeases saved;
  for (const auto& [id, lease] : leases_) {
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
  for (const v1::SavedLease& lease : saved.leases()) {
    ASSIGN_OR_RETURN(bool adopted,
                     AdoptLeaseLocked(lease.worker_id(), lease.task()));
    restored += adopted;
  }
  // Used once: a later crash must not bring back leases long ended.
  RETURN_IF_ERROR(store_.DeleteScratch(SavedLeasesKey(),
                                       SavedLeasesKey() + std::string(1, '\0')));
  spdlog::info("restored {} of {} leases saved by the last graceful stop",
               restored, saved.leases_size());
  return true;
}

double Coordinator::EstimateTaskCostLocked(const JobRuntime& rt,
                                           const v1::Prompt& prompt) {
  const TeacherProfile* profile = ProfileFor(rt.job.spec().teacher());
  if (profile == nullptr) return 0;
  int64_t bytes = 0;
  for (const v1::ChatMessage& m : prompt.messages()) bytes += m.content().size();
  const int64_t prompt_tokens = (bytes + 3) / 4 + 4 * prompt.messages_size();
  int64_t completion = rt.job.spec().params().max_tokens();
  if (completion <= 0) completion = profile->default_max_tokens;
  if (completion <= 0) completion = 4096;  // no bound given: a cautious one
  return CostUsd(*profile, rt.job.spec().model(), prompt_tokens, 0,
                 completion);
}

absl::StatusOr<v1::Job> Coordinator::ResumeJob(const std::string& job_id,
                                               double budget_usd) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  }
  JobRuntime& rt = it->second;
  if (rt.job.state() != v1::JOB_STATE_PAUSED) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job_id, " is not paused (it is ",
                     JobStateName(rt.job.state()), ")"));
  }
  v1::Job job = rt.job;
  if (budget_usd > 0) {
    if (budget_usd <= job.counters().cost_usd()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "budget $%.4f is not above the $%.4f already spent", budget_usd,
          job.counters().cost_usd()));
    }
    job.mutable_spec()->set_budget_usd(budget_usd);
  }
  job.set_state(v1::JOB_STATE_RUNNING);
  job.clear_error();
  StoreBatch batch;
  batch.jobs.push_back(job);
  RETURN_IF_ERROR(store_.Apply(batch));
  LogStateChange(rt.job, job);
  rt.job = std::move(job);
  ChangedLocked();
  return JobViewLocked(rt);
}

absl::StatusOr<v1::TeacherStatus> Coordinator::ResumeTeacher(
    const std::string& teacher) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!budget_.Resume(teacher)) {
    return absl::NotFoundError(absl::StrCat("unknown teacher '", teacher, "'"));
  }
  ChangedLocked();
  return TeacherStatusLocked(teacher);
}

absl::Status Coordinator::Recover() {
  // Scratch is per operation; what is there was left by a crash mid-export
  // or mid-submission. Export keys start with a be64 export id below 2^63,
  // so below "\x80"; a submission's prompt ids are under kSubmissionIds.
  RETURN_IF_ERROR(store_.DeleteScratch(std::string(), std::string("\x80")));
  {
    const auto [begin, end] = SubmissionIdRange("");
    RETURN_IF_ERROR(store_.DeleteScratch(begin, end));
  }
  ASSIGN_OR_RETURN(std::vector<v1::Job> jobs, store_.ListJobs());
  std::lock_guard<std::mutex> lock(mu_);
  // Lease ids are not stored with tasks; starting them from the clock keeps
  // a worker's lease from before a restart from matching a new one.
  next_lease_id_ = clock_.WallMillis() * 1000 + 1;
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

absl::StatusOr<std::unique_ptr<Submission>> Coordinator::BeginSubmission(
    const v1::JobSpec& spec) {
  RETURN_IF_ERROR(ValidateSpec(spec, teachers_, options_.max_samples));
  // A rejected submission gives its id back (Submission::Abort), so ids
  // count accepted jobs: reuse the smallest returned one first.
  std::optional<int64_t> reused;
  {
    std::lock_guard<std::mutex> lock(mu_);
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
  return std::unique_ptr<Submission>(new Submission(this, std::move(job), n));
}

absl::Status Coordinator::CommitSubmission(Submission* submission) {
  StoreBatch batch;
  batch.jobs.push_back(submission->job_);
  RETURN_IF_ERROR(store_.Apply(batch));
  metrics::PromptsSubmitted(submission->job_.counters().prompts());
  metrics::InitTaskSeries(submission->job_.spec().teacher(),
                          submission->job_.spec().model());
  std::lock_guard<std::mutex> lock(mu_);
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
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  }
  return JobViewLocked(it->second);
}

std::vector<v1::Job> Coordinator::ListJobs() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::Job> out;
  for (const auto& [id, rt] : jobs_) out.push_back(JobViewLocked(rt));
  return out;
}

absl::StatusOr<v1::Job> Coordinator::CancelJob(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  }
  v1::Job job = it->second.job;
  if (IsTerminal(job.state())) return job;
  job.set_state(v1::JOB_STATE_CANCELLED);
  job.set_finished_ms(clock_.WallMillis());
  StoreBatch batch;
  batch.jobs.push_back(job);
  RETURN_IF_ERROR(store_.Apply(batch));
  LogStateChange(it->second.job, job);
  it->second.job = job;
  it->second.ready.clear();
  it->second.returned.clear();
  // End its leases now: workers learn at their next heartbeat that these
  // leases are revoked and drop the tasks they have not sent.
  std::vector<int64_t> ended;
  for (const auto& [id, lease] : leases_) {
    if (lease.task.job_id() == job_id) ended.push_back(id);
  }
  for (int64_t id : ended) ReturnLeaseLocked(id);
  ChangedLocked();
  return job;
}

absl::StatusOr<v1::Job> Coordinator::RetryJob(const std::string& job_id) {
  constexpr size_t kRetryChunk = 1024;
  std::lock_guard<std::mutex> lock(mu_);
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
  if (job.state() != v1::JOB_STATE_RUNNING) {
    job.set_state(v1::JOB_STATE_RUNNING);
    job.set_finished_ms(0);
    job.clear_error();
  }
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
    // Tasks already queued or leased are found too, and are harmless: a
    // queued copy is re-read before leasing, a leased key makes its copy
    // wait.
    rt.cursor = TaskRef{};
    rt.scanned_all = false;
    rt.ready.clear();
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
  std::unique_lock<std::mutex> lock(mu_);
  auto changed = [&]() {
    auto it = jobs_.find(job_id);
    return it == jobs_.end() ||
           !google::protobuf::util::MessageDifferencer::Equals(
               JobViewLocked(it->second), last_seen);
  };
  changed_.wait_for(lock, max_wait, changed);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  }
  return JobViewLocked(it->second);
}

void Coordinator::ChangedLocked() { changed_.notify_all(); }

const TeacherProfile* Coordinator::ProfileFor(const std::string& teacher) const {
  for (const TeacherProfile& p : teachers_) {
    if (p.name == teacher) return &p;
  }
  return nullptr;
}

CoordinatorSnapshot Coordinator::Snapshot() {
  std::lock_guard<std::mutex> lock(mu_);
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
  for (const auto& [id, lease] : leases_) {
    auto job = jobs_.find(lease.task.job_id());
    if (job != jobs_.end()) {
      ++snapshot.leases_by_teacher[job->second.job.spec().teacher()];
    }
  }
  return snapshot;
}

// ---------------------------------------------------------------- Leasing

v1::RegisterResponse Coordinator::Register(const v1::RegisterRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
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
  std::lock_guard<std::mutex> lock(mu_);
  v1::HeartbeatResponse response;
  auto worker = workers_.find(request.worker_id());
  if (worker == workers_.end()) {
    response.set_known(false);
    return response;
  }
  const TimePoint now = clock_.Now();
  worker->second.last_seen = now;
  for (int64_t id : request.held_lease_ids()) {
    auto it = leases_.find(id);
    if (it != leases_.end() && it->second.worker_id == request.worker_id()) {
      it->second.deadline = now + options_.lease_duration;
    } else {
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

v1::SamplingParams Coordinator::EffectiveParams(const v1::JobSpec& spec,
                                                int sample) const {
  v1::SamplingParams params = spec.params();
  // Samples past the first get distinct seeds, so deterministic servers give
  // distinct answers; sample 0 is sent exactly as asked, so it is shared with
  // single-sample jobs of the same prompt.
  if (sample > 0) params.set_seed(params.seed() + sample);
  return params;
}

absl::StatusOr<bool> Coordinator::NextTaskLocked(JobRuntime& rt,
                                                v1::Task* task) {
  while (true) {
    v1::Task candidate;
    if (!rt.returned.empty()) {
      candidate = std::move(rt.returned.front());
      rt.returned.pop_front();
    } else {
      while (rt.ready.empty() && !rt.scanned_all) {
        int scanned = 0;
        TaskRef last = rt.cursor;
        bool any = false;
        absl::Status s = store_.ScanTasks(
            rt.job.id(), rt.cursor.seq, rt.cursor.sample,
            [&](const v1::Task& t) {
              any = true;
              last = {t.prompt_seq(), t.sample()};
              if (t.state() == v1::TASK_STATE_PENDING) rt.ready.push_back(t);
              return ++scanned < options_.scan_batch;
            });
        if (!s.ok()) {
          // The cursor did not move: the next call reads the same tasks
          // again, so what this scan queued goes (ready was empty).
          rt.ready.clear();
          metrics::StoreError("lease_scan");
          spdlog::error("job {}: reading tasks to lease failed: {}",
                        rt.job.id(), std::string(s.message()));
          return s;
        }
        if (!any || scanned < options_.scan_batch) {
          rt.scanned_all = true;
        } else {
          rt.cursor = {last.seq, last.sample + 1};
        }
      }
      if (rt.ready.empty()) return false;
      candidate = std::move(rt.ready.front());
      rt.ready.pop_front();
    }
    // Queued copies go stale: a late report (say, from before a restart)
    // may have settled the task since it was queued. The store decides.
    absl::StatusOr<std::optional<v1::Task>> fresh = store_.GetTask(
        candidate.job_id(), candidate.prompt_seq(), candidate.sample());
    if (!fresh.ok()) {
      // Still pending as far as anyone knows: it must stay queued, or its
      // job would never finish.
      metrics::StoreError("lease_read");
      spdlog::error("job {}: reading task {}/{} to lease failed: {}",
                    rt.job.id(), candidate.prompt_seq(), candidate.sample(),
                    std::string(fresh.status().message()));
      rt.returned.push_front(std::move(candidate));
      return fresh.status();
    }
    if (*fresh && (*fresh)->state() == v1::TASK_STATE_PENDING) {
      *task = std::move(**fresh);
      return true;
    }
  }
}

absl::StatusOr<v1::LeaseResponse> Coordinator::Lease(
    const v1::LeaseRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
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
    v1::Task task;
    while (response.tasks_size() < request.max_tasks() &&
           rt.job.state() == v1::JOB_STATE_RUNNING) {
      ASSIGN_OR_RETURN(const bool found, NextTaskLocked(rt, &task));
      if (!found) break;
      ASSIGN_OR_RETURN(bool answered, store_.HasAnswer(task.request_key()));
      if (answered) {
        RETURN_IF_ERROR(CompleteFromCacheLocked(rt, std::move(task)));
        continue;
      }
      if (inflight_keys_.count(task.request_key())) {
        key_waiters_[task.request_key()].push_back(std::move(task));
        continue;
      }
      if (task.prompt_seq() != prompt_seq) {
        ASSIGN_OR_RETURN(std::optional<v1::Prompt> p,
                         store_.GetPrompt(job_id, task.prompt_seq()));
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
      }
      // An upper bound of the LeasedTask's size: the messages, the strings,
      // the params and 96 bytes for the numbers, tags and lengths.
      const size_t task_bytes = RepeatedEntryBytes(
          prompt_bytes + job_id.size() + task.request_key().size() +
          rt.job.spec().teacher().size() + rt.job.spec().model().size() +
          rt.job.spec().params().ByteSizeLong() + 96);
      if (response.tasks_size() > 0 &&
          lease_bytes + task_bytes > options_.max_lease_bytes) {
        rt.returned.push_front(std::move(task));
        lease_full = true;
        break;
      }
      int64_t reserve = 0;
      if (rt.job.spec().budget_usd() > 0) {
        const double estimate = EstimateTaskCostLocked(rt, *prompt);
        reserve = NanoUsdUp(estimate);
        const double spent = rt.job.counters().cost_usd();
        if (NanoUsdUp(spent) + rt.reserved_nano_usd + reserve >
            NanoUsdDown(rt.job.spec().budget_usd())) {
          // The next task could take spend past the budget. While requests
          // are in flight their real cost may leave room: wait for them.
          // Then pause, with the spend final.
          if (rt.reserving_leases > 0) {
            rt.returned.push_front(std::move(task));
            break;
          }
          v1::Job paused = rt.job;
          paused.set_state(v1::JOB_STATE_PAUSED);
          paused.set_error(absl::StrFormat(
              "budget of $%.4f reached: $%.4f spent, the next request could "
              "cost up to $%.4f; resume with a higher --budget-usd",
              rt.job.spec().budget_usd(), spent, estimate));
          StoreBatch batch;
          batch.jobs.push_back(paused);
          RETURN_IF_ERROR(store_.Apply(batch));
          LogStateChange(rt.job, paused);
          rt.job = std::move(paused);
          rt.returned.push_front(std::move(task));
          ChangedLocked();
          break;
        }
      }
      lease_bytes += task_bytes;
      const int64_t lease_id = next_lease_id_++;
      v1::LeasedTask* out = response.add_tasks();
      out->set_job_id(job_id);
      out->set_prompt_seq(task.prompt_seq());
      out->set_sample(task.sample());
      out->set_request_key(task.request_key());
      out->set_teacher(rt.job.spec().teacher());
      out->set_model(rt.job.spec().model());
      *out->mutable_messages() = prompt->messages();
      *out->mutable_params() = EffectiveParams(rt.job.spec(), task.sample());
      out->set_lease_id(lease_id);
      AddLeaseLocked(rt, lease_id, request.worker_id(), std::move(task),
                     reserve);
    }
  }
  return response;
}

absl::Status Coordinator::CompleteFromCacheLocked(JobRuntime& rt,
                                                  v1::Task task) {
  ASSIGN_OR_RETURN(std::optional<v1::Task> stored,
                   store_.GetTask(task.job_id(), task.prompt_seq(),
                                  task.sample()));
  if (!stored || stored->state() != v1::TASK_STATE_PENDING) {
    return absl::OkStatus();  // settled meanwhile: nothing to count twice
  }
  ASSIGN_OR_RETURN(std::optional<v1::Answer> answer,
                   store_.GetAnswer(task.request_key()));
  v1::Job job = rt.job;
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
  StoreBatch batch;
  batch.tasks.push_back(std::move(task));
  MaybeFinishLocked(job, batch);
  batch.jobs.push_back(job);
  RETURN_IF_ERROR(store_.Apply(batch));
  metrics::TaskSettled(job.spec().teacher(), job.spec().model(), "cache_hit");
  LogStateChange(rt.job, job);
  rt.job = std::move(job);
  rt.last_progress_ms = clock_.WallMillis();
  ChangedLocked();
  return absl::OkStatus();
}

void Coordinator::MaybeFinishLocked(v1::Job& job, const StoreBatch& pending) {
  const v1::JobCounters& c = job.counters();
  if (job.state() != v1::JOB_STATE_RUNNING ||
      c.tasks_done() + c.tasks_failed() < c.tasks_total()) {
    return;
  }
  job.set_finished_ms(clock_.WallMillis());
  if (c.tasks_done() > 0 || c.tasks_total() == 0) {
    job.set_state(v1::JOB_STATE_COMPLETED);
    return;
  }
  job.set_state(v1::JOB_STATE_FAILED);
  job.set_error(DeadLetterReasonLocked(job, pending));
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

void Coordinator::ReleaseWaitersLocked(const std::string& request_key) {
  auto it = key_waiters_.find(request_key);
  if (it == key_waiters_.end()) return;
  std::vector<v1::Task> waiters = std::move(it->second);
  key_waiters_.erase(it);
  absl::StatusOr<bool> answered = store_.HasAnswer(request_key);
  for (v1::Task& task : waiters) {
    auto job = jobs_.find(task.job_id());
    if (job == jobs_.end() || IsTerminal(job->second.job.state())) continue;
    if (answered.ok() && *answered &&
        CompleteFromCacheLocked(job->second, task).ok()) {
      continue;
    }
    job->second.returned.push_back(std::move(task));
  }
}

void Coordinator::ReturnLeaseLocked(int64_t lease_id) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return;
  LeaseInfo lease = std::move(it->second);
  leases_.erase(it);
  ReleaseReservationLocked(lease);
  const std::string key = lease.task.request_key();
  inflight_keys_.erase(key);
  auto job = jobs_.find(lease.task.job_id());
  if (job != jobs_.end() && (job->second.job.state() == v1::JOB_STATE_RUNNING ||
                             job->second.job.state() == v1::JOB_STATE_PAUSED)) {
    job->second.returned.push_back(std::move(lease.task));
  }
  ReleaseWaitersLocked(key);
}

void Coordinator::ExpireLeases() {
  std::lock_guard<std::mutex> lock(mu_);
  ExpireLeasesLocked();
}

void Coordinator::ExpireLeasesLocked() {
  const TimePoint now = clock_.Now();
  std::vector<int64_t> expired;
  for (const auto& [id, lease] : leases_) {
    if (lease.deadline <= now) expired.push_back(id);
  }
  for (int64_t id : expired) {
    auto job = jobs_.find(leases_[id].task.job_id());
    metrics::LeaseExpired(job == jobs_.end() ? "" : job->second.job.spec().teacher());
    ReturnLeaseLocked(id);
  }
}

// ---------------------------------------------------------------- Reports

absl::StatusOr<v1::ReportResponse> Coordinator::Report(
    const v1::ReportRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
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
  const std::string worker_name = w->second.name;
  v1::ReportResponse response;
  ReportCommit commit;
  for (const v1::TaskResult& result : request.results()) {
    bool ignored = false;
    RETURN_IF_ERROR(CommitResultLocked(result, request.worker_id(),
                                       worker_name, &commit, &ignored));
    if (ignored) {
      response.set_ignored(response.ignored() + 1);
    } else {
      response.set_accepted(response.accepted() + 1);
    }
  }
  RETURN_IF_ERROR(FinishReportLocked(commit));
  if (commit.refused > 0) {
    spdlog::warn("{} results from worker {} ignored: it never held their "
                 "tasks ({})",
                 commit.refused, request.worker_id(),
                 workers_.count(request.worker_id()) > 0
                     ? "a known worker"
                     : "an unknown worker, e.g. from before a restart");
  }
  metrics::ReportedResults(response.accepted(), response.ignored());
  return response;
}

void Coordinator::NoteHolderLocked(const v1::Task& task,
                                   const std::string& worker_id) {
  constexpr size_t kHoldersPerTask = 4;
  const TaskId id{task.job_id(), task.prompt_seq(), task.sample()};
  auto [it, added] = holders_.try_emplace(id);
  if (added) {
    it->second.generation = next_holder_generation_++;
    holder_order_.emplace_back(id, it->second.generation);
  }
  std::vector<std::string>& workers = it->second.workers;
  workers.erase(std::remove(workers.begin(), workers.end(), worker_id),
                workers.end());
  workers.push_back(worker_id);
  if (workers.size() > kHoldersPerTask) workers.erase(workers.begin());
  // Order entries of settled tasks linger until they reach the front, so
  // the queue, not the map, is what the bound holds to.
  while (holder_order_.size() > options_.remembered_lease_holders) {
    const auto& [oldest, generation] = holder_order_.front();
    if (auto o = holders_.find(oldest);
        o != holders_.end() && o->second.generation == generation) {
      holders_.erase(o);
    }
    holder_order_.pop_front();
  }
}

bool Coordinator::HeldByLocked(const v1::TaskResult& result,
                               const std::string& worker_id) {
  auto same_task = [&](const LeaseInfo& lease) {
    return lease.worker_id == worker_id &&
           lease.task.job_id() == result.job_id() &&
           lease.task.prompt_seq() == result.prompt_seq() &&
           lease.task.sample() == result.sample();
  };
  if (auto it = leases_.find(result.lease_id());
      it != leases_.end() && same_task(it->second)) {
    return true;
  }
  if (auto key = inflight_keys_.find(result.request_key());
      key != inflight_keys_.end()) {
    if (auto it = leases_.find(key->second);
        it != leases_.end() && same_task(it->second)) {
      return true;
    }
  }
  auto holders = holders_.find(
      TaskId{result.job_id(), result.prompt_seq(), result.sample()});
  if (holders == holders_.end()) return false;
  const std::vector<std::string>& workers = holders->second.workers;
  return std::find(workers.begin(), workers.end(), worker_id) != workers.end();
}

absl::Status Coordinator::FinishReportLocked(ReportCommit& commit) {
  for (auto& [job_id, job] : commit.jobs) commit.batch.jobs.push_back(job);
  if (!commit.batch.empty()) RETURN_IF_ERROR(store_.Apply(commit.batch));
  // Settled tasks need no holders any more (a later result is ignored as
  // late anyway); forgotten only now that the settling is stored.
  for (const auto& [id, index] : commit.tasks) {
    const v1::TaskState state = commit.batch.tasks[index].state();
    if (state == v1::TASK_STATE_DONE || state == v1::TASK_STATE_FAILED) {
      holders_.erase(id);
    }
  }
  const int64_t now_ms = clock_.WallMillis();
  for (auto& [job_id, job] : commit.jobs) {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) continue;
    LogStateChange(it->second.job, job);
    it->second.job = std::move(job);
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
  return absl::OkStatus();
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
  if (auto it = leases_.find(result.lease_id());
      it != leases_.end() && it->second.task.request_key() == key &&
      it->second.task.job_id() == result.job_id()) {
    lease_current = true;
    ReleaseReservationLocked(it->second);
    leases_.erase(it);
    inflight_keys_.erase(key);
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
      rt.returned.push_back(std::move(task));
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

  if (result.failure() == v1::FAILURE_CLASS_UNSPECIFIED) {
    bool answered = commit->answers.count(key) > 0;
    if (!answered) {
      ASSIGN_OR_RETURN(answered, store_.HasAnswer(key));
    }
    c->set_teacher_requests(c->teacher_requests() + 1);
    const v1::Usage& u = result.answer().usage();
    c->set_prompt_tokens(c->prompt_tokens() + u.prompt_tokens());
    c->set_completion_tokens(c->completion_tokens() + u.completion_tokens());
    c->set_reasoning_tokens(c->reasoning_tokens() + u.reasoning_tokens());
    c->set_cached_tokens(c->cached_tokens() + u.cached_tokens());
    double cost = 0;
    if (const TeacherProfile* profile = ProfileFor(job.spec().teacher())) {
      cost = CostUsd(*profile, job.spec().model(), u.prompt_tokens(),
                     u.cached_tokens(), u.completion_tokens());
      c->set_cost_usd(c->cost_usd() + cost);
    }
    settled = "answered";
    if (answered) {
      // Another task with the same key won the race; keep the first answer.
      task.set_from_cache(true);
    } else {
      v1::Answer answer = result.answer();
      answer.set_cost_usd(cost);
      answer.set_request_key(key);
      answer.set_teacher(job.spec().teacher());
      answer.set_model(job.spec().model());
      *answer.mutable_params() = EffectiveParams(job.spec(), task.sample());
      answer.set_sample(task.sample());
      answer.set_worker(worker_name);
      if (answer.received_ms() == 0) answer.set_received_ms(clock_.WallMillis());
      const std::string hash = AnswerContentHash(answer.content());
      ASSIGN_OR_RETURN(
          std::optional<std::string> first,
          FindInBatchOrStore(commit->content, hash,
                             [&] { return store_.FindContent(hash); }));
      if (first && *first != key) {
        // Stored once: the duplicate keeps its provenance, not the text.
        answer.set_duplicate_of(*first);
        answer.clear_content();
        answer.clear_reasoning();
        answer.clear_reasoning_blocks();
        answer.clear_raw_body();
        task.set_duplicate(true);
        c->set_duplicate_answers(c->duplicate_answers() + 1);
        settled = "duplicate";
      } else {
        batch.content.emplace_back(hash, key);
        commit->content.emplace(hash, key);
        if (options_.near_duplicates_at_commit) {
          RETURN_IF_ERROR(IndexNearDuplicatesLocked(&answer, commit));
        }
        if (!answer.near_duplicate_of().empty()) {
          c->set_near_duplicate_answers(c->near_duplicate_answers() + 1);
        }
      }
      commit->answers.emplace(key, batch.answers.size());
      batch.answers.push_back(std::move(answer));
    }
    task.set_state(v1::TASK_STATE_DONE);
    task.clear_last_error();
    c->set_tasks_done(c->tasks_done() + 1);
  } else if (result.failure() == v1::FAILURE_CLASS_TEACHER_DOWN) {
    // No request to this teacher can succeed (bad key, no quota): pause the
    // teacher for the whole cluster rather than burn through its tasks. The
    // task waits, pending, for `distillery resume-teacher`.
    budget_.Pause(job.spec().teacher(), result.error());
    task.set_last_error(result.error());
    if (lease_current && rt.job.state() == v1::JOB_STATE_RUNNING) {
      rt.returned.push_back(task);
    }
  } else {
    task.set_state(v1::TASK_STATE_FAILED);
    task.set_last_error(result.error());
    c->set_tasks_failed(c->tasks_failed() + 1);
    settled = "failed";
  }
  commit->tasks[task_ref] = batch.tasks.size();
  batch.tasks.push_back(std::move(task));
  MaybeFinishLocked(job, batch);
  if (settled != nullptr) commit->settled.emplace_back(result.job_id(), settled);
  commit->release_keys.push_back(key);
  return absl::OkStatus();
}

absl::Status Coordinator::IndexNearDuplicatesLocked(v1::Answer* answer,
                                                    ReportCommit* commit) {
  answer->set_minhash(MinHashSignature(answer->content()));
  std::vector<std::string> checked;
  for (std::string& band : LshBandKeys(answer->minhash())) {
    ASSIGN_OR_RETURN(std::optional<std::string> first,
                     FindInBatchOrStore(commit->lsh, band,
                                        [&] { return store_.FindLsh(band); }));
    if (!first) {
      commit->lsh.emplace(band, answer->request_key());
      commit->batch.lsh.emplace_back(std::move(band), answer->request_key());
      continue;
    }
    if (!answer->near_duplicate_of().empty() ||
        *first == answer->request_key() ||
        std::find(checked.begin(), checked.end(), *first) != checked.end()) {
      continue;
    }
    checked.push_back(*first);
    std::optional<v1::Answer> other;
    if (auto in_batch = commit->answers.find(*first);
        in_batch != commit->answers.end()) {
      other = commit->batch.answers[in_batch->second];
    } else {
      ASSIGN_OR_RETURN(other, store_.GetAnswer(*first));
    }
    if (other && EstimateJaccard(answer->minhash(), other->minhash()) >=
                     kDefaultNearDuplicateThreshold) {
      answer->set_near_duplicate_of(*first);
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- Export

namespace {

// One export's keys in the store's scratch family: a be64 export id as
// prefix, all deleted when it goes (or at the next start after a crash).
class ExportScratch {
 public:
  ExportScratch(Store& store, int64_t export_id) : store_(store) {
    for (int i = 7; i >= 0; --i) {
      prefix_.push_back(static_cast<char>((export_id >> (8 * i)) & 0xff));
    }
  }
  ~ExportScratch() {
    std::string end = prefix_;
    for (int i = 7; i >= 0; --i) {  // the next id's prefix
      if (static_cast<unsigned char>(end[i]) != 0xff) {
        end[i] = static_cast<char>(static_cast<unsigned char>(end[i]) + 1);
        break;
      }
      end[i] = 0;
    }
    (void)store_.DeleteScratch(prefix_, end);
  }
  ExportScratch(const ExportScratch&) = delete;
  ExportScratch& operator=(const ExportScratch&) = delete;

  const std::string& prefix() const { return prefix_; }

 private:
  Store& store_;
  std::string prefix_;
};

// Exact repeats within one export: a stored answer that a second task got
// from the cache (a prompt repeated in the file, or asked again by a later
// job of the same export) is the same answer, and is emitted once. The keys
// emitted so far live in the export's scratch space, so memory stays flat.
class RepeatFilter {
 public:
  RepeatFilter(Store& store, int64_t export_id)
      : store_(store), scratch_(store, export_id) {}

  // True the first time `request_key` is seen; it is then remembered.
  absl::StatusOr<bool> FirstTime(const std::string& request_key) {
    const std::string key = scratch_.prefix() + request_key;
    ASSIGN_OR_RETURN(std::optional<std::string> seen, store_.FindScratch(key));
    if (seen) return false;
    StoreBatch batch;
    batch.scratch.emplace_back(key, std::string());
    RETURN_IF_ERROR(store_.Apply(batch));
    return true;
  }

 private:
  Store& store_;
  ExportScratch scratch_;
};

// Export-time near-duplicate removal. The LSH index of the answers emitted
// so far lives in the store's scratch family under this export's id, so
// memory stays flat however large the export; it is deleted at the end (or
// at the next start after a crash). Each bucket remembers the first answer
// emitted into it, and a record is checked against those (at most
// kMinHashBands point reads, plus one signature read per distinct
// candidate). A near-duplicate of an emitted answer that shares a bucket
// only with other, dissimilar emitted answers is missed; with 16 bands and
// J >= 0.85 (about 5 of 16 bands shared on average at J = 0.85, 16 of 16 at
// J = 1) that is rare, and the answer is kept, never wrongly dropped.
class NearDupFilter {
 public:
  NearDupFilter(Store& store, int64_t export_id, double threshold)
      : store_(store), threshold_(threshold), scratch_(store, export_id),
        prefix_(scratch_.prefix()) {}

  // True when `answer` should be emitted; then it joins the index.
  absl::StatusOr<bool> Admit(const v1::Answer& answer) {
    const std::string mine = SignatureOf(answer);
    const std::vector<std::string> bands = LshBandKeys(mine);
    StoreBatch batch;
    std::vector<std::string> checked;
    for (const std::string& band : bands) {
      const std::string key = prefix_ + band;
      ASSIGN_OR_RETURN(std::optional<std::string> first,
                       store_.FindScratch(key));
      if (!first) {
        batch.scratch.emplace_back(key, answer.request_key());
        continue;
      }
      if (std::find(checked.begin(), checked.end(), *first) != checked.end()) {
        continue;
      }
      checked.push_back(*first);
      // The same stored answer again (a cache hit, an overlapping job).
      if (*first == answer.request_key()) return false;
      ASSIGN_OR_RETURN(std::optional<v1::Answer> other,
                       store_.GetAnswer(*first));
      if (!other) continue;
      std::string signature = SignatureOf(*other);
      if (!other->duplicate_of().empty()) {
        ASSIGN_OR_RETURN(std::optional<v1::Answer> original,
                         store_.GetAnswer(other->duplicate_of()));
        if (original) signature = SignatureOf(*original);
      }
      if (EstimateJaccard(mine, signature) >= threshold_) {
        return false;
      }
    }
    if (!batch.empty()) RETURN_IF_ERROR(store_.Apply(batch));
    return true;
  }

 private:
  // The stored signature, or one computed now: answers committed with
  // --near-duplicates=export carry none.
  static std::string SignatureOf(const v1::Answer& answer) {
    if (!answer.minhash().empty() || answer.content().empty()) {
      return answer.minhash();
    }
    return MinHashSignature(answer.content());
  }

  Store& store_;
  const double threshold_;
  ExportScratch scratch_;
  const std::string prefix_;
};

}  // namespace

absl::Status Coordinator::Export(
    const v1::ExportRequest& request,
    const std::function<bool(v1::ExportRecord&&)>& emit) {
  if (request.job_ids().empty()) {
    return absl::InvalidArgumentError("export: no job given");
  }
  ASSIGN_OR_RETURN(ExportFilter filter, ExportFilter::Create(request));
  std::vector<v1::Job> jobs;
  for (const std::string& job_id : request.job_ids()) {
    ASSIGN_OR_RETURN(v1::Job job, GetJob(job_id));
    jobs.push_back(std::move(job));
  }
  std::optional<NearDupFilter> near_dups;
  if (request.near_dup_threshold() > 0 && !request.failed_only()) {
    ASSIGN_OR_RETURN(int64_t export_id, store_.NextSequence("export"));
    near_dups.emplace(store_, export_id, request.near_dup_threshold());
  }
  // Only cache hits can repeat an answer of the same export; without any,
  // no record pays for the check.
  bool any_cache_hits = false;
  for (const v1::Job& job : jobs) {
    any_cache_hits |= job.counters().cache_hits() > 0;
  }
  std::optional<RepeatFilter> repeats;
  if (any_cache_hits && !request.include_duplicates() &&
      !request.failed_only()) {
    ASSIGN_OR_RETURN(int64_t export_id, store_.NextSequence("export"));
    repeats.emplace(store_, export_id);
  }
  const bool want_done = !request.failed_only();
  const bool want_failed = request.failed_only() || request.include_failed();
  for (const v1::Job& job : jobs) {
    if (!filter.MatchesJob(job.spec())) continue;
    const std::string& job_id = job.id();
    absl::Status inner;
    bool stopped = false;
    // One record; false (setting `inner` or `stopped`) ends the export.
    auto export_record = [&](const v1::Task& task, const v1::Prompt& prompt,
                             std::optional<v1::Answer>* answer) -> bool {
      if (!filter.MatchesPrompt(prompt)) return true;
      v1::ExportRecord record;
      record.set_job_id(job_id);
      if (task.state() == v1::TASK_STATE_DONE) {
        if (!*answer) {
          inner = absl::DataLossError(
              absl::StrCat("job ", job_id, ": answer missing for ",
                           HexKey(task.request_key())));
          return false;
        }
        if (!(*answer)->duplicate_of().empty()) {
          if (!request.include_duplicates()) return true;
          // The text is the first answer's: without it the record would be
          // a duplicate with no content, so a failed or empty read ends the
          // export with the error instead.
          absl::StatusOr<std::optional<v1::Answer>> first =
              store_.GetAnswer((*answer)->duplicate_of());
          if (!first.ok() || !*first) {
            metrics::StoreError("export");
            inner = !first.ok()
                        ? first.status()
                        : absl::DataLossError(absl::StrCat(
                              "job ", job_id, ": the answer ",
                              HexKey(task.request_key()), " repeats ",
                              HexKey((*answer)->duplicate_of()),
                              ", which is missing"));
            return false;
          }
          (*answer)->set_content((*first)->content());
          (*answer)->set_reasoning((*first)->reasoning());
          (*answer)->set_reasoning_blocks((*first)->reasoning_blocks());
          (*answer)->set_minhash((*first)->minhash());
        }
        if (!filter.MatchesAnswer(**answer)) return true;
        if (repeats) {
          absl::StatusOr<bool> first = repeats->FirstTime(task.request_key());
          if (!first.ok()) {
            inner = first.status();
            return false;
          }
          if (!*first) return true;
        }
        if (near_dups) {
          absl::StatusOr<bool> admit = near_dups->Admit(**answer);
          if (!admit.ok()) {
            inner = admit.status();
            return false;
          }
          if (!*admit) return true;
        }
        // The signature is for the coordinator, and no export format
        // writes the raw body (kept in the store for provenance): keep them
        // off the wire, which halves an export's bytes.
        (*answer)->clear_minhash();
        (*answer)->clear_raw_body();
        *record.mutable_answer() = std::move(**answer);
      }
      *record.mutable_prompt() = prompt;
      *record.mutable_task() = task;
      metrics::RecordsExported(1);
      if (!emit(std::move(record))) {
        stopped = true;
        return false;
      }
      return true;
    };
    // Tasks are read in order and handled in batches, so that their prompts
    // and answers come from one MultiGet each instead of a read per record
    // (answers are keyed by request key: an export's reads are random).
    std::vector<v1::Task> batch;
    auto flush = [&]() -> bool {
      std::vector<int64_t> seqs;
      std::vector<std::string> keys;
      for (const v1::Task& t : batch) {
        if (seqs.empty() || seqs.back() != t.prompt_seq()) {
          seqs.push_back(t.prompt_seq());
        }
        if (t.state() == v1::TASK_STATE_DONE) keys.push_back(t.request_key());
      }
      absl::StatusOr<std::vector<std::optional<v1::Prompt>>> prompts =
          store_.GetPrompts(job_id, seqs);
      absl::StatusOr<std::vector<std::optional<v1::Answer>>> answers =
          store_.GetAnswers(keys);
      if (!prompts.ok() || !answers.ok()) {
        inner = prompts.ok() ? answers.status() : prompts.status();
        return false;
      }
      size_t p = 0, a = 0;
      for (const v1::Task& t : batch) {
        while (seqs[p] != t.prompt_seq()) ++p;
        if (!(*prompts)[p]) {
          inner = absl::DataLossError(absl::StrCat(
              "job ", job_id, ": prompt missing for task ", t.prompt_seq()));
          return false;
        }
        std::optional<v1::Answer> none;
        std::optional<v1::Answer>* answer =
            t.state() == v1::TASK_STATE_DONE ? &(*answers)[a++] : &none;
        if (!export_record(t, *(*prompts)[p], answer)) return false;
      }
      batch.clear();
      return true;
    };
    auto export_task = [&](const v1::Task& task) -> bool {
      const bool done = task.state() == v1::TASK_STATE_DONE;
      const bool failed = task.state() == v1::TASK_STATE_FAILED;
      if (!(done && want_done) && !(failed && want_failed)) return true;
      batch.push_back(task);
      return batch.size() < kExportReadBatch || flush();
    };
    RETURN_IF_ERROR(store_.ScanTasks(job_id, 0, 0, export_task));
    if (inner.ok() && !stopped && !batch.empty()) flush();
    RETURN_IF_ERROR(inner);
    if (stopped) return absl::OkStatus();
  }
  return absl::OkStatus();
}

}  // namespace distillery
