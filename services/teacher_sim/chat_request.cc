#include "services/teacher_sim/chat_request.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace distillery::teacher_sim {
namespace {

using Json = nlohmann::json;

constexpr int kMaxChoices = 128;
constexpr size_t kMaxStopSequences = 4;
constexpr int64_t kMaxTopLogprobs = 20;

// Fills *error and returns the status ParseChatRequest reports.
absl::Status Fail(InvalidRequest* error, std::string message, std::string param,
                  std::string code) {
  error->message = std::move(message);
  error->param = std::move(param);
  error->code = std::move(code);
  return absl::InvalidArgumentError(error->message);
}

// OpenAI's names for JSON types in its error messages.
std::string TypeName(const Json& j) {
  if (j.is_number_integer()) return "an integer";
  if (j.is_number_float()) return "a decimal";
  if (j.is_string()) return "a string";
  if (j.is_boolean()) return "a boolean";
  if (j.is_array()) return "an array";
  if (j.is_object()) return "an object";
  return "null";
}

absl::Status WrongType(InvalidRequest* error, const std::string& param,
                       const char* expected, const Json& got) {
  return Fail(error,
              absl::StrCat("Invalid type for '", param, "': expected ",
                           expected, ", but got ", TypeName(got), " instead."),
              param, "invalid_type");
}

absl::Status Missing(InvalidRequest* error, const std::string& param) {
  return Fail(error,
              absl::StrCat("Missing required parameter: '", param, "'."),
              param, "missing_required_parameter");
}

absl::Status OutOfRange(InvalidRequest* error, const std::string& param,
                        const std::string& what) {
  return Fail(error, absl::StrCat("Invalid '", param, "': ", what, "."), param,
              "invalid_value");
}

// Reads an optional integer field in [lo, hi]; leaves *out unset when the
// field is absent or null.
absl::Status GetInt(const Json& body, const std::string& name, int64_t lo,
                    int64_t hi, std::optional<int64_t>* out,
                    InvalidRequest* error) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer()) {
    return WrongType(error, name, "an integer", *it);
  }
  // Unsigned values beyond int64 are out of range however the bounds lie.
  if (it->is_number_unsigned() &&
      it->get<uint64_t>() >
          static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return OutOfRange(error, name, "integer too large");
  }
  const int64_t v = it->get<int64_t>();
  if (v < lo) {
    return OutOfRange(error, name,
                      absl::StrCat("integer below minimum value. Expected a "
                                   "value >= ",
                                   lo, ", but got ", v, " instead"));
  }
  if (v > hi) {
    return OutOfRange(error, name,
                      absl::StrCat("integer above maximum value. Expected a "
                                   "value <= ",
                                   hi, ", but got ", v, " instead"));
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status GetNumber(const Json& body, const std::string& name, double lo,
                       double hi, std::optional<double>* out,
                       InvalidRequest* error) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return WrongType(error, name, "a number", *it);
  const double v = it->get<double>();
  if (v < lo || v > hi) {
    return OutOfRange(
        error, name,
        absl::StrCat("number out of range. Expected a value "
                     "between ",
                     lo, " and ", hi, ", but got ", v, " instead"));
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status ParseContent(const Json& content, const std::string& param,
                          std::string* out, InvalidRequest* error) {
  if (content.is_string()) {
    *out = content.get<std::string>();
    return absl::OkStatus();
  }
  if (!content.is_array()) {
    return WrongType(error, param, "one of a string or array of objects",
                     content);
  }
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const Json& part = content[i];
    const std::string part_param = absl::StrCat(param, "[", i, "]");
    if (!part.is_object()) {
      return WrongType(error, part_param, "an object", part);
    }
    auto type = part.find("type");
    if (type == part.end()) {
      return Fail(
          error,
          absl::StrCat("Missing required parameter: '", part_param, ".type'."),
          part_param + ".type", "missing_required_parameter");
    }
    if (!type->is_string() || type->get<std::string>() != "text") {
      return Fail(error,
                  absl::StrCat("Invalid value for '", part_param,
                               ".type': teacher-sim supports only 'text' "
                               "content parts."),
                  part_param + ".type", "invalid_value");
    }
    auto part_text = part.find("text");
    if (part_text == part.end()) {
      return Fail(
          error,
          absl::StrCat("Missing required parameter: '", part_param, ".text'."),
          part_param + ".text", "missing_required_parameter");
    }
    if (!part_text->is_string()) {
      return WrongType(error, part_param + ".text", "a string", *part_text);
    }
    if (i > 0) text.push_back('\n');
    text += part_text->get<std::string>();
  }
  *out = std::move(text);
  return absl::OkStatus();
}

absl::Status ParseMessages(const Json& body, std::vector<SimMessage>* out,
                           InvalidRequest* error) {
  auto it = body.find("messages");
  if (it == body.end()) {
    return Fail(error, "Missing required parameter: 'messages'.", "messages",
                "missing_required_parameter");
  }
  if (!it->is_array()) {
    return WrongType(error, "messages", "an array", *it);
  }
  if (it->empty()) {
    return Fail(error,
                "Invalid 'messages': empty array. Expected an array with "
                "minimum length 1, but got an empty array instead.",
                "messages", "empty_array");
  }
  out->clear();
  out->reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& m = (*it)[i];
    const std::string param = absl::StrCat("messages[", i, "]");
    if (!m.is_object()) return WrongType(error, param, "an object", m);
    SimMessage message;
    auto role = m.find("role");
    if (role == m.end()) {
      return Fail(
          error,
          absl::StrCat("Missing required parameter: '", param, ".role'."),
          param + ".role", "missing_required_parameter");
    }
    if (!role->is_string()) {
      return WrongType(error, param + ".role", "a string", *role);
    }
    message.role = role->get<std::string>();
    if (message.role != "system" && message.role != "developer" &&
        message.role != "user" && message.role != "assistant" &&
        message.role != "tool" && message.role != "function") {
      return Fail(error,
                  absl::StrCat("Invalid value: '", message.role,
                               "'. Supported values are: 'system', "
                               "'assistant', 'user', 'function', 'tool', and "
                               "'developer'."),
                  param + ".role", "invalid_value");
    }
    auto content = m.find("content");
    // An assistant turn that only made tool calls has null content.
    const bool may_be_null = message.role == "assistant";
    if (content == m.end() || (content->is_null() && !may_be_null)) {
      return Fail(
          error,
          absl::StrCat("Missing required parameter: '", param, ".content'."),
          param + ".content", "missing_required_parameter");
    }
    if (!content->is_null()) {
      absl::Status s =
          ParseContent(*content, param + ".content", &message.content, error);
      if (!s.ok()) return s;
    }
    out->push_back(std::move(message));
  }
  return absl::OkStatus();
}

