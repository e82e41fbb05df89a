// Every teacher body parser refuses JSON nesting deeper than kMaxJsonDepth
// (json_depth.h) and accepts it up to the limit: the fast chat.completion
// scanner, the nlohmann paths of both adapters (plain and streamed), and the
// error-body reader, whose structured "message" was dumped recursively (a
// 200,000-deep error body crashed the worker).
#include <string>

#include "absl/status/status.h"
#include "common/base/json_depth.h"
#include "common/teacher/anthropic_messages_format.h"
#include "common/teacher/chat_completion_scan.h"
#include "common/teacher/http_failure.h"
#include "common/teacher/openai_chat_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/base/deep_json.h"

namespace distillery {
namespace {

using ::testing::HasSubstr;

constexpr int kHuge = 200'000;

// `"x":` followed by arrays so that the enclosing body, whose own object is
// at level `outer`, nests `levels` deep in all.
std::string DeepField(int levels, int outer) {
  return "\"x\":" + testing::NestedArrays(levels - outer);
}

std::string Completion(int levels) {
  return R"({"id":"c1","object":"chat.completion","choices":[{"index":0,)"
         R"("message":{"role":"assistant","content":"hi"},)"
         R"("finish_reason":"stop"}],)" +
         DeepField(levels, 1) + "}";
}

std::string ChatStream(int levels) {
  return "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":"
         "{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]," +
         DeepField(levels, 1) + "}\n\ndata: [DONE]\n\n";
}

std::string Message(int levels) {
  return R"({"id":"msg_1","type":"message","role":"assistant",)"
         R"("content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn",)" +
         DeepField(levels, 1) + "}";
}

std::string MessageStream(int levels) {
  return "event: message_start\ndata: {\"type\":\"message_start\","
         "\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":3}}}\n\n"
         "event: content_block_start\ndata: {\"type\":\"content_block_start\","
         "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
         "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
         "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n"
         "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":"
         "{\"stop_reason\":\"end_turn\"}," +
         DeepField(levels, 1) +
         "}\n\n"
         "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
}

// An error body whose message is a structure (FastAPI-style details).
std::string ErrorBody(int levels) {
  return R"({"error":{"message":)" + testing::NestedArrays(levels - 2) +
         R"(,"type":"invalid_request_error"}})";
}

void ExpectRefused(const TeacherResult& r) {
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable) << r.status;
  EXPECT_EQ(r.kind, FailureKind::kRetryable);
  EXPECT_THAT(std::string(r.status.message()),
              HasSubstr("nests deeper than 64 levels"));
}

TEST(JsonDepthTest, ScannerAcceptsTheLimitAndDeclinesDeeper) {
  EXPECT_TRUE(ScanChatCompletion(Completion(kMaxJsonDepth)).has_value());
  EXPECT_FALSE(ScanChatCompletion(Completion(kMaxJsonDepth + 1)).has_value());
  EXPECT_FALSE(ScanChatCompletion(Completion(kHuge)).has_value());
  // An empty array opens a level too.
  EXPECT_FALSE(ScanChatCompletion(
                   R"({"choices":[{"message":{"content":"hi"}}],"x":)" +
                   std::string(kMaxJsonDepth, '[') +
                   std::string(kMaxJsonDepth, ']') + "}")
                   .has_value());
}

TEST(JsonDepthTest, ChatResponse) {
  const TeacherResult ok = ParseChatResponse(Completion(kMaxJsonDepth));
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_EQ(ok.answer.content, "hi");
  ExpectRefused(ParseChatResponse(Completion(kMaxJsonDepth + 1)));
  ExpectRefused(ParseChatResponse(Completion(kHuge)));
}

TEST(JsonDepthTest, ChatStream) {
  const TeacherResult ok = ParseChatStream(ChatStream(kMaxJsonDepth));
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_EQ(ok.answer.content, "hi");
  ExpectRefused(ParseChatStream(ChatStream(kMaxJsonDepth + 1)));
  ExpectRefused(ParseChatStream(ChatStream(kHuge)));
}

TEST(JsonDepthTest, MessagesResponse) {
  const TeacherResult ok = ParseMessagesResponse(Message(kMaxJsonDepth));
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_EQ(ok.answer.content, "hi");
  ExpectRefused(ParseMessagesResponse(Message(kMaxJsonDepth + 1)));
  ExpectRefused(ParseMessagesResponse(Message(kHuge)));
}

TEST(JsonDepthTest, MessagesStream) {
  const TeacherResult ok = ParseMessagesStream(MessageStream(kMaxJsonDepth));
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_EQ(ok.answer.content, "hi");
  ExpectRefused(ParseMessagesStream(MessageStream(kMaxJsonDepth + 1)));
  ExpectRefused(ParseMessagesStream(MessageStream(kHuge)));
}

TEST(JsonDepthTest, ErrorBodyTooDeepIsQuotedNotRead) {
  const TeacherErrorBody ok = ParseTeacherErrorBody(ErrorBody(kMaxJsonDepth));
  EXPECT_TRUE(ok.found);
  EXPECT_EQ(ok.type, "invalid_request_error");
  EXPECT_FALSE(ParseTeacherErrorBody(ErrorBody(kMaxJsonDepth + 1)).found);
  EXPECT_FALSE(ParseTeacherErrorBody(ErrorBody(kHuge)).found);

  // Whole responses carrying it: a 400, and an error inside a 200 (which
  // the adapter hands to the error reader).
  HttpResponse response;
  response.status = 400;
  response.body = ErrorBody(kHuge);
  const TeacherResult r = ClassifyHttpFailure(response, 0);
  EXPECT_EQ(r.kind, FailureKind::kPermanent);
  EXPECT_THAT(std::string(r.status.message()),
              HasSubstr("HTTP 400 from teacher, body: "));
  ExpectRefused(ParseChatResponse(ErrorBody(kHuge)));
  ExpectRefused(ParseMessagesResponse(ErrorBody(kHuge)));
}

}  // namespace
}  // namespace distillery
