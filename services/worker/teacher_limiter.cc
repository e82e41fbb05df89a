#include "services/worker/teacher_limiter.h"

#include <algorithm>
#include <cmath>

#include "common/ratelimit/headers.h"

namespace distillery {
namespace {

// Buckets hold this much of a second's rate (at least one request), so
// shares are spent smoothly and the burst above the share stays small.
constexpr double kBurstSeconds = 0.1;
// Completion limit assumed when a job sets none.
constexpr double kDefaultCompletionTokens = 1024;

}  // namespace

double EstimateRequestTokens(const TeacherRequest& request) {
  double bytes = 0;
  for (const ChatMessage& m : request.messages) bytes += m.content.size();
  const double prompt = std::ceil(bytes / 4) + 4.0 * request.messages.size();
  return prompt + CompletionEstimate(request);
}

double CompletionEstimate(const TeacherRequest& request) {
  return request.params.max_tokens > 0
             ? static_cast<double>(request.params.max_tokens)
             : kDefaultCompletionTokens;
}

TeacherLimiter::TeacherLimiter(Clock& clock, const TeacherProfile& profile,
                               int max_in_flight, Duration max_retry_after)
    : clock_(clock),
      profile_(profile),
      max_in_flight_(std::max(1, max_in_flight)),
      max_retry_after_(max_retry_after),
      needs_share_(profile.rpm > 0 || profile.tpm > 0 ||
                   profile.max_concurrency > 0),
      requests_(clock, 0, 1, 0),
      tokens_(clock, 0, 1, 0) {}

bool TeacherLimiter::ShareLive() {
  return has_share_ && clock_.Now() < share_expires_;
}

TimePoint TeacherLimiter::HoldUntil(TimePoint until) {
  until = std::min(until, clock_.Now() + max_retry_after_);
  blocked_until_ = std::max(blocked_until_, until);
  return until;
}

bool TeacherLimiter::WantsHeartbeatNow() const {
  return (needs_share_ && !has_share_) || news_for_coordinator_;
}

bool TeacherLimiter::WaitsForShare() const {
  // A limit learned since (from 429s or headers) is kept to: with its share
  // lapsed (the coordinator out of reach), nothing is sent until a new one.
  return needs_share_ || (has_share_ && limited_);
}

void TeacherLimiter::ApplyShare(const v1::BudgetShare& share,
                                bool keep_paused) {
  has_share_ = true;
  news_for_coordinator_ = false;  // the report before this share told it
  paused_ = share.paused() || (keep_paused && paused_);
  limited_ = share.limited();
  share_expires_ =
      clock_.Now() + std::chrono::milliseconds(share.expires_in_ms());
  const double window_s =
      std::max<int64_t>(1, share.window_ms()) / 1000.0;
  requests_limited_ = share.requests_limited();
  tokens_limited_ = share.tokens_limited();
  // A limit known to the coordinator but granted as 0 (all taken by others)
  // still limits: the bucket's rate is then 0.
  const v1::BudgetShare& s = share;
  if (limited_) {
    const double rps = s.requests_per_window() / window_s;
    requests_.SetRate(rps, std::max(1.0, rps * kBurstSeconds));
    const double tps = s.tokens_per_window() / window_s;
    tokens_.SetRate(tps, std::max(1.0, tps * kBurstSeconds));
  }
  concurrency_ = static_cast<int>(s.max_concurrency());
}

int TeacherLimiter::ConcurrencyCap() const {
  if (concurrency_ > 0) return std::min(concurrency_, max_in_flight_);
  // Limited but no share yet, or none granted: hold back.
  if (profile_.max_concurrency > 0) return 0;
  return max_in_flight_;
}

bool TeacherLimiter::TryAcquire(double tokens) {
  if (paused_) return false;
  if (clock_.Now() < blocked_until_) return false;  // the teacher said wait
  if (!ShareLive()) return !WaitsForShare();
  if (!limited_) return true;
  const bool rate_limit_known = requests_limited_ || tokens_limited_;
  if (!rate_limit_known) return true;  // only concurrency is limited
  if (requests_limited_ && !requests_.TryTake(1)) return false;
  if (tokens_limited_ && !tokens_.TryTake(tokens)) {
    if (requests_limited_) requests_.Give(1);
    return false;
  }
  return true;
}

Duration TeacherLimiter::TimeUntilReady(double tokens) {
  if (paused_) return Duration::max();
  const TimePoint now = clock_.Now();
  Duration wait(0);
  if (now < blocked_until_) wait = blocked_until_ - now;
  if (!ShareLive()) return WaitsForShare() ? Duration::max() : wait;
  if (!limited_) return wait;
  if (requests_limited_) wait = std::max(wait, requests_.TimeUntil(1));
  if (tokens_limited_) wait = std::max(wait, tokens_.TimeUntil(tokens));
  return wait;
}

void TeacherLimiter::OnResult(const TeacherResult& result,
                              double reserved_tokens) {
  const RateLimitSnapshot snap =
      ParseRateLimitHeaders(result.rate_limit_headers, clock_.WallMillis());
  if (snap.limit_requests) announced_rpm_ = *snap.limit_requests;
  if (snap.limit_tokens) announced_tpm_ = *snap.limit_tokens;
  const TimePoint now = clock_.Now();
  // A limit the profile leaves unknown, announced: the coordinator should
  // hear of it at once, to share it out.
  if ((snap.limit_requests && LearnsRequestLimit()) ||
      (snap.limit_tokens && LearnsTokenLimit())) {
    news_for_coordinator_ = true;
  }
  // The teacher says its window is spent: nothing more until it resets,
  // whether or not a share limits this teacher yet.
  // (A limit announced as 0 is no limit at all: its "0 remaining" says
  // nothing.)
  if (snap.remaining_requests && *snap.remaining_requests == 0 &&
      snap.reset_requests && snap.limit_requests.value_or(1) > 0) {
    requests_.BlockUntil(now + *snap.reset_requests);
    HoldUntil(now + *snap.reset_requests);
  }
  if (snap.remaining_tokens && *snap.remaining_tokens == 0 &&
      snap.reset_tokens && snap.limit_tokens.value_or(1) > 0) {
    tokens_.BlockUntil(now + *snap.reset_tokens);
    HoldUntil(now + *snap.reset_tokens);
  }
  if (result.status.ok()) {
    ++successes_;
    const TokenUsage& u = result.answer.usage;
    const double used =
        static_cast<double>(u.prompt_tokens + u.completion_tokens);
    tokens_used_ += u.prompt_tokens + u.completion_tokens;
    if (tokens_limited_ && used > 0) {
      if (used > reserved_tokens) {
        tokens_.Take(used - reserved_tokens);
      } else {
        tokens_.Give(reserved_tokens - used);
      }
    }
    return;
  }
  if (result.kind != FailureKind::kRateLimited) ++errors_;
  if (result.kind == FailureKind::kRateLimited) {
    const bool tokens_spent =
        snap.remaining_tokens && *snap.remaining_tokens == 0 &&
        !(snap.remaining_requests && *snap.remaining_requests == 0);
    if (tokens_spent) {
      ++rate_limited_tokens_;
    } else {
      ++rate_limited_requests_;
    }
    if (LearnsRequestLimit() || LearnsTokenLimit()) {
      news_for_coordinator_ = true;  // a limit to learn
    }
    if (result.retry_after) {
      // Holds every request to this teacher, whatever is limited.
      const TimePoint until = HoldUntil(now + *result.retry_after);
      requests_.BlockUntil(until);  // and start refilling only then
    }
  }
  if (result.kind == FailureKind::kTeacherDown) paused_ = true;
}

void TeacherLimiter::TakeReport(int64_t demand, v1::TeacherDemand* out) {
  out->set_teacher(profile_.name);
  out->set_demand(demand);
  out->set_successes(successes_);
  out->set_rate_limited_requests(rate_limited_requests_);
  out->set_rate_limited_tokens(rate_limited_tokens_);
  out->set_announced_rpm(announced_rpm_);
  out->set_announced_tpm(announced_tpm_);
  out->set_tokens_used(tokens_used_);
  out->set_errors(errors_);
  successes_ = rate_limited_requests_ = rate_limited_tokens_ = errors_ = 0;
  tokens_used_ = 0;
}

}  // namespace distillery
