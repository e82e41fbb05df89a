// Failure classification for HTTP teachers: turns a non-2xx response, an
// error object inside a 200, or a transport error into a TeacherResult with a
// canonical status code and the FailureKind the retry policy acts on. The
// rules are the "Failure rules" of DESIGN.md and the wire facts of
// TEACHER_APIS.md; they are shared by every HTTP adapter.
//
// Codes, so that callers which branch on the code agree with `kind`:
//   kRetryable    UNAVAILABLE (transport errors keep their own code)
//   kRateLimited  RESOURCE_EXHAUSTED
//   kPermanent    INVALID_ARGUMENT
//   kTeacherDown  UNAUTHENTICATED (401), PERMISSION_DENIED (403), NOT_FOUND
//                 (404: no such endpoint or model), UNAVAILABLE when the
//                 teacher is unreachable (connection refused, no such host),
//                 and
//                 FAILED_PRECONDITION for spent quota or balance (402,
//                 429 insufficient_quota, ...) and redirects: not
//                 RESOURCE_EXHAUSTED, which would read as "slow down and
//                 retry", while these need a human to act first.
// `x-should-retry` can flip `kind` (see ApplyResponseHints) without changing
// the code, so `kind` is the one field a retry policy must obey.
//
// All functions are pure, never throw, and are thread-safe.
#ifndef DISTILLERY_COMMON_TEACHER_HTTP_FAILURE_H_
#define DISTILLERY_COMMON_TEACHER_HTTP_FAILURE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "common/http/http_client.h"
#include "common/teacher/teacher.h"

namespace distillery {

// The error a teacher described in its body. Understands
// {"error":{"message","type","code"}} (OpenAI, Anthropic, DeepSeek, Ollama,
// llama.cpp), {"error":"text"}, vLLM's older top-level
// {"object":"error","message","type","code"} and FastAPI's {"detail":...}.
struct TeacherErrorBody {
  bool found = false;  // the body held an error in one of those shapes
  std::string message;
  std::string type;
  std::string code;  // a numeric code is kept as its decimal text
};

// Never throws; returns found == false for anything it does not recognise.
TeacherErrorBody ParseTeacherErrorBody(std::string_view body);

// True for the error codes that mean the account's money or quota is spent:
// insufficient_quota, credit_balance_exhausted, *_spend_limit_exceeded,
// billing_hard_limit_reached.
bool IsQuotaExhausted(std::string_view code_or_type);

// A TeacherResult for a teacher error: `http_status` is the status line the
// response carried, `error` what its body said. For status 200 (an error
// object inside a 200 body), a numeric error code in 400..599 is classified
// as that status; otherwise quota codes are kTeacherDown, rate-limit codes
// kRateLimited and anything else kRetryable. Does not look at headers.
TeacherResult TeacherErrorResult(int http_status, const TeacherErrorBody& error,
                                 std::string_view body);

// Applies what the response's headers say to a failed `result`:
// retry-after-ms / retry-after into `retry_after` (HTTP-dates relative to
// `now_wall_millis`), and x-should-retry: "false" turns a retryable or
// rate-limited failure permanent, "true" turns a permanent one retryable
// (kTeacherDown stays: no header revives a dead key or an empty account).
void ApplyResponseHints(const HttpResponse& response, int64_t now_wall_millis,
                        TeacherResult* result);

// The whole classification of a non-2xx `response`: status, body and headers.
TeacherResult ClassifyHttpFailure(const HttpResponse& response,
                                  int64_t now_wall_millis);

// A transport error from HttpClient::Send (no response arrived). Keeps the
// code; INVALID_ARGUMENT (a malformed URL) is kPermanent, an unreachable
// teacher (IsUnreachable: refused, no such host) kTeacherDown, the rest
// kRetryable.
TeacherResult ClassifyTransportError(const absl::Status& status);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_TEACHER_HTTP_FAILURE_H_
