// ShareAllocator: splits one limit (of one teacher profile) among the
// workers that want it, in proportion to their demand. Shares expire unless
// renewed, so a dead worker's share returns to the pool; a new grant never
// takes more than the limit minus the live grants of the others, so the sum
// of live shares never exceeds the limit at the time of granting. A worker
// that joins gets what is unallocated at once and its fair share once the
// others have renewed (within one heartbeat interval).
#ifndef DISTILLERY_COMMON_RATELIMIT_SHARE_ALLOCATOR_H_
#define DISTILLERY_COMMON_RATELIMIT_SHARE_ALLOCATOR_H_

#include <map>
#include <string>

#include "common/base/clock.h"

namespace distillery {

// Thread-compatible.
class ShareAllocator {
 public:
  ShareAllocator(Clock& clock, Duration ttl) : clock_(clock), ttl_(ttl) {}

  // Worker `worker` wants `demand` (> 0: it has work; 0: idle) of `limit`.
  // Returns its grant, valid for the ttl. Integral grants round down (for
  // concurrency), with at least 1 when anything is free.
  double Renew(const std::string& worker, double demand, double limit,
               bool integral = false);
  void Drop(const std::string& worker) { grants_.erase(worker); }
  // Sum of grants that have not expired.
  double LiveTotal();
  Duration ttl() const { return ttl_; }

 private:
  struct Grant {
    double amount = 0;
    double demand = 0;
    TimePoint expires;
  };
  void Prune();

  Clock& clock_;
  const Duration ttl_;
  std::map<std::string, Grant> grants_;
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_RATELIMIT_SHARE_ALLOCATOR_H_
