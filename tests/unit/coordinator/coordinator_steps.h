// A worker's steps played straight on a Coordinator, for the tests that
// need tasks leased and answered without running a worker: register, lease,
// and the result naming a leased task.
#ifndef DISTILLERY_TESTS_UNIT_COORDINATOR_COORDINATOR_STEPS_H_
#define DISTILLERY_TESTS_UNIT_COORDINATOR_COORDINATOR_STEPS_H_

#include <string>

#include "absl/status/statusor.h"
#include "services/coordinator/coordinator.h"

namespace distillery::testing {

// Registers a worker called `name` for `teacher`; its id.
inline std::string RegisterWorker(Coordinator& coordinator,
                                  const std::string& teacher = "sim",
                                  const std::string& name = "w") {
  v1::RegisterRequest request;
  request.set_name(name);
  request.add_teachers(teacher);
  return coordinator.Register(request).worker_id();
}

// Leases up to `max_tasks` tasks of `teacher` for `worker`.
inline absl::StatusOr<v1::LeaseResponse> LeaseTasks(
    Coordinator& coordinator, const std::string& worker, int max_tasks,
    const std::string& teacher = "sim") {
  v1::LeaseRequest request;
  request.set_worker_id(worker);
  request.set_max_tasks(max_tasks);
  request.add_teachers(teacher);
  return coordinator.Lease(request);
}

// A result for leased task `t`, naming it and its lease; the caller adds
// the answer or the failure.
inline v1::TaskResult ResultFor(const v1::LeasedTask& t, int attempts = 1) {
  v1::TaskResult r;
  r.set_job_id(t.job_id());
  r.set_prompt_seq(t.prompt_seq());
  r.set_sample(t.sample());
  r.set_request_key(t.request_key());
  r.set_lease_id(t.lease_id());
  r.set_attempts(attempts);
  return r;
}

}  // namespace distillery::testing

#endif  // DISTILLERY_TESTS_UNIT_COORDINATOR_COORDINATOR_STEPS_H_
