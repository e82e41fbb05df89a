// Tests of the values teacher-sim generates from JSON schemas for tool
// arguments and structured outputs, and of the ways it spoils them.
#include "services/teacher_sim/schema_value.h"

#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/teacher_sim/schema_matcher.h"

namespace distillery::teacher_sim {
namespace {

using Json = nlohmann::json;
using testing::MatchesSchema;

const Json kPerson = Json::parse(R"({
  "type": "object",
  "properties": {
    "name": {"type": "string"},
    "age": {"type": "integer", "minimum": 18, "maximum": 20},
    "height": {"type": "number"},
    "member": {"type": "boolean"},
    "unit": {"type": "string", "enum": ["cm", "in"]},
    "nickname": {"type": ["null", "string"]},
    "tags": {"type": "array", "items": {"type": "string"}},
    "address": {"type": "object",
                "properties": {"zip": {"type": "integer"},
                               "city": {"type": "string"}},
                "required": ["zip"]}
  },
  "required": ["name", "age", "unit", "address", "tags"]
})");

Json Generate(const Json& schema, uint64_t hash,
              SchemaValueOptions options = {}) {
  return Json::parse(GenerateSchemaJson(schema.dump(), hash, options));
}

TEST(SchemaValueTest, GivesEveryDeclaredTypeItsValue) {
  SchemaValueOptions options;
  options.words = "Describe Ada Lovelace briefly";
  const Json v = Generate(kPerson, 7, options);
  std::string why;
  EXPECT_TRUE(MatchesSchema(v, kPerson, &why)) << why << " " << v.dump();
  EXPECT_TRUE(v.at("name").is_string());
  EXPECT_GE(v.at("age").get<int64_t>(), 18);
  EXPECT_LE(v.at("age").get<int64_t>(), 20);
  EXPECT_TRUE(v.at("height").is_number());
  EXPECT_TRUE(v.at("member").is_boolean());
  EXPECT_EQ(v.at("unit"), "cm");  // an enum's first value
  EXPECT_TRUE(v.at("nickname").is_string());  // the non-null type
  ASSERT_EQ(v.at("tags").size(), 1u);
  EXPECT_TRUE(v.at("address").at("zip").is_number_integer());
  // Strings are words of the prompt.
  for (const std::string s : {v["name"].get<std::string>(),
                              v["tags"][0].get<std::string>()}) {
    EXPECT_NE(std::string(options.words).find(s), std::string::npos) << s;
  }
}

TEST(SchemaValueTest, OnlyRequiredPropertiesWhenAsked) {
  SchemaValueOptions options;
  options.all_properties = false;
  const Json v = Generate(kPerson, 1, options);
  std::set<std::string> keys;
  for (const auto& [k, unused] : v.items()) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{"address", "age", "name", "tags",
                                         "unit"}));
  EXPECT_EQ(v.at("address").size(), 1u);  // zip only
}

TEST(SchemaValueTest, IsDeterministicAndVariesWithTheHash) {
  EXPECT_EQ(GenerateSchemaJson(kPerson.dump(), 3, {}),
            GenerateSchemaJson(kPerson.dump(), 3, {}));
  std::set<std::string> seen;
  for (uint64_t h = 0; h < 20; ++h) {
    seen.insert(GenerateSchemaJson(kPerson.dump(), h, {}));
  }
  EXPECT_GT(seen.size(), 10u);
}

TEST(SchemaValueTest, EmptyOrMissingSchemaGivesAnEmptyObject) {
  EXPECT_EQ(GenerateSchemaJson("", 1, {}), "{}");
  EXPECT_EQ(GenerateSchemaJson("{}", 1, {}), "{}");
  EXPECT_EQ(GenerateSchemaJson(R"({"type":"object"})", 1, {}), "{}");
}

TEST(SchemaValueTest, UnparsableFaultDoesNotParse) {
  SchemaValueOptions options;
  options.fault = SchemaFault::kUnparsable;
  for (uint64_t h = 0; h < 50; ++h) {
    const std::string text = GenerateSchemaJson(kPerson.dump(), h, options);
    EXPECT_FALSE(Json::accept(text)) << text;
    EXPECT_FALSE(text.empty());
  }
  EXPECT_FALSE(Json::accept(
      GenerateSchemaJson(R"({"type":"integer","minimum":10})", 1, options)));
}

TEST(SchemaValueTest, SchemaFaultsParseButDoNotMatch) {
  for (SchemaFault fault :
       {SchemaFault::kWrongType, SchemaFault::kMissingRequired}) {
    SchemaValueOptions options;
    options.fault = fault;
    for (uint64_t h = 0; h < 50; ++h) {
      const Json v = Generate(kPerson, h, options);
      std::string why;
      EXPECT_TRUE(v.is_object());
      EXPECT_FALSE(MatchesSchema(v, kPerson, &why)) << v.dump();
      if (fault == SchemaFault::kMissingRequired) {
        EXPECT_THAT(why, ::testing::HasSubstr("missing required"));
      } else {
        EXPECT_THAT(why, ::testing::HasSubstr("is not of type"));
      }
    }
  }
}

}  // namespace
}  // namespace distillery::teacher_sim
