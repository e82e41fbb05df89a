// Row templates (`distillery submit --template FILE --input ROWS.jsonl`):
// turn a dataset's rows (JSON objects with, say, "question" and "answer")
// into prompt-file lines without a script. The template is text with
// {{field}} (or {{ field }}) placeholders; each is replaced by the row's
// field: a string as it is, a number or boolean as its JSON text. Strict: a
// row missing a field the template uses, or whose field is null, an object
// or an array, is an error naming the row and the field, never an empty
// string.
//
// The line made from a row: {"prompt": the rendered text} plus the row's
// "id", "system", "max_tokens" and "temperature" as they are (the prompt
// parser checks them; they override the job's), and its other fields, those
// the template does not use, as "metadata" (e.g. the reference "answer").
// Thread-safe: a RowTemplate is immutable once parsed.
#ifndef DISTILLERY_COMMON_DATASET_ROW_TEMPLATE_H_
#define DISTILLERY_COMMON_DATASET_ROW_TEMPLATE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace distillery {

class RowTemplate {
 public:
  // INVALID_ARGUMENT for an unclosed "{{", an empty placeholder, or a field
  // name that is not letters, digits, '_', '-' and '.'; or a template with
  // no placeholder (every prompt would be the same).
  static absl::StatusOr<RowTemplate> Parse(std::string_view text);

  // The fields the template uses, each once, in order of first use.
  const std::vector<std::string>& fields() const { return fields_; }

  // The prompt-file line for row `row_number` (1-based), whose JSON text is
  // `row`. INVALID_ARGUMENT "row N: ...".
  absl::StatusOr<std::string> Render(std::string_view row,
                                     int64_t row_number) const;

 private:
  struct Piece {
    std::string text;  // literal text, or the field name
    bool field = false;
  };
  std::vector<Piece> pieces_;
  std::vector<std::string> fields_;
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_DATASET_ROW_TEMPLATE_H_
