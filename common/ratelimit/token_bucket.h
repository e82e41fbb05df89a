// TokenBucket: a rate with a small burst, on an injected clock. The worker
// enforces its share of a teacher's limits with one bucket for requests and
// one for tokens. Tokens can go negative (debt), which is how a request that
// used more tokens than it reserved pays the difference afterwards.
#ifndef DISTILLERY_COMMON_RATELIMIT_TOKEN_BUCKET_H_
#define DISTILLERY_COMMON_RATELIMIT_TOKEN_BUCKET_H_

#include "common/base/clock.h"

namespace distillery {

// Thread-compatible: callers serialise access.
class TokenBucket {
 public:
  // Starts with `initial` tokens. A rate <= 0 refills nothing.
  TokenBucket(Clock& clock, double rate_per_second, double capacity,
              double initial = 0);

  // Changes rate and capacity from now on; the level is kept (clamped).
  void SetRate(double rate_per_second, double capacity);
  // Takes `n` if that many are there now. A request larger than the whole
  // capacity is let through once the bucket is full, so it never waits
  // forever; it leaves the bucket in debt.
  bool TryTake(double n);
  // Takes unconditionally (settling a reservation that was too small).
  void Take(double n);
  // Returns tokens (settling a reservation that was too large).
  void Give(double n);
  // How long until TryTake(n) would succeed; Duration::max() if never.
  Duration TimeUntil(double n);
  // Holds the bucket empty until `until` (a teacher said its window is
  // spent until then).
  void BlockUntil(TimePoint until);

  double Level();
  double rate() const { return rate_; }
  double capacity() const { return capacity_; }

 private:
  void Refill();

  Clock& clock_;
  double rate_;
  double capacity_;
  double level_;
  TimePoint last_;
  TimePoint blocked_until_{};
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_RATELIMIT_TOKEN_BUCKET_H_
