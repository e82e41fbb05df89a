// FakeHttpClient: an HttpClient for tests. It records every request and
// answers from a script: queued answers first (in order), then a handler,
// then an INTERNAL error naming the unexpected request, so a test that sends
// more than it scripted fails loudly instead of hanging.
//
// By default Send answers inline, on the caller's thread, standing in for
// the real client's loop thread. In deferred mode Send only records, and the
// test delivers the answers with RunPending(); use it when the code under
// test holds a lock around Send, or to check behaviour while requests are in
// flight. Thread-safe; callbacks never run under the fake's lock.
#ifndef DISTILLERY_COMMON_HTTP_FAKE_HTTP_CLIENT_H_
#define DISTILLERY_COMMON_HTTP_FAKE_HTTP_CLIENT_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/http/http_client.h"

namespace distillery {

class FakeHttpClient : public HttpClient {
 public:
  using Handler =
      std::function<absl::StatusOr<HttpResponse>(const HttpRequest&)>;

  // Queues the answer to the next request that finds the queue non-empty.
  void Enqueue(absl::StatusOr<HttpResponse> result) {
    absl::MutexLock lock(&mu_);
    script_.push_back(std::move(result));
  }
  // Queues an HTTP response; header names are lower-cased as the real client
  // does, so tests may write "Retry-After".
  void EnqueueResponse(int status, std::string body, HttpHeaders headers = {}) {
    HttpResponse response;
    response.status = status;
    response.body = std::move(body);
    response.headers = std::move(headers);
    Enqueue(std::move(response));
  }
  // Answers every request that finds the queue empty.
  void SetHandler(Handler handler) {
    absl::MutexLock lock(&mu_);
    handler_ = std::move(handler);
  }
  void set_deferred(bool deferred) {
    absl::MutexLock lock(&mu_);
    deferred_ = deferred;
  }

  // Delivers every answer held in deferred mode, oldest first, including
  // those of requests sent by the callbacks themselves. Returns how many.
  size_t RunPending() {
    size_t ran = 0;
    for (;;) {
      std::pair<Callback, absl::StatusOr<HttpResponse>> next;
      {
        absl::MutexLock lock(&mu_);
        if (pending_.empty()) return ran;
        next = std::move(pending_.front());
        pending_.pop_front();
      }
      next.first(std::move(next.second));
      ++ran;
    }
  }
  size_t pending() const {
    absl::MutexLock lock(&mu_);
    return pending_.size();
  }

  std::vector<HttpRequest> requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  size_t request_count() const {
    absl::MutexLock lock(&mu_);
    return requests_.size();
  }
  // Precondition: at least one request was sent.
  HttpRequest last_request() const {
    absl::MutexLock lock(&mu_);
    return requests_.back();
  }

  void Send(HttpRequest request, Callback done) override {
    absl::StatusOr<HttpResponse> answer;
    Handler handler;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
      if (!script_.empty()) {
        answer = std::move(script_.front());
        script_.pop_front();
      } else if (handler_) {
        handler = handler_;  // called unlocked: it may inspect the fake
      } else {
        answer = absl::InternalError(
            absl::StrCat("FakeHttpClient: no scripted answer for ",
                         request.method, " ", request.url));
      }
    }
    if (handler) answer = handler(request);
    if (answer.ok()) {
      for (auto& header : answer->headers) {
        absl::AsciiStrToLower(&header.first);
      }
    }
    {
      absl::MutexLock lock(&mu_);
      if (deferred_) {
        pending_.emplace_back(std::move(done), std::move(answer));
        return;
      }
    }
    done(std::move(answer));
  }

 private:
  mutable absl::Mutex mu_;
  std::deque<absl::StatusOr<HttpResponse>> script_ ABSL_GUARDED_BY(mu_);
  Handler handler_ ABSL_GUARDED_BY(mu_);
  bool deferred_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::pair<Callback, absl::StatusOr<HttpResponse>>> pending_
      ABSL_GUARDED_BY(mu_);
  std::vector<HttpRequest> requests_ ABSL_GUARDED_BY(mu_);
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_HTTP_FAKE_HTTP_CLIENT_H_
