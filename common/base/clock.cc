#include "common/base/clock.h"

#include <thread>

namespace distillery {

TimePoint RealClock::Now() {
  return TimePoint(std::chrono::duration_cast<Duration>(
      std::chrono::steady_clock::now().time_since_epoch()));
}

int64_t RealClock::WallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void RealClock::SleepFor(Duration d) { std::this_thread::sleep_for(d); }

RealClock& RealClock::Get() {
  static RealClock clock;
  return clock;
}

}  // namespace distillery
