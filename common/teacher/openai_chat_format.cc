#include "common/teacher/openai_chat_format.h"

#include <exception>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/json_string.h"
#include "common/base/status_macros.h"
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

// choices[].logprobs.content: [{"token","logprob","top_logprobs":[...]}].
// False for a shape that is not that.
bool ReadLogprobs(const json& logprobs, std::vector<TokenLogprob>* out) {
  if (logprobs.is_null()) return true;
  if (!logprobs.is_object()) return false;
  auto content = logprobs.find("content");
  if (content == logprobs.end() || content->is_null()) return true;
  if (!content->is_array()) return false;
  for (const json& entry : *content) {
    if (!entry.is_object()) return false;
    auto token = entry.find("token");
    auto logprob = entry.find("logprob");
    if (token == entry.end() || !token->is_string() ||
        logprob == entry.end() || !logprob->is_number()) {
      return false;
    }
    TokenLogprob& t = out->emplace_back();
    t.token = token->get<std::string>();
    t.logprob = logprob->get<double>();
    auto top = entry.find("top_logprobs");
    if (top == entry.end() || top->is_null()) continue;
    if (!top->is_array()) return false;
    for (const json& alt : *top) {
      if (!alt.is_object() || !alt.contains("token") ||
          !alt["token"].is_string() || !alt.contains("logprob") ||
          !alt["logprob"].is_number()) {
        return false;
      }
      t.top.emplace_back(alt["token"].get<std::string>(),
                         alt["logprob"].get<double>());
    }
  }
  return true;
}

// message.tool_calls as stored: compact JSON of the array, each call with
// id, type and function {name, arguments (text)}. False for another shape.
bool ReadToolCalls(const json& calls, std::string* out) {
  if (calls.is_null()) return true;
  if (!calls.is_array()) return false;
  if (calls.empty()) return true;
  json kept = json::array();
  for (const json& call : calls) {
    if (!call.is_object()) return false;
    const json* function = ObjectField(call, "function");
    if (function == nullptr) return false;
    json arguments = function->value("arguments", json(""));
    // Some servers send the arguments as an object, not as text.
    if (!arguments.is_string()) arguments = arguments.dump();
    kept.push_back({{"id", StringField(call, "id")},
                    {"type", "function"},
                    {"function",
                     {{"name", StringField(*function, "name")},
                      {"arguments", std::move(arguments)}}}});
  }
  *out = kept.dump();
  return true;
}

// One choice of a plain chat.completion: content, reasoning, tool calls,
// finish reason and logprobs. A BadBody result when it is not usable.
std::optional<TeacherResult> ReadChoice(const json& choice,
                                        const std::string& body,
                                        TeacherAnswer* answer) {
  const json* message = ObjectField(choice, "message");
  if (message == nullptr) return BadBody("a choice has no message", body);
  if (!ReadContent(*message, &answer->content)) {
    return BadBody("message.content is neither text nor parts", body);
  }
  // vLLM renamed reasoning_content to reasoning; DeepSeek and llama.cpp still
  // use reasoning_content. Read the new name first.
  answer->reasoning = StringField(*message, "reasoning");
  if (answer->reasoning.empty()) {
    answer->reasoning = StringField(*message, "reasoning_content");
  }
  if (answer->reasoning.empty()) {
    SplitInlineThink(&answer->content, &answer->reasoning);
  }
  if (auto calls = message->find("tool_calls");
      calls != message->end() &&
      !ReadToolCalls(*calls, &answer->tool_calls_json)) {
    return BadBody("message.tool_calls is not a list of calls", body);
  }
  answer->finish_reason = StringField(choice, "finish_reason");
  if (auto logprobs = choice.find("logprobs");
      logprobs != choice.end() && !ReadLogprobs(*logprobs, &answer->logprobs)) {
    return BadBody("choice.logprobs is not a list of token logprobs", body);
  }
  return std::nullopt;
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
  // Choices in index order (a request with n > 1 has several); one
  // without an index is taken where it stands.
  std::vector<const json*> ordered(choices->size(), nullptr);
  for (size_t i = 0; i < choices->size(); ++i) {
    const json& choice = (*choices)[i];
    if (!choice.is_object()) return BadBody("a choice is not an object", body);
    int64_t index = choice.contains("index") ? IntField(choice, "index")
                                             : static_cast<int64_t>(i);
    if (index < 0 || index >= static_cast<int64_t>(ordered.size()) ||
        ordered[index] != nullptr) {
      return BadBody("choices have bad or repeated indexes", body);
    }
    ordered[index] = &choice;
  }
  TeacherResult result;
  result.http_status = 200;
  for (size_t i = 0; i < ordered.size(); ++i) {
    TeacherAnswer one;
    if (std::optional<TeacherResult> bad = ReadChoice(*ordered[i], body, &one)) {
      return *std::move(bad);
    }
    if (i == 0) {
      result.answer = std::move(one);
    } else {
      result.more_choices.push_back(std::move(one));
    }
  }
  TeacherAnswer& answer = result.answer;
  if (const json* usage = ObjectField(doc, "usage")) {
    ReadUsage(*usage, &answer.usage);
  }
  answer.provider_id = StringField(doc, "id");
  for (TeacherAnswer& more : result.more_choices) {
    more.provider_id = answer.provider_id;
  }
  answer.raw_body = std::move(body);
  result.status = absl::OkStatus();
  return result;
}

