// AimdLimit: a teacher's effective limit (requests or tokens per window) as
// the cluster believes it. A 429 rate_limit_exceeded shrinks it
// multiplicatively (at most once per cooldown, since one overload produces
// many 429s at once); intervals without 429s grow it additively, up to the
// ceiling (the configured limit, or the one the teacher announces in its
// headers, whichever is lower).
//
// With no limit configured or announced it starts from a cautious guess and
// grows multiplicatively (slow start) until the teacher announces its limit
// or answers 429; at the first 429 the level drops to what the cluster was
// actually achieving (which the caller measures), and AIMD goes on from
// there. So a profile without a limit, or with a wrong one, converges on the
// real one without a burst of 429s at the start.
#ifndef DISTILLERY_COMMON_RATELIMIT_AIMD_H_
#define DISTILLERY_COMMON_RATELIMIT_AIMD_H_

#include <optional>

#include "common/base/clock.h"

namespace distillery {

struct AimdOptions {
  double decrease_factor = 0.85;
  // Additive step per increase interval, as a share of the ceiling (or of
  // the level where the last 429 happened, when no ceiling is known).
  double increase_step = 0.01;
  Duration increase_interval = std::chrono::seconds(1);
  // Growth per increase interval while no limit is known.
  double slow_start_factor = 2.0;
  // A second 429 within this time of a decrease does not decrease again.
  Duration decrease_cooldown = std::chrono::seconds(2);
  // Never below this share of the ceiling or of the first level learned.
  double floor_share = 0.02;
};

// Thread-compatible.
class AimdLimit {
 public:
  // `configured` <= 0 means unknown; then `initial_guess` is the start.
  AimdLimit(Clock& clock, double configured, double initial_guess,
            AimdOptions options = {});

  // A 429 blamed on this limit; `observed_rate` is what the cluster was
  // achieving (per window) when it came, used when no level is known yet.
  void OnRateLimited(double observed_rate);
  // Successes and no 429 since the last call: grow, if an increase interval
  // has passed.
  void OnSuccess();
  // The teacher announced its limit (x-ratelimit-limit-*).
  void OnAnnounced(double limit);

  // The limit to enforce.
  std::optional<double> effective() const { return effective_; }
  // Still probing upwards: no limit known and no 429 seen.
  bool slow_start() const { return !ceiling() && !seen_429_; }
  // The known upper bound, if any.
  std::optional<double> ceiling() const;
  double configured() const { return configured_; }
  bool learned() const { return configured_ <= 0 && announced_ <= 0; }

 private:
  Clock& clock_;
  const AimdOptions options_;
  double configured_;
  double announced_ = 0;
  std::optional<double> effective_;
  double floor_ = 1;
  double level_at_429_ = 0;
  bool seen_429_ = false;
  TimePoint last_decrease_{};
  TimePoint last_increase_;
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_RATELIMIT_AIMD_H_
