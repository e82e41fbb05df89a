// OpenAiBatchApi against a FakeHttpClient: the bytes it sends (lines, the
// multipart upload, the create body), how it reads batch objects, lists and
// result files, the codes of its failures, and that the key never shows.
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/http/fake_http_client.h"
#include "common/teacher/batch_api.h"
#include "common/teacher/batch_apis.h"
#include "common/teacher/openai_chat_format.h"
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

constexpr char kKey[] = "sk-test-SECRET-0123456789";
constexpr char kBase[] = "http://127.0.0.1:8000/v1";

TeacherRequest Request() {
  TeacherRequest request;
  request.model = "gpt-4o-mini";
  request.messages = {{"user", "What is 2+2?"}};
  request.params.max_tokens = 50;
  return request;
}

// A batch object as the API sends it, with `extra` fields merged in.
std::string Batch(std::string status, json extra = json::object()) {
  json batch = {
      {"id", "batch_1"},
      {"object", "batch"},
      {"endpoint", "/v1/chat/completions"},
      {"input_file_id", "file-in"},
      {"completion_window", "24h"},
      {"status", status},
      {"output_file_id", nullptr},
      {"error_file_id", nullptr},
      {"errors", nullptr},
      {"created_at", 1714508499},
      {"request_counts", {{"total", 3}, {"completed", 2}, {"failed", 1}}},
      {"metadata", {{"distillery_batch", "job7-b1"}}}};
  batch.update(extra);
  return batch.dump();
}

class OpenAiBatchApiTest : public ::testing::Test {
 protected:
  OpenAiBatchApiTest() {
    TeacherProfile profile;
    profile.name = "gpt";
    profile.api = "openai";
    profile.base_url = kBase;
    profile.stream = true;  // forced off for batches
    profile.total_timeout_ms = 60'000;
    profile.max_response_bytes = 1 << 20;
    auto made = MakeBatchApi(profile, kKey, http_);
    EXPECT_TRUE(made.ok()) << made.status();
    api_ = *std::move(made);
  }

  FakeHttpClient http_;
  std::unique_ptr<BatchApi> api_;
};

TEST_F(OpenAiBatchApiTest, LineIsTheOnlineBodyWrapped) {
  absl::StatusOr<std::string> line = api_->BuildLine("req-1", Request());
  ASSERT_TRUE(line.ok()) << line.status();
  absl::StatusOr<std::string> body =
      BuildChatRequestBody(Request(), ChatBodyOptions{});
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(*line, R"({"custom_id":"req-1","method":"POST",)"
                   R"("url":"/v1/chat/completions","body":)" +
                       *body + "}");
  EXPECT_THAT(*line, Not(HasSubstr("stream")));
  EXPECT_EQ(json::parse(*line).at("body").at("max_completion_tokens"), 50);
}

