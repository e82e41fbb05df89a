#include "tests/testing/fake_teacher.h"

#include <algorithm>
#include <utility>

#include "tests/testing/clock_driver.h"

namespace distillery::testing {

TeacherResult Answer(const std::string& content) {
  TeacherResult r;
  r.answer.content = content;
  r.answer.finish_reason = "stop";
  r.answer.usage.prompt_tokens = 3;
  r.answer.usage.completion_tokens = 4;
  r.answer.provider_id = "fake-1";
  r.http_status = 200;
  return r;
}

TeacherResult Fail(FailureKind kind, absl::Status status,
                   std::optional<Duration> retry_after) {
  TeacherResult r;
  r.status = std::move(status);
  r.kind = kind;
  r.retry_after = retry_after;
  return r;
}

void FakeTeacher::Ask(const TeacherRequest& request, Callback done) {
  TeacherResult result;
  {
    absl::MutexLock lock(&mu_);
    const int attempt = ++attempts_[request.messages.back().content];
    calls_.push_back(Call{request, clock_.Now()});
    result = script_(request, attempt);
    if (async_) {
      peak_ = std::max(peak_, ++in_flight_);
      pending_.push_back(Pending{std::move(result), std::move(done)});
      return;
    }
  }
  done(std::move(result));
}

bool FakeTeacher::WaitUntil(const std::function<bool()>& ready) {
  if (drive_ != nullptr) {
    return RunClockUntil(*drive_, [&] {
      absl::MutexLock lock(&mu_);
      return ready();
    });
  }
  absl::MutexLock lock(&mu_);
  // A hang guard, not a timing.
  return mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(30));
}

bool FakeTeacher::AnswerOne() {
  if (!WaitUntil([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !pending_.empty();
      })) {
    return false;
  }
  Pending p;
  {
    absl::MutexLock lock(&mu_);
    p = std::move(pending_.front());
    pending_.pop_front();
    --in_flight_;
  }
  p.done(std::move(p.result));
  return true;
}

bool FakeTeacher::WaitForCalls(size_t n) {
  return WaitUntil([this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return calls_.size() >= n;
  });
}

bool FakeTeacher::WaitForInFlight(int n) {
  return WaitUntil([this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return in_flight_ >= n;
  });
}

std::vector<FakeTeacher::Call> FakeTeacher::calls() {
  absl::MutexLock lock(&mu_);
  return calls_;
}

int FakeTeacher::attempts(const std::string& prompt) {
  absl::MutexLock lock(&mu_);
  return attempts_[prompt];
}

int FakeTeacher::peak() {
  absl::MutexLock lock(&mu_);
  return peak_;
}

}  // namespace distillery::testing
