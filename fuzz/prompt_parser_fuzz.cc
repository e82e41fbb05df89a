// Fuzzes the prompt-file parser: one line as a user might write it, and the
// bounded line reader over a whole file.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

#include "common/dataset/prompt_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)distillery::IsValidUtf8(text);
  // The first line as one prompt line, with a small cap so both paths run.
  const std::string_view line = text.substr(0, text.find('\n'));
  absl::StatusOr<std::optional<distillery::v1::Prompt>> prompt =
      distillery::ParsePromptLine(line, 1, "sys", 4096);
  if (prompt.ok() && *prompt) {
    // A prompt that parsed has at least one message, the last a user one.
    if ((*prompt)->messages_size() == 0) __builtin_trap();
    if ((*prompt)->messages((*prompt)->messages_size() - 1).role() != "user") {
      __builtin_trap();
    }
  }
  // The whole input as a file: every line read, none longer than the cap.
  std::istringstream in{std::string(text)};
  std::string read;
  size_t length = 0;
  int64_t number = 0;
  while (distillery::ReadBoundedLine(in, 64, &read, &length)) {
    ++number;
    if (read.size() > 65) __builtin_trap();
    if (length <= 64) {
      (void)distillery::ParsePromptLine(read, number, "");
    }
  }
  return 0;
}
