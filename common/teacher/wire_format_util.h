// Pieces every WireFormat (openai_chat_format, anthropic_messages_format)
// shares when it builds a body or reads one: JSON field readers that never
// throw on a wrong type, parsing a body or a stream event into a JSON object
// within the nesting limit, the "unusable 2xx body" and "error object"
// results, the sampling checks, and the request-body error.
//
// Internal to common/teacher: includes nlohmann/json, so it belongs in the
// formats' .cc files, never in a public header. All functions are pure and
// thread-safe.
#ifndef DISTILLERY_COMMON_TEACHER_WIRE_FORMAT_UTIL_H_
#define DISTILLERY_COMMON_TEACHER_WIRE_FORMAT_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/teacher/teacher.h"
#include "nlohmann/json.hpp"

namespace distillery::wire {

// A 2xx whose body is not a usable answer: kRetryable, UNAVAILABLE (the
// teacher, or the path to it, garbled this answer; the next attempt may be
// fine), http_status 200, quoting the start of `body`.
TeacherResult BadBody(std::string_view why, std::string_view body);

// A failure caught as an exception where none was expected: kRetryable,
// INTERNAL.
TeacherResult UnexpectedException(const char* where, const char* what);

// A 200 whose body (or, `in_stream`, one stream event `data`) is an error
// object: classified as http_failure.h's TeacherErrorResult says, its
// message prefixed "in the stream: " for a stream event.
TeacherResult ErrorInBody(std::string_view data, bool in_stream);

// JSON readers: 0 / "" / nullptr when the field is absent or of another
// type. IntField accepts integers and integral floats, clamped to int64.
int64_t IntField(const nlohmann::json& object, const char* name);
std::string StringField(const nlohmann::json& object, const char* name);
const nlohmann::json* ObjectField(const nlohmann::json& object,
                                  const char* name);

// Parses a whole 2xx `body` into `*doc`. nullopt when it is a JSON object
// within kMaxJsonDepth (json_depth.h); else the BadBody result saying why.
std::optional<TeacherResult> ParseJsonObject(std::string_view body,
                                             nlohmann::json* doc);

// As ParseJsonObject for one stream event's `data`; the failure quotes the
// whole stream `body`.
std::optional<TeacherResult> ParseStreamEvent(std::string_view data,
                                              std::string_view body,
                                              nlohmann::json* doc);

// INVALID_ARGUMENT for a temperature or top_p that is not finite (JSON
// cannot carry it), else OK.
absl::Status CheckSamplingNumbers(const SamplingParams& params);

// A request's JSON text (tools, tool_choice, tool_calls, a JSON schema:
// checked at submission, parsed again per request) as a value to put in a
// body. INVALID_ARGUMENT naming `what` when it is not JSON within
// kMaxJsonDepth.
absl::StatusOr<nlohmann::ordered_json> ParseRequestJson(const std::string& text,
                                                        const char* what);

// Whether `schema` meets OpenAI's strict structured outputs: every object
// schema lists all its properties as required and sets
// additionalProperties false, all the way down. Strict mode is asked for
// only then; another schema is sent without it (a strict server would
// refuse it) and the answers are validated anyway.
bool StrictSchemaCompatible(const nlohmann::ordered_json& schema);

// Parses a 2xx body into a result; may throw (nlohmann).
using BodyParser = TeacherResult (*)(std::string body);

// `parse` on `body`, with an exception turned into a failed result that
// says it happened while `what` (e.g. "parsing the teacher's answer").
TeacherResult ParseCatching(BodyParser parse, std::string body,
                            const char* what);

// The error for a request body that could not be built: INVALID_ARGUMENT
// for what JSON cannot encode (a bad UTF-8 byte), INTERNAL otherwise.
absl::Status RequestBodyError(const std::exception& e);

}  // namespace distillery::wire

#endif  // DISTILLERY_COMMON_TEACHER_WIRE_FORMAT_UTIL_H_