TEST_F(OpenAiBatchApiTest, LineRefusesBadIdsAndBadRequests) {
  EXPECT_EQ(api_->BuildLine("a/b", Request()).status().code(),
            absl::StatusCode::kInvalidArgument);
  TeacherRequest bad = Request();
  bad.messages[0].content = "\xff";
  EXPECT_EQ(api_->BuildLine("a", bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(http_.request_count(), 0u);
}

TEST_F(OpenAiBatchApiTest, CreateUploadsTheFileThenCreatesTheBatch) {
  http_.EnqueueResponse(
      200, R"({"id":"file-in","object":"file","bytes":8,"purpose":"batch"})");
  http_.EnqueueResponse(200, Batch("validating"));
  absl::StatusOr<BatchInfo> info =
      api_->Create({"{\"a\":1}", "{\"b\":2}"}, "gpt-4o-mini", "job7-b1");
  ASSERT_TRUE(info.ok()) << info.status();

  const std::vector<HttpRequest> sent = http_.requests();
  ASSERT_EQ(sent.size(), 2u);
  const HttpRequest& upload = sent[0];
  EXPECT_EQ(upload.method, "POST");
  EXPECT_EQ(upload.url, "http://127.0.0.1:8000/v1/files");
  EXPECT_EQ(HeaderValue(upload, "Content-Type"),
            "multipart/form-data; boundary=distillery-form-boundary");
  EXPECT_EQ(HeaderValue(upload, "Authorization"),
            std::string("Bearer ") + kKey);
  EXPECT_EQ(HeaderValue(upload, "Accept"), std::nullopt);
  EXPECT_EQ(upload.body,
            "--distillery-form-boundary\r\n"
            "Content-Disposition: form-data; name=\"purpose\"\r\n\r\n"
            "batch\r\n"
            "--distillery-form-boundary\r\n"
            "Content-Disposition: form-data; name=\"file\"; "
            "filename=\"distillery-job7-b1.jsonl\"\r\n"
            "Content-Type: application/jsonl\r\n\r\n"
            "{\"a\":1}\n{\"b\":2}\n\r\n"
            "--distillery-form-boundary--\r\n");
  EXPECT_GE(upload.total_timeout, Duration(std::chrono::minutes(30)));

  const HttpRequest& create = sent[1];
  EXPECT_EQ(create.method, "POST");
  EXPECT_EQ(create.url, "http://127.0.0.1:8000/v1/batches");
  EXPECT_EQ(HeaderValue(create, "Content-Type"), "application/json");
  EXPECT_EQ(create.body,
            R"({"input_file_id":"file-in","endpoint":"/v1/chat/completions",)"
            R"("completion_window":"24h",)"
            R"("metadata":{"distillery_batch":"job7-b1"}})");
  EXPECT_EQ(create.total_timeout, Duration(std::chrono::seconds(60)));
  EXPECT_EQ(create.max_response_bytes, size_t{1} << 20);

  EXPECT_EQ(info->id, "batch_1");
  EXPECT_EQ(info->phase, BatchPhase::kRunning);
  EXPECT_EQ(info->provider_status, "validating");
  EXPECT_EQ(info->tag, "job7-b1");
  EXPECT_EQ(info->input_file_id, "file-in");
  EXPECT_EQ(info->output_file_id, "");
  EXPECT_EQ(info->created_at_s, 1714508499);
  EXPECT_EQ(info->total, 3);
  EXPECT_EQ(info->succeeded, 2);
  EXPECT_EQ(info->errored, 1);
}

TEST_F(OpenAiBatchApiTest, CreateRefusesWhatCannotBeSent) {
  EXPECT_EQ(api_->Create({}, "m", "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(api_->Create({"{}"}, "m", std::string(513, 't')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(api_->Create({"{}"}, "m", "\xff").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(api_->Create({"{}\n{}"}, "m", "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(http_.request_count(), 0u);
}

TEST_F(OpenAiBatchApiTest, QueueLimitOnCreateIsResourceExhausted) {
  http_.EnqueueResponse(200, R"({"id":"file-in","object":"file"})");
  http_.EnqueueResponse(
      429,
      R"({"error":{"message":"Enqueued token limit reached","code":"rate_limit_exceeded"}})");
  absl::StatusOr<BatchInfo> info = api_->Create({"{}"}, "m", "t");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(info.status().message(), HasSubstr("Enqueued token limit"));

  http_.EnqueueResponse(429, R"({"error":{"message":"slow down"}})");
  EXPECT_EQ(api_->Create({"{}"}, "m", "t").status().code(),
            absl::StatusCode::kResourceExhausted);
  // Polling too fast is not the queue limit: retry the step later.
  http_.EnqueueResponse(429, R"({"error":{"message":"slow down"}})");
  EXPECT_EQ(api_->Get("batch_1").status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(OpenAiBatchApiTest, FailuresMapOntoTheBatchCodes) {
  struct Case {
    int status;
    const char* body;
    absl::StatusCode code;
  };
  const Case cases[] = {
      {400, R"({"error":{"message":"bad","type":"invalid_request_error"}})",
       absl::StatusCode::kInvalidArgument},
      {401, R"({"error":{"message":"bad key"}})",
       absl::StatusCode::kUnauthenticated},
      {403, "", absl::StatusCode::kPermissionDenied},
      {404, R"({"error":{"message":"No batch found"}})",
       absl::StatusCode::kNotFound},
      {429, R"({"error":{"code":"insufficient_quota","message":"pay"}})",
       absl::StatusCode::kPermissionDenied},
      {500, "oops", absl::StatusCode::kUnavailable},
      {503, "", absl::StatusCode::kUnavailable},
  };
  for (const Case& c : cases) {
    http_.EnqueueResponse(c.status, c.body);
    absl::StatusOr<BatchInfo> info = api_->Get("batch_1");
    EXPECT_EQ(info.status().code(), c.code) << c.status << " " << info.status();
    EXPECT_THAT(info.status().message(), HasSubstr("OpenAI batch API"));
  }
  http_.Enqueue(absl::DeadlineExceededError("total timeout"));
  EXPECT_EQ(api_->Get("batch_1").status().code(),
            absl::StatusCode::kDeadlineExceeded);
  http_.Enqueue(absl::ResourceExhaustedError("body over the cap"));
  EXPECT_EQ(api_->Get("batch_1").status().code(), absl::StatusCode::kInternal);
}

TEST_F(OpenAiBatchApiTest, GetMapsEveryStatus) {
  const std::pair<const char*, BatchPhase> cases[] = {
      {"validating", BatchPhase::kRunning},
      {"in_progress", BatchPhase::kRunning},
      {"finalizing", BatchPhase::kRunning},
      {"cancelling", BatchPhase::kCancelling},
      {"completed", BatchPhase::kEnded},
      {"expired", BatchPhase::kEnded},
      {"cancelled", BatchPhase::kEnded},
      {"failed", BatchPhase::kFailed},
  };
  for (const auto& [status, phase] : cases) {
    http_.EnqueueResponse(200, Batch(status));
    absl::StatusOr<BatchInfo> info = api_->Get("batch_1");
    ASSERT_TRUE(info.ok()) << status << " " << info.status();
    EXPECT_EQ(info->phase, phase) << status;
    EXPECT_EQ(info->provider_status, status);
    EXPECT_FALSE(info->token_limit);
  }
  EXPECT_EQ(http_.last_request().url,
            "http://127.0.0.1:8000/v1/batches/batch_1");
  EXPECT_EQ(http_.last_request().method, "GET");
}

TEST_F(OpenAiBatchApiTest, FailedOnTheTokenLimit) {
  http_.EnqueueResponse(
      200, Batch("failed",
                 {{"errors",
                   {{"object", "list"},
                    {"data",
                     {{{"code", "token_limit_exceeded"},
                       {"message", "Enqueued token limit reached for gpt-4o"},
                       {"line", nullptr}}}}}}}));
  absl::StatusOr<BatchInfo> info = api_->Get("batch_1");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->phase, BatchPhase::kFailed);
  EXPECT_TRUE(info->token_limit);
  EXPECT_THAT(info->failure, HasSubstr("token_limit_exceeded"));
  EXPECT_THAT(info->failure, HasSubstr("Enqueued token limit"));

  http_.EnqueueResponse(200,
                        Batch("failed", {{"errors",
                                          {{"data",
                                            {{{"code", "duplicate_custom_id"},
                                              {"message", "dup"},
                                              {"line", 4}}}}}}}));
  info = api_->Get("batch_1");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->token_limit);
  EXPECT_EQ(info->failure, "duplicate_custom_id: dup (line 4)");
}

TEST_F(OpenAiBatchApiTest, BadBatchBodiesAreInternal) {
  json no_status = json::parse(Batch("completed"));
  no_status.erase("status");
  json number_status = json::parse(Batch("completed"));
  number_status["status"] = 3;
  const std::string bodies[] = {
      "not json",
      "[1,2]",
      no_status.dump(),
      number_status.dump(),
      Batch("paused"),
      Batch("completed", {{"request_counts", "three"}}),
      Batch("completed", {{"output_file_id", 7}}),
      Batch("completed", {{"created_at", "yesterday"}}),
      Batch("failed", {{"errors", {{"data", "none"}}}}),
      std::string(100, '[') + std::string(100, ']'),
  };
  for (const std::string& body : bodies) {
    http_.EnqueueResponse(200, body);
    absl::StatusOr<BatchInfo> info = api_->Get("batch_1");
    EXPECT_EQ(info.status().code(), absl::StatusCode::kInternal) << body;
  }
  http_.EnqueueResponse(200, no_status.dump());
  EXPECT_THAT(api_->Get("batch_1").status().message(),
              HasSubstr("\"status\" is missing"));
}

TEST_F(OpenAiBatchApiTest, IdsThatWouldLeaveThePathAreRefused) {
  EXPECT_EQ(api_->Get("../files").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(api_->Cancel("a?b").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(http_.request_count(), 0u);
}

TEST_F(OpenAiBatchApiTest, CancelIsOkWhenAlreadyEnded) {
  http_.EnqueueResponse(200, Batch("cancelling"));
  EXPECT_TRUE(api_->Cancel("batch_1").ok());
  EXPECT_EQ(http_.last_request().url,
            "http://127.0.0.1:8000/v1/batches/batch_1/cancel");
  EXPECT_EQ(http_.last_request().method, "POST");

  http_.EnqueueResponse(400, R"({"error":{"message":"Cannot cancel"}})");
  http_.EnqueueResponse(200, Batch("completed"));
  EXPECT_TRUE(api_->Cancel("batch_1").ok());

  http_.EnqueueResponse(400, R"({"error":{"message":"Cannot cancel"}})");
  http_.EnqueueResponse(200, Batch("in_progress"));
  EXPECT_EQ(api_->Cancel("batch_1").code(), absl::StatusCode::kInvalidArgument);
}

// A chat completion with DeepSeek-style reasoning, as an output line holds.
json Completion(std::string content) {
  return {{"id", "chatcmpl-1"},
          {"object", "chat.completion"},
          {"model", "gpt-4o-mini"},
          {"choices",
           {{{"index", 0},
             {"message",
              {{"role", "assistant"},
               {"content", content},
               {"reasoning_content", "2+2 is 4."}}},
             {"finish_reason", "stop"}}}},
          {"usage",
           {{"prompt_tokens", 19},
            {"completion_tokens", 10},
            {"total_tokens", 29}}}};
}

TEST_F(OpenAiBatchApiTest, ResultsReadBothFilesLikeOnlineAnswers) {
  const json ok_body = Completion("4");
  const std::string output =
      json{{"id", "batch_req_1"},
           {"custom_id", "t1"},
           {"response",
            {{"status_code", 200}, {"request_id", "req_1"}, {"body", ok_body}}},
           {"error", nullptr}}
          .dump() +
      "\n" +
      json{{"id", "batch_req_2"},
           {"custom_id", "t2"},
           {"response",
            {{"status_code", 500},
             {"body", {{"error", {{"message", "server had an error"}}}}}}},
           {"error", nullptr}}
          .dump() +
      "\r\n\nnot a line\n" +
      json{{"custom_id", "t4"},
           {"response",
            {{"status_code", 400},
             {"body", {{"error", {{"message", "bad max_tokens"}}}}}}}}
          .dump() +
      "\n";
  const std::string errors =
      json{{"id", "batch_req_3"},
           {"custom_id", "t3"},
           {"response", nullptr},
           {"error",
            {{"code", "batch_expired"},
             {"message",
              "This request could not be executed before the "
              "completion window expired."}}}}
          .dump() +
      "\n";
  http_.EnqueueResponse(200, output);
  http_.EnqueueResponse(200, errors);
  BatchInfo batch;
  batch.id = "batch_1";
  batch.output_file_id = "file-out";
  batch.error_file_id = "file-err";
  absl::StatusOr<std::vector<BatchItemResult>> results = api_->Results(batch);
  ASSERT_TRUE(results.ok()) << results.status();

  const std::vector<HttpRequest> sent = http_.requests();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].url, "http://127.0.0.1:8000/v1/files/file-out/content");
  EXPECT_EQ(sent[1].url, "http://127.0.0.1:8000/v1/files/file-err/content");
  EXPECT_EQ(sent[0].method, "GET");
  EXPECT_GE(sent[0].max_response_bytes, size_t{1} << 30);
  EXPECT_GE(sent[0].total_timeout, Duration(std::chrono::minutes(30)));

  ASSERT_EQ(results->size(), 4u);  // the unreadable line is left out
  const BatchItemResult& ok = (*results)[0];
  EXPECT_EQ(ok.custom_id, "t1");
  ASSERT_TRUE(ok.result.status.ok()) << ok.result.status;
  EXPECT_FALSE(ok.not_run);
  EXPECT_EQ(ok.result.answer.content, "4");
  EXPECT_EQ(ok.result.answer.reasoning, "2+2 is 4.");
  EXPECT_EQ(ok.result.answer.finish_reason, "stop");
  EXPECT_EQ(ok.result.answer.usage.prompt_tokens, 19);
  EXPECT_EQ(ok.result.answer.provider_id, "chatcmpl-1");
  EXPECT_EQ(json::parse(ok.result.answer.raw_body), ok_body);
  EXPECT_EQ(ok.result.http_status, 200);

  const BatchItemResult& server = (*results)[1];
  EXPECT_EQ(server.custom_id, "t2");
  EXPECT_EQ(server.result.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(server.result.kind, FailureKind::kRetryable);
  EXPECT_EQ(server.result.http_status, 500);
  EXPECT_THAT(server.result.status.message(), HasSubstr("server had an error"));
  EXPECT_FALSE(server.not_run);

  const BatchItemResult& bad = (*results)[2];
  EXPECT_EQ(bad.custom_id, "t4");
  EXPECT_EQ(bad.result.kind, FailureKind::kPermanent);
  EXPECT_EQ(bad.result.status.code(), absl::StatusCode::kInvalidArgument);

  const BatchItemResult& expired = (*results)[3];
  EXPECT_EQ(expired.custom_id, "t3");
  EXPECT_TRUE(expired.not_run);
  EXPECT_FALSE(expired.result.status.ok());
  EXPECT_EQ(expired.result.kind, FailureKind::kRetryable);
}

TEST_F(OpenAiBatchApiTest, ResultsSkipAFileThatIsNone) {
  http_.EnqueueResponse(
      200, json{{"custom_id", "t1"},
                {"response", nullptr},
                {"error", {{"code", "batch_cancelled"}, {"message", "c"}}}}
               .dump());
  BatchInfo batch;
  batch.error_file_id = "file-err";
  absl::StatusOr<std::vector<BatchItemResult>> results = api_->Results(batch);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 1u);
  EXPECT_TRUE((*results)[0].not_run);
  EXPECT_EQ(http_.request_count(), 1u);

  BatchInfo none;
  results = api_->Results(none);
  ASSERT_TRUE(results.ok());
  EXPECT_TRUE(results->empty());
  EXPECT_EQ(http_.request_count(), 1u);

  http_.EnqueueResponse(404, R"({"error":{"message":"No such File"}})");
  batch.error_file_id = "file-gone";
  EXPECT_EQ(api_->Results(batch).status().code(), absl::StatusCode::kNotFound);
}

json ListItem(std::string id, int64_t created, std::string tag) {
  json item = json::parse(Batch("in_progress"));
  item["id"] = id;
  item["created_at"] = created;
  if (tag.empty()) {
    item["metadata"] = nullptr;
  } else {
    item["metadata"] = {{"distillery_batch", tag}};
  }
  return item;
}

TEST_F(OpenAiBatchApiTest, FindReadsPagesUntilTheTag) {
  json page1 = {
      {"object", "list"},
      {"data",
       {ListItem("batch_9", 2000, "other"),
        ListItem("batch_8", 1900, ""),
        // Another client's batch in a shape we do not know.
        {{"id", "batch_7"}, {"status", "new-state"}, {"created_at", 1800}}}},
      {"first_id", "batch_9"},
      {"last_id", "batch_7"},
      {"has_more", true}};
  json page2 = {{"object", "list"},
                {"data", {ListItem("batch_6", 1500, "job7-b1")}},
                {"last_id", "batch_6"},
                {"has_more", true}};
  http_.EnqueueResponse(200, page1.dump());
  http_.EnqueueResponse(200, page2.dump());
  absl::StatusOr<std::optional<BatchInfo>> found =
      api_->Find("job7-b1", 1000, 3, {});
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->id, "batch_6");
  EXPECT_EQ((*found)->tag, "job7-b1");
  const std::vector<HttpRequest> sent = http_.requests();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].url, "http://127.0.0.1:8000/v1/batches?limit=100");
  EXPECT_EQ(sent[1].url,
            "http://127.0.0.1:8000/v1/batches?limit=100&after=batch_7");
}

TEST_F(OpenAiBatchApiTest, FindStopsAtOlderBatches) {
  json page = {{"object", "list"},
               {"data",
                {ListItem("batch_9", 2000, "other"),
                 ListItem("batch_2", 900, "job7-b1")}},  // too old
               {"last_id", "batch_2"},
               {"has_more", true}};
  http_.EnqueueResponse(200, page.dump());
  absl::StatusOr<std::optional<BatchInfo>> found =
      api_->Find("job7-b1", 1000, 3, {});
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_FALSE(found->has_value());
  EXPECT_EQ(http_.request_count(), 1u);

  http_.EnqueueResponse(200, R"({"object":"list","data":[],"has_more":false})");
  found = api_->Find("job7-b1", 1000, 3, {});
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(found->has_value());

  http_.EnqueueResponse(200, R"({"object":"list","data":{}})");
  EXPECT_EQ(api_->Find("job7-b1", 1000, 3, {}).status().code(),
            absl::StatusCode::kInternal);
}

TEST_F(OpenAiBatchApiTest, TheKeyNeverShows) {
  const std::string echo =
      std::string(R"({"error":{"message":"Incorrect API key provided: )") +
      kKey + R"(."}})";
  http_.EnqueueResponse(401, echo);
  absl::Status status = api_->Get("batch_1").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(status.message(), Not(HasSubstr(kKey)));
  EXPECT_THAT(status.message(), HasSubstr("[redacted]"));

  http_.EnqueueResponse(200, std::string("garbage ") + kKey);
  status = api_->Get("batch_1").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), Not(HasSubstr(kKey)));

  http_.EnqueueResponse(
      200, json{{"custom_id", "t1"},
                {"response",
                 {{"status_code", 200},
                  {"body", Completion(std::string("your key is ") + kKey)}}}}
                   .dump() +
               "\n" +
               json{{"custom_id", "t2"},
                    {"response",
                     {{"status_code", 400},
                      {"body", {{"error", {{"message", kKey}}}}}}}}
                   .dump());
  BatchInfo batch;
  batch.output_file_id = "file-out";
  absl::StatusOr<std::vector<BatchItemResult>> results = api_->Results(batch);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 2u);
  const TeacherAnswer& answer = (*results)[0].result.answer;
  EXPECT_EQ(answer.content, "your key is [redacted]");
  EXPECT_THAT(answer.raw_body, Not(HasSubstr(kKey)));
  EXPECT_THAT((*results)[1].result.status.message(), Not(HasSubstr(kKey)));
}

}  // namespace
}  // namespace distillery
