// AnthropicBatchApi against a FakeHttpClient: the lines and the create body
// it sends, how it reads batches, lists and results (thinking kept), the
// codes of its failures, and that the key never shows.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/http/fake_http_client.h"
#include "common/teacher/anthropic_messages_format.h"
#include "common/teacher/batch_api.h"
#include "common/teacher/batch_apis.h"
#include "common/teacher/teacher_factory.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/teacher/scripted_http.h"

namespace distillery {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;
using testing::HeaderValue;

constexpr char kKey[] = "sk-ant-SECRET-0123456789";
constexpr char kBase[] = "http://127.0.0.1:8100";
constexpr int64_t kCreated = 1727203044;  // 2024-09-24T18:37:24Z

TeacherRequest Request() {
  TeacherRequest request;
  request.model = "claude-sonnet-4-5";
  request.messages = {{"user", "What is 2+2?"}};
  request.params.max_tokens = 2000;
  return request;
}

json Counts(int processing, int succeeded = 0, int errored = 0,
            int canceled = 0, int expired = 0) {
  return {{"processing", processing},
          {"succeeded", succeeded},
          {"errored", errored},
          {"canceled", canceled},
          {"expired", expired}};
}

json Batch(std::string id, std::string status, json counts,
           std::string created = "2024-09-24T18:37:24Z") {
  return {{"id", id},
          {"type", "message_batch"},
          {"processing_status", status},
          {"request_counts", counts},
          {"ended_at", nullptr},
          {"created_at", created},
          {"expires_at", "2024-09-25T18:37:24Z"},
          {"cancel_initiated_at", nullptr},
          {"results_url", nullptr}};
}

class AnthropicBatchApiTest : public ::testing::Test {
 protected:
  AnthropicBatchApiTest() {
    TeacherProfile profile;
    profile.name = "claude";
    profile.api = "anthropic";
    profile.base_url = kBase;
    profile.stream = true;  // forced off for batches
    profile.thinking_budget_tokens = 1024;
    auto made = MakeBatchApi(profile, kKey, http_);
    EXPECT_TRUE(made.ok()) << made.status();
    api_ = *std::move(made);
  }

