#include "services/coordinator/job_transitions.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/job/job_state.h"
#include "common/job/task_request.h"

namespace distillery {

void Admitted(v1::Job& job, int64_t prompts) {
  job.mutable_counters()->set_prompts(prompts);
  job.mutable_counters()->set_tasks_total(prompts * InitialSamples(job.spec()));
  job.set_state(v1::JOB_STATE_RUNNING);
}

void PausedAtBudget(v1::Job& job, double next_cost_usd) {
  job.set_state(v1::JOB_STATE_PAUSED);
  job.set_error(absl::StrFormat(
      "budget of $%.4f reached: $%.4f spent, the next request could cost up "
      "to $%.4f; resume with a higher --budget-usd",
      job.spec().budget_usd(), job.counters().cost_usd(), next_cost_usd));
}

absl::StatusOr<v1::Job> Resumed(const v1::Job& paused, double budget_usd) {
  if (paused.state() != v1::JOB_STATE_PAUSED) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", paused.id(), " is not paused (it is ",
                     JobStateName(paused.state()), ")"));
  }
  v1::Job job = paused;
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
  return job;
}

bool Cancelled(v1::Job& job, int64_t now_ms) {
  if (IsTerminal(job.state())) return false;
  job.set_state(v1::JOB_STATE_CANCELLED);
  job.set_finished_ms(now_ms);
  return true;
}

void Reopened(v1::Job& job) {
  if (job.state() == v1::JOB_STATE_RUNNING) return;
  job.set_state(v1::JOB_STATE_RUNNING);
  job.set_finished_ms(0);
  job.clear_error();
}

bool FinishIfSettled(v1::Job& job, int64_t now_ms,
                     const std::function<std::string()>& failure_reason) {
  const v1::JobCounters& c = job.counters();
  if (job.state() != v1::JOB_STATE_RUNNING ||
      c.tasks_done() + c.tasks_failed() < c.tasks_total()) {
    return false;
  }
  job.set_finished_ms(now_ms);
  if (c.tasks_done() > 0 || c.tasks_total() == 0) {
    job.set_state(v1::JOB_STATE_COMPLETED);
    return true;
  }
  job.set_state(v1::JOB_STATE_FAILED);
  job.set_error(failure_reason());
  return true;
}

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

}  // namespace distillery
