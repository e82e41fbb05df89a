#include "services/worker/worker.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <deque>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/base/json_string.h"
#include "common/metrics/metrics.h"

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

// Errors that say nothing about a report's content: the coordinator is away,
// slow or not letting us in. The report is kept whole and sent again.
bool IsTransientReportError(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) ||
         absl::IsCancelled(status) || absl::IsUnauthenticated(status) ||
         absl::IsPermissionDenied(status);
}

// A failure result in place of `original`, which cannot be committed (too
// large for a message, or refused by the coordinator): the task settles
// with the reason, and its lease ends, instead of being resent forever.
v1::TaskResult FailureInsteadOf(const v1::TaskResult& original,
                                std::string_view reason) {
  constexpr size_t kMaxReason = 1000;
  v1::TaskResult r;
  r.set_job_id(original.job_id());
  r.set_prompt_seq(original.prompt_seq());
  r.set_sample(original.sample());
  r.set_request_key(original.request_key());
  r.set_lease_id(original.lease_id());
  r.set_attempts(original.attempts());
  r.set_failure(original.has_answer() ||
                        original.failure() == v1::FAILURE_CLASS_UNSPECIFIED
                    ? v1::FAILURE_CLASS_PERMANENT
                    : original.failure());
  r.set_error(Utf8(std::string(reason.substr(0, kMaxReason))));
  return r;
}

}  // namespace

Worker::Worker(CoordinatorClient& coordinator,
               std::vector<WorkerTeacher> teachers, Clock& clock,
               WorkerOptions options, std::function<double()> random)
    : coordinator_(coordinator),
      clock_(clock),
      options_(std::move(options)),
      random_(std::move(random)) {
  if (!random_) {
    auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
    auto mu = std::make_shared<std::mutex>();
    random_ = [engine, mu] {
      std::lock_guard<std::mutex> lock(*mu);
      return std::uniform_real_distribution<double>(0.0, 1.0)(*engine);
    };
  }
  for (WorkerTeacher& t : teachers) {
    TeacherState state;
    state.limiter = std::make_unique<TeacherLimiter>(
        clock_, t.profile, options_.max_in_flight, options_.max_retry_after);
    state.config = std::move(t);
    teachers_.push_back(std::move(state));
  }
}

int64_t Worker::requests_sent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_sent_;
}

int64_t Worker::results_reported() const {
  std::lock_guard<std::mutex> lock(mu_);
  return results_reported_;
}

void Worker::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stopping_ = true;
  wake_.notify_all();
}

void Worker::RegisterUntilDone() {
  Duration delay = std::chrono::milliseconds(100);
  while (true) {
    v1::RegisterRequest request;
    request.set_name(options_.name);
    {
      // Built at each attempt: what is held changes while we retry.
      std::lock_guard<std::mutex> lock(mu_);
      for (const TeacherState& t : teachers_) {
        request.add_teachers(t.config.profile.name);
      }
      for (v1::HeldTask& held : HeldTasksLocked()) {
        *request.add_held_tasks() = std::move(held);
      }
    }
    absl::StatusOr<v1::RegisterResponse> response =
        coordinator_.Register(request);
    std::unique_lock<std::mutex> lock(mu_);
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
    wake_.wait_for(lock, delay, [&] { return stopping_; });
    delay = std::min<Duration>(delay * 2, std::chrono::seconds(5));
  }
}