// One choice of a stream, as its chunks add up.
struct StreamChoice {
  bool seen = false;
  std::string content, reasoning, reasoning_content, finish_reason;
  json tool_calls = json::array();  // assembled from the deltas, by index
  std::vector<TokenLogprob> logprobs;
};

// A chunk's delta.tool_calls: the first piece of a call carries its index,
// id and name, later ones more of its arguments text.
bool FoldToolCallDeltas(const json& deltas, json* calls) {
  if (deltas.is_null()) return true;
  if (!deltas.is_array()) return false;
  for (const json& d : deltas) {
    if (!d.is_object()) return false;
    const int64_t index =
        d.contains("index") ? IntField(d, "index") : calls->size();
    if (index < 0 || index > static_cast<int64_t>(calls->size()) ||
        index > 1024) {
      return false;
    }
    if (index == static_cast<int64_t>(calls->size())) {
      calls->push_back({{"id", ""},
                        {"type", "function"},
                        {"function", {{"name", ""}, {"arguments", ""}}}});
    }
    json& call = (*calls)[index];
    if (std::string id = StringField(d, "id"); !id.empty()) call["id"] = id;
    if (const json* function = ObjectField(d, "function")) {
      call["function"]["name"] =
          call["function"]["name"].get<std::string>() +
          StringField(*function, "name");
      auto arguments = function->find("arguments");
      if (arguments != function->end() && arguments->is_string()) {
        call["function"]["arguments"] =
            call["function"]["arguments"].get<std::string>() +
            arguments->get<std::string>();
      }
    }
  }
  return true;
}

// One chunk's choice folded into its StreamChoice. False for a shape that
// cannot be read.
bool FoldChunkChoice(const json& choice, StreamChoice* out) {
  out->seen = true;
  if (const json* delta = ObjectField(choice, "delta")) {
    if (auto it = delta->find("content"); it != delta->end()) {
      if (it->is_string()) {
        out->content += it->get<std::string>();
      } else if (it->is_array()) {
        std::string parts;
        ReadContent(*delta, &parts);
        out->content += parts;
      }
    }
    out->reasoning += StringField(*delta, "reasoning");
    out->reasoning_content += StringField(*delta, "reasoning_content");
    if (auto it = delta->find("tool_calls");
        it != delta->end() && !FoldToolCallDeltas(*it, &out->tool_calls)) {
      return false;
    }
  }
  if (auto it = choice.find("logprobs");
      it != choice.end() && !ReadLogprobs(*it, &out->logprobs)) {
    return false;
  }
  std::string finish = StringField(choice, "finish_reason");
  if (!finish.empty()) out->finish_reason = std::move(finish);
  return true;
}

TeacherAnswer StreamChoiceAnswer(StreamChoice choice) {
  TeacherAnswer answer;
  answer.content = std::move(choice.content);
  answer.reasoning = !choice.reasoning.empty()
                         ? std::move(choice.reasoning)
                         : std::move(choice.reasoning_content);
  if (answer.reasoning.empty()) {
    SplitInlineThink(&answer.content, &answer.reasoning);
  }
  answer.finish_reason = std::move(choice.finish_reason);
  if (!choice.tool_calls.empty()) {
    answer.tool_calls_json = choice.tool_calls.dump();
  }
  answer.logprobs = std::move(choice.logprobs);
  return answer;
}

