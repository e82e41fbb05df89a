#include "services/teacher_sim/messages_request.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace distillery::teacher_sim {
namespace {

using Json = nlohmann::json;

constexpr int64_t kMinThinkingBudget = 1024;

absl::Status Bad(std::string* message, std::string text) {
  *message = std::move(text);
  return absl::InvalidArgumentError(*message);
}

// A string, or a list of text blocks joined with "\n".
bool ReadText(const Json& value, std::string* out) {
  if (value.is_string()) {
    *out = value.get<std::string>();
    return true;
  }
  if (!value.is_array()) return false;
  std::string text;
  for (size_t i = 0; i < value.size(); ++i) {
    const Json& block = value[i];
    if (!block.is_object()) return false;
    auto type = block.find("type");
    auto block_text = block.find("text");
    if (type == block.end() || *type != "text" || block_text == block.end() ||
        !block_text->is_string()) {
      return false;
    }
    if (i > 0) text.push_back('\n');
    text += block_text->get<std::string>();
  }
  *out = std::move(text);
  return true;
}

// The text of a tool_result block's content: a string, text blocks, or
// nothing.
bool ReadToolResult(const Json& block, std::string* out) {
  auto content = block.find("content");
  if (content == block.end() || content->is_null()) {
    out->clear();
    return true;
  }
  return ReadText(*content, out);
}

// A message's content: a string, or blocks of text, tool_use (an earlier
// call, kept out of the text) and tool_result (its content, as text). When
// the content holds a tool_result, *tool_result is its text (the last's).
bool ReadContent(const Json& value, std::string* out, bool* has_tool_result,
                 std::string* tool_result) {
  *has_tool_result = false;
  if (!value.is_array()) return ReadText(value, out);
  std::string text;
  for (const Json& block : value) {
    if (!block.is_object()) return false;
    auto type = block.find("type");
    if (type == block.end() || !type->is_string()) return false;
    std::string piece;
    if (*type == "text") {
      auto t = block.find("text");
      if (t == block.end() || !t->is_string()) return false;
      piece = t->get<std::string>();
    } else if (*type == "tool_result") {
      if (!ReadToolResult(block, &piece)) return false;
      *has_tool_result = true;
      *tool_result = piece;
    } else if (*type != "tool_use") {
      return false;
    }
    if (piece.empty()) continue;
    if (!text.empty()) text.push_back('\n');
    text += piece;
  }
  *out = std::move(text);
  return true;
}

// tools: [{"name","description","input_schema"}].
absl::Status ParseTools(const Json& body, std::vector<SimTool>* tools,
                        std::string* message) {
  tools->clear();
  auto it = body.find("tools");
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) return Bad(message, "tools: Input should be a list");
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& tool = (*it)[i];
    const std::string where = absl::StrCat("tools.", i);
    if (!tool.is_object()) {
      return Bad(message, where + ": Input should be an object");
    }
    auto name = tool.find("name");
    if (name == tool.end() || !name->is_string() ||
        name->get<std::string>().empty()) {
      return Bad(message, where + ".name: Field required");
    }
    SimTool t;
    t.name = name->get<std::string>();
    if (auto d = tool.find("description");
        d != tool.end() && d->is_string()) {
      t.description = d->get<std::string>();
    }
    if (auto schema = tool.find("input_schema");
        schema != tool.end() && !schema->is_null()) {
      if (!schema->is_object()) {
        return Bad(message, where + ".input_schema: Input should be an object");
      }
      t.parameters = schema->dump();
    }
    tools->push_back(std::move(t));
  }
  return absl::OkStatus();
}

// tool_choice: {"type":"auto"|"any"|"none"} or {"type":"tool","name"}; a
// forced tool is how clients ask Anthropic for structured output.
absl::Status ParseToolChoice(const Json& body, ChatRequest* request,
                             std::string* message) {
  request->text_before_tool_call = true;
  auto it = body.find("tool_choice");
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) {
    return Bad(message, "tool_choice: Input should be an object");
  }
  auto type = it->find("type");
  if (type == it->end() || !type->is_string()) {
    return Bad(message, "tool_choice.type: Field required");
  }
  if (*type == "auto") return absl::OkStatus();
  request->text_before_tool_call = false;
  if (*type == "none") {
    request->tool_choice = ToolChoice::kNone;
  } else if (*type == "any") {
    request->tool_choice = ToolChoice::kRequired;
  } else if (*type == "tool") {
    auto name = it->find("name");
    if (name == it->end() || !name->is_string()) {
      return Bad(message, "tool_choice.tool.name: Field required");
    }
    request->tool_choice = ToolChoice::kNamed;
    request->tool_name = name->get<std::string>();
  } else {
    return Bad(message,
               "tool_choice.type: Input should be 'auto', 'any', 'tool' or "
               "'none'");
  }
  if (request->tools.empty() && request->tool_choice != ToolChoice::kNone) {
    return Bad(message,
               "tool_choice: tool_choice may only be specified while "
               "providing tools");
  }
  if (request->tool_choice == ToolChoice::kNamed) {
    const bool known = std::any_of(
        request->tools.begin(), request->tools.end(),
        [&](const SimTool& t) { return t.name == request->tool_name; });
    if (!known) {
      return Bad(message, absl::StrCat("tool_choice: tool '",
                                       request->tool_name,
                                       "' not found in tools"));
    }
    request->tool_input_is_output = true;
  }
  return absl::OkStatus();
}

