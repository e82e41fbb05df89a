#include "common/teacher/anthropic_messages_format.h"

#include <exception>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/teacher/http_teacher.h"
#include "common/teacher/sse_parser.h"
#include "common/teacher/text_util.h"
#include "common/teacher/wire_format_util.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;
using wire::BadBody;
using wire::ErrorInBody;
using wire::IntField;
using wire::ObjectField;
using wire::StringField;

constexpr std::string_view kMessagesPath = "/v1/messages";

// One content block as assembled from a body or a stream.
struct Block {
  std::string type;
  std::string text;       // text blocks
  std::string thinking;   // thinking blocks
  std::string signature;  // thinking blocks
  std::string data;       // redacted_thinking blocks
  // tool_use blocks: the call's id, the tool's name, and its input as JSON
  // text (whole in a body; in a stream, the input_json_delta pieces).
  std::string id, name, input_json;
};

Block BlockFrom(const json& object) {
  Block b;
  b.type = StringField(object, "type");
  b.text = StringField(object, "text");
  b.thinking = StringField(object, "thinking");
  b.signature = StringField(object, "signature");
  b.data = StringField(object, "data");
  if (b.type == "tool_use") {
    b.id = StringField(object, "id");
    b.name = StringField(object, "name");
    auto input = object.find("input");
    // A stream starts the block with "input": {} and sends the input in
    // pieces: an empty object is left for them to fill.
    if (input != object.end() && !(input->is_object() && input->empty())) {
      b.input_json = input->dump();
    }
  }
  return b;
}

// Fills content, reasoning, reasoning_blocks and tool calls (in OpenAI's
// form: tool_calls_json) from the blocks in order. Blocks of other types
// are not part of a harvested answer.
void FoldBlocks(const std::vector<Block>& blocks, TeacherAnswer* answer) {
  ordered_json kept = ordered_json::array();
  json calls = json::array();
  for (const Block& b : blocks) {
    if (b.type == "tool_use") {
      calls.push_back(
          {{"id", b.id},
           {"type", "function"},
           {"function",
            {{"name", b.name},
             {"arguments", b.input_json.empty() ? "{}" : b.input_json}}}});
    } else if (b.type == "text") {
      answer->content += b.text;
    } else if (b.type == "thinking") {
      if (!answer->reasoning.empty() && !b.thinking.empty()) {
        answer->reasoning += "\n\n";
      }
      answer->reasoning += b.thinking;
      kept.push_back({{"type", "thinking"},
                      {"thinking", b.thinking},
                      {"signature", b.signature}});
    } else if (b.type == "redacted_thinking") {
      kept.push_back({{"type", "redacted_thinking"}, {"data", b.data}});
    }
  }
  if (!kept.empty()) answer->reasoning_blocks = kept.dump();
  if (!calls.empty()) answer->tool_calls_json = calls.dump();
}

// input_tokens excludes cache reads and writes; TokenUsage's prompt_tokens
// counts every prompt token, with cached_tokens a part of it.
void ReadUsage(const json& usage, TokenUsage* out) {
  const int64_t cache_read = IntField(usage, "cache_read_input_tokens");
  out->prompt_tokens = IntField(usage, "input_tokens") + cache_read +
                       IntField(usage, "cache_creation_input_tokens");
  out->cached_tokens = cache_read;
  out->completion_tokens = IntField(usage, "output_tokens");
}

bool IsErrorObject(const json& doc) {
  if (StringField(doc, "type") == "error") return true;
  auto it = doc.find("error");
  return it != doc.end() && !it->is_null();
}

TeacherResult ParseMessagesResponseOrThrow(std::string body) {
  json doc;
  if (std::optional<TeacherResult> bad = wire::ParseJsonObject(body, &doc)) {
    return *std::move(bad);
  }
  if (IsErrorObject(doc)) return ErrorInBody(body, /*in_stream=*/false);
  auto content = doc.find("content");
  if (content == doc.end() || !content->is_array()) {
    return BadBody("no content blocks", body);
  }
  std::vector<Block> blocks;
  for (const json& block : *content) {
    if (!block.is_object())
      return BadBody("a content block is not an object", body);
    blocks.push_back(BlockFrom(block));
  }
  TeacherResult result;
  result.http_status = 200;
  TeacherAnswer& answer = result.answer;
  FoldBlocks(blocks, &answer);
  answer.finish_reason = StringField(doc, "stop_reason");
  if (const json* usage = ObjectField(doc, "usage")) {
    ReadUsage(*usage, &answer.usage);
  }
  answer.provider_id = StringField(doc, "id");
  answer.raw_body = std::move(body);
  result.status = absl::OkStatus();
  return result;
}

