// JSON Schema checks of structured answers: valid answers (bare and fenced)
// pass; each kind of mismatch is refused naming its path; bad schemas and
// hostile answers (not JSON, truncated, deeply nested, long strings under a
// 'pattern') are refused without crashing; one validator serves 4 threads.
#include "common/verify/json_schema.h"

#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace distillery {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kPersonSchema[] = R"({
  "type": "object",
  "required": ["name", "age", "role", "tags", "address"],
  "additionalProperties": false,
  "properties": {
    "name": {"type": "string", "minLength": 1},
    "age": {"type": "integer", "minimum": 0},
    "role": {"enum": ["admin", "user"]},
    "tags": {"type": "array", "items": {"type": "string"}},
    "address": {
      "type": "object",
      "required": ["city"],
      "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}
    }
  }
})";

constexpr char kValidPerson[] =
    R"({"name": "Ada", "age": 36, "role": "admin", "tags": ["x", "y"],
        "address": {"city": "London"}})";

std::unique_ptr<JsonSchemaValidator> MustCreate(std::string_view schema) {
  absl::StatusOr<std::unique_ptr<JsonSchemaValidator>> v =
      JsonSchemaValidator::Create(schema);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? std::move(*v) : nullptr;
}

// The message of a refusal, after checking that it is INVALID_ARGUMENT and
// short.
std::string Refusal(const absl::Status& s) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_LE(s.message().size(), 300u) << s;
  return std::string(s.message());
}

TEST(JsonSchemaValidatorTest, ValidAnswersPass) {
  auto v = MustCreate(kPersonSchema);
  ASSERT_NE(v, nullptr);
  EXPECT_TRUE(v->Validate(kValidPerson).ok());
  EXPECT_TRUE(v->Validate(std::string(" \n\t") + kValidPerson + "\n ").ok());
  EXPECT_TRUE(v->Validate(R"({"name": "B", "age": 0, "role": "user",
      "tags": [], "address": {"city": "Paris", "zip": "75001"}})")
                  .ok());
}

TEST(JsonSchemaValidatorTest, FencedAnswersPass) {
  auto v = MustCreate(kPersonSchema);
  ASSERT_NE(v, nullptr);
  EXPECT_TRUE(
      v->Validate(std::string("```json\n") + kValidPerson + "\n```").ok());
  EXPECT_TRUE(
      v->Validate(std::string("\n```\n") + kValidPerson + "\n```\n").ok());
  EXPECT_TRUE(
      v->Validate(std::string("```JSON  \n") + kValidPerson + "```").ok());
  // Another language's fence, or two fences, is not a JSON answer.
  EXPECT_THAT(
      Refusal(v->Validate(std::string("```python\n") + kValidPerson + "\n```")),
      StartsWith("answer is not JSON: "));
  EXPECT_THAT(Refusal(v->Validate(std::string("```json\n") + kValidPerson +
                                  "\n```\n```json\n{}\n```")),
              StartsWith("answer is not JSON: "));
}

TEST(JsonSchemaValidatorTest, MissingRequiredPropertyIsRefused) {
  auto v = MustCreate(kPersonSchema);
  ASSERT_NE(v, nullptr);
  std::string m = Refusal(v->Validate(
      R"({"name": "Ada", "role": "admin", "tags": [], "address": {"city": "L"}})"));
  EXPECT_THAT(m, StartsWith("answer does not match the schema: (root): "));
  EXPECT_THAT(m, HasSubstr("'age'"));
  m = Refusal(v->Validate(
      R"({"name": "Ada", "age": 1, "role": "admin", "tags": [], "address": {}})"));
  EXPECT_THAT(m, StartsWith("answer does not match the schema: /address: "));
  EXPECT_THAT(m, HasSubstr("'city'"));
}

