// A test-side checker of the JSON schema subset teacher-sim generates values
// for (schema_value.h): type (one or a list), properties and required,
// items, enum and const. Written apart from the generator so that the tests
// do not grade the generator with its own reading of a schema.
#ifndef DISTILLERY_TESTS_UNIT_TEACHER_SIM_SCHEMA_MATCHER_H_
#define DISTILLERY_TESTS_UNIT_TEACHER_SIM_SCHEMA_MATCHER_H_

#include <string>

#include "nlohmann/json.hpp"

namespace distillery::teacher_sim::testing {

// True when `value` is of JSON type `type` ("integer" also matches a
// whole number).
inline bool HasType(const nlohmann::json& value, const std::string& type) {
  if (type == "object") return value.is_object();
  if (type == "array") return value.is_array();
  if (type == "string") return value.is_string();
  if (type == "integer") return value.is_number_integer();
  if (type == "number") return value.is_number();
  if (type == "boolean") return value.is_boolean();
  if (type == "null") return value.is_null();
  return false;
}

// True when `value` matches `schema`; otherwise false with the reason in
// *why.
inline bool MatchesSchema(const nlohmann::json& value,
                          const nlohmann::json& schema, std::string* why) {
  if (!schema.is_object()) return true;
  if (schema.contains("const") && value != schema["const"]) {
    *why = "not the const";
    return false;
  }
  if (schema.contains("enum")) {
    for (const auto& e : schema["enum"]) {
      if (e == value) return true;
    }
    *why = value.dump() + " not in enum";
    return false;
  }
  if (schema.contains("type")) {
    const nlohmann::json& type = schema["type"];
    bool ok = false;
    if (type.is_string()) ok = HasType(value, type);
    for (const auto& t : type.is_array() ? type : nlohmann::json::array()) {
      ok = ok || HasType(value, t);
    }
    if (!ok) {
      *why = value.dump() + " is not of type " + type.dump();
      return false;
    }
  }
  if (value.is_object()) {
    for (const auto& name : schema.value("required", nlohmann::json::array())) {
      if (!value.contains(name.get<std::string>())) {
        *why = "missing required " + name.get<std::string>();
        return false;
      }
    }
    const nlohmann::json props =
        schema.value("properties", nlohmann::json::object());
    for (const auto& [key, sub] : value.items()) {
      if (props.contains(key) && !MatchesSchema(sub, props[key], why)) {
        *why = key + ": " + *why;
        return false;
      }
    }
  }
  if (value.is_array() && schema.contains("items")) {
    for (const auto& item : value) {
      if (!MatchesSchema(item, schema["items"], why)) return false;
    }
  }
  return true;
}

}  // namespace distillery::teacher_sim::testing

#endif  // DISTILLERY_TESTS_UNIT_TEACHER_SIM_SCHEMA_MATCHER_H_