TeacherResult ParseMessagesStreamOrThrow(std::string body) {
  const std::vector<SseEvent> events = ParseSseStream(body);
  std::map<int64_t, Block> blocks;  // by index: the order they are shown in
  bool started = false;
  bool stopped = false;
  TeacherResult result;
  result.http_status = 200;
  TeacherAnswer& answer = result.answer;
  for (const SseEvent& event : events) {
    json doc;
    if (std::optional<TeacherResult> bad =
            wire::ParseStreamEvent(event.data, body, &doc)) {
      return *std::move(bad);
    }
    // The data's own "type" is authoritative; the event: line repeats it.
    std::string type = StringField(doc, "type");
    if (type.empty()) type = event.event;
    if (type == "error" || IsErrorObject(doc)) {
      return ErrorInBody(event.data, /*in_stream=*/true);
    }
    if (type == "message_start") {
      started = true;
      if (const json* message = ObjectField(doc, "message")) {
        answer.provider_id = StringField(*message, "id");
        if (const json* usage = ObjectField(*message, "usage")) {
          ReadUsage(*usage, &answer.usage);
        }
      }
    } else if (type == "content_block_start") {
      if (const json* block = ObjectField(doc, "content_block")) {
        blocks[IntField(doc, "index")] = BlockFrom(*block);
      }
    } else if (type == "content_block_delta") {
      const json* delta = ObjectField(doc, "delta");
      if (delta == nullptr) continue;
      Block& block = blocks[IntField(doc, "index")];
      const std::string delta_type = StringField(*delta, "type");
      if (delta_type == "text_delta") {
        if (block.type.empty()) block.type = "text";
        block.text += StringField(*delta, "text");
      } else if (delta_type == "thinking_delta") {
        if (block.type.empty()) block.type = "thinking";
        block.thinking += StringField(*delta, "thinking");
      } else if (delta_type == "signature_delta") {
        if (block.type.empty()) block.type = "thinking";
        block.signature += StringField(*delta, "signature");
      } else if (delta_type == "input_json_delta") {
        if (block.type.empty()) block.type = "tool_use";
        block.input_json += StringField(*delta, "partial_json");
      }
    } else if (type == "message_delta") {
      if (const json* delta = ObjectField(doc, "delta")) {
        std::string stop = StringField(*delta, "stop_reason");
        if (!stop.empty()) answer.finish_reason = std::move(stop);
      }
      if (const json* usage = ObjectField(doc, "usage")) {
        // Cumulative: the last one is the total.
        if (usage->contains("output_tokens")) {
          answer.usage.completion_tokens = IntField(*usage, "output_tokens");
        }
      }
    } else if (type == "message_stop") {
      stopped = true;
      break;
    }
    // ping, content_block_stop and unknown events carry nothing we keep.
  }
  if (!started) return BadBody("a stream without message_start", body);
  if (!stopped) return BadBody("a stream cut off before message_stop", body);
  std::vector<Block> ordered;
  ordered.reserve(blocks.size());
  for (auto& [index, block] : blocks) ordered.push_back(std::move(block));
  FoldBlocks(ordered, &answer);
  answer.raw_body = std::move(body);
  result.status = absl::OkStatus();
  return result;
}

// An assistant turn with tool calls (OpenAI's form) as Anthropic's content
// blocks: its text, then a tool_use block per call, input parsed from the
// call's arguments text (which must be a JSON object).
absl::StatusOr<ordered_json> ToolUseTurn(const ChatMessage& m) {
  ASSIGN_OR_RETURN(ordered_json calls,
                   wire::ParseRequestJson(m.tool_calls_json, "tool_calls"));
  ordered_json content = ordered_json::array();
  if (!m.content.empty()) {
    content.push_back({{"type", "text"}, {"text", m.content}});
  }
  for (const ordered_json& call : calls) {
    const ordered_json function = call.value("function", ordered_json::object());
    ASSIGN_OR_RETURN(
        ordered_json input,
        wire::ParseRequestJson(function.value("arguments", std::string("{}")),
                               "a tool call's arguments"));
    if (!input.is_object()) {
      return absl::InvalidArgumentError(
          "a tool call's arguments must be a JSON object for Anthropic");
    }
    content.push_back({{"type", "tool_use"},
                       {"id", call.value("id", std::string())},
                       {"name", function.value("name", std::string())},
                       {"input", std::move(input)}});
  }
  return ordered_json{{"role", "assistant"}, {"content", std::move(content)}};
}