absl::Status ParseStop(const Json& body, std::vector<std::string>* out,
                       InvalidRequest* error) {
  out->clear();
  auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (it->is_string()) {
    if (!it->get<std::string>().empty()) out->push_back(it->get<std::string>());
    return absl::OkStatus();
  }
  if (!it->is_array()) {
    return WrongType(error, "stop", "one of a string or array of strings", *it);
  }
  if (it->size() > kMaxStopSequences) {
    return OutOfRange(error, "stop",
                      absl::StrCat("array too long. Expected an array with "
                                   "maximum length ",
                                   kMaxStopSequences,
                                   ", but got an array "
                                   "with length ",
                                   it->size(), " instead"));
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& s = (*it)[i];
    if (!s.is_string()) {
      return WrongType(error, absl::StrCat("stop[", i, "]"), "a string", s);
    }
    if (!s.get<std::string>().empty()) out->push_back(s.get<std::string>());
  }
  return absl::OkStatus();
}

absl::Status ParseLogprobs(const Json& body, ChatRequest* request,
                           InvalidRequest* error) {
  auto it = body.find("logprobs");
  if (it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) return WrongType(error, "logprobs", "a boolean", *it);
    request->logprobs = it->get<bool>();
  }
  std::optional<int64_t> top;
  absl::Status s =
      GetInt(body, "top_logprobs", 0, kMaxTopLogprobs, &top, error);
  if (!s.ok()) return s;
  if (top.value_or(0) > 0 && !request->logprobs) {
    return Fail(error,
                "Invalid value for 'top_logprobs': 'logprobs' must be set to "
                "true when 'top_logprobs' is used.",
                "top_logprobs", "invalid_value");
  }
  request->top_logprobs = static_cast<int>(top.value_or(0));
  return absl::OkStatus();
}

// One tools[i]: {"type":"function","function":{"name","description",
// "parameters"}}.
absl::Status ParseTool(const Json& tool, const std::string& param,
                       SimTool* out, InvalidRequest* error) {
  if (!tool.is_object()) return WrongType(error, param, "an object", tool);
  auto type = tool.find("type");
  if (type == tool.end()) return Missing(error, param + ".type");
  if (!type->is_string() || type->get<std::string>() != "function") {
    return Fail(error,
                absl::StrCat("Invalid value for '", param,
                             ".type': supported values are: 'function'."),
                param + ".type", "invalid_value");
  }
  auto function = tool.find("function");
  if (function == tool.end()) return Missing(error, param + ".function");
  if (!function->is_object()) {
    return WrongType(error, param + ".function", "an object", *function);
  }
  auto name = function->find("name");
  if (name == function->end()) {
    return Missing(error, param + ".function.name");
  }
  if (!name->is_string() || name->get<std::string>().empty()) {
    return WrongType(error, param + ".function.name", "a string", *name);
  }
  out->name = name->get<std::string>();
  if (auto d = function->find("description");
      d != function->end() && d->is_string()) {
    out->description = d->get<std::string>();
  }
  if (auto p = function->find("parameters");
      p != function->end() && !p->is_null()) {
    if (!p->is_object()) {
      return WrongType(error, param + ".function.parameters", "an object", *p);
    }
    out->parameters = p->dump();
  }
  return absl::OkStatus();
}

