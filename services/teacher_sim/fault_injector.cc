#include "services/teacher_sim/fault_injector.h"

#include <cassert>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace distillery::teacher_sim {

std::string_view FaultKindName(FaultKind kind) {
  switch (kind) {
    case FaultKind::kNone:
      return "none";
    case FaultKind::kServerError:
      return "server_error";
    case FaultKind::kRateLimited:
      return "rate_limited";
    case FaultKind::kUnavailable:
      return "unavailable";
    case FaultKind::kOverloaded:
      return "overloaded";
    case FaultKind::kReset:
      return "reset";
    case FaultKind::kTruncate:
      return "truncate";
    case FaultKind::kPad:
      return "pad";
    case FaultKind::kSlow:
      return "slow";
    case FaultKind::kQuota:
      return "quota";
    case FaultKind::kEchoKey:
      return "401echo";
    case FaultKind::kLatin1:
      return "latin1";
  }
  return "unknown";
}

absl::StatusOr<std::vector<WeightedFault>> ParseFaultRates(
    std::string_view spec, double* total) {
  static const std::pair<std::string_view, FaultKind> kNames[] = {
      {"500", FaultKind::kServerError}, {"429", FaultKind::kRateLimited},
      {"503", FaultKind::kUnavailable}, {"529", FaultKind::kOverloaded},
      {"reset", FaultKind::kReset},     {"truncate", FaultKind::kTruncate},
      {"pad", FaultKind::kPad},         {"slow", FaultKind::kSlow},
      {"quota", FaultKind::kQuota},     {"401echo", FaultKind::kEchoKey},
      {"latin1", FaultKind::kLatin1}};
  std::vector<WeightedFault> mix;
  *total = 0;
  for (absl::string_view raw :
       absl::StrSplit(absl::string_view(spec.data(), spec.size()), ',',
                      absl::SkipWhitespace())) {
    const std::string_view item(raw.data(), raw.size());
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "fault rate '", std::string(item), "' is not KIND=RATE"));
    }
    const std::string_view name = item.substr(0, eq);
    const std::string value(item.substr(eq + 1));
    const FaultKind* kind = nullptr;
    for (const auto& [n, k] : kNames) {
      if (n == name) kind = &k;
    }
    if (kind == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown fault '", std::string(name),
          "' (known: 500, 429, 503, 529, reset, truncate, pad, slow, quota, "
          "401echo, latin1)"));
    }
    double rate = 0;
    if (!absl::SimpleAtod(value, &rate) || rate < 0 || rate > 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "fault '", std::string(name), "': rate '", value,
          "' is not a number in [0, 1]"));
    }
    if (rate == 0) continue;
    mix.push_back({*kind, rate});
    *total += rate;
  }
  if (*total > 1 + 1e-9) {
    return absl::InvalidArgumentError(
        absl::StrCat("fault rates sum to ", *total, ", over 1"));
  }
  return mix;
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
  absl::MutexLock lock(&mu_);
  if (Uniform() >= rate_) return FaultKind::kNone;
  double pick = Uniform() * total_weight_;
  for (const WeightedFault& f : mix_) {
    if (pick < f.weight) return f.kind;
    pick -= f.weight;
  }
  return mix_.back().kind;  // rounding left pick == total weight
}

}  // namespace distillery::teacher_sim