TEST(JsonSchemaValidatorTest, WrongTypeIsRefusedWithItsPath) {
  auto v = MustCreate(kPersonSchema);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(Refusal(v->Validate(
                R"({"name": "Ada", "age": "36", "role": "admin", "tags": [],
                    "address": {"city": "L"}})")),
            "answer does not match the schema: /age: Value type not "
            "permitted by 'type' constraint.");
  EXPECT_THAT(Refusal(v->Validate(
                  R"({"name": "Ada", "age": 36, "role": "admin",
                      "tags": ["a", 7], "address": {"city": "L"}})")),
              StartsWith("answer does not match the schema: /tags/1: "));
  EXPECT_THAT(Refusal(v->Validate(
                  R"({"name": "Ada", "age": 36, "role": "admin", "tags": [],
                      "address": {"city": 5}})")),
              StartsWith("answer does not match the schema: /address/city: "));
  EXPECT_THAT(Refusal(v->Validate("[1, 2]")),
              StartsWith("answer does not match the schema: (root): "));
}

TEST(JsonSchemaValidatorTest, EnumValueNotListedIsRefused) {
  auto v = MustCreate(kPersonSchema);
  ASSERT_NE(v, nullptr);
  EXPECT_THAT(Refusal(v->Validate(
                  R"({"name": "Ada", "age": 36, "role": "root", "tags": [],
                      "address": {"city": "L"}})")),
              StartsWith("answer does not match the schema: /role: "));
}

TEST(JsonSchemaValidatorTest, AdditionalPropertyIsRefused) {
  auto v = MustCreate(kPersonSchema);
  ASSERT_NE(v, nullptr);
  std::string m = Refusal(v->Validate(
      R"({"name": "Ada", "age": 36, "role": "user", "tags": [],
          "address": {"city": "L"}, "extra\n": 1})"));
  EXPECT_THAT(m, StartsWith("answer does not match the schema: (root): "));
  EXPECT_THAT(m, HasSubstr("extra?"));  // the answer's newline replaced
  EXPECT_EQ(m.find('\n'), std::string::npos);
}

TEST(JsonSchemaValidatorTest, TextThatIsNotJsonIsRefused) {
  auto v = MustCreate(kPersonSchema);
  ASSERT_NE(v, nullptr);
  EXPECT_THAT(Refusal(v->Validate("The answer is 42.")),
              StartsWith("answer is not JSON: "));
  EXPECT_THAT(Refusal(v->Validate(R"({"name": "Ada", "age": 3)")),
              StartsWith("answer is not JSON: "));
  EXPECT_THAT(Refusal(v->Validate(std::string(kValidPerson) + " trailing")),
              StartsWith("answer is not JSON: "));
  EXPECT_EQ(Refusal(v->Validate("")), "answer is not JSON: empty");
  EXPECT_EQ(Refusal(v->Validate(" \n ")), "answer is not JSON: empty");
  EXPECT_EQ(Refusal(v->Validate("```json\n```")), "answer is not JSON: empty");
}

TEST(JsonSchemaValidatorTest, HostileAnswerBytesAreNotQuoted) {
  auto v = MustCreate(kPersonSchema);
  ASSERT_NE(v, nullptr);
  // An unterminated string: nlohmann's "last read" would quote all of it.
  std::string answer = "{\"name\": \"" + std::string(100000, 'a') + "\x01\x1b";
  std::string m = Refusal(v->Validate(answer));
  EXPECT_THAT(m, StartsWith("answer is not JSON: "));
  for (char c : m) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << m;
}

TEST(JsonSchemaValidatorTest, DeeplyNestedAnswerIsRefusedWithoutCrashing) {
  auto v = MustCreate(R"({"type": "array"})");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(Refusal(v->Validate(std::string(100000, '['))),
            "answer nests deeper than 64 levels");
  std::string balanced = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(Refusal(v->Validate(balanced)),
            "answer nests deeper than 64 levels");
  std::string shallow = std::string(64, '[') + std::string(64, ']');
  EXPECT_TRUE(v->Validate(shallow).ok());
}

