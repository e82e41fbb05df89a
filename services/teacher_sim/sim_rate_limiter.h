// SimRateLimiter: teacher-sim's rate limits, enforced like the real APIs do:
// requests and tokens per sliding window (a request counts as its prompt
// tokens plus its completion limit when it arrives), and concurrent
// requests. It also remembers the peak it admitted in any window, which is
// what rate-limit tests compare against the configured limit.
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_SIM_RATE_LIMITER_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_SIM_RATE_LIMITER_H_

#include <cstdint>
#include <deque>
#include "absl/synchronization/mutex.h"
#include <string>

#include "absl/base/thread_annotations.h"
#include "common/base/clock.h"

namespace distillery::teacher_sim {

struct SimLimits {
  int64_t rpm = 0;  // requests per window; 0: none
  int64_t tpm = 0;  // tokens per window; 0: none
  int64_t max_concurrency = 0;
  Duration window = std::chrono::seconds(60);
  bool any() const { return rpm > 0 || tpm > 0 || max_concurrency > 0; }
};

struct SimAdmission {
  bool allowed = true;
  std::string limit;          // "requests", "tokens" or "concurrency"
  Duration retry_after{0};    // when refused
  int64_t remaining_requests = 0;
  int64_t remaining_tokens = 0;
  Duration reset_requests{0};
  Duration reset_tokens{0};
};

// Thread-safe.
class SimRateLimiter {
 public:
  SimRateLimiter(Clock& clock, SimLimits limits)
      : clock_(clock), limits_(limits) {}

  // Admits a request of `tokens` that will be answered after `busy_for`.
  SimAdmission Admit(int64_t tokens, Duration busy_for);

  const SimLimits& limits() const { return limits_; }
  int64_t peak_window_requests() const;
  int64_t peak_window_tokens() const;
  int64_t refused_total() const;

 private:
  void PruneLocked(TimePoint now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock& clock_;
  const SimLimits limits_;
  mutable absl::Mutex mu_;
  struct Entry {
    TimePoint at;
    int64_t tokens;
  };
  std::deque<Entry> window_ ABSL_GUARDED_BY(mu_);
  int64_t window_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<TimePoint> busy_until_ ABSL_GUARDED_BY(mu_);  // sorted
  int64_t peak_requests_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t peak_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t refused_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_SIM_RATE_LIMITER_H_
