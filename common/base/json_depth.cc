#include "common/base/json_depth.h"

#include "absl/strings/str_cat.h"

namespace distillery {

absl::Status CheckJsonDepth(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '{':
      case '[':
        if (++depth > max_depth) {
          return absl::InvalidArgumentError(absl::StrCat(
              "JSON nests deeper than ", max_depth, " levels"));
        }
        break;
      case '}':
      case ']':
        // Unbalanced closers are the parser's to report; never go negative,
        // so that "]]][[[" cannot buy extra depth.
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return absl::OkStatus();
}

}  // namespace distillery