// At most this many choices are assembled from one stream.
constexpr int64_t kMaxStreamChoices = 128;

TeacherResult ParseChatStreamOrThrow(std::string body) {
  bool truncated = false;
  const std::vector<SseEvent> events = ParseSseStream(body, &truncated);
  bool done = false;
  std::vector<StreamChoice> choices;
  std::string id;
  TokenUsage usage;
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
    if (id.empty()) id = StringField(chunk, "id");
    if (auto list = chunk.find("choices");
        list != chunk.end() && list->is_array()) {
      for (const json& choice : *list) {
        if (!choice.is_object()) continue;
        const int64_t index = IntField(choice, "index");
        if (index < 0 || index >= kMaxStreamChoices) continue;
        if (index >= static_cast<int64_t>(choices.size())) {
          choices.resize(index + 1);
        }
        if (!FoldChunkChoice(choice, &choices[index])) {
          return BadBody("a stream chunk's choice cannot be read", body);
        }
      }
    }
    if (const json* u = ObjectField(chunk, "usage")) ReadUsage(*u, &usage);
  }
  if (choices.empty() || !choices[0].seen) {
    return BadBody("a stream without a choice", body);
  }
  for (const StreamChoice& c : choices) {
    if (!c.seen) return BadBody("a stream skipped a choice index", body);
  }
  if (!done && choices[0].finish_reason.empty()) {
    return BadBody("a stream cut off before its end", body);
  }
  TeacherResult result;
  result.http_status = 200;
  for (size_t i = 0; i < choices.size(); ++i) {
    TeacherAnswer answer = StreamChoiceAnswer(std::move(choices[i]));
    answer.provider_id = id;
    if (i == 0) {
      result.answer = std::move(answer);
    } else {
      result.more_choices.push_back(std::move(answer));
    }
  }
  result.answer.usage = usage;
  result.answer.raw_body = std::move(body);
  result.status = absl::OkStatus();
  return result;
}

// The body of a plain request written straight into a string: the same
// bytes as the tree's dump() (a test compares the two on edge cases and
// random requests), without building a tree of small allocations for it.
// Plain: no message carries tool calls, and the request has no tools, tool
// choice, schema or response format (they bring JSON of their own to parse
// and embed), and every string is valid UTF-8 (the tree refuses the others
// with its own error). nullopt for any other request: the tree builds it.
std::optional<std::string> WritePlainChatBody(const TeacherRequest& request,
                                              const ChatBodyOptions& options) {
  if (!request.tools_json.empty() || !request.tool_choice_json.empty() ||
      !request.json_schema.empty() || !options.response_format_json.empty() ||
      !IsValidUtf8(request.model)) {
    return std::nullopt;
  }
  size_t text_bytes = request.model.size();
  for (const ChatMessage& m : request.messages) {
    if (!m.tool_calls_json.empty() || !IsValidUtf8(m.role) ||
        !IsValidUtf8(m.content) || !IsValidUtf8(m.tool_call_id)) {
      return std::nullopt;
    }
    text_bytes += m.role.size() + m.content.size() + m.tool_call_id.size();
  }
  const SamplingParams& params = request.params;
  for (const std::string& stop : params.stop) {
    if (!IsValidUtf8(stop)) return std::nullopt;
  }
  std::string out;
  out.reserve(text_bytes + 64 * request.messages.size() + 256);
  // Numbers as the tree writes them (doubles in its shortest round-trip
  // form).
  const auto number = [&out](const ordered_json& value) {
    out += value.dump();
  };
  out += "{\"model\":";
  AppendJsonString(request.model, &out);
  out += ",\"messages\":[";
  for (size_t i = 0; i < request.messages.size(); ++i) {
    const ChatMessage& m = request.messages[i];
    if (i > 0) out.push_back(',');
    out += "{\"role\":";
    AppendJsonString(m.role, &out);
    out += ",\"content\":";
    AppendJsonString(m.content, &out);
    if (!m.tool_call_id.empty()) {
      out += ",\"tool_call_id\":";
      AppendJsonString(m.tool_call_id, &out);
    }
    out.push_back('}');
  }
  out.push_back(']');
  if (request.choices > 1) {
    out += ",\"n\":";
    out += std::to_string(request.choices);
  }
  const int64_t max_tokens =
      params.max_tokens > 0 ? params.max_tokens : options.default_max_tokens;
  if (max_tokens > 0) {
    out += ",";
    AppendJsonString(options.max_tokens_field, &out);
    out += ":";
    out += std::to_string(max_tokens);
  }
  if (params.temperature) {
    out += ",\"temperature\":";
    number(*params.temperature);
  }
  if (params.top_p) {
    out += ",\"top_p\":";
    number(*params.top_p);
  }
  if (params.seed) {
    out += ",\"seed\":";
    out += std::to_string(*params.seed);
  }
  if (!params.stop.empty()) {
    out += ",\"stop\":[";
    for (size_t i = 0; i < params.stop.size(); ++i) {
      if (i > 0) out.push_back(',');
      AppendJsonString(params.stop[i], &out);
    }
    out.push_back(']');
  }
  if (params.top_logprobs > 0) {
    out += ",\"logprobs\":true,\"top_logprobs\":";
    out += std::to_string(params.top_logprobs);
  }
  if (options.stream) {
    out += ",\"stream\":true,\"stream_options\":{\"include_usage\":true}";
  }
  out.push_back('}');
  return out;
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
  if (std::optional<std::string> body = WritePlainChatBody(request, options)) {
    return *std::move(body);
  }
  return internal::BuildChatRequestBodyWithTree(request, options);
}

