// OpenAiTeacher: the Teacher for the OpenAI Chat Completions API and every
// server that speaks it (DeepSeek, vLLM, Ollama, llama.cpp, teacher-sim).
// One POST {base_url}/chat/completions per Ask, one choice per call, either
// a plain JSON answer or (options.stream) an SSE stream of chunks assembled
// after it ends; the answer is normalised into a TeacherAnswer (reasoning
// from `reasoning`, `reasoning_content` or a leading <think> block) and
// failures are classified by common/teacher/http_failure.h.
//
// The request building and response parsing are free functions so that tests
// and benchmarks can call them without HTTP.
#ifndef DISTILLERY_COMMON_TEACHER_OPENAI_TEACHER_H_
#define DISTILLERY_COMMON_TEACHER_OPENAI_TEACHER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/base/clock.h"
#include "common/http/http_client.h"
#include "common/teacher/teacher.h"

namespace distillery {

inline constexpr std::string_view kMaxCompletionTokensField =
    "max_completion_tokens";
inline constexpr std::string_view kMaxTokensField = "max_tokens";

struct OpenAiTeacherOptions {
  // Includes the version, as the official SDKs take it:
  // "https://api.openai.com/v1", "http://localhost:8000/v1/". The adapter
  // appends "/chat/completions".
  std::string base_url;
  // Sent as "Authorization: Bearer <key>"; empty sends no Authorization
  // header (local servers). Surrounding whitespace (a key file's newline) is
  // ignored. Never logged nor put in any status message.
  std::string api_key;
  // Which field carries SamplingParams::max_tokens: kMaxCompletionTokensField
  // (OpenAI) or kMaxTokensField (Ollama, older OpenAI-compatible servers).
  std::string max_tokens_field = std::string(kMaxCompletionTokensField);
  // Ask for a streamed answer (stream: true, stream_options.include_usage).
  // The whole stream is read before it is parsed (HttpClient returns whole
  // bodies); the idle timeout still applies between received bytes.
  bool stream = false;
  // A JSON object sent as `response_format` with every request (e.g.
  // {"type":"json_object"}); "" sends none.
  std::string response_format_json;
  // The token limit sent when a request has none; 0 sends none.
  int64_t default_max_tokens = 0;
  // Passed into every HttpRequest; see HttpRequest for their meaning.
  Duration connect_timeout = std::chrono::seconds(10);
  Duration idle_timeout = std::chrono::seconds(120);
  Duration total_timeout = std::chrono::minutes(15);
  size_t max_response_bytes = 16 << 20;
  // Sent with every request, after the adapter's own headers; one with the
  // same name (case-insensitive) as Content-Type or Authorization replaces
  // the adapter's (e.g. a proxy with its own auth scheme).
  HttpHeaders extra_headers;
};

// OK, or INVALID_ARGUMENT naming the first bad option: a base_url that is not
// http(s)://, an unknown max_tokens_field, control characters in the key or
// a header, an empty header name, non-positive timeouts, or a
// response_format_json that is not a JSON object. Never mentions the key's
// value.
absl::Status ValidateOpenAiTeacherOptions(const OpenAiTeacherOptions& options);

// "{base_url}/chat/completions", tolerating trailing slashes on base_url and
// a base_url that already ends in "/chat/completions".
std::string ChatCompletionsUrl(std::string_view base_url);

// The JSON body for one non-streaming call: model, messages, the token limit
// under `max_tokens_field` when params.max_tokens > 0, temperature, top_p and
// seed when set, stop when non-empty. Never sets `n`: one choice per call.
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
// response_format_json that is not a JSON object.
absl::StatusOr<std::string> BuildChatRequestBody(const TeacherRequest& request,
                                                 const ChatBodyOptions& options);

// Parses the body of a 2xx response. Leading whitespace and blank lines
// (DeepSeek's keep-alive padding) are ignored. On success status is OK and
// `answer` is filled, raw_body holding `body` verbatim. A body with an
// "error" object fails as http_failure.h's TeacherErrorResult says; a body
// that is truncated, not JSON, or has no usable choices[0].message fails
// kRetryable with UNAVAILABLE (the teacher, or the path to it, garbled this
// answer, the next attempt may well be fine: UNAVAILABLE is the canonical
// "transient, retry" code, where INTERNAL would read as a bug of ours); so
// does a body nesting deeper than kMaxJsonDepth (json_depth.h). http_status is set to 200; headers are not consulted. Never throws.
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
// "data: [DONE]" and without a finish_reason (cut off) fails kRetryable with UNAVAILABLE. raw_body is `body` verbatim.
// Never throws.
TeacherResult ParseChatStream(std::string body);

// The whole outcome of one call: transport error, non-2xx response (with
// retry-after and x-should-retry applied) or a 2xx body to parse (as a
// stream when `stream`). `secret` (the API key), when not empty, appears
// nowhere in the result, in any form redact.h knows: it is redacted from the
// response before any of it is quoted, so that cutting a long quote cannot
// leave part of it behind, and from the answer (an answer that echoes it is
// kept with "[redacted]" in its place). Never throws.
TeacherResult HandleChatResponse(absl::StatusOr<HttpResponse> response,
                                 int64_t now_wall_millis,
                                 std::string_view secret = {},
                                 bool stream = false);

// Thread-safe: immutable after construction. `http` and `clock` must outlive
// the teacher and every call in flight.
class OpenAiTeacher : public Teacher {
 public:
  // Options are checked by ValidateOpenAiTeacherOptions here; with bad
  // options every Ask fails with INVALID_ARGUMENT and kTeacherDown (no call
  // to this teacher can succeed until its configuration is fixed).
  OpenAiTeacher(HttpClient& http, Clock& clock, OpenAiTeacherOptions options);
  // As above, on RealClock::Get().
  OpenAiTeacher(HttpClient& http, OpenAiTeacherOptions options);

  // Calls `done` on the HttpClient's thread, or before returning when the
  // request cannot be sent (bad options, a request that cannot be encoded).
  void Ask(const TeacherRequest& request, Callback done) override;

  // The URL requests go to.
  const std::string& url() const { return url_; }

 private:
  HttpClient& http_;
  Clock& clock_;
  const OpenAiTeacherOptions options_;
  const absl::Status options_status_;
  const std::string url_;
  const HttpHeaders headers_;
  const ChatBodyOptions body_options_;
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_TEACHER_OPENAI_TEACHER_H_