TEST(JsonSchemaValidatorTest, PatternAndFormatUseRe2) {
  auto v = MustCreate(R"({
    "type": "object",
    "properties": {
      "id": {"type": "string", "pattern": "^[a-z]+-[0-9]+$"},
      "when": {"type": "string", "format": "date"},
      "at": {"type": "string", "format": "date-time"},
      "clock": {"type": "string", "format": "time"},
      "pattern": {"type": "string", "enum": ["pattern"]}
    }
  })");
  ASSERT_NE(v, nullptr);
  EXPECT_TRUE(v->Validate(R"({"id": "abc-12", "when": "2024-02-29",
      "at": "2024-07-18T16:52:45Z", "clock": "16:52:45+02:00",
      "pattern": "pattern"})")
                  .ok());
  EXPECT_THAT(Refusal(v->Validate(R"({"id": "ABC-12"})")),
              StartsWith("answer does not match the schema: /id: Failed to "
                         "match regex"));
  EXPECT_EQ(Refusal(v->Validate(R"({"when": "2024-02-30"})")),
            "answer does not match the schema: /when: String should be a "
            "valid date");
  EXPECT_THAT(Refusal(v->Validate(R"({"at": "2024-07-18 16:52"})")),
              StartsWith("answer does not match the schema: /at: "));
  EXPECT_THAT(Refusal(v->Validate(R"({"clock": "25:00:00Z"})")),
              StartsWith("answer does not match the schema: /clock: "));
  // std::regex recurses per character and overflows its stack on strings of
  // ~50,000 bytes; RE2 does not.
  std::string digits(1 << 20, '1');
  EXPECT_THAT(Refusal(v->Validate("{\"when\": \"" + digits + "\"}")),
              StartsWith("answer does not match the schema: /when: "));
  EXPECT_THAT(Refusal(v->Validate("{\"id\": \"" + std::string(1 << 20, 'a') +
                                  "\"}")),
              StartsWith("answer does not match the schema: /id: "));
}

TEST(JsonSchemaValidatorTest, BadSchemasAreRefused) {
  auto refused = [](std::string_view schema) {
    absl::StatusOr<std::unique_ptr<JsonSchemaValidator>> v =
        JsonSchemaValidator::Create(schema);
    EXPECT_FALSE(v.ok()) << schema;
    return v.ok() ? std::string() : Refusal(v.status());
  };
  EXPECT_THAT(refused("{not json"), StartsWith("schema is not JSON: "));
  EXPECT_EQ(refused(""), "schema is not JSON: empty");
  EXPECT_EQ(refused(R"([{"type": "string"}])"), "schema is not a JSON object");
  EXPECT_EQ(refused("true"), "schema is not a JSON object");
  EXPECT_THAT(refused(R"({"type": 5})"),
              StartsWith("schema is not one valijson can compile: "));
  EXPECT_THAT(refused(R"({"properties": {"a": {"minLength": -1}}})"),
              StartsWith("schema is not one valijson can compile: "));
  EXPECT_THAT(refused(R"({"$ref": "https://example.com/s.json"})"),
              HasSubstr("is not local"));
  EXPECT_THAT(refused(R"js({"pattern": "(?=lookahead)"})js"),
              HasSubstr("is not a regex RE2 accepts"));
  EXPECT_THAT(refused(R"({"patternProperties": {"^a": {}}})"),
              HasSubstr("'patternProperties'"));
  EXPECT_EQ(refused(std::string(100000, '[')), "schema nests deeper than 64 levels");
}

TEST(JsonSchemaValidatorTest, SchemaOverOneMebibyteIsRefused) {
  std::string big = R"({"description": ")" +
                    std::string(kMaxJsonSchemaBytes, 'x') + R"("})";
  absl::StatusOr<std::unique_ptr<JsonSchemaValidator>> v =
      JsonSchemaValidator::Create(big);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(Refusal(v.status()), HasSubstr("larger than"));
  // Just under the limit is fine.
  std::string fits = R"({"description": ")" +
                     std::string(kMaxJsonSchemaBytes - 100, 'x') + R"("})";
  EXPECT_TRUE(JsonSchemaValidator::Create(fits).ok());
}

