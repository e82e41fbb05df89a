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
};

// What an OpenAI 400 body says: the message, the parameter ("" for null)
// and the error code ("" for null).
struct InvalidRequest {
  std::string message;
  std::string param;
  std::string code;
};

// Parses and validates a request body. On success fills *request and
// returns OK; otherwise returns INVALID_ARGUMENT and fills *error.
// Unknown fields (tools, response_format, ...) are ignored.
absl::Status ParseChatRequest(std::string_view body, ChatRequest* request,
                              InvalidRequest* error);

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_CHAT_REQUEST_H_