namespace internal {

absl::StatusOr<std::string> BuildChatRequestBodyWithTree(
    const TeacherRequest& request, const ChatBodyOptions& options) {
  const std::string_view max_tokens_field = options.max_tokens_field;
  const SamplingParams& params = request.params;
  try {
    // ordered_json keeps the fields in this order, which is easier to read in
    // logs and captures than sorted keys.
    ordered_json body;
    body["model"] = request.model;
    ordered_json messages = ordered_json::array();
    for (const ChatMessage& m : request.messages) {
      ordered_json message = {{"role", m.role}};
      if (!m.tool_calls_json.empty()) {
        ASSIGN_OR_RETURN(ordered_json calls,
                         wire::ParseRequestJson(m.tool_calls_json, "tool_calls"));
        message["content"] = m.content.empty() ? ordered_json(nullptr)
                                               : ordered_json(m.content);
        message["tool_calls"] = std::move(calls);
      } else {
        message["content"] = m.content;
      }
      if (!m.tool_call_id.empty()) message["tool_call_id"] = m.tool_call_id;
      messages.push_back(std::move(message));
    }
    body["messages"] = std::move(messages);
    if (request.choices > 1) body["n"] = request.choices;
    const int64_t max_tokens =
        params.max_tokens > 0 ? params.max_tokens : options.default_max_tokens;
    if (max_tokens > 0) body[std::string(max_tokens_field)] = max_tokens;
    if (params.temperature) body["temperature"] = *params.temperature;
    if (params.top_p) body["top_p"] = *params.top_p;
    if (params.seed) body["seed"] = *params.seed;
    if (!params.stop.empty()) body["stop"] = params.stop;
    if (params.top_logprobs > 0) {
      body["logprobs"] = true;
      body["top_logprobs"] = params.top_logprobs;
    }
    if (!request.tools_json.empty()) {
      ASSIGN_OR_RETURN(body["tools"],
                       wire::ParseRequestJson(request.tools_json, "tools"));
    }
    if (!request.tool_choice_json.empty()) {
      ASSIGN_OR_RETURN(body["tool_choice"],
                       wire::ParseRequestJson(request.tool_choice_json,
                                              "tool_choice"));
    }
    if (!request.json_schema.empty()) {
      // The job's schema wins over a profile's response_format.
      ASSIGN_OR_RETURN(ordered_json schema,
                       wire::ParseRequestJson(request.json_schema, "json_schema"));
      const bool strict = wire::StrictSchemaCompatible(schema);
      body["response_format"] = {
          {"type", "json_schema"},
          {"json_schema",
           {{"name", request.json_schema_name.empty() ? std::string("schema")
                                                      : request.json_schema_name},
            {"schema", std::move(schema)},
            {"strict", strict}}}};
    } else if (!options.response_format_json.empty()) {
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

}  // namespace internal

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
