#include "tests/testing/jsonl.h"

#include <sstream>

#include "tests/testing/temp_dir.h"

namespace distillery::testing {

using nlohmann::json;

std::vector<json> ParseJsonLines(const std::string& text) {
  std::vector<json> rows;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) rows.push_back(json::parse(line));
  }
  return rows;
}

std::vector<json> ReadJsonLines(const std::string& path) {
  return ParseJsonLines(ReadFile(path));
}

int64_t CountLines(const std::string& text) {
  std::istringstream in(text);
  int64_t n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

std::string JsonLines(int n, const std::function<json(int)>& row, int first) {
  std::string text;
  for (int i = first; i < first + n; ++i) text += row(i).dump() + "\n";
  return text;
}

std::string DistinctPrompts(int n, const std::string& tag, bool ids) {
  return JsonLines(n, [&](int i) {
    json row;
    if (ids) row["id"] = tag + std::to_string(i);
    row["prompt"] = tag + " question " + std::to_string(i);
    return row;
  });
}

}  // namespace distillery::testing
