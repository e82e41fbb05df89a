// JsonSpans: where the values of a JSON document are, as views into its
// text, without decoding them. teacher-sim's batch endpoints use it to take
// each request of a batch exactly as the client wrote it (the bytes an online
// call of the same request would have sent), so its stats see a request sent
// once by batch and once online as the same request.
//
// A small, strict scanner: strings (with escapes; no raw control bytes),
// numbers, true/false/null, objects and arrays, nested at most 128 deep.
// Keys are returned as written between their quotes (escapes undecoded).
// Thread-safe: free functions over their arguments.
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_JSON_SPANS_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_JSON_SPANS_H_

#include <string_view>
#include <utility>
#include <vector>

namespace distillery::teacher_sim {

using JsonMember = std::pair<std::string_view, std::string_view>;

// The members of the object `text` (surrounding whitespace allowed), in
// order. False when `text` is not one well-formed JSON object.
bool ObjectMembers(std::string_view text, std::vector<JsonMember>* members);

// The elements of the array `text`. False when it is not one JSON array.
bool ArrayElements(std::string_view text,
                   std::vector<std::string_view>* elements);

// The value of member `key` in `members`, or "" when absent.
std::string_view MemberValue(const std::vector<JsonMember>& members,
                             std::string_view key);

// The content of the JSON string `value` when it holds no escapes; false for
// anything else (a number, an escaped string).
bool PlainString(std::string_view value, std::string_view* content);

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_JSON_SPANS_H_
