// Teacher: one call to a teacher model, whatever its API. The HTTP teacher
// (http_teacher.h) with a wire format per API (wire_format.h: OpenAI Chat
// Completions and its compatible servers, Anthropic Messages; each streamed
// or not) turns a TeacherRequest into HTTP and the answer back into one
// normalised TeacherAnswer, and classifies every failure so the worker knows
// whether to retry. teacher_factory.h builds one from a profile.
// Requests and results are values; a Teacher is thread-safe (Ask may be
// called from any thread, and its callback runs on the HTTP client's thread).
#ifndef DISTILLERY_COMMON_TEACHER_TEACHER_H_
#define DISTILLERY_COMMON_TEACHER_TEACHER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/base/clock.h"

namespace distillery {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" or "tool"
  std::string content;
  // An assistant turn's tool calls in OpenAI's form (a JSON array of
  // {"id","type":"function","function":{"name","arguments"}}); "" if none.
  std::string tool_calls_json;
  std::string tool_call_id;  // a "tool" turn: the call it answers
};

struct SamplingParams {
  int64_t max_tokens = 0;  // 0: the teacher's default
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int64_t> seed;
  std::vector<std::string> stop;
  int top_logprobs = 0;  // > 0: ask for logprobs with this many alternatives
};

struct TeacherRequest {
  std::string model;
  std::vector<ChatMessage> messages;
  SamplingParams params;
  // OpenAI function definitions (a JSON array) and tool_choice (JSON), as
  // the prompt gave them; "" when none. Formats convert them for their API.
  std::string tools_json;
  std::string tool_choice_json;
  // Structured output: the answer must be JSON matching this schema
  // (response_format json_schema for OpenAI, a forced tool for Anthropic).
  std::string json_schema;
  std::string json_schema_name;
  // Choices asked for in one request (OpenAI's `n`); 1 for all others.
  int choices = 1;
};

// One output token with its logprob and the top alternatives (the chosen
// token among them, as the API gives them), for logit distillation.
struct TokenLogprob {
  std::string token;
  double logprob = 0;
  std::vector<std::pair<std::string, double>> top;
};

struct TokenUsage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t reasoning_tokens = 0;  // part of completion_tokens
  int64_t cached_tokens = 0;     // part of prompt_tokens
};

struct TeacherAnswer {
  std::string content;        // the final answer text
  std::string reasoning;      // the reasoning trace, "" when none
  // Anthropic's thinking blocks exactly as the teacher gave them, in order:
  // a JSON array of {"type":"thinking","thinking","signature"} and
  // {"type":"redacted_thinking","data"} objects. They are what a later turn
  // must send back verbatim, signatures included, so they are kept apart
  // from the plain `reasoning` text (which joins the thinking blocks' text).
  // "" when the answer had none.
  std::string reasoning_blocks;
  std::string finish_reason;  // as the teacher said it ("stop", "length", ...)
  TokenUsage usage;
  std::string provider_id;    // the teacher's id for the answer
  std::string raw_body;       // the response body, as received
  // The answer's tool calls in OpenAI's form (see ChatMessage), whatever
  // the API; "" when it made none.
  std::string tool_calls_json;
  std::vector<TokenLogprob> logprobs;  // with params.top_logprobs > 0
};

// Why a call failed, as the retry policy needs to know it.
enum class FailureKind {
  kRetryable,    // 408, 409, 5xx, 529, timeouts, resets, bad 200 bodies
  kRateLimited,  // 429 rate_limit_exceeded: retry later, slow down
  kPermanent,    // 400, 422, ...: this request will never succeed
  kTeacherDown,  // 401, 403, 402, 404, insufficient_quota, unreachable: no
                 // request to this teacher will succeed until a human acts
};

// Response headers as (lower-case name, value) pairs.
using TeacherHeaders = std::vector<std::pair<std::string, std::string>>;

// The rate-limit headers among `headers` (x-ratelimit-*,
// anthropic-ratelimit-*, retry-after, retry-after-ms), for the worker's
// limiter to learn from.
inline TeacherHeaders RateLimitHeadersOf(const TeacherHeaders& headers) {
  TeacherHeaders out;
  for (const auto& [name, value] : headers) {
    if (name.rfind("x-ratelimit-", 0) == 0 ||
        name.rfind("anthropic-ratelimit-", 0) == 0 ||
        name.rfind("retry-after", 0) == 0) {
      out.emplace_back(name, value);
    }
  }
  return out;
}

struct TeacherResult {
  // OK with `answer`, or the failure with `kind` and `retry_after`.
  absl::Status status;
  TeacherAnswer answer;
  // A request for several choices (TeacherRequest.choices > 1): choices 1,
  // 2, ... in order; `answer` is choice 0 and carries the request's usage.
  // raw_body is only in `answer`.
  std::vector<TeacherAnswer> more_choices;
  FailureKind kind = FailureKind::kRetryable;
  std::optional<Duration> retry_after;  // from retry-after(-ms) headers
  int http_status = 0;                  // 0 when no response arrived
  TeacherHeaders rate_limit_headers;    // see RateLimitHeadersOf
};

class Teacher {
 public:
  using Callback = std::function<void(TeacherResult)>;
  virtual ~Teacher() = default;
  // Sends one request and calls `done` exactly once, possibly on another
  // thread. One attempt: retrying is the caller's policy.
  virtual void Ask(const TeacherRequest& request, Callback done) = 0;
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_TEACHER_TEACHER_H_
