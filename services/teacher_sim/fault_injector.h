// Fault injection for teacher-sim: decides, per chat request, whether the
// simulator misbehaves instead of answering and how. Faults are a closed
// list of kinds so new ones (503 with retry-after, Anthropic's 529, reset
// connections, truncated bodies, keep-alive padding) slot in by adding an
// enum value, a weight in the mix and a case where SimHandler renders it.
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_FAULT_INJECTOR_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_FAULT_INJECTOR_H_

#include <cstdint>
#include "absl/synchronization/mutex.h"
#include <random>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"

namespace distillery::teacher_sim {

enum class FaultKind {
  kNone,
  kServerError,  // 500 server_error
  kRateLimited,  // 429 rate_limit_exceeded with retry-after headers
  kUnavailable,  // 503 with retry-after
  kOverloaded,   // 529 overloaded_error (Anthropic's)
  kReset,        // the connection is reset instead of answered
  kTruncate,     // a 200 whose body stops halfway
  kPad,          // a 200 after blank lines / ": keep-alive" for a while
  kSlow,         // a 200 after a long delay
  kQuota,        // 429 insufficient_quota (permanent: pauses the teacher)
  kEchoKey,      // 401 whose body quotes the request's key JSON-escaped
                 // ('/' as \/), as a careless gateway does
  kLatin1,       // 400 with a text/html ISO-8859-1 page (not UTF-8)
};

struct WeightedFault {
  FaultKind kind;
  double weight;  // relative to the other entries; > 0
};

std::string_view FaultKindName(FaultKind kind);

// Parses a --fault-rates value: comma-separated KIND=RATE, KIND one of 500,
// 429, 503, 529, reset, truncate, pad, slow, quota, 401echo, latin1 and RATE
// the fraction of requests (0..1) that get it; the rates must sum to at most 1. The result
// is a mix for RandomFaultInjector with `*total` as its rate.
absl::StatusOr<std::vector<WeightedFault>> ParseFaultRates(
    std::string_view spec, double* total);

// Chooses the fault for the next request. Implementations are thread-safe.
class FaultInjector {
 public:
  virtual ~FaultInjector() = default;
  virtual FaultKind Next() = 0;
};

// Injects a fault into a fraction `rate` (0..1) of requests, choosing the
// kind by weight from `mix`. The sequence of choices is a pure function of
// `seed`. Thread-safe (an annotated absl::Mutex, checked by clang's
// -Wthread-safety: make check-thread-safety).
class RandomFaultInjector : public FaultInjector {
 public:
  // 500 and 429, equally likely.
  static std::vector<WeightedFault> DefaultMix();

  RandomFaultInjector(double rate, uint64_t seed,
                      std::vector<WeightedFault> mix = DefaultMix());

  FaultKind Next() override;

 private:
  // A uniform double in [0, 1) from 53 random bits, independent of the
  // standard library's distribution implementations.
  double Uniform() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const double rate_;
  const std::vector<WeightedFault> mix_;
  double total_weight_ = 0;
  absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
};

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_FAULT_INJECTOR_H_
