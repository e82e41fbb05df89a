#include "common/ratelimit/aimd.h"

#include <algorithm>

namespace distillery {

AimdLimit::AimdLimit(Clock& clock, double configured, AimdOptions options)
    : clock_(clock),
      options_(options),
      configured_(configured > 0 ? configured : 0),
      last_increase_(clock.Now()) {
  if (configured_ > 0) {
    effective_ = configured_;
    floor_ = std::max(1.0, options_.floor_share * configured_);
  }
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
  if (!effective_) {
    // The first sign of a limit we did not know: it is about what we were
    // doing when it came.
    const double level = std::max(1.0, observed_rate);
    effective_ = level;
    floor_ = std::max(1.0, options_.floor_share * level);
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
  if (!effective_ || (first && configured_ <= 0 && !seen_429_)) {
    effective_ = cap;
  }
  effective_ = std::min(*effective_, cap);
  floor_ = std::max(1.0, options_.floor_share * cap);
}

}  // namespace distillery
