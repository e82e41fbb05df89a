// Fuzzes the whole handling of one HTTP response, both APIs, plain and
// streamed: the first bytes pick the status and a few headers
// (retry-after, x-should-retry, content-type), the rest is the body. A
// secret planted in the body must never appear in the result (error
// message or answer).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/teacher/anthropic_messages_format.h"
#include "common/teacher/openai_chat_format.h"

namespace {

constexpr std::string_view kSecret = "sk-fuzz-secret-0123456789";

std::string Take(std::string_view* in, size_t n) {
  const size_t k = n < in->size() ? n : in->size();
  std::string out(in->substr(0, k));
  in->remove_prefix(k);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (in.size() < 4) return 0;
  const uint8_t mode = static_cast<uint8_t>(in[0]);
  const int status =
      100 +
      (static_cast<uint8_t>(in[1]) << 8 | static_cast<uint8_t>(in[2])) % 500;
  in.remove_prefix(3);
  distillery::HttpResponse response;
  response.status = status;
  if (mode & 1) response.headers.emplace_back("retry-after", Take(&in, 12));
  if (mode & 2) response.headers.emplace_back("retry-after-ms", Take(&in, 8));
  if (mode & 4) response.headers.emplace_back("x-should-retry", Take(&in, 5));
  response.body = std::string(in);
  if (mode & 8) response.body += kSecret;
  const bool stream = mode & 16;
  distillery::TeacherResult results[] = {
      distillery::HandleChatResponse(response, 1'700'000'000'000, kSecret,
                                     stream),
      distillery::HandleMessagesResponse(response, 1'700'000'000'000, kSecret,
                                         stream)};
  for (const distillery::TeacherResult& r : results) {
    for (const std::string& text :
         {std::string(r.status.message()), r.answer.content,
          r.answer.reasoning, r.answer.reasoning_blocks, r.answer.raw_body}) {
      if (text.find(kSecret) != std::string::npos) {
        __builtin_trap();  // the key leaked into the result
      }
    }
  }
  return 0;
}