absl::Status Worker::Run() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (teachers_.empty()) {
      return absl::FailedPreconditionError(
          "worker has no usable teacher profile");
    }
  }
  RegisterUntilDone();
  TimePoint drain_deadline{};
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      slot_freed_ = false;
      const TimePoint now = clock_.Now();
      if (stopping_) {
        if (drain_deadline == TimePoint{}) {
          drain_deadline = now + options_.drain_timeout;
          spdlog::info("worker draining: {} tasks held", held_leases_.size());
        }
        // Tasks waiting for a retry go back unattempted-now; the coordinator
        // hands them to another worker.
        for (auto& [when, pending] : retries_) {
          v1::TaskResult r;
          r.set_failure(v1::FAILURE_CLASS_ABANDONED);
          r.set_error("worker stopping");
          Finish(pending, std::move(r));
        }
        retries_.clear();
        for (TeacherState& t : teachers_) {
          while (!t.queue.empty()) {
            Pending pending = std::move(t.queue.front());
            t.queue.pop_front();
            v1::TaskResult r;
            r.set_failure(v1::FAILURE_CLASS_ABANDONED);
            r.set_error("worker stopping");
            Finish(pending, std::move(r));
          }
        }
        // Requests the drain could not wait for go back too, so that the
        // coordinator leases them again at once instead of at their
        // deadline; their answers, if any come, are not reported.
        if (now >= drain_deadline && !in_flight_.empty()) {
          GiveBackInFlightLocked();
        }
        bool busy = false;
        for (const TeacherState& t : teachers_) busy |= t.busy > 0;
        if (!busy && results_.empty()) break;
        if (now >= drain_deadline + options_.final_report_timeout) {
          spdlog::error("worker stopping with {} results it could not "
                        "report; their tasks return at their lease deadline",
                        results_.size());
          break;
        }
      } else {
        // Retries wait for budget like everything else, ahead of new work.
        for (auto it = retries_.begin();
             it != retries_.end() && it->first <= now;) {
          TeacherState& t = teachers_[it->second.teacher_index];
          t.queue.push_front(std::move(it->second));
          it = retries_.erase(it);
        }
      }
    }
    HeartbeatIfDue();
    ReportSome(/*force=*/false);
    LeaseMore();
    const Duration budget_wait = DispatchReady();

    std::unique_lock<std::mutex> lock(mu_);
    Duration wait = std::min<Duration>(options_.idle_poll, budget_wait);
    if (!results_.empty()) {
      const TimePoint due =
          std::max(oldest_result_ + options_.report_delay, report_retry_at_);
      wait = std::min<Duration>(
          wait, std::max<Duration>(Duration(0), due - clock_.Now()));
    }
    if (!retries_.empty()) {
      wait = std::min<Duration>(
          wait, std::max<Duration>(Duration(0),
                                   retries_.begin()->first - clock_.Now()));
    }
    // While draining, stopping_ stays set: it must not end every wait.
    const bool drain_started = drain_deadline != TimePoint{};
    wake_.wait_for(lock, wait, [&] {
      return (stopping_ && !drain_started) || slot_freed_ ||
             (static_cast<int>(results_.size()) >= options_.report_batch &&
              clock_.Now() >= report_retry_at_);
    });
  }
  // Every result was paid for. The drain above retried failed reports until
  // its deadline; a few more attempts (with the backoff) give a coordinator
  // that is just coming back its chance.
  constexpr int kFinalReportAttempts = 5;
  for (int attempt = 1; !ReportSome(/*force=*/true); ++attempt) {
    std::unique_lock<std::mutex> lock(mu_);
    if (attempt >= kFinalReportAttempts) {
      spdlog::error("worker stopping with {} results the coordinator did not "
                    "acknowledge",
                    results_.size());
      break;
    }
    const Duration wait = std::max<Duration>(
        std::chrono::milliseconds(1), report_retry_at_ - clock_.Now());
    wake_.wait_for(lock, wait, [] { return false; });
  }
  spdlog::info("worker stopped after {} teacher requests", requests_sent());
  return absl::OkStatus();
}

void Worker::HeartbeatIfDue() {
  v1::HeartbeatRequest request;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const TimePoint now = clock_.Now();
    // Early when work waits for a first share (a new or idle worker).
    bool waiting_for_share = false;
    for (const TeacherState& t : teachers_) {
      waiting_for_share |= t.busy > 0 && t.limiter->NeedsShare() &&
                           !t.limiter->HasShare();
    }
    const bool early = waiting_for_share &&
                       now - last_heartbeat_ >= std::chrono::milliseconds(100);
    if (now < next_heartbeat_ && !early) return;
    next_heartbeat_ = now + heartbeat_interval_;
    last_heartbeat_ = now;
    request.set_worker_id(worker_id_);
    for (int64_t id : held_leases_) request.add_held_lease_ids(id);
    for (TeacherState& t : teachers_) {
      t.limiter->TakeReport(t.busy, request.add_demands());
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
    std::lock_guard<std::mutex> lock(mu_);
    for (const v1::BudgetShare& share : response->shares()) {
      for (TeacherState& t : teachers_) {
        if (t.config.profile.name == share.teacher()) {
          t.limiter->ApplyShare(share);
          const double per_minute =
              share.window_ms() > 0 ? 60000.0 / share.window_ms() : 0;
          metrics::BudgetShare(
              share.teacher(),
              share.requests_limited()
                  ? share.requests_per_window() * per_minute : 0,
              share.tokens_limited() ? share.tokens_per_window() * per_minute
                                     : 0,
              share.max_concurrency());
        }
      }
    }
    DropRevokedLocked(response->revoked_lease_ids());
    wake_.notify_all();
  }
  if (!response->known()) {
    spdlog::warn("coordinator does not know this worker; registering again");
    RegisterUntilDone();
  }
}

