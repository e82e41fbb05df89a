// Fuzzes the SSE parser: the same bytes fed whole and split at every point
// the first byte picks must give the same events.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/teacher/sse_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = 1 + data[0] % 17;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1,
                              size - 1);
  bool whole_truncated = false;
  const std::vector<distillery::SseEvent> whole =
      distillery::ParseSseStream(body, &whole_truncated);

  distillery::SseParser parser;
  std::vector<distillery::SseEvent> pieces;
  for (size_t at = 0; at < body.size(); at += step) {
    parser.Feed(body.substr(at, step), &pieces);
  }
  const bool truncated = parser.Finish();
  if (truncated != whole_truncated || pieces.size() != whole.size()) {
    __builtin_trap();
  }
  for (size_t i = 0; i < whole.size(); ++i) {
    if (pieces[i].event != whole[i].event || pieces[i].data != whole[i].data ||
        pieces[i].id != whole[i].id) {
      __builtin_trap();
    }
  }
  return 0;
}