// The request's tools and tool_choice in Anthropic's form, and a JSON
// schema as a forced tool whose input is the answer.
absl::Status AddTools(const TeacherRequest& request, ordered_json* body) {
  ordered_json tools = ordered_json::array();
  if (!request.tools_json.empty()) {
    ASSIGN_OR_RETURN(ordered_json openai,
                     wire::ParseRequestJson(request.tools_json, "tools"));
    for (const ordered_json& tool : openai) {
      const ordered_json function = tool.value("function", ordered_json::object());
      ordered_json out = {{"name", function.value("name", std::string())}};
      if (function.contains("description")) {
        out["description"] = function["description"];
      }
      out["input_schema"] = function.value(
          "parameters", ordered_json{{"type", "object"}, {"properties", ordered_json::object()}});
      tools.push_back(std::move(out));
    }
  }
  if (!request.tool_choice_json.empty()) {
    ASSIGN_OR_RETURN(ordered_json choice,
                     wire::ParseRequestJson(request.tool_choice_json,
                                            "tool_choice"));
    if (choice == "none") {
      (*body)["tool_choice"] = {{"type", "none"}};
    } else if (choice == "required") {
      (*body)["tool_choice"] = {{"type", "any"}};
    } else if (choice.is_object()) {
      (*body)["tool_choice"] = {
          {"type", "tool"},
          {"name", choice.value("function", ordered_json::object())
                       .value("name", std::string())}};
    } else {
      (*body)["tool_choice"] = {{"type", "auto"}};
    }
  }
  if (!request.json_schema.empty()) {
    ASSIGN_OR_RETURN(ordered_json schema,
                     wire::ParseRequestJson(request.json_schema, "json_schema"));
    const std::string name = request.json_schema_name.empty()
                                 ? std::string("schema")
                                 : request.json_schema_name;
    tools.push_back({{"name", name},
                     {"description",
                      "Give the answer as this tool's input: JSON matching "
                      "its schema."},
                     {"input_schema", std::move(schema)}});
    (*body)["tool_choice"] = {{"type", "tool"}, {"name", name}};
  }
  if (!tools.empty()) (*body)["tools"] = std::move(tools);
  return absl::OkStatus();
}

}  // namespace

std::string MessagesUrl(std::string_view base_url) {
  while (base_url.ends_with('/')) base_url.remove_suffix(1);
  if (base_url.ends_with(kMessagesPath)) return std::string(base_url);
  if (base_url.ends_with("/v1")) return std::string(base_url) + "/messages";
  return std::string(base_url) + std::string(kMessagesPath);
}

absl::StatusOr<std::string> BuildMessagesRequestBody(
    const TeacherRequest& request, const MessagesBodyOptions& options) {
  const SamplingParams& params = request.params;
  if (params.top_logprobs > 0) {
    return absl::InvalidArgumentError(
        "Anthropic's Messages API gives no logprobs");
  }
  if (request.choices > 1) {
    return absl::InvalidArgumentError(
        "Anthropic's Messages API has no n: one choice per request");
  }
  if (absl::Status s = wire::CheckSamplingNumbers(params); !s.ok()) return s;
  const int64_t max_tokens =
      params.max_tokens > 0 ? params.max_tokens : options.default_max_tokens;
  if (options.thinking_budget_tokens > 0 &&
      max_tokens <= options.thinking_budget_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_tokens ", max_tokens,
        " must exceed the teacher's thinking_budget_tokens ",
        options.thinking_budget_tokens, " (max_tokens counts thinking too)"));
  }
  try {
    ordered_json body;
    body["model"] = request.model;
    body["max_tokens"] = max_tokens;
    std::string system;
    ordered_json messages = ordered_json::array();
    for (const ChatMessage& m : request.messages) {
      if (m.role == "system") {
        if (!system.empty()) system += "\n\n";
        system += m.content;
      } else if (m.role == "assistant" && !m.tool_calls_json.empty()) {
        ASSIGN_OR_RETURN(ordered_json turn, ToolUseTurn(m));
        messages.push_back(std::move(turn));
      } else if (m.role == "tool") {
        if (m.tool_call_id.empty()) {
          return absl::InvalidArgumentError(
              "a tool turn needs the tool_call_id it answers");
        }
        // Tool results go back in a user turn; consecutive ones share it.
        ordered_json result = {{"type", "tool_result"},
                               {"tool_use_id", m.tool_call_id},
                               {"content", m.content}};
        if (!messages.empty() && messages.back()["role"] == "user" &&
            messages.back()["content"].is_array()) {
          messages.back()["content"].push_back(std::move(result));
        } else {
          messages.push_back(
              {{"role", "user"},
               {"content", ordered_json::array({std::move(result)})}});
        }
      } else if (m.role == "user" || m.role == "assistant") {
        messages.push_back({{"role", m.role}, {"content", m.content}});
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("role \"", text::Printable(m.role, 50),
                         "\" has no place in an Anthropic request"));
      }
    }
    if (messages.empty()) {
      return absl::InvalidArgumentError(
          "an Anthropic request needs a user message besides the system "
          "prompt");
    }
    if (!system.empty()) body["system"] = system;
    body["messages"] = std::move(messages);
    if (params.temperature) body["temperature"] = *params.temperature;
    if (params.top_p) body["top_p"] = *params.top_p;
    if (!params.stop.empty()) body["stop_sequences"] = params.stop;
    if (options.thinking_budget_tokens > 0) {
      body["thinking"] = {{"type", "enabled"},
                          {"budget_tokens", options.thinking_budget_tokens}};
    }
    RETURN_IF_ERROR(AddTools(request, &body));
    if (options.stream) body["stream"] = true;
    return body.dump();
  } catch (const std::exception& e) {
    return wire::RequestBodyError(e);
  }
}

