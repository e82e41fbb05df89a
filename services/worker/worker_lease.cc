// Worker, the lease/queue path: registering (again) with the coordinator,
// heartbeats (budget shares, revoked leases), leasing what the teachers'
// budgets can use, sending queued tasks when the budget allows, and taking
// each teacher's answer or failure (retry with backoff, or a result for the
// report path). Thread-safe: state is under mu_ (worker.h); teacher
// callbacks run on the HTTP client's loop thread.
#include <algorithm>
#include <cmath>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/base/json_string.h"
#include "common/job/task_request.h"
#include "common/metrics/metrics.h"
#include "services/worker/worker.h"

namespace distillery {
namespace {

const char* OutcomeName(FailureKind kind) {
  switch (kind) {
    case FailureKind::kRetryable:
      return "retryable";
    case FailureKind::kRateLimited:
      return "rate_limited";
    case FailureKind::kPermanent:
      return "permanent";
    case FailureKind::kTeacherDown:
      return "teacher_down";
  }
  return "unknown";
}

double Seconds(Duration d) {
  return std::chrono::duration<double>(d).count();
}

// Text from a teacher, made fit for a proto3 string field.
std::string Utf8(std::string text) {
  RepairUtf8(&text);
  return text;
}

}  // namespace

void Worker::RegisterUntilDone() {
  Duration delay = std::chrono::milliseconds(100);
  while (true) {
    v1::RegisterRequest request;
    request.set_name(options_.name);
    {
      // Built at each attempt: what is held changes while we retry.
      absl::MutexLock lock(&mu_);
      for (const TeacherState& t : teachers_) {
        request.add_teachers(t.config.profile.name);
      }
      for (v1::HeldTask& held : HeldTasksLocked()) {
        *request.add_held_tasks() = std::move(held);
      }
    }
    absl::StatusOr<v1::RegisterResponse> response =
        coordinator_.Register(request);
    absl::MutexLock lock(&mu_);
    if (response.ok()) {
      worker_id_ = response->worker_id();
      heartbeat_interval_ = std::chrono::milliseconds(
          std::max<int64_t>(50, response->heartbeat_ms()));
      next_heartbeat_ = clock_.Now();  // at once: budget shares come with it
      DropRevokedLocked(response->revoked_lease_ids());
      coordinator_reachable_ = true;
      if (request.held_tasks_size() > 0) {
        spdlog::info("worker registered again as {}: {} tasks held, {} "
                     "revoked", worker_id_, request.held_tasks_size(),
                     response->revoked_lease_ids_size());
      } else {
        spdlog::info("worker registered as {}", worker_id_);
      }
      return;
    }
    if (stopping_) return;
    spdlog::warn("cannot register with the coordinator ({}); retrying",
                 std::string(response.status().message()));
    clock_.AwaitWithDeadline(&mu_, absl::Condition(&stopping_),
                             clock_.Now() + delay);
    delay = std::min<Duration>(delay * 2, std::chrono::seconds(5));
  }
}

void Worker::HeartbeatIfDue() {
  v1::HeartbeatRequest request;
  int64_t heartbeat = 0;  // its number
  {
    absl::MutexLock lock(&mu_);
    const TimePoint now = clock_.Now();
    // Early when work waits for a first share (a new or idle worker), or
    // the teacher showed a limit the coordinator does not know yet.
    bool waiting_for_share = false;
    for (const TeacherState& t : teachers_) {
      waiting_for_share |= t.busy > 0 && t.limiter->WantsHeartbeatNow();
      // Work found since the last report said none, or no share granted.
      waiting_for_share |= DemandLocked(t) > 0 && t.reported_demand == 0;
      waiting_for_share |= StarvedLocked(t);
    }
    const bool early = waiting_for_share &&
                       now - last_heartbeat_ >= std::chrono::milliseconds(100);
    if (now < next_heartbeat_ && !early) return;
    next_heartbeat_ = now + heartbeat_interval_;
    last_heartbeat_ = now;
    heartbeat = ++heartbeats_begun_;
    request.set_worker_id(worker_id_);
    for (int64_t id : held_leases_) request.add_held_lease_ids(id);
    for (int64_t id : held_steps_) request.add_held_lease_ids(id);
    for (TeacherState& t : teachers_) {
      t.reported_demand = DemandLocked(t);
      t.limiter->TakeReport(t.reported_demand, request.add_demands());
    }
  }
  absl::StatusOr<v1::HeartbeatResponse> response =
      coordinator_.Heartbeat(request);
  NoteCoordinatorCall(response.status(), response.ok() && response->known());
  if (!response.ok()) {
    spdlog::warn("heartbeat failed: {}", std::string(response.status().message()));
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    for (const v1::BudgetShare& share : response->shares()) {
      for (TeacherState& t : teachers_) {
        if (t.config.profile.name == share.teacher()) {
          if (share.paused()) {  // the coordinator knows: no hold needed
            t.down_leases.clear();
            t.pause_held_through = 0;
          }
          t.limiter->ApplyShare(share,
                                /*keep_paused=*/!t.down_leases.empty() ||
                                    heartbeat <= t.pause_held_through);
          const double per_minute =
              share.window_ms() > 0 ? 60000.0 / share.window_ms() : 0;
          metrics::BudgetShare(
              share.teacher(),
              share.requests_limited()
                  ? share.requests_per_window() * per_minute : 0,
              share.tokens_limited() ? share.tokens_per_window() * per_minute
                                     : 0,
              share.max_concurrency());
          if (StarvedLocked(t)) {
            GiveBackQueuedLocked(
                t, "the worker has no concurrency share for this teacher yet");
          }
        }
      }
    }
    DropRevokedLocked(response->revoked_lease_ids());
  }
  if (!response->known()) {
    spdlog::warn("coordinator does not know this worker; registering again");
    RegisterUntilDone();
  }
}

void Worker::NoteCoordinatorCall(const absl::Status& status, bool knows_us) {
  absl::MutexLock lock(&mu_);
  if (absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status)) {
    coordinator_reachable_ = false;
  } else if (knows_us) {
    // Only an answer that shows it knows us: a coordinator back from a
    // restart has not taken our leases back before we register again.
    coordinator_reachable_ = true;
  }
}

