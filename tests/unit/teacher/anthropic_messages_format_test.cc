#include "common/teacher/anthropic_messages_format.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "common/teacher/http_teacher.h"
#include "gtest/gtest.h"
#include "tests/unit/teacher/scripted_http.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;
using testing::Response;
using testing::ScriptedHttpClient;

TeacherRequest Request() {
  TeacherRequest request;
  request.model = "claude-sonnet-4-5";
  request.messages = {{"system", "Be brief."},
                      {"system", "Answer in English."},
                      {"user", "What is 2+2?"},
                      {"assistant", "Let me see."},
                      {"user", "Go on."}};
  return request;
}

json BodyOf(const TeacherRequest& request, MessagesBodyOptions options = {}) {
  absl::StatusOr<std::string> body = BuildMessagesRequestBody(request, options);
  EXPECT_TRUE(body.ok()) << body.status();
  return json::parse(body.value_or("null"));
}

TEST(BuildMessagesRequestBodyTest, SystemIsTopLevelAndMaxTokensRequired) {
  json body = BodyOf(Request());
  EXPECT_EQ(body.at("model"), "claude-sonnet-4-5");
  EXPECT_EQ(body.at("max_tokens"), 4096);  // the default
  EXPECT_EQ(body.at("system"), "Be brief.\n\nAnswer in English.");
  ASSERT_EQ(body.at("messages").size(), 3u);
  EXPECT_EQ(body.at("messages")[0].at("role"), "user");
  EXPECT_EQ(body.at("messages")[1].at("role"), "assistant");
  EXPECT_FALSE(body.contains("thinking"));
  EXPECT_FALSE(body.contains("stream"));
  EXPECT_FALSE(body.contains("temperature"));
}

TEST(BuildMessagesRequestBodyTest, SamplingParamsStopSequencesNoSeed) {
  TeacherRequest request = Request();
  request.params.max_tokens = 300;
  request.params.temperature = 0.5;
  request.params.top_p = 0.9;
  request.params.seed = 7;
  request.params.stop = {"\n\n", "END"};
  json body = BodyOf(request);
  EXPECT_EQ(body.at("max_tokens"), 300);
  EXPECT_EQ(body.at("temperature"), 0.5);
  EXPECT_EQ(body.at("top_p"), 0.9);
  EXPECT_EQ(body.at("stop_sequences"), json({"\n\n", "END"}));
  EXPECT_FALSE(body.contains("seed"));
  EXPECT_FALSE(body.contains("stop"));
}

TEST(BuildMessagesRequestBodyTest, ThinkingAndStream) {
  MessagesBodyOptions options;
  options.thinking_budget_tokens = 2048;
  options.stream = true;
  json body = BodyOf(Request(), options);
  EXPECT_EQ(body.at("thinking").at("type"), "enabled");
  EXPECT_EQ(body.at("thinking").at("budget_tokens"), 2048);
  EXPECT_EQ(body.at("stream"), true);

  TeacherRequest small = Request();
  small.params.max_tokens = 2048;  // must exceed the budget
  absl::StatusOr<std::string> refused =
      BuildMessagesRequestBody(small, options);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("thinking_budget_tokens"));
}

