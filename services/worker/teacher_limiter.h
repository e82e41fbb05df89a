// TeacherLimiter: a worker's local enforcement of its share of one
// teacher's cluster-wide budget, and what it learned from the teacher's
// answers for the next heartbeat. A profile that configures a limit waits
// for its first share; one whose limits are unknown sends at the worker's
// full concurrency until the coordinator has learned a limit from 429s or
// headers (aimd.h). Requests and tokens each have a token
// bucket refilled at the share's rate; a request reserves its estimated
// tokens (prompt + max_tokens) before it is sent and settles against the
// reported usage afterwards. A 429's retry-after, or headers saying the
// window is spent, hold every request to the teacher until the reset.
#ifndef DISTILLERY_SERVICES_WORKER_TEACHER_LIMITER_H_
#define DISTILLERY_SERVICES_WORKER_TEACHER_LIMITER_H_

#include <optional>

#include "common/base/clock.h"
#include "common/config/teachers.h"
#include "common/ratelimit/token_bucket.h"
#include "common/teacher/teacher.h"
#include "distillery/v1/worker_service.pb.h"

namespace distillery {

// Thread-compatible: the worker serialises access.
class TeacherLimiter {
 public:
  // A retry-after longer than `max_retry_after` holds requests that long.
  TeacherLimiter(Clock& clock, const TeacherProfile& profile,
                 int max_in_flight,
                 Duration max_retry_after = std::chrono::minutes(2));

  // A share from the coordinator's heartbeat answer. With `keep_paused`, a
  // pause this worker found (a teacher-down answer) stays although the share
  // says none: the share may predate the coordinator's learning of it.
  void ApplyShare(const v1::BudgetShare& share, bool keep_paused = false);
  // Reserves budget for a request estimated at `tokens`; true when it may be
  // sent now.
  bool TryAcquire(double tokens);
  // How long until TryAcquire(tokens) may succeed (max(): not before a new
  // share arrives).
  Duration TimeUntilReady(double tokens);
  // Settles a finished request that reserved `reserved_tokens`.
  void OnResult(const TeacherResult& result, double reserved_tokens);

  // Requests that may be in flight now (share or local cap).
  int ConcurrencyCap() const;
  bool Paused() const { return paused_; }
  bool HasShare() const { return has_share_; }
  bool NeedsShare() const { return needs_share_; }
  // The coordinator should hear from this worker before the next regular
  // heartbeat: it waits for a first share, or saw a limit (a 429, an
  // announcement) that its share does not enforce yet.
  bool WantsHeartbeatNow() const;
  // The request rate granted, per second; 0 when none is enforced.
  double RequestsPerSecond() const {
    return requests_limited_ ? requests_.rate() : 0;
  }
  // Fills the report for the next heartbeat and starts a new period.
  void TakeReport(int64_t demand, v1::TeacherDemand* out);

 private:
  bool ShareLive();
  // Whether nothing may be sent without a live share.
  bool WaitsForShare() const;
  // The profile leaves the limit unknown and no share enforces one yet.
  bool LearnsRequestLimit() const {
    return profile_.rpm < 0 && !requests_limited_;
  }
  bool LearnsTokenLimit() const { return profile_.tpm < 0 && !tokens_limited_; }
  // Holds every request until `until` (at most max_retry_after from now);
  // the time held to.
  TimePoint HoldUntil(TimePoint until);

  Clock& clock_;
  const TeacherProfile profile_;
  const int max_in_flight_;
  const Duration max_retry_after_;
  const bool needs_share_;  // the profile configures some limit
  TokenBucket requests_;
  TokenBucket tokens_;
  bool has_share_ = false;
  bool limited_ = false;
  bool requests_limited_ = false;
  bool tokens_limited_ = false;
  int concurrency_ = 0;
  TimePoint share_expires_{};
  TimePoint blocked_until_{};  // a 429's retry-after, a spent window
  bool news_for_coordinator_ = false;  // see WantsHeartbeatNow
  bool paused_ = false;
  // Since the last report.
  int64_t successes_ = 0;
  int64_t rate_limited_requests_ = 0;
  int64_t errors_ = 0;  // failures other than 429s, since the last report
  int64_t rate_limited_tokens_ = 0;
  int64_t announced_rpm_ = 0;
  int64_t announced_tpm_ = 0;
  int64_t tokens_used_ = 0;
};

// Tokens a provider counts for a request when it arrives: prompt tokens
// (about one per four bytes, plus a few per message) plus the completion
// limit.
double EstimateRequestTokens(const TeacherRequest& request);
// The completion part of that estimate: the request's token limit, or a
// default when it sets none.
double CompletionEstimate(const TeacherRequest& request);

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_WORKER_TEACHER_LIMITER_H_
