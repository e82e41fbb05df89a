#include "common/teacher/openai_chat_format.h"

#include <exception>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/teacher/chat_completion_scan.h"
#include "common/teacher/http_teacher.h"
#include "common/teacher/sse_parser.h"
#include "common/teacher/text_util.h"
#include "common/teacher/wire_format_util.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;
using text::Printable;
using wire::BadBody;
using wire::IntField;
using wire::ObjectField;
using wire::StringField;

constexpr std::string_view kChatCompletionsPath = "/chat/completions";

// usage as OpenAI reports it, with DeepSeek's prompt_cache_hit_tokens when
// there are no prompt_tokens_details.
void ReadUsage(const json& usage, TokenUsage* out) {
  out->prompt_tokens = IntField(usage, "prompt_tokens");
  out->completion_tokens = IntField(usage, "completion_tokens");
  if (const json* details = ObjectField(usage, "completion_tokens_details")) {
    out->reasoning_tokens = IntField(*details, "reasoning_tokens");
  }
  const json* prompt_details = ObjectField(usage, "prompt_tokens_details");
  if (prompt_details != nullptr && prompt_details->contains("cached_tokens")) {
    out->cached_tokens = IntField(*prompt_details, "cached_tokens");
  } else {
    out->cached_tokens = IntField(usage, "prompt_cache_hit_tokens");
  }
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

// The answer from the fields of a plain chat.completion (ScanChatCompletion
// read them; the same reading as the nlohmann path below).
TeacherResult AnswerFromFields(ChatCompletionFields fields, std::string body) {
  TeacherResult result;
  result.http_status = 200;
  TeacherAnswer& answer = result.answer;
  answer.content = std::move(fields.content);
  answer.reasoning = std::move(fields.reasoning);
  if (answer.reasoning.empty()) {
    answer.reasoning = std::move(fields.reasoning_content);
  }
  if (answer.reasoning.empty()) {
    SplitInlineThink(&answer.content, &answer.reasoning);
  }
  answer.finish_reason = std::move(fields.finish_reason);
  if (fields.has_usage) {
    answer.usage.prompt_tokens = fields.prompt_tokens;
    answer.usage.completion_tokens = fields.completion_tokens;
    answer.usage.reasoning_tokens = fields.reasoning_tokens;
    answer.usage.cached_tokens = fields.cached_tokens;
  }
  answer.provider_id = std::move(fields.id);
  answer.raw_body = std::move(body);
  result.status = absl::OkStatus();
  return result;
}

TeacherResult ParseChatResponseOrThrow(std::string body) {
  // Almost every answer is a plain chat.completion: read it without
  // building a document (see chat_completion_scan.h). Anything else, errors
  // and garbled bodies included, takes the nlohmann path.
  if (std::optional<ChatCompletionFields> fields = ScanChatCompletion(body)) {
    return AnswerFromFields(*std::move(fields), std::move(body));
  }
  json doc;
  if (std::optional<TeacherResult> bad = wire::ParseJsonObject(body, &doc)) {
    return *std::move(bad);
  }
  if (auto it = doc.find("error"); (it != doc.end() && !it->is_null()) ||
                                   StringField(doc, "object") == "error") {
    return wire::ErrorInBody(body, /*in_stream=*/false);
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
    ReadUsage(*usage, &answer.usage);
  }
  answer.provider_id = StringField(doc, "id");
  answer.raw_body = std::move(body);
  result.status = absl::OkStatus();
  return result;
}

// One chunk's choices[0] (the one with index 0) folded into the answer.
void FoldChunkChoice(const json& choice, std::string* content,
                     std::string* reasoning, std::string* reasoning_content,
                     std::string* finish_reason) {
  if (const json* delta = ObjectField(choice, "delta")) {
    if (auto it = delta->find("content"); it != delta->end()) {
      if (it->is_string()) {
        *content += it->get<std::string>();
      } else if (it->is_array()) {
        std::string parts;
        ReadContent(*delta, &parts);
        *content += parts;
      }
    }
    *reasoning += StringField(*delta, "reasoning");
    *reasoning_content += StringField(*delta, "reasoning_content");
  }
  std::string finish = StringField(choice, "finish_reason");
  if (!finish.empty()) *finish_reason = std::move(finish);
}

TeacherResult ParseChatStreamOrThrow(std::string body) {
  bool truncated = false;
  const std::vector<SseEvent> events = ParseSseStream(body, &truncated);
  bool done = false;
  bool any_choice = false;
  std::string content, reasoning, reasoning_content;
  TeacherResult result;
  result.http_status = 200;
  TeacherAnswer& answer = result.answer;
  for (const SseEvent& event : events) {
    if (text::StripWhitespace(event.data) == "[DONE]") {
      done = true;
      break;
    }
    json chunk;
    if (std::optional<TeacherResult> bad =
            wire::ParseStreamEvent(event.data, body, &chunk)) {
      return *std::move(bad);
    }
    if (auto it = chunk.find("error"); it != chunk.end() && !it->is_null()) {
      return wire::ErrorInBody(event.data, /*in_stream=*/true);
    }
    if (answer.provider_id.empty())
      answer.provider_id = StringField(chunk, "id");
    if (auto choices = chunk.find("choices");
        choices != chunk.end() && choices->is_array()) {
      for (const json& choice : *choices) {
        if (!choice.is_object() || IntField(choice, "index") != 0) continue;
        any_choice = true;
        FoldChunkChoice(choice, &content, &reasoning, &reasoning_content,
                        &answer.finish_reason);
      }
    }
    if (const json* usage = ObjectField(chunk, "usage")) {
      ReadUsage(*usage, &answer.usage);
    }
  }
  if (!any_choice) return BadBody("a stream without a choice", body);
  if (!done && answer.finish_reason.empty()) {
    return BadBody("a stream cut off before its end", body);
  }
  answer.content = std::move(content);
  answer.reasoning =
      !reasoning.empty() ? std::move(reasoning) : std::move(reasoning_content);
  if (answer.reasoning.empty()) {
    SplitInlineThink(&answer.content, &answer.reasoning);
  }
  answer.raw_body = std::move(body);
  result.status = absl::OkStatus();
  return result;
}

}  // namespace

