// Test support: JSON Lines, as prompt files are written and exports read.
// Stateless functions.
#ifndef DISTILLERY_TESTS_TESTING_JSONL_H_
#define DISTILLERY_TESTS_TESTING_JSONL_H_

#include <functional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace distillery::testing {

// Each non-empty line of `text` parsed as JSON (throws on a bad line).
std::vector<nlohmann::json> ParseJsonLines(const std::string& text);
// ParseJsonLines of the file at `path` ("" when unreadable: no rows).
std::vector<nlohmann::json> ReadJsonLines(const std::string& path);
// Non-empty lines of `text`.
int64_t CountLines(const std::string& text);

// `row(i)` for i in [first, first + n), one JSON object a line.
std::string JsonLines(int n, const std::function<nlohmann::json(int)>& row,
                      int first = 0);

// `n` distinct prompts {"prompt": "TAG question I"}, so that each answer is
// paid for once; with `ids`, each also has the id "TAGI".
std::string DistinctPrompts(int n, const std::string& tag, bool ids = false);

}  // namespace distillery::testing

#endif  // DISTILLERY_TESTS_TESTING_JSONL_H_
