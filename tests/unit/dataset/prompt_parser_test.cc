// Prompt lines: both shapes, ids, system messages, metadata, and strict
// errors that name the line and the reason.
#include "common/dataset/prompt_parser.h"

#include <sstream>
#include <string>
#include <vector>

#include "common/base/json_depth.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/base/deep_json.h"

namespace distillery {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

v1::Prompt Parse(std::string_view line, int64_t number = 1,
                 std::string_view default_system = "") {
  absl::StatusOr<std::optional<v1::Prompt>> p =
      ParsePromptLine(line, number, default_system);
  EXPECT_TRUE(p.ok()) << p.status();
  if (!p.ok() || !*p) {
    ADD_FAILURE() << "no prompt from: " << line;
    return v1::Prompt();
  }
  return **p;
}

absl::Status Error(std::string_view line, int64_t number) {
  absl::StatusOr<std::optional<v1::Prompt>> p =
      ParsePromptLine(line, number, "");
  EXPECT_FALSE(p.ok()) << "parsed: " << line;
  if (p.ok()) return absl::OkStatus();
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  return p.status();
}

std::vector<std::pair<std::string, std::string>> Turns(const v1::Prompt& p) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const v1::ChatMessage& m : p.messages()) {
    out.emplace_back(m.role(), m.content());
  }
  return out;
}

using Turn = std::pair<std::string, std::string>;

TEST(ParsePromptLineTest, PromptShape) {
  v1::Prompt p = Parse(R"({"prompt": "What is 2 + 2?"})", 3);
  EXPECT_EQ(p.id(), "3");
  EXPECT_EQ(p.line(), 3);
  EXPECT_EQ(Turns(p), (std::vector<Turn>{{"user", "What is 2 + 2?"}}));
  EXPECT_EQ(p.metadata_json(), "");
}

TEST(ParsePromptLineTest, TheRowsOwnMaxTokensAndTemperatureAreKept) {
  v1::Prompt p = Parse(
      R"({"prompt": "x", "max_tokens": 4096, "temperature": 0})", 2);
  ASSERT_TRUE(p.has_params());
  EXPECT_EQ(p.params().max_tokens(), 4096);
  ASSERT_TRUE(p.params().has_temperature());
  EXPECT_EQ(p.params().temperature(), 0);
  v1::Prompt plain = Parse(R"({"prompt": "x"})", 2);
  EXPECT_FALSE(plain.has_params());
  EXPECT_FALSE(Parse(R"({"prompt": "x", "temperature": 1})", 1)
                   .params()
                   .max_tokens());
}

TEST(ParsePromptLineTest, MessagesShapeKeepsOrder) {
  v1::Prompt p = Parse(
      R"({"messages": [{"role": "system", "content": "S"},
                       {"role": "user", "content": "Q1"},
                       {"role": "assistant", "content": "A1"},
                       {"role": "user", "content": "Q2"}]})",
      9);
  EXPECT_EQ(p.line(), 9);
  EXPECT_EQ(Turns(p), (std::vector<Turn>{{"system", "S"},
                                         {"user", "Q1"},
                                         {"assistant", "A1"},
                                         {"user", "Q2"}}));
}

TEST(ParsePromptLineTest, IdFromStringIntegerOrLineNumber) {
  EXPECT_EQ(Parse(R"({"id": "q-17", "prompt": "x"})", 4).id(), "q-17");
  EXPECT_EQ(Parse(R"({"id": 42, "prompt": "x"})", 4).id(), "42");
  EXPECT_EQ(Parse(R"({"id": -7, "prompt": "x"})", 4).id(), "-7");
  EXPECT_EQ(Parse(R"({"prompt": "x"})", 12).id(), "12");
}

TEST(ParsePromptLineTest, JobDefaultSystemIsPrepended) {
  v1::Prompt p = Parse(R"({"prompt": "Q"})", 1, "Default system.");
  EXPECT_EQ(Turns(p),
            (std::vector<Turn>{{"system", "Default system."}, {"user", "Q"}}));
}

