// Wire fields: a few edits and reads of serialised protobuf messages done
// on their bytes, walking the wire format without parsing them. A bulk path
// (an export, a bulk read) uses them to leave out a large field, to read a
// few small fields of a large message, or to nest stored bytes in a larger
// message, without copying or allocating the rest of it.
//
// Field numbers come from the generated code (v1::Answer::kContentFieldNumber
// and so on), never literals, so that a schema change cannot go unnoticed.
#ifndef DISTILLERY_COMMON_STORE_WIRE_FIELDS_H_
#define DISTILLERY_COMMON_STORE_WIRE_FIELDS_H_

#include <initializer_list>
#include <string>
#include <string_view>

namespace distillery {

// `bytes` (a serialised message) without its occurrences of the
// length-delimited field `field`: the field is never copied. Points `bytes`
// at `scratch` only when there was something to leave out. False when the
// bytes are not a message (groups included: no Distillery message has one).
bool WithoutField(std::string_view& bytes, int field, std::string* scratch);

// Appends to `out` the occurrences in `bytes` of the fields numbered in
// `fields`, as wire bytes: the serialisation of a message holding only
// those fields, which parses to the same values as the full message's. The
// other fields are skipped, never copied. False when the bytes are not a
// message.
bool SelectFields(std::string_view bytes, std::initializer_list<int> fields,
                  std::string* out);

// Appends a length-delimited field (a string, bytes, or a nested message's
// serialisation) to `out`.
void AppendLengthDelimited(int field, std::string_view value, std::string* out);

// The bytes AppendLengthDelimited appends for a value of `size` bytes.
size_t LengthDelimitedSize(int field, size_t size);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_STORE_WIRE_FIELDS_H_
