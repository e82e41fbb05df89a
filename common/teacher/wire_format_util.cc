#include "common/teacher/wire_format_util.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/json_depth.h"
#include "common/teacher/http_failure.h"
#include "common/teacher/text_util.h"

namespace distillery::wire {
namespace {

using nlohmann::json;

constexpr size_t kMaxQuotedBody = 200;

}  // namespace

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
    absl::StrAppend(&message, ", ", body.size(), " bytes starting: ",
                    text::Printable(trimmed, kMaxQuotedBody));
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

TeacherResult ErrorInBody(std::string_view data, bool in_stream) {
  TeacherResult error =
      TeacherErrorResult(200, ParseTeacherErrorBody(data), data);
  if (in_stream) {
    error.status =
        absl::Status(error.status.code(),
                     absl::StrCat("in the stream: ", error.status.message()));
  }
  return error;
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

std::optional<TeacherResult> ParseJsonObject(std::string_view body, json* doc) {
  if (absl::Status s = CheckJsonDepth(body); !s.ok()) {
    return BadBody(text::Std(s.message()), body);
  }
  *doc = json::parse(body, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (doc->is_discarded()) return BadBody("not JSON, or truncated", body);
  if (!doc->is_object()) return BadBody("not a JSON object", body);
  return std::nullopt;
}

std::optional<TeacherResult> ParseStreamEvent(std::string_view data,
                                              std::string_view body,
                                              json* doc) {
  if (absl::Status s = CheckJsonDepth(data); !s.ok()) {
    return BadBody(absl::StrCat("a stream event: ", s.message()), body);
  }
  *doc = json::parse(data, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (doc->is_discarded() || !doc->is_object()) {
    return BadBody("a stream event that is not a JSON object", body);
  }
  return std::nullopt;
}

absl::Status CheckSamplingNumbers(const SamplingParams& params) {
  if (params.temperature && !std::isfinite(*params.temperature)) {
    return absl::InvalidArgumentError("temperature is not a finite number");
  }
  if (params.top_p && !std::isfinite(*params.top_p)) {
    return absl::InvalidArgumentError("top_p is not a finite number");
  }
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::ordered_json> ParseRequestJson(const std::string& text,
                                                        const char* what) {
  if (!CheckJsonDepth(text).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " nests too deeply"));
  }
  nlohmann::ordered_json value =
      nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not valid JSON"));
  }
  return value;
}

bool StrictSchemaCompatible(const nlohmann::ordered_json& schema) {
  if (!schema.is_object()) return true;
  if (auto items = schema.find("items");
      items != schema.end() && !StrictSchemaCompatible(*items)) {
    return false;
  }
  auto properties = schema.find("properties");
  const bool is_object = schema.value("type", nlohmann::ordered_json()) ==
                             nlohmann::ordered_json("object") ||
                         properties != schema.end();
  if (!is_object) return true;
  if (schema.value("additionalProperties", nlohmann::ordered_json()) !=
      nlohmann::ordered_json(false)) {
    return false;
  }
  if (properties == schema.end() || !properties->is_object()) return true;
  auto required = schema.find("required");
  if (required == schema.end() || !required->is_array()) {
    return properties->empty();
  }
  for (const auto& [name, sub] : properties->items()) {
    if (std::find(required->begin(), required->end(),
                  nlohmann::ordered_json(name)) == required->end()) {
      return false;
    }
    if (!StrictSchemaCompatible(sub)) return false;
  }
  return true;
}

TeacherResult ParseCatching(BodyParser parse, std::string body,
                            const char* what) {
  try {
    return parse(std::move(body));
  } catch (const std::exception& e) {
    return UnexpectedException(what, e.what());
  }
}

absl::Status RequestBodyError(const std::exception& e) {
  if (dynamic_cast<const nlohmann::json::exception*>(&e) != nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot encode the request as JSON: ", e.what()));
  }
  return absl::InternalError(
      absl::StrCat("cannot build the request: ", e.what()));
}

}  // namespace distillery::wire