absl::Status ParseTools(const Json& body, std::vector<SimTool>* out,
                        InvalidRequest* error) {
  out->clear();
  auto it = body.find("tools");
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) return WrongType(error, "tools", "an array", *it);
  out->resize(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    absl::Status s =
        ParseTool((*it)[i], absl::StrCat("tools[", i, "]"), &(*out)[i], error);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// "none" | "auto" | "required" | {"type":"function","function":{"name"}},
// allowed only beside tools, naming one of them.
absl::Status ParseToolChoice(const Json& body, ChatRequest* request,
                             InvalidRequest* error) {
  auto it = body.find("tool_choice");
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (it->is_string()) {
    const std::string mode = it->get<std::string>();
    if (mode == "none") {
      request->tool_choice = ToolChoice::kNone;
    } else if (mode == "auto") {
      request->tool_choice = ToolChoice::kAuto;
    } else if (mode == "required") {
      request->tool_choice = ToolChoice::kRequired;
    } else {
      return Fail(error,
                  absl::StrCat("Invalid value: '", mode,
                               "'. Supported values are: 'none', 'auto', and "
                               "'required'."),
                  "tool_choice", "invalid_value");
    }
  } else if (it->is_object()) {
    auto function = it->find("function");
    if (function == it->end() || !function->is_object() ||
        !function->contains("name")) {
      return Missing(error, "tool_choice.function.name");
    }
    auto name = function->find("name");
    if (!name->is_string()) {
      return WrongType(error, "tool_choice.function.name", "a string", *name);
    }
    request->tool_choice = ToolChoice::kNamed;
    request->tool_name = name->get<std::string>();
  } else {
    return WrongType(error, "tool_choice", "one of a string or an object", *it);
  }
  if (request->tools.empty()) {
    return Fail(error,
                "Invalid value for 'tool_choice': 'tool_choice' is only "
                "allowed when 'tools' are specified.",
                "tool_choice", "");
  }
  if (request->tool_choice == ToolChoice::kNamed) {
    const bool known = std::any_of(
        request->tools.begin(), request->tools.end(),
        [&](const SimTool& t) { return t.name == request->tool_name; });
    if (!known) {
      return Fail(error,
                  absl::StrCat("Invalid value for 'tool_choice': function '",
                               request->tool_name,
                               "' is not one of the 'tools'."),
                  "tool_choice", "invalid_value");
    }
  }
  return absl::OkStatus();
}

// {"type":"text"|"json_object"} change nothing; {"type":"json_schema",
// "json_schema":{"name","schema","strict"}} asks for structured output.
absl::Status ParseResponseFormat(const Json& body, ChatRequest* request,
                                 InvalidRequest* error) {
  auto it = body.find("response_format");
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) {
    return WrongType(error, "response_format", "an object", *it);
  }
  auto type = it->find("type");
  if (type == it->end()) return Missing(error, "response_format.type");
  if (*type == "text" || *type == "json_object") return absl::OkStatus();
  if (*type != "json_schema") {
    return Fail(error,
                "Invalid value for 'response_format.type': supported values "
                "are: 'text', 'json_object' and 'json_schema'.",
                "response_format.type", "invalid_value");
  }
  auto spec = it->find("json_schema");
  if (spec == it->end()) return Missing(error, "response_format.json_schema");
  if (!spec->is_object()) {
    return WrongType(error, "response_format.json_schema", "an object", *spec);
  }
  auto name = spec->find("name");
  if (name == spec->end()) {
    return Missing(error, "response_format.json_schema.name");
  }
  if (!name->is_string()) {
    return WrongType(error, "response_format.json_schema.name", "a string",
                     *name);
  }
  request->structured_output = true;
  request->output_schema = "{}";
  if (auto schema = spec->find("schema");
      schema != spec->end() && !schema->is_null()) {
    if (!schema->is_object()) {
      return WrongType(error, "response_format.json_schema.schema",
                       "an object", *schema);
    }
    request->output_schema = schema->dump();
  }
  return absl::OkStatus();
}

