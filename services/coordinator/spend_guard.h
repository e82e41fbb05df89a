// SpendGuard: keeps a job's spend within its --budget-usd. Each lease of a
// budgeted job reserves the most its request can cost (MaxRequestCostUsd in
// common/config/teachers.h, the one cost model) until its result commits or
// the lease ends; a task is leased only when the spend so far, the
// reservations and its own cost fit the budget. When it does not fit and
// requests are in flight, leasing waits for them (their real cost may leave
// room); when nothing is in flight the job is paused (JobTransitions).
// Amounts are whole nano-dollars: reservations add and subtract in any
// order without residue (a residue of doubles would keep a job waiting for
// no lease), costs rounded up and budgets down, so the check errs on the
// side of spending less.
// Not thread-safe: the Coordinator calls it under its lock.
#ifndef DISTILLERY_SERVICES_COORDINATOR_SPEND_GUARD_H_
#define DISTILLERY_SERVICES_COORDINATOR_SPEND_GUARD_H_

#include <cstdint>
#include <map>
#include <string>

#include "distillery/v1/types.pb.h"

namespace distillery {

int64_t NanoUsdUp(double usd);
int64_t NanoUsdDown(double usd);

class SpendGuard {
 public:
  enum class Verdict {
    kFits,   // lease it, reserving its cost
    kWait,   // requests in flight may leave room: try again later
    kPause,  // nothing in flight: the budget is reached
  };

  // Whether a task whose request may cost `reserve_nano_usd` fits `job`'s
  // budget now. Always kFits for a job without a budget.
  Verdict Check(const v1::Job& job, int64_t reserve_nano_usd) const;
  void Reserve(const std::string& job_id, int64_t nano_usd);
  void Release(const std::string& job_id, int64_t nano_usd);
  // The job is gone or ended: its reservations with it.
  void Forget(const std::string& job_id) { reserved_.erase(job_id); }

 private:
  struct Reserved {
    int64_t nano_usd = 0;
    int leases = 0;
  };
  std::map<std::string, Reserved> reserved_;
};

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_SPEND_GUARD_H_
