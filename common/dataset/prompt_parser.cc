#include "common/dataset/prompt_parser.h"

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
  std::vector<std::pair<std::string, std::string>> turns;
  if (prompt_it != doc.end()) {
    if (!prompt_it->is_string()) {
      return LineError(line_number, "\"prompt\" must be a string");
    }
    std::string text = prompt_it->get<std::string>();
    if (IsBlank(text)) return LineError(line_number, "empty prompt");
    turns.emplace_back("user", std::move(text));
  } else {
    if (!messages_it->is_array() || messages_it->empty()) {
      return LineError(line_number,
                       "\"messages\" must be a non-empty array");
    }
    int index = 0;
    for (const json& m : *messages_it) {
      ++index;
      if (!m.is_object()) {
        return LineError(line_number,
                         absl::StrCat("messages[", index - 1,
                                      "] is not an object"));
      }
      auto role = m.find("role");
      auto content = m.find("content");
      if (role == m.end() || !role->is_string()) {
        return LineError(line_number, absl::StrCat("messages[", index - 1,
                                                   "] has no string \"role\""));
      }
      const std::string r = role->get<std::string>();
      if (r != "system" && r != "user" && r != "assistant") {
        return LineError(line_number,
                         absl::StrCat("messages[", index - 1, "] role '", r,
                                      "' is not system, user or assistant"));
      }
      if (content == m.end() || !content->is_string()) {
        return LineError(line_number,
                         absl::StrCat("messages[", index - 1,
                                      "] has no string \"content\""));
      }
      std::string text = content->get<std::string>();
      if (IsBlank(text)) {
        return LineError(line_number, absl::StrCat("messages[", index - 1,
                                                   "] has empty content"));
      }
      if (r == "system") has_system_message = true;
      turns.emplace_back(r, std::move(text));
    }
    if (turns.back().first != "user") {
      return LineError(line_number,
                       "the last message must have role \"user\"");
    }
  }
  if (!system.empty() && !has_system_message) {
    v1::ChatMessage* m = prompt.add_messages();
    m->set_role("system");
    m->set_content(system);
  }
  for (auto& [role, content] : turns) {
    v1::ChatMessage* m = prompt.add_messages();
    m->set_role(role);
    m->set_content(std::move(content));
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
