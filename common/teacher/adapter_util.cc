#include "common/teacher/adapter_util.h"

#include <cmath>
#include <exception>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/teacher/http_failure.h"
#include "common/teacher/redact.h"
#include "common/teacher/text_util.h"

namespace distillery::adapter {
namespace {

using nlohmann::json;

constexpr size_t kMaxQuotedBody = 200;

// RFC 9110 token characters, what a header name may hold.
bool IsHeaderName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(u)) continue;
    if (std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

// `response` with the secret redacted from its error, body and headers, in
// place: a response that does not mention it is not copied.
void RedactResponse(const SecretRedactor& redactor,
                    absl::StatusOr<HttpResponse>* response) {
  if (!response->ok()) {
    *response = absl::Status(
        response->status().code(),
        redactor.Redact(std::string(response->status().message())));
    return;
  }
  HttpResponse& r = **response;
  r.body = redactor.Redact(std::move(r.body));
  for (auto& [name, value] : r.headers) {
    value = redactor.Redact(std::move(value));
  }
}

// What the handler made of a redacted response may still hold the secret:
// a streamed answer joins deltas that each held a piece of it.
void RedactResult(const SecretRedactor& redactor, TeacherResult* result) {
  if (!result->status.ok()) {
    result->status = absl::Status(
        result->status.code(),
        redactor.Redact(std::string(result->status.message())));
  }
  TeacherAnswer& a = result->answer;
  for (std::string* field : {&a.content, &a.reasoning, &a.reasoning_blocks,
                             &a.finish_reason, &a.provider_id}) {
    *field = redactor.Redact(std::move(*field));
  }
}

}  // namespace

std::string Printable(std::string_view in, size_t max) {
  std::string out;
  for (char c : in.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7F ? ' ' : c);
  }
  if (in.size() > max) out += "...";
  return out;
}

bool HasControlChar(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return true;
  }
  return false;
}

absl::Status ValidateCommonOptions(std::string_view url,
                                   std::string_view api_key,
                                   const HttpHeaders& extra_headers,
                                   Duration connect_timeout,
                                   Duration idle_timeout,
                                   Duration total_timeout,
                                   size_t max_response_bytes) {
  const bool http = text::StartsWithIgnoreCase(url, "http://");
  const bool https = text::StartsWithIgnoreCase(url, "https://");
  if ((!http && !https) || url.size() <= (https ? 8u : 7u) ||
      HasControlChar(url) || url.find(' ') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("base_url \"", Printable(url, 200),
                     "\" is not an http:// or https:// URL"));
  }
  if (HasControlChar(text::StripWhitespace(api_key))) {
    return absl::InvalidArgumentError(
        "api_key contains control characters (a line break?)");
  }
  for (const auto& [name, value] : extra_headers) {
    if (!IsHeaderName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "extra header name \"", Printable(name, 100), "\" is not valid"));
    }
    if (HasControlChar(value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "extra header ", name, " has control characters in its value"));
    }
  }
  if (connect_timeout <= Duration(0) || idle_timeout <= Duration(0) ||
      total_timeout <= Duration(0)) {
    return absl::InvalidArgumentError("timeouts must be positive");
  }
  if (max_response_bytes == 0) {
    return absl::InvalidArgumentError("max_response_bytes must be positive");
  }
  return absl::OkStatus();
}

HttpHeaders MergeHeaders(HttpHeaders own, const HttpHeaders& extra) {
  HttpHeaders headers;
  for (auto& header : own) {
    bool replaced = false;
    for (const auto& e : extra) {
      replaced = replaced || text::EqualsIgnoreCase(e.first, header.first);
    }
    if (!replaced) headers.push_back(std::move(header));
  }
  headers.insert(headers.end(), extra.begin(), extra.end());
  return headers;
}

TeacherResult BadBody(std::string_view why, std::string_view body) {
  TeacherResult result;
  result.http_status = 200;
  result.kind = FailureKind::kRetryable;
  std::string_view trimmed = text::StripWhitespace(body);
  std::string message =
      "HTTP 200 from teacher with an unusable body (" + std::string(why) + ")";
  if (trimmed.empty()) {
    message += ": empty body";
  } else {
    absl::StrAppend(&message, ", ", body.size(),
                    " bytes starting: ", Printable(trimmed, kMaxQuotedBody));
  }
  result.status = absl::UnavailableError(message);
  return result;
}

