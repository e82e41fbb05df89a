// Prompt files: JSONL, one prompt a line, either {"prompt": "..."} or
// {"messages": [{"role": ..., "content": ...}, ...]}, with optional "id",
// "system" and "metadata". Parsing is strict: a bad line is an error that
// names the line and the reason, so a submission is all or nothing.
#ifndef DISTILLERY_COMMON_DATASET_PROMPT_PARSER_H_
#define DISTILLERY_COMMON_DATASET_PROMPT_PARSER_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "distillery/v1/types.pb.h"

namespace distillery {

// Parses line number `line_number` (1-based) of a prompt file. Returns
// std::nullopt for a blank line (whitespace only), which is skipped. A
// job-level `default_system` is prepended when the prompt has no system
// message of its own. Errors are INVALID_ARGUMENT "line N: reason".
absl::StatusOr<std::optional<v1::Prompt>> ParsePromptLine(
    std::string_view line, int64_t line_number,
    std::string_view default_system);

// True when `text` is well-formed UTF-8 (no overlongs, no surrogates).
bool IsValidUtf8(std::string_view text);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_DATASET_PROMPT_PARSER_H_
