#include "common/teacher/openai_teacher.h"

#include <cmath>
#include <exception>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/teacher/http_failure.h"
#include "common/teacher/text_util.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr std::string_view kChatCompletionsPath = "/chat/completions";
constexpr size_t kMaxQuotedBody = 200;

bool HasControlChar(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return true;
  }
  return false;
}

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

OpenAiTeacherOptions Normalized(OpenAiTeacherOptions options) {
  options.api_key = std::string(text::StripWhitespace(options.api_key));
  return options;
}

HttpHeaders BuildHeaders(const OpenAiTeacherOptions& options) {
  HttpHeaders own = {{"Content-Type", "application/json"}};
  if (!options.api_key.empty()) {
    own.emplace_back("Authorization", absl::StrCat("Bearer ", options.api_key));
  }
  HttpHeaders headers;
  for (auto& header : own) {
    bool replaced = false;
    for (const auto& extra : options.extra_headers) {
      replaced = replaced || text::EqualsIgnoreCase(extra.first, header.first);
    }
    if (!replaced) headers.push_back(std::move(header));
  }
  headers.insert(headers.end(), options.extra_headers.begin(),
                 options.extra_headers.end());
  return headers;
}

std::string Printable(std::string_view in, size_t max) {
  std::string out;
  for (char c : in.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7F ? ' ' : c);
  }
  if (in.size() > max) out += "...";
  return out;
}

// A 2xx whose body is not an answer. See ParseChatResponse for the code.
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

const json* ObjectField(const json& object, const char* name) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(name);
  return it != object.end() && it->is_object() ? &*it : nullptr;
}

std::string StringField(const json& object, const char* name) {
  auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>()
                                               : std::string();
}

// message.content: a string, null, or (some servers) a list of parts of
// which the text ones count. False for anything else.
bool ReadContent(const json& message, std::string* content) {
  auto it = message.find("content");
  if (it == message.end() || it->is_null()) return true;
  if (it->is_string()) {
    *content = it->get<std::string>();
    return true;
  }
  if (!it->is_array()) return false;
  for (const json& part : *it) {
    if (part.is_string()) {
      *content += part.get<std::string>();
    } else if (part.is_object() && StringField(part, "type") == "text") {
      *content += StringField(part, "text");
    }
  }
  return true;
}

// llama.cpp without --reasoning-format leaves the trace inline as
// "<think>...</think>answer". A block cut off by the token limit has no
// closing tag: then all of it is reasoning and there is no answer yet.
void SplitInlineThink(std::string* content, std::string* reasoning) {
  constexpr std::string_view kOpen = "<think>";
  constexpr std::string_view kClose = "</think>";
  std::string_view rest = text::StripLeadingWhitespace(*content);
  if (!rest.starts_with(kOpen)) return;
  rest.remove_prefix(kOpen.size());
  const size_t close = rest.find(kClose);
  std::string_view thought = rest.substr(0, close);
  std::string_view answer;
  if (close != std::string_view::npos) {
    answer = text::StripLeadingWhitespace(rest.substr(close + kClose.size()));
  }
  *reasoning = std::string(text::StripWhitespace(thought));
  *content = std::string(answer);
}

