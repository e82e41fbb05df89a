// Tests of teacher-sim's batch APIs (sim_batches.h) through SimHandler, on a
// fake clock: the flows of both APIs, validation failures, shuffled results,
// per-request errors, expiry and cancel with partial results, the
// enqueued-token limit, listing, and the stats that integration tests read.
#include "services/teacher_sim/sim_batches.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/teacher_sim/sim_handler.h"

namespace distillery::teacher_sim {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

constexpr char kKey[] = "sk-batch-test-key";
constexpr char kBoundary[] = "XyZboundary42";

std::string ChatBody(int i, const std::string& model = "sim-chat") {
  return absl::StrCat(R"({"model":")", model,
                      R"(","messages":[{"role":"user","content":"question )",
                      i, R"("}],"max_tokens":16})");
}

std::string OpenAiLine(const std::string& custom_id, const std::string& body) {
  return absl::StrCat(R"({"custom_id":")", custom_id,
                      R"(","method":"POST","url":"/v1/chat/completions","body":)",
                      body, "}");
}

std::string Lines(int n, const std::string& model = "sim-chat") {
  std::string file;
  for (int i = 0; i < n; ++i) {
    absl::StrAppend(&file, OpenAiLine(absl::StrCat("t", i), ChatBody(i, model)),
                    "\n");
  }
  return file;
}

std::string MessagesBody(int i, const std::string& model = "claude-sim") {
  return absl::StrCat(R"({"model":")", model,
                      R"(","max_tokens":64,"messages":[{"role":"user","content":"q )",
                      i, R"("}]})");
}

class SimBatchesTest : public ::testing::Test {
 protected:
  SimHandler& Make(SimBatchOptions batches = {}) {
    SimHandlerOptions options;
    options.required_api_key = kKey;
    options.models = {"sim-chat", "sim-small", "claude-sim",
                      "claude-thinking"};
    options.batches = batches;
    handler_ = std::make_unique<SimHandler>(options, clock_, nullptr);
    return *handler_;
  }

  SimResponse OpenAi(std::string method, std::string target,
                     std::string body = "", std::string content_type = "") {
    SimRequest r{std::move(method), std::move(target),
                 {{"authorization", absl::StrCat("Bearer ", kKey)}},
                 std::move(body)};
    if (!content_type.empty()) r.headers.emplace_back("content-type", content_type);
    return handler_->Handle(r);
  }

  SimResponse Anthropic(std::string method, std::string target,
                        std::string body = "") {
    SimRequest r{std::move(method),
                 std::move(target),
                 {{"x-api-key", kKey},
                  {"anthropic-version", "2023-06-01"},
                  {"host", "127.0.0.1:9999"}},
                 std::move(body)};
    return handler_->Handle(r);
  }

  // Uploads `file` and creates a batch of it; returns the batch object.
  Json CreateOpenAi(const std::string& file, std::string_view tag = "job-1") {
    const std::string form = absl::StrCat(
        "--", kBoundary,
        "\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n",
        "--", kBoundary,
        "\r\nContent-Disposition: form-data; name=\"file\"; "
        "filename=\"b.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n",
        file, "\r\n--", kBoundary, "--\r\n");
    SimResponse uploaded =
        OpenAi("POST", "/v1/files", form,
               absl::StrCat("multipart/form-data; boundary=", kBoundary));
    EXPECT_EQ(uploaded.status, 200) << uploaded.body;
    const Json file_object = Json::parse(uploaded.body);
    EXPECT_EQ(file_object["bytes"], file.size());
    SimResponse created = OpenAi(
        "POST", "/v1/batches",
        Json{{"input_file_id", file_object["id"]},
             {"endpoint", "/v1/chat/completions"},
             {"completion_window", "24h"},
             {"metadata", {{"distillery_batch", std::string(tag)}}}}
            .dump());
    EXPECT_EQ(created.status, 200) << created.body;
    return Json::parse(created.body);
  }

  Json GetOpenAi(const Json& batch) {
    SimResponse r = OpenAi("GET", absl::StrCat("/v1/batches/",
                                               batch["id"].get<std::string>()));
    EXPECT_EQ(r.status, 200) << r.body;
    return Json::parse(r.body);
  }

