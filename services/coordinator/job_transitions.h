// Job transitions: the one place a job's state changes. Each function takes
// the job record as it is and returns (or leaves) it as it becomes; callers
// store the result and then LogStateChange(before, after). The states are
// common/job/job_state.h's.
//
//   SUBMITTING --Admitted--> RUNNING --PausedAtBudget--> PAUSED
//   RUNNING --FinishIfSettled--> COMPLETED | FAILED
//   PAUSED --Resumed--> RUNNING
//   COMPLETED | FAILED --Reopened (retry)--> RUNNING
//   any but CANCELLED --Cancelled--> CANCELLED
//
// Thread-safe (pure functions; logging is spdlog's).
#ifndef DISTILLERY_SERVICES_COORDINATOR_JOB_TRANSITIONS_H_
#define DISTILLERY_SERVICES_COORDINATOR_JOB_TRANSITIONS_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "distillery/v1/types.pb.h"

namespace distillery {

// A submission's job, all its prompts stored: RUNNING with its counts.
void Admitted(v1::Job& job, int64_t prompts);

// RUNNING -> PAUSED: the next request could take `spent_usd` past the
// budget, by up to `next_cost_usd`.
void PausedAtBudget(v1::Job& job, double next_cost_usd);

// PAUSED -> RUNNING; `budget_usd` > 0 replaces the budget and must leave
// room for more spend. FAILED_PRECONDITION when the job is not paused.
absl::StatusOr<v1::Job> Resumed(const v1::Job& job, double budget_usd);

// -> CANCELLED at `now_ms`; false (the job unchanged) when it already ended.
bool Cancelled(v1::Job& job, int64_t now_ms);

// COMPLETED or FAILED -> RUNNING for a retry of its dead letters.
void Reopened(v1::Job& job);

// When every task of a RUNNING job is settled, ends it at `now_ms`:
// COMPLETED when any was answered, else FAILED with `failure_reason()` as
// its error. True when it ended.
bool FinishIfSettled(v1::Job& job, int64_t now_ms,
                     const std::function<std::string()>& failure_reason);

// One log line when a job changes state, with its figures when it ends.
void LogStateChange(const v1::Job& before, const v1::Job& after);

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_JOB_TRANSITIONS_H_
