#include "services/teacher_sim/messages_request.h"

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
    if (content == m.end() || !ReadText(*content, &sm.content)) {
      return Bad(message,
                 where + ".content: Input should be a string or text blocks");
    }
    request->messages.push_back(std::move(sm));
  }

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
  return absl::OkStatus();
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
