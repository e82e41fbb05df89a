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
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_ANSWER_GENERATOR_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_ANSWER_GENERATOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "services/teacher_sim/chat_request.h"

namespace distillery::teacher_sim {

struct SimChoice {
  std::string content;
  std::string reasoning_content;  // "" unless the model reasons
  int64_t content_tokens = 0;
  int64_t reasoning_tokens = 0;
  std::string finish_reason;  // "stop" or "length"
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

// Generates all request.n choices with usage. Deterministic; thread-safe.
// An arithmetic question's choice is right when its hash falls in the
// first `math_accuracy` of the range.
SimCompletion GenerateCompletion(const ChatRequest& request,
                                 double math_accuracy = kDefaultMathAccuracy);

// Makes every choice's content `bytes` long (--answer-bytes): the generated
// text repeated, cut at a UTF-8 character boundary (so up to 3 bytes short),
// with the token counts of the new content. For tests of large answers.
void ResizeAnswers(size_t bytes, SimCompletion* completion);

// Renders the chat.completion JSON body. `id` is the whole id
// ("chatcmpl-..."); `created` is Unix seconds.
std::string RenderCompletionJson(const SimCompletion& completion,
                                 std::string_view id, int64_t created);

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_ANSWER_GENERATOR_H_