TEST(BuildMessagesRequestBodyTest, RejectsOnlySystemAndUnknownRoles) {
  TeacherRequest request;
  request.model = "m";
  request.messages = {{"system", "x"}};
  EXPECT_FALSE(BuildMessagesRequestBody(request, {}).ok());
  request.messages = {{"tool", "x"}};
  EXPECT_FALSE(BuildMessagesRequestBody(request, {}).ok());
  request.messages = {{"user", std::string("\xff")}};
  EXPECT_EQ(BuildMessagesRequestBody(request, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MessagesUrlTest, JoinsBaseUrl) {
  EXPECT_EQ(MessagesUrl("https://api.anthropic.com"),
            "https://api.anthropic.com/v1/messages");
  EXPECT_EQ(MessagesUrl("https://api.anthropic.com/"),
            "https://api.anthropic.com/v1/messages");
  EXPECT_EQ(MessagesUrl("http://h:1/v1"), "http://h:1/v1/messages");
  EXPECT_EQ(MessagesUrl("http://h:1/v1/messages/"), "http://h:1/v1/messages");
}

TEST(AnthropicMessagesFormatTest, ValidateAcceptsGoodRejectsBad) {
  AnthropicMessagesOptions good;
  EXPECT_TRUE(AnthropicMessagesFormat(good).Validate().ok());
  good.body.thinking_budget_tokens = 1024;
  EXPECT_TRUE(AnthropicMessagesFormat(good).Validate().ok());

  AnthropicMessagesOptions bad = good;
  bad.body.thinking_budget_tokens = 500;
  EXPECT_THAT(std::string(AnthropicMessagesFormat(bad).Validate().message()),
              HasSubstr("thinking_budget_tokens"));
  bad = good;
  bad.body.thinking_budget_tokens = 8192;  // not below default_max_tokens
  EXPECT_FALSE(AnthropicMessagesFormat(bad).Validate().ok());
  bad = good;
  bad.body.default_max_tokens = 0;
  EXPECT_THAT(std::string(AnthropicMessagesFormat(bad).Validate().message()),
              HasSubstr("default_max_tokens"));
  bad = good;
  bad.anthropic_version = "";
  EXPECT_THAT(std::string(AnthropicMessagesFormat(bad).Validate().message()),
              HasSubstr("anthropic_version"));
}

// A recorded extended-thinking answer: two thinking blocks with signatures,
// a redacted one between, then the text.
constexpr char kThinkingBody[] = R"({
  "id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5",
  "content":[
    {"type":"thinking","thinking":"First idea.","signature":"sig-A"},
    {"type":"redacted_thinking","data":"EncRypted=="},
    {"type":"thinking","thinking":"Second idea.","signature":"sig-B"},
    {"type":"text","text":"The answer "},
    {"type":"text","text":"is 4."}],
  "stop_reason":"end_turn","stop_sequence":null,
  "usage":{"input_tokens":12,"output_tokens":30,
           "cache_creation_input_tokens":2,"cache_read_input_tokens":5}})";

TEST(ParseMessagesResponseTest, ThinkingBlocksInOrderWithSignatures) {
  TeacherResult r = ParseMessagesResponse(kThinkingBody);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.answer.content, "The answer is 4.");
  EXPECT_EQ(r.answer.reasoning, "First idea.\n\nSecond idea.");
  EXPECT_EQ(r.answer.finish_reason, "end_turn");
  EXPECT_EQ(r.answer.provider_id, "msg_01");
  EXPECT_EQ(r.answer.usage.prompt_tokens, 19);
  EXPECT_EQ(r.answer.usage.cached_tokens, 5);
  EXPECT_EQ(r.answer.usage.completion_tokens, 30);
  EXPECT_EQ(r.answer.raw_body, kThinkingBody);
  json blocks = json::parse(r.answer.reasoning_blocks);
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(blocks[0], json({{"type", "thinking"},
                             {"thinking", "First idea."},
                             {"signature", "sig-A"}}));
  EXPECT_EQ(blocks[1],
            json({{"type", "redacted_thinking"}, {"data", "EncRypted=="}}));
  EXPECT_EQ(blocks[2].at("signature"), "sig-B");
  // Type first, as the API writes it.
  EXPECT_EQ(r.answer.reasoning_blocks.rfind("[{\"type\":\"thinking\"", 0), 0u);
}

TEST(ParseMessagesResponseTest, PlainAnswerHasNoBlocks) {
  TeacherResult r = ParseMessagesResponse(
      R"({"id":"m","type":"message","content":[{"type":"text","text":"hi"},
      {"type":"tool_use","id":"t","name":"f","input":{}}],
      "stop_reason":"max_tokens","usage":{"input_tokens":3,"output_tokens":1}})");
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.answer.content, "hi");
  EXPECT_EQ(r.answer.reasoning, "");
  EXPECT_EQ(r.answer.reasoning_blocks, "");
  EXPECT_EQ(r.answer.finish_reason, "max_tokens");
  EXPECT_EQ(r.answer.usage.prompt_tokens, 3);
}

TEST(ParseMessagesResponseTest, GarbledBodiesAreRetryable) {
  for (const char* body : {"", "{\"id\":", "[]", "{\"type\":\"message\"}",
                           "{\"content\":[1]}"}) {
    TeacherResult r = ParseMessagesResponse(body);
    EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable) << body;
    EXPECT_EQ(r.kind, FailureKind::kRetryable) << body;
  }
}


std::string ErrorBody(const std::string& type) {
  return R"({"type":"error","error":{"type":")" + type +
         R"(","message":"something"}})";
}

