// FakeClock's waits: Advance wakes exactly the waiters whose deadline it
// reaches, a state change wakes a waiter without moving time, and a waiter
// may go away as soon as it returns. RealClock's wait, on a condition that
// already holds or a deadline already past (nothing here waits in real time).
#include "common/base/clock.h"

#include <thread>

#include "gtest/gtest.h"

namespace distillery {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A waiter on its own thread: waits on `clock` until `done_` or `deadline`.
class Waiter {
 public:
  Waiter(Clock& clock, TimePoint deadline)
      : thread_([this, &clock, deadline] {
          absl::MutexLock lock(&mu_);
          result_ =
              clock.AwaitWithDeadline(&mu_, absl::Condition(&done_), deadline);
          returned_ = true;
        }) {}
  ~Waiter() { thread_.join(); }

  void SetDone() {
    absl::MutexLock lock(&mu_);
    done_ = true;
  }
  // Blocks until the wait returned; its result.
  bool Result() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&returned_));
    return result_;
  }
  bool returned() {
    absl::MutexLock lock(&mu_);
    return returned_;
  }

 private:
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool returned_ ABSL_GUARDED_BY(mu_) = false;
  bool result_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

TEST(FakeClockTest, AdvanceWakesAWaiterAtItsDeadline) {
  FakeClock clock;
  Waiter waiter(clock, clock.Now() + seconds(2));
  ASSERT_TRUE(clock.WaitForWaiters(1));
  clock.Advance(milliseconds(1999));
  // Still registered: the deadline is not reached.
  EXPECT_EQ(clock.waiters(), 1);
  EXPECT_FALSE(waiter.returned());
  clock.Advance(milliseconds(1));
  EXPECT_FALSE(waiter.Result());
  EXPECT_EQ(clock.waiters(), 0);
}

TEST(FakeClockTest, SleepForWakesWaitersItPasses) {
  FakeClock clock;
  Waiter early(clock, clock.Now() + seconds(1));
  Waiter late(clock, clock.Now() + seconds(10));
  ASSERT_TRUE(clock.WaitForWaiters(2));
  clock.SleepFor(seconds(5));
  EXPECT_FALSE(early.Result());
  EXPECT_EQ(clock.waiters(), 1);
  EXPECT_FALSE(late.returned());
  late.SetDone();
  EXPECT_TRUE(late.Result());
  EXPECT_EQ(clock.waiters(), 0);
}

TEST(FakeClockTest, AStateChangeWakesTheWaiterWithoutTime) {
  FakeClock clock;
  const TimePoint start = clock.Now();
  Waiter waiter(clock, start + seconds(60));
  ASSERT_TRUE(clock.WaitForWaiters(1));
  waiter.SetDone();
  EXPECT_TRUE(waiter.Result());
  EXPECT_EQ(clock.Now(), start);
  EXPECT_EQ(clock.waiters(), 0);
}

TEST(FakeClockTest, AdvanceToNextDeadlineMovesToTheEarliestWaiter) {
  FakeClock clock;
  const TimePoint start = clock.Now();
  EXPECT_FALSE(clock.AdvanceToNextDeadline());
  Waiter a(clock, start + milliseconds(300));
  Waiter b(clock, start + milliseconds(700));
  ASSERT_TRUE(clock.WaitForWaiters(2));
  ASSERT_TRUE(clock.AdvanceToNextDeadline());
  EXPECT_EQ(clock.Now(), start + milliseconds(300));
  EXPECT_FALSE(a.Result());
  ASSERT_TRUE(clock.AdvanceToNextDeadline());
  EXPECT_EQ(clock.Now(), start + milliseconds(700));
  EXPECT_FALSE(b.Result());
}

TEST(FakeClockTest, APastDeadlineReturnsAtOnce) {
  FakeClock clock;
  absl::Mutex mu;
  bool done = false;
  absl::MutexLock lock(&mu);
  EXPECT_FALSE(
      clock.AwaitWithDeadline(&mu, absl::Condition(&done), clock.Now()));
  done = true;
  EXPECT_TRUE(clock.AwaitWithDeadline(&mu, absl::Condition(&done),
                                      clock.Now() - seconds(1)));
  EXPECT_EQ(clock.waiters(), 0);
}

TEST(FakeClockTest, WaitForNextAwaitSeesAFreshWait) {
  FakeClock clock;
  const int64_t before = clock.awaits_started();
  Waiter waiter(clock, clock.Now() + seconds(1));
  ASSERT_TRUE(clock.WaitForNextAwait(before));
  EXPECT_EQ(clock.awaits_started(), before + 1);
  clock.Advance(seconds(1));
  EXPECT_FALSE(waiter.Result());
}

// Waiters that return (and are destroyed) while Advance wakes others: the
// clock must not touch a mutex after its waiter has gone.
TEST(FakeClockTest, ManyWaitersComeAndGoWhileTimeMoves) {
  FakeClock clock;
  std::thread mover([&] {
    for (int i = 0; i < 2000; ++i) clock.Advance(milliseconds(1));
  });
  for (int i = 0; i < 200; ++i) {
    Waiter w(clock, clock.Now() + milliseconds(1 + i % 3));
    if (i % 2 == 0) {
      w.SetDone();
    } else {
      clock.Advance(milliseconds(3));  // the mover may be done
    }
    w.Result();
  }
  mover.join();
  // Whatever is still waiting wakes once time passes it.
  clock.Advance(seconds(1));
  EXPECT_EQ(clock.waiters(), 0);
}

TEST(RealClockTest, ReturnsAtOnceWhenTheConditionHoldsOrTheDeadlinePassed) {
  RealClock& clock = RealClock::Get();
  absl::Mutex mu;
  bool done = true;
  absl::MutexLock lock(&mu);
  EXPECT_TRUE(clock.AwaitWithDeadline(&mu, absl::Condition(&done),
                                      clock.Now() + seconds(60)));
  done = false;
  EXPECT_FALSE(clock.AwaitWithDeadline(&mu, absl::Condition(&done),
                                       clock.Now() - seconds(1)));
}

}  // namespace
}  // namespace distillery
