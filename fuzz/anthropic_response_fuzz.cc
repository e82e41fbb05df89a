// Fuzzes the Anthropic Messages parsers: a whole 200 body and a whole
// streamed body.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/teacher/anthropic_messages_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  distillery::TeacherResult plain = distillery::ParseMessagesResponse(body);
  if (plain.status.ok() && plain.answer.raw_body != body) __builtin_trap();
  (void)distillery::ParseMessagesStream(body);
  return 0;
}
