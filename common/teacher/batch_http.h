// BatchHttp: what the BatchApi implementations (batch_apis.h) share. One
// synchronous HTTP call (send through the HttpClient, wait for its
// callback), the headers (the format's auth and version headers, then the
// profile's extra headers), the timeouts and response caps of small calls,
// uploads and downloads, mapping a failure onto batch_api.h's codes, and
// keeping the API key out of every status and result. Also the strict JSON
// readers for batch objects: a missing or wrongly typed field is INTERNAL.
//
// Internal to common/teacher (includes nlohmann/json): only the batch API
// .cc files include it. Thread-safe: immutable after construction.
#ifndef DISTILLERY_COMMON_TEACHER_BATCH_HTTP_H_
#define DISTILLERY_COMMON_TEACHER_BATCH_HTTP_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/http/http_client.h"
#include "common/teacher/http_teacher.h"
#include "common/teacher/redact.h"
#include "common/teacher/teacher.h"
#include "common/teacher/wire_format.h"
#include "nlohmann/json.hpp"

namespace distillery {

// What a call moves, which picks its timeout and response cap.
enum class BatchTransfer {
  kSmall,     // the profile's total_timeout and max_response_bytes
  kUpload,    // at least kMinBatchTransferTimeout; the profile's cap
  kDownload,  // at least kMinBatchTransferTimeout; kMaxBatchResultsBytes
};

struct BatchCall {
  std::string method = "GET";
  std::string url;
  std::string content_type;  // sent when not empty
  std::string body;
  BatchTransfer transfer = BatchTransfer::kSmall;
  // For messages: "uploading the batch file", "reading batch X", ...
  std::string what;
  // A create call: a 429 is the provider's queue limit (RESOURCE_EXHAUSTED);
  // elsewhere it is a rate limit on polling (UNAVAILABLE: retry later).
  bool creating = false;
  // Sends the format's auth header (false: a URL on a host the profile does
  // not name).
  bool with_auth = true;
};

class BatchHttp {
 public:
  BatchHttp(std::string_view api_name, HttpClient& http,
            std::shared_ptr<const WireFormat> format,
            HttpTeacherOptions options);

  std::string_view api_name() const { return api_name_; }
  const WireFormat& format() const { return *format_; }
  // The profile's base_url without trailing slashes.
  const std::string& base_url() const { return base_url_; }
  // ValidateHttpTeacherOptions and format.Validate(), prefixed.
  const absl::Status& options_status() const { return options_status_; }

  // Sends `call` and waits for the answer: the body of a 2xx response with
  // the key redacted, or the failure with a code batch_api.h lists
  // (classified as http_failure.h does an online call's, then 429 off
  // create -> UNAVAILABLE, quota/402/redirect -> PERMISSION_DENIED, a body
  // over the cap -> INTERNAL), its message redacted. Never call it on the
  // HttpClient's own thread.
  absl::StatusOr<std::string> Send(BatchCall call) const;

  // One batch result read exactly as an online answer with HTTP `status`
  // and `body` would be (HandleTeacherResponse: 2xx through the format's
  // ParseBody, else the online failure classification), key redacted.
  TeacherResult Answer(int status, std::string body) const;

  // A status with `code` and "<api> batch API: <message>", redacted.
  absl::Status Error(absl::StatusCode code, std::string_view message) const;
  std::string Redact(std::string text) const {
    return redactor_.Redact(std::move(text));
  }

 private:
  HttpHeaders HeadersFor(const BatchCall& call) const;

  const std::string api_name_;
  HttpClient& http_;
  const std::shared_ptr<const WireFormat> format_;
  const HttpTeacherOptions options_;
  const std::string base_url_;
  const absl::Status options_status_;
  const SecretRedactor redactor_;
};

// A batch id or file id safe to put in a URL path: [A-Za-z0-9_.-]{1,200}.
bool IsSafeBatchId(std::string_view id);

// A request line with no failure: a not_run result (retryable UNAVAILABLE,
// "not run: <why>").
TeacherResult NotRunResult(std::string_view why);

// Strict readers of a provider's JSON: each failure is INTERNAL naming
// `what` (e.g. "OpenAI batch object") and the field; no value is quoted.
namespace batch_json {

// `body` as a JSON object within kMaxJsonDepth.
absl::StatusOr<nlohmann::json> ParseObject(std::string_view body,
                                           std::string_view what);
// A string field; absent or null reads "" unless `required`.
absl::StatusOr<std::string> String(const nlohmann::json& object,
                                   const char* name, std::string_view what,
                                   bool required);
// An integer field (an integral float too); absent or null reads 0 unless
// `required`.
absl::StatusOr<int64_t> Int(const nlohmann::json& object, const char* name,
                            std::string_view what, bool required);
// An object field, or nullptr when absent or null; INTERNAL for another
// type.
absl::StatusOr<const nlohmann::json*> Object(const nlohmann::json& object,
                                             const char* name,
                                             std::string_view what);

}  // namespace batch_json

// Splits `body` into its lines (LF or CRLF), skipping blank ones, and calls
// `line` on each.
template <typename Fn>
void ForEachLine(std::string_view body, Fn line) {
  while (!body.empty()) {
    size_t end = body.find('\n');
    std::string_view one = body.substr(0, end);
    body.remove_prefix(end == std::string_view::npos ? body.size() : end + 1);
    while (!one.empty() && (one.back() == '\r' || one.back() == ' ')) {
      one.remove_suffix(1);
    }
    if (!one.empty()) line(one);
  }
}

}  // namespace distillery

#endif  // DISTILLERY_COMMON_TEACHER_BATCH_HTTP_H_
