// RequestRepeats: how many times each request body has been seen by this
// process, so that a client asking again for a structured output whose
// answer was bad can get a different (eventually good) one, while the
// answer stays a function of (request, attempt) and tests stay
// deterministic.
//
// Keyed by a 64-bit hash of the body. Bounded: when `capacity` bodies are
// held, the map is cleared and counting starts over (a repeat then looks
// like a first request again, which only redraws its answer).
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_REQUEST_REPEATS_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_REQUEST_REPEATS_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace distillery::teacher_sim {

// Thread-safe (an annotated absl::Mutex).
class RequestRepeats {
 public:
  explicit RequestRepeats(size_t capacity = 100'000) : capacity_(capacity) {}

  // The number of earlier calls with the same `body`; counts this one.
  int64_t Next(std::string_view body);

 private:
  const size_t capacity_;
  absl::Mutex mu_;
  std::unordered_map<uint64_t, int64_t> seen_ ABSL_GUARDED_BY(mu_);
};

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_REQUEST_REPEATS_H_