TEST(ParsePromptLineTest, LineSystemOverridesTheJobDefault) {
  v1::Prompt p =
      Parse(R"({"prompt": "Q", "system": "Line system."})", 1, "Default.");
  EXPECT_EQ(Turns(p),
            (std::vector<Turn>{{"system", "Line system."}, {"user", "Q"}}));

  v1::Prompt m = Parse(
      R"({"system": "Line system.", "messages": [{"role": "user", "content": "Q"}]})");
  EXPECT_EQ(Turns(m),
            (std::vector<Turn>{{"system", "Line system."}, {"user", "Q"}}));
}

TEST(ParsePromptLineTest, OwnSystemMessageIsNotDuplicated) {
  v1::Prompt p = Parse(
      R"({"messages": [{"role": "system", "content": "Mine."},
                       {"role": "user", "content": "Q"}]})",
      1, "Default system.");
  EXPECT_EQ(Turns(p), (std::vector<Turn>{{"system", "Mine."}, {"user", "Q"}}));
}

TEST(ParsePromptLineTest, MetadataIsKeptAsJson) {
  v1::Prompt p = Parse(
      R"({"prompt": "Q", "metadata": {"topic": "math", "level": 3,
          "tags": ["a", "b"], "nested": {"ok": true, "none": null}}})");
  ASSERT_FALSE(p.metadata_json().empty());
  nlohmann::json meta = nlohmann::json::parse(p.metadata_json());
  EXPECT_EQ(meta, nlohmann::json::parse(
                      R"({"topic": "math", "level": 3, "tags": ["a", "b"],
                          "nested": {"ok": true, "none": null}})"));
  EXPECT_EQ(Parse(R"({"prompt": "Q", "metadata": {}})").metadata_json(), "{}");
}

// Was a bug (common/dataset/prompt_parser.cc, "metadata" branch): types.proto
// promises the metadata object "verbatim", but the parser re-serialises it
// with nlohmann::json, whose objects are std::maps: keys come back sorted and
// numbers are re-printed (1e2 -> 100.0, big integers lose digits).
TEST(ParsePromptLineTest, MetadataIsKeptVerbatim) {
  EXPECT_EQ(Parse(R"({"prompt": "Q", "metadata": {"zeta":1,"alpha":2}})")
                .metadata_json(),
            R"({"zeta":1,"alpha":2})");
  EXPECT_EQ(
      Parse(
          R"({"prompt": "Q", "metadata": {"n":123456789012345678901234567890}})")
          .metadata_json(),
      R"({"n":123456789012345678901234567890})");
}

TEST(ParsePromptLineTest, BlankLinesAreSkipped) {
  for (std::string_view line : {"", "   ", "\t", "\r", " \t\r\n"}) {
    absl::StatusOr<std::optional<v1::Prompt>> p =
        ParsePromptLine(line, 5, "Default");
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_FALSE(p->has_value());
  }
}

struct BadLine {
  const char* name;
  std::string line;
  const char* reason;
};

