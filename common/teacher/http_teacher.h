// HttpTeacher: the Teacher for every HTTP teacher API. One POST per Ask,
// built by a WireFormat (wire_format.h: OpenAI Chat Completions, Anthropic
// Messages, ...) and sent through the injected HttpClient. HttpTeacher owns
// what all APIs share: options checks, header merging, timeouts and the
// response cap, transport and HTTP failure classification
// (http_failure.h), retry-after hints, the rate-limit headers handed to the
// worker's limiter, and redaction: the API key appears in no result.
#ifndef DISTILLERY_COMMON_TEACHER_HTTP_TEACHER_H_
#define DISTILLERY_COMMON_TEACHER_HTTP_TEACHER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/base/clock.h"
#include "common/http/http_client.h"
#include "common/teacher/teacher.h"
#include "common/teacher/wire_format.h"

namespace distillery {

// What every HTTP teacher takes, whatever its API.
struct HttpTeacherOptions {
  // Where the API lives, as the official SDKs take it
  // ("https://api.openai.com/v1", "https://api.anthropic.com"); the format
  // appends its path.
  std::string base_url;
  // Carried in the format's auth header; empty sends none (local servers).
  // Surrounding whitespace (a key file's newline) is ignored. Never logged
  // nor put in any status message.
  std::string api_key;
  // Passed into every HttpRequest; see HttpRequest for their meaning.
  Duration connect_timeout = std::chrono::seconds(10);
  Duration idle_timeout = std::chrono::seconds(120);
  Duration total_timeout = std::chrono::minutes(15);
  size_t max_response_bytes = 16 << 20;
  // Sent after the format's own headers; one with the same name
  // (case-insensitive) replaces the format's (e.g. a proxy with its own
  // auth scheme).
  HttpHeaders extra_headers;
};

// OK, or INVALID_ARGUMENT naming the first bad option: a base_url that is
// not http(s)://, control characters in the key or a header, an empty or
// invalid header name, non-positive timeouts or response cap. Never
// mentions the key's value.
absl::Status ValidateHttpTeacherOptions(const HttpTeacherOptions& options);

// The whole outcome of one call: transport error, non-2xx response (with
// retry-after and x-should-retry applied) or a 2xx body read by
// `format.ParseBody`. `secret` (the API key), when not empty, appears nowhere
// in the result, in any form redact.h knows: it is redacted from the
// response before any of it is quoted, so that cutting a long quote cannot
// leave part of it behind, and from the answer (an answer that echoes it is
// kept with "[redacted]" in its place). Never throws.
TeacherResult HandleTeacherResponse(const WireFormat& format,
                                    absl::StatusOr<HttpResponse> response,
                                    int64_t now_wall_millis,
                                    std::string_view secret);

// Thread-safe: immutable after construction. `http` and `clock` must outlive
// the teacher and every call in flight; the format is shared with the calls
// in flight, so it may outlive the teacher.
class HttpTeacher : public Teacher {
 public:
  // Options are checked by ValidateHttpTeacherOptions and format->Validate()
  // here; with bad options every Ask fails with INVALID_ARGUMENT and
  // kTeacherDown (no call to this teacher can succeed until its
  // configuration is fixed). `format` is not null.
  HttpTeacher(HttpClient& http, Clock& clock,
              std::shared_ptr<const WireFormat> format,
              HttpTeacherOptions options);
  // As above, on RealClock::Get().
  HttpTeacher(HttpClient& http, std::shared_ptr<const WireFormat> format,
              HttpTeacherOptions options);

  // Calls `done` on the HttpClient's thread, or before returning when the
  // request cannot be sent (bad options, a request that cannot be encoded).
  void Ask(const TeacherRequest& request, Callback done) override;

  // The URL requests go to.
  const std::string& url() const { return url_; }

 private:
  HttpClient& http_;
  Clock& clock_;
  const std::shared_ptr<const WireFormat> format_;
  const HttpTeacherOptions options_;
  const absl::Status options_status_;
  const std::string url_;
  const HttpHeaders headers_;
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_TEACHER_HTTP_TEACHER_H_
