// InProcessCoordinatorClient: a CoordinatorClient that calls a Coordinator
// in this process, for the worker's tests. Reports go through the wire as
// over gRPC: serialized and parsed again (a proto3 string that is not UTF-8
// fails to parse, which gRPC answers INTERNAL), refused over a message
// limit (RESOURCE_EXHAUSTED) and, on cue, for an answer the test marks.
// Calls fail on cue (unreachable, unknown worker), and tests wait for the
// worker's calls; the waits drive a FakeClock when given one
// (RunClockUntil), so the worker runs on fake time while the test waits.
// Thread-safe.
#ifndef DISTILLERY_TESTS_TESTING_IN_PROCESS_COORDINATOR_CLIENT_H_
#define DISTILLERY_TESTS_TESTING_IN_PROCESS_COORDINATOR_CLIENT_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/base/clock.h"
#include "services/coordinator/coordinator.h"
#include "services/worker/coordinator_client.h"

namespace distillery::testing {

class InProcessCoordinatorClient : public CoordinatorClient {
 public:
  // `drive`, when set, is the worker's FakeClock, moved while tests wait.
  explicit InProcessCoordinatorClient(Coordinator& coordinator,
                                      FakeClock* drive = nullptr)
      : coordinator_(coordinator), drive_(drive) {}

  absl::StatusOr<v1::RegisterResponse> Register(
      const v1::RegisterRequest& request) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::LeaseResponse> Lease(
      const v1::LeaseRequest& request) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ReportResponse> Report(
      const v1::ReportRequest& sent) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(
      const v1::HeartbeatRequest& request) override ABSL_LOCKS_EXCLUDED(mu_);

  // Faults on cue: the next `n` calls of a kind fail.
  void FailNextLeases(int n);             // FAILED_PRECONDITION: unknown worker
  void FailNextReports(int n);            // UNAVAILABLE
  void ForgetWorkerAtNextReports(int n);  // FAILED_PRECONDITION
  void RefuseReportsOver(size_t bytes);   // RESOURCE_EXHAUSTED
  void RefuseAnswer(const std::string& content);  // INVALID_ARGUMENT

  int refused_reports();
  size_t largest_report();
  int most_results_in_a_report();  // of the reports that reached it
  int registers();
  v1::RegisterRequest last_register();
  int failed_reports();
  std::vector<v1::TaskResult> results();  // committed ones
  std::vector<int64_t> leased_ids();

  // Waits until the worker has acted on the answer to a heartbeat that it
  // sent after this call: the one after it has begun.
  bool WaitForFreshHeartbeat();
  bool WaitForReports(size_t n);
  bool WaitForFailedReports(int n);
  // Waits until the worker has started two more loop turns (it asks for a
  // lease on every turn while it has capacity), so it has seen the present.
  bool SyncLoop();
  // Waits for a heartbeat that began after this call and names (or does
  // not name) `lease_id`. The first one counted may have been on its way
  // already: waits for two.
  bool WaitForHeartbeatWith(int64_t lease_id);
  bool WaitForHeartbeatWithout(int64_t lease_id);

 private:
  bool WaitUntil(const std::function<bool()>& ready) ABSL_LOCKS_EXCLUDED(mu_);

  Coordinator& coordinator_;
  FakeClock* const drive_;
  absl::Mutex mu_;
  int lease_failures_ ABSL_GUARDED_BY(mu_) = 0;
  int unknown_reports_ ABSL_GUARDED_BY(mu_) = 0;
  int report_failures_ ABSL_GUARDED_BY(mu_) = 0;
  int refused_reports_ ABSL_GUARDED_BY(mu_) = 0;
  size_t max_report_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  size_t largest_report_ ABSL_GUARDED_BY(mu_) = 0;
  int most_results_ ABSL_GUARDED_BY(mu_) = 0;
  std::string refused_content_ ABSL_GUARDED_BY(mu_);
  int registers_ ABSL_GUARDED_BY(mu_) = 0;
  int failed_reports_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t leases_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t heartbeats_ ABSL_GUARDED_BY(mu_) = 0;
  v1::HeartbeatRequest last_heartbeat_ ABSL_GUARDED_BY(mu_);
  v1::RegisterRequest last_register_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> leased_ids_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::TaskResult> results_ ABSL_GUARDED_BY(mu_);
};

}  // namespace distillery::testing

#endif  // DISTILLERY_TESTS_TESTING_IN_PROCESS_COORDINATOR_CLIENT_H_
