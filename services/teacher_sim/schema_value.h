// SchemaValue: JSON values generated from a JSON schema, for the tool-call
// arguments and structured outputs teacher-sim answers with, and the ways a
// server without strict decoding gets them wrong.
//
// The subset clients send for tools and structured outputs: "type" (one or
// a list; "null" is taken last), "properties" with "required", "items"
// (one item, or minItems of them), "enum" and "const" (the first value),
// "anyOf"/"oneOf"/"allOf" (the first branch), "minimum"/"maximum". Without a
// type, "properties" means an object and "items" an array. Keys come out
// sorted (the request's JSON is read into an ordered map).
// Thread-safe: pure functions.
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_SCHEMA_VALUE_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_SCHEMA_VALUE_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace distillery::teacher_sim {

// How a generated value is spoiled.
enum class SchemaFault {
  kNone,
  kUnparsable,       // the text is cut off mid-value: it does not parse
  kWrongType,        // a property (else the value) has another type
  kMissingRequired,  // a required property is left out (else kWrongType)
};

struct SchemaValueOptions {
  // Objects get every property; false: only the "required" ones.
  bool all_properties = true;
  // Text whose words strings are made of (the prompt); "" for stock words.
  std::string_view words;
  SchemaFault fault = SchemaFault::kNone;
};

// Compact JSON text of a value of `schema` (JSON text; "" or text that is
// not a JSON object stands for any value: an empty object), drawn from
// `hash`. Deterministic. A kWrongType fault on an object keeps it an object
// (Anthropic's tool input must be one): on an object without properties it
// adds one, which breaks only a schema with additionalProperties false.
std::string GenerateSchemaJson(std::string_view schema, uint64_t hash,
                               const SchemaValueOptions& options);

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_SCHEMA_VALUE_H_
