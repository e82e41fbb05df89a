// The mixing and hex formatting behind teacher-sim's ids (response ids,
// request ids, batch and file ids): SplitMix64's finalizer, so ids are
// well spread and distinct per process run. Thread-safe: pure functions.
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_SIM_IDS_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_SIM_IDS_H_

#include <cstdint>
#include <string>

namespace distillery::teacher_sim {

inline uint64_t Mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// 16 lower-case hex digits.
inline std::string Hex64(uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[i] = kHex[v & 0xF];
  return out;
}

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_SIM_IDS_H_
