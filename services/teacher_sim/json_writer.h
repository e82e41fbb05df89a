// JsonWriter: teacher-sim's small streaming JSON serializer. The simulator
// writes every response body with it. It stays because it pays: on the
// simulator's own response shapes it is 5-10x faster than building an
// nlohmann::ordered_json and dumping the same bytes: 2.8 us against 23 us
// for a 2 KB chat.completion, 0.65 us against 3.1 us per streamed delta
// (bench/micro/sim_json_bench.cc, figures in bench/results.md), and a
// streamed answer is a hundred deltas.
//
// Strings go through common/base/json_string.h's AppendJsonString, the one
// home of UTF-8 checking and JSON escaping: the bytes nlohmann's dump writes,
// invalid UTF-8 replaced by U+FFFD, so the output is always valid JSON.
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_JSON_WRITER_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_JSON_WRITER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace distillery::teacher_sim {

// Builds one compact JSON document, inserting commas and colons itself.
// The caller keeps the structure well formed (Key only directly inside an
// object, every Begin matched by an End); violations are bugs and assert.
// Not thread-safe.
class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(std::string_view key);
  JsonWriter& String(std::string_view value);
  JsonWriter& Int(int64_t value);
  // Shortest round-tripping form; NaN and infinities become null.
  JsonWriter& Double(double value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // A value that is already JSON text (a rendered answer), copied as is.
  JsonWriter& Raw(std::string_view json);

  // The document so far; complete once every scope has been closed.
  const std::string& str() const { return out_; }
  std::string Release() { return std::move(out_); }

 private:
  enum class Scope { kObject, kArray };
  struct Frame {
    Scope scope;
    bool empty = true;
  };
  // Emits the separator a value needs at the current position.
  void BeforeValue();

  std::string out_;
  std::vector<Frame> stack_;
  bool after_key_ = false;
};

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_JSON_WRITER_H_