absl::Status ParseFields(const Json& body, ChatRequest* request,
                         std::string* message) {
  if (!body.is_object()) return Bad(message, "body: Input should be an object");
  auto model = body.find("model");
  if (model == body.end() || !model->is_string() ||
      model->get<std::string>().empty()) {
    return Bad(message, "model: Field required");
  }
  request->model = model->get<std::string>();

  auto max_tokens = body.find("max_tokens");
  if (max_tokens == body.end()) {
    return Bad(message, "max_tokens: Field required");
  }
  if (!max_tokens->is_number_integer() || max_tokens->get<int64_t>() < 1) {
    return Bad(message, "max_tokens: Input should be a positive integer");
  }
  request->max_tokens = max_tokens->get<int64_t>();

  request->messages.clear();
  if (auto system = body.find("system");
      system != body.end() && !system->is_null()) {
    std::string text;
    if (!ReadText(*system, &text)) {
      return Bad(message, "system: Input should be a string or text blocks");
    }
    request->messages.push_back({"system", std::move(text)});
  }
  auto messages = body.find("messages");
  if (messages == body.end() || !messages->is_array()) {
    return Bad(message, "messages: Field required");
  }
  if (messages->empty()) {
    return Bad(message, "messages: at least one message is required");
  }
  for (size_t i = 0; i < messages->size(); ++i) {
    const Json& m = (*messages)[i];
    const std::string where = absl::StrCat("messages.", i);
    if (!m.is_object()) return Bad(message, where + ": Input should be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string() ||
        (*role != "user" && *role != "assistant")) {
      return Bad(message, where + ".role: Input should be 'user' or "
                                  "'assistant'");
    }
    SimMessage sm;
    sm.role = role->get<std::string>();
    auto content = m.find("content");
    bool has_tool_result = false;
    if (content == m.end() || !ReadContent(*content, &sm.content,
                                           &has_tool_result,
                                           &request->tool_result)) {
      return Bad(message, where + ".content: Input should be a string or "
                                  "text, tool_use and tool_result blocks");
    }
    // Only the conversation's last turn decides whether the answer reports
    // a tool's result.
    request->after_tool_result = has_tool_result && sm.role == "user";
    request->messages.push_back(std::move(sm));
  }
  if (!request->after_tool_result) request->tool_result.clear();

  if (auto t = body.find("temperature"); t != body.end() && !t->is_null()) {
    if (!t->is_number() || t->get<double>() < 0 || t->get<double>() > 1) {
      return Bad(message, "temperature: Input should be between 0 and 1");
    }
    request->temperature = t->get<double>();
  }
  if (auto p = body.find("top_p"); p != body.end() && !p->is_null()) {
    if (!p->is_number() || p->get<double>() < 0 || p->get<double>() > 1) {
      return Bad(message, "top_p: Input should be between 0 and 1");
    }
    request->top_p = p->get<double>();
  }
  request->stop.clear();
  if (auto stop = body.find("stop_sequences");
      stop != body.end() && !stop->is_null()) {
    if (!stop->is_array()) {
      return Bad(message, "stop_sequences: Input should be a list");
    }
    for (const Json& s : *stop) {
      if (!s.is_string()) {
        return Bad(message, "stop_sequences: Input should be strings");
      }
      if (!s.get<std::string>().empty()) {
        request->stop.push_back(s.get<std::string>());
      }
    }
  }
  if (auto stream = body.find("stream");
      stream != body.end() && !stream->is_null()) {
    if (!stream->is_boolean()) {
      return Bad(message, "stream: Input should be a valid boolean");
    }
    request->stream = stream->get<bool>();
  }
  if (auto thinking = body.find("thinking");
      thinking != body.end() && !thinking->is_null()) {
    auto type = thinking->is_object() ? thinking->find("type") : body.end();
    if (!thinking->is_object() || type == thinking->end() ||
        (*type != "enabled" && *type != "disabled")) {
      return Bad(message,
                 "thinking.type: Input should be 'enabled' or 'disabled'");
    }
    if (*type == "enabled") {
      auto budget = thinking->find("budget_tokens");
      if (budget == thinking->end() || !budget->is_number_integer()) {
        return Bad(message, "thinking.enabled.budget_tokens: Field required");
      }
      const int64_t b = budget->get<int64_t>();
      if (b < kMinThinkingBudget) {
        return Bad(message,
                   "thinking.enabled.budget_tokens: Input should be greater "
                   "than or equal to 1024");
      }
      if (b >= *request->max_tokens) {
        return Bad(message,
                   "`max_tokens` must be greater than "
                   "`thinking.budget_tokens`");
      }
      request->force_reasoning = true;
      request->reasoning_budget = b;
    }
  }
  absl::Status s = ParseTools(body, &request->tools, message);
  if (!s.ok()) return s;
  return ParseToolChoice(body, request, message);
}

}  // namespace

absl::Status ParseMessagesRequest(std::string_view body, ChatRequest* request,
                                  std::string* message) {
  Json json = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return Bad(message, "There was an issue with your request body: it is "
                        "not valid JSON");
  }
  try {
    return ParseFields(json, request, message);
  } catch (const Json::exception& e) {
    return Bad(message, absl::StrCat("Invalid request: ", e.what()));
  }
}

bool ShowsThinking(const ChatRequest& request) {
  return request.force_reasoning ||
         request.model.find("thinking") != std::string::npos ||
         request.model.find("reasoner") != std::string::npos;
}

}  // namespace distillery::teacher_sim
