// Structured-output checks: does a teacher's answer hold one JSON value that
// matches the user's JSON Schema? The schema is compiled once by valijson
// (draft 7, the subset valijson 1.0 supports) and every answer is checked
// against it. Teachers often wrap JSON in a markdown fence, so a single
// ```json ... ``` (or bare ``` ... ```) fence around the answer is accepted.
//
// Answers and schemas are hostile input: both pass CheckJsonDepth before
// nlohmann parses them, and valijson's std::regex (which recurses once per
// input character and overflows the stack on a string of ~50,000 bytes) is
// never run on an answer: 'pattern' and the 'date', 'time' and 'date-time'
// formats are matched with RE2 instead, and 'patternProperties' (whose keys
// valijson would match with std::regex) is refused when the schema is made.
// So a pattern must be one RE2 accepts (no lookaround, no backreferences).
//
// Error messages are short and never quote more of an answer than a short
// excerpt with control bytes replaced, so they are safe to log and store.
#ifndef DISTILLERY_COMMON_VERIFY_JSON_SCHEMA_H_
#define DISTILLERY_COMMON_VERIFY_JSON_SCHEMA_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace valijson {
class Schema;
}

namespace distillery {

// The largest schema Create accepts.
inline constexpr size_t kMaxJsonSchemaBytes = 1 << 20;

// A compiled JSON Schema (draft 7 subset valijson supports) that answers are
// checked against.
// Thread-safe: immutable once made; Validate may be called concurrently.
class JsonSchemaValidator {
 public:
  // INVALID_ARGUMENT naming what is wrong when `schema_json` is not JSON, not
  // an object, nested deeper than kMaxJsonDepth, larger than
  // kMaxJsonSchemaBytes, or not a schema valijson can compile (including a
  // 'pattern' RE2 rejects and any 'patternProperties'). Never throws.
  static absl::StatusOr<std::unique_ptr<JsonSchemaValidator>> Create(
      std::string_view schema_json);

  JsonSchemaValidator(const JsonSchemaValidator&) = delete;
  JsonSchemaValidator& operator=(const JsonSchemaValidator&) = delete;
  ~JsonSchemaValidator();

  // OK when `answer` is JSON text (surrounding whitespace and a single
  // markdown fence allowed) whose value matches the schema. Otherwise
  // INVALID_ARGUMENT: "answer is not JSON: <why>", "answer nests deeper than
  // 64 levels", or "answer does not match the schema: <path>: <first
  // error>", with <path> a JSON Pointer ("/items/0/name", "(root)" for the
  // top level). At most ~300 bytes. Never throws.
  absl::Status Validate(std::string_view answer) const;

  // The answer's JSON value re-serialised compactly (nlohmann dump()), after
  // stripping a fence; for exports. INVALID_ARGUMENT like Validate when it
  // does not parse. Never throws.
  static absl::StatusOr<std::string> CanonicalJson(std::string_view answer);

 private:
  explicit JsonSchemaValidator(std::unique_ptr<const valijson::Schema> schema);

  std::unique_ptr<const valijson::Schema> schema_;
};

// A name for the schema read from `file_path`, fit for OpenAI's
// json_schema.name (^[a-zA-Z0-9_-]{1,64}$): the file's base name without its
// extension, other characters replaced by '_', cut to 64 characters;
// "schema" when that leaves nothing.
std::string SchemaNameOf(std::string_view file_path);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_VERIFY_JSON_SCHEMA_H_