TeacherResult ParseChatResponseOrThrow(std::string body) {
  json doc = json::parse(body, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return BadBody("not JSON, or truncated", body);
  if (!doc.is_object()) return BadBody("not a JSON object", body);
  if (auto it = doc.find("error"); (it != doc.end() && !it->is_null()) ||
                                   StringField(doc, "object") == "error") {
    return TeacherErrorResult(200, ParseTeacherErrorBody(body), body);
  }
  auto choices = doc.find("choices");
  if (choices == doc.end() || !choices->is_array() || choices->empty()) {
    return BadBody("no choices", body);
  }
  const json& choice = choices->front();
  const json* message = ObjectField(choice, "message");
  if (message == nullptr) return BadBody("choices[0] has no message", body);

  TeacherResult result;
  result.http_status = 200;
  TeacherAnswer& answer = result.answer;
  if (!ReadContent(*message, &answer.content)) {
    return BadBody("message.content is neither text nor parts", body);
  }
  // vLLM renamed reasoning_content to reasoning; DeepSeek and llama.cpp still
  // use reasoning_content. Read the new name first.
  answer.reasoning = StringField(*message, "reasoning");
  if (answer.reasoning.empty()) {
    answer.reasoning = StringField(*message, "reasoning_content");
  }
  if (answer.reasoning.empty()) {
    SplitInlineThink(&answer.content, &answer.reasoning);
  }
  answer.finish_reason = StringField(choice, "finish_reason");
  if (const json* usage = ObjectField(doc, "usage")) {
    answer.usage.prompt_tokens = IntField(*usage, "prompt_tokens");
    answer.usage.completion_tokens = IntField(*usage, "completion_tokens");
    if (const json* details =
            ObjectField(*usage, "completion_tokens_details")) {
      answer.usage.reasoning_tokens = IntField(*details, "reasoning_tokens");
    }
    const json* prompt_details = ObjectField(*usage, "prompt_tokens_details");
    if (prompt_details != nullptr &&
        prompt_details->contains("cached_tokens")) {
      answer.usage.cached_tokens = IntField(*prompt_details, "cached_tokens");
    } else {
      answer.usage.cached_tokens = IntField(*usage, "prompt_cache_hit_tokens");
    }
  }
  answer.provider_id = StringField(doc, "id");
  answer.raw_body = std::move(body);
  result.status = absl::OkStatus();
  return result;
}

TeacherResult UnexpectedException(const char* where, const char* what) {
  TeacherResult result;
  result.kind = FailureKind::kRetryable;
  result.status =
      absl::InternalError(absl::StrCat("unexpected error ", where, ": ", what));
  return result;
}

bool MentionsSecret(const absl::StatusOr<HttpResponse>& response,
                    std::string_view secret) {
  if (!response.ok()) {
    return text::Std(response.status().message()).find(secret) !=
           std::string_view::npos;
  }
  if (response->body.find(secret) != std::string::npos) return true;
  for (const auto& [name, value] : response->headers) {
    if (value.find(secret) != std::string::npos) return true;
  }
  return false;
}

absl::StatusOr<HttpResponse> Redacted(
    const absl::StatusOr<HttpResponse>& response, std::string_view secret) {
  if (!response.ok()) {
    return absl::Status(
        response.status().code(),
        RedactSecret(std::string(response.status().message()), secret));
  }
  HttpResponse copy = *response;
  copy.body = RedactSecret(std::move(copy.body), secret);
  for (auto& [name, value] : copy.headers) {
    value = RedactSecret(std::move(value), secret);
  }
  return copy;
}

TeacherResult HandleUnredacted(absl::StatusOr<HttpResponse> response,
                               int64_t now_wall_millis) {
  if (!response.ok()) return ClassifyTransportError(response.status());
  if (response->status < 200 || response->status >= 300) {
    return ClassifyHttpFailure(*response, now_wall_millis);
  }
  TeacherResult result = ParseChatResponse(std::move(response->body));
  result.http_status = response->status;
  ApplyResponseHints(*response, now_wall_millis, &result);
  return result;
}

}  // namespace

absl::Status ValidateOpenAiTeacherOptions(const OpenAiTeacherOptions& options) {
  const std::string_view url = options.base_url;
  const bool http = text::StartsWithIgnoreCase(url, "http://");
  const bool https = text::StartsWithIgnoreCase(url, "https://");
  if ((!http && !https) || url.size() <= (https ? 8u : 7u) ||
      HasControlChar(url) || url.find(' ') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("base_url \"", Printable(url, 200),
                     "\" is not an http:// or https:// URL"));
  }
  if (options.max_tokens_field != kMaxCompletionTokensField &&
      options.max_tokens_field != kMaxTokensField) {
    return absl::InvalidArgumentError(
        "max_tokens_field \"" + Printable(options.max_tokens_field, 100) +
        "\" is neither \"max_completion_tokens\" nor \"max_tokens\"");
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

std::string ChatCompletionsUrl(std::string_view base_url) {
  while (base_url.ends_with('/')) base_url.remove_suffix(1);
  if (base_url.ends_with(kChatCompletionsPath)) return std::string(base_url);
  return std::string(base_url) + std::string(kChatCompletionsPath);
}

absl::StatusOr<std::string> BuildChatRequestBody(
    const TeacherRequest& request, std::string_view max_tokens_field) {
  if (max_tokens_field != kMaxCompletionTokensField &&
      max_tokens_field != kMaxTokensField) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown token limit field \"",
                     Printable(max_tokens_field, 100), "\""));
  }
  const SamplingParams& params = request.params;
  if (params.temperature && !std::isfinite(*params.temperature)) {
    return absl::InvalidArgumentError("temperature is not a finite number");
  }
  if (params.top_p && !std::isfinite(*params.top_p)) {
    return absl::InvalidArgumentError("top_p is not a finite number");
  }
  try {
    // ordered_json keeps the fields in this order, which is easier to read in
    // logs and captures than sorted keys.
    ordered_json body;
    body["model"] = request.model;
    ordered_json messages = ordered_json::array();
    for (const ChatMessage& m : request.messages) {
      messages.push_back({{"role", m.role}, {"content", m.content}});
    }
    body["messages"] = std::move(messages);
    if (params.max_tokens > 0) {
      body[std::string(max_tokens_field)] = params.max_tokens;
    }
    if (params.temperature) body["temperature"] = *params.temperature;
    if (params.top_p) body["top_p"] = *params.top_p;
    if (params.seed) body["seed"] = *params.seed;
    if (!params.stop.empty()) body["stop"] = params.stop;
    // dump() checks UTF-8 and throws type_error 316 on a bad byte.
    return body.dump();
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot encode the request as JSON: ", e.what()));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("cannot build the request: ", e.what()));
  }
}