TeacherResult ParseMessagesResponse(std::string body) {
  return wire::ParseCatching(&ParseMessagesResponseOrThrow, std::move(body),
                             "parsing the teacher's answer");
}

TeacherResult ParseMessagesStream(std::string body) {
  return wire::ParseCatching(&ParseMessagesStreamOrThrow, std::move(body),
                             "parsing the teacher's stream");
}

TeacherResult HandleMessagesResponse(absl::StatusOr<HttpResponse> response,
                                     int64_t now_wall_millis,
                                     std::string_view secret, bool stream) {
  static const AnthropicMessagesFormat* const kPlain =
      new AnthropicMessagesFormat();
  static const AnthropicMessagesFormat* const kStream =
      new AnthropicMessagesFormat(
          AnthropicMessagesOptions{.body = {.stream = true}});
  return HandleTeacherResponse(stream ? *kStream : *kPlain, std::move(response),
                               now_wall_millis, secret);
}

AnthropicMessagesFormat::AnthropicMessagesFormat(
    AnthropicMessagesOptions options)
    : options_(std::move(options)) {}

absl::Status AnthropicMessagesFormat::Validate() const {
  if (options_.anthropic_version.empty() ||
      text::HasControlChar(options_.anthropic_version)) {
    return absl::InvalidArgumentError(
        "anthropic_version must be a version string such as 2023-06-01");
  }
  const MessagesBodyOptions& body = options_.body;
  if (body.default_max_tokens < 1) {
    return absl::InvalidArgumentError("default_max_tokens must be at least 1");
  }
  if (body.thinking_budget_tokens != 0 &&
      body.thinking_budget_tokens < kMinThinkingBudgetTokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("thinking_budget_tokens must be 0 (off) or at least ",
                     kMinThinkingBudgetTokens));
  }
  if (body.thinking_budget_tokens > 0 &&
      body.thinking_budget_tokens >= body.default_max_tokens) {
    return absl::InvalidArgumentError(
        "thinking_budget_tokens must be below default_max_tokens");
  }
  return absl::OkStatus();
}

std::string AnthropicMessagesFormat::Url(std::string_view base_url) const {
  return MessagesUrl(base_url);
}

HttpHeaders AnthropicMessagesFormat::Headers(std::string_view api_key) const {
  HttpHeaders own = {{"Content-Type", "application/json"},
                     {"anthropic-version", options_.anthropic_version}};
  if (options_.body.stream) own.emplace_back("Accept", "text/event-stream");
  if (!api_key.empty()) own.emplace_back("x-api-key", std::string(api_key));
  return own;
}

absl::StatusOr<std::string> AnthropicMessagesFormat::BuildBody(
    const TeacherRequest& request) const {
  return BuildMessagesRequestBody(request, options_.body);
}

TeacherResult AnthropicMessagesFormat::ParseBody(std::string body) const {
  return options_.body.stream ? ParseMessagesStream(std::move(body))
                              : ParseMessagesResponse(std::move(body));
}

}  // namespace distillery
