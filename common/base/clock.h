// Clock: the one seam for time. Rate limiters, leases, backoff and timeouts
// take a Clock&, so tests drive them with FakeClock instead of sleeping.
// Only RealClock reads std::chrono clocks or sleeps.
//
// The clock also owns waiting with a deadline: code that waits for a state
// change or a moment (the worker's loop, a watch, housekeeping) waits on its
// own absl::Mutex through AwaitWithDeadline, so a FakeClock's Advance wakes
// it when the deadline comes, as absl's SimulatedClock does. absl::Mutex
// re-evaluates a Condition whenever the mutex is released, so "state
// changed" needs no condition variable: the waiter wakes when the state its
// condition reads changes, or when the clock reaches its deadline.
#ifndef DISTILLERY_COMMON_BASE_CLOCK_H_
#define DISTILLERY_COMMON_BASE_CLOCK_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

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
  // Waits until `cond` holds or this clock reaches `deadline`. `mu` is held
  // by the caller on entry and on return (it is released while waiting);
  // `cond` reads state guarded by `mu`. Returns `cond`'s value at the end:
  // true when it holds, false when the deadline came first.
  virtual bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& cond,
                                 TimePoint deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;
};

// The process clock. Thread-safe.
class RealClock : public Clock {
 public:
  TimePoint Now() override;
  int64_t WallMillis() override;
  void SleepFor(Duration d) override;
  bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& cond,
                         TimePoint deadline) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // A shared instance for main() wiring.
  static RealClock& Get();
};

// A clock that moves only when told to: Advance (and SleepFor, which
// advances it) wakes every AwaitWithDeadline whose deadline it reaches.
// Tests call WaitForWaiters to know the code under test is blocked on the
// clock before they move it, so they never sleep. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(TimePoint start = TimePoint(std::chrono::hours(1)))
      : now_(start) {}
  ~FakeClock() override;

  TimePoint Now() override;
  int64_t WallMillis() override;
  void SleepFor(Duration d) override { Advance(d); }
  bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& cond,
                         TimePoint deadline) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // Moves time forward by `d` and wakes the waiters whose deadline it
  // reaches. Must not be called with a waiter's mutex held.
  void Advance(Duration d);
  // Moves time to the earliest waiter's deadline (waking it), if there is
  // one later than now; returns false when no one waits.
  bool AdvanceToNextDeadline();
  // Blocks until at least `n` threads wait in AwaitWithDeadline. A guard
  // against a hung test, not a timing: gives up (returns false) after
  // `give_up` of real time.
  bool WaitForWaiters(int n, absl::Duration give_up = absl::Seconds(30));
  int waiters();
  // How many AwaitWithDeadline calls have found their condition false and
  // begun to wait; with WaitForNextAwait a test knows the code under test
  // has acted on a change and waits again.
  int64_t awaits_started();
  // Blocks until an AwaitWithDeadline begun after the `after`th one is
  // waiting (same guard as WaitForWaiters).
  bool WaitForNextAwait(int64_t after,
                        absl::Duration give_up = absl::Seconds(30));

 private:
  struct Waiter {
    absl::Mutex* mu;
    // Set under `mu` when the deadline is reached: ends the waiter's Await.
    bool fired = false;
    // Set under lock_ once Advance no longer touches `mu`.
    bool delivered = false;
  };
  void WakeDue(TimePoint now);

  static constexpr int64_t kWallEpochMillis = 1'750'000'000'000;
  absl::Mutex lock_;
  TimePoint now_ ABSL_GUARDED_BY(lock_);
  // Registered waiters by deadline. A waiter leaves the map when it returns
  // or when Advance claims it to wake it.
  std::multimap<TimePoint, std::shared_ptr<Waiter>> waiters_
      ABSL_GUARDED_BY(lock_);
  int64_t awaits_started_ ABSL_GUARDED_BY(lock_) = 0;
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_BASE_CLOCK_H_
