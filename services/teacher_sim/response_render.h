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

// OpenAI: per choice a role chunk, reasoning_content deltas (reasoning
// models), content deltas (with completion.logprobs, a few tokens each with
// their "logprobs":{"content":[...]}) and a finish_reason chunk, each
// carrying the choice's index; the choices take turns chunk by chunk. A
// tool call streams as OpenAI does: a delta with content null and the
// call's id, type, name and "arguments":"", then argument pieces, then
// finish_reason "tool_calls". With `include_usage` a "choices":[] chunk of
// the summed usage follows; then "data: [DONE]".
std::string RenderChatStream(const SimCompletion& completion,
                             std::string_view id, int64_t created,
                             bool include_usage);

// How an Anthropic answer shows its thinking.
struct MessageShape {
  bool thinking = false;  // a thinking block, with its signature
  bool redacted = false;  // and a redacted_thinking block after it
};

// Anthropic's "end_turn" / "max_tokens" / "tool_use" for OpenAI's "stop" /
// "length" / "tool_calls".
std::string AnthropicStopReason(std::string_view finish_reason);

// A deterministic base64-looking signature for a thinking text.
std::string ThinkingSignature(std::string_view thinking);

// {"id","type":"message","role","model","content":[thinking?, redacted?,
// text, tool_use?],"stop_reason","stop_sequence":null,"usage":{...}}; a
// tool call without words before it (a forced tool) has no text block.
std::string RenderMessageJson(const SimCompletion& completion,
                              std::string_view id, MessageShape shape);

// The Messages event stream: message_start, ping, a content block per
// block (thinking_delta + signature_delta, redacted_thinking whole,
// text_delta, a tool_use block opened with "input":{} and filled by
// input_json_delta pieces), message_delta (stop_reason, output_tokens),
// message_stop.
std::string RenderMessageStream(const SimCompletion& completion,
                                std::string_view id, MessageShape shape);

// {"type":"error","error":{"type":..,"message":..}}.
std::string RenderAnthropicErrorJson(std::string_view type,
                                     std::string_view message);

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_RESPONSE_RENDER_H_
