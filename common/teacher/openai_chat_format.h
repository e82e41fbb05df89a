// OpenAiChatFormat: the WireFormat of the OpenAI Chat Completions API and
// every server that speaks it (DeepSeek, vLLM, Ollama, llama.cpp,
// teacher-sim). One POST {base_url}/chat/completions per Ask, one choice per
// call, either a plain JSON answer or (stream) an SSE stream of chunks
// assembled after it ends; the answer is normalised into a TeacherAnswer
// (reasoning from `reasoning`, `reasoning_content` or a leading <think>
// block). HttpTeacher (http_teacher.h) sends it and classifies failures.
//
// The request building and response parsing are also free functions so that
// tests, benchmarks and fuzzers can call them without HTTP.
#ifndef DISTILLERY_COMMON_TEACHER_OPENAI_CHAT_FORMAT_H_
#define DISTILLERY_COMMON_TEACHER_OPENAI_CHAT_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/http/http_client.h"
#include "common/teacher/teacher.h"
#include "common/teacher/wire_format.h"

namespace distillery {

inline constexpr std::string_view kMaxCompletionTokensField =
    "max_completion_tokens";
inline constexpr std::string_view kMaxTokensField = "max_tokens";

// "{base_url}/chat/completions", tolerating trailing slashes on base_url and
// a base_url that already ends in "/chat/completions".
std::string ChatCompletionsUrl(std::string_view base_url);

// The JSON body for one non-streaming call: model, messages, the token limit
// under `max_tokens_field` when params.max_tokens > 0, temperature, top_p and
// seed when set, stop when non-empty, `n` when request.choices > 1.
// INVALID_ARGUMENT for a non-finite temperature/top_p or text that is not
// valid UTF-8. Never throws.
absl::StatusOr<std::string> BuildChatRequestBody(
    const TeacherRequest& request, std::string_view max_tokens_field);

// What of the profile shapes the body, beyond the request itself.
struct ChatBodyOptions {
  std::string max_tokens_field = std::string(kMaxCompletionTokensField);
  // Adds "stream": true and "stream_options": {"include_usage": true}.
  bool stream = false;
  // Sent as "response_format" when not empty; must be a JSON object.
  std::string response_format_json;
  // The token limit sent when the request has none; 0 sends none.
  int64_t default_max_tokens = 0;
};

// As above, with streaming and response_format. INVALID_ARGUMENT also for a
// response_format_json that is not a JSON object. A plain request (no tool
// calls, tools, schema or response format) is written straight into the
// string; any other is built as an nlohmann tree and dumped. The bytes are
// the same either way.
absl::StatusOr<std::string> BuildChatRequestBody(
    const TeacherRequest& request, const ChatBodyOptions& options);

namespace internal {
// The tree way for every request, after BuildChatRequestBody's checks of
// the token field and the numbers: the reference the direct writer is
// tested against.
absl::StatusOr<std::string> BuildChatRequestBodyWithTree(
    const TeacherRequest& request, const ChatBodyOptions& options);
}  // namespace internal

// Parses the body of a 2xx response. Leading whitespace and blank lines
// (DeepSeek's keep-alive padding) are ignored. On success status is OK and
// `answer` is filled, raw_body holding `body` verbatim. A body with an
// "error" object fails as http_failure.h's TeacherErrorResult says; a body
// that is truncated, not JSON, or has no usable choices[0].message fails
// kRetryable with UNAVAILABLE (the teacher, or the path to it, garbled this
// answer, the next attempt may well be fine: UNAVAILABLE is the canonical
// "transient, retry" code, where INTERNAL would read as a bug of ours); so
// does a body nesting deeper than kMaxJsonDepth (json_depth.h). http_status
// is set to 200; headers are not consulted. Never throws.
TeacherResult ParseChatResponse(std::string body);

// Assembles a streamed answer (the whole text/event-stream body) into the
// same record ParseChatResponse makes: delta.content, delta.reasoning (read
// first) or delta.reasoning_content, the last non-null finish_reason, usage
// from the chunk that carries it (the final "choices":[] one with
// include_usage), the id of the first chunk. Only choice index 0 counts.
// SSE comments (": keep-alive") are skipped. A data event holding "error"
// fails as TeacherErrorResult says for a 200 (retryable unless it names a
// rate limit or spent quota). A stream with no chunk, with a chunk that is
// not JSON or nests deeper than kMaxJsonDepth, or that ends without
// "data: [DONE]" and without a finish_reason (cut off) fails kRetryable
// with UNAVAILABLE. raw_body is `body` verbatim. Never throws.
TeacherResult ParseChatStream(std::string body);

// HandleTeacherResponse (http_teacher.h) with this format: the whole
// outcome of one call, `secret` appearing nowhere in the result. Never
// throws.
TeacherResult HandleChatResponse(absl::StatusOr<HttpResponse> response,
                                 int64_t now_wall_millis,
                                 std::string_view secret = {},
                                 bool stream = false);

// Thread-safe: immutable after construction.
class OpenAiChatFormat : public WireFormat {
 public:
  explicit OpenAiChatFormat(ChatBodyOptions options = {});

  std::string_view api_name() const override { return "OpenAI"; }
  // INVALID_ARGUMENT for an unknown max_tokens_field or a
  // response_format_json that is not a JSON object.
  absl::Status Validate() const override;
  // ChatCompletionsUrl.
  std::string Url(std::string_view base_url) const override;
  // Content-Type, Accept for a stream, "Authorization: Bearer <key>".
  HttpHeaders Headers(std::string_view api_key) const override;
  // BuildChatRequestBody.
  absl::StatusOr<std::string> BuildBody(
      const TeacherRequest& request) const override;
  // ParseChatStream when streaming, else ParseChatResponse.
  TeacherResult ParseBody(std::string body) const override;

 private:
  const ChatBodyOptions options_;
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_TEACHER_OPENAI_CHAT_FORMAT_H_
