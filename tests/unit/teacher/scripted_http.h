// Test helpers for the teacher tests: an HttpClient that answers every
// request at once with one scripted response, and readers of what was sent.
// Header-only, so these tests need no common/http library. Not thread-safe:
// the teachers under test call it on the test's thread.
#ifndef DISTILLERY_TESTS_UNIT_TEACHER_SCRIPTED_HTTP_H_
#define DISTILLERY_TESTS_UNIT_TEACHER_SCRIPTED_HTTP_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/http/http_client.h"

namespace distillery::testing {

// Captures each request and answers it at once with `response`.
class ScriptedHttpClient : public HttpClient {
 public:
  void Send(HttpRequest request, Callback done) override {
    requests.push_back(std::move(request));
    done(response);
  }
  std::vector<HttpRequest> requests;
  absl::StatusOr<HttpResponse> response = absl::UnavailableError("unset");
};

inline HttpResponse Response(int status, std::string body,
                             HttpHeaders headers = {}) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

// The value of the header spelled exactly `name`, or nullopt.
inline std::optional<std::string> HeaderValue(const HttpRequest& request,
                                              std::string_view name) {
  for (const auto& [k, v] : request.headers) {
    if (k == name) return v;
  }
  return std::nullopt;
}

}  // namespace distillery::testing

#endif  // DISTILLERY_TESTS_UNIT_TEACHER_SCRIPTED_HTTP_H_
