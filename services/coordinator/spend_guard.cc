#include "services/coordinator/spend_guard.h"

#include <cassert>
#include <cmath>

namespace distillery {

int64_t NanoUsdUp(double usd) {
  return static_cast<int64_t>(std::ceil(usd * 1e9));
}
int64_t NanoUsdDown(double usd) {
  return static_cast<int64_t>(std::floor(usd * 1e9));
}

SpendGuard::Verdict SpendGuard::Check(const v1::Job& job,
                                      int64_t reserve_nano_usd) const {
  if (job.spec().budget_usd() <= 0) return Verdict::kFits;
  Reserved reserved;
  if (auto it = reserved_.find(job.id()); it != reserved_.end()) {
    reserved = it->second;
  }
  if (NanoUsdUp(job.counters().cost_usd()) + reserved.nano_usd +
          reserve_nano_usd <=
      NanoUsdDown(job.spec().budget_usd())) {
    return Verdict::kFits;
  }
  return reserved.leases > 0 ? Verdict::kWait : Verdict::kPause;
}

void SpendGuard::Reserve(const std::string& job_id, int64_t nano_usd) {
  Reserved& r = reserved_[job_id];
  r.nano_usd += nano_usd;
  ++r.leases;
}

void SpendGuard::Release(const std::string& job_id, int64_t nano_usd) {
  auto it = reserved_.find(job_id);
  if (it == reserved_.end()) return;
  it->second.nano_usd -= nano_usd;
  --it->second.leases;
  assert(it->second.leases >= 0 && it->second.nano_usd >= 0);
  if (it->second.leases == 0) reserved_.erase(it);
}

}  // namespace distillery
