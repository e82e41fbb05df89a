#include "common/teacher/sse_parser.h"

#include <utility>

namespace distillery {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

}  // namespace

size_t SseParser::Feed(std::string_view bytes, std::vector<SseEvent>* out) {
  size_t added = 0;
  if (at_start_) {
    // Hold the first bytes until we know whether they are a BOM.
    bom_buffer_.append(bytes);
    if (bom_buffer_.size() < kBom.size() &&
        kBom.substr(0, bom_buffer_.size()) == bom_buffer_) {
      return 0;
    }
    at_start_ = false;
    std::string buffered = std::move(bom_buffer_);
    bom_buffer_.clear();
    std::string_view rest = buffered;
    if (rest.starts_with(kBom)) rest.remove_prefix(kBom.size());
    return Feed(rest, out);
  }
  size_t start = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (c != '\n' && c != '\r') continue;
    if (c == '\n' && after_cr_ && i == start && line_.empty()) {
      // The LF of a CRLF whose CR ended the previous piece or line.
      after_cr_ = false;
      start = i + 1;
      continue;
    }
    line_.append(bytes.substr(start, i - start));
    ProcessLine(line_, out, &added);
    line_.clear();
    after_cr_ = c == '\r';
    if (after_cr_ && i + 1 < bytes.size() && bytes[i + 1] == '\n') {
      ++i;
      after_cr_ = false;
    }
    start = i + 1;
  }
  if (start < bytes.size()) {
    after_cr_ = false;
    line_.append(bytes.substr(start));
  }
  return added;
}

void SseParser::ProcessLine(std::string_view line, std::vector<SseEvent>* out,
                            size_t* added) {
  if (line.empty()) {
    if (has_data_) {
      pending_.id = last_id_;
      out->push_back(std::move(pending_));
      ++*added;
    }
    pending_ = SseEvent{};
    has_data_ = false;
    return;
  }
  if (line.front() == ':') {
    ++comments_;
    return;
  }
  std::string_view field = line;
  std::string_view value;
  if (const size_t colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (value.starts_with(' ')) value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_) pending_.data.push_back('\n');
    pending_.data.append(value);
    has_data_ = true;
  } else if (field == "event") {
    pending_.event = std::string(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) {
      last_id_ = std::string(value);
    }
  }
}

bool SseParser::Finish() {
  if (at_start_ && !bom_buffer_.empty()) {
    // A stream shorter than a BOM that began like one: parse what it is.
    at_start_ = false;
    std::string buffered = std::move(bom_buffer_);
    std::vector<SseEvent> ignored;
    Feed(buffered, &ignored);
  }
  const bool unfinished = has_data_ || !line_.empty();
  line_.clear();
  pending_ = SseEvent{};
  has_data_ = false;
  after_cr_ = false;
  return unfinished;
}

std::vector<SseEvent> ParseSseStream(std::string_view body, bool* truncated) {
  SseParser parser;
  std::vector<SseEvent> events;
  parser.Feed(body, &events);
  const bool unfinished = parser.Finish();
  if (truncated != nullptr) *truncated = unfinished;
  return events;
}

}  // namespace distillery