TEST(JsonSchemaValidatorTest, RecursiveSchemaChecksNestedAnswers) {
  auto v = MustCreate(R"({
    "definitions": {
      "node": {
        "type": "object",
        "required": ["v"],
        "properties": {
          "v": {"type": "integer"},
          "kids": {"type": "array", "items": {"$ref": "#/definitions/node"}}
        }
      }
    },
    "$ref": "#/definitions/node"
  })");
  ASSERT_NE(v, nullptr);
  EXPECT_TRUE(v->Validate(R"({"v": 1, "kids": [{"v": 2, "kids": []}]})").ok());
  EXPECT_THAT(Refusal(v->Validate(R"({"v": 1, "kids": [{"v": "x"}]})")),
              StartsWith("answer does not match the schema: /kids/0/v: "));
}

TEST(JsonSchemaValidatorTest, ConcurrentValidateOnOneInstance) {
  auto v = MustCreate(kPersonSchema);
  ASSERT_NE(v, nullptr);
  const std::string bad =
      R"({"name": "Ada", "age": "x", "role": "admin", "tags": [],
          "address": {"city": "L"}})";
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        if (!v->Validate(kValidPerson).ok()) ++failures[t];
        absl::Status s = v->Validate(bad);
        if (s.ok() || s.message() != "answer does not match the schema: /age: "
                                     "Value type not permitted by 'type' "
                                     "constraint.") {
          ++failures[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
}

TEST(JsonSchemaValidatorTest, CanonicalJsonStripsFenceAndReserialises) {
  absl::StatusOr<std::string> c = JsonSchemaValidator::CanonicalJson(
      "```json\n{ \"b\" : [1, 2.5, \"x\"],\n  \"a\": null }\n```");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, R"({"a":null,"b":[1,2.5,"x"]})");
  c = JsonSchemaValidator::CanonicalJson("  \"caf\xc3\xa9\"  ");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, "\"caf\xc3\xa9\"");
  EXPECT_THAT(Refusal(JsonSchemaValidator::CanonicalJson("{\"a\": ").status()),
              StartsWith("answer is not JSON: "));
  EXPECT_THAT(Refusal(JsonSchemaValidator::CanonicalJson("\"\xff\"").status()),
              StartsWith("answer is not JSON: "));
  EXPECT_EQ(Refusal(
                JsonSchemaValidator::CanonicalJson(std::string(1000, '[')).status()),
            "answer nests deeper than 64 levels");
}

TEST(SchemaNameOfTest, Cases) {
  EXPECT_EQ(SchemaNameOf("schemas/person.json"), "person");
  EXPECT_EQ(SchemaNameOf("/a/b/person.schema.json"), "person_schema");
  EXPECT_EQ(SchemaNameOf("my schema (v2).json"), "my_schema__v2_");
  EXPECT_EQ(SchemaNameOf("dash-and_under.json"), "dash-and_under");
  EXPECT_EQ(SchemaNameOf("noext"), "noext");
  EXPECT_EQ(SchemaNameOf("C:\\schemas\\win.json"), "win");
  EXPECT_EQ(SchemaNameOf("caf\xc3\xa9.json"), "caf__");
  EXPECT_EQ(SchemaNameOf(std::string(100, 'x') + ".json"), std::string(64, 'x'));
  EXPECT_EQ(SchemaNameOf(""), "schema");
  EXPECT_EQ(SchemaNameOf("dir/"), "schema");
  EXPECT_EQ(SchemaNameOf(".json"), "_json");
}

}  // namespace
}  // namespace distillery
