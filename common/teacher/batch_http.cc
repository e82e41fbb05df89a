#include "common/teacher/batch_http.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/base/json_depth.h"
#include "common/teacher/batch_api.h"
#include "common/teacher/batch_apis.h"
#include "common/teacher/http_failure.h"
#include "common/teacher/text_util.h"

namespace distillery {
namespace {

using nlohmann::json;

HttpTeacherOptions Normalized(HttpTeacherOptions options) {
  options.api_key = std::string(text::StripWhitespace(options.api_key));
  return options;
}

std::string WithoutTrailingSlashes(std::string_view url) {
  while (url.ends_with('/')) url.remove_suffix(1);
  return std::string(url);
}

absl::Status CheckOptions(std::string_view api_name, const WireFormat& format,
                          const HttpTeacherOptions& options) {
  absl::Status s = ValidateHttpTeacherOptions(options);
  if (s.ok()) s = format.Validate();
  if (s.ok()) return s;
  return absl::InvalidArgumentError(absl::StrCat(
      text::Absl(api_name), " batch API misconfigured: ", s.message()));
}

// The code batch_api.h promises for a failed call whose online
// classification is `online`.
absl::StatusCode BatchCode(const TeacherResult& online, bool creating) {
  const absl::StatusCode code = online.status.code();
  const bool responded = online.http_status != 0;
  switch (code) {
    case absl::StatusCode::kResourceExhausted:
      // No response: the body was over the cap, which retrying as is
      // cannot fix.
      if (!responded) return absl::StatusCode::kInternal;
      return creating ? code : absl::StatusCode::kUnavailable;
    case absl::StatusCode::kFailedPrecondition:
      // Spent quota, 402, a redirect (a wrong base_url): a human must act,
      // as for a bad key.
      return absl::StatusCode::kPermissionDenied;
    case absl::StatusCode::kUnknown:
      return absl::StatusCode::kUnavailable;
    default:
      return code;
  }
}

}  // namespace

bool BatchApi::ValidCustomId(std::string_view custom_id) {
  if (custom_id.empty() || custom_id.size() > 64) return false;
  for (char c : custom_id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool IsSafeBatchId(std::string_view id) {
  if (id.empty() || id.size() > 200) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return id != "." && id != "..";
}

TeacherResult NotRunResult(std::string_view why) {
  TeacherResult result;
  result.kind = FailureKind::kRetryable;
  result.status = absl::UnavailableError(
      absl::StrCat("not run: ", text::Absl(why), "; send it again"));
  return result;
}

BatchHttp::BatchHttp(std::string_view api_name, HttpClient& http,
                     std::shared_ptr<const WireFormat> format,
                     HttpTeacherOptions options)
    : api_name_(api_name),
      http_(http),
      format_(std::move(format)),
      options_(Normalized(std::move(options))),
      base_url_(WithoutTrailingSlashes(options_.base_url)),
      options_status_(CheckOptions(api_name_, *format_, options_)),
      redactor_(options_.api_key) {}

HttpHeaders BatchHttp::HeadersFor(const BatchCall& call) const {
  // The format's auth and version headers; its Content-Type and Accept are
  // for an online call, so each call sets its own.
  HttpHeaders headers;
  if (!call.content_type.empty()) {
    headers.emplace_back("Content-Type", call.content_type);
  }
  for (auto& header :
       format_->Headers(call.with_auth ? options_.api_key : "")) {
    if (text::EqualsIgnoreCase(header.first, "Content-Type") ||
        text::EqualsIgnoreCase(header.first, "Accept")) {
      continue;
    }
    headers.push_back(std::move(header));
  }
  // As HttpTeacher: an extra header replaces the one of the same name.
  HttpHeaders merged;
  for (auto& header : headers) {
    bool replaced = false;
    for (const auto& extra : options_.extra_headers) {
      replaced = replaced || text::EqualsIgnoreCase(extra.first, header.first);
    }
    if (!replaced) merged.push_back(std::move(header));
  }
  for (const auto& extra : options_.extra_headers) {
    if (!call.with_auth &&
        (text::EqualsIgnoreCase(extra.first, "Authorization") ||
         text::EqualsIgnoreCase(extra.first, "x-api-key"))) {
      continue;
    }
    merged.push_back(extra);
  }
  return merged;
}

absl::StatusOr<std::string> BatchHttp::Send(BatchCall call) const {
  if (!options_status_.ok()) return options_status_;
  HttpRequest request;
  request.method = call.method;
  request.url = call.url;
  request.headers = HeadersFor(call);
  request.body = std::move(call.body);
  request.connect_timeout = options_.connect_timeout;
  request.idle_timeout = options_.idle_timeout;
  request.total_timeout = options_.total_timeout;
  request.max_response_bytes = options_.max_response_bytes;
  if (call.transfer != BatchTransfer::kSmall) {
    request.total_timeout =
        std::max(options_.total_timeout, kMinBatchTransferTimeout);
  }
  if (call.transfer == BatchTransfer::kDownload) {
    request.max_response_bytes =
        std::max(options_.max_response_bytes, kMaxBatchResultsBytes);
  }

  // The callback runs on the client's thread; this one waits for it, so
  // the locals outlive it.
  absl::Notification done;
  absl::StatusOr<HttpResponse> response;
  http_.Send(std::move(request),
             [&done, &response](absl::StatusOr<HttpResponse> answer) {
               response = std::move(answer);
               done.Notify();
             });
  done.WaitForNotification();

  if (response.ok() && response->status >= 200 && response->status < 300) {
    return redactor_.Redact(std::move(response->body));
  }
  TeacherResult online;
  if (!response.ok()) {
    online = ClassifyTransportError(response.status());
  } else {
    // Redacted before it is quoted, as HttpTeacher does: no cut quote can
    // leave part of the key behind.
    response->body = redactor_.Redact(std::move(response->body));
    for (auto& [name, value] : response->headers) {
      value = redactor_.Redact(std::move(value));
    }
    online = ClassifyHttpFailure(*response, /*now_wall_millis=*/0);
  }
  return Error(BatchCode(online, call.creating),
               absl::StrCat(call.what, ": ", online.status.message()));
}

TeacherResult BatchHttp::Answer(int status, std::string body) const {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  // No headers, so the time (only read for retry-after dates) is unused.
  return HandleTeacherResponse(*format_, std::move(response),
                               /*now_wall_millis=*/0, options_.api_key);
}

absl::Status BatchHttp::Error(absl::StatusCode code,
                              std::string_view message) const {
  return absl::Status(
      code, redactor_.Redact(absl::StrCat(
                text::Absl(api_name_), " batch API: ", text::Absl(message))));
}

namespace batch_json {
namespace {

absl::Status FieldError(std::string_view what, const char* name,
                        std::string_view problem) {
  return absl::InternalError(absl::StrCat(text::Absl(what), ": field \"", name,
                                          "\" ", text::Absl(problem)));
}

}  // namespace

absl::StatusOr<json> ParseObject(std::string_view body, std::string_view what) {
  if (absl::Status s = CheckJsonDepth(body); !s.ok()) {
    return absl::InternalError(
        absl::StrCat(text::Absl(what), ": ", s.message()));
  }
  json doc = json::parse(body, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return absl::InternalError(absl::StrCat(
        text::Absl(what), " is not JSON (", body.size(), " bytes: ",
        text::Absl(text::Printable(text::StripWhitespace(body), 120)), ")"));
  }
  if (!doc.is_object()) {
    return absl::InternalError(
        absl::StrCat(text::Absl(what), " is not a JSON object"));
  }
  return doc;
}

absl::StatusOr<std::string> String(const json& object, const char* name,
                                   std::string_view what, bool required) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) {
    if (required) return FieldError(what, name, "is missing");
    return std::string();
  }
  if (!it->is_string()) return FieldError(what, name, "is not a string");
  return it->get<std::string>();
}

absl::StatusOr<int64_t> Int(const json& object, const char* name,
                            std::string_view what, bool required) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) {
    if (required) return FieldError(what, name, "is missing");
    return int64_t{0};
  }
  if (it->is_number_unsigned()) {
    const uint64_t value = it->get<uint64_t>();
    if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return FieldError(what, name, "is out of range");
    }
    return static_cast<int64_t>(value);
  }
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_number_float()) {
    const double value = it->get<double>();
    if (value > -9e18 && value < 9e18 && value == std::trunc(value)) {
      return static_cast<int64_t>(value);
    }
  }
  return FieldError(what, name, "is not an integer");
}

absl::StatusOr<const json*> Object(const json& object, const char* name,
                                   std::string_view what) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return nullptr;
  if (!it->is_object()) return FieldError(what, name, "is not an object");
  return &*it;
}

}  // namespace batch_json
}  // namespace distillery