std::vector<v1::HeldTask> Worker::HeldTasksLocked() {
  std::map<int64_t, v1::HeldTask> held;
  // LeasedTask and TaskResult name a task with the same fields.
  auto add = [&](const auto& t) {
    v1::HeldTask& h = held[t.lease_id()];
    h.set_job_id(t.job_id());
    h.set_prompt_seq(t.prompt_seq());
    h.set_sample(t.sample());
    h.set_request_key(t.request_key());
    h.set_lease_id(t.lease_id());
  };
  for (const TeacherState& t : teachers_) {
    for (const Pending& p : t.queue) add(p.task);
  }
  for (const auto& [when, p] : retries_) add(p.task);
  for (const auto& [id, p] : in_flight_) {
    if (!revoked_in_flight_.count(id) && !given_back_.count(id)) add(p.task);
  }
  for (const v1::TaskResult& r : results_) {
    if (r.failure() != v1::FAILURE_CLASS_ABANDONED) add(r);
  }
  std::vector<v1::HeldTask> out;
  for (auto& [id, h] : held) out.push_back(std::move(h));
  return out;
}

void Worker::DropRevokedLocked(
    const google::protobuf::RepeatedField<int64_t>& ids) {
  if (ids.empty()) return;
  const std::set<int64_t> revoked(ids.begin(), ids.end());
  int dropped = 0;
  auto drop = [&](const Pending& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!revoked.count(p.task.lease_id())) return false;
    held_leases_.erase(p.task.lease_id());
    --teachers_[p.teacher_index].busy;
    ++dropped;
    return true;
  };
  for (TeacherState& t : teachers_) {
    t.queue.erase(std::remove_if(t.queue.begin(), t.queue.end(), drop),
                  t.queue.end());
  }
  for (auto it = retries_.begin(); it != retries_.end();) {
    it = drop(it->second) ? retries_.erase(it) : std::next(it);
  }
  // Already sent: the answer is still reported (the coordinator keeps it if
  // the task is not done), but a failure is not retried.
  for (int64_t id : revoked) {
    if (in_flight_.count(id)) {
      revoked_in_flight_.insert(id);
      held_leases_.erase(id);
    }
  }
  if (dropped > 0) {
    spdlog::info("dropped {} unsent tasks whose leases were revoked (job "
                 "cancelled or lease lost)",
                 dropped);
  }
}