TEST(ParsePromptLineTest, ErrorsNameTheLineAndTheReason) {
  const std::vector<BadLine> cases = {
      {"not json", R"({"prompt": "x")", "not valid JSON"},
      {"trailing garbage", R"({"prompt": "x"} extra)", "not valid JSON"},
      {"array", R"(["x"])", "expected a JSON object"},
      {"string", R"("x")", "expected a JSON object"},
      {"number", "42", "expected a JSON object"},
      {"no prompt", R"({"id": "a"})", R"(no "prompt" or "messages")"},
      {"both",
       R"({"prompt": "x", "messages": [{"role": "user", "content": "y"}]})",
       "both"},
      {"empty prompt", R"({"prompt": ""})", "empty prompt"},
      {"max_tokens string", R"({"prompt": "x", "max_tokens": "100"})",
       R"("max_tokens" must be an integer from 1 to 10000000)"},
      {"max_tokens zero", R"({"prompt": "x", "max_tokens": 0})",
       R"("max_tokens" must be an integer)"},
      {"max_tokens float", R"({"prompt": "x", "max_tokens": 1.5})",
       R"("max_tokens" must be an integer)"},
      {"max_tokens huge", R"({"prompt": "x", "max_tokens": 20000000})",
       R"("max_tokens" must be an integer)"},
      {"temperature high", R"({"prompt": "x", "temperature": 2.5})",
       R"("temperature" must be a number from 0 to 2)"},
      {"temperature string", R"({"prompt": "x", "temperature": "hot"})",
       R"("temperature" must be a number)"},
      {"blank prompt", R"({"prompt": " \n\t "})", "empty prompt"},
      {"prompt not string", R"({"prompt": 5})", R"("prompt" must be a string)"},
      {"messages not array", R"({"messages": {"role": "user"}})",
       "non-empty array"},
      {"messages empty", R"({"messages": []})", "non-empty array"},
      {"message not object", R"({"messages": ["hi"]})",
       "messages[0] is not an object"},
      {"no role", R"({"messages": [{"content": "hi"}]})", "messages[0]"},
      {"bad role", R"({"messages": [{"role": "robot", "content": "x"}]})",
       "role 'robot'"},
      {"tool without call id",
       R"({"messages": [{"role": "tool", "content": "x"}]})",
       R"(messages[0] (a tool turn) has no string "tool_call_id")"},
      {"tool answers no call",
       R"({"messages": [{"role": "user", "content": "Q"}, {"role": "tool", "tool_call_id": "c1", "content": "x"}]})",
       R"(messages[1] answers tool call "c1", which no earlier assistant turn made)"},
      {"tool calls on a user turn",
       R"({"messages": [{"role": "user", "content": "Q", "tool_calls": []}]})",
       "has tool_calls but is not an assistant turn"},
      {"tool calls empty",
       R"({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "tool_calls": []}, {"role": "user", "content": "Q"}]})",
       R"(messages[1] "tool_calls" must be a non-empty array)"},
      {"tool call arguments not JSON",
       R"({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}, {"role": "tool", "tool_call_id": "c1", "content": "r"}]})",
       "tool_calls[0] function.arguments must be a string of JSON text"},
      {"tools not array", R"({"prompt": "x", "tools": {"a": 1}})",
       R"("tools" must be a non-empty array)"},
      {"tool without function", R"({"prompt": "x", "tools": [{"type": "function"}]})",
       R"(tools[0] has no "function" object)"},
      {"tool bad name",
       R"({"prompt": "x", "tools": [{"type": "function", "function": {"name": "a b"}}]})",
       "tools[0] function.name must be 1-64 letters"},
      {"tool repeated",
       R"({"prompt": "x", "tools": [{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "f"}}]})",
       R"(tools[1] repeats the name "f")"},
      {"tool parameters not object",
       R"({"prompt": "x", "tools": [{"type": "function", "function": {"name": "f", "parameters": 3}}]})",
       "function.parameters must be a JSON Schema object"},
      {"tool choice without tools", R"({"prompt": "x", "tool_choice": "auto"})",
       R"("tool_choice" needs "tools")"},
      {"tool choice unknown",
       R"({"prompt": "x", "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "always"})",
       R"("tool_choice" must be "none", "auto", "required")"},
      {"tool choice names another",
       R"({"prompt": "x", "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}})",
       R"("tool_choice" names "g", which is not among "tools")"},
      {"bad role later",
       R"({"messages": [{"role": "user", "content": "x"}, {"role": "bot", "content": "y"}]})",
       "messages[1] role 'bot'"},
      {"no content", R"({"messages": [{"role": "user"}]})",
       R"(messages[0] has no string "content")"},
      {"empty content", R"({"messages": [{"role": "user", "content": "  "}]})",
       "messages[0] has empty content"},
      {"last not user",
       R"({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]})",
       R"(last message must have role "user" (or "tool")"},
      {"only system", R"({"messages": [{"role": "system", "content": "S"}]})",
       "last message"},
      {"metadata array", R"({"prompt": "x", "metadata": [1]})",
       R"("metadata" must be a JSON object)"},
      {"metadata string", R"({"prompt": "x", "metadata": "tag"})",
       R"("metadata" must be a JSON object)"},
      {"id float", R"({"id": 1.5, "prompt": "x"})",
       R"("id" must be a string or an integer)"},
      {"id bool", R"({"id": true, "prompt": "x"})", R"("id" must be)"},
      {"id null", R"({"id": null, "prompt": "x"})", R"("id" must be)"},
      {"id object", R"({"id": {"a": 1}, "prompt": "x"})", R"("id" must be)"},
      {"system not string", R"({"prompt": "x", "system": 1})",
       R"("system" must be a string)"},
      {"overlong", "{\"prompt\": \"\xC0\xAF\"}", "invalid UTF-8"},
      {"surrogate", "{\"prompt\": \"\xED\xA0\x80\"}", "invalid UTF-8"},
      {"truncated", "{\"prompt\": \"\xE2\x82\"}", "invalid UTF-8"},
      {"truncated at end", "{\"prompt\": \"x\"}\xF0\x9F\x98", "invalid UTF-8"},
      {"latin-1", "{\"prompt\": \"caf\xE9\"}", "invalid UTF-8"},
  };
  int64_t line = 2;
  for (const BadLine& c : cases) {
    SCOPED_TRACE(c.name);
    ++line;
    absl::Status s = Error(c.line, line);
    const std::string prefix = "line " + std::to_string(line) + ": ";
    EXPECT_THAT(std::string(s.message()), StartsWith(prefix));
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.reason));
  }
}

