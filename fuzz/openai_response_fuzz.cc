// Fuzzes the OpenAI Chat Completions parsers: a whole 200 body and a whole
// streamed (SSE) body. Neither may crash, throw, or report success without
// an answer record.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/teacher/http_failure.h"
#include "common/teacher/openai_chat_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  distillery::TeacherResult plain = distillery::ParseChatResponse(body);
  if (plain.status.ok() && plain.answer.raw_body != body) __builtin_trap();
  (void)distillery::ParseChatStream(body);
  (void)distillery::ParseTeacherErrorBody(body);
  return 0;
}
