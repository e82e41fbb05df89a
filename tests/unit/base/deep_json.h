// Deeply nested JSON for the tests of every parser that takes JSON from
// outside (json_depth.h's limit).
#ifndef DISTILLERY_TESTS_UNIT_BASE_DEEP_JSON_H_
#define DISTILLERY_TESTS_UNIT_BASE_DEEP_JSON_H_

#include <string>

namespace distillery::testing {

// `levels` arrays one inside the other around a 0: "[[0]]" for 2.
inline std::string NestedArrays(int levels) {
  return std::string(levels, '[') + "0" + std::string(levels, ']');
}

// `levels` objects one inside the other: {"a":{"a":1}} for 2.
inline std::string NestedObjects(int levels) {
  std::string out;
  for (int i = 1; i < levels; ++i) out += "{\"a\":";
  out += "{\"a\":1}";
  out += std::string(levels - 1, '}');
  return out;
}

}  // namespace distillery::testing

#endif  // DISTILLERY_TESTS_UNIT_BASE_DEEP_JSON_H_
