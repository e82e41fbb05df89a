#include "services/teacher_sim/request_repeats.h"

#include <functional>

namespace distillery::teacher_sim {

int64_t RequestRepeats::Next(std::string_view body) {
  const uint64_t key = std::hash<std::string_view>{}(body);
  absl::MutexLock lock(&mu_);
  if (seen_.size() >= capacity_ && seen_.find(key) == seen_.end()) {
    seen_.clear();
  }
  return seen_[key]++;
}

}  // namespace distillery::teacher_sim
