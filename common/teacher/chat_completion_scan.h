// ScanChatCompletion: a fast path for the one response shape the worker
// reads thousands of times a second, a non-streamed chat.completion. It
// validates the whole body as strict JSON (RFC 8259, as nlohmann::json
// parses it: UTF-8 checked, no trailing text) in one pass and picks out only
// the fields ParseChatResponse uses, without building a document: building
// nlohmann's tree (a std::map node and string per key and value) cost more
// than the rest of handling an answer.
//
// It declines (nullopt) anything outside the plain shape: an "error" key or
// "object":"error", choices that are not an array of one element with a
// message object, non-null message.tool_calls or choice logprobs, message.content that is neither a string
// nor null, a token count that is not an integer in int64, a key written
// with escapes, a field the reader needs given twice (nlohmann keeps the
// last), nesting deeper than kMaxJsonDepth (json_depth.h), a byte-order
// mark, and any JSON error.
// The caller then parses with nlohmann as before, so every declined body is
// handled exactly as it was; a body it accepts yields the same fields the
// nlohmann path reads. Pure and thread-safe.
#ifndef DISTILLERY_COMMON_TEACHER_CHAT_COMPLETION_SCAN_H_
#define DISTILLERY_COMMON_TEACHER_CHAT_COMPLETION_SCAN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace distillery {

struct ChatCompletionFields {
  std::string id;                 // "" when absent or not a string
  std::string content;            // message.content; "" when null/absent
  std::string reasoning;          // message.reasoning, as StringField reads
  std::string reasoning_content;  // message.reasoning_content, likewise
  std::string finish_reason;      // choices[0].finish_reason, likewise
  bool has_usage = false;         // "usage" is an object
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t reasoning_tokens = 0;   // completion_tokens_details.reasoning_tokens
  // prompt_tokens_details.cached_tokens when prompt_tokens_details is an
  // object holding that key, else usage.prompt_cache_hit_tokens.
  int64_t cached_tokens = 0;
};

std::optional<ChatCompletionFields> ScanChatCompletion(std::string_view body);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_TEACHER_CHAT_COMPLETION_SCAN_H_