  // The lines of a file, parsed.
  std::vector<Json> File(const Json& id) {
    std::vector<Json> lines;
    if (id.is_null()) return lines;
    SimResponse r = OpenAi(
        "GET", absl::StrCat("/v1/files/", id.get<std::string>(), "/content"));
    EXPECT_EQ(r.status, 200);
    for (absl::string_view line : absl::StrSplit(r.body, '\n', absl::SkipEmpty())) {
      lines.push_back(Json::parse(std::string(line)));
    }
    return lines;
  }

  Json Stats() {
    SimResponse r = handler_->Handle(SimRequest{"GET", "/stats", {}, ""});
    return Json::parse(r.body);
  }

  FakeClock clock_;
  std::unique_ptr<SimHandler> handler_;
};

TEST_F(SimBatchesTest, OpenAiBatchRunsAfterValidationAndLatencyInShuffledOrder) {
  SimBatchOptions options;
  options.validate = std::chrono::milliseconds(100);
  options.latency = std::chrono::milliseconds(500);
  Make(options);
  const Json batch = CreateOpenAi(Lines(30));
  EXPECT_EQ(batch["status"], "validating");
  EXPECT_EQ(batch["metadata"]["distillery_batch"], "job-1");
  EXPECT_EQ(batch["request_counts"]["total"], 30);
  clock_.Advance(std::chrono::milliseconds(200));
  EXPECT_EQ(GetOpenAi(batch)["status"], "in_progress");
  clock_.Advance(std::chrono::milliseconds(400));
  const Json done = GetOpenAi(batch);
  ASSERT_EQ(done["status"], "completed");
  EXPECT_EQ(done["request_counts"]["completed"], 30);
  EXPECT_TRUE(done["error_file_id"].is_null());
  const std::vector<Json> output = File(done["output_file_id"]);
  ASSERT_EQ(output.size(), 30u);
  std::set<std::string> ids;
  std::vector<std::string> order;
  for (const Json& line : output) {
    EXPECT_EQ(line["response"]["status_code"], 200);
    EXPECT_EQ(line["response"]["body"]["object"], "chat.completion");
    ids.insert(line["custom_id"].get<std::string>());
    order.push_back(line["custom_id"].get<std::string>());
  }
  EXPECT_EQ(ids.size(), 30u);
  EXPECT_NE(order.front(), "t0") << "results are not shuffled";
  const Json stats = Stats();
  EXPECT_EQ(stats["chat_completions_total"], 30);
  EXPECT_EQ(stats["chat_completions_repeated"], 0);
  EXPECT_EQ(stats["batches"]["created"], 1);
  EXPECT_EQ(stats["batches"]["completed"], 1);
  EXPECT_EQ(stats["batches"]["requests_succeeded"], 30);
  EXPECT_EQ(stats["batches"]["open"], 0);
}

TEST_F(SimBatchesTest, ABodyAnsweredOnlineAndByBatchCountsAsARepeat) {
  SimBatchOptions options;
  options.latency = std::chrono::milliseconds(0);
  Make(options);
  SimResponse online = OpenAi("POST", "/v1/chat/completions", ChatBody(3));
  ASSERT_EQ(online.status, 200);
  const Json batch = CreateOpenAi(Lines(5));
  ASSERT_EQ(GetOpenAi(batch)["status"], "completed");
  EXPECT_EQ(Stats()["chat_completions_repeated"], 1);
}

