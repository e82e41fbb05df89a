// The request and answer shapes a distillation harvest needs beyond text,
// in both wire formats: `n` choices, logprobs, tools with tool calls and
// tool turns, and structured output (response_format json_schema for
// OpenAI, a forced tool for Anthropic). Bodies are built and parsed here
// without HTTP; the integration test sends them to teacher-sim.
#include <string>
#include <vector>

#include "common/teacher/anthropic_messages_format.h"
#include "common/teacher/chat_completion_scan.h"
#include "common/teacher/openai_chat_format.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using json = nlohmann::json;

const char* kTools = R"([{"type":"function","function":{"name":"get_weather",
  "description":"Weather in a city","parameters":{"type":"object",
  "properties":{"city":{"type":"string"}},"required":["city"]}}}])";

const char* kCalls =
    R"([{"id":"call_1","type":"function","function":{"name":"get_weather",)"
    R"("arguments":"{\"city\":\"Paris\"}"}}])";

// A three-turn agent trace: a question, the assistant's call, its result.
TeacherRequest AgentRequest() {
  TeacherRequest request;
  request.model = "m";
  request.messages = {{"system", "Use tools."},
                      {"user", "Weather in Paris?"},
                      {"assistant", "", kCalls, ""},
                      {"tool", "18 C, sunny", "", "call_1"}};
  request.tools_json = json::parse(kTools).dump();
  request.tool_choice_json = "\"auto\"";
  return request;
}

json OpenAiBody(const TeacherRequest& request) {
  absl::StatusOr<std::string> body =
      BuildChatRequestBody(request, ChatBodyOptions{});
  EXPECT_TRUE(body.ok()) << body.status();
  return json::parse(body.value_or("null"));
}

json AnthropicBody(const TeacherRequest& request) {
  absl::StatusOr<std::string> body =
      BuildMessagesRequestBody(request, MessagesBodyOptions{});
  EXPECT_TRUE(body.ok()) << body.status();
  return json::parse(body.value_or("null"));
}

TEST(DistillShapesTest, OpenAiCarriesNLogprobsToolsAndToolTurns) {
  TeacherRequest request = AgentRequest();
  request.choices = 3;
  request.params.top_logprobs = 5;
  const json body = OpenAiBody(request);
  EXPECT_EQ(body["n"], 3);
  EXPECT_EQ(body["logprobs"], true);
  EXPECT_EQ(body["top_logprobs"], 5);
  EXPECT_EQ(body["tools"], json::parse(kTools));
  EXPECT_EQ(body["tool_choice"], "auto");
  const json& messages = body["messages"];
  ASSERT_EQ(messages.size(), 4u);
  EXPECT_EQ(messages[2]["content"], nullptr);
  EXPECT_EQ(messages[2]["tool_calls"], json::parse(kCalls));
  EXPECT_EQ(messages[3], json::parse(R"({"role":"tool","content":"18 C, sunny",
      "tool_call_id":"call_1"})"));
}

TEST(DistillShapesTest, OpenAiPlainRequestHasNoneOfThem) {
  TeacherRequest request;
  request.model = "m";
  request.messages = {{"user", "hi"}};
  const json body = OpenAiBody(request);
  for (const char* key :
       {"n", "logprobs", "top_logprobs", "tools", "tool_choice",
        "response_format"}) {
    EXPECT_FALSE(body.contains(key)) << key;
  }
}

TEST(DistillShapesTest, OpenAiJsonSchemaIsStrictOnlyWhenItCanBe) {
  TeacherRequest request;
  request.model = "m";
  request.messages = {{"user", "Extract."}};
  request.json_schema_name = "person";
  request.json_schema =
      R"({"type":"object","properties":{"name":{"type":"string"}},)"
      R"("required":["name"],"additionalProperties":false})";
  json body = OpenAiBody(request);
  EXPECT_EQ(body["response_format"]["type"], "json_schema");
  EXPECT_EQ(body["response_format"]["json_schema"]["name"], "person");
  EXPECT_EQ(body["response_format"]["json_schema"]["schema"],
            json::parse(request.json_schema));
  EXPECT_EQ(body["response_format"]["json_schema"]["strict"], true);
  // An optional property: a strict server would refuse the schema.
  request.json_schema =
      R"({"type":"object","properties":{"name":{"type":"string"},)"
      R"("age":{"type":"integer"}},"required":["name"]})";
  body = OpenAiBody(request);
  EXPECT_EQ(body["response_format"]["json_schema"]["strict"], false);
}

