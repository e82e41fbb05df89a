// Clock: the one seam for time. Rate limiters, leases, backoff and timeouts
// take a Clock&, so tests drive them with FakeClock instead of sleeping.
// Only RealClock reads std::chrono clocks or sleeps.
#ifndef DISTILLERY_COMMON_BASE_CLOCK_H_
#define DISTILLERY_COMMON_BASE_CLOCK_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace distillery {

using Duration = std::chrono::nanoseconds;
// A point on a Clock's monotonic timeline (not wall time).
using TimePoint = std::chrono::time_point<std::chrono::steady_clock, Duration>;

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time, for deadlines and rates.
  virtual TimePoint Now() = 0;
  // Wall time in milliseconds since the Unix epoch, for records users read.
  virtual int64_t WallMillis() = 0;
  virtual void SleepFor(Duration d) = 0;
};

// The process clock. Thread-safe.
class RealClock : public Clock {
 public:
  TimePoint Now() override;
  int64_t WallMillis() override;
  void SleepFor(Duration d) override;
  // A shared instance for main() wiring.
  static RealClock& Get();
};

// A clock that moves only when told to. SleepFor advances it. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(TimePoint start = TimePoint(std::chrono::hours(1)))
      : now_(start) {}
  TimePoint Now() override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  int64_t WallMillis() override {
    std::lock_guard<std::mutex> lock(mu_);
    return kWallEpochMillis +
           std::chrono::duration_cast<std::chrono::milliseconds>(
               now_.time_since_epoch())
               .count();
  }
  void SleepFor(Duration d) override { Advance(d); }
  void Advance(Duration d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
  }

 private:
  static constexpr int64_t kWallEpochMillis = 1'750'000'000'000;
  std::mutex mu_;
  TimePoint now_;
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_BASE_CLOCK_H_