TEST_F(SimBatchesTest, OpenAiFilesBreakingALimitFailValidationWithTheirCode) {
  SimBatchOptions options;
  options.openai_max_requests = 4;
  options.openai_max_bytes = 2000;
  Make(options);
  EXPECT_EQ(GetOpenAi(CreateOpenAi(Lines(5)))["errors"]["data"][0]["code"],
            "too_many_requests");
  std::string big;
  for (int i = 0; i < 4; ++i) {
    absl::StrAppend(&big, OpenAiLine(absl::StrCat("b", i),
                                     ChatBody(i)),
                    std::string(400, ' '), "\n");
  }
  EXPECT_EQ(GetOpenAi(CreateOpenAi(big))["errors"]["data"][0]["code"],
            "file_too_large");
  const std::string mixed = absl::StrCat(
      OpenAiLine("a", ChatBody(1)), "\n",
      OpenAiLine("b", ChatBody(2, "sim-small")), "\n");
  const Json failed = GetOpenAi(CreateOpenAi(mixed));
  EXPECT_EQ(failed["status"], "failed");
  EXPECT_EQ(failed["errors"]["data"][0]["code"], "mixed_models");
  EXPECT_EQ(failed["errors"]["data"][0]["line"], 2);
  const std::string repeated = absl::StrCat(OpenAiLine("a", ChatBody(1)), "\n",
                                            OpenAiLine("a", ChatBody(2)), "\n");
  EXPECT_EQ(GetOpenAi(CreateOpenAi(repeated))["errors"]["data"][0]["code"],
            "duplicate_custom_id");
  const Json stats = Stats()["batches"];
  EXPECT_EQ(stats["failed_validation"]["too_many_requests"], 1);
  EXPECT_EQ(stats["failed_validation"]["file_too_large"], 1);
  EXPECT_EQ(stats["failed_validation"]["mixed_models"], 1);
  EXPECT_EQ(stats["failed_validation"]["duplicate_custom_id"], 1);
  EXPECT_EQ(Stats()["chat_completions_total"], 0);
}

TEST_F(SimBatchesTest, PerRequestErrorsGoToTheErrorFile) {
  SimBatchOptions options;
  options.latency = std::chrono::milliseconds(0);
  options.error_rate = 0.5;
  Make(options);
  const Json done = GetOpenAi(CreateOpenAi(Lines(40)));
  ASSERT_EQ(done["status"], "completed");
  const std::vector<Json> output = File(done["output_file_id"]);
  const std::vector<Json> errors = File(done["error_file_id"]);
  EXPECT_EQ(output.size() + errors.size(), 40u);
  EXPECT_GT(errors.size(), 5u);
  EXPECT_GT(output.size(), 5u);
  for (const Json& line : errors) {
    EXPECT_EQ(line["response"]["status_code"], 500);
    EXPECT_EQ(line["response"]["body"]["error"]["code"], "server_error");
  }
  EXPECT_EQ(done["request_counts"]["failed"], errors.size());
  EXPECT_EQ(Stats()["batches"]["requests_errored"], errors.size());
}

TEST_F(SimBatchesTest, AnExpiredBatchKeepsWhatRanAndListsTheRestAsExpired) {
  SimBatchOptions options;
  options.latency = std::chrono::milliseconds(0);
  options.requests_per_second = 10;  // 100 ms a request
  options.expire = std::chrono::milliseconds(450);
  Make(options);
  const Json batch = CreateOpenAi(Lines(10));
  clock_.Advance(std::chrono::milliseconds(300));
  const Json running = GetOpenAi(batch);
  EXPECT_EQ(running["status"], "in_progress");
  EXPECT_EQ(running["request_counts"]["completed"], 3);
  clock_.Advance(std::chrono::milliseconds(200));
  const Json expired = GetOpenAi(batch);
  ASSERT_EQ(expired["status"], "expired");
  EXPECT_EQ(File(expired["output_file_id"]).size(), 4u);
  const std::vector<Json> errors = File(expired["error_file_id"]);
  ASSERT_EQ(errors.size(), 6u);
  for (const Json& line : errors) {
    EXPECT_TRUE(line["response"].is_null());
    EXPECT_EQ(line["error"]["code"], "batch_expired");
  }
  const Json stats = Stats();
  EXPECT_EQ(stats["batches"]["expired"], 1);
  EXPECT_EQ(stats["batches"]["requests_expired"], 6);
  EXPECT_EQ(stats["chat_completions_total"], 4);
}

TEST_F(SimBatchesTest, ACancelledBatchEndsAfterTheCancelTime) {
  SimBatchOptions options;
  options.latency = std::chrono::milliseconds(1000);
  options.cancel = std::chrono::milliseconds(200);
  Make(options);
  const Json batch = CreateOpenAi(Lines(3));
  SimResponse cancel = OpenAi(
      "POST", absl::StrCat("/v1/batches/", batch["id"].get<std::string>(),
                           "/cancel"));
  ASSERT_EQ(cancel.status, 200) << cancel.body;
  EXPECT_EQ(Json::parse(cancel.body)["status"], "cancelling");
  clock_.Advance(std::chrono::milliseconds(250));
  const Json cancelled = GetOpenAi(batch);
  ASSERT_EQ(cancelled["status"], "cancelled");
  EXPECT_TRUE(cancelled["output_file_id"].is_null());
  const std::vector<Json> errors = File(cancelled["error_file_id"]);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0]["error"]["code"], "batch_cancelled");
  // Cancelling an ended batch is refused, as OpenAI does.
  EXPECT_EQ(OpenAi("POST", absl::StrCat("/v1/batches/",
                                        batch["id"].get<std::string>(),
                                        "/cancel"))
                .status,
            400);
  EXPECT_EQ(Stats()["chat_completions_total"], 0);
}