TEST(DistillShapesTest, OpenAiReadsEveryChoiceInIndexOrder) {
  const std::string body = R"({"id":"x","choices":[
    {"index":1,"message":{"role":"assistant","content":"second"},"finish_reason":"stop"},
    {"index":0,"message":{"role":"assistant","content":"first"},"finish_reason":"length"},
    {"index":2,"message":{"role":"assistant","content":"third"},"finish_reason":"stop"}],
    "usage":{"prompt_tokens":10,"completion_tokens":30}})";
  EXPECT_FALSE(ScanChatCompletion(body).has_value()) << "several choices";
  TeacherResult r = ParseChatResponse(body);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.answer.content, "first");
  EXPECT_EQ(r.answer.finish_reason, "length");
  EXPECT_EQ(r.answer.usage.completion_tokens, 30);
  ASSERT_EQ(r.more_choices.size(), 2u);
  EXPECT_EQ(r.more_choices[0].content, "second");
  EXPECT_EQ(r.more_choices[1].content, "third");
  EXPECT_EQ(r.more_choices[1].usage.completion_tokens, 0);
  EXPECT_TRUE(r.more_choices[1].raw_body.empty());
  // Repeated or out-of-range indexes are a bad body.
  EXPECT_FALSE(ParseChatResponse(R"({"choices":[
    {"index":0,"message":{"content":"a"}},{"index":0,"message":{"content":"b"}}]})")
                   .status.ok());
}

TEST(DistillShapesTest, OpenAiReadsToolCallsAndLogprobs) {
  const std::string body = R"({"id":"x","choices":[{"index":0,
    "message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_9",
      "type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]},
    "logprobs":{"content":[
      {"token":"Hi","logprob":-0.1,"bytes":[72,105],"top_logprobs":[
        {"token":"Hi","logprob":-0.1,"bytes":[72,105]},{"token":"Hey","logprob":-2.5,"bytes":[]}]},
      {"token":"!","logprob":-0.01,"top_logprobs":[]}]},
    "finish_reason":"tool_calls"}]})";
  EXPECT_FALSE(ScanChatCompletion(body).has_value());
  TeacherResult r = ParseChatResponse(body);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.answer.content, "");
  EXPECT_EQ(r.answer.finish_reason, "tool_calls");
  const json calls = json::parse(r.answer.tool_calls_json);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]["id"], "call_9");
  EXPECT_EQ(calls[0]["function"]["name"], "get_weather");
  EXPECT_EQ(calls[0]["function"]["arguments"], "{\"city\":\"Oslo\"}");
  ASSERT_EQ(r.answer.logprobs.size(), 2u);
  EXPECT_EQ(r.answer.logprobs[0].token, "Hi");
  EXPECT_DOUBLE_EQ(r.answer.logprobs[0].logprob, -0.1);
  ASSERT_EQ(r.answer.logprobs[0].top.size(), 2u);
  EXPECT_EQ(r.answer.logprobs[0].top[1].first, "Hey");
  EXPECT_TRUE(r.answer.logprobs[1].top.empty());
  // null tool_calls and logprobs are the plain shape, for the fast path.
  EXPECT_TRUE(ScanChatCompletion(R"({"choices":[{"message":{"content":"a",
      "tool_calls":null},"logprobs":null}]})")
                  .has_value());
}

TEST(DistillShapesTest, OpenAiStreamAssemblesChoicesToolCallsAndLogprobs) {
  // One line per event: the raw strings below wrap.
  auto data = [](std::string j) {
    std::erase(j, '\n');
    return "data: " + j + "\n\n";
  };
  const std::string body =
      data(R"({"id":"s","choices":[{"index":0,"delta":{"role":"assistant","content":null,
        "tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]})") +
      data(R"({"id":"s","choices":[{"index":1,"delta":{"content":"Hel"},
        "logprobs":{"content":[{"token":"Hel","logprob":-0.5,"top_logprobs":[{"token":"Hel","logprob":-0.5}]}]}}]})") +
      data(R"({"id":"s","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]})") +
      data(R"({"id":"s","choices":[{"index":1,"delta":{"content":"lo"},
        "logprobs":{"content":[{"token":"lo","logprob":-0.25,"top_logprobs":[]}]}},
        {"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Rome\"}"}}]}}]})") +
      data(R"({"id":"s","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"},
        {"index":1,"delta":{},"finish_reason":"stop"}]})") +
      data(R"({"id":"s","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":9}})") +
      "data: [DONE]\n\n";
  TeacherResult r = ParseChatStream(body);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.answer.finish_reason, "tool_calls");
  const json calls = json::parse(r.answer.tool_calls_json);
  EXPECT_EQ(calls[0]["id"], "call_1");
  EXPECT_EQ(calls[0]["function"]["arguments"], "{\"city\":\"Rome\"}");
  EXPECT_EQ(r.answer.usage.completion_tokens, 9);
  ASSERT_EQ(r.more_choices.size(), 1u);
  EXPECT_EQ(r.more_choices[0].content, "Hello");
  ASSERT_EQ(r.more_choices[0].logprobs.size(), 2u);
  EXPECT_EQ(r.more_choices[0].logprobs[1].token, "lo");
}

