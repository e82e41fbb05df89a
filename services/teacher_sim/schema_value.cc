#include "services/teacher_sim/schema_value.h"

#include <algorithm>
#include <array>
#include <vector>

#include "common/base/json_string.h"
#include "nlohmann/json.hpp"
#include "services/teacher_sim/sim_ids.h"

namespace distillery::teacher_sim {
namespace {

using Json = nlohmann::json;

constexpr int kMaxDepth = 16;
constexpr int64_t kMaxItems = 5;
constexpr int64_t kNumberSpan = 100;
constexpr std::array kStockWords = {"alpha", "bravo", "charlie", "delta",
                                    "echo",  "foxtrot"};

// SplitMix64 steps, as the rest of the simulator draws its randomness.
class Draw {
 public:
  explicit Draw(uint64_t seed) : state_(seed) {}
  uint64_t Next() { return Mix64(state_++); }
  int64_t Between(int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    return lo + static_cast<int64_t>(Next() % static_cast<uint64_t>(hi - lo + 1));
  }

 private:
  uint64_t state_;
};

std::vector<std::string> SplitWords(std::string_view text) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\n' ||
                               text[i] == '\t' || text[i] == '\r')) {
      ++i;
    }
    const size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\n' &&
           text[i] != '\t' && text[i] != '\r') {
      ++i;
    }
    if (i > start) words.emplace_back(text.substr(start, i - start));
  }
  if (words.empty()) words.assign(kStockWords.begin(), kStockWords.end());
  return words;
}

class Generator {
 public:
  Generator(uint64_t hash, const SchemaValueOptions& options)
      : draw_(hash), options_(options), words_(SplitWords(options.words)) {}

  Json Value(const Json& schema, int depth) {
    if (!schema.is_object() || depth > kMaxDepth) return Json::object();
    if (auto c = schema.find("const"); c != schema.end()) return *c;
    if (auto e = schema.find("enum");
        e != schema.end() && e->is_array() && !e->empty()) {
      return e->front();
    }
    for (const char* key : {"anyOf", "oneOf", "allOf"}) {
      if (auto branches = schema.find(key);
          branches != schema.end() && branches->is_array() &&
          !branches->empty()) {
        return Value(branches->front(), depth + 1);
      }
    }
    const std::string type = TypeOf(schema);
    if (type == "object") return Object(schema, depth);
    if (type == "array") return Array(schema, depth);
    if (type == "integer") return Integer(schema);
    if (type == "number") return Integer(schema) + 0.5;
    if (type == "boolean") return (draw_.Next() & 1) == 1;
    if (type == "null") return nullptr;
    return Words();
  }

 private:
  static std::string TypeOf(const Json& schema) {
    auto type = schema.find("type");
    if (type != schema.end() && type->is_string()) {
      return type->get<std::string>();
    }
    if (type != schema.end() && type->is_array()) {
      for (const Json& t : *type) {
        if (t.is_string() && t != "null") return t.get<std::string>();
      }
      return "null";
    }
    if (schema.contains("properties")) return "object";
    if (schema.contains("items")) return "array";
    return "string";
  }

  Json Object(const Json& schema, int depth) {
    Json out = Json::object();
    const Json empty = Json::object();
    auto properties = schema.find("properties");
    const Json& props = properties != schema.end() && properties->is_object()
                            ? *properties
                            : empty;
    if (options_.all_properties) {
      for (const auto& [name, sub] : props.items()) {
        out[name] = Value(sub, depth + 1);
      }
    }
    if (auto required = schema.find("required");
        required != schema.end() && required->is_array()) {
      for (const Json& name : *required) {
        if (!name.is_string() || out.contains(name.get<std::string>())) {
          continue;
        }
        auto sub = props.find(name.get<std::string>());
        out[name.get<std::string>()] =
            sub != props.end() ? Value(*sub, depth + 1) : Json(Words());
      }
    }
    return out;
  }

