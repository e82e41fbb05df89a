// OpenAI-style streaming (SSE) and response_format: request bodies, and
// recorded streams from OpenAI, DeepSeek, vLLM and llama.cpp assembled into
// one answer.
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "common/teacher/http_teacher.h"
#include "common/teacher/openai_chat_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

TeacherRequest Request() {
  TeacherRequest request;
  request.model = "gpt-4o-mini";
  request.messages = {{"user", "Hi"}};
  return request;
}

TEST(BuildChatRequestBodyStreamTest, StreamAddsIncludeUsage) {
  ChatBodyOptions options;
  options.stream = true;
  absl::StatusOr<std::string> body = BuildChatRequestBody(Request(), options);
  ASSERT_TRUE(body.ok()) << body.status();
  json doc = json::parse(*body);
  EXPECT_EQ(doc.at("stream"), true);
  EXPECT_EQ(doc.at("stream_options").at("include_usage"), true);
  EXPECT_FALSE(doc.contains("n"));
}

TEST(BuildChatRequestBodyStreamTest, ResponseFormatPassesThrough) {
  ChatBodyOptions options;
  options.response_format_json = R"({"type":"json_object"})";
  absl::StatusOr<std::string> body = BuildChatRequestBody(Request(), options);
  ASSERT_TRUE(body.ok()) << body.status();
  json doc = json::parse(*body);
  EXPECT_EQ(doc.at("response_format").at("type"), "json_object");
  EXPECT_FALSE(doc.contains("stream"));

  options.response_format_json = "[1]";
  EXPECT_EQ(BuildChatRequestBody(Request(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(OpenAiChatFormatStreamTest, ResponseFormatMustBeAnObject) {
  ChatBodyOptions options;
  options.response_format_json = "not json";
  absl::Status s = OpenAiChatFormat(options).Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("response_format"));
  options.response_format_json = R"({"type":"text"})";
  EXPECT_TRUE(OpenAiChatFormat(options).Validate().ok());
}

// OpenAI with include_usage: role chunk, content chunks, finish chunk, the
// usage chunk with "choices":[], then [DONE].
constexpr char kOpenAiStream[] =
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
    "\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},"
    "\"finish_reason\":null}],\"usage\":null}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo!\"},"
    "\"finish_reason\":null}],\"usage\":null}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
    "\"usage\":null}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
    "\"choices\":[],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,"
    "\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\":3},"
    "\"completion_tokens_details\":{\"reasoning_tokens\":4}}}\n\n"
    "data: [DONE]\n\n";

TEST(ParseChatStreamTest, OpenAiWithUsageInTheFinalChunk) {
  TeacherResult r = ParseChatStream(kOpenAiStream);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.answer.content, "Hello!");
  EXPECT_EQ(r.answer.reasoning, "");
  EXPECT_EQ(r.answer.finish_reason, "stop");
  EXPECT_EQ(r.answer.usage.prompt_tokens, 19);
  EXPECT_EQ(r.answer.usage.completion_tokens, 10);
  EXPECT_EQ(r.answer.usage.cached_tokens, 3);
  EXPECT_EQ(r.answer.usage.reasoning_tokens, 4);
  EXPECT_EQ(r.answer.provider_id, "chatcmpl-1");
  EXPECT_EQ(r.answer.raw_body, kOpenAiStream);
  EXPECT_EQ(r.http_status, 200);
}

TEST(ParseChatStreamTest, CrLfLineEndsAreTheSame) {
  std::string crlf;
  for (char c : std::string(kOpenAiStream)) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  TeacherResult r = ParseChatStream(crlf);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.answer.content, "Hello!");
  EXPECT_EQ(r.answer.usage.prompt_tokens, 19);
}

// DeepSeek: keep-alive comments while queued, reasoning_content deltas, then
// content deltas, cache hits in usage.
TEST(ParseChatStreamTest, DeepSeekKeepAlivesAndReasoningContent) {
  const std::string body =
      ": keep-alive\n\n: keep-alive\n\n"
      "data: {\"id\":\"ds-1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
      "\"assistant\",\"content\":null,\"reasoning_content\":\"\"},"
      "\"finish_reason\":null}]}\n\n"
      "data: {\"id\":\"ds-1\",\"choices\":[{\"index\":0,\"delta\":{"
      "\"content\":null,\"reasoning_content\":\"Think \"}}]}\n\n"
      ": keep-alive\n\n"
      "data: {\"id\":\"ds-1\",\"choices\":[{\"index\":0,\"delta\":{"
      "\"content\":null,\"reasoning_content\":\"hard.\"}}]}\n\n"
      "data: {\"id\":\"ds-1\",\"choices\":[{\"index\":0,\"delta\":{"
      "\"content\":\"4\",\"reasoning_content\":null}}]}\n\n"
      "data: {\"id\":\"ds-1\",\"choices\":[{\"index\":0,\"delta\":{"
      "\"content\":\"\"},\"finish_reason\":\"stop\"}],\"usage\":{"
      "\"prompt_tokens\":10,\"completion_tokens\":7,"
      "\"prompt_cache_hit_tokens\":6,\"prompt_cache_miss_tokens\":4,"
      "\"completion_tokens_details\":{\"reasoning_tokens\":5}}}\n\n"
      "data: [DONE]\n\n";
  TeacherResult r = ParseChatStream(body);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.answer.reasoning, "Think hard.");
  EXPECT_EQ(r.answer.content, "4");
  EXPECT_EQ(r.answer.usage.cached_tokens, 6);
  EXPECT_EQ(r.answer.usage.reasoning_tokens, 5);
}

