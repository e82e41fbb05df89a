// Realistic, deterministic inputs for the micro-benchmarks: English-like
// prompts and answers (a reasoning trace of ~600 bytes, an answer of ~900
// bytes with a bullet list), the response bodies teachers send for them
// (OpenAI/vLLM chat completion, its SSE stream, Anthropic Messages and its
// event stream), and a scratch directory for RocksDB.
//
// Text comes from a fixed vocabulary and a SplitMix64 generator, so every
// run and every machine sees the same bytes, and different seeds give texts
// that share no 5-word shingle (no accidental near-duplicates).
#ifndef DISTILLERY_BENCH_MICRO_BENCH_INPUTS_H_
#define DISTILLERY_BENCH_MICRO_BENCH_INPUTS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "common/config/teachers.h"
#include "common/teacher/teacher.h"
#include "distillery/v1/types.pb.h"

namespace distillery::bench {

// A typical job-level system prompt (~150 bytes).
inline constexpr std::string_view kSystemPrompt =
    "You are a careful assistant. Think the problem through step by step, "
    "then give a concise, correct answer. Use a short list when it helps.";

inline constexpr std::string_view kTeacherName = "sim";
inline constexpr std::string_view kModelName = "deepseek-r1-distill-32b";

// The teacher profile named kTeacherName (for RequestKey).
inline TeacherProfile SampleTeacherProfile() {
  TeacherProfile profile;
  profile.name = std::string(kTeacherName);
  profile.base_url = "http://127.0.0.1:9/v1";
  return profile;
}

// A user question of ~350 bytes.
std::string PromptText(uint64_t seed);
// A reasoning trace of ~600 bytes.
std::string ReasoningText(uint64_t seed);
// An answer of ~900 bytes: a paragraph, a four-item bullet list, a closing
// paragraph.
std::string AnswerText(uint64_t seed);

// One request as the worker sends it: the system prompt, one user prompt,
// max_tokens 4096, temperature 0.6, top_p 0.95, seed 7.
TeacherRequest SampleTeacherRequest(uint64_t seed);
// The same request as the coordinator holds it (for RequestKey).
v1::Prompt SamplePrompt(uint64_t seed);
v1::SamplingParams SampleParams();

// A non-streamed Chat Completions body as vLLM returns it, with the trace in
// message.reasoning and usage with completion_tokens_details.
std::string ChatCompletionBody(const std::string& content,
                               const std::string& reasoning);
// The same answer streamed (stream_options.include_usage): a role chunk, one
// chunk per token (roughly a word) of reasoning then content, a finish
// chunk, the usage chunk and [DONE].
std::string ChatCompletionStream(const std::string& content,
                                 const std::string& reasoning);
// An Anthropic Messages body with extended thinking: a signed thinking block
// and a text block.
std::string MessagesBody(const std::string& content,
                         const std::string& reasoning);
// The same answer as Anthropic streams it: message_start, thinking deltas,
// a signature delta, text deltas (a few words each), pings, message_delta
// and message_stop.
std::string MessagesStream(const std::string& content,
                           const std::string& reasoning);

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on
// destruction. Aborts if it cannot be created.
class ScratchDir {
 public:
  explicit ScratchDir(std::string_view name);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace distillery::bench

#endif  // DISTILLERY_BENCH_MICRO_BENCH_INPUTS_H_