TEST(HandleMessagesResponseTest, ErrorsClassifiedAsTheApiMeansThem) {
  struct Case {
    int status;
    const char* type;
    FailureKind kind;
  };
  for (const Case& c : std::vector<Case>{
           {429, "rate_limit_error", FailureKind::kRateLimited},
           {529, "overloaded_error", FailureKind::kRetryable},
           {500, "api_error", FailureKind::kRetryable},
           {401, "authentication_error", FailureKind::kTeacherDown},
           {403, "permission_error", FailureKind::kTeacherDown},
           {400, "invalid_request_error", FailureKind::kPermanent},
           {404, "not_found_error", FailureKind::kTeacherDown},
           {413, "request_too_large", FailureKind::kPermanent}}) {
    TeacherResult r =
        HandleMessagesResponse(Response(c.status, ErrorBody(c.type)), 0);
    EXPECT_FALSE(r.status.ok());
    EXPECT_EQ(r.kind, c.kind) << c.status << " " << c.type;
    EXPECT_EQ(r.http_status, c.status);
    EXPECT_THAT(std::string(r.status.message()), HasSubstr(c.type));
  }
}

TEST(HandleMessagesResponseTest, RetryAfterIsHonoured) {
  TeacherResult r = HandleMessagesResponse(
      Response(429, ErrorBody("rate_limit_error"),
               {{"retry-after", "7"},
                {"anthropic-ratelimit-requests-remaining", "0"}}),
      0);
  ASSERT_TRUE(r.retry_after.has_value());
  EXPECT_EQ(*r.retry_after, std::chrono::seconds(7));
}

TEST(HandleMessagesResponseTest, ErrorObjectInsideA200) {
  TeacherResult r =
      HandleMessagesResponse(Response(200, ErrorBody("overloaded_error")), 0);
  EXPECT_EQ(r.kind, FailureKind::kRetryable);
  r = HandleMessagesResponse(Response(200, ErrorBody("rate_limit_error")), 0);
  EXPECT_EQ(r.kind, FailureKind::kRateLimited);
}

// A recorded extended-thinking stream (pings, signature_delta, message_delta
// with the cumulative output_tokens).
constexpr char kThinkingStream[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_s\",\"type\":"
    "\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude\","
    "\"stop_reason\":null,\"usage\":{\"input_tokens\":25,"
    "\"cache_read_input_tokens\":10,\"output_tokens\":1}}}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
    "{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n"
    "event: ping\ndata: {\"type\": \"ping\"}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
    "\"thinking_delta\",\"thinking\":\"Let me \"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
    "\"thinking_delta\",\"thinking\":\"add.\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
    "\"signature_delta\",\"signature\":\"EqQBCgIYAhIM\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":"
    "{\"type\":\"redacted_thinking\",\"data\":\"opaque\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":"
    "{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
    "\"text_delta\",\"text\":\"It is \"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
    "\"text_delta\",\"text\":\"4.\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":2}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
    "\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

TEST(ParseMessagesStreamTest, AssemblesThinkingSignatureRedactedAndText) {
  TeacherResult r = ParseMessagesStream(kThinkingStream);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.answer.content, "It is 4.");
  EXPECT_EQ(r.answer.reasoning, "Let me add.");
  EXPECT_EQ(r.answer.finish_reason, "end_turn");
  EXPECT_EQ(r.answer.provider_id, "msg_s");
  EXPECT_EQ(r.answer.usage.prompt_tokens, 35);
  EXPECT_EQ(r.answer.usage.cached_tokens, 10);
  EXPECT_EQ(r.answer.usage.completion_tokens, 15);
  EXPECT_EQ(r.answer.raw_body, kThinkingStream);
  json blocks = json::parse(r.answer.reasoning_blocks);
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks[0], json({{"type", "thinking"},
                             {"thinking", "Let me add."},
                             {"signature", "EqQBCgIYAhIM"}}));
  EXPECT_EQ(blocks[1],
            json({{"type", "redacted_thinking"}, {"data", "opaque"}}));
}

TEST(ParseMessagesStreamTest, SameStreamWithCrLf) {
  std::string crlf;
  for (char c : std::string(kThinkingStream)) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  TeacherResult r = ParseMessagesStream(crlf);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.answer.content, "It is 4.");
  EXPECT_EQ(json::parse(r.answer.reasoning_blocks)[0].at("signature"),
            "EqQBCgIYAhIM");
}

TEST(ParseMessagesStreamTest, ErrorEventIsRetryable) {
  const std::string body =
      std::string(kThinkingStream).substr(0, 600) +
      "\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
      "\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
  TeacherResult r = ParseMessagesStream(
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
      "{\"id\":\"m\"}}\n\n"
      "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
      "\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
  EXPECT_EQ(r.kind, FailureKind::kRetryable);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("Overloaded"));
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("in the stream"));
  EXPECT_FALSE(ParseMessagesStream(body).status.ok());
}

