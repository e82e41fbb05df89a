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
  AimdOptions aimd;
  // Where slow start begins for a limit that is neither configured nor
  // announced, per second; it doubles each second until a 429 or an
  // announcement.
  double initial_requests_per_second = 50;
  double initial_tokens_per_second = 100'000;
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
    // Requests answered per heartbeat report, to measure the achieved rate.
    std::deque<std::pair<TimePoint, int64_t>> recent;
    std::deque<std::pair<TimePoint, int64_t>> recent_tokens;
  };
  double AchievedPerWindow(std::deque<std::pair<TimePoint, int64_t>>& log,
                           Duration window);

  Clock& clock_;
  const BudgetOptions options_;
  std::map<std::string, TeacherBudget> teachers_;
};

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_BUDGET_H_