bool Worker::HoldsNothingLocked() const {
  if (!retries_.empty()) return false;
  for (const TeacherState& t : teachers_) {
    if (t.busy > 0) return false;
  }
  return true;
}

bool Worker::IdleLocked() const {
  return !stopping_ && results_.empty() && results_reporting_ == 0 &&
         HoldsNothingLocked();
}

void Worker::LeaseMore() {
  int leased_this_pass = 0;
  for (size_t i = 0;; ++i) {
    v1::LeaseRequest request;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ || i >= teachers_.size()) break;
      // Results not yet acknowledged (waiting, or in the report in
      // progress): when twice a report's worth wait, the coordinator is the
      // slower side, and more work would only pile up here.
      if (static_cast<int>(results_.size()) + results_reporting_ >=
          2 * options_.report_batch) {
        break;
      }
      TeacherState& t = teachers_[i];
      if (t.limiter->Paused()) continue;
      const int free = HoldCapLocked(t) - t.busy;
      if (free <= 0) continue;
      request.set_worker_id(worker_id_);
      request.set_max_tasks(free);
      request.add_teachers(t.config.profile.name);
      // The last teacher's lease of a pass in which nothing came: with
      // nothing held, nothing else is due before work appears.
      if (i + 1 == teachers_.size() && leased_this_pass == 0 && IdleLocked()) {
        request.set_wait_ms(static_cast<int32_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(
                options_.lease_wait)
                .count()));
      }
    }
    const TimePoint asked = clock_.Now();
    absl::StatusOr<v1::LeaseResponse> response = coordinator_.Lease(request);
    NoteCoordinatorCall(response.status(), response.ok());
    if (!response.ok()) {
      if (absl::IsFailedPrecondition(response.status())) {
        // The coordinator restarted and forgot us.
        RegisterUntilDone();
      } else {
        spdlog::warn("lease failed: {}", std::string(response.status().message()));
      }
      return;
    }
    absl::MutexLock lock(&mu_);
    // An empty answer to a long poll came at its end: the loop asks again
    // without sleeping idle_poll. (Measured, so that a coordinator which
    // ignores wait_ms is not asked in a tight loop.)
    if (request.wait_ms() > 0 && response->tasks_size() == 0 &&
        clock_.Now() - asked >= options_.lease_wait / 2) {
      lease_waited_ = true;
    }
    leased_this_pass += response->tasks_size();
    teachers_[i].more_work = response->tasks_size() > 0;
    for (v1::LeasedTask& task : *response->mutable_tasks()) {
      held_leases_.insert(task.lease_id());
      ++teachers_[i].busy;
      Pending p;
      p.task = std::move(task);
      p.teacher_index = static_cast<int>(i);
      p.request = ToTeacherRequest(p.task);
      teachers_[i].queue.push_back(std::move(p));
    }
  }
}

int64_t Worker::DemandLocked(const TeacherState& t) const {
  if (t.more_work) return std::max(t.busy, options_.max_in_flight);
  return t.busy;
}

bool Worker::StarvedLocked(const TeacherState& t) const {
  const TeacherLimiter& limiter = *t.limiter;
  return t.config.profile.max_concurrency > 0 && limiter.HasShare() &&
         limiter.ConcurrencyCap() == 0 && t.reported_demand > 0 &&
         !limiter.Paused();
}

void Worker::GiveBackQueuedLocked(TeacherState& t, const char* why) {
  if (t.queue.empty()) return;
  spdlog::debug("giving back {} tasks for {}: {}", t.queue.size(),
                t.config.profile.name, why);
  while (!t.queue.empty()) {
    Pending pending = std::move(t.queue.front());
    t.queue.pop_front();
    v1::TaskResult r;
    r.set_failure(v1::FAILURE_CLASS_ABANDONED);
    r.set_error(why);
    Finish(pending, std::move(r));
  }
}