std::string ChatCompletionsUrl(std::string_view base_url) {
  while (base_url.ends_with('/')) base_url.remove_suffix(1);
  if (base_url.ends_with(kChatCompletionsPath)) return std::string(base_url);
  return std::string(base_url) + std::string(kChatCompletionsPath);
}

absl::StatusOr<std::string> BuildChatRequestBody(
    const TeacherRequest& request, std::string_view max_tokens_field) {
  ChatBodyOptions options;
  options.max_tokens_field = std::string(max_tokens_field);
  return BuildChatRequestBody(request, options);
}

absl::StatusOr<std::string> BuildChatRequestBody(
    const TeacherRequest& request, const ChatBodyOptions& options) {
  const std::string_view max_tokens_field = options.max_tokens_field;
  if (max_tokens_field != kMaxCompletionTokensField &&
      max_tokens_field != kMaxTokensField) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown token limit field \"",
                     Printable(max_tokens_field, 100), "\""));
  }
  const SamplingParams& params = request.params;
  if (absl::Status s = wire::CheckSamplingNumbers(params); !s.ok()) return s;
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
    const int64_t max_tokens =
        params.max_tokens > 0 ? params.max_tokens : options.default_max_tokens;
    if (max_tokens > 0) body[std::string(max_tokens_field)] = max_tokens;
    if (params.temperature) body["temperature"] = *params.temperature;
    if (params.top_p) body["top_p"] = *params.top_p;
    if (params.seed) body["seed"] = *params.seed;
    if (!params.stop.empty()) body["stop"] = params.stop;
    if (!options.response_format_json.empty()) {
      ordered_json format =
          ordered_json::parse(options.response_format_json, nullptr, false);
      if (format.is_discarded() || !format.is_object()) {
        return absl::InvalidArgumentError(
            "response_format is not a JSON object");
      }
      body["response_format"] = std::move(format);
    }
    if (options.stream) {
      body["stream"] = true;
      body["stream_options"] = {{"include_usage", true}};
    }
    // dump() checks UTF-8 and throws type_error 316 on a bad byte.
    return body.dump();
  } catch (const std::exception& e) {
    return wire::RequestBodyError(e);
  }
}

TeacherResult ParseChatResponse(std::string body) {
  return wire::ParseCatching(&ParseChatResponseOrThrow, std::move(body),
                             "parsing the teacher's answer");
}

TeacherResult ParseChatStream(std::string body) {
  return wire::ParseCatching(&ParseChatStreamOrThrow, std::move(body),
                             "parsing the teacher's stream");
}

TeacherResult HandleChatResponse(absl::StatusOr<HttpResponse> response,
                                 int64_t now_wall_millis,
                                 std::string_view secret, bool stream) {
  static const OpenAiChatFormat* const kPlain = new OpenAiChatFormat();
  static const OpenAiChatFormat* const kStream =
      new OpenAiChatFormat(ChatBodyOptions{.stream = true});
  return HandleTeacherResponse(stream ? *kStream : *kPlain, std::move(response),
                               now_wall_millis, secret);
}

OpenAiChatFormat::OpenAiChatFormat(ChatBodyOptions options)
    : options_(std::move(options)) {}

absl::Status OpenAiChatFormat::Validate() const {
  if (options_.max_tokens_field != kMaxCompletionTokensField &&
      options_.max_tokens_field != kMaxTokensField) {
    return absl::InvalidArgumentError(
        "max_tokens_field \"" + Printable(options_.max_tokens_field, 100) +
        "\" is neither \"max_completion_tokens\" nor \"max_tokens\"");
  }
  if (!options_.response_format_json.empty()) {
    json format = json::parse(options_.response_format_json, nullptr, false);
    if (format.is_discarded() || !format.is_object()) {
      return absl::InvalidArgumentError("response_format is not a JSON object");
    }
  }
  return absl::OkStatus();
}

std::string OpenAiChatFormat::Url(std::string_view base_url) const {
  return ChatCompletionsUrl(base_url);
}

HttpHeaders OpenAiChatFormat::Headers(std::string_view api_key) const {
  HttpHeaders own = {{"Content-Type", "application/json"}};
  if (options_.stream) own.emplace_back("Accept", "text/event-stream");
  if (!api_key.empty()) {
    own.emplace_back("Authorization",
                     absl::StrCat("Bearer ", text::Absl(api_key)));
  }
  return own;
}

absl::StatusOr<std::string> OpenAiChatFormat::BuildBody(
    const TeacherRequest& request) const {
  return BuildChatRequestBody(request, options_);
}

TeacherResult OpenAiChatFormat::ParseBody(std::string body) const {
  return options_.stream ? ParseChatStream(std::move(body))
                         : ParseChatResponse(std::move(body));
}

}  // namespace distillery
