// Tests of teacher-sim's request parsing: what it accepts, and that every
// rejection names the problem the way OpenAI's 400s do.
#include "services/teacher_sim/chat_request.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace distillery::teacher_sim {
namespace {

using ::testing::HasSubstr;

TEST(SimChatRequestTest, ParsesAFullRequest) {
  ChatRequest r;
  InvalidRequest e;
  ASSERT_TRUE(ParseChatRequest(R"({
      "model": "gpt-4o-mini",
      "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"},
                                     {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": null}
      ],
      "max_completion_tokens": 50, "max_tokens": 10, "n": 2, "seed": -7,
      "temperature": 0.7, "top_p": 1, "stop": ["END", ""],
      "response_format": {"type": "text"}, "stream": false})",
                               &r, &e)
                  .ok())
      << e.message;
  EXPECT_EQ(r.model, "gpt-4o-mini");
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "Hi\nthere");
  EXPECT_EQ(r.messages[2].content, "");
  EXPECT_EQ(r.max_tokens, 50);  // max_completion_tokens wins
  EXPECT_EQ(r.n, 2);
  EXPECT_EQ(r.seed, -7);
  EXPECT_EQ(r.temperature, 0.7);
  EXPECT_EQ(r.top_p, 1.0);
  EXPECT_EQ(r.stop, std::vector<std::string>{"END"});
}

TEST(SimChatRequestTest, DefaultsWhenOptionalFieldsAreAbsent) {
  ChatRequest r;
  InvalidRequest e;
  ASSERT_TRUE(ParseChatRequest(
                  R"({"model":"m","messages":[{"role":"user","content":"x"}],
                      "max_tokens":12,"stop":"\n"})",
                  &r, &e)
                  .ok());
  EXPECT_EQ(r.n, 1);
  EXPECT_EQ(r.max_tokens, 12);
  EXPECT_FALSE(r.seed.has_value());
  EXPECT_FALSE(r.temperature.has_value());
  EXPECT_EQ(r.stop, std::vector<std::string>{"\n"});
}

struct BadCase {
  const char* body;
  const char* message_part;
  const char* param;
  const char* code;
};

class SimChatRequestRejectTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(SimChatRequestRejectTest, NamesTheProblem) {
  const BadCase& c = GetParam();
  ChatRequest r;
  InvalidRequest e;
  const absl::Status s = ParseChatRequest(c.body, &r, &e);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(e.message, HasSubstr(c.message_part));
  EXPECT_EQ(e.param, c.param);
  EXPECT_EQ(e.code, c.code);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SimChatRequestRejectTest,
    ::testing::Values(
        BadCase{"{\"model\": ", "could not parse the JSON body", "",
                "invalid_json"},
        BadCase{"", "could not parse the JSON body", "", "invalid_json"},
        BadCase{"[1,2]", "expected a JSON object", "", "invalid_type"},
        BadCase{R"({"messages":[{"role":"user","content":"x"}]})",
                "you must provide a model parameter", "model",
                "missing_required_parameter"},
        BadCase{R"({"model":5,"messages":[]})", "expected a string", "model",
                "invalid_type"},
        BadCase{R"({"model":"m"})", "Missing required parameter: 'messages'",
                "messages", "missing_required_parameter"},
        BadCase{R"({"model":"m","messages":"hi"})", "expected an array",
                "messages", "invalid_type"},
        BadCase{R"({"model":"m","messages":[]})", "empty array", "messages",
                "empty_array"},
        BadCase{R"({"model":"m","messages":[{"content":"x"}]})",
                "'messages[0].role'", "messages[0].role",
                "missing_required_parameter"},
        BadCase{R"({"model":"m","messages":[{"role":"wizard","content":"x"}]})",
                "Invalid value: 'wizard'", "messages[0].role", "invalid_value"},
        BadCase{R"({"model":"m","messages":[{"role":"user"}]})",
                "'messages[0].content'", "messages[0].content",
                "missing_required_parameter"},
        BadCase{R"({"model":"m","messages":[{"role":"user","content":3}]})",
                "expected one of a string or array", "messages[0].content",
                "invalid_type"},
        BadCase{R"({"model":"m","messages":[{"role":"user","content":
                  [{"type":"image_url","image_url":{}}]}]})",
                "only 'text'", "messages[0].content[0].type", "invalid_value"},
        BadCase{
            R"({"model":"m","n":0,"messages":[{"role":"user","content":"x"}]})",
            "below minimum", "n", "invalid_value"},
        BadCase{
            R"({"model":"m","max_tokens":"10","messages":[{"role":"user","content":"x"}]})",
            "expected an integer", "max_tokens", "invalid_type"},
        BadCase{
            R"({"model":"m","max_completion_tokens":0,"messages":[{"role":"user","content":"x"}]})",
            "below minimum", "max_completion_tokens", "invalid_value"},
        BadCase{
            R"({"model":"m","temperature":2.5,"messages":[{"role":"user","content":"x"}]})",
            "out of range", "temperature", "invalid_value"},
        BadCase{
            R"({"model":"m","seed":1.5,"messages":[{"role":"user","content":"x"}]})",
            "expected an integer", "seed", "invalid_type"},
        BadCase{
            R"({"model":"m","stop":["a","b","c","d","e"],"messages":[{"role":"user","content":"x"}]})",
            "array too long", "stop", "invalid_value"},
        BadCase{
            R"({"model":"m","stream":"yes","messages":[{"role":"user","content":"x"}]})",
            "expected a boolean", "stream", "invalid_type"},
        BadCase{
            R"({"model":"m","stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]})",
            "only allowed when 'stream'", "stream_options", "invalid_value"}));

TEST(SimChatRequestTest, StreamAndIncludeUsage) {
  ChatRequest r;
  InvalidRequest e;
  ASSERT_TRUE(ParseChatRequest(
                  R"({"model":"m","stream":true,"stream_options":)"
                  R"({"include_usage":true},"messages":[{"role":"user",)"
                  R"("content":"x"}]})",
                  &r, &e)
                  .ok())
      << e.message;
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
}

TEST(SimChatRequestTest, RejectsInvalidUtf8AsBadJson) {
  ChatRequest r;
  InvalidRequest e;
  EXPECT_FALSE(
      ParseChatRequest("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                       "\"content\":\"\xFF\"}]}",
                       &r, &e)
          .ok());
  EXPECT_EQ(e.code, "invalid_json");
}

}  // namespace
}  // namespace distillery::teacher_sim