// The features beyond plain text: logprobs, tools, structured output.
absl::Status ParseAnswerFeatures(const Json& body, ChatRequest* request,
                                 InvalidRequest* error) {
  absl::Status s;
  if (!(s = ParseLogprobs(body, request, error)).ok() ||
      !(s = ParseTools(body, &request->tools, error)).ok() ||
      !(s = ParseToolChoice(body, request, error)).ok() ||
      !(s = ParseResponseFormat(body, request, error)).ok()) {
    return s;
  }
  const SimMessage& last = request->messages.back();
  if (last.role == "tool") {
    request->after_tool_result = true;
    request->tool_result = last.content;
  }
  return absl::OkStatus();
}

absl::Status ParseFields(const Json& body, ChatRequest* request,
                         InvalidRequest* error) {
  if (!body.is_object()) {
    return Fail(error,
                absl::StrCat("Invalid request body: expected a JSON object, "
                             "but got ",
                             TypeName(body), " instead."),
                "", "invalid_type");
  }
  auto model = body.find("model");
  if (model == body.end() || model->is_null()) {
    return Fail(error, "you must provide a model parameter", "model",
                "missing_required_parameter");
  }
  if (!model->is_string()) return WrongType(error, "model", "a string", *model);
  request->model = model->get<std::string>();
  if (request->model.empty()) {
    return Fail(error, "Invalid 'model': empty string.", "model",
                "invalid_value");
  }

  absl::Status s = ParseMessages(body, &request->messages, error);
  if (!s.ok()) return s;

  constexpr int64_t kIntMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kIntMin = std::numeric_limits<int64_t>::min();
  std::optional<int64_t> max_completion_tokens, max_tokens, n;
  if (!(s = GetInt(body, "max_completion_tokens", 1, kIntMax,
                   &max_completion_tokens, error))
           .ok() ||
      !(s = GetInt(body, "max_tokens", 1, kIntMax, &max_tokens, error)).ok() ||
      !(s = GetInt(body, "n", 1, kMaxChoices, &n, error)).ok() ||
      !(s = GetInt(body, "seed", kIntMin, kIntMax, &request->seed, error))
           .ok() ||
      !(s = GetNumber(body, "temperature", 0, 2, &request->temperature, error))
           .ok() ||
      !(s = GetNumber(body, "top_p", 0, 1, &request->top_p, error)).ok() ||
      !(s = ParseStop(body, &request->stop, error)).ok()) {
    return s;
  }
  request->max_tokens =
      max_completion_tokens.has_value() ? max_completion_tokens : max_tokens;
  request->n = static_cast<int>(n.value_or(1));

  auto stream = body.find("stream");
  if (stream != body.end() && !stream->is_null()) {
    if (!stream->is_boolean()) {
      return WrongType(error, "stream", "a boolean", *stream);
    }
    request->stream = stream->get<bool>();
  }
  auto options = body.find("stream_options");
  if (options != body.end() && !options->is_null()) {
    if (!request->stream) {
      return Fail(error,
                  "The 'stream_options' parameter is only allowed when "
                  "'stream' is enabled.",
                  "stream_options", "invalid_value");
    }
    if (!options->is_object()) {
      return WrongType(error, "stream_options", "an object", *options);
    }
    auto usage = options->find("include_usage");
    if (usage != options->end() && !usage->is_null()) {
      if (!usage->is_boolean()) {
        return WrongType(error, "stream_options.include_usage", "a boolean",
                         *usage);
      }
      request->include_usage = usage->get<bool>();
    }
  }
  return ParseAnswerFeatures(body, request, error);
}

}  // namespace

bool AnswersWithToolCall(const ChatRequest& request) {
  return !request.tools.empty() && request.tool_choice != ToolChoice::kNone &&
         !request.after_tool_result;
}

const SimTool& ChosenTool(const ChatRequest& request) {
  if (request.tool_choice == ToolChoice::kNamed) {
    for (const SimTool& tool : request.tools) {
      if (tool.name == request.tool_name) return tool;
    }
  }
  return request.tools.front();
}

absl::Status ParseChatRequest(std::string_view body, ChatRequest* request,
                              InvalidRequest* error) {
  Json json;
  try {
    json = Json::parse(body);
  } catch (const Json::parse_error& e) {
    return Fail(error,
                absl::StrCat("We could not parse the JSON body of your "
                             "request. The API expects a JSON payload, but "
                             "what was sent was not valid JSON: ",
                             e.what()),
                "", "invalid_json");
  }
  try {
    return ParseFields(json, request, error);
  } catch (const Json::exception& e) {
    // Not expected: every access above checks types first.
    return Fail(error, absl::StrCat("Invalid request: ", e.what()), "", "");
  }
}

}  // namespace distillery::teacher_sim