int Worker::HoldCapLocked(TeacherState& t) {
  const TeacherLimiter& limiter = *t.limiter;
  if (StarvedLocked(t)) return 0;  // nothing it could send
  if ((limiter.NeedsShare() && !limiter.HasShare()) ||
      limiter.ConcurrencyCap() == 0) {
    // No share yet, or none while this worker asked for none: enough to
    // find work and show the demand.
    return 4;
  }
  int cap = options_.max_in_flight;
  const double rps = limiter.RequestsPerSecond();
  if (rps > 0) {
    // About two seconds of the share, beyond what is in flight.
    cap = std::min(cap, t.in_flight + std::max(4, static_cast<int>(
                                                      std::ceil(rps * 2))));
  }
  const int concurrency = limiter.ConcurrencyCap();
  if (concurrency > 0) cap = std::min(cap, 2 * concurrency);
  return std::max(cap, 1);
}

Duration Worker::DispatchReady() {
  std::vector<Pending> batch;
  Duration wait = Duration::max();
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || !coordinator_reachable_) return options_.idle_poll;
    for (TeacherState& t : teachers_) {
      while (!t.queue.empty() && t.in_flight < t.limiter->ConcurrencyCap()) {
        Pending& front = t.queue.front();
        const bool use_n = t.config.profile.use_n && !t.n_refused;
        // Several choices: the prompt once, a completion per choice.
        const double estimate =
            EstimateRequestTokens(front.request) +
            (use_n ? CountRidersLocked(t) * CompletionEstimate(front.request)
                   : 0.0);
        if (!t.limiter->TryAcquire(estimate)) {
          wait = std::min(wait, t.limiter->TimeUntilReady(estimate));
          break;
        }
        front.reserved_tokens = estimate;
        ++t.in_flight;
        Pending sending = std::move(front);
        t.queue.pop_front();
        if (use_n) TakeRidersLocked(t, &sending);
        NoteInFlightLocked(sending);
        for (const Pending& rider : sending.riders) NoteInFlightLocked(rider);
        batch.push_back(std::move(sending));
      }
    }
  }
  if (!batch.empty()) Dispatch(std::move(batch));
  return wait;
}

void Worker::NoteInFlightLocked(const Pending& p) {
  Pending& stub = in_flight_[p.task.lease_id()];
  stub.task.set_job_id(p.task.job_id());
  stub.task.set_prompt_seq(p.task.prompt_seq());
  stub.task.set_sample(p.task.sample());
  stub.task.set_request_key(p.task.request_key());
  stub.task.set_lease_id(p.task.lease_id());
  stub.teacher_index = p.teacher_index;
  stub.attempts = p.attempts + 1;  // this one is under way
}

// Samples of one prompt differ only in their seed (task_request.h); the
// request sends the head's. A sample that went through a retry travels
// alone, so one bad answer cannot hold its siblings back twice.
bool Worker::CanRide(const Pending& head, const Pending& p) {
  return head.attempts == 0 && p.attempts == 0 &&
         p.task.job_id() == head.task.job_id() &&
         p.task.prompt_seq() == head.task.prompt_seq();
}

int Worker::CountRidersLocked(const TeacherState& t) {
  int riders = 0;
  for (size_t i = 1; i < t.queue.size() && riders + 1 < kMaxChoices; ++i) {
    riders += CanRide(t.queue.front(), t.queue[i]);
  }
  return riders;
}

void Worker::TakeRidersLocked(TeacherState& t, Pending* front) {
  for (auto it = t.queue.begin();
       it != t.queue.end() && front->riders.size() + 1 < kMaxChoices;) {
    if (CanRide(*front, *it)) {
      front->riders.push_back(std::move(*it));
      it = t.queue.erase(it);
    } else {
      ++it;
    }
  }
  front->request.choices = static_cast<int>(front->riders.size()) + 1;
}