TEST(ParseMessagesStreamTest, StreamWithoutMessageStopIsRetryable) {
  std::string body = kThinkingStream;
  body.resize(body.find("event: message_stop"));
  TeacherResult r = ParseMessagesStream(body);
  EXPECT_EQ(r.kind, FailureKind::kRetryable);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("message_stop"));
  EXPECT_FALSE(ParseMessagesStream("").status.ok());
  EXPECT_FALSE(ParseMessagesStream("event: ping\ndata: {oops\n\n").status.ok());
}


std::shared_ptr<const WireFormat> Messages(AnthropicMessagesOptions options = {}) {
  return std::make_shared<const AnthropicMessagesFormat>(std::move(options));
}

// Where the API lives, as AnthropicTeacherOptions defaulted it.
HttpTeacherOptions DefaultOptions() {
  HttpTeacherOptions options;
  options.base_url = "https://api.anthropic.com";
  return options;
}

std::string HeaderOf(const HttpRequest& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "<absent>";
}

TEST(AnthropicMessagesTeacherTest, SendsHeadersAndParsesTheAnswer) {
  ScriptedHttpClient http;
  http.response = Response(200, kThinkingBody);
  HttpTeacherOptions options;
  options.base_url = "http://127.0.0.1:9/";
  options.api_key = "sk-ant-secret\n";
  AnthropicMessagesOptions format;
  format.body.thinking_budget_tokens = 1024;
  HttpTeacher teacher(http, Messages(format), options);
  TeacherResult got;
  teacher.Ask(Request(), [&](TeacherResult r) { got = std::move(r); });
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_EQ(got.answer.content, "The answer is 4.");
  ASSERT_EQ(http.requests.size(), 1u);
  const HttpRequest& sent = http.requests[0];
  EXPECT_EQ(sent.url, "http://127.0.0.1:9/v1/messages");
  EXPECT_EQ(HeaderOf(sent, "x-api-key"), "sk-ant-secret");
  EXPECT_EQ(HeaderOf(sent, "anthropic-version"), "2023-06-01");
  EXPECT_EQ(HeaderOf(sent, "Authorization"), "<absent>");
  EXPECT_EQ(json::parse(sent.body).at("thinking").at("budget_tokens"), 1024);
}

TEST(AnthropicMessagesTeacherTest, StreamModeParsesTheStream) {
  ScriptedHttpClient http;
  http.response = Response(200, kThinkingStream);
  AnthropicMessagesOptions format;
  format.body.stream = true;
  HttpTeacher teacher(http, Messages(format), DefaultOptions());
  TeacherResult got;
  teacher.Ask(Request(), [&](TeacherResult r) { got = std::move(r); });
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_EQ(got.answer.reasoning, "Let me add.");
  EXPECT_EQ(json::parse(http.requests[0].body).at("stream"), true);
  EXPECT_EQ(HeaderOf(http.requests[0], "Accept"), "text/event-stream");
}

TEST(AnthropicMessagesTeacherTest, KeyAppearsInNoErrorMessage) {
  ScriptedHttpClient http;
  http.response = Response(
      401, R"({"type":"error","error":{"type":"authentication_error",)"
           R"("message":"invalid x-api-key sk-ant-secret"}})");
  HttpTeacherOptions options = DefaultOptions();
  options.api_key = "sk-ant-secret";
  HttpTeacher teacher(http, Messages(), options);
  TeacherResult got;
  teacher.Ask(Request(), [&](TeacherResult r) { got = std::move(r); });
  EXPECT_EQ(got.kind, FailureKind::kTeacherDown);
  EXPECT_THAT(std::string(got.status.message()),
              Not(HasSubstr("sk-ant-secret")));
}

TEST(AnthropicMessagesTeacherTest, BadOptionsFailWithoutSending) {
  ScriptedHttpClient http;
  HttpTeacherOptions options;
  options.base_url = "ftp://x";
  HttpTeacher teacher(http, Messages(), options);
  TeacherResult got;
  teacher.Ask(Request(), [&](TeacherResult r) { got = std::move(r); });
  EXPECT_EQ(got.kind, FailureKind::kTeacherDown);
  EXPECT_TRUE(http.requests.empty());
}

}  // namespace
}  // namespace distillery
