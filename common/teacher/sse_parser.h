// SseParser: an incremental parser for Server-Sent Events
// (text/event-stream, WHATWG HTML "Parsing an event stream"), the framing
// both OpenAI and Anthropic use for streamed answers. Feed it bytes in
// whatever pieces they arrive; it hands back each complete event.
//
// Handled: `data:` lines (several in one event are joined with "\n"),
// `event:` and `id:` lines, `:` comments (keep-alives such as DeepSeek's
// ": keep-alive"), an optional single space after the colon, LF, CRLF and
// lone CR line ends (also when a CRLF is split across two Feed calls), and a
// UTF-8 byte order mark at the very start. An event is dispatched at a blank
// line; an event with no data lines is dropped, as the spec says. `retry:`
// and unknown fields are ignored. "[DONE]" is not special here: it is the
// data of an ordinary event, for the adapter to recognise.
//
// Not thread-safe; one parser per stream.
#ifndef DISTILLERY_COMMON_TEACHER_SSE_PARSER_H_
#define DISTILLERY_COMMON_TEACHER_SSE_PARSER_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace distillery {

struct SseEvent {
  std::string event;  // the `event:` field, "" when none (means "message")
  std::string data;   // the data lines joined with "\n"
  std::string id;     // the last `id:` seen in the stream, "" when none
};

class SseParser {
 public:
  // Parses `bytes` and appends every event they complete to `*out`. Returns
  // the number appended.
  size_t Feed(std::string_view bytes, std::vector<SseEvent>* out);

  // Ends the stream. An event whose blank line never came is discarded, as
  // the spec says; returns true if such an unfinished event (data lines
  // without their terminating blank line) was pending, which the caller may
  // treat as a truncated stream.
  bool Finish();

  // Comment lines seen so far (keep-alives), for tests and metrics.
  size_t comments() const { return comments_; }

 private:
  void ProcessLine(std::string_view line, std::vector<SseEvent>* out,
                   size_t* added);

  std::string line_;          // the current, unfinished line
  bool after_cr_ = false;     // the last byte was CR: skip an LF next
  bool at_start_ = true;      // nothing fed yet (for the BOM)
  std::string bom_buffer_;    // the first bytes, until the BOM is decided
  bool has_data_ = false;     // the pending event has a data line
  SseEvent pending_;
  std::string last_id_;
  size_t comments_ = 0;
};

// Parses a whole stream at once: every complete event, in order. `truncated`
// (optional) is set as Finish() returns.
std::vector<SseEvent> ParseSseStream(std::string_view body,
                                     bool* truncated = nullptr);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_TEACHER_SSE_PARSER_H_