TEST_F(SimBatchesTest, TheEnqueuedTokenLimitFailsBatchesUntilRunningOnesFinish) {
  SimBatchOptions options;
  options.latency = std::chrono::milliseconds(1000);
  // One batch of 5 requests is about 5 * (87 / 4 + 16) = 185 tokens.
  options.enqueued_token_limit = 300;
  Make(options);
  const Json first = CreateOpenAi(Lines(5));
  const Json second = GetOpenAi(CreateOpenAi(Lines(5)));
  ASSERT_EQ(second["status"], "failed");
  EXPECT_EQ(second["errors"]["data"][0]["code"], "token_limit_exceeded");
  clock_.Advance(std::chrono::milliseconds(1000));
  EXPECT_EQ(GetOpenAi(first)["status"], "completed");
  const Json third = CreateOpenAi(Lines(5));
  EXPECT_EQ(third["status"], "in_progress");
}

TEST_F(SimBatchesTest, ListIsNewestFirstAndPagesWithAfter) {
  SimBatchOptions options;
  Make(options);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(
        CreateOpenAi(Lines(1), absl::StrCat("tag-", i))["id"].get<std::string>());
  }
  Json page = Json::parse(OpenAi("GET", "/v1/batches?limit=2").body);
  ASSERT_EQ(page["data"].size(), 2u);
  EXPECT_EQ(page["data"][0]["id"], ids[2]);
  EXPECT_EQ(page["data"][1]["metadata"]["distillery_batch"], "tag-1");
  EXPECT_TRUE(page["has_more"].get<bool>());
  page = Json::parse(
      OpenAi("GET", absl::StrCat("/v1/batches?limit=2&after=",
                                 page["last_id"].get<std::string>()))
          .body);
  ASSERT_EQ(page["data"].size(), 1u);
  EXPECT_EQ(page["data"][0]["id"], ids[0]);
  EXPECT_FALSE(page["has_more"].get<bool>());
}

TEST_F(SimBatchesTest, BatchRoutesNeedTheKey) {
  Make();
  SimResponse r = handler_->Handle(SimRequest{"GET", "/v1/batches", {}, ""});
  EXPECT_EQ(r.status, 401);
  r = handler_->Handle(SimRequest{
      "GET", "/v1/messages/batches", {{"anthropic-version", "2023-06-01"}}, ""});
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(r.body, HasSubstr("authentication_error"));
}

std::string AnthropicCreate(const std::vector<std::string>& ids,
                            const std::string& model = "claude-sim") {
  std::string body = R"({"requests":[)";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) body += ',';
    absl::StrAppend(&body, R"({"custom_id":")", ids[i], R"(","params":)",
                    MessagesBody(static_cast<int>(i), model), "}");
  }
  return body + "]}";
}

