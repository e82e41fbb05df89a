#include "common/teacher/http_teacher.h"

#include <exception>
#include <functional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/teacher/http_failure.h"
#include "common/teacher/redact.h"
#include "common/teacher/text_util.h"
#include "common/teacher/wire_format_util.h"

namespace distillery {
namespace {

using text::HasControlChar;
using text::Printable;

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

HttpTeacherOptions Normalized(HttpTeacherOptions options) {
  options.api_key = std::string(text::StripWhitespace(options.api_key));
  return options;
}

// `own` headers, minus those an `extra` header of the same name
// (case-insensitive) replaces, followed by `extra`.
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

absl::Status ValidateAll(const WireFormat& format,
                         const HttpTeacherOptions& options) {
  if (absl::Status s = ValidateHttpTeacherOptions(options); !s.ok()) return s;
  return format.Validate();
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

// What the format made of a redacted response may still hold the secret:
// a streamed answer joins deltas that each held a piece of it.
void RedactResult(const SecretRedactor& redactor, TeacherResult* result) {
  if (!result->status.ok()) {
    result->status =
        absl::Status(result->status.code(),
                     redactor.Redact(std::string(result->status.message())));
  }
  TeacherAnswer& a = result->answer;
  for (std::string* field : {&a.content, &a.reasoning, &a.reasoning_blocks,
                             &a.finish_reason, &a.provider_id}) {
    *field = redactor.Redact(std::move(*field));
  }
}

// Transport error, non-2xx classified by http_failure.h (retry-after and
// x-should-retry applied), or a 2xx body read by the format with the
// response hints then applied to its result.
TeacherResult HandleHttpOutcome(const WireFormat& format,
                                absl::StatusOr<HttpResponse> response,
                                int64_t now_wall_millis) {
  if (!response.ok()) return ClassifyTransportError(response.status());
  if (response->status < 200 || response->status >= 300) {
    return ClassifyHttpFailure(*response, now_wall_millis);
  }
  TeacherResult result = format.ParseBody(std::move(response->body));
  result.http_status = response->status;
  ApplyResponseHints(*response, now_wall_millis, &result);
  return result;
}

// A TeacherResult for a request that was never sent.
TeacherResult NotSent(FailureKind kind, absl::Status status,
                      std::string_view secret) {
  TeacherResult result;
  result.kind = kind;
  result.status = absl::Status(
      status.code(), RedactSecret(std::string(status.message()), secret));
  return result;
}

}  // namespace

absl::Status ValidateHttpTeacherOptions(const HttpTeacherOptions& options) {
  const std::string_view url = options.base_url;
  const bool http = text::StartsWithIgnoreCase(url, "http://");
  const bool https = text::StartsWithIgnoreCase(url, "https://");
  if ((!http && !https) || url.size() <= (https ? 8u : 7u) ||
      HasControlChar(url) || url.find(' ') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("base_url \"", Printable(url, 200),
                     "\" is not an http:// or https:// URL"));
  }
  if (HasControlChar(text::StripWhitespace(options.api_key))) {
    return absl::InvalidArgumentError(
        "api_key contains control characters (a line break?)");
  }
  for (const auto& [name, value] : options.extra_headers) {
    if (!IsHeaderName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "extra header name \"", Printable(name, 100), "\" is not valid"));
    }
    if (HasControlChar(value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "extra header ", name, " has control characters in its value"));
    }
  }
  if (options.connect_timeout <= Duration(0) ||
      options.idle_timeout <= Duration(0) ||
      options.total_timeout <= Duration(0)) {
    return absl::InvalidArgumentError("timeouts must be positive");
  }
  if (options.max_response_bytes == 0) {
    return absl::InvalidArgumentError("max_response_bytes must be positive");
  }
  return absl::OkStatus();
}

TeacherResult HandleTeacherResponse(const WireFormat& format,
                                    absl::StatusOr<HttpResponse> response,
                                    int64_t now_wall_millis,
                                    std::string_view secret) {
  try {
    if (secret.empty()) {
      return HandleHttpOutcome(format, std::move(response), now_wall_millis);
    }
    // Redacted before it is read, so that no quote cut short can leave part
    // of the key behind, and an answer that echoes it (raw_body and all) is
    // kept without it: keys are never stored, logged or reported.
    const SecretRedactor redactor(secret);
    RedactResponse(redactor, &response);
    TeacherResult result =
        HandleHttpOutcome(format, std::move(response), now_wall_millis);
    RedactResult(redactor, &result);
    return result;
  } catch (const std::exception& e) {
    return wire::UnexpectedException("handling the teacher's response",
                                     e.what());
  }
}

HttpTeacher::HttpTeacher(HttpClient& http, Clock& clock,
                         std::shared_ptr<const WireFormat> format,
                         HttpTeacherOptions options)
    : http_(http),
      clock_(clock),
      format_(std::move(format)),
      options_(Normalized(std::move(options))),
      options_status_(ValidateAll(*format_, options_)),
      url_(format_->Url(options_.base_url)),
      headers_(MergeHeaders(format_->Headers(options_.api_key),
                            options_.extra_headers)) {}

HttpTeacher::HttpTeacher(HttpClient& http,
                         std::shared_ptr<const WireFormat> format,
                         HttpTeacherOptions options)
    : HttpTeacher(http, RealClock::Get(), std::move(format),
                  std::move(options)) {}

void HttpTeacher::Ask(const TeacherRequest& request, Callback done) {
  if (!options_status_.ok()) {
    done(NotSent(FailureKind::kTeacherDown,
                 absl::InvalidArgumentError(absl::StrCat(
                     text::Absl(format_->api_name()),
                     " teacher misconfigured: ", options_status_.message())),
                 options_.api_key));
    return;
  }
  absl::StatusOr<std::string> body = format_->BuildBody(request);
  if (!body.ok()) {
    done(NotSent(FailureKind::kPermanent, body.status(), options_.api_key));
    return;
  }
  HttpRequest post;
  post.method = "POST";
  post.url = url_;
  post.headers = headers_;
  post.body = *std::move(body);
  post.connect_timeout = options_.connect_timeout;
  post.idle_timeout = options_.idle_timeout;
  post.total_timeout = options_.total_timeout;
  post.max_response_bytes = options_.max_response_bytes;
  // The callback owns what it needs (the format shared, the key copied)
  // rather than pointing into the teacher, so a response is handled the same
  // whatever the teacher's lifetime; only the clock must outlive the call.
  http_.Send(std::move(post), [done = std::move(done), clock = &clock_,
                               format = format_, secret = options_.api_key](
                                  absl::StatusOr<HttpResponse> response) {
    // The teacher's rate-limit headers (x-ratelimit-*,
    // anthropic-ratelimit-*, retry-after) go to the worker's
    // limiter.
    TeacherHeaders limits = response.ok()
                                ? RateLimitHeadersOf(response->headers)
                                : TeacherHeaders();
    for (auto& [name, value] : limits) {
      value = RedactSecret(std::move(value), secret);
    }
    TeacherResult result = HandleTeacherResponse(*format, std::move(response),
                                                 clock->WallMillis(), secret);
    result.rate_limit_headers = std::move(limits);
    done(std::move(result));
  });
}

}  // namespace distillery
