#include "common/dataset/prompt_parser.h"

#include <cctype>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/json_depth.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using nlohmann::json;

absl::Status LineError(int64_t line, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", std::string(why)));
}

size_t SkipSpace(std::string_view s, size_t i) {
  while (i < s.size() &&
         (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) {
    ++i;
  }
  return i;
}

// Skips one JSON value of already-validated text starting at `i`.
size_t SkipValue(std::string_view s, size_t i) {
  if (s[i] == '"') {
    for (++i; i < s.size() && s[i] != '"'; ++i) {
      if (s[i] == '\\') ++i;
    }
    return i + 1;
  }
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    for (; i < s.size(); ++i) {
      if (s[i] == '"') {
        i = SkipValue(s, i) - 1;
      } else if (s[i] == '{' || s[i] == '[') {
        ++depth;
      } else if ((s[i] == '}' || s[i] == ']') && --depth == 0) {
        return i + 1;
      }
    }
    return i;
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' &&
         s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
    ++i;
  }
  return i;
}

// The text of top-level member `key` of a JSON object line that has been
// validated, exactly as written; "" if not found as a plain (unescaped) key.
std::string_view RawMember(std::string_view s, std::string_view key) {
  size_t i = SkipSpace(s, 0);
  if (i >= s.size() || s[i] != '{') return {};
  ++i;
  while (true) {
    i = SkipSpace(s, i);
    if (i >= s.size() || s[i] != '"') return {};
    const size_t key_end = SkipValue(s, i);
    const std::string_view name = s.substr(i + 1, key_end - i - 2);
    i = SkipSpace(s, key_end);
    if (i >= s.size() || s[i] != ':') return {};
    i = SkipSpace(s, i + 1);
    const size_t value_end = SkipValue(s, i);
    if (name == key) return s.substr(i, value_end - i);
    i = SkipSpace(s, value_end);
    if (i >= s.size() || s[i] != ',') return {};
    ++i;
  }
}

bool IsBlank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  }
  return true;
}

// A tool's or a tool choice's function name, as OpenAI allows it.
bool IsToolName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

// An assistant turn's "tool_calls": a non-empty array of
// {"id","type":"function","function":{"name","arguments":"<JSON text>"}}.
absl::Status CheckToolCalls(const json& calls, const std::string& where,
                            std::set<std::string>* call_ids) {
  if (!calls.is_array() || calls.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " \"tool_calls\" must be a non-empty array"));
  }
  for (size_t i = 0; i < calls.size(); ++i) {
    const json& call = calls[i];
    const std::string at = absl::StrCat(where, " tool_calls[", i, "]");
    if (!call.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(at, " is not an object"));
    }
    auto id = call.find("id");
    if (id == call.end() || !id->is_string() || id->get<std::string>().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(at, " has no string \"id\""));
    }
    if (auto type = call.find("type");
        type != call.end() && *type != json("function")) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, " \"type\" must be \"function\""));
    }
    auto function = call.find("function");
    if (function == call.end() || !function->is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, " has no \"function\" object"));
    }
    auto name = function->find("name");
    if (name == function->end() || !name->is_string() ||
        !IsToolName(name->get<std::string>())) {
      return absl::InvalidArgumentError(absl::StrCat(
          at, " function.name must be 1-64 letters, digits, _ or -"));
    }
    auto arguments = function->find("arguments");
    if (arguments == function->end() || !arguments->is_string() ||
        !json::accept(arguments->get<std::string>())) {
      return absl::InvalidArgumentError(absl::StrCat(
          at, " function.arguments must be a string of JSON text"));
    }
    call_ids->insert(id->get<std::string>());
  }
  return absl::OkStatus();
}

