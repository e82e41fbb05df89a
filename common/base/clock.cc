#include "common/base/clock.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "absl/time/time.h"

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

bool RealClock::AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& cond,
                                  TimePoint deadline) {
  // A timeout on the steady timeline: absl's deadlines are wall time, which
  // may jump.
  const Duration left = deadline - Now();
  if (left <= Duration(0)) return cond.Eval();
  return mu->AwaitWithTimeout(cond, absl::FromChrono(left));
}

RealClock& RealClock::Get() {
  static RealClock clock;
  return clock;
}

FakeClock::~FakeClock() {
  absl::MutexLock lock(&lock_);
  // A waiter outliving its clock is a bug in the test: it would wait on
  // freed memory.
  if (!waiters_.empty()) {
    std::fprintf(stderr, "FakeClock destroyed with %zu threads waiting on it\n",
                 waiters_.size());
    std::abort();
  }
}

TimePoint FakeClock::Now() {
  absl::MutexLock lock(&lock_);
  return now_;
}

int64_t FakeClock::WallMillis() {
  absl::MutexLock lock(&lock_);
  return kWallEpochMillis +
         std::chrono::duration_cast<std::chrono::milliseconds>(
             now_.time_since_epoch())
             .count();
}

bool FakeClock::AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& cond,
                                  TimePoint deadline) {
  if (cond.Eval()) return true;
  auto waiter = std::make_shared<Waiter>();
  waiter->mu = mu;
  {
    // Lock order: the waiter's mutex, then lock_. Advance never holds lock_
    // while it takes a waiter's mutex.
    absl::MutexLock lock(&lock_);
    ++awaits_started_;
    if (deadline <= now_) return false;
    waiters_.emplace(deadline, waiter);
  }
  const bool* fired = &waiter->fired;
  auto ready = [&cond, fired] { return *fired || cond.Eval(); };
  mu->Await(absl::Condition(&ready));
  bool claimed = false;
  {
    absl::MutexLock lock(&lock_);
    for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
      if (it->second == waiter) {
        waiters_.erase(it);
        claimed = true;
        break;
      }
    }
  }
  if (!claimed) {
    // Advance has claimed this waiter and may still be about to take `mu`:
    // let it finish before the caller (and `mu`) may go away.
    mu->Unlock();
    {
      absl::MutexLock lock(&lock_);
      lock_.Await(absl::Condition(&waiter->delivered));
    }
    mu->Lock();
  }
  return cond.Eval();
}

void FakeClock::Advance(Duration d) {
  TimePoint now;
  {
    absl::MutexLock lock(&lock_);
    now_ += d;
    now = now_;
  }
  WakeDue(now);
}

bool FakeClock::AdvanceToNextDeadline() {
  TimePoint now;
  {
    absl::MutexLock lock(&lock_);
    if (waiters_.empty()) return false;
    now_ = std::max(now_, waiters_.begin()->first);
    now = now_;
  }
  WakeDue(now);
  return true;
}

void FakeClock::WakeDue(TimePoint now) {
  std::vector<std::shared_ptr<Waiter>> due;
  {
    absl::MutexLock lock(&lock_);
    while (!waiters_.empty() && waiters_.begin()->first <= now) {
      due.push_back(std::move(waiters_.begin()->second));
      waiters_.erase(waiters_.begin());
    }
  }
  for (const std::shared_ptr<Waiter>& w : due) {
    {
      absl::MutexLock lock(w->mu);
      w->fired = true;
    }
    absl::MutexLock lock(&lock_);
    w->delivered = true;
  }
}

bool FakeClock::WaitForWaiters(int n, absl::Duration give_up) {
  absl::MutexLock lock(&lock_);
  auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_) {
    return static_cast<int>(waiters_.size()) >= n;
  };
  return lock_.AwaitWithTimeout(absl::Condition(&enough), give_up);
}

bool FakeClock::WaitForNextAwait(int64_t after, absl::Duration give_up) {
  absl::MutexLock lock(&lock_);
  auto waiting = [this, after]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_) {
    return awaits_started_ > after && !waiters_.empty();
  };
  return lock_.AwaitWithTimeout(absl::Condition(&waiting), give_up);
}

int FakeClock::waiters() {
  absl::MutexLock lock(&lock_);
  return static_cast<int>(waiters_.size());
}

int64_t FakeClock::awaits_started() {
  absl::MutexLock lock(&lock_);
  return awaits_started_;
}

}  // namespace distillery
