#include "common/ratelimit/aimd.h"

#include <algorithm>

namespace distillery {

AimdLimit::AimdLimit(Clock& clock, double configured, double initial_guess,
                     AimdOptions options)
    : clock_(clock),
      options_(options),
      configured_(configured > 0 ? configured : 0),
      last_increase_(clock.Now()) {
  effective_ = configured_ > 0 ? configured_ : std::max(1.0, initial_guess);
  floor_ = std::max(1.0, options_.floor_share * *effective_);
}

std::optional<double> AimdLimit::ceiling() const {
  if (configured_ > 0 && announced_ > 0) return std::min(configured_, announced_);
  if (configured_ > 0) return configured_;
  if (announced_ > 0) return announced_;
  return std::nullopt;
}

void AimdLimit::OnRateLimited(double observed_rate) {
  const TimePoint now = clock_.Now();
  if (seen_429_ && now - last_decrease_ < options_.decrease_cooldown) return;
  if (slow_start() && observed_rate > 0) {
    // The first sign of a limit we did not know: it is about what we were
    // achieving when it came, which slow start may have overshot.
    effective_ = std::min(*effective_, std::max(1.0, observed_rate));
  }
  level_at_429_ = *effective_;
  seen_429_ = true;
  last_decrease_ = now;
  last_increase_ = now;
  effective_ = std::max(floor_, *effective_ * options_.decrease_factor);
}

void AimdLimit::OnSuccess() {
  if (!effective_) return;
  const TimePoint now = clock_.Now();
  if (now - last_increase_ < options_.increase_interval) return;
  last_increase_ = now;
  if (slow_start()) {
    *effective_ *= options_.slow_start_factor;
    return;
  }
  const std::optional<double> cap = ceiling();
  const double base = cap ? *cap : level_at_429_;
  *effective_ += std::max(1.0, base * options_.increase_step);
  if (cap) effective_ = std::min(*effective_, *cap);
}

void AimdLimit::OnAnnounced(double limit) {
  if (limit <= 0) return;
  const bool first = announced_ <= 0;
  announced_ = limit;
  const double cap = *ceiling();
  // A teacher that announces its limit saves the learning: start there.
  if (first && configured_ <= 0 && !seen_429_) effective_ = cap;
  effective_ = std::min(*effective_, cap);
  floor_ = std::max(1.0, options_.floor_share * cap);
}

}  // namespace distillery