  FakeHttpClient http_;
  std::unique_ptr<BatchApi> api_;
};

TEST_F(AnthropicBatchApiTest, LineIsTheOnlineBodyAsParams) {
  absl::StatusOr<std::string> line = api_->BuildLine("t-1", Request());
  ASSERT_TRUE(line.ok()) << line.status();
  MessagesBodyOptions options;
  options.thinking_budget_tokens = 1024;
  absl::StatusOr<std::string> body =
      BuildMessagesRequestBody(Request(), options);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(*line, R"({"custom_id":"t-1","params":)" + *body + "}");
  EXPECT_THAT(*line, Not(HasSubstr("stream")));
  EXPECT_EQ(json::parse(*line).at("params").at("thinking").at("budget_tokens"),
            1024);
  EXPECT_EQ(api_->BuildLine(std::string(65, 'a'), Request()).status().code(),
            absl::StatusCode::kInvalidArgument);
  TeacherRequest small = Request();
  small.params.max_tokens = 100;  // not above the thinking budget
  EXPECT_EQ(api_->BuildLine("t-1", small).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(AnthropicBatchApiTest, CreateSendsTheRequestsInOneBody) {
  http_.EnqueueResponse(200,
                        Batch("msgbatch_1", "in_progress", Counts(2)).dump());
  absl::StatusOr<BatchInfo> info = api_->Create(
      {R"({"custom_id":"a","params":{}})", R"({"custom_id":"b","params":{}})"},
      "claude-sonnet-4-5", "job7-b1");
  ASSERT_TRUE(info.ok()) << info.status();
  const HttpRequest sent = http_.last_request();
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.url, "http://127.0.0.1:8100/v1/messages/batches");
  EXPECT_EQ(sent.body, R"({"requests":[{"custom_id":"a","params":{}},)"
                       R"({"custom_id":"b","params":{}}]})");
  EXPECT_EQ(HeaderValue(sent, "Content-Type"), "application/json");
  EXPECT_EQ(HeaderValue(sent, "x-api-key"), kKey);
  EXPECT_EQ(HeaderValue(sent, "anthropic-version"), "2023-06-01");
  EXPECT_EQ(HeaderValue(sent, "Accept"), std::nullopt);

  EXPECT_EQ(info->id, "msgbatch_1");
  EXPECT_EQ(info->phase, BatchPhase::kRunning);
  EXPECT_EQ(info->provider_status, "in_progress");
  EXPECT_EQ(info->total, 2);
  EXPECT_EQ(info->created_at_s, kCreated);
  EXPECT_EQ(info->results_url, "");
  EXPECT_EQ(info->tag, "");
}

TEST_F(AnthropicBatchApiTest, CreateFailures) {
  http_.EnqueueResponse(
      429,
      R"({"type":"error","error":{"type":"rate_limit_error","message":"queue full"}})");
  EXPECT_EQ(api_->Create({"{}"}, "m", "t").status().code(),
            absl::StatusCode::kResourceExhausted);
  http_.EnqueueResponse(
      413,
      R"({"type":"error","error":{"type":"request_too_large","message":"big"}})");
  EXPECT_EQ(api_->Create({"{}"}, "m", "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  http_.EnqueueResponse(
      400,
      R"({"type":"error","error":{"type":"invalid_request_error","message":"custom_id"}})");
  absl::Status status = api_->Create({"{}"}, "m", "t").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("Anthropic batch API"));
  EXPECT_THAT(status.message(), HasSubstr("custom_id"));
  http_.EnqueueResponse(
      529, R"({"type":"error","error":{"type":"overloaded_error"}})");
  EXPECT_EQ(api_->Create({"{}"}, "m", "t").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(api_->Create({}, "m", "t").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(AnthropicBatchApiTest, GetMapsEveryStatusAndCount) {
  http_.EnqueueResponse(200,
                        Batch("msgbatch_1", "in_progress", Counts(5)).dump());
  http_.EnqueueResponse(200,
                        Batch("msgbatch_1", "canceling", Counts(1, 1)).dump());
  json ended = Batch("msgbatch_1", "ended", Counts(0, 4, 3, 2, 1),
                     "2024-09-24T18:37:24.123456+00:00");
  ended["results_url"] =
      "http://127.0.0.1:8100/v1/messages/batches/msgbatch_1/results";
  http_.EnqueueResponse(200, ended.dump());

  absl::StatusOr<BatchInfo> info = api_->Get("msgbatch_1");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->phase, BatchPhase::kRunning);
  EXPECT_EQ(http_.last_request().url,
            "http://127.0.0.1:8100/v1/messages/batches/msgbatch_1");
  EXPECT_EQ(http_.last_request().method, "GET");
  info = api_->Get("msgbatch_1");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->phase, BatchPhase::kCancelling);
  info = api_->Get("msgbatch_1");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->phase, BatchPhase::kEnded);
  EXPECT_EQ(info->total, 10);
  EXPECT_EQ(info->succeeded, 4);
  EXPECT_EQ(info->errored, 3);
  EXPECT_EQ(info->not_run, 3);
  EXPECT_EQ(info->created_at_s, kCreated);
  EXPECT_EQ(info->results_url,
            "http://127.0.0.1:8100/v1/messages/batches/msgbatch_1/results");
}

TEST_F(AnthropicBatchApiTest, BadBatchBodiesAreInternal) {
  json no_id = Batch("x", "ended", Counts(0));
  no_id.erase("id");
  const std::string bodies[] = {
      "",
      "{",
      no_id.dump(),
      Batch("x", "done", Counts(0)).dump(),
      Batch("x", "ended", Counts(0), "yesterday").dump(),
      Batch("x", "ended", Counts(0), "").dump(),
      Batch("x", "ended", json::array()).dump(),
      Batch("x", "ended", {{"succeeded", "many"}}).dump(),
  };
  for (const std::string& body : bodies) {
    http_.EnqueueResponse(200, body);
    EXPECT_EQ(api_->Get("msgbatch_1").status().code(),
              absl::StatusCode::kInternal)
        << body;
  }
  json created_number = Batch("x", "ended", Counts(0));
  created_number["created_at"] = kCreated;
  http_.EnqueueResponse(200, created_number.dump());
  EXPECT_THAT(api_->Get("msgbatch_1").status().message(),
              HasSubstr("\"created_at\" is not a string"));
}

TEST_F(AnthropicBatchApiTest, CancelIsOkWhenAlreadyEnded) {
  http_.EnqueueResponse(200,
                        Batch("msgbatch_1", "canceling", Counts(1)).dump());
  EXPECT_TRUE(api_->Cancel("msgbatch_1").ok());
  EXPECT_EQ(http_.last_request().url,
            "http://127.0.0.1:8100/v1/messages/batches/msgbatch_1/cancel");
  EXPECT_EQ(http_.last_request().method, "POST");

  http_.EnqueueResponse(
      400, R"({"type":"error","error":{"type":"invalid_request_error"}})");
  http_.EnqueueResponse(200, Batch("msgbatch_1", "ended", Counts(0, 1)).dump());
  EXPECT_TRUE(api_->Cancel("msgbatch_1").ok());

  http_.EnqueueResponse(
      404, R"({"type":"error","error":{"type":"not_found_error"}})");
  EXPECT_EQ(api_->Cancel("msgbatch_1").code(), absl::StatusCode::kNotFound);
}

json Message() {
  return {{"id", "msg_1"},
          {"type", "message"},
          {"role", "assistant"},
          {"model", "claude-sonnet-4-5"},
          {"content",
           {{{"type", "thinking"},
             {"thinking", "2 and 2 make 4."},
             {"signature", "sig=="}},
            {{"type", "redacted_thinking"}, {"data", "opaque"}},
            {{"type", "text"}, {"text", "4"}}}},
          {"stop_reason", "end_turn"},
          {"stop_sequence", nullptr},
          {"usage", {{"input_tokens", 12}, {"output_tokens", 30}}}};
}

std::string ResultLine(std::string id, json result) {
  return json{{"custom_id", id}, {"result", result}}.dump();
}

json Errored(std::string type, std::string message) {
  return {
      {"type", "errored"},
      {"error",
       {{"type", "error"}, {"error", {{"type", type}, {"message", message}}}}}};
}

BatchInfo Ended(std::string results_url) {
  BatchInfo batch;
  batch.id = "msgbatch_1";
  batch.phase = BatchPhase::kEnded;
  batch.results_url = std::move(results_url);
  return batch;
}

TEST_F(AnthropicBatchApiTest, ResultsReadEachKindOfLine) {
  const std::string body =
      ResultLine("a", {{"type", "succeeded"}, {"message", Message()}}) + "\n" +
      ResultLine("b", Errored("invalid_request_error", "bad prompt")) + "\n" +
      ResultLine("c", {{"type", "expired"}}) + "\n" +
      ResultLine("d", {{"type", "canceled"}}) + "\n" +
      ResultLine("e", Errored("overloaded_error", "busy")) + "\n" +
      ResultLine("f", Errored("api_error", "oops")) + "\n" +
      ResultLine("g", {{"type", "future"}}) + "\n" + "{broken\n" +
      ResultLine("h", {{"type", "errored"},
                       {"error", {{"type", "rate_limit_error"}}}}) +
      "\n";
  http_.EnqueueResponse(200, body);
  const std::string url =
      "http://127.0.0.1:8100/v1/messages/batches/msgbatch_1/results";
  absl::StatusOr<std::vector<BatchItemResult>> results =
      api_->Results(Ended(url));
  ASSERT_TRUE(results.ok()) << results.status();
  const HttpRequest sent = http_.last_request();
  EXPECT_EQ(sent.url, url);
  EXPECT_EQ(sent.method, "GET");
  EXPECT_EQ(HeaderValue(sent, "x-api-key"), kKey);
  EXPECT_EQ(HeaderValue(sent, "anthropic-version"), "2023-06-01");
  EXPECT_GE(sent.max_response_bytes, size_t{1} << 30);

  ASSERT_EQ(results->size(), 7u);  // "g" and the broken line left out
  const BatchItemResult& ok = (*results)[0];
  EXPECT_EQ(ok.custom_id, "a");
  ASSERT_TRUE(ok.result.status.ok()) << ok.result.status;
  EXPECT_EQ(ok.result.answer.content, "4");
  EXPECT_EQ(ok.result.answer.reasoning, "2 and 2 make 4.");
  const json blocks = json::parse(ok.result.answer.reasoning_blocks);
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks[0].at("signature"), "sig==");
  EXPECT_EQ(blocks[1].at("data"), "opaque");
  EXPECT_EQ(ok.result.answer.finish_reason, "end_turn");
  EXPECT_EQ(ok.result.answer.usage.completion_tokens, 30);
  EXPECT_EQ(json::parse(ok.result.answer.raw_body), Message());

  const BatchItemResult& invalid = (*results)[1];
  EXPECT_EQ(invalid.custom_id, "b");
  EXPECT_EQ(invalid.result.kind, FailureKind::kPermanent);
  EXPECT_EQ(invalid.result.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(invalid.result.status.message(), HasSubstr("bad prompt"));
  EXPECT_FALSE(invalid.not_run);

  EXPECT_EQ((*results)[2].custom_id, "c");
  EXPECT_TRUE((*results)[2].not_run);
  EXPECT_EQ((*results)[2].result.kind, FailureKind::kRetryable);
  EXPECT_FALSE((*results)[2].result.status.ok());
  EXPECT_EQ((*results)[3].custom_id, "d");
  EXPECT_TRUE((*results)[3].not_run);

  EXPECT_EQ((*results)[4].result.kind, FailureKind::kRetryable);
  EXPECT_EQ((*results)[4].result.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE((*results)[4].not_run);
  EXPECT_EQ((*results)[5].result.kind, FailureKind::kRetryable);
  EXPECT_EQ((*results)[6].custom_id, "h");
  EXPECT_EQ((*results)[6].result.kind, FailureKind::kRateLimited);
}

TEST_F(AnthropicBatchApiTest, ResultsElsewhereGoWithoutTheKey) {
  http_.EnqueueResponse(200, "");
  absl::StatusOr<std::vector<BatchItemResult>> results =
      api_->Results(Ended("https://cdn.example.com/results/1"));
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_TRUE(results->empty());
  EXPECT_EQ(HeaderValue(http_.last_request(), "x-api-key"), std::nullopt);

  EXPECT_EQ(api_->Results(Ended("")).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(api_->Results(Ended("file:///etc/passwd")).status().code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(http_.request_count(), 1u);
}

json Page(std::vector<json> batches, bool has_more) {
  json page = {{"data", batches}, {"has_more", has_more}};
  if (!batches.empty()) {
    page["first_id"] = batches.front().at("id");
    page["last_id"] = batches.back().at("id");
  }
  return page;
}

TEST_F(AnthropicBatchApiTest, FindTheNewestOfTheCountNotExcluded) {
  // kCreated - 60 is the window's start; the list runs newest first.
  http_.EnqueueResponse(
      200, Page({Batch("msgbatch_4", "in_progress", Counts(3)),
                 Batch("msgbatch_3", "in_progress", Counts(1, 1)),  // excluded
                 Batch("msgbatch_2", "in_progress", Counts(0, 1, 0, 1))},
                true)
               .dump());
  http_.EnqueueResponse(200, Page({Batch("msgbatch_1", "ended", Counts(0, 2)),
                                   Batch("msgbatch_0", "ended", Counts(2))},
                                  true)
                                 .dump());
  absl::StatusOr<std::optional<BatchInfo>> found =
      api_->Find("ignored", kCreated - 60, 2, {"msgbatch_3", "msgbatch_2"});
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->id, "msgbatch_1");
  const std::vector<HttpRequest> sent = http_.requests();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].url, "http://127.0.0.1:8100/v1/messages/batches?limit=100");
  EXPECT_EQ(sent[1].url,
            "http://127.0.0.1:8100/v1/messages/batches?limit=100"
            "&after_id=msgbatch_2");
}

TEST_F(AnthropicBatchApiTest, FindStopsAtOlderBatches) {
  http_.EnqueueResponse(
      200, Page({Batch("msgbatch_4", "in_progress", Counts(3)),
                 Batch("msgbatch_1", "ended", Counts(0, 2),
                       "2024-09-24T18:30:00Z")},  // before the window
                true)
               .dump());
  absl::StatusOr<std::optional<BatchInfo>> found =
      api_->Find("", kCreated - 60, 2, {});
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_FALSE(found->has_value());
  EXPECT_EQ(http_.request_count(), 1u);
}

TEST_F(AnthropicBatchApiTest, FindWillNotSayNoneOverABatchItCannotRead) {
  json unreadable = Batch("msgbatch_5", "in_progress", Counts(2));
  unreadable["processing_status"] = "paused";
  http_.EnqueueResponse(200, Page({unreadable}, false).dump());
  EXPECT_EQ(api_->Find("", kCreated - 60, 2, {}).status().code(),
            absl::StatusCode::kInternal);

  // A readable match is still found beside it.
  http_.EnqueueResponse(
      200,
      Page({unreadable, Batch("msgbatch_4", "in_progress", Counts(2))}, false)
          .dump());
  absl::StatusOr<std::optional<BatchInfo>> found =
      api_->Find("", kCreated - 60, 2, {});
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->id, "msgbatch_4");
}

TEST_F(AnthropicBatchApiTest, TheKeyNeverShows) {
  http_.EnqueueResponse(
      401,
      std::string(
          R"({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key )") +
          kKey + R"("}})");
  absl::Status status = api_->Get("msgbatch_1").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(status.message(), Not(HasSubstr(kKey)));
  EXPECT_THAT(status.message(), HasSubstr("[redacted]"));

  json message = Message();
  message["content"][2]["text"] = std::string("the key is ") + kKey;
  http_.EnqueueResponse(
      200, ResultLine("a", {{"type", "succeeded"}, {"message", message}}) +
               "\n" + ResultLine("b", Errored("invalid_request_error", kKey)));
  absl::StatusOr<std::vector<BatchItemResult>> results = api_->Results(
      Ended("http://127.0.0.1:8100/v1/messages/batches/msgbatch_1/results"));
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 2u);
  EXPECT_EQ((*results)[0].result.answer.content, "the key is [redacted]");
  EXPECT_THAT((*results)[0].result.answer.raw_body, Not(HasSubstr(kKey)));
  EXPECT_THAT((*results)[1].result.status.message(), Not(HasSubstr(kKey)));
}

}  // namespace
}  // namespace distillery
