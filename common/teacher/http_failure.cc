#include "common/teacher/http_failure.h"

#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/base/json_depth.h"
#include "common/teacher/retry_after.h"
#include "common/teacher/text_util.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using nlohmann::json;

// Teacher messages are quoted into statuses that end up in logs and the
// status page; a hostile or broken teacher must not fill them.
constexpr size_t kMaxQuotedMessage = 1000;
constexpr size_t kMaxQuotedBody = 300;

// `in` without surrounding whitespace, made printable on one line and cut
// to at most `max` bytes without splitting a UTF-8 sequence.
std::string Excerpt(std::string_view in, size_t max) {
  return text::Printable(text::StripWhitespace(in), max);
}

// A field as text: strings as they are, numbers in decimal, structures as
// JSON (FastAPI's "detail" is often a list).
std::string TextOf(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "";
  return value.dump();
}

std::string Field(const json& object, const char* name) {
  auto it = object.find(name);
  return it == object.end() ? std::string() : TextOf(*it);
}

bool IsRateLimitCode(const TeacherErrorBody& error) {
  return error.code == "rate_limit_exceeded" ||
         error.type == "rate_limit_error" ||
         error.type == "rate_limit_exceeded";
}

// The numeric status in an error code like llama.cpp's {"code":503}.
std::optional<int> HttpStatusInCode(std::string_view code) {
  if (code.size() != 3) return std::nullopt;
  int value = 0;
  for (char c : code) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c)))
      return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (value < 400 || value > 599) return std::nullopt;
  return value;
}

struct Classification {
  absl::StatusCode code;
  FailureKind kind;
};

Classification Classify(int http_status, const TeacherErrorBody& error) {
  const bool quota =
      IsQuotaExhausted(error.code) || IsQuotaExhausted(error.type);
  if (http_status >= 300 && http_status < 400) {
    // An unfollowed redirect means base_url is wrong (http for https, a moved
    // host): every request will get it until someone fixes the config.
    return {absl::StatusCode::kFailedPrecondition, FailureKind::kTeacherDown};
  }
  switch (http_status) {
    case 401:
      return {absl::StatusCode::kUnauthenticated, FailureKind::kTeacherDown};
    case 402:
      return {absl::StatusCode::kFailedPrecondition, FailureKind::kTeacherDown};
    case 403:
      return {absl::StatusCode::kPermissionDenied, FailureKind::kTeacherDown};
    case 404:
      // The endpoint (a wrong base_url) or the model does not exist there:
      // every request will get it, so pause the teacher like a bad key,
      // rather than spend each task's attempts on it.
      return {absl::StatusCode::kNotFound, FailureKind::kTeacherDown};
    case 408:
    case 409:
      return {absl::StatusCode::kUnavailable, FailureKind::kRetryable};
    case 429:
      // An unknown 429 code reads as a rate limit: the safe reading, since
      // a rate limit passes and the retry policy bounds the attempts.
      if (quota) {
        return {absl::StatusCode::kFailedPrecondition,
                FailureKind::kTeacherDown};
      }
      return {absl::StatusCode::kResourceExhausted, FailureKind::kRateLimited};
    default:
      break;
  }
  if (http_status >= 400 && http_status < 500) {
    if (quota) {
      return {absl::StatusCode::kFailedPrecondition, FailureKind::kTeacherDown};
    }
    return {absl::StatusCode::kInvalidArgument, FailureKind::kPermanent};
  }
  if (http_status >= 500 && http_status < 600) {
    return {absl::StatusCode::kUnavailable, FailureKind::kRetryable};
  }
  // 1xx, 2xx handed here by mistake, or a status line no server sends.
  return {absl::StatusCode::kUnknown, FailureKind::kRetryable};
}

std::string Describe(int http_status, const TeacherErrorBody& error,
                     std::string_view body) {
  std::string out = absl::StrCat("HTTP ", http_status, " from teacher");
  if (http_status >= 200 && http_status < 300) {
    absl::StrAppend(&out, " with an error in the body");
  }
  if (!error.found) {
    std::string excerpt = Excerpt(body, kMaxQuotedBody);
    if (excerpt.empty()) {
      absl::StrAppend(&out, ", empty body");
    } else {
      absl::StrAppend(&out, ", body: ", excerpt);
    }
    return out;
  }
  absl::StrAppend(&out, ": \"", Excerpt(error.message, kMaxQuotedMessage),
                  "\"");
  if (!error.code.empty() || !error.type.empty()) {
    absl::StrAppend(&out, " (");
    if (!error.code.empty()) {
      absl::StrAppend(&out, "code ", Excerpt(error.code, 100));
    }
    if (!error.code.empty() && !error.type.empty()) absl::StrAppend(&out, ", ");
    if (!error.type.empty()) {
      absl::StrAppend(&out, "type ", Excerpt(error.type, 100));
    }
    absl::StrAppend(&out, ")");
  }
  return out;
}

}  // namespace