TeacherResult UnexpectedException(const char* where, const char* what) {
  TeacherResult result;
  result.kind = FailureKind::kRetryable;
  result.status =
      absl::InternalError(absl::StrCat("unexpected error ", where, ": ", what));
  return result;
}

int64_t IntField(const json& object, const char* name) {
  if (!object.is_object()) return 0;
  auto it = object.find(name);
  if (it == object.end()) return 0;
  if (it->is_number_unsigned()) {
    const uint64_t value = it->get<uint64_t>();
    return value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
               ? std::numeric_limits<int64_t>::max()
               : static_cast<int64_t>(value);
  }
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_number_float()) {
    const double value = it->get<double>();
    if (std::isfinite(value) && std::fabs(value) < 9e18) {
      return static_cast<int64_t>(std::llround(value));
    }
  }
  return 0;
}

std::string StringField(const json& object, const char* name) {
  if (!object.is_object()) return std::string();
  auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>()
                                               : std::string();
}

const json* ObjectField(const json& object, const char* name) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(name);
  return it != object.end() && it->is_object() ? &*it : nullptr;
}

TeacherResult HandleRedacted(absl::StatusOr<HttpResponse> response,
                             std::string_view secret,
                             const ResponseHandler& handle) {
  try {
    if (secret.empty()) return handle(std::move(response));
    // Redacted before it is read, so that no quote cut short can leave part
    // of the key behind, and an answer that echoes it (raw_body and all) is
    // kept without it: keys are never stored, logged or reported.
    const SecretRedactor redactor(secret);
    RedactResponse(redactor, &response);
    TeacherResult result = handle(std::move(response));
    RedactResult(redactor, &result);
    return result;
  } catch (const std::exception& e) {
    return UnexpectedException("handling the teacher's response", e.what());
  }
}

TeacherResult HandleHttpOutcome(
    absl::StatusOr<HttpResponse> response, int64_t now_wall_millis,
    const std::function<TeacherResult(std::string body)>& parse) {
  if (!response.ok()) return ClassifyTransportError(response.status());
  if (response->status < 200 || response->status >= 300) {
    return ClassifyHttpFailure(*response, now_wall_millis);
  }
  TeacherResult result = parse(std::move(response->body));
  result.http_status = response->status;
  ApplyResponseHints(*response, now_wall_millis, &result);
  return result;
}

TeacherResult NotSent(FailureKind kind, absl::Status status,
                      std::string_view secret) {
  TeacherResult result;
  result.kind = kind;
  result.status = absl::Status(
      status.code(), RedactSecret(std::string(status.message()), secret));
  return result;
}

TeacherResult ParseCatching(BodyParser parse, std::string body,
                            const char* what) {
  try {
    return parse(std::move(body));
  } catch (const std::exception& e) {
    return UnexpectedException(what, e.what());
  }
}

TeacherResult HandleTeacherResponse(absl::StatusOr<HttpResponse> response,
                                    int64_t now_wall_millis,
                                    std::string_view secret, bool stream,
                                    BodyParser parse_answer,
                                    BodyParser parse_stream) {
  return HandleRedacted(
      std::move(response), secret,
      [=](absl::StatusOr<HttpResponse> r) {
        return HandleHttpOutcome(
            std::move(r), now_wall_millis, [=](std::string body) {
              return stream ? parse_stream(std::move(body))
                            : parse_answer(std::move(body));
            });
      });
}

absl::Status RequestBodyError(const std::exception& e) {
  if (dynamic_cast<const nlohmann::json::exception*>(&e) != nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot encode the request as JSON: ", e.what()));
  }
  return absl::InternalError(
      absl::StrCat("cannot build the request: ", e.what()));
}

void SendToTeacher(HttpClient& http, Clock& clock, HttpRequest request,
                   ResponseReader read, std::string secret, bool stream,
                   std::function<void(TeacherResult)> done) {
  http.Send(std::move(request),
            [done = std::move(done), clock = &clock, read,
             secret = std::move(secret),
             stream](absl::StatusOr<HttpResponse> response) {
              TeacherHeaders limits = response.ok()
                                          ? RateLimitHeadersOf(response->headers)
                                          : TeacherHeaders();
              for (auto& [name, value] : limits) {
                value = RedactSecret(std::move(value), secret);
              }
              TeacherResult result = read(std::move(response),
                                          clock->WallMillis(), secret, stream);
              result.rate_limit_headers = std::move(limits);
              done(std::move(result));
            });
}

}  // namespace distillery::adapter