// vLLM (newer) streams delta.reasoning; it wins over reasoning_content.
TEST(ParseChatStreamTest, VllmReasoningReadBeforeReasoningContent) {
  const std::string body =
      "data: {\"id\":\"v\",\"choices\":[{\"index\":0,\"delta\":{"
      "\"reasoning\":\"new \",\"reasoning_content\":\"old \"}}]}\n\n"
      "data: {\"id\":\"v\",\"choices\":[{\"index\":0,\"delta\":{"
      "\"reasoning\":\"name\",\"reasoning_content\":\"name\"}}]}\n\n"
      "data: {\"id\":\"v\",\"choices\":[{\"index\":0,\"delta\":{"
      "\"content\":\"ok\"},\"finish_reason\":\"length\"}]}\n\n"
      "data: [DONE]\n\n";
  TeacherResult r = ParseChatStream(body);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.answer.reasoning, "new name");
  EXPECT_EQ(r.answer.content, "ok");
  EXPECT_EQ(r.answer.finish_reason, "length");
}

// llama.cpp without --reasoning-format streams the <think> block inline.
TEST(ParseChatStreamTest, LlamaCppInlineThinkAcrossChunks) {
  const std::string body =
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"<thi\"}}]}\n\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"nk>why"
      "</th\"}}]}\n\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ink>\\n"
      "because\"},\"finish_reason\":\"stop\"}]}\n\n"
      "data: [DONE]\n\n";
  TeacherResult r = ParseChatStream(body);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.answer.reasoning, "why");
  EXPECT_EQ(r.answer.content, "because");
}

TEST(ParseChatStreamTest, OnlyChoiceZeroCounts) {
  const std::string body =
      "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"B\"}},"
      "{\"index\":0,\"delta\":{\"content\":\"A\"}}]}\n\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
      "\"stop\"}]}\n\n";
  TeacherResult r = ParseChatStream(body);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.answer.content, "A");  // finish_reason suffices without [DONE]
}

TEST(ParseChatStreamTest, ErrorEventInsideTheStreamIsRetryable) {
  const std::string body =
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n"
      "data: {\"error\":{\"message\":\"The server had an error\","
      "\"type\":\"server_error\",\"code\":null}}\n\n";
  TeacherResult r = ParseChatStream(body);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(r.kind, FailureKind::kRetryable);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("in the stream"));
  EXPECT_THAT(std::string(r.status.message()),
              HasSubstr("The server had an error"));
}

TEST(ParseChatStreamTest, RateLimitErrorInsideTheStreamIsRateLimited) {
  TeacherResult r = ParseChatStream(
      "data: {\"error\":{\"message\":\"slow\",\"code\":"
      "\"rate_limit_exceeded\"}}\n\n");
  EXPECT_EQ(r.kind, FailureKind::kRateLimited);
}

TEST(ParseChatStreamTest, CutOffStreamIsRetryable) {
  const std::string body =
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"con";
  TeacherResult r = ParseChatStream(body);
  EXPECT_EQ(r.kind, FailureKind::kRetryable);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("cut off"));
}

TEST(ParseChatStreamTest, EmptyOrGarbledStreamIsRetryable) {
  EXPECT_EQ(ParseChatStream("").kind, FailureKind::kRetryable);
  EXPECT_FALSE(ParseChatStream("").status.ok());
  EXPECT_FALSE(ParseChatStream("data: [DONE]\n\n").status.ok());
  TeacherResult r = ParseChatStream("data: {not json\n\n");
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
}

TEST(HandleChatResponseStreamTest, HttpErrorsAreClassifiedAsUsual) {
  HttpResponse response;
  response.status = 429;
  response.body =
      R"({"error":{"message":"x","type":"requests","code":"rate_limit_exceeded"}})";
  response.headers = {{"retry-after-ms", "250"}};
  TeacherResult r =
      HandleChatResponse(response, 0, /*secret=*/"", /*stream=*/true);
  EXPECT_EQ(r.kind, FailureKind::kRateLimited);
  ASSERT_TRUE(r.retry_after.has_value());
  EXPECT_EQ(*r.retry_after, std::chrono::milliseconds(250));

  response.status = 200;
  response.body = kOpenAiStream;
  r = HandleChatResponse(response, 0, "", /*stream=*/true);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.answer.content, "Hello!");
  // The same body read as a plain answer is garbled.
  EXPECT_FALSE(HandleChatResponse(response, 0, "", false).status.ok());
}

class CapturingHttpClient : public HttpClient {
 public:
  void Send(HttpRequest request, Callback done) override {
    last = std::move(request);
    HttpResponse r;
    r.status = 200;
    r.body = kOpenAiStream;
    done(r);
  }
  HttpRequest last;
};

TEST(OpenAiChatFormatStreamTest, SendsAStreamRequestAndAssemblesTheAnswer) {
  CapturingHttpClient http;
  HttpTeacherOptions options;
  options.base_url = "http://localhost:1/v1";
  ChatBodyOptions body;
  body.stream = true;
  HttpTeacher teacher(http, std::make_shared<OpenAiChatFormat>(body), options);
  TeacherResult got;
  teacher.Ask(Request(), [&](TeacherResult r) { got = std::move(r); });
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_EQ(got.answer.content, "Hello!");
  json sent = json::parse(http.last.body);
  EXPECT_EQ(sent.at("stream"), true);
  bool accept = false;
  for (const auto& [k, v] : http.last.headers) {
    accept = accept || (k == "Accept" && v == "text/event-stream");
  }
  EXPECT_TRUE(accept);
}

}  // namespace
}  // namespace distillery
