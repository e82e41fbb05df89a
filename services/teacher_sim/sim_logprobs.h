// Token log-probabilities for teacher-sim's answers (OpenAI's logprobs:
// true, top_logprobs: K). The simulator's tokens are word-ish pieces: a
// run of whitespace with the word after it (" the"), or with one ASCII
// punctuation mark ("."); every byte >= 0x80 counts as a letter, so UTF-8
// characters stay whole. The tokens of a text concatenate to it exactly.
//
// Values are drawn from a hash of the choice and the token's index, so an
// answer's logprobs are as deterministic as its text. The chosen token's
// logprob is in (-2.5, 0); each alternative is at least 0.05 below the one
// before it, so all lie in [-20, 0]; values carry 6 significant digits.
// Thread-safe: values and pure functions.
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_SIM_LOGPROBS_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_SIM_LOGPROBS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "services/teacher_sim/json_writer.h"

namespace distillery::teacher_sim {

inline constexpr int kMaxTopLogprobs = 20;

struct SimTokenLogprob {
  std::string token;
  double logprob = 0;
  // The K most likely tokens, best first; [0] is `token` itself.
  std::vector<std::pair<std::string, double>> top;
};

// `text` cut into the simulator's tokens; none for "".
std::vector<std::string_view> SplitIntoTokens(std::string_view text);

// One entry per token of `text`, with `top_logprobs` (0..20) alternatives.
std::vector<SimTokenLogprob> TokenLogprobs(std::string_view text,
                                           uint64_t hash, int top_logprobs);

// Writes entries [begin, end) of `tokens` as OpenAI's logprobs.content
// array: [{"token","logprob","bytes":[...],"top_logprobs":[{"token",
// "logprob","bytes"}...]}...].
void WriteLogprobContent(const std::vector<SimTokenLogprob>& tokens,
                         size_t begin, size_t end, JsonWriter& w);

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_SIM_LOGPROBS_H_