TEST(ParsePromptLineTest, ToolsAndAgentTracesAreKept) {
  v1::Prompt p = Parse(
      R"({"messages": [{"role": "user", "content": "Weather in Paris?"},)"
      R"( {"role": "assistant", "content": null, "tool_calls": [{"id": "c1",)"
      R"( "type": "function", "function": {"name": "get_weather",)"
      R"( "arguments": "{\"city\": \"Paris\"}"}}]},)"
      R"( {"role": "tool", "tool_call_id": "c1", "content": ""}],)"
      R"( "tools": [{"type": "function", "function": {"name": "get_weather",)"
      R"( "parameters": {"type": "object"}}}], "tool_choice": "required"})");
  ASSERT_EQ(p.messages_size(), 3);
  EXPECT_EQ(p.messages(1).role(), "assistant");
  EXPECT_EQ(p.messages(1).content(), "");
  EXPECT_EQ(p.messages(1).tool_calls_json(),
            R"([{"function":{"arguments":"{\"city\": \"Paris\"}","name":"get_weather"},"id":"c1","type":"function"}])");
  EXPECT_EQ(p.messages(2).role(), "tool");
  EXPECT_EQ(p.messages(2).tool_call_id(), "c1");
  EXPECT_EQ(p.messages(2).content(), "");  // a tool's output may be empty
  EXPECT_EQ(p.tools_json(),
            R"([{"function":{"name":"get_weather","parameters":{"type":"object"}},"type":"function"}])");
  EXPECT_EQ(p.tool_choice_json(), R"("required")");
  // A line without tools has none.
  v1::Prompt plain = Parse(R"({"prompt": "x"})");
  EXPECT_TRUE(plain.tools_json().empty());
  EXPECT_TRUE(plain.messages(0).tool_calls_json().empty());
}

TEST(ParsePromptLineTest, OversizedLineIsRejectedUnparsed) {
  const std::string line = "{\"prompt\": \"" + std::string(200, 'x') + "\"}";
  absl::StatusOr<std::optional<v1::Prompt>> p =
      ParsePromptLine(line, 7, "", 100);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(),
            "line 7: prompt is " + std::to_string(line.size()) +
                " bytes, over the limit of 100");
  EXPECT_TRUE(ParsePromptLine(line, 7, "", line.size()).ok());
  // Even a line that is not JSON: the size is checked first.
  EXPECT_THAT(ParsePromptLine(std::string(300, '{'), 1, "", 100)
                  .status()
                  .message(),
              HasSubstr("over the limit"));
}

TEST(ReadBoundedLineTest, ReadsLinesAndSkipsTheRestOfALongOne) {
  std::istringstream in("first\r\n" + std::string(10000, 'y') +
                        "\nlast");
  std::string line;
  size_t length = 0;
  ASSERT_TRUE(ReadBoundedLine(in, 100, &line, &length));
  EXPECT_EQ(line, "first");
  EXPECT_EQ(length, 5u);
  ASSERT_TRUE(ReadBoundedLine(in, 100, &line, &length));
  EXPECT_EQ(length, 10000u);
  EXPECT_LE(line.size(), 101u);  // never held whole
  ASSERT_TRUE(ReadBoundedLine(in, 100, &line, &length));
  EXPECT_EQ(line, "last");
  EXPECT_FALSE(ReadBoundedLine(in, 100, &line, &length));
}