TeacherErrorBody ParseTeacherErrorBody(std::string_view body) {
  TeacherErrorBody error;
  // Too deep to read safely (TextOf dumps structures, recursively): quoted
  // as an unrecognised body instead.
  if (!CheckJsonDepth(body).ok()) return error;
  try {
    json doc = json::parse(body, /*cb=*/nullptr, /*allow_exceptions=*/false);
    if (!doc.is_object()) return error;
    if (auto it = doc.find("error"); it != doc.end() && !it->is_null()) {
      error.found = true;
      if (it->is_object()) {
        error.message = Field(*it, "message");
        error.type = Field(*it, "type");
        error.code = Field(*it, "code");
      } else {
        error.message = TextOf(*it);
      }
      return error;
    }
    if (Field(doc, "object") == "error" ||
        (doc.contains("message") &&
         (doc.contains("type") || doc.contains("code")))) {
      error.found = true;
      error.message = Field(doc, "message");
      error.type = Field(doc, "type");
      error.code = Field(doc, "code");
      return error;
    }
    if (auto it = doc.find("detail"); it != doc.end() && !it->is_null()) {
      error.found = true;
      error.message = TextOf(*it);
      return error;
    }
  } catch (const std::exception&) {
    return TeacherErrorBody{};
  }
  return error;
}

bool IsQuotaExhausted(std::string_view code_or_type) {
  return code_or_type == "insufficient_quota" ||
         code_or_type == "credit_balance_exhausted" ||
         code_or_type == "billing_hard_limit_reached" ||
         code_or_type.ends_with("_spend_limit_exceeded");
}

TeacherResult TeacherErrorResult(int http_status, const TeacherErrorBody& error,
                                 std::string_view body) {
  TeacherResult result;
  result.http_status = http_status;
  Classification c;
  if (http_status >= 200 && http_status < 300) {
    if (std::optional<int> embedded = HttpStatusInCode(error.code)) {
      c = Classify(*embedded, error);
    } else if (IsQuotaExhausted(error.code) || IsQuotaExhausted(error.type)) {
      c = {absl::StatusCode::kFailedPrecondition, FailureKind::kTeacherDown};
    } else if (IsRateLimitCode(error)) {
      c = {absl::StatusCode::kResourceExhausted, FailureKind::kRateLimited};
    } else {
      c = {absl::StatusCode::kUnavailable, FailureKind::kRetryable};
    }
  } else {
    c = Classify(http_status, error);
  }
  result.kind = c.kind;
  result.status = absl::Status(c.code, Describe(http_status, error, body));
  return result;
}

void ApplyResponseHints(const HttpResponse& response, int64_t now_wall_millis,
                        TeacherResult* result) {
  if (result->status.ok()) return;
  if (std::optional<Duration> wait =
          ParseRetryAfter(response.Header("retry-after-ms"),
                          response.Header("retry-after"), now_wall_millis)) {
    result->retry_after = *wait;
  }
  std::string_view should_retry =
      text::StripWhitespace(response.Header("x-should-retry"));
  std::string_view note;
  if (text::EqualsIgnoreCase(should_retry, "false") &&
      (result->kind == FailureKind::kRetryable ||
       result->kind == FailureKind::kRateLimited)) {
    result->kind = FailureKind::kPermanent;
    note = " [x-should-retry: false]";
  } else if (text::EqualsIgnoreCase(should_retry, "true") &&
             result->kind == FailureKind::kPermanent) {
    result->kind = FailureKind::kRetryable;
    note = " [x-should-retry: true]";
  }
  if (!note.empty()) {
    result->status =
        absl::Status(result->status.code(),
                     std::string(result->status.message()) + std::string(note));
  }
}

TeacherResult ClassifyHttpFailure(const HttpResponse& response,
                                  int64_t now_wall_millis) {
  TeacherResult result = TeacherErrorResult(
      response.status, ParseTeacherErrorBody(response.body), response.body);
  if (response.status >= 300 && response.status < 400) {
    std::string_view location = response.Header("location");
    result.status =
        absl::Status(result.status.code(),
                     absl::StrCat(result.status.message(), "; redirected",
                                  location.empty() ? "" : " to ",
                                  Excerpt(location, kMaxQuotedBody),
                                  ": check the teacher's base_url"));
  }
  ApplyResponseHints(response, now_wall_millis, &result);
  return result;
}

TeacherResult ClassifyTransportError(const absl::Status& status) {
  TeacherResult result;
  if (status.ok()) {
    // A caller bug: there was no error to classify.
    result.status = absl::UnknownError("no response and no transport error");
    result.kind = FailureKind::kRetryable;
    return result;
  }
  result.status = absl::Status(
      status.code(),
      absl::StrCat("no response from teacher: ",
                   Excerpt(text::Std(status.message()), kMaxQuotedMessage)));
  if (status.code() == absl::StatusCode::kInvalidArgument) {
    result.kind = FailureKind::kPermanent;
  } else if (IsUnreachable(status)) {
    // Connection refused or no such host: the teacher is not there (not
    // started, still loading, a wrong base_url). Pause it with the reason
    // instead of burning every task's attempts in seconds.
    result.kind = FailureKind::kTeacherDown;
    result.status = absl::Status(
        status.code(),
        absl::StrCat("teacher unreachable (check that it runs and its "
                     "base_url): ",
                     Excerpt(text::Std(status.message()), kMaxQuotedMessage)));
  } else {
    result.kind = FailureKind::kRetryable;
  }
  return result;
}

}  // namespace distillery
