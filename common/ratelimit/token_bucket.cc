#include "common/ratelimit/token_bucket.h"

#include <algorithm>
#include <cmath>

namespace distillery {
namespace {

// Refills add up in floating point: ten refills of 0.1 make 0.99999...
// Levels this close to a whole request count as having it, in TryTake and
// TimeUntil alike, so the two always agree.
constexpr double kEpsilon = 1e-9;

}  // namespace

TokenBucket::TokenBucket(Clock& clock, double rate_per_second, double capacity,
                         double initial)
    : clock_(clock),
      rate_(rate_per_second),
      capacity_(capacity),
      level_(std::min(initial, capacity)),
      last_(clock.Now()) {}

void TokenBucket::Refill() {
  const TimePoint now = clock_.Now();
  if (now < blocked_until_) {
    level_ = std::min(level_, 0.0);
    last_ = now;
    return;
  }
  const TimePoint from = std::max(last_, blocked_until_);
  if (now > from && rate_ > 0) {
    level_ = std::min(capacity_,
                      level_ + rate_ * std::chrono::duration<double>(now - from)
                                           .count());
  }
  last_ = now;
}

void TokenBucket::SetRate(double rate_per_second, double capacity) {
  Refill();
  rate_ = rate_per_second;
  capacity_ = capacity;
  level_ = std::min(level_, capacity_);
}

bool TokenBucket::TryTake(double n) {
  Refill();
  if (level_ + kEpsilon >= n ||
      (n > capacity_ && level_ + kEpsilon >= capacity_ && capacity_ > 0)) {
    level_ -= n;
    return true;
  }
  return false;
}

void TokenBucket::Take(double n) {
  Refill();
  level_ -= n;
}

void TokenBucket::Give(double n) {
  Refill();
  level_ = std::min(capacity_, level_ + n);
}

Duration TokenBucket::TimeUntil(double n) {
  Refill();
  const double need = std::min(n, capacity_) - level_;
  const TimePoint now = clock_.Now();
  const Duration blocked =
      blocked_until_ > now ? blocked_until_ - now : Duration(0);
  if (need <= kEpsilon) return blocked;
  if (rate_ <= 0) return Duration::max();
  // Rounded up: a wait truncated to 0 ns would say "ready" while TryTake
  // still refuses by a rounding error.
  return blocked + std::chrono::ceil<Duration>(
                       std::chrono::duration<double>(need / rate_));
}

void TokenBucket::BlockUntil(TimePoint until) {
  Refill();
  if (until > blocked_until_) blocked_until_ = until;
  level_ = std::min(level_, 0.0);
}

double TokenBucket::Level() {
  Refill();
  return level_;
}

}  // namespace distillery