TEST_F(SimBatchesTest, AnthropicBatchEndsWithResultsAtItsResultsUrl) {
  SimBatchOptions options;
  options.latency = std::chrono::milliseconds(300);
  Make(options);
  SimResponse created = Anthropic(
      "POST", "/v1/messages/batches",
      AnthropicCreate({"a", "b", "c"}, "claude-thinking"));
  ASSERT_EQ(created.status, 200) << created.body;
  const Json batch = Json::parse(created.body);
  EXPECT_EQ(batch["processing_status"], "in_progress");
  EXPECT_EQ(batch["request_counts"]["processing"], 3);
  EXPECT_TRUE(batch["results_url"].is_null());
  clock_.Advance(std::chrono::milliseconds(300));
  const std::string path =
      absl::StrCat("/v1/messages/batches/", batch["id"].get<std::string>());
  const Json ended = Json::parse(Anthropic("GET", path).body);
  ASSERT_EQ(ended["processing_status"], "ended");
  EXPECT_EQ(ended["request_counts"]["succeeded"], 3);
  EXPECT_EQ(ended["results_url"],
            absl::StrCat("http://127.0.0.1:9999", path, "/results"));
  SimResponse results = Anthropic("GET", path + "/results");
  ASSERT_EQ(results.status, 200);
  std::set<std::string> ids;
  for (absl::string_view line :
       absl::StrSplit(results.body, '\n', absl::SkipEmpty())) {
    const Json item = Json::parse(std::string(line));
    ids.insert(item["custom_id"].get<std::string>());
    ASSERT_EQ(item["result"]["type"], "succeeded");
    EXPECT_EQ(item["result"]["message"]["content"][0]["type"], "thinking");
  }
  EXPECT_EQ(ids, (std::set<std::string>{"a", "b", "c"}));
}

TEST_F(SimBatchesTest, AnthropicRefusesBadBatchesAtCreate) {
  SimBatchOptions options;
  options.anthropic_max_requests = 3;
  options.anthropic_max_bytes = 1000;
  options.enqueued_token_limit = 200;
  Make(options);
  EXPECT_EQ(Anthropic("POST", "/v1/messages/batches",
                      AnthropicCreate({"a", "b", "c", "d"}))
                .status,
            413);
  std::vector<std::string> long_ids(3, std::string(300, 'x'));
  long_ids[1][0] = 'y';
  long_ids[2][0] = 'z';
  SimResponse too_big = Anthropic("POST", "/v1/messages/batches",
                                  AnthropicCreate(long_ids));
  EXPECT_EQ(too_big.status, 413);
  EXPECT_THAT(too_big.body, HasSubstr("request_too_large"));
  SimResponse bad_id = Anthropic("POST", "/v1/messages/batches",
                                 AnthropicCreate({"a", "task:1"}));
  EXPECT_EQ(bad_id.status, 400);
  EXPECT_THAT(bad_id.body, HasSubstr("custom_id"));
  EXPECT_EQ(Anthropic("POST", "/v1/messages/batches",
                      AnthropicCreate({"a", "a"}))
                .status,
            400);
  ASSERT_EQ(Anthropic("POST", "/v1/messages/batches",
                      AnthropicCreate({"a", "b"}))
                .status,
            200);
  SimResponse full = Anthropic("POST", "/v1/messages/batches",
                               AnthropicCreate({"a", "b", "c"}));
  EXPECT_EQ(full.status, 429);
  EXPECT_THAT(full.body, HasSubstr("rate_limit_error"));
  const Json rejected = Stats()["batches"]["rejected"];
  EXPECT_EQ(rejected["too_large"], 2);
  EXPECT_EQ(rejected["custom_id"], 2);
  EXPECT_EQ(rejected["rate_limited"], 1);
  EXPECT_EQ(Stats()["batches"]["created"], 1);
}

TEST_F(SimBatchesTest, AnthropicCancelAndExpiryReportRequestsNotRun) {
  SimBatchOptions options;
  options.latency = std::chrono::milliseconds(1000);
  options.cancel = std::chrono::milliseconds(0);
  Make(options);
  const Json batch = Json::parse(
      Anthropic("POST", "/v1/messages/batches", AnthropicCreate({"a", "b"}))
          .body);
  const std::string path =
      absl::StrCat("/v1/messages/batches/", batch["id"].get<std::string>());
  const Json cancelled = Json::parse(Anthropic("POST", path + "/cancel").body);
  ASSERT_EQ(cancelled["processing_status"], "ended");
  EXPECT_EQ(cancelled["request_counts"]["canceled"], 2);
  SimResponse results = Anthropic("GET", path + "/results");
  for (absl::string_view line :
       absl::StrSplit(results.body, '\n', absl::SkipEmpty())) {
    EXPECT_EQ(Json::parse(std::string(line))["result"]["type"], "canceled");
  }
  const Json list = Json::parse(Anthropic("GET", "/v1/messages/batches").body);
  ASSERT_EQ(list["data"].size(), 1u);
  EXPECT_EQ(list["data"][0]["id"], batch["id"]);
}

}  // namespace
}  // namespace distillery::teacher_sim
