// The response shapes teacher-sim writes beyond the plain chat.completion
// (answer_generator.h): OpenAI's streamed chat.completion.chunk events and
// Anthropic's Messages answer, plain and streamed. Everything is written
// with teacher-sim's own JsonWriter and its own SSE framing, sharing no code
// with the worker's parsers.
//
// A stream is rendered whole (the server sends it as one chunked
// text/event-stream body); the text is split into small deltas, a few words
// each, so a client must reassemble it as it would a real stream.
// Thread-safe: values and pure functions.
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_RESPONSE_RENDER_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_RESPONSE_RENDER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "services/teacher_sim/answer_generator.h"

namespace distillery::teacher_sim {

// `text` cut into pieces of about `words` words whose concatenation is
// `text`; none for "".
std::vector<std::string> SplitIntoDeltas(std::string_view text, int words);

// OpenAI: a role chunk, reasoning_content deltas (reasoning models), content
// deltas, a finish_reason chunk, with `include_usage` a "choices":[] usage
// chunk, then "data: [DONE]". Only choice 0 of `completion` is sent.
std::string RenderChatStream(const SimCompletion& completion,
                             std::string_view id, int64_t created,
                             bool include_usage);

// How an Anthropic answer shows its thinking.
struct MessageShape {
  bool thinking = false;  // a thinking block, with its signature
  bool redacted = false;  // and a redacted_thinking block after it
};

// Anthropic's "end_turn" / "max_tokens" for OpenAI's "stop" / "length".
std::string AnthropicStopReason(std::string_view finish_reason);

// A deterministic base64-looking signature for a thinking text.
std::string ThinkingSignature(std::string_view thinking);

// {"id","type":"message","role","model","content":[thinking?, redacted?,
// text],"stop_reason","stop_sequence":null,"usage":{...}}.
std::string RenderMessageJson(const SimCompletion& completion,
                              std::string_view id, MessageShape shape);

// The Messages event stream: message_start, ping, a content block per
// block (thinking_delta + signature_delta, redacted_thinking whole,
// text_delta), message_delta (stop_reason, output_tokens), message_stop.
std::string RenderMessageStream(const SimCompletion& completion,
                                std::string_view id, MessageShape shape);

// {"type":"error","error":{"type":..,"message":..}}.
std::string RenderAnthropicErrorJson(std::string_view type,
                                     std::string_view message);

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_RESPONSE_RENDER_H_
