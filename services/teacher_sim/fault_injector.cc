#include "services/teacher_sim/fault_injector.h"

#include <cassert>
#include <utility>

namespace distillery::teacher_sim {

std::string_view FaultKindName(FaultKind kind) {
  switch (kind) {
    case FaultKind::kNone:
      return "none";
    case FaultKind::kServerError:
      return "server_error";
    case FaultKind::kRateLimited:
      return "rate_limited";
  }
  return "unknown";
}

std::vector<WeightedFault> RandomFaultInjector::DefaultMix() {
  return {{FaultKind::kServerError, 1.0}, {FaultKind::kRateLimited, 1.0}};
}

RandomFaultInjector::RandomFaultInjector(double rate, uint64_t seed,
                                         std::vector<WeightedFault> mix)
    : rate_(rate), mix_(std::move(mix)), rng_(seed) {
  for (const WeightedFault& f : mix_) {
    assert(f.weight > 0);
    total_weight_ += f.weight;
  }
}

double RandomFaultInjector::Uniform() {
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

FaultKind RandomFaultInjector::Next() {
  if (rate_ <= 0 || mix_.empty()) return FaultKind::kNone;
  std::lock_guard<std::mutex> lock(mu_);
  if (Uniform() >= rate_) return FaultKind::kNone;
  double pick = Uniform() * total_weight_;
  for (const WeightedFault& f : mix_) {
    if (pick < f.weight) return f.kind;
    pick -= f.weight;
  }
  return mix_.back().kind;  // rounding left pick == total weight
}

}  // namespace distillery::teacher_sim
