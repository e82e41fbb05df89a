// Budget: the cluster-wide rate budget of every teacher profile. It keeps
// each teacher's effective limits (requests and tokens per window, AIMD on
// the 429s workers report, corrected by the limits teachers announce), splits
// them into expiring per-worker shares in proportion to demand, and holds
// the cluster-wide pause of a teacher that refused our key or quota.
// No gRPC here; the coordinator calls it under its lock.
#ifndef DISTILLERY_SERVICES_COORDINATOR_BUDGET_H_
#define DISTILLERY_SERVICES_COORDINATOR_BUDGET_H_

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/clock.h"
#include "common/config/teachers.h"
#include "common/ratelimit/aimd.h"
#include "common/ratelimit/share_allocator.h"
#include "distillery/v1/types.pb.h"
#include "distillery/v1/worker_service.pb.h"

namespace distillery {

struct BudgetOptions {
  // How long a share lasts without renewal; a few heartbeats.
  Duration share_ttl = std::chrono::seconds(6);
  // Grants are this share of the effective limit: room for the few tokens
  // the workers' buckets may burst.
  double headroom = 0.99;
  // A limit neither configured nor announced is enforced only from the
  // first 429 on (aimd.h).
  AimdOptions aimd;
};

// Thread-compatible.
class Budget {
 public:
  Budget(Clock& clock, const std::vector<TeacherProfile>& teachers,
         BudgetOptions options = {});

  // Takes a worker's report and returns its shares, one per teacher it
  // reported on.
  std::vector<v1::BudgetShare> OnHeartbeat(
      const std::string& worker_id,
      const google::protobuf::RepeatedPtrField<v1::TeacherDemand>& demands);
  void DropWorker(const std::string& worker_id);
  // A worker that registers holding tasks was sending before this budget
  // heard from it (the coordinator restarted mid-job): for a window, the
  // answers reported do not cover one, so an unknown limit is not learned
  // from them (the workers keep to the 429s' retry-after meanwhile).
  void NoteTrafficBeforeReports();

  void Pause(const std::string& teacher, const std::string& reason);
  // Returns false for an unknown teacher.
  bool Resume(const std::string& teacher);
  bool Paused(const std::string& teacher) const;
  v1::TeacherStatus Status(const std::string& teacher) const;

 private:
  struct TeacherBudget {
    TeacherBudget(const TeacherProfile& p, Clock& clock, Duration ttl)
        : profile(p),
          request_shares(clock, ttl),
          token_shares(clock, ttl),
          concurrency_shares(clock, ttl) {}
    TeacherProfile profile;
    std::unique_ptr<AimdLimit> requests;  // null: no limit (rpm: 0)
    std::unique_ptr<AimdLimit> tokens;
    ShareAllocator request_shares;
    ShareAllocator token_shares;
    ShareAllocator concurrency_shares;
    bool paused = false;
    std::string pause_reason;
    int64_t rate_limited_total = 0;
    int64_t errors_total = 0;  // failed requests reported, 429s aside
    // Requests (tokens) answered per heartbeat report over the last
    // window: what the teacher admitted.
    std::deque<std::pair<TimePoint, int64_t>> admitted;
    std::deque<std::pair<TimePoint, int64_t>> admitted_tokens;
  };
  // Adds a report's `admitted` to `log` while `limit` is unknown or being
  // measured (and tells it the window's total then); clears it otherwise.
  void Record(AimdLimit* limit, int64_t admitted, Duration window,
              std::deque<std::pair<TimePoint, int64_t>>& log);
  // What the teacher admitted over the last window, by `log`, while
  // `limit` is still unknown; empty once it is known.
  static std::optional<double> AdmittedInWindow(
      const std::deque<std::pair<TimePoint, int64_t>>& log,
      const AimdLimit& limit);
  // The sum of `log`'s counts.
  static double Total(const std::deque<std::pair<TimePoint, int64_t>>& log);
  // Whether the reports of the last `window` saw all that was sent in it
  // (false for a window after NoteTrafficBeforeReports).
  bool ReportsCoverAWindow(Duration window) const;

  Clock& clock_;
  const BudgetOptions options_;
  std::map<std::string, TeacherBudget> teachers_;
  std::optional<TimePoint> traffic_before_reports_;
};

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_BUDGET_H_