void Worker::SendAloneLocked(Pending p) {
  in_flight_.erase(p.task.lease_id());
  if (given_back_.count(p.task.lease_id()) ||
      revoked_in_flight_.count(p.task.lease_id())) {
    // Not ours to send any more: settled (given back, or dropped) as any
    // request that did not succeed.
    TeacherResult none;
    none.status = absl::UnavailableError("sent again alone after n was refused");
    none.kind = FailureKind::kRetryable;
    SettleLocked(p, std::move(none), 0);
    return;
  }
  p.request.choices = 1;
  teachers_[p.teacher_index].queue.push_front(std::move(p));
}

void Worker::Dispatch(std::vector<Pending> batch) {
  for (Pending& p : batch) {
    Teacher* teacher;
    // teachers_ is fixed after construction, so the name stays put.
    const std::string* name;
    {
      absl::MutexLock lock(&mu_);
      teacher = teachers_[p.teacher_index].config.teacher;
      name = &teachers_[p.teacher_index].config.profile.name;
      ++requests_sent_;
    }
    p.started = clock_.Now();
    ++p.attempts;
    metrics::InFlight(*name, 1);
    // The callback may run on this thread (fakes) or the HTTP loop thread.
    auto shared = std::make_shared<Pending>(std::move(p));
    const TeacherRequest& request = shared->request;
    teacher->Ask(request, [this, shared](TeacherResult result) {
      OnTeacherResult(std::move(*shared), std::move(result));
    });
  }
}

Duration Worker::Backoff(int attempts, const TeacherResult& result) {
  if (result.retry_after) {
    return std::clamp<Duration>(*result.retry_after, Duration(0),
                                options_.max_retry_after);
  }
  // As the official OpenAI client: min(0.5 * 2^k, 8) s, minus up to 25%.
  const double base = std::min(0.5 * std::pow(2.0, attempts - 1), 8.0);
  const double jittered = base * (1.0 - 0.25 * random_());
  return std::chrono::duration_cast<Duration>(
      std::chrono::duration<double>(jittered));
}

void Worker::OnTeacherResult(Pending pending, TeacherResult result) {
  const Duration latency = clock_.Now() - pending.started;
  absl::MutexLock lock(&mu_);
  TeacherState& state = teachers_[pending.teacher_index];
  const TeacherProfile& profile = state.config.profile;
  --state.in_flight;
  slot_freed_ = true;
  state.limiter->OnResult(result, pending.reserved_tokens);
  metrics::InFlight(profile.name, -1);
  metrics::TeacherRequest(profile.name, pending.task.model(),
                          result.http_status,
                          result.status.ok() ? "ok" : OutcomeName(result.kind),
                          Seconds(latency));
  if (pending.riders.empty()) {
    SettleLocked(pending, std::move(result), 0);
    return;
  }
  // A request for several choices (use_n).
  std::vector<Pending> riders = std::move(pending.riders);
  for (Pending& rider : riders) rider.started = pending.started;
  const int asked = pending.request.choices;
  if (!result.status.ok() && result.kind == FailureKind::kPermanent &&
      (result.http_status == 400 || result.http_status == 422)) {
    // The server refuses n > 1 (or the request is bad anyway: then each
    // sample fails alone, as it would have). Once per profile.
    if (!state.n_refused) {
      spdlog::warn("teacher {} refused a request for {} choices (HTTP {}: "
                   "{}); use_n is off for it until this worker restarts: one "
                   "request per sample",
                   profile.name, asked, result.http_status,
                   std::string(result.status.message()));
    }
    state.n_refused = true;
    --pending.attempts;  // not counted: it is sent again as asked
    SendAloneLocked(std::move(pending));
    for (Pending& rider : riders) SendAloneLocked(std::move(rider));
    return;
  }
  if (!result.status.ok()) {
    // Any other failure: each sample retries or fails on its own.
    for (Pending& rider : riders) {
      ++rider.attempts;
      SettleLocked(rider, result, 0);
    }
    SettleLocked(pending, std::move(result), 0);
    return;
  }
  std::vector<TeacherAnswer> more = std::move(result.more_choices);
  if (more.size() + 1 < static_cast<size_t>(asked)) {
    if (!state.n_refused) {
      spdlog::warn("teacher {} answered {} of {} choices asked for; use_n is "
                   "off for it until this worker restarts",
                   profile.name, more.size() + 1, asked);
    }
    state.n_refused = true;
  }
  const int http_status = result.http_status;
  SettleLocked(pending, std::move(result), 0);
  for (size_t i = 0; i < riders.size(); ++i) {
    if (i >= more.size()) {
      SendAloneLocked(std::move(riders[i]));
      continue;
    }
    TeacherResult choice;
    choice.status = absl::OkStatus();
    choice.http_status = http_status;
    choice.answer = std::move(more[i]);
    ++riders[i].attempts;
    SettleLocked(riders[i], std::move(choice), static_cast<int>(i) + 1);
  }
}