TEST(ReadBoundedLineTest, EmptyLinesAreLines) {
  std::istringstream in("\n\nx\n");
  std::string line;
  size_t length = 0;
  int lines = 0;
  while (ReadBoundedLine(in, 10, &line, &length)) ++lines;
  EXPECT_EQ(lines, 3);
}

TEST(IsValidUtf8Test, AcceptsWellFormedText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8(std::string_view("nul\0inside", 10)));
  EXPECT_TRUE(IsValidUtf8("h\xC3\xA9llo"));      // é
  EXPECT_TRUE(IsValidUtf8("\xC2\x80"));          // U+0080, smallest 2-byte
  EXPECT_TRUE(IsValidUtf8("\xE0\xA0\x80"));      // U+0800, smallest 3-byte
  EXPECT_TRUE(IsValidUtf8("\xE2\x82\xAC"));      // €
  EXPECT_TRUE(IsValidUtf8("\xED\x9F\xBF"));      // U+D7FF
  EXPECT_TRUE(IsValidUtf8("\xEE\x80\x80"));      // U+E000
  EXPECT_TRUE(IsValidUtf8("\xF0\x90\x80\x80"));  // U+10000
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80"));  // 😀
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
}

TEST(IsValidUtf8Test, RejectsMalformedText) {
  EXPECT_FALSE(IsValidUtf8("\x80"));  // lone continuation
  EXPECT_FALSE(
      IsValidUtf8("a\xBF"
                  "b"));
  EXPECT_FALSE(IsValidUtf8("\xC0\x80"));      // overlong NUL
  EXPECT_FALSE(IsValidUtf8("\xC1\xBF"));      // overlong 2-byte
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));  // overlong 3-byte
  EXPECT_FALSE(IsValidUtf8("\xE0\x9F\xBF"));
  EXPECT_FALSE(IsValidUtf8("\xF0\x80\x80\xAF"));  // overlong 4-byte
  EXPECT_FALSE(IsValidUtf8("\xF0\x8F\xBF\xBF"));
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // U+D800
  EXPECT_FALSE(IsValidUtf8("\xED\xBF\xBF"));      // U+DFFF
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(IsValidUtf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xF8\x88\x80\x80\x80"));  // 5-byte form
  EXPECT_FALSE(IsValidUtf8("\xFE"));
  EXPECT_FALSE(IsValidUtf8("\xFF"));
  EXPECT_FALSE(IsValidUtf8("\xC3"));  // truncated at end
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));
  EXPECT_FALSE(IsValidUtf8("\xF0\x9F\x98"));
  EXPECT_FALSE(
      IsValidUtf8("\xC3"
                  "A"));  // continuation missing
  EXPECT_FALSE(
      IsValidUtf8("\xE2\x82"
                  "A"));
  EXPECT_FALSE(
      IsValidUtf8("\xF0\x9F\x98"
                  "A"));
}

}  // namespace
}  // namespace distillery

namespace distillery {
namespace {

// A prompt line whose metadata nests so that the whole line is `levels`
// deep (the line's own object is the first level).
std::string LineNesting(int levels) {
  return R"({"prompt":"hi","metadata":)" +
         testing::NestedObjects(levels - 1) + "}";
}

TEST(PromptParserTest, NestingUpToTheLimitIsKept) {
  const v1::Prompt p = Parse(LineNesting(kMaxJsonDepth), 7);
  EXPECT_EQ(p.metadata_json(), testing::NestedObjects(kMaxJsonDepth - 1));
}

TEST(PromptParserTest, NestingOverTheLimitNamesTheLine) {
  EXPECT_EQ(Error(LineNesting(kMaxJsonDepth + 1), 7).message(),
            "line 7: JSON nests deeper than 64 levels");
}

TEST(PromptParserTest, TwoHundredThousandLevelsAreRefusedNotACrash) {
  const std::string line = R"({"prompt":"hi","metadata":{"a":)" +
                           testing::NestedArrays(200'000) + "}}";
  EXPECT_EQ(Error(line, 3).message(),
            "line 3: JSON nests deeper than 64 levels");
  // In the messages too, not only in the metadata.
  EXPECT_THAT(std::string(Error(R"({"messages":)" +
                                    testing::NestedArrays(200'000) + "}",
                                4)
                              .message()),
              StartsWith("line 4: JSON nests deeper"));
}

}  // namespace
}  // namespace distillery
