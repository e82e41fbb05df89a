// AnthropicMessagesFormat: the WireFormat of Anthropic's Messages API. One
// POST {base_url}/v1/messages per Ask (x-api-key, anthropic-version), plain
// JSON or (stream) an SSE event stream assembled after it ends. The answer
// is normalised into the same TeacherAnswer as every other format: text
// blocks become `content`, thinking blocks `reasoning` (joined in order), and
// the thinking and redacted_thinking blocks themselves are kept verbatim, in
// order with their signatures, in `reasoning_blocks`. HttpTeacher
// (http_teacher.h) sends it; failures are classified by http_failure.h
// ({"type":"error","error":{"type"}} is the error shape it already reads):
// 429 rate_limit_error is kRateLimited, 500 and 529 overloaded_error
// retryable, 401/403/404 kTeacherDown, 400/413 permanent; retry-after is
// honoured.
//
// Request building and response parsing are also free functions, testable
// without HTTP.
#ifndef DISTILLERY_COMMON_TEACHER_ANTHROPIC_MESSAGES_FORMAT_H_
#define DISTILLERY_COMMON_TEACHER_ANTHROPIC_MESSAGES_FORMAT_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/http/http_client.h"
#include "common/teacher/teacher.h"
#include "common/teacher/wire_format.h"

namespace distillery {

inline constexpr std::string_view kDefaultAnthropicVersion = "2023-06-01";

// Thinking budgets below this are refused by the API.
inline constexpr int64_t kMinThinkingBudgetTokens = 1024;

// What of the profile shapes the body, beyond the request itself.
struct MessagesBodyOptions {
  // max_tokens is required by the API: sent when the request has none.
  int64_t default_max_tokens = 4096;
  // > 0 sends thinking: {type: enabled, budget_tokens}; the request's
  // max_tokens (which counts thinking too) must then exceed it.
  int64_t thinking_budget_tokens = 0;
  bool stream = false;
};

// What the format takes beyond the request: the body options and the
// anthropic-version header.
struct AnthropicMessagesOptions {
  std::string anthropic_version = std::string(kDefaultAnthropicVersion);
  MessagesBodyOptions body;
};

// "{base_url}/v1/messages", tolerating trailing slashes and a base_url that
// already ends in "/v1" or "/v1/messages".
std::string MessagesUrl(std::string_view base_url);

// The JSON body: model, max_tokens (the request's, else the default),
// system (the system messages' text joined with blank lines, as a top-level
// string: the Messages API has no system role), messages (user and
// assistant turns in order), temperature, top_p, stop_sequences, thinking,
// stream. The seed is not sent: the API has none. INVALID_ARGUMENT for no
// user or assistant message, a role the API does not know, non-finite
// numbers, invalid UTF-8, or a max_tokens not above the thinking budget.
// Never throws.
absl::StatusOr<std::string> BuildMessagesRequestBody(
    const TeacherRequest& request, const MessagesBodyOptions& options);

// Parses a 2xx Messages body: content blocks in order (text -> content,
// thinking -> reasoning, thinking/redacted_thinking -> reasoning_blocks),
// stop_reason -> finish_reason, usage (prompt_tokens = input_tokens +
// cache_read_input_tokens + cache_creation_input_tokens, cached_tokens =
// cache_read_input_tokens, completion_tokens = output_tokens), id. An error
// object fails as TeacherErrorResult says; a body that is not a message
// (or nests deeper than kMaxJsonDepth, json_depth.h) fails kRetryable with
// UNAVAILABLE. Never throws.
TeacherResult ParseMessagesResponse(std::string body);

// Assembles a streamed answer (the whole event-stream body): message_start,
// content_block_start/delta (text_delta, thinking_delta, signature_delta)/
// stop, message_delta (stop_reason, cumulative output_tokens), message_stop;
// ping and comments skipped. An `error` event fails as TeacherErrorResult
// says for a 200 (overloaded_error: retryable). A stream that ends before
// message_stop, or has an event that is not JSON (or too deep), fails
// kRetryable with UNAVAILABLE. raw_body is `body` verbatim. Never throws.
TeacherResult ParseMessagesStream(std::string body);

// HandleTeacherResponse (http_teacher.h) with this format, as
// HandleChatResponse: `secret` appears nowhere in the result. Never throws.
TeacherResult HandleMessagesResponse(absl::StatusOr<HttpResponse> response,
                                     int64_t now_wall_millis,
                                     std::string_view secret = {},
                                     bool stream = false);

// Thread-safe: immutable after construction.
class AnthropicMessagesFormat : public WireFormat {
 public:
  explicit AnthropicMessagesFormat(AnthropicMessagesOptions options = {});

  std::string_view api_name() const override { return "Anthropic"; }
  // INVALID_ARGUMENT for an empty anthropic_version, a default_max_tokens
  // below 1, a thinking budget that is neither 0 nor at least
  // kMinThinkingBudgetTokens, or one not below default_max_tokens.
  absl::Status Validate() const override;
  // MessagesUrl.
  std::string Url(std::string_view base_url) const override;
  // Content-Type, anthropic-version, Accept for a stream, x-api-key.
  HttpHeaders Headers(std::string_view api_key) const override;
  // BuildMessagesRequestBody.
  absl::StatusOr<std::string> BuildBody(
      const TeacherRequest& request) const override;
  // ParseMessagesStream when streaming, else ParseMessagesResponse.
  TeacherResult ParseBody(std::string body) const override;

 private:
  const AnthropicMessagesOptions options_;
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_TEACHER_ANTHROPIC_MESSAGES_FORMAT_H_
