// Driving code that waits on a FakeClock: time moves only when the code
// under test is blocked on the clock, and then only to the earliest
// deadline it waits for, so a test runs it to a condition without sleeping
// and without skipping over any moment the code meant to act at.
#ifndef DISTILLERY_TESTS_TESTING_CLOCK_DRIVER_H_
#define DISTILLERY_TESTS_TESTING_CLOCK_DRIVER_H_

#include <functional>

#include "common/base/clock.h"

namespace distillery::testing {

// Until `done()` holds: waits for a thread to wait on `clock`, moves the
// clock to the earliest waiter's deadline and waits until the woken code
// waits again. Returns done(); false also when no thread comes to wait on
// the clock (a hang guard of 30 s of real time each, not a timing).
// `done` must not block on the code under test.
bool RunClockUntil(FakeClock& clock, const std::function<bool()>& done);

}  // namespace distillery::testing

#endif  // DISTILLERY_TESTS_TESTING_CLOCK_DRIVER_H_
