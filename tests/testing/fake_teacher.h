// FakeTeacher: a Teacher whose answers come from a script, keyed by the
// prompt's last message and the attempt number for it (from 1), with
// TeacherResult builders for answers and failures. Synchronous by default:
// Ask calls back before it returns. Asynchronous: requests wait until the
// test answers them, and the peak number in flight is recorded.
//
// Its waits (for calls, for requests in flight) drive a FakeClock when
// given one (RunClockUntil), so the code that calls the teacher keeps
// running on fake time while the test waits. Thread-safe.
#ifndef DISTILLERY_TESTS_TESTING_FAKE_TEACHER_H_
#define DISTILLERY_TESTS_TESTING_FAKE_TEACHER_H_

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/base/clock.h"
#include "common/teacher/teacher.h"

namespace distillery::testing {

// A successful answer with `content` (3 prompt and 4 completion tokens).
TeacherResult Answer(const std::string& content);
// A failure of `kind`, with an optional retry-after.
TeacherResult Fail(FailureKind kind, absl::Status status,
                   std::optional<Duration> retry_after = std::nullopt);

class FakeTeacher : public Teacher {
 public:
  using Script =
      std::function<TeacherResult(const TeacherRequest&, int attempt)>;
  struct Call {
    TeacherRequest request;
    TimePoint at;  // on the clock given
  };

  // `clock` stamps calls; `drive`, when set, is the FakeClock the waits
  // move (usually the same clock). Neither is owned.
  FakeTeacher(Clock& clock, Script script, bool async = false,
              FakeClock* drive = nullptr)
      : clock_(clock),
        script_(std::move(script)),
        async_(async),
        drive_(drive) {}
  // On a FakeClock that both stamps calls and is driven by the waits.
  FakeTeacher(FakeClock& clock, Script script, bool async = false)
      : FakeTeacher(static_cast<Clock&>(clock), std::move(script), async,
                    &clock) {}

  void Ask(const TeacherRequest& request, Callback done) override
      ABSL_LOCKS_EXCLUDED(mu_);

  // Async: answers the oldest waiting request; false if none came.
  bool AnswerOne() ABSL_LOCKS_EXCLUDED(mu_);
  bool WaitForCalls(size_t n) ABSL_LOCKS_EXCLUDED(mu_);
  bool WaitForInFlight(int n) ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<Call> calls() ABSL_LOCKS_EXCLUDED(mu_);
  int attempts(const std::string& prompt) ABSL_LOCKS_EXCLUDED(mu_);
  int peak() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Pending {
    TeacherResult result;
    Callback done;
  };
  // Waits until `ready()` (called under mu_) holds.
  bool WaitUntil(const std::function<bool()>& ready) ABSL_LOCKS_EXCLUDED(mu_);

  Clock& clock_;
  const Script script_;
  const bool async_;
  FakeClock* const drive_;
  absl::Mutex mu_;
  std::map<std::string, int> attempts_ ABSL_GUARDED_BY(mu_);
  std::vector<Call> calls_ ABSL_GUARDED_BY(mu_);
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int peak_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace distillery::testing

#endif  // DISTILLERY_TESTS_TESTING_FAKE_TEACHER_H_