  Json Array(const Json& schema, int depth) {
    int64_t count = 1;
    if (auto min = schema.find("minItems");
        min != schema.end() && min->is_number_integer()) {
      count = std::clamp<int64_t>(min->get<int64_t>(), 1, kMaxItems);
    }
    const Json any = Json::object();
    auto items = schema.find("items");
    const Json& item = items != schema.end() ? *items : any;
    Json out = Json::array();
    for (int64_t i = 0; i < count; ++i) out.push_back(Value(item, depth + 1));
    return out;
  }

  int64_t Integer(const Json& schema) {
    auto bound = [&](const char* key, int64_t fallback) {
      auto it = schema.find(key);
      return it != schema.end() && it->is_number()
                 ? static_cast<int64_t>(it->get<double>())
                 : fallback;
    };
    const int64_t lo = bound("minimum", 1);
    const int64_t hi = bound("maximum", lo + kNumberSpan);
    return draw_.Between(lo, hi);
  }

  std::string Words() {
    const size_t count = 1 + draw_.Next() % 4;
    const size_t start = draw_.Next() % words_.size();
    std::string out;
    for (size_t i = 0; i < count && start + i < words_.size(); ++i) {
      if (!out.empty()) out.push_back(' ');
      out += words_[start + i];
    }
    return out;
  }

  Draw draw_;
  const SchemaValueOptions& options_;
  const std::vector<std::string> words_;
};

// A value of another JSON type than `value`.
Json OtherType(const Json& value) {
  if (value.is_string()) return 12345;
  if (value.is_number()) return "not a number";
  if (value.is_boolean()) return "yes";
  return "unexpected text";
}

// The name of the property to spoil: the first required one present, else
// the first one; "" for none.
std::string Victim(const Json& value, const Json& schema) {
  auto required = schema.is_object() ? schema.find("required") : schema.end();
  if (schema.is_object() && required != schema.end() &&
      required->is_array()) {
    for (const Json& name : *required) {
      if (name.is_string() && value.contains(name.get<std::string>())) {
        return name.get<std::string>();
      }
    }
  }
  return value.empty() ? "" : value.begin().key();
}

bool IsRequired(const Json& schema, const std::string& name) {
  if (!schema.is_object()) return false;
  auto required = schema.find("required");
  return required != schema.end() && required->is_array() &&
         std::find(required->begin(), required->end(), name) !=
             required->end();
}

void BreakSchema(const Json& schema, SchemaFault fault, Json* value) {
  if (!value->is_object()) {
    *value = OtherType(*value);
    return;
  }
  const std::string victim = Victim(*value, schema);
  if (victim.empty()) {
    (*value)["unexpected_property"] = true;
  } else if (fault == SchemaFault::kMissingRequired &&
             IsRequired(schema, victim)) {
    value->erase(victim);
  } else {
    (*value)[victim] = OtherType((*value)[victim]);
  }
}

// A proper prefix of `text` that does not parse: a JSON text cut short.
std::string CutShort(const std::string& text) {
  std::string cut(Utf8Prefix(text, std::max<size_t>(1, text.size() / 2)));
  if (cut.size() >= text.size()) cut = text.substr(0, text.size() - 1);
  if (Json::accept(cut)) cut += "\"";  // a number's prefix is a number
  return cut;
}

}  // namespace

std::string GenerateSchemaJson(std::string_view schema_text, uint64_t hash,
                               const SchemaValueOptions& options) {
  Json schema = Json::parse(schema_text, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded() || !schema.is_object()) schema = Json::object();
  // An empty schema (a tool without parameters) takes an empty object.
  Json value = schema.empty() ? Json::object()
                              : Generator(hash, options).Value(schema, 0);
  switch (options.fault) {
    case SchemaFault::kNone:
      break;
    case SchemaFault::kUnparsable:
      return CutShort(
          value.dump(-1, ' ', false, Json::error_handler_t::replace));
    case SchemaFault::kWrongType:
    case SchemaFault::kMissingRequired:
      BreakSchema(schema, options.fault, &value);
      break;
  }
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace distillery::teacher_sim