// messages[index] of a line: a system, user or assistant turn with text, an
// assistant turn with tool_calls (content may then be null or absent), or a
// tool turn answering one of the calls in `call_ids`.
absl::StatusOr<v1::ChatMessage> ParseMessage(const json& m, size_t index,
                                             std::set<std::string>* call_ids) {
  const std::string where = absl::StrCat("messages[", index, "]");
  if (!m.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, " is not an object"));
  }
  auto role = m.find("role");
  if (role == m.end() || !role->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " has no string \"role\""));
  }
  v1::ChatMessage out;
  out.set_role(role->get<std::string>());
  const std::string& r = out.role();
  if (r != "system" && r != "user" && r != "assistant" && r != "tool") {
    return absl::InvalidArgumentError(absl::StrCat(
        where, " role '", r, "' is not system, user, assistant or tool"));
  }
  auto calls = m.find("tool_calls");
  const bool has_calls = calls != m.end() && !calls->is_null();
  if (has_calls) {
    if (r != "assistant") {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " has tool_calls but is not an assistant turn"));
    }
    if (absl::Status s = CheckToolCalls(*calls, where, call_ids); !s.ok()) {
      return s;
    }
    out.set_tool_calls_json(calls->dump());
  }
  auto content = m.find("content");
  const bool no_content = content == m.end() || content->is_null();
  if (!(no_content && has_calls)) {
    if (no_content || !content->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " has no string \"content\""));
    }
    out.set_content(content->get<std::string>());
    // A tool's output may be empty; a turn of text may not.
    if (IsBlank(out.content()) && r != "tool" && !has_calls) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " has empty content"));
    }
  }
  if (r == "tool") {
    auto id = m.find("tool_call_id");
    if (id == m.end() || !id->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " (a tool turn) has no string \"tool_call_id\""));
    }
    out.set_tool_call_id(id->get<std::string>());
    if (!call_ids->count(out.tool_call_id())) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, " answers tool call ", json(out.tool_call_id()).dump(),
          ", which no earlier assistant turn made"));
    }
  }
  return out;
}

// The line's "tools" (OpenAI function definitions) and "tool_choice", kept
// as compact JSON in the prompt.
absl::Status ParseTools(const json& doc, v1::Prompt* prompt) {
  std::set<std::string> names;
  if (auto tools = doc.find("tools"); tools != doc.end() && !tools->is_null()) {
    if (!tools->is_array() || tools->empty()) {
      return absl::InvalidArgumentError(
          "\"tools\" must be a non-empty array of function definitions");
    }
    for (size_t i = 0; i < tools->size(); ++i) {
      const json& tool = (*tools)[i];
      const std::string at = absl::StrCat("tools[", i, "]");
      if (!tool.is_object() || tool.value("type", json()) != json("function")) {
        return absl::InvalidArgumentError(absl::StrCat(
            at, " must be {\"type\": \"function\", \"function\": {...}}"));
      }
      auto function = tool.find("function");
      if (function == tool.end() || !function->is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat(at, " has no \"function\" object"));
      }
      auto name = function->find("name");
      if (name == function->end() || !name->is_string() ||
          !IsToolName(name->get<std::string>())) {
        return absl::InvalidArgumentError(absl::StrCat(
            at, " function.name must be 1-64 letters, digits, _ or -"));
      }
      if (!names.insert(name->get<std::string>()).second) {
        return absl::InvalidArgumentError(absl::StrCat(
            at, " repeats the name ", name->dump()));
      }
      if (auto params = function->find("parameters");
          params != function->end() && !params->is_object()) {
        return absl::InvalidArgumentError(absl::StrCat(
            at, " function.parameters must be a JSON Schema object"));
      }
    }
    prompt->set_tools_json(tools->dump());
  }
  auto choice = doc.find("tool_choice");
  if (choice == doc.end() || choice->is_null()) return absl::OkStatus();
  if (names.empty()) {
    return absl::InvalidArgumentError("\"tool_choice\" needs \"tools\"");
  }
  if (choice->is_string()) {
    const std::string c = choice->get<std::string>();
    if (c != "none" && c != "auto" && c != "required") {
      return absl::InvalidArgumentError(
          "\"tool_choice\" must be \"none\", \"auto\", \"required\" or "
          "{\"type\": \"function\", \"function\": {\"name\": ...}}");
    }
  } else {
    const json* function = choice->is_object() && choice->contains("function")
                               ? &(*choice)["function"]
                               : nullptr;
    if (function == nullptr || !function->is_object() ||
        !function->contains("name") || !(*function)["name"].is_string()) {
      return absl::InvalidArgumentError(
          "\"tool_choice\" must be \"none\", \"auto\", \"required\" or "
          "{\"type\": \"function\", \"function\": {\"name\": ...}}");
    }
    const std::string name = (*function)["name"].get<std::string>();
    if (!names.count(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"tool_choice\" names ", json(name).dump(),
          ", which is not among \"tools\""));
    }
  }
  prompt->set_tool_choice_json(choice->dump());
  return absl::OkStatus();
}

}  // namespace

