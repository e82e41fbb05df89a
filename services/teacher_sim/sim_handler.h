// SimHandler: everything teacher-sim does with one HTTP request, without the
// network. Routes:
//   POST /v1/chat/completions  OpenAI Chat Completions (answer_generator.h),
//                              "stream": true answers text/event-stream
//   POST /v1/messages          Anthropic Messages (messages_request.h,
//                              response_render.h), plain or streamed; thinking
//                              blocks with signatures when thinking is enabled
//                              or the model is "*thinking*"/"*reasoner*", and
//                              a redacted_thinking block too for "*redacted*"
//   /v1/files, /v1/batches     OpenAI's Batch API and Anthropic's Message
//   /v1/messages/batches       Batches (sim_batches.h), after the same key
//                              check (and anthropic-version header); each
//                              request of a batch is answered as the online
//                              endpoint would (no faults, no latency, no
//                              rate limit) and counted in the same stats
//   GET  /health               {"status":"ok"}
//   GET  /stats                counters (sim_stats.h), the rate limiter's
//                              peak window and refusals, and "batches"
// Unknown paths answer 404 and wrong methods 405, in OpenAI's error shape.
//
// With --refuse-n an OpenAI request (online or in a batch) asking for
// n > 1 answers 400 invalid_request_error, param "n". The stats count one
// request per HTTP request and the choices served in "choices_total".
//
// A chat request is checked in the order a real gateway would: API key
// (401), then injected faults (500 / 429; 529 overloaded_error for Messages;
// 401echo, a 401 quoting the request's key with '/' escaped as \/; a
// Latin-1 HTML 400 for both),
// then the body (400). Messages requests take the key from x-api-key and need
// an anthropic-version header; their errors are in Anthropic's shape.
// A model not in the configured list (when there is one) answers 404 after
// the body is parsed, as the providers do: OpenAI's model_not_found, or
// Anthropic's not_found_error.
// Both count as chat requests in the stats. The
// configured latency delays 200 answers and injected 500s; 4xx answers are
// immediate. /health and /stats are observation endpoints and are not
// counted in the stats, so polling them does not disturb what tests read.
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_SIM_HANDLER_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_SIM_HANDLER_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/clock.h"
#include "services/teacher_sim/answer_generator.h"
#include "services/teacher_sim/fault_injector.h"
#include "services/teacher_sim/request_repeats.h"
#include "services/teacher_sim/sim_batches.h"
#include "services/teacher_sim/sim_rate_limiter.h"
#include "services/teacher_sim/sim_http.h"
#include "services/teacher_sim/sim_stats.h"

namespace distillery::teacher_sim {

struct SimHandlerOptions {
  // When non-empty, /v1 requests need "Authorization: Bearer <key>"
  // (/v1/messages: "x-api-key: <key>").
  std::string required_api_key;
  // Delay before chat answers (see above).
  Duration latency{0};
  // Rate limits (none by default) and whether responses carry the six
  // x-ratelimit-* headers (DeepSeek's do not).
  SimLimits limits;
  bool ratelimit_headers = true;
  // Every chat request answers 429 insufficient_quota, as a key whose
  // account has run dry.
  bool quota_exhausted = false;
  // Injected answer faults: a slow answer comes after `slow_latency`; a
  // padded one after `pad_count` padding lines, one per `pad_interval`.
  Duration slow_latency = std::chrono::seconds(3);
  int pad_count = 5;
  Duration pad_interval = std::chrono::milliseconds(200);
  // > 0: every answer's content is this many bytes (--answer-bytes).
  size_t answer_bytes = 0;
  // The share of arithmetic questions answered right (--math-accuracy;
  // answer_generator.h).
  double math_accuracy = kDefaultMathAccuracy;
  // The share of structured outputs answered bad (--json-invalid-rate;
  // answer_generator.h's GenerateOptions): redrawn each time the same body
  // is sent again.
  double json_invalid_rate = kDefaultJsonInvalidRate;
  // Answer any OpenAI request with n > 1 400, as servers without n do.
  bool refuse_n = false;
  // The models served; empty: any name. teacher-sim's main passes
  // kDefaultSimModels unless told otherwise.
  std::vector<std::string> models;
  // The batch APIs' limits and processing speed (sim_batches.h).
  SimBatchOptions batches;
};

// The body of the latin1 fault: an HTML error page in ISO-8859-1, as some
// proxies and gateways send, whose accented bytes are not UTF-8.
std::string_view Latin1ErrorPage();

// What teacher-sim serves by default: every model name its examples, tests,
// deploy files and benchmarks use ("reasoner" and "thinking" in a name turn
// on reasoning; "redacted" a redacted_thinking block).
inline constexpr const char* kDefaultSimModels[] = {
    "sim-reasoner", "sim-chat",        "sim-small",
    "sim-thinking", "claude-sim",      "claude-thinking",
    "claude-thinking-redacted"};

// Renders an OpenAI error body; empty `param` or `code` become null.
std::string RenderErrorJson(std::string_view message, std::string_view type,
                            std::string_view param, std::string_view code);

// Thread-safe: Handle may run concurrently on every server thread.
class SimHandler {
 public:
  // `clock` (for `created` and ids) and `faults` must outlive the handler;
  // `faults` may be null for none.
  SimHandler(SimHandlerOptions options, Clock& clock, FaultInjector* faults);

  SimResponse Handle(const SimRequest& request);

  const SimStats& stats() const { return stats_; }

 private:
  // Adds the headers every chat response carries to AnswerChat's answer.
  SimResponse HandleChat(const SimRequest& request);
  SimResponse AnswerChat(const SimRequest& request, uint64_t sequence,
                         SimAdmission* admission);
  SimResponse RenderFault(FaultKind kind);
  bool Serves(std::string_view model) const;
  // Applies an answer fault (truncate, pad, slow) to a rendered 200 answer;
  // records it in the stats, and the 200 unless the body is cut.
  void ApplyAnswerFault(FaultKind kind, bool stream, std::string_view body,
                        const SimCompletion& completion,
                        SimResponse* response);
  SimResponse HandleMessages(const SimRequest& request);
  SimResponse AnswerMessages(const SimRequest& request, uint64_t sequence);
  SimResponse RenderMessagesFault(FaultKind kind);
  // The batch routes, after the key check.
  SimResponse HandleBatches(const SimRequest& request, std::string_view path);
  // One request of a batch, answered as the online endpoint would.
  SimBatchAnswer AnswerBatchRequest(bool anthropic, std::string_view body);
  // The answer to `chat`, sent as `body`: generated with the options (a
  // structured output learns how often `body` was seen before), resized to
  // --answer-bytes.
  SimCompletion Generate(ChatRequest& chat, std::string_view body);
  // 32 hex digits unique to this response within the process run.
  std::string UniqueHex(uint64_t sequence, uint64_t salt) const;

  const SimHandlerOptions options_;
  Clock& clock_;
  FaultInjector* const faults_;
  // Distinguishes ids across simulator runs.
  const uint64_t instance_nonce_;
  std::atomic<uint64_t> next_sequence_{0};
  SimStats stats_;
  RequestRepeats repeats_;
  SimRateLimiter limiter_;
  SimBatches batches_;
};

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_SIM_HANDLER_H_
