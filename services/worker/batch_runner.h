// BatchRunner: a worker's batch thread. It asks the coordinator for batch
// steps (LeaseBatchStep) for the teachers whose API has a batch API, does
// each with that teacher's BatchApi (create, or find again after a crash;
// poll, and once ended read the results; cancel), and reports what it did
// (ReportBatchStep), the results in chunks that fit one gRPC message. A
// step's lease is renewed by the worker's heartbeats while it runs.
//
// Exactly once: a create is never sent once its step's lease has lapsed (the
// coordinator may have given the step to another worker), and a report is
// sent again until the coordinator has it (after registering again if it
// restarted): a created batch's id and its paid results are never dropped
// by this side.
//
// Thread-safe: Run on one thread, Stop from any.
#ifndef DISTILLERY_SERVICES_WORKER_BATCH_RUNNER_H_
#define DISTILLERY_SERVICES_WORKER_BATCH_RUNNER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/base/clock.h"
#include "common/config/teachers.h"
#include "common/teacher/batch_api.h"
#include "distillery/v1/worker_service.pb.h"
#include "services/worker/coordinator_client.h"

namespace distillery {

// What the runner needs of its worker.
struct BatchRunnerHost {
  // The worker's id; "" while it is not registered.
  std::function<std::string()> worker_id;
  // Step leases held now, for the worker's heartbeats to renew.
  std::function<void(int64_t)> hold;
  std::function<void(int64_t)> release;
  // The coordinator does not know us: register again (returns once done).
  std::function<void()> register_again;
};

struct BatchRunnerOptions {
  // Longest wait between asks when nothing is due.
  Duration idle_poll = std::chrono::seconds(1);
  // How long a step's lease lasts without renewal (from Register).
  Duration lease_duration = std::chrono::seconds(60);
  // A report's results add up to at most this many bytes.
  size_t report_bytes = 64 << 20;
  // After a failed call to the coordinator, the next waits this long.
  Duration retry_delay = std::chrono::milliseconds(200);
};

class BatchRunner {
 public:
  // `apis`: by teacher name; not owned, must outlive the runner.
  BatchRunner(CoordinatorClient& coordinator,
              std::map<std::string, BatchApi*> apis,
              std::map<std::string, TeacherProfile> profiles, Clock& clock,
              BatchRunnerHost host, BatchRunnerOptions options);

  // Runs until Stop(). A step under way when Stop() comes is finished and
  // reported first (the drain), except a create not yet sent.
  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  void set_lease_duration(Duration d) ABSL_LOCKS_EXCLUDED(mu_);

  int64_t steps_done() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Does `step` and reports it; false when stopping cut it short.
  void Do(const std::string& worker_id, const v1::BatchStep& step);
  // The reports of one step: a create's or cancel's one, a poll's one or
  // (ended) its results in chunks, the last with `last` set.
  std::vector<v1::BatchStepReport> Create(const v1::BatchStep& step,
                                          BatchApi& api, TimePoint deadline);
  std::vector<v1::BatchStepReport> Poll(const v1::BatchStep& step,
                                        BatchApi& api);
  v1::BatchStepReport Cancel(const v1::BatchStep& step, BatchApi& api);
  // Sends `report` until the coordinator takes it or the runner stops for
  // good; false when it was not taken.
  bool SendReport(v1::BatchStepReport report);
  // Waits up to `d` (less if stopped); false when stopped.
  bool Wait(Duration d) ABSL_LOCKS_EXCLUDED(mu_);
  bool stopping() const ABSL_LOCKS_EXCLUDED(mu_);

  CoordinatorClient& coordinator_;
  const std::map<std::string, BatchApi*> apis_;
  const std::map<std::string, TeacherProfile> profiles_;
  Clock& clock_;
  const BatchRunnerHost host_;
  const BatchRunnerOptions options_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Duration lease_duration_ ABSL_GUARDED_BY(mu_);
  int64_t steps_done_ ABSL_GUARDED_BY(mu_) = 0;
};

// A teacher's answer as a report carries it: every text repaired to UTF-8.
// Shared with the online path (worker_lease.cc).
void FillAnswerProto(TeacherAnswer answer, int64_t received_ms,
                     int64_t latency_ms, v1::Answer* out);

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_WORKER_BATCH_RUNNER_H_
