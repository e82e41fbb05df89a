// The one limit on how deeply JSON from outside may nest, and the check that
// enforces it. Prompt lines, stored metadata being re-written by export, and
// every teacher body (answers, error bodies, stream events) pass through
// CheckJsonDepth before nlohmann parses them: nlohmann parses iteratively,
// but dump(), copies and comparisons of its tree recurse once per level, so
// a line nesting 200,000 deep overflows the stack of whichever thread
// re-writes it. 64 levels is far beyond any real prompt, metadata or API
// response (a chat completion nests 5 deep).
#ifndef DISTILLERY_COMMON_BASE_JSON_DEPTH_H_
#define DISTILLERY_COMMON_BASE_JSON_DEPTH_H_

#include <string_view>

#include "absl/status/status.h"

namespace distillery {

// The deepest nesting accepted: the top-level object or array is level 1.
inline constexpr int kMaxJsonDepth = 64;

// OK when no array or object in `text` opens deeper than `max_depth`, else
// INVALID_ARGUMENT "JSON nests deeper than 64 levels". Counts brackets
// outside strings (a backslash escapes the next byte inside one) in one pass
// without recursion; it does not validate the JSON, which the parser that
// follows still does. Pure and thread-safe.
absl::Status CheckJsonDepth(std::string_view text,
                            int max_depth = kMaxJsonDepth);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_BASE_JSON_DEPTH_H_
