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

void AimdLimit::Cap() {
  if (const std::optional<double> cap = ceiling(); cap && effective_) {
    effective_ = std::min(*effective_, *cap);
    if (plateau_ > 0) plateau_ = std::min(plateau_, *cap);
  }
}

void AimdLimit::OnRateLimited(std::optional<double> admitted) {
  const TimePoint now = clock_.Now();
  if (seen_429_ && now - last_decrease_ < options_.decrease_cooldown) return;
  if (!effective_) {
    // Unbounded until now: the teacher's limit is what it let through.
    plateau_ = std::max(1.0, admitted.value_or(1.0));
    floor_ = std::max(1.0, options_.floor_share * plateau_);
    effective_ = plateau_;
    measure_until_ = now + options_.measure_time;
  } else if (seen_429_ && *effective_ > plateau_) {
    // Probing above the plateau met the limit: it is about where it was.
    plateau_ = admitted ? std::clamp(*admitted, plateau_, *effective_)
                        : plateau_;
    effective_ = plateau_;
  } else {
    // At or below the level believed safe: the limit is lower than that.
    plateau_ = admitted ? std::min(*admitted, *effective_) : *effective_;
    plateau_ = std::max(floor_, plateau_);
    effective_ = std::max(floor_, plateau_ * options_.decrease_factor);
  }
  seen_429_ = true;
  probe_steps_ = 0;
  last_decrease_ = now;
  last_increase_ = now;
  at_plateau_since_ = now;
  Cap();
}

void AimdLimit::OnAdmitted(double admitted) {
  if (!measuring() || !effective_ || admitted <= plateau_) return;
  const bool at_plateau = *effective_ >= plateau_;
  plateau_ = admitted;
  floor_ = std::max(1.0, options_.floor_share * plateau_);
  if (at_plateau) effective_ = plateau_;
  Cap();
}

void AimdLimit::OnSuccess() {
  if (!effective_) return;
  const TimePoint now = clock_.Now();
  if (now - last_increase_ < options_.increase_interval) return;
  last_increase_ = now;
  if (!seen_429_) return;  // at the configured or announced limit
  if (*effective_ < plateau_) {
    const double gap = plateau_ - *effective_;
    *effective_ += std::max(std::min(gap, 1.0), gap * options_.recovery_share);
    if (plateau_ - *effective_ <= 0.005 * plateau_) {
      effective_ = plateau_;
      at_plateau_since_ = now;
    }
  } else if (now - at_plateau_since_ >= options_.hold) {
    const double step = options_.probe_step * (1 << std::min(probe_steps_, 20));
    *effective_ += std::max(1.0, plateau_ * step);
    ++probe_steps_;
  }
  Cap();
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
  floor_ = std::max(1.0, options_.floor_share * cap);
  Cap();
}

}  // namespace distillery
