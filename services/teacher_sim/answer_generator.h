// Answer generation for teacher-sim: turns a parsed ChatRequest into a
// deterministic chat completion and renders it in OpenAI's exact response
// shape. No networking here, so tests exercise it directly.
//
// Each choice is derived from a hash of (model, messages, seed, temperature,
// choice index): the same request always gets the same answer and different
// prompts get different ones. The answer opens by quoting the first words of
// the last user message, so it is visibly tied to its prompt. Models whose
// name contains "reasoner" also produce a reasoning trace, as
// deepseek-reasoner does in `reasoning_content`.
//
// Maths: a last user message asking "What is A + B?" (or -, *; integers)
// is answered with a worked line ending in \boxed{R}, where R is right for
// a known share of requests (--math-accuracy) and off by 1 to 9 otherwise.
// Which requests are right follows from the same hash (prompt and seed),
// so sample k of a prompt is right or wrong the same way every time, and
// the share holds over many prompts and seeds.
//
// Tools and structured outputs: a request offering tools is answered with a
// call whose arguments follow the tool's parameters (schema_value.h); one
// asking for a json_schema response format with JSON text of the schema,
// a share of it spoiled (GenerateOptions::json_invalid_rate). Logprobs are
// rendered from the content (sim_logprobs.h).
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_ANSWER_GENERATOR_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_ANSWER_GENERATOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "services/teacher_sim/chat_request.h"

namespace distillery::teacher_sim {

// A call of one of the request's tools.
struct SimToolCall {
  std::string id_hex;  // 16 hex digits; "call_" or "toolu_" goes before
  std::string name;
  std::string arguments;  // JSON text of an object
};

struct SimChoice {
  // The text; for a tool call, what is said before it (Anthropic's text
  // block, "" for OpenAI).
  std::string content;
  std::string reasoning_content;  // "" unless the model reasons
  // content's tokens, and a tool call's arguments'.
  int64_t content_tokens = 0;
  int64_t reasoning_tokens = 0;
  std::string finish_reason;  // "stop", "length" or "tool_calls"
  std::optional<SimToolCall> tool_call;
  uint64_t hash = 0;  // HashRequest of this choice: seeds its logprobs
};

struct SimUsage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;  // includes reasoning_tokens
  int64_t reasoning_tokens = 0;
  int64_t total_tokens = 0;
};

struct SimCompletion {
  std::string model;
  bool reasoning_model = false;
  std::vector<SimChoice> choices;
  SimUsage usage;
  uint64_t request_hash = 0;  // of the request as a whole
  // Render each choice's token logprobs, with this many alternatives.
  bool logprobs = false;
  int top_logprobs = 0;
};

// The simulator's tokenizer stand-in: about one token per 4 bytes, and at
// least one per whitespace-separated word. 0 for "".
int64_t CountTokens(std::string_view text);

// Prompt tokens as OpenAI bills them: each message's content plus 4 tokens
// of framing per message, plus 3 priming the reply.
int64_t CountPromptTokens(const std::vector<SimMessage>& messages);

// The longest prefix of `text` ending at a word boundary whose CountTokens
// is at most `budget`; a single over-long first word is cut at a UTF-8
// character boundary instead.
std::string TruncateToTokens(std::string_view text, int64_t budget);

// True if the model reasons before answering (its name contains
// "reasoner").
bool IsReasoningModel(std::string_view model);

// Stable 64-bit hash of everything that determines choice `choice_index`
// (pass -1 for the request as a whole). Stable across runs and builds.
uint64_t HashRequest(const ChatRequest& request, int choice_index);

// The share of arithmetic questions answered right unless told otherwise.
inline constexpr double kDefaultMathAccuracy = 0.5;

// An arithmetic question found in a prompt: "What is A OP B" with OP one
// of + - * and |A|, |B| < 10^9.
struct MathQuestion {
  int64_t a = 0;
  int64_t b = 0;
  char op = '+';
  int64_t answer() const {
    return op == '+' ? a + b : op == '-' ? a - b : a * b;
  }
};
std::optional<MathQuestion> FindMathQuestion(std::string_view text);

// The share of structured-output answers that are bad unless told
// otherwise.
inline constexpr double kDefaultJsonInvalidRate = 0.2;

struct GenerateOptions {
  // An arithmetic question's choice is right when its hash falls in the
  // first `math_accuracy` of the range.
  double math_accuracy = kDefaultMathAccuracy;
  // The share of structured outputs (ChatRequest::structured_output,
  // tool_input_is_output) that are bad, decided per choice from a hash of
  // the request, the choice's index and request.repeat: half of OpenAI's
  // bad ones do not parse, the others break the schema (a required
  // property missing or of the wrong type); Anthropic's tool input has a
  // property of the wrong type.
  double json_invalid_rate = kDefaultJsonInvalidRate;
};

// Generates all request.n choices with usage. Deterministic; thread-safe.
// With tools offered (and tool_choice not "none", and the conversation not
// ending on a tool result) each choice is a call of ChosenTool whose
// arguments give the tool's required parameters values of their types.
SimCompletion GenerateCompletion(const ChatRequest& request,
                                 const GenerateOptions& options);
inline SimCompletion GenerateCompletion(
    const ChatRequest& request, double math_accuracy = kDefaultMathAccuracy) {
  return GenerateCompletion(request, GenerateOptions{math_accuracy});
}

// Makes every text choice's content `bytes` long (--answer-bytes): the
// generated text repeated, cut at a UTF-8 character boundary (so up to 3
// bytes short), with the token counts of the new content; tool calls stay
// as they are. For tests of large answers.
void ResizeAnswers(size_t bytes, SimCompletion* completion);

// Renders the chat.completion JSON body. `id` is the whole id
// ("chatcmpl-..."); `created` is Unix seconds. A tool call's message has
// content null and tool_calls; with completion.logprobs a text choice's
// logprobs is {"content":[...],"refusal":null} (sim_logprobs.h).
std::string RenderCompletionJson(const SimCompletion& completion,
                                 std::string_view id, int64_t created);

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_ANSWER_GENERATOR_H_
