// AimdLimit: a teacher's effective limit (requests or tokens per window) as
// the cluster believes it, learned from 429s and the teacher's headers.
//
// A limit that is neither configured nor announced is not guessed at: it is
// unbounded (effective() is empty) until the first 429, so a self-hosted
// teacher that never answers 429 (vLLM, Ollama, llama.cpp) runs at the
// workers' full concurrency from the first request. At the first 429 the
// level becomes what the teacher admitted over the last window (the caller
// counts it, and may raise the count for a few seconds as late reports
// come in), which for a window-counting limit is the limit itself.
//
// After that, the level where the last 429 came is the plateau: the
// effective limit returns to it quickly (half the gap each interval), holds
// there, and only after `hold` without a 429 probes above it, by steps that
// double each interval, in case the limit has risen. A 429 while probing
// says the plateau was right: back to it (re-measured), no decrease. A 429
// at or below the plateau says the limit fell: a multiplicative decrease
// (at most once per cooldown, since one overload produces many 429s at
// once). So the cluster spends almost all its time at the limit and meets
// a 429 about once per hold. A configured or announced limit is a ceiling:
// the effective limit starts there and never exceeds it.
#ifndef DISTILLERY_COMMON_RATELIMIT_AIMD_H_
#define DISTILLERY_COMMON_RATELIMIT_AIMD_H_

#include <optional>

#include "common/base/clock.h"

namespace distillery {

struct AimdOptions {
  // A 429 at or below the plateau: the new level is the old times this.
  double decrease_factor = 0.9;
  // How often the level moves up (the coordinator's reports come faster).
  Duration increase_interval = std::chrono::seconds(1);
  // Below the plateau: this share of the gap is closed per interval.
  double recovery_share = 0.5;
  // At the plateau this long without a 429 before probing above it.
  Duration hold = std::chrono::seconds(30);
  // The first probe step, as a share of the plateau; it doubles each
  // interval of the probe.
  double probe_step = 0.01;
  // A second 429 within this time of a decrease does not decrease again.
  Duration decrease_cooldown = std::chrono::seconds(2);
  // Never below this share of the ceiling or of the first level learned.
  double floor_share = 0.02;
  // After the first 429 of an unknown limit, how long reports of what the
  // teacher admitted before it may still raise the level: the workers'
  // reports of one window arrive over a heartbeat or two, and answers
  // admitted before the 429 come back after it.
  Duration measure_time = std::chrono::seconds(5);
};

// Thread-compatible.
class AimdLimit {
 public:
  // `configured` <= 0 means unknown: unbounded until a 429 or an
  // announcement.
  AimdLimit(Clock& clock, double configured, AimdOptions options = {});

  // A 429 blamed on this limit. `admitted`: what the teacher let through
  // over the last window, when the caller could measure it (a whole window
  // of reports, or since the start while the limit is unbounded).
  void OnRateLimited(std::optional<double> admitted);
  // While measuring(): the teacher has admitted `admitted` over the last
  // window; the level rises to it.
  void OnAdmitted(double admitted);
  // Successes and no 429 since the last call: move up, if an increase
  // interval has passed.
  void OnSuccess();
  // The teacher announced its limit (x-ratelimit-limit-*).
  void OnAnnounced(double limit);

  // The limit to enforce; empty: none known, none enforced.
  std::optional<double> effective() const { return effective_; }
  // No limit known yet: neither configured, announced, nor met by a 429.
  bool learning() const { return !effective_.has_value(); }
  // Just met the first 429 of an unknown limit: still counting what the
  // teacher admitted before it.
  bool measuring() const { return clock_.Now() < measure_until_; }
  // The known upper bound, if any.
  std::optional<double> ceiling() const;
  // The level where the last 429 came; 0 before any.
  double plateau() const { return plateau_; }
  double configured() const { return configured_; }
  bool learned() const { return configured_ <= 0 && announced_ <= 0; }

 private:
  void Cap();

  Clock& clock_;
  const AimdOptions options_;
  double configured_;
  double announced_ = 0;
  std::optional<double> effective_;
  double floor_ = 1;
  double plateau_ = 0;
  bool seen_429_ = false;
  int probe_steps_ = 0;  // intervals into the current probe
  TimePoint last_decrease_{};
  TimePoint last_increase_;
  TimePoint at_plateau_since_{};  // when the level last reached the plateau
  TimePoint measure_until_{};
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_RATELIMIT_AIMD_H_