TEST(DistillShapesTest, AnthropicConvertsToolsChoiceAndToolTurns) {
  const json body = AnthropicBody(AgentRequest());
  EXPECT_EQ(body["tools"], json::parse(R"([{"name":"get_weather",
      "description":"Weather in a city","input_schema":{"type":"object",
      "properties":{"city":{"type":"string"}},"required":["city"]}}])"));
  EXPECT_EQ(body["tool_choice"], json::parse(R"({"type":"auto"})"));
  EXPECT_EQ(body["system"], "Use tools.");
  const json& messages = body["messages"];
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(messages[1], json::parse(R"({"role":"assistant","content":[
      {"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}}]})"));
  EXPECT_EQ(messages[2], json::parse(R"({"role":"user","content":[
      {"type":"tool_result","tool_use_id":"call_1","content":"18 C, sunny"}]})"));
  for (const auto& [openai, anthropic] :
       std::vector<std::pair<std::string, std::string>>{
           {"\"none\"", R"({"type":"none"})"},
           {"\"required\"", R"({"type":"any"})"},
           {R"({"type":"function","function":{"name":"get_weather"}})",
            R"({"type":"tool","name":"get_weather"})"}}) {
    TeacherRequest request = AgentRequest();
    request.tool_choice_json = openai;
    EXPECT_EQ(AnthropicBody(request)["tool_choice"], json::parse(anthropic))
        << openai;
  }
}

TEST(DistillShapesTest, AnthropicStructuredOutputIsAForcedTool) {
  TeacherRequest request;
  request.model = "claude";
  request.messages = {{"user", "Extract."}};
  request.json_schema = R"({"type":"object","properties":{"name":{"type":"string"}}})";
  request.json_schema_name = "person";
  const json body = AnthropicBody(request);
  ASSERT_EQ(body["tools"].size(), 1u);
  EXPECT_EQ(body["tools"][0]["name"], "person");
  EXPECT_EQ(body["tools"][0]["input_schema"], json::parse(request.json_schema));
  EXPECT_EQ(body["tool_choice"], json::parse(R"({"type":"tool","name":"person"})"));
}

TEST(DistillShapesTest, AnthropicRefusesLogprobsAndN) {
  TeacherRequest request;
  request.model = "claude";
  request.messages = {{"user", "hi"}};
  request.params.top_logprobs = 5;
  absl::StatusOr<std::string> body =
      BuildMessagesRequestBody(request, MessagesBodyOptions{});
  EXPECT_EQ(body.status().code(), absl::StatusCode::kInvalidArgument);
  request.params.top_logprobs = 0;
  request.choices = 2;
  EXPECT_FALSE(BuildMessagesRequestBody(request, MessagesBodyOptions{}).ok());
}

TEST(DistillShapesTest, AnthropicToolUseBecomesOpenAiToolCalls) {
  TeacherResult r = ParseMessagesResponse(R"({"id":"msg_1","type":"message",
    "content":[{"type":"text","text":"Let me look."},
      {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Lima"}}],
    "stop_reason":"tool_use","usage":{"input_tokens":5,"output_tokens":7}})");
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.answer.content, "Let me look.");
  EXPECT_EQ(r.answer.finish_reason, "tool_use");
  const json calls = json::parse(r.answer.tool_calls_json);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]["id"], "toolu_1");
  EXPECT_EQ(calls[0]["type"], "function");
  EXPECT_EQ(calls[0]["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(calls[0]["function"]["arguments"].get<std::string>()),
            json::parse(R"({"city":"Lima"})"));
}

TEST(DistillShapesTest, AnthropicStreamAssemblesToolInputPieces) {
  auto event = [](const std::string& type, std::string j) {
    std::erase(j, '\n');
    return "event: " + type + "\ndata: " + j + "\n\n";
  };
  const std::string body =
      event("message_start", R"({"type":"message_start","message":{"id":"msg_2","usage":{"input_tokens":3}}})") +
      event("content_block_start", R"({"type":"content_block_start","index":0,
        "content_block":{"type":"tool_use","id":"toolu_2","name":"get_weather","input":{}}})") +
      event("content_block_delta", R"({"type":"content_block_delta","index":0,
        "delta":{"type":"input_json_delta","partial_json":"{\"city\": "}})") +
      event("content_block_delta", R"({"type":"content_block_delta","index":0,
        "delta":{"type":"input_json_delta","partial_json":"\"Kyiv\"}"}})") +
      event("content_block_stop", R"({"type":"content_block_stop","index":0})") +
      event("message_delta", R"({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":12}})") +
      event("message_stop", R"({"type":"message_stop"})");
  TeacherResult r = ParseMessagesStream(body);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.answer.finish_reason, "tool_use");
  const json calls = json::parse(r.answer.tool_calls_json);
  EXPECT_EQ(calls[0]["id"], "toolu_2");
  EXPECT_EQ(json::parse(calls[0]["function"]["arguments"].get<std::string>()),
            json::parse(R"({"city":"Kyiv"})"));
}

}  // namespace
}  // namespace distillery
