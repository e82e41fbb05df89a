// Prompt files: JSONL, one prompt a line, either {"prompt": "..."} or
// {"messages": [{"role": ..., "content": ...}, ...]}, with optional "id",
// "system", "metadata", the row's own "max_tokens" and "temperature"
// (over the job's: Prompt.params), and for tool use "tools" (OpenAI
// function definitions) and "tool_choice". Messages may be agent traces:
// assistant turns with "tool_calls" (content null) and "tool" turns with
// the "tool_call_id" they answer; the last turn is "user" or "tool". Parsing is strict: a bad line is an error that
// names the line and the reason, so a submission is all or nothing.
#ifndef DISTILLERY_COMMON_DATASET_PROMPT_PARSER_H_
#define DISTILLERY_COMMON_DATASET_PROMPT_PARSER_H_

#include <cstddef>
#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/base/json_string.h"  // IsValidUtf8, for callers
#include "distillery/v1/types.pb.h"

namespace distillery {

// The largest "max_tokens" a line may ask for (as --max-tokens).
inline constexpr int64_t kMaxPromptMaxTokens = 10'000'000;

// The default cap on one prompt-file line, in bytes.
inline constexpr size_t kDefaultMaxPromptBytes = size_t{1} << 20;

// The error for line `line_number` that is `bytes` long, over `max_bytes`:
// INVALID_ARGUMENT "line N: prompt is B bytes, over the limit of M".
absl::Status PromptTooLargeError(int64_t line_number, size_t bytes,
                                 size_t max_bytes);

// The error for line `line_number`, whose prompt id `id` line `first_line`
// already has: INVALID_ARGUMENT "line N: duplicate id "ID", first on line
// M ...". Ids must be unique in a file: export splits are assigned by id. A
// prompt without "id" has its line number as id.
absl::Status DuplicatePromptIdError(int64_t line_number, std::string_view id,
                                    int64_t first_line);

// Parses line number `line_number` (1-based) of a prompt file. Returns
// std::nullopt for a blank line (whitespace only), which is skipped. A
// job-level `default_system` is prepended when the prompt has no system
// message of its own. A line over `max_bytes`, or nesting deeper than
// kMaxJsonDepth (json_depth.h), is rejected unparsed. Errors are
// INVALID_ARGUMENT "line N: reason".
absl::StatusOr<std::optional<v1::Prompt>> ParsePromptLine(
    std::string_view line, int64_t line_number,
    std::string_view default_system,
    size_t max_bytes = kDefaultMaxPromptBytes);

// A prompt's reference answer for `submit --verify`: the field `field` of
// its metadata object (`metadata_json`, as Prompt.metadata_json holds it).
// A string is taken as is, a number or boolean as its JSON text; nullopt
// when the field is absent or null (or the metadata is not an object).
// An object or array is INVALID_ARGUMENT "metadata.FIELD must be a string
// or a number", so a reference is never checked against JSON text.
absl::StatusOr<std::optional<std::string>> ReferenceAnswer(
    const std::string& metadata_json, const std::string& field);

// Reads the next line of `in` (without its "\n" or "\r\n") into `*line`,
// holding at most `max_bytes` + 1 bytes of it in memory. Returns false at the
// end of input. When the line is longer than `max_bytes`, the rest of it is
// skipped unbuffered, `*line` holds its first bytes and `*length` its full
// length; otherwise `*length` is line->size().
bool ReadBoundedLine(std::istream& in, size_t max_bytes, std::string* line,
                     size_t* length);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_DATASET_PROMPT_PARSER_H_
