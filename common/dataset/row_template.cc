#include "common/dataset/row_template.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/json_depth.h"
#include "common/base/json_string.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using json = nlohmann::ordered_json;

bool IsFieldName(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
  });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// The fields a row carries into the prompt line as they are.
bool IsPromptField(std::string_view key) {
  return key == "id" || key == "system" || key == "max_tokens" ||
         key == "temperature";
}

absl::Status RowError(int64_t row, std::string_view reason) {
  return absl::InvalidArgumentError(
      absl::StrCat("row ", row, ": ", std::string(reason)));
}

}  // namespace

absl::StatusOr<RowTemplate> RowTemplate::Parse(std::string_view text) {
  RowTemplate t;
  size_t i = 0;
  while (i < text.size()) {
    const size_t open = text.find("{{", i);
    if (open == std::string_view::npos) {
      t.pieces_.push_back({std::string(text.substr(i)), false});
      break;
    }
    if (open > i)
      t.pieces_.push_back({std::string(text.substr(i, open - i)), false});
    const size_t close = text.find("}}", open + 2);
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "template: \"{{\" at offset ", open, " is not closed by \"}}\""));
    }
    const std::string_view name = Trim(text.substr(open + 2, close - open - 2));
    if (!IsFieldName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "template: \"{{",
          std::string(text.substr(open + 2, close - open - 2)),
          "}}\" at offset ", open,
          " does not name a field (letters, digits, '_', '-', '.')"));
    }
    t.pieces_.push_back({std::string(name), true});
    if (std::find(t.fields_.begin(), t.fields_.end(), name) ==
        t.fields_.end()) {
      t.fields_.emplace_back(name);
    }
    i = close + 2;
  }
  if (t.fields_.empty()) {
    return absl::InvalidArgumentError(
        "template: no {{field}} placeholder; every prompt would be the same");
  }
  return t;
}

absl::StatusOr<std::string> RowTemplate::Render(std::string_view row,
                                                int64_t row_number) const {
  if (!IsValidUtf8(row)) return RowError(row_number, "invalid UTF-8");
  if (absl::Status s = CheckJsonDepth(row); !s.ok()) {
    return RowError(row_number, std::string(s.message()));
  }
  const json doc = json::parse(row.begin(), row.end(), nullptr,
                               /*allow_exceptions=*/false);
  if (doc.is_discarded()) return RowError(row_number, "not valid JSON");
  if (!doc.is_object()) return RowError(row_number, "expected a JSON object");
  std::string text;
  for (const Piece& piece : pieces_) {
    if (!piece.field) {
      text += piece.text;
      continue;
    }
    const auto it = doc.find(piece.text);
    if (it == doc.end()) {
      std::vector<std::string> keys;
      for (const auto& [key, value] : doc.items()) keys.push_back(key);
      return RowError(
          row_number,
          absl::StrCat("the template uses field \"", piece.text,
                       "\", which the row does not have (it has: ",
                       keys.empty() ? "no fields" : absl::StrJoin(keys, ", "),
                       ")"));
    }
    if (it->is_string()) {
      text += it->get<std::string>();
    } else if (it->is_number() || it->is_boolean()) {
      text += it->dump();
    } else {
      return RowError(row_number,
                      absl::StrCat("field \"", piece.text, "\" is ",
                                   it->is_null() ? "null" : it->type_name(),
                                   "; the template takes strings, numbers "
                                   "and booleans"));
    }
  }
  json line = json::object();
  json metadata = json::object();
  for (const auto& [key, value] : doc.items()) {
    if (IsPromptField(key)) {
      line[key] = value;
    } else if (std::find(fields_.begin(), fields_.end(), key) ==
               fields_.end()) {
      metadata[key] = value;
    }
  }
  line["prompt"] = std::move(text);
  if (!metadata.empty()) line["metadata"] = std::move(metadata);
  return line.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace distillery