TeacherResult ParseChatResponse(std::string body) {
  try {
    return ParseChatResponseOrThrow(std::move(body));
  } catch (const std::exception& e) {
    return UnexpectedException("parsing the teacher's answer", e.what());
  }
}

TeacherResult HandleChatResponse(absl::StatusOr<HttpResponse> response,
                                 int64_t now_wall_millis,
                                 std::string_view secret) {
  try {
    if (!secret.empty() && MentionsSecret(response, secret)) {
      // Classify the redacted copy unless the original is a good answer,
      // whose raw_body must stay verbatim.
      absl::StatusOr<HttpResponse> redacted = Redacted(response, secret);
      TeacherResult result =
          HandleUnredacted(std::move(response), now_wall_millis);
      if (result.status.ok()) return result;
      result = HandleUnredacted(std::move(redacted), now_wall_millis);
      // Belt and braces: nothing of ours should have put it back.
      result.status = absl::Status(
          result.status.code(),
          RedactSecret(std::string(result.status.message()), secret));
      return result;
    }
    return HandleUnredacted(std::move(response), now_wall_millis);
  } catch (const std::exception& e) {
    return UnexpectedException("handling the teacher's response", e.what());
  }
}

OpenAiTeacher::OpenAiTeacher(HttpClient& http, Clock& clock,
                             OpenAiTeacherOptions options)
    : http_(http),
      clock_(clock),
      options_(Normalized(std::move(options))),
      options_status_(ValidateOpenAiTeacherOptions(options_)),
      url_(ChatCompletionsUrl(options_.base_url)),
      headers_(BuildHeaders(options_)) {}

OpenAiTeacher::OpenAiTeacher(HttpClient& http, OpenAiTeacherOptions options)
    : OpenAiTeacher(http, RealClock::Get(), std::move(options)) {}

void OpenAiTeacher::Ask(const TeacherRequest& request, Callback done) {
  if (!options_status_.ok()) {
    TeacherResult result;
    result.kind = FailureKind::kTeacherDown;
    result.status = absl::InvalidArgumentError(
        absl::StrCat("OpenAI teacher misconfigured: ",
                     RedactSecret(std::string(options_status_.message()),
                                  options_.api_key)));
    done(std::move(result));
    return;
  }
  absl::StatusOr<std::string> body =
      BuildChatRequestBody(request, options_.max_tokens_field);
  if (!body.ok()) {
    TeacherResult result;
    result.kind = FailureKind::kPermanent;
    result.status = absl::Status(
        body.status().code(),
        RedactSecret(std::string(body.status().message()), options_.api_key));
    done(std::move(result));
    return;
  }
  HttpRequest http_request;
  http_request.method = "POST";
  http_request.url = url_;
  http_request.headers = headers_;
  http_request.body = *std::move(body);
  http_request.connect_timeout = options_.connect_timeout;
  http_request.idle_timeout = options_.idle_timeout;
  http_request.total_timeout = options_.total_timeout;
  http_request.max_response_bytes = options_.max_response_bytes;
  // The callback owns copies of what it needs rather than `this`, so a
  // response is handled the same whatever the teacher's lifetime; only the
  // clock must outlive the call.
  http_.Send(
      std::move(http_request),
      [done = std::move(done), clock = &clock_,
       api_key = options_.api_key](absl::StatusOr<HttpResponse> response) {
        TeacherHeaders limits =
            response.ok() ? RateLimitHeadersOf(response->headers)
                          : TeacherHeaders();
        TeacherResult result = HandleChatResponse(
            std::move(response), clock->WallMillis(), api_key);
        result.rate_limit_headers = std::move(limits);
        done(std::move(result));
      });
}

}  // namespace distillery