void Worker::NoteCoordinatorCall(const absl::Status& status, bool knows_us) {
  std::lock_guard<std::mutex> lock(mu_);
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
  auto drop = [&](const Pending& p) {
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

void Worker::GiveBackInFlightLocked() {
  for (auto& [id, stub] : in_flight_) {
    if (!given_back_.insert(id).second) continue;
    v1::TaskResult r;
    r.set_failure(v1::FAILURE_CLASS_ABANDONED);
    r.set_error("worker stopped before the teacher answered");
    Finish(stub, std::move(r));
  }
  spdlog::warn("drain ended with {} requests in flight: given back",
               in_flight_.size());
  in_flight_.clear();
}

void Worker::LeaseMore() {
  std::vector<Pending> batch;
  for (size_t i = 0;; ++i) {
    v1::LeaseRequest request;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || i >= teachers_.size()) break;
      TeacherState& t = teachers_[i];
      if (t.limiter->Paused()) continue;
      const int free = HoldCapLocked(t) - t.busy;
      if (free <= 0) continue;
      request.set_worker_id(worker_id_);
      request.set_max_tasks(free);
      request.add_teachers(t.config.profile.name);
    }
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
    std::lock_guard<std::mutex> lock(mu_);
    for (v1::LeasedTask& task : *response->mutable_tasks()) {
      held_leases_.insert(task.lease_id());
      ++teachers_[i].busy;
      Pending p;
      p.task = std::move(task);
      p.teacher_index = static_cast<int>(i);
      p.request.model = p.task.model();
      for (const v1::ChatMessage& m : p.task.messages()) {
        p.request.messages.push_back(ChatMessage{m.role(), m.content()});
      }
      const v1::SamplingParams& sp = p.task.params();
      p.request.params.max_tokens = sp.max_tokens();
      if (sp.has_temperature()) p.request.params.temperature = sp.temperature();
      if (sp.has_top_p()) p.request.params.top_p = sp.top_p();
      if (sp.has_seed()) p.request.params.seed = sp.seed();
      p.request.params.stop.assign(sp.stop().begin(), sp.stop().end());
      teachers_[i].queue.push_back(std::move(p));
    }
  }
}

int Worker::HoldCapLocked(TeacherState& t) {
  const TeacherLimiter& limiter = *t.limiter;
  if (limiter.NeedsShare() && !limiter.HasShare()) {
    return 4;  // enough to show demand and get a share
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
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || !coordinator_reachable_) return options_.idle_poll;
    for (TeacherState& t : teachers_) {
      while (!t.queue.empty() && t.in_flight < t.limiter->ConcurrencyCap()) {
        Pending& front = t.queue.front();
        const double estimate = EstimateRequestTokens(front.request);
        if (!t.limiter->TryAcquire(estimate)) {
          wait = std::min(wait, t.limiter->TimeUntilReady(estimate));
          break;
        }
        front.reserved_tokens = estimate;
        ++t.in_flight;
        Pending& stub = in_flight_[front.task.lease_id()];
        stub.task.set_job_id(front.task.job_id());
        stub.task.set_prompt_seq(front.task.prompt_seq());
        stub.task.set_sample(front.task.sample());
        stub.task.set_request_key(front.task.request_key());
        stub.task.set_lease_id(front.task.lease_id());
        stub.teacher_index = front.teacher_index;
        stub.attempts = front.attempts + 1;  // this one is under way
        batch.push_back(std::move(front));
        t.queue.pop_front();
      }
    }
  }
  if (!batch.empty()) Dispatch(std::move(batch));
  return wait;
}

