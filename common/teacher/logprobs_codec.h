// Logprobs codec: an answer's per-token logprobs (TokenLogprob, teacher.h)
// in a compact binary form for Answer.logprobs, instead of the provider's
// JSON (about 400 bytes a token with five alternatives, UTF-8 byte arrays
// included). The form, all integers LEB128 varints:
//
//   version (1) | token count | dictionary size | dictionary entries (length,
//   bytes), each distinct token string once, in first use order |
//   per token: dictionary index of the chosen token, its quantised logprob,
//   (alternatives << 1 | first alternative is the chosen token), then each
//   alternative (but a first one equal to the chosen token) as dictionary
//   index and the zigzag difference of its quantised logprob from the one
//   before it (alternatives come best first, so the differences are small).
//
// A logprob is kept as round(-logprob * 1024): steps of about 0.001 nat,
// so a probability is off by at most 0.05% of itself. That is below what a
// logit-distillation loss can tell, and it makes a token with five
// alternatives cost about 20 bytes (bench: `make bench`, "logprobs").
// Positive logprobs (never sent) are stored as 0; below -2,000,000 clamps.
// Pure and thread-safe.
#ifndef DISTILLERY_COMMON_TEACHER_LOGPROBS_CODEC_H_
#define DISTILLERY_COMMON_TEACHER_LOGPROBS_CODEC_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/teacher/teacher.h"

namespace distillery {

// "" for no tokens.
std::string EncodeLogprobs(const std::vector<TokenLogprob>& tokens);

// The tokens of EncodeLogprobs's output (logprobs at their quantised
// values). DATA_LOSS naming the fault for bytes it did not write: never
// reads out of bounds, never allocates more than the input can describe.
absl::StatusOr<std::vector<TokenLogprob>> DecodeLogprobs(std::string_view data);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_TEACHER_LOGPROBS_CODEC_H_