bool ReadBoundedLine(std::istream& in, size_t max_bytes, std::string* line,
                     size_t* length) {
  line->clear();
  *length = 0;
  std::streambuf* buf = in.rdbuf();
  bool any = false;
  while (true) {
    const int c = buf->sbumpc();
    if (c == std::char_traits<char>::eof()) {
      in.setstate(std::ios::eofbit);
      break;
    }
    any = true;
    if (c == '\n') break;
    if (*length <= max_bytes) line->push_back(static_cast<char>(c));
    ++*length;
  }
  if (*length <= max_bytes && !line->empty() && line->back() == '\r') {
    line->pop_back();
    --*length;
  }
  return any;
}

absl::Status PromptTooLargeError(int64_t line_number, size_t bytes,
                                 size_t max_bytes) {
  return LineError(line_number, absl::StrCat("prompt is ", bytes,
                                             " bytes, over the limit of ",
                                             max_bytes));
}

absl::Status DuplicatePromptIdError(int64_t line_number, std::string_view id,
                                    int64_t first_line) {
  return LineError(
      line_number,
      absl::StrCat("duplicate id ", json(std::string(id)).dump(),
                   ", first on line ", first_line,
                   " (ids must be unique: export splits are assigned by id; a "
                   "prompt without \"id\" has its line number as id)"));
}