void Worker::Dispatch(std::vector<Pending> batch) {
  for (Pending& p : batch) {
    Teacher* teacher;
    // teachers_ is fixed after construction, so the name stays put.
    const std::string* name;
    {
      std::lock_guard<std::mutex> lock(mu_);
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
  std::lock_guard<std::mutex> lock(mu_);
  TeacherState& state = teachers_[pending.teacher_index];
  const TeacherProfile& profile = state.config.profile;
  --state.in_flight;
  slot_freed_ = true;
  state.limiter->OnResult(result, pending.reserved_tokens);
  const std::string& model = pending.task.model();
  metrics::InFlight(profile.name, -1);
  metrics::TeacherRequest(profile.name, model, result.http_status,
                          result.status.ok() ? "ok" : OutcomeName(result.kind),
                          Seconds(latency));
  const int64_t lease_id = pending.task.lease_id();
  in_flight_.erase(lease_id);
  if (given_back_.erase(lease_id) > 0) return;  // reported ABANDONED already
  const bool revoked = revoked_in_flight_.erase(lease_id) > 0;
  v1::TaskResult r;
  if (result.status.ok()) {
    // The result is ours: its texts (the raw body is the largest) move into
    // the report rather than being copied under the lock.
    TeacherAnswer& a = result.answer;
    v1::Answer* answer = r.mutable_answer();
    // Every string from the teacher is repaired to UTF-8 on its way in:
    // one bad byte in a proto3 string makes the whole report unparseable.
    answer->set_content(Utf8(std::move(a.content)));
    answer->set_reasoning(Utf8(std::move(a.reasoning)));
    answer->set_reasoning_blocks(Utf8(std::move(a.reasoning_blocks)));
    answer->set_finish_reason(Utf8(std::move(a.finish_reason)));
    answer->mutable_usage()->set_prompt_tokens(a.usage.prompt_tokens);
    answer->mutable_usage()->set_completion_tokens(a.usage.completion_tokens);
    answer->mutable_usage()->set_reasoning_tokens(a.usage.reasoning_tokens);
    answer->mutable_usage()->set_cached_tokens(a.usage.cached_tokens);
    answer->set_provider_id(Utf8(std::move(a.provider_id)));
    answer->set_raw_body(std::move(a.raw_body));
    answer->set_received_ms(clock_.WallMillis());
    answer->set_latency_ms(
        std::chrono::duration_cast<std::chrono::milliseconds>(latency).count());
    // Not streamed yet: the first token arrives with the whole answer.
    metrics::TimeToFirstToken(profile.name, model, Seconds(latency));
    metrics::Tokens(profile.name, model, "prompt", a.usage.prompt_tokens);
    metrics::Tokens(profile.name, model, "completion",
                    a.usage.completion_tokens);
    metrics::Tokens(profile.name, model, "reasoning", a.usage.reasoning_tokens);
    metrics::Tokens(profile.name, model, "cached", a.usage.cached_tokens);
    metrics::CostUsd(profile.name, model,
                     CostUsd(profile, model, a.usage.prompt_tokens,
                             a.usage.cached_tokens, a.usage.completion_tokens));
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
    retries_.emplace(due, std::move(pending));
    wake_.notify_all();
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

void Worker::Finish(Pending& pending, v1::TaskResult result) {
  const v1::LeasedTask& t = pending.task;
  result.set_job_id(t.job_id());
  result.set_prompt_seq(t.prompt_seq());
  result.set_sample(t.sample());
  result.set_request_key(t.request_key());
  result.set_lease_id(t.lease_id());
  result.set_attempts(pending.attempts);
  // The lease stays held (heartbeats renew it) until a report is
  // acknowledged: an expired lease would be paid for again elsewhere.
  const size_t bytes = RepeatedEntryBytes(result.ByteSizeLong());
  if (bytes > ReportBudget()) {
    spdlog::error("result of task {}/{} is {} bytes, too large for a report",
                  t.job_id(), t.prompt_seq(), bytes);
    result = FailureInsteadOf(
        result,
        absl::StrCat("the result is ", bytes,
                     " bytes and does not fit in one report (at most ",
                     ReportBudget(), " bytes; --max-message-mb)"));
  }
  --teachers_[pending.teacher_index].busy;
  if (results_.empty()) oldest_result_ = clock_.Now();
  results_.push_back(std::move(result));
  wake_.notify_all();
}

bool Worker::ReportSome(bool force) {
  std::vector<v1::TaskResult> results;
  std::string worker_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (results_.empty()) return true;
    const TimePoint now = clock_.Now();
    if (now < report_retry_at_) return false;
    const bool due =
        force || stopping_ ||
        static_cast<int>(results_.size()) >= options_.report_batch ||
        now - oldest_result_ >= options_.report_delay;
    if (!due) return true;
    results.swap(results_);
    worker_id = worker_id_;
  }
  // One report per run of results that fits in a message.
  const size_t budget = ReportBudget();
  std::vector<v1::TaskResult> unsent;
  bool reachable = true;
  for (size_t i = 0; i < results.size();) {
    std::vector<v1::TaskResult> batch;
    size_t bytes = 0;
    while (i < results.size()) {
      const size_t b = RepeatedEntryBytes(results[i].ByteSizeLong());
      if (!batch.empty() && bytes + b > budget) break;
      bytes += b;
      batch.push_back(std::move(results[i++]));
    }
    if (reachable) {
      reachable = SendReport(worker_id, std::move(batch), &unsent);
    } else {
      for (v1::TaskResult& r : batch) unsent.push_back(std::move(r));
    }
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (unsent.empty()) {
    report_backoff_ = Duration(0);
    return results_.empty();
  }
  // Keep every result (paid for!), ahead of newer ones, and try again after
  // a backoff.
  report_backoff_ = std::clamp<Duration>(2 * report_backoff_,
                                         options_.min_report_backoff,
                                         options_.max_report_backoff);
  report_retry_at_ = clock_.Now() + report_backoff_;
  oldest_result_ = clock_.Now();
  for (v1::TaskResult& r : results_) unsent.push_back(std::move(r));
  results_ = std::move(unsent);
  if (register_before_report_) {
    register_before_report_ = false;
    report_retry_at_ = clock_.Now();  // report as soon as we are known
    lock.unlock();
    RegisterUntilDone();
  }
  return false;
}

bool Worker::SendReport(const std::string& worker_id,
                        std::vector<v1::TaskResult> batch,
                        std::vector<v1::TaskResult>* unsent) {
  v1::ReportRequest request;
  request.set_worker_id(worker_id);
  for (v1::TaskResult& r : batch) *request.add_results() = std::move(r);
  absl::StatusOr<v1::ReportResponse> response = coordinator_.Report(request);
  NoteCoordinatorCall(response.status(), /*knows_us=*/false);
  if (response.ok()) {
    Acknowledge(request);
    return true;
  }
  const absl::Status& status = response.status();
  auto keep_all = [&] {
    for (v1::TaskResult& r : *request.mutable_results()) {
      unsent->push_back(std::move(r));
    }
  };
  if (absl::IsFailedPrecondition(status)) {
    // The coordinator restarted and does not know us: register again
    // (announcing these results' tasks, once they are back in results_),
    // then report them.
    spdlog::warn("report of {} results refused: {}; registering again",
                 request.results_size(), std::string(status.message()));
    keep_all();
    std::lock_guard<std::mutex> lock(mu_);
    register_before_report_ = true;
    return false;
  }
  if (IsTransientReportError(status)) {
    spdlog::warn("report of {} results failed: {}; will retry",
                 request.results_size(), std::string(status.message()));
    keep_all();
    return false;
  }
  // Refused for what it holds (a result the coordinator cannot take, or a
  // message over its limit): halves commit what is good in them.
  const int n = request.results_size();
  if (n > 1) {
    spdlog::warn("report of {} results refused ({}); splitting it", n,
                 std::string(status.message()));
    std::vector<v1::TaskResult> first, second;
    for (int i = 0; i < n; ++i) {
      (i < n / 2 ? first : second)
          .push_back(std::move(*request.mutable_results(i)));
    }
    if (!SendReport(worker_id, std::move(first), unsent)) {
      for (v1::TaskResult& r : second) unsent->push_back(std::move(r));
      return false;
    }
    return SendReport(worker_id, std::move(second), unsent);
  }
  v1::TaskResult& original = *request.mutable_results(0);
  spdlog::error("the coordinator refused the result of task {}/{}: {}; "
                "reporting it as failed",
                original.job_id(), original.prompt_seq(),
                std::string(status.message()));
  v1::ReportRequest repaired;
  repaired.set_worker_id(worker_id);
  *repaired.add_results() = FailureInsteadOf(
      original, absl::StrCat("the coordinator refused the result: ",
                             status.ToString()));
  absl::StatusOr<v1::ReportResponse> again = coordinator_.Report(repaired);
  NoteCoordinatorCall(again.status(), /*knows_us=*/false);
  if (again.ok()) {
    Acknowledge(repaired);
    return true;
  }
  // Even a bare failure is refused: the fault is the coordinator's (a full
  // disk), not this result's. Keep the original for later.
  spdlog::warn("the coordinator refused a failure report too ({}); will "
               "retry",
               std::string(again.status().message()));
  unsent->push_back(std::move(original));
  return false;
}

void Worker::Acknowledge(const v1::ReportRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const v1::TaskResult& r : request.results()) {
    held_leases_.erase(r.lease_id());
  }
  results_reported_ += request.results_size();
}

}  // namespace distillery
