// MessagesRequest: an Anthropic Messages request (POST /v1/messages) as
// teacher-sim understands it. Parsing validates what the real API rejects
// with a 400 invalid_request_error (max_tokens required, roles user and
// assistant only, a thinking budget of at least 1024 below max_tokens, ...)
// and turns the request into the ChatRequest the answer generator takes:
// `system` becomes a leading system message, stop_sequences the stop list,
// thinking forces reasoning within its budget. tools and tool_choice are
// read (a forced tool is structured output: tool_input_is_output), and
// tool_use / tool_result content blocks parse; logprobs fields are ignored,
// as the real API has none.
//
// teacher-sim's own parser: it shares no code with the worker's adapters.
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_MESSAGES_REQUEST_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_MESSAGES_REQUEST_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "services/teacher_sim/chat_request.h"

namespace distillery::teacher_sim {

// On success fills *request (n = 1; stream set; force_reasoning and
// reasoning_budget from `thinking`) and returns OK; otherwise returns
// INVALID_ARGUMENT with the message the 400 body should carry in *message.
absl::Status ParseMessagesRequest(std::string_view body, ChatRequest* request,
                                  std::string* message);

// True when a Messages answer shows thinking: thinking was enabled, or the
// model's name contains "thinking" or "reasoner".
bool ShowsThinking(const ChatRequest& request);

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_MESSAGES_REQUEST_H_
