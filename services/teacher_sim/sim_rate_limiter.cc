#include "services/teacher_sim/sim_rate_limiter.h"

#include <algorithm>

namespace distillery::teacher_sim {

void SimRateLimiter::PruneLocked(TimePoint now) {
  while (!window_.empty() && window_.front().at <= now - limits_.window) {
    window_tokens_ -= window_.front().tokens;
    window_.pop_front();
  }
  // busy_until_ is not sorted when latencies differ; drop what has ended.
  busy_until_.erase(
      std::remove_if(busy_until_.begin(), busy_until_.end(),
                     [now](TimePoint t) { return t <= now; }),
      busy_until_.end());
}

SimAdmission SimRateLimiter::Admit(int64_t tokens, Duration busy_for) {
  absl::MutexLock lock(&mu_);
  const TimePoint now = clock_.Now();
  PruneLocked(now);
  SimAdmission a;
  const Duration reset =
      window_.empty() ? Duration(0) : window_.front().at + limits_.window - now;
  a.reset_requests = reset;
  a.reset_tokens = reset;
  const int64_t count = static_cast<int64_t>(window_.size());
  if (limits_.rpm > 0 && count + 1 > limits_.rpm) {
    a.allowed = false;
    a.limit = "requests";
  } else if (limits_.tpm > 0 && window_tokens_ + tokens > limits_.tpm &&
             !(window_.empty() && tokens > limits_.tpm)) {
    a.allowed = false;
    a.limit = "tokens";
    // The window frees enough tokens only when enough entries leave it.
    int64_t freed = 0;
    for (const Entry& e : window_) {
      freed += e.tokens;
      if (window_tokens_ - freed + tokens <= limits_.tpm) {
        a.reset_tokens = e.at + limits_.window - now;
        break;
      }
    }
  } else if (limits_.max_concurrency > 0 &&
             static_cast<int64_t>(busy_until_.size()) >=
                 limits_.max_concurrency) {
    a.allowed = false;
    a.limit = "concurrency";
  }
  if (!a.allowed) {
    ++refused_;
    a.retry_after = a.limit == "tokens" ? a.reset_tokens
                    : a.limit == "requests"
                        ? reset
                        : std::chrono::milliseconds(100);
    a.remaining_requests = std::max<int64_t>(0, limits_.rpm - count);
    a.remaining_tokens = std::max<int64_t>(0, limits_.tpm - window_tokens_);
    if (a.limit == "requests") a.remaining_requests = 0;
    if (a.limit == "tokens") a.remaining_tokens = 0;
    return a;
  }
  window_.push_back(Entry{now, tokens});
  window_tokens_ += tokens;
  busy_until_.push_back(now + busy_for);
  peak_requests_ = std::max(peak_requests_, count + 1);
  peak_tokens_ = std::max(peak_tokens_, window_tokens_);
  a.remaining_requests = std::max<int64_t>(0, limits_.rpm - count - 1);
  a.remaining_tokens = std::max<int64_t>(0, limits_.tpm - window_tokens_);
  a.reset_requests = window_.front().at + limits_.window - now;
  a.reset_tokens = a.reset_requests;
  return a;
}

int64_t SimRateLimiter::peak_window_requests() const {
  absl::MutexLock lock(&mu_);
  return peak_requests_;
}

int64_t SimRateLimiter::peak_window_tokens() const {
  absl::MutexLock lock(&mu_);
  return peak_tokens_;
}

int64_t SimRateLimiter::refused_total() const {
  absl::MutexLock lock(&mu_);
  return refused_;
}

}  // namespace distillery::teacher_sim
