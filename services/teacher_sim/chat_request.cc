#include "services/teacher_sim/chat_request.h"

#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace distillery::teacher_sim {
namespace {

using Json = nlohmann::json;

constexpr int kMaxChoices = 128;
constexpr size_t kMaxStopSequences = 4;

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
  return absl::OkStatus();
}

}  // namespace

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