absl::StatusOr<std::optional<v1::Prompt>> ParsePromptLine(
    std::string_view line, int64_t line_number,
    std::string_view default_system, size_t max_bytes) {
  if (line.size() > max_bytes) {
    return PromptTooLargeError(line_number, line.size(), max_bytes);
  }
  if (IsBlank(line)) return std::nullopt;
  if (!IsValidUtf8(line)) return LineError(line_number, "invalid UTF-8");
  if (absl::Status s = CheckJsonDepth(line); !s.ok()) {
    return LineError(line_number, std::string(s.message()));
  }
  json doc;
  try {
    doc = json::parse(line);
  } catch (const json::exception& e) {
    return LineError(line_number,
                     absl::StrCat("not valid JSON (", e.what(), ")"));
  }
  if (!doc.is_object()) {
    return LineError(line_number, "expected a JSON object");
  }
  v1::Prompt prompt;
  prompt.set_line(line_number);

  if (auto it = doc.find("id"); it != doc.end()) {
    if (it->is_string()) {
      prompt.set_id(it->get<std::string>());
    } else if (it->is_number_integer()) {
      prompt.set_id(std::to_string(it->get<int64_t>()));
    } else {
      return LineError(line_number, "\"id\" must be a string or an integer");
    }
  } else {
    prompt.set_id(std::to_string(line_number));
  }

  std::string system(default_system);
  if (auto it = doc.find("system"); it != doc.end()) {
    if (!it->is_string()) {
      return LineError(line_number, "\"system\" must be a string");
    }
    system = it->get<std::string>();
  }

  auto prompt_it = doc.find("prompt");
  auto messages_it = doc.find("messages");
  if (prompt_it != doc.end() && messages_it != doc.end()) {
    return LineError(line_number,
                     "has both \"prompt\" and \"messages\"; use one");
  }
  if (prompt_it == doc.end() && messages_it == doc.end()) {
    return LineError(line_number, "no \"prompt\" or \"messages\"");
  }
  bool has_system_message = false;
  std::vector<v1::ChatMessage> turns;
  if (prompt_it != doc.end()) {
    if (!prompt_it->is_string()) {
      return LineError(line_number, "\"prompt\" must be a string");
    }
    std::string text = prompt_it->get<std::string>();
    if (IsBlank(text)) return LineError(line_number, "empty prompt");
    v1::ChatMessage& turn = turns.emplace_back();
    turn.set_role("user");
    turn.set_content(std::move(text));
  } else {
    if (!messages_it->is_array() || messages_it->empty()) {
      return LineError(line_number,
                       "\"messages\" must be a non-empty array");
    }
    std::set<std::string> call_ids;  // of the assistant turns so far
    for (size_t index = 0; index < messages_it->size(); ++index) {
      absl::StatusOr<v1::ChatMessage> turn =
          ParseMessage((*messages_it)[index], index, &call_ids);
      if (!turn.ok()) {
        return LineError(line_number, std::string(turn.status().message()));
      }
      if (turn->role() == "system") has_system_message = true;
      turns.push_back(*std::move(turn));
    }
    if (turns.back().role() != "user" && turns.back().role() != "tool") {
      return LineError(line_number,
                       "the last message must have role \"user\" (or "
                       "\"tool\", after an assistant's tool calls)");
    }
  }
  if (!system.empty() && !has_system_message) {
    v1::ChatMessage* m = prompt.add_messages();
    m->set_role("system");
    m->set_content(system);
  }
  for (v1::ChatMessage& turn : turns) {
    *prompt.add_messages() = std::move(turn);
  }
  if (absl::Status s = ParseTools(doc, &prompt); !s.ok()) {
    return LineError(line_number, std::string(s.message()));
  }

  if (auto it = doc.find("metadata"); it != doc.end()) {
    if (!it->is_object()) {
      return LineError(line_number, "\"metadata\" must be a JSON object");
    }
    // Kept as the user wrote it: key order, number formatting and all. A
    // key spelt with escapes falls back to a re-serialisation.
    const std::string_view raw = RawMember(line, "metadata");
    prompt.set_metadata_json(raw.empty() ? it->dump() : std::string(raw));
  }
  // The row's own sampling parameters, over the job's.
  if (auto it = doc.find("max_tokens"); it != doc.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1 ||
        it->get<int64_t>() > kMaxPromptMaxTokens) {
      return LineError(line_number,
                       absl::StrCat("\"max_tokens\" must be an integer from "
                                    "1 to ",
                                    kMaxPromptMaxTokens));
    }
    prompt.mutable_params()->set_max_tokens(it->get<int64_t>());
  }
  if (auto it = doc.find("temperature"); it != doc.end()) {
    if (!it->is_number() || it->get<double>() < 0 || it->get<double>() > 2) {
      return LineError(line_number,
                       "\"temperature\" must be a number from 0 to 2");
    }
    prompt.mutable_params()->set_temperature(it->get<double>());
  }
  return prompt;
}

absl::StatusOr<std::optional<std::string>> ReferenceAnswer(
    const std::string& metadata_json, const std::string& field) {
  if (metadata_json.empty()) return std::nullopt;
  nlohmann::json doc = nlohmann::json::parse(metadata_json, nullptr,
                                             /*allow_exceptions=*/false);
  if (!doc.is_object()) return std::nullopt;
  auto it = doc.find(field);
  if (it == doc.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number() || it->is_boolean()) return it->dump();
  return absl::InvalidArgumentError(absl::StrCat(
      "metadata.", field, " must be a string or a number to verify against"));
}

}  // namespace distillery
