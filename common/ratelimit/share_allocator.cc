#include "common/ratelimit/share_allocator.h"

#include <algorithm>
#include <cmath>

namespace distillery {

void ShareAllocator::Prune() {
  const TimePoint now = clock_.Now();
  for (auto it = grants_.begin(); it != grants_.end();) {
    it = it->second.expires <= now ? grants_.erase(it) : std::next(it);
  }
}

double ShareAllocator::LiveTotal() {
  Prune();
  double total = 0;
  for (const auto& [w, g] : grants_) total += g.amount;
  return total;
}

double ShareAllocator::Renew(const std::string& worker, double demand,
                             double limit, bool integral) {
  Prune();
  double others_granted = 0;
  double total_demand = std::max(0.0, demand);
  for (const auto& [w, g] : grants_) {
    if (w == worker) continue;
    others_granted += g.amount;
    total_demand += g.demand;
  }
  double grant = 0;
  if (demand > 0 && total_demand > 0) {
    const double fair = limit * demand / total_demand;
    const double available = std::max(0.0, limit - others_granted);
    grant = std::min(fair, available);
    if (integral) {
      grant = std::floor(grant);
      if (grant < 1 && available >= 1) grant = 1;
    }
  }
  grants_[worker] = Grant{grant, std::max(0.0, demand), clock_.Now() + ttl_};
  return grant;
}

}  // namespace distillery
