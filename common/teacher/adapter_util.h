// Pieces every HTTP teacher adapter (openai_teacher, anthropic_teacher)
// shares: option checks, header assembly, JSON field readers that never
// throw on a wrong type, the "unusable 2xx body" result, and the redaction
// wrapper that keeps an API key out of every status message.
//
// Internal to common/teacher: includes nlohmann/json, so it belongs in the
// adapters' .cc files, never in a public header. All functions are pure and
// thread-safe.
#ifndef DISTILLERY_COMMON_TEACHER_ADAPTER_UTIL_H_
#define DISTILLERY_COMMON_TEACHER_ADAPTER_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/base/clock.h"
#include "common/http/http_client.h"
#include "common/teacher/teacher.h"
#include "nlohmann/json.hpp"

namespace distillery::adapter {

// `in` cut to `max` bytes with control characters as spaces, "..." if cut.
std::string Printable(std::string_view in, size_t max);

bool HasControlChar(std::string_view s);

// The checks shared by every adapter's options: an http(s) base_url, a key
// without control characters, valid extra headers, positive timeouts and
// response limit. INVALID_ARGUMENT naming the option; never quotes the key.
absl::Status ValidateCommonOptions(std::string_view base_url,
                                   std::string_view api_key,
                                   const HttpHeaders& extra_headers,
                                   Duration connect_timeout,
                                   Duration idle_timeout,
                                   Duration total_timeout,
                                   size_t max_response_bytes);

// `own` headers, minus those an `extra` header of the same name
// (case-insensitive) replaces, followed by `extra`.
HttpHeaders MergeHeaders(HttpHeaders own, const HttpHeaders& extra);

// A 2xx whose body is not a usable answer: kRetryable, UNAVAILABLE (the
// teacher, or the path to it, garbled this answer; the next attempt may be
// fine), http_status 200, quoting the start of `body`.
TeacherResult BadBody(std::string_view why, std::string_view body);

// A failure caught as an exception where none was expected: kRetryable,
// INTERNAL.
TeacherResult UnexpectedException(const char* where, const char* what);

// JSON readers: 0 / "" / nullptr when the field is absent or of another
// type. IntField accepts integers and integral floats, clamped to int64.
int64_t IntField(const nlohmann::json& object, const char* name);
std::string StringField(const nlohmann::json& object, const char* name);
const nlohmann::json* ObjectField(const nlohmann::json& object,
                                  const char* name);

// Runs `handle` on `response` so that `secret` appears nowhere in the
// result, in any of the forms redact.h lists: the response (error, body,
// headers) is redacted before `handle` reads it, and the result's status
// message and answer fields after. An answer that echoes the key is kept
// with "[redacted]" in its place, raw_body included. Catches exceptions from
// `handle`. Never throws.
using ResponseHandler =
    std::function<TeacherResult(absl::StatusOr<HttpResponse>)>;
TeacherResult HandleRedacted(absl::StatusOr<HttpResponse> response,
                             std::string_view secret,
                             const ResponseHandler& handle);

// The common outcome of one call: transport error, non-2xx classified by
// http_failure.h (retry-after and x-should-retry applied), or a 2xx body
// handed to `parse` with the response hints then applied to its result.
TeacherResult HandleHttpOutcome(
    absl::StatusOr<HttpResponse> response, int64_t now_wall_millis,
    const std::function<TeacherResult(std::string body)>& parse);

// Parses a 2xx body into a result; may throw (nlohmann).
using BodyParser = TeacherResult (*)(std::string body);

// `parse` on `body`, with an exception turned into a failed result that
// says it happened while `what` (e.g. "parsing the teacher's answer").
TeacherResult ParseCatching(BodyParser parse, std::string body,
                            const char* what);

// An adapter's whole reading of a response: the secret kept out of every
// message (HandleRedacted), the HTTP outcome classified (HandleHttpOutcome),
// and a 2xx body parsed by `parse_stream` when the request was streamed,
// else by `parse_answer`.
TeacherResult HandleTeacherResponse(absl::StatusOr<HttpResponse> response,
                                    int64_t now_wall_millis,
                                    std::string_view secret, bool stream,
                                    BodyParser parse_answer,
                                    BodyParser parse_stream);

// The error for a request body that could not be built: INVALID_ARGUMENT
// for what JSON cannot encode (a bad UTF-8 byte), INTERNAL otherwise.
absl::Status RequestBodyError(const std::exception& e);

// A TeacherResult for a request that was never sent.
TeacherResult NotSent(FailureKind kind, absl::Status status,
                      std::string_view secret);

// An adapter's POST of `body` to `url`, with the timeouts and response cap
// of its options (both adapters' options have the same fields).
template <typename Options>
HttpRequest PostRequest(const std::string& url, const HttpHeaders& headers,
                        std::string body, const Options& options) {
  HttpRequest request;
  request.method = "POST";
  request.url = url;
  request.headers = headers;
  request.body = std::move(body);
  request.connect_timeout = options.connect_timeout;
  request.idle_timeout = options.idle_timeout;
  request.total_timeout = options.total_timeout;
  request.max_response_bytes = options.max_response_bytes;
  return request;
}

// Reads a teacher's response into a TeacherResult (HandleChatResponse,
// HandleMessagesResponse).
using ResponseReader = TeacherResult (*)(absl::StatusOr<HttpResponse> response,
                                         int64_t now_wall_millis,
                                         std::string_view secret, bool stream);

// Sends `request` and completes `done` with `read`'s result, the teacher's
// rate-limit headers (x-ratelimit-*, anthropic-ratelimit-*, retry-after)
// attached for the worker's limiter. The callback owns copies of what it
// needs rather than the adapter, so a response is handled the same whatever
// the adapter's lifetime; only `clock` must outlive the call.
void SendToTeacher(HttpClient& http, Clock& clock, HttpRequest request,
                   ResponseReader read, std::string secret, bool stream,
                   std::function<void(TeacherResult)> done);

}  // namespace distillery::adapter

#endif  // DISTILLERY_COMMON_TEACHER_ADAPTER_UTIL_H_
