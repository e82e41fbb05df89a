// WireFormat: what one teacher API looks like on the wire. HttpTeacher
// (http_teacher.h) owns everything the APIs share: sending through the
// HttpClient, timeouts and the response cap, extra headers, failure
// classification (http_failure.h), retry-after, rate-limit headers and
// keeping the API key out of every result. A format owns only what differs:
// the URL, its own headers, the request body, and reading a 2xx body (plain
// or streamed) into a TeacherResult. A new API is a new WireFormat.
//
// Implementations: OpenAiChatFormat (openai_chat_format.h, Chat Completions
// and the servers that speak it) and AnthropicMessagesFormat
// (anthropic_messages_format.h). They are immutable after construction, so
// thread-safe; HttpTeacher shares one among all calls in flight.
#ifndef DISTILLERY_COMMON_TEACHER_WIRE_FORMAT_H_
#define DISTILLERY_COMMON_TEACHER_WIRE_FORMAT_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/http/http_client.h"
#include "common/teacher/teacher.h"

namespace distillery {

class WireFormat {
 public:
  virtual ~WireFormat() = default;

  // The API's name for messages ("OpenAI", "Anthropic").
  virtual std::string_view api_name() const = 0;

  // OK, or INVALID_ARGUMENT naming the first bad format option. Never
  // mentions an API key (a format holds none).
  virtual absl::Status Validate() const = 0;

  // The URL a request goes to, from the profile's base_url.
  virtual std::string Url(std::string_view base_url) const = 0;

  // The format's own headers, in the order they are sent: content type,
  // Accept for a stream, the API's auth header carrying `api_key` (none when
  // it is empty), version headers. HttpTeacher appends the extra headers.
  virtual HttpHeaders Headers(std::string_view api_key) const = 0;

  // The JSON body for `request`. INVALID_ARGUMENT for a request the API
  // cannot carry (bad UTF-8, non-finite numbers, ...). Never throws.
  virtual absl::StatusOr<std::string> BuildBody(
      const TeacherRequest& request) const = 0;

  // Reads the body of a 2xx response (a stream when the format asks for
  // one): OK with the answer and raw_body holding `body` verbatim, or a
  // failure as http_failure.h classifies an error object, or kRetryable
  // UNAVAILABLE for a body that is not a usable answer. Never throws.
  virtual TeacherResult ParseBody(std::string body) const = 0;
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_TEACHER_WIRE_FORMAT_H_
