// ChatRequest: an OpenAI Chat Completions request as teacher-sim understands
// it, and its validation. Parsing rejects what OpenAI would reject with a 400
// and names the offending parameter the way OpenAI does, so clients see
// realistic invalid_request_error bodies.
// Thread-safe: values and pure functions.
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_CHAT_REQUEST_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_CHAT_REQUEST_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace distillery::teacher_sim {

struct SimMessage {
  std::string role;
  // The text; a list of text parts is joined with "\n".
  std::string content;
};

// A function the client offers (OpenAI tools[].function, Anthropic tools[]).
struct SimTool {
  std::string name;
  std::string description;
  // Its parameters (OpenAI) or input_schema (Anthropic) as compact JSON
  // text; "" when the tool takes none.
  std::string parameters;
};

// tool_choice, in OpenAI's words (Anthropic's "any" is kRequired, its
// {"type":"tool"} kNamed).
enum class ToolChoice { kAuto, kNone, kRequired, kNamed };

struct ChatRequest {
  std::string model;
  std::vector<SimMessage> messages;  // never empty once parsed
  // max_completion_tokens, else max_tokens; counts reasoning tokens too.
  std::optional<int64_t> max_tokens;
  int n = 1;
  std::optional<int64_t> seed;
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::vector<std::string> stop;
  // stream: answer as text/event-stream; include_usage: stream_options'
  // include_usage (a final usage chunk).
  bool stream = false;
  bool include_usage = false;
  // Reason whatever the model's name (Anthropic's thinking: enabled); a
  // model named "*reasoner*" reasons anyway. 0 budget: unlimited.
  bool force_reasoning = false;
  int64_t reasoning_budget = 0;

  // logprobs: true, and top_logprobs' K (0..20). OpenAI only.
  bool logprobs = false;
  int top_logprobs = 0;

  // Offered tools and how the answer may use them. tool_name: the tool of
  // ToolChoice::kNamed, which is one of `tools`.
  std::vector<SimTool> tools;
  ToolChoice tool_choice = ToolChoice::kAuto;
  std::string tool_name;
  // The conversation ends on a tool's result (an OpenAI "tool" message, an
  // Anthropic tool_result block), which the answer then reports in text.
  bool after_tool_result = false;
  std::string tool_result;
  // The API speaks before it calls a tool (Anthropic's text block).
  bool text_before_tool_call = false;

  // Structured output (OpenAI's response_format json_schema): the content
  // is JSON text of a value of `output_schema` (compact JSON text).
  bool structured_output = false;
  std::string output_schema;
  // Anthropic's structured output: a forced tool, whose input is the value.
  bool tool_input_is_output = false;
  // How many times this exact body was seen before by the server; set by
  // the handler for structured output so that asking again can change
  // whether the answer is good.
  int64_t repeat = 0;
};

// True when the answer is JSON that --json-invalid-rate may spoil.
inline bool AnswersWithJson(const ChatRequest& request) {
  return request.structured_output || request.tool_input_is_output;
}

// True when the answer to `request` is a tool call rather than text.
bool AnswersWithToolCall(const ChatRequest& request);

// The tool that call uses: tool_choice's, else the first.
const SimTool& ChosenTool(const ChatRequest& request);

// What an OpenAI 400 body says: the message, the parameter ("" for null)
// and the error code ("" for null).
struct InvalidRequest {
  std::string message;
  std::string param;
  std::string code;
};

// Parses and validates a request body. On success fills *request and
// returns OK; otherwise returns INVALID_ARGUMENT and fills *error.
// Reads n, logprobs, top_logprobs, tools, tool_choice and response_format
// (json_schema; other types answer text as before); other unknown fields
// are ignored. Tool messages and assistant tool_calls parse; a conversation
// ending on a tool message sets after_tool_result.
absl::Status ParseChatRequest(std::string_view body, ChatRequest* request,
                              InvalidRequest* error);

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_CHAT_REQUEST_H_
