#include "tests/testing/clock_driver.h"

namespace distillery::testing {

bool RunClockUntil(FakeClock& clock, const std::function<bool()>& done) {
  // Far more turns than any test needs; a guard against a loop that never
  // reaches `done`.
  constexpr int kMaxTurns = 1'000'000;
  // Waits for `ready` in short slices of real time, looking at `done` in
  // between: the code under test may finish (a thread that returns never
  // waits on the clock again). 3000 slices of 10 ms are the hang guard.
  auto wait = [&done](const auto& ready) {
    for (int slice = 0; slice < 3000; ++slice) {
      if (ready(absl::Milliseconds(10))) return true;
      if (done()) return false;
    }
    return false;
  };
  for (int turn = 0; turn < kMaxTurns; ++turn) {
    if (done()) return true;
    const int64_t before = clock.awaits_started();
    if (!wait([&](absl::Duration d) { return clock.WaitForWaiters(1, d); })) {
      return done();
    }
    // A state change may have woken the waiter already (it is still
    // registered while it wakes); time moves only to a deadline it asked
    // for, so that costs nothing but a turn.
    clock.AdvanceToNextDeadline();
    if (!wait([&](absl::Duration d) {
          return clock.WaitForNextAwait(before, d);
        })) {
      return done();
    }
  }
  return done();
}

}  // namespace distillery::testing