void Worker::SettleLocked(Pending& pending, TeacherResult result,
                          int choice_index) {
  const Duration latency = clock_.Now() - pending.started;
  TeacherState& state = teachers_[pending.teacher_index];
  const TeacherProfile& profile = state.config.profile;
  const std::string& model = pending.task.model();
  const int64_t lease_id = pending.task.lease_id();
  in_flight_.erase(lease_id);
  if (given_back_.erase(lease_id) > 0) return;  // reported ABANDONED already
  const bool revoked = revoked_in_flight_.erase(lease_id) > 0;
  v1::TaskResult r;
  if (result.status.ok()) {
    // The result is ours: its texts (the raw body is the largest) move into
    // the report rather than being copied under the lock.
    TeacherAnswer& a = result.answer;
    const TokenUsage usage = a.usage;
    FillAnswerProto(std::move(a), clock_.WallMillis(),
                    std::chrono::duration_cast<std::chrono::milliseconds>(
                        latency)
                        .count(),
                    r.mutable_answer());
    r.mutable_answer()->set_choice_index(choice_index);
    // Not streamed yet: the first token arrives with the whole answer.
    metrics::TimeToFirstToken(profile.name, model, Seconds(latency));
    metrics::Tokens(profile.name, model, "prompt", usage.prompt_tokens);
    metrics::Tokens(profile.name, model, "completion",
                    usage.completion_tokens);
    metrics::Tokens(profile.name, model, "reasoning", usage.reasoning_tokens);
    metrics::Tokens(profile.name, model, "cached", usage.cached_tokens);
    metrics::CostUsd(profile.name, model,
                     CostUsd(profile, model, usage.prompt_tokens,
                             usage.cached_tokens, usage.completion_tokens));
    Finish(pending, std::move(r));
    return;
  }
  const bool retryable = result.kind == FailureKind::kRetryable ||
                         result.kind == FailureKind::kRateLimited;
  if (retryable && pending.attempts < profile.max_attempts && !stopping_ &&
      !revoked) {
    const Duration wait = Backoff(pending.attempts, result);
    const TimePoint due = clock_.Now() + wait;
    metrics::Retry(profile.name, model,
                   result.kind == FailureKind::kRateLimited ? "rate_limited"
                                                            : "retryable",
                   Seconds(wait));
    spdlog::debug("task {}/{} attempt {} failed ({}); retrying",
                  pending.task.job_id(), pending.task.prompt_seq(),
                  pending.attempts, std::string(result.status.message()));
    pending.request.choices = 1;
    retries_.emplace(due, std::move(pending));
    return;
  }
  switch (result.kind) {
    case FailureKind::kRetryable:
    case FailureKind::kRateLimited:
      r.set_failure((stopping_ || revoked) &&
                            pending.attempts < profile.max_attempts
                        ? v1::FAILURE_CLASS_ABANDONED
                        : v1::FAILURE_CLASS_RETRYABLE);
      break;
    case FailureKind::kPermanent:
      r.set_failure(v1::FAILURE_CLASS_PERMANENT);
      break;
    case FailureKind::kTeacherDown:
      r.set_failure(v1::FAILURE_CLASS_TEACHER_DOWN);
      break;
  }
  // An error page may be in any charset (a Latin-1 HTML 400).
  r.set_error(Utf8(absl::StrCat(result.status.message(), " (after ",
                                pending.attempts, " attempts)")));
  Finish(pending, std::move(r));
}

}  // namespace distillery
