// JsonWriter: teacher-sim's own small JSON serializer. The simulator writes
// every response body with it, deliberately sharing no code with the JSON
// parser the Distillery client uses, so a bug in one cannot hide a bug in the
// other.
//
// Strings are escaped as RFC 8259 requires (quote, backslash, control
// characters); valid UTF-8 passes through unchanged and each byte of an
// invalid UTF-8 sequence becomes U+FFFD, so the output is always valid JSON.
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_JSON_WRITER_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_JSON_WRITER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace distillery::teacher_sim {

// Appends `s` to `*out` as a quoted, escaped JSON string.
void AppendJsonString(std::string_view s, std::string* out);

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
