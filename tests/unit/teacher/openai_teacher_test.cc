#include "common/teacher/openai_teacher.h"

#include <chrono>
#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

// Captures each request and answers it at once with `response`. Kept here
// rather than shared so these tests do not depend on common/http.
class ScriptedHttpClient : public HttpClient {
 public:
  void Send(HttpRequest request, Callback done) override {
    requests.push_back(std::move(request));
    done(response);
  }
  std::vector<HttpRequest> requests;
  absl::StatusOr<HttpResponse> response = absl::UnavailableError("unset");
};

HttpResponse Response(int status, std::string body, HttpHeaders headers = {}) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

TeacherRequest SimpleRequest() {
  TeacherRequest request;
  request.model = "gpt-4o-mini";
  request.messages = {{"system", "Be brief."}, {"user", "What is 2+2?"}};
  return request;
}

json BodyOf(const TeacherRequest& request,
            std::string_view field = kMaxCompletionTokensField) {
  absl::StatusOr<std::string> body = BuildChatRequestBody(request, field);
  EXPECT_TRUE(body.ok()) << body.status();
  return json::parse(body.value_or("null"));
}

std::optional<std::string> HeaderValue(const HttpRequest& request,
                                       std::string_view name) {
  for (const auto& [k, v] : request.headers) {
    if (k == name) return v;
  }
  return std::nullopt;
}

// --- BuildChatRequestBody ---------------------------------------------------

TEST(BuildChatRequestBodyTest, ModelAndMessagesOnlyWhenNothingElseIsSet) {
  json body = BodyOf(SimpleRequest());
  EXPECT_EQ(body, json::parse(R"({"model":"gpt-4o-mini","messages":[
      {"role":"system","content":"Be brief."},
      {"role":"user","content":"What is 2+2?"}]})"));
}

TEST(BuildChatRequestBodyTest, TokenLimitUnderTheConfiguredField) {
  TeacherRequest request = SimpleRequest();
  request.params.max_tokens = 512;
  json body = BodyOf(request, kMaxCompletionTokensField);
  EXPECT_EQ(body["max_completion_tokens"], 512);
  EXPECT_FALSE(body.contains("max_tokens"));

  body = BodyOf(request, kMaxTokensField);
  EXPECT_EQ(body["max_tokens"], 512);
  EXPECT_FALSE(body.contains("max_completion_tokens"));
}

TEST(BuildChatRequestBodyTest, SamplingParamsWhenSetAndNeverN) {
  TeacherRequest request = SimpleRequest();
  request.params.temperature = 0.7;
  request.params.top_p = 0.95;
  request.params.seed = 42;
  request.params.stop = {"\n\n", "END"};
  json body = BodyOf(request);
  EXPECT_DOUBLE_EQ(body["temperature"].get<double>(), 0.7);
  EXPECT_DOUBLE_EQ(body["top_p"].get<double>(), 0.95);
  EXPECT_EQ(body["seed"], 42);
  EXPECT_EQ(body["stop"], json::array({"\n\n", "END"}));
  EXPECT_FALSE(body.contains("n"));
  EXPECT_FALSE(body.contains("stream"));
}

TEST(BuildChatRequestBodyTest, ZeroTemperatureIsStillSent) {
  TeacherRequest request = SimpleRequest();
  request.params.temperature = 0.0;
  request.params.seed = 0;
  json body = BodyOf(request);
  EXPECT_EQ(body["temperature"], 0.0);
  EXPECT_EQ(body["seed"], 0);
}

TEST(BuildChatRequestBodyTest, EscapesText) {
  TeacherRequest request = SimpleRequest();
  const std::string tricky =
      "quote \" backslash \\ newline \n tab \t ctrl \x01 unicode \xC3\xA9 "
      "\xF0\x9F\x98\x80 </script>";
  request.messages = {{"user", tricky}};
  absl::StatusOr<std::string> body =
      BuildChatRequestBody(request, kMaxCompletionTokensField);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_THAT(*body, HasSubstr(R"(quote \" backslash \\ newline \n tab \t)"));
  EXPECT_THAT(*body, HasSubstr(R"(ctrl \u0001)"));
  EXPECT_EQ(json::parse(*body)["messages"][0]["content"], tricky);
}

TEST(BuildChatRequestBodyTest, RejectsInvalidUtf8) {
  TeacherRequest request = SimpleRequest();
  request.messages[1].content = "bad \xFF byte";
  absl::StatusOr<std::string> body =
      BuildChatRequestBody(request, kMaxCompletionTokensField);
  EXPECT_EQ(body.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BuildChatRequestBodyTest, RejectsNonFiniteParamsAndUnknownField) {
  TeacherRequest request = SimpleRequest();
  request.params.temperature = std::nan("");
  EXPECT_EQ(BuildChatRequestBody(request, kMaxTokensField).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      BuildChatRequestBody(SimpleRequest(), "max_new_tokens").status().code(),
      absl::StatusCode::kInvalidArgument);
}

// --- ParseChatResponse ------------------------------------------------------

constexpr char kOpenAiBody[] =
    R"({"id":"chatcmpl-123","object":"chat.completion",
 "created":1741569952,"model":"gpt-4o-mini",
 "choices":[{"index":0,"message":{"role":"assistant","content":"Hello!","refusal":null},
   "logprobs":null,"finish_reason":"stop"}],
 "usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,
   "prompt_tokens_details":{"cached_tokens":3},
   "completion_tokens_details":{"reasoning_tokens":4}},
 "system_fingerprint":"fp_1"})";

TEST(ParseChatResponseTest, OpenAi) {
  TeacherResult result = ParseChatResponse(kOpenAiBody);
  ASSERT_TRUE(result.status.ok()) << result.status;
  const TeacherAnswer& a = result.answer;
  EXPECT_EQ(a.content, "Hello!");
  EXPECT_EQ(a.reasoning, "");
  EXPECT_EQ(a.finish_reason, "stop");
  EXPECT_EQ(a.usage.prompt_tokens, 19);
  EXPECT_EQ(a.usage.completion_tokens, 10);
  EXPECT_EQ(a.usage.reasoning_tokens, 4);
  EXPECT_EQ(a.usage.cached_tokens, 3);
  EXPECT_EQ(a.provider_id, "chatcmpl-123");
  EXPECT_EQ(a.raw_body, kOpenAiBody);
  EXPECT_EQ(result.http_status, 200);
}

TEST(ParseChatResponseTest, DeepSeekReasoningContentAndCacheHits) {
  TeacherResult result =
      ParseChatResponse(R"({"id":"ds-1","choices":[{"index":0,
    "message":{"role":"assistant","content":"4","reasoning_content":"2+2 is 4."},
    "finish_reason":"stop"}],
    "usage":{"prompt_tokens":10,"completion_tokens":20,"prompt_cache_hit_tokens":8,
    "prompt_cache_miss_tokens":2,"completion_tokens_details":{"reasoning_tokens":15}}})");
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.answer.content, "4");
  EXPECT_EQ(result.answer.reasoning, "2+2 is 4.");
  EXPECT_EQ(result.answer.usage.cached_tokens, 8);
  EXPECT_EQ(result.answer.usage.reasoning_tokens, 15);
}

TEST(ParseChatResponseTest, VllmReasoningReadBeforeReasoningContent) {
  TeacherResult result = ParseChatResponse(R"({"choices":[{"message":{
    "content":"4","reasoning":"new field","reasoning_content":"old field"},
    "finish_reason":"stop"}]})");
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.answer.reasoning, "new field");

  result = ParseChatResponse(R"({"choices":[{"message":{
    "content":"4","reasoning":null,"reasoning_content":"old field"}}]})");
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.answer.reasoning, "old field");
}

TEST(ParseChatResponseTest, LlamaCppInlineThinkIsSplitOut) {
  TeacherResult result = ParseChatResponse(R"({"choices":[{"message":{
    "content":"\n <think>\nLet me add.\n</think>\n\nThe answer is 4."},
    "finish_reason":"stop"}]})");
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.answer.reasoning, "Let me add.");
  EXPECT_EQ(result.answer.content, "The answer is 4.");
}

TEST(ParseChatResponseTest, UnclosedThinkIsAllReasoning) {
  TeacherResult result = ParseChatResponse(R"({"choices":[{"message":{
    "content":"<think>Still thinking when the limit hit"},
    "finish_reason":"length"}]})");
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.answer.reasoning, "Still thinking when the limit hit");
  EXPECT_EQ(result.answer.content, "");
  EXPECT_EQ(result.answer.finish_reason, "length");
}

TEST(ParseChatResponseTest, ThinkNotAtTheStartOrWithReasoningFieldStays) {
  TeacherResult result = ParseChatResponse(
      R"({"choices":[{"message":{"content":"Use <think>tags</think> like this"}}]})");
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.answer.content, "Use <think>tags</think> like this");
  EXPECT_EQ(result.answer.reasoning, "");

  result = ParseChatResponse(R"({"choices":[{"message":{
    "content":"<think>x</think>y","reasoning_content":"field"}}]})");
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.answer.content, "<think>x</think>y");
  EXPECT_EQ(result.answer.reasoning, "field");
}

TEST(ParseChatResponseTest, NullContentIsEmpty) {
  TeacherResult result = ParseChatResponse(R"({"choices":[{"message":{
    "role":"assistant","content":null,"refusal":"I can't help with that."},
    "finish_reason":"content_filter"}],"usage":null})");
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.answer.content, "");
  EXPECT_EQ(result.answer.finish_reason, "content_filter");
  EXPECT_EQ(result.answer.usage.prompt_tokens, 0);
}

TEST(ParseChatResponseTest, ContentAsListOfParts) {
  TeacherResult result = ParseChatResponse(R"({"choices":[{"message":{
    "content":[{"type":"text","text":"Hel"},{"type":"image_url"},{"type":"text","text":"lo"}]}}]})");
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.answer.content, "Hello");
}

TEST(ParseChatResponseTest, LeadingBlankLinesAreTolerated) {
  const std::string body = std::string("\n\n\r\n  \n") + kOpenAiBody + "\n";
  TeacherResult result = ParseChatResponse(body);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.answer.content, "Hello!");
  EXPECT_EQ(result.answer.raw_body, body);
}

void ExpectBadBody(const TeacherResult& result, std::string_view why) {
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnavailable)
      << result.status;
  EXPECT_EQ(result.kind, FailureKind::kRetryable);
  EXPECT_EQ(result.http_status, 200);
  EXPECT_THAT(std::string(result.status.message()), HasSubstr(why));
}

TEST(ParseChatResponseTest, TruncatedOrNonJsonBodyIsRetryable) {
  const std::string body(kOpenAiBody);
  ExpectBadBody(ParseChatResponse(body.substr(0, body.size() / 2)),
                "truncated");
  ExpectBadBody(ParseChatResponse("<html>gateway</html>"), "truncated");
  ExpectBadBody(ParseChatResponse(""), "empty body");
  ExpectBadBody(ParseChatResponse("\n\n\n"), "empty body");
  ExpectBadBody(ParseChatResponse("[1]"), "not a JSON object");
}

TEST(ParseChatResponseTest, MissingChoicesIsRetryable) {
  ExpectBadBody(ParseChatResponse(R"({"id":"x"})"), "no choices");
  ExpectBadBody(ParseChatResponse(R"({"choices":[]})"), "no choices");
  ExpectBadBody(ParseChatResponse(R"({"choices":{}})"), "no choices");
  ExpectBadBody(ParseChatResponse(R"({"choices":[{"text":"x"}]})"),
                "no message");
  ExpectBadBody(ParseChatResponse(R"({"choices":[{"message":{"content":7}}]})"),
                "message.content");
}

TEST(ParseChatResponseTest, ErrorInsideA200IsAnError) {
  TeacherResult result = ParseChatResponse(
      R"({"error":{"message":"Upstream overloaded","type":"server_error","code":"overloaded"}})");
  EXPECT_FALSE(result.status.ok());
  EXPECT_EQ(result.kind, FailureKind::kRetryable);
  EXPECT_THAT(std::string(result.status.message()),
              HasSubstr("Upstream overloaded"));

  result = ParseChatResponse(
      R"({"choices":[],"error":{"message":"quota","code":"insufficient_quota"}})");
  EXPECT_EQ(result.kind, FailureKind::kTeacherDown);

  // vLLM's older error shape.
  result = ParseChatResponse(
      R"({"object":"error","message":"bad","type":"BadRequestError","code":400})");
  EXPECT_EQ(result.kind, FailureKind::kPermanent);
}

// --- HandleChatResponse -----------------------------------------------------

TEST(HandleChatResponseTest, RoutesEachOutcome) {
  EXPECT_TRUE(HandleChatResponse(Response(200, kOpenAiBody), 0).status.ok());
  TeacherResult r = HandleChatResponse(Response(201, kOpenAiBody), 0);
  EXPECT_TRUE(r.status.ok());
  EXPECT_EQ(r.http_status, 201);

  r = HandleChatResponse(Response(503, ""), 0);
  EXPECT_EQ(r.kind, FailureKind::kRetryable);
  EXPECT_EQ(r.http_status, 503);

  r = HandleChatResponse(absl::DeadlineExceededError("idle timeout"), 0);
  EXPECT_EQ(r.kind, FailureKind::kRetryable);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(r.http_status, 0);
}

TEST(HandleChatResponseTest, HeadersApplyToAnErrorInsideA200) {
  TeacherResult r = HandleChatResponse(
      Response(200, R"({"error":{"message":"busy"}})",
               {{"retry-after", "2"}, {"x-should-retry", "false"}}),
      0);
  EXPECT_EQ(r.kind, FailureKind::kPermanent);
  ASSERT_TRUE(r.retry_after.has_value());
  EXPECT_EQ(*r.retry_after, Duration(std::chrono::seconds(2)));
}

// --- ChatCompletionsUrl / options -------------------------------------------

TEST(ChatCompletionsUrlTest, JoinsBaseUrl) {
  EXPECT_EQ(ChatCompletionsUrl("https://api.openai.com/v1"),
            "https://api.openai.com/v1/chat/completions");
  EXPECT_EQ(ChatCompletionsUrl("http://localhost:8000/v1/"),
            "http://localhost:8000/v1/chat/completions");
  EXPECT_EQ(ChatCompletionsUrl("http://localhost:8000/v1//"),
            "http://localhost:8000/v1/chat/completions");
  EXPECT_EQ(ChatCompletionsUrl("http://localhost:8000/v1/chat/completions"),
            "http://localhost:8000/v1/chat/completions");
}

TEST(ValidateOpenAiTeacherOptionsTest, AcceptsGoodRejectsBad) {
  OpenAiTeacherOptions options;
  options.base_url = "https://api.openai.com/v1";
  EXPECT_TRUE(ValidateOpenAiTeacherOptions(options).ok());

  OpenAiTeacherOptions bad = options;
  bad.base_url = "api.openai.com/v1";
  EXPECT_FALSE(ValidateOpenAiTeacherOptions(bad).ok());
  bad = options;
  bad.max_tokens_field = "max_new_tokens";
  EXPECT_FALSE(ValidateOpenAiTeacherOptions(bad).ok());
  bad = options;
  bad.extra_headers = {{"Bad Name", "v"}};
  EXPECT_FALSE(ValidateOpenAiTeacherOptions(bad).ok());
  bad = options;
  bad.extra_headers = {{"X-Ok", "v\r\nInjected: yes"}};
  EXPECT_FALSE(ValidateOpenAiTeacherOptions(bad).ok());
  bad = options;
  bad.idle_timeout = Duration(0);
  EXPECT_FALSE(ValidateOpenAiTeacherOptions(bad).ok());
}

// --- OpenAiTeacher
// ------------------------------------------------------------

constexpr char kKey[] = "sk-test-0123456789abcdef";

class OpenAiTeacherTest : public ::testing::Test {
 protected:
  OpenAiTeacherOptions Options() {
    OpenAiTeacherOptions options;
    options.base_url = "https://api.example.com/v1/";
    options.api_key = kKey;
    return options;
  }

  // Asks once and returns the one result; fails the test unless `done` ran
  // exactly once before Ask returned (the fake answers synchronously).
  TeacherResult AskOnce(Teacher& teacher,
                        const TeacherRequest& request = SimpleRequest()) {
    int calls = 0;
    TeacherResult out;
    teacher.Ask(request, [&](TeacherResult result) {
      ++calls;
      out = std::move(result);
    });
    EXPECT_EQ(calls, 1);
    return out;
  }

  ScriptedHttpClient http_;
  FakeClock clock_;
};

TEST_F(OpenAiTeacherTest, SendsThePostItBuilt) {
  OpenAiTeacherOptions options = Options();
  options.max_tokens_field = std::string(kMaxTokensField);
  options.connect_timeout = std::chrono::seconds(3);
  options.idle_timeout = std::chrono::seconds(300);
  options.total_timeout = std::chrono::minutes(20);
  options.max_response_bytes = 1234;
  OpenAiTeacher teacher(http_, clock_, options);
  http_.response = Response(200, kOpenAiBody);
  TeacherRequest request = SimpleRequest();
  request.params.max_tokens = 64;

  TeacherResult result = AskOnce(teacher, request);

  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.answer.content, "Hello!");
  EXPECT_EQ(result.http_status, 200);
  ASSERT_EQ(http_.requests.size(), 1u);
  const HttpRequest& sent = http_.requests[0];
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.url, "https://api.example.com/v1/chat/completions");
  EXPECT_EQ(teacher.url(), sent.url);
  EXPECT_EQ(HeaderValue(sent, "Content-Type"), "application/json");
  EXPECT_EQ(HeaderValue(sent, "Authorization"), std::string("Bearer ") + kKey);
  EXPECT_EQ(sent.connect_timeout, Duration(std::chrono::seconds(3)));
  EXPECT_EQ(sent.idle_timeout, Duration(std::chrono::seconds(300)));
  EXPECT_EQ(sent.total_timeout, Duration(std::chrono::minutes(20)));
  EXPECT_EQ(sent.max_response_bytes, 1234u);
  EXPECT_EQ(json::parse(sent.body)["max_tokens"], 64);
  EXPECT_EQ(sent.body, *BuildChatRequestBody(request, kMaxTokensField));
}

// Keys are never stored: an answer that echoes the key (in any form) is
// kept with the mark in its place, in the fields and in raw_body.
TEST_F(OpenAiTeacherTest, AnAnswerMentioningTheKeyIsKeptRedacted) {
  OpenAiTeacher teacher(http_, clock_, Options());
  const std::string body = std::string(R"({"choices":[{"message":{"content":")") +
                           kKey + R"("}}]})";
  http_.response = Response(200, body);
  TeacherResult result = AskOnce(teacher);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.answer.content, "[redacted]");
  EXPECT_EQ(result.answer.raw_body,
            R"({"choices":[{"message":{"content":"[redacted]"}}]})");
}

// A streamed answer that spells the key out a piece per chunk: no chunk
// holds it, the assembled content does.
TEST_F(OpenAiTeacherTest, AStreamedAnswerSpellingTheKeyIsRedacted) {
  OpenAiTeacherOptions options = Options();
  options.stream = true;
  OpenAiTeacher teacher(http_, clock_, options);
  const std::string key = kKey;
  std::string body;
  for (size_t i = 0; i < key.size(); i += 5) {
    body += R"(data: {"choices":[{"index":0,"delta":{"content":")" +
            key.substr(i, 5) + "\"}}]}\n\n";
  }
  body += "data: {\"choices\":[{\"index\":0,\"delta\":{},"
          "\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
  http_.response = Response(200, body);
  TeacherResult result = AskOnce(teacher);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.answer.content, "[redacted]");
}

TEST_F(OpenAiTeacherTest, NoAuthorizationWithoutAKey) {
  OpenAiTeacherOptions options = Options();
  options.api_key = "";
  OpenAiTeacher teacher(http_, clock_, options);
  http_.response = Response(200, kOpenAiBody);
  AskOnce(teacher);
  ASSERT_EQ(http_.requests.size(), 1u);
  for (const auto& [name, value] : http_.requests[0].headers) {
    EXPECT_NE(name, "Authorization");
  }
}

TEST_F(OpenAiTeacherTest, KeyFromAFileLosesItsNewline) {
  OpenAiTeacherOptions options = Options();
  options.api_key = std::string(kKey) + "\n";
  OpenAiTeacher teacher(http_, clock_, options);
  http_.response = Response(200, kOpenAiBody);
  AskOnce(teacher);
  ASSERT_EQ(http_.requests.size(), 1u);
  EXPECT_EQ(HeaderValue(http_.requests[0], "Authorization"),
            std::string("Bearer ") + kKey);
}

TEST_F(OpenAiTeacherTest, ExtraHeadersAddAndReplace) {
  OpenAiTeacherOptions options = Options();
  options.extra_headers = {{"X-Team", "distill"},
                           {"authorization", "Token proxy-secret"}};
  OpenAiTeacher teacher(http_, clock_, options);
  http_.response = Response(200, kOpenAiBody);
  AskOnce(teacher);
  ASSERT_EQ(http_.requests.size(), 1u);
  const HttpRequest& sent = http_.requests[0];
  EXPECT_EQ(HeaderValue(sent, "X-Team"), "distill");
  EXPECT_EQ(HeaderValue(sent, "authorization"), "Token proxy-secret");
  EXPECT_EQ(HeaderValue(sent, "Authorization"), std::nullopt);
  EXPECT_EQ(HeaderValue(sent, "Content-Type"), "application/json");
}

TEST_F(OpenAiTeacherTest, RateLimitWithDateRetryAfterUsesTheClock) {
  OpenAiTeacher teacher(http_, clock_, Options());
  // FakeClock's wall time starts at 1'750'000'000'000 ms + 1 h.
  const int64_t now_seconds = clock_.WallMillis() / 1000;
  // 1750003600 s is Sun, 15 Jun 2025 16:06:40 GMT; ask for 20 s later.
  ASSERT_EQ(now_seconds, 1750003600);
  http_.response = Response(
      429,
      R"({"error":{"message":"Rate limit reached","type":"tokens","code":"rate_limit_exceeded"}})",
      {{"retry-after", "Sun, 15 Jun 2025 16:07:00 GMT"}});
  TeacherResult result = AskOnce(teacher);
  EXPECT_EQ(result.kind, FailureKind::kRateLimited);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(result.http_status, 429);
  ASSERT_TRUE(result.retry_after.has_value());
  EXPECT_EQ(*result.retry_after, Duration(std::chrono::seconds(20)));
}

TEST_F(OpenAiTeacherTest, TransportErrors) {
  OpenAiTeacher teacher(http_, clock_, Options());
  http_.response = absl::UnavailableError("connection refused");
  TeacherResult result = AskOnce(teacher);
  EXPECT_EQ(result.kind, FailureKind::kRetryable);
  EXPECT_EQ(result.http_status, 0);

  http_.response = absl::InvalidArgumentError("malformed URL");
  result = AskOnce(teacher);
  EXPECT_EQ(result.kind, FailureKind::kPermanent);
}

TEST_F(OpenAiTeacherTest, BadOptionsFailEveryAskWithoutSending) {
  OpenAiTeacherOptions options = Options();
  options.base_url = "ftp://example.com";
  OpenAiTeacher teacher(http_, clock_, options);
  TeacherResult result = AskOnce(teacher);
  EXPECT_EQ(result.kind, FailureKind::kTeacherDown);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(result.status.message()), HasSubstr("base_url"));
  EXPECT_TRUE(http_.requests.empty());
}

TEST_F(OpenAiTeacherTest, UnencodableRequestIsPermanentWithoutSending) {
  OpenAiTeacher teacher(http_, clock_, Options());
  TeacherRequest request = SimpleRequest();
  request.messages[0].content = "\xC3";  // a cut UTF-8 sequence
  TeacherResult result = AskOnce(teacher, request);
  EXPECT_EQ(result.kind, FailureKind::kPermanent);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(http_.requests.empty());
}

TEST_F(OpenAiTeacherTest, KeyAppearsInNoErrorMessage) {
  const std::string key(kKey);
  std::vector<absl::StatusOr<HttpResponse>> echoes = {
      Response(
          401,
          R"({"error":{"message":"Incorrect API key provided: )" + key +
              R"(","type":"invalid_request_error","code":"invalid_api_key"}})"),
      Response(500, "upstream said Authorization: Bearer " + key),
      Response(200, "not json " + key),
      Response(200, R"({"error":{"message":")" + key + R"("}})"),
      absl::UnavailableError("could not reach https://x/?key=" + key),
      absl::InvalidArgumentError("malformed URL " + key),
  };
  OpenAiTeacher teacher(http_, clock_, Options());
  for (const auto& echo : echoes) {
    http_.response = echo;
    TeacherResult result = AskOnce(teacher);
    ASSERT_FALSE(result.status.ok());
    EXPECT_THAT(std::string(result.status.message()), Not(HasSubstr(key)));
    EXPECT_THAT(std::string(result.status.message()), HasSubstr("[redacted]"));
  }

  // Nor when the teacher JSON-escaped it: the message it decodes to is the
  // key itself.
  const std::string slashed = "sk-proj-AbC/dEf+GhI9xYz0";
  OpenAiTeacherOptions slash_options = Options();
  slash_options.api_key = slashed;
  OpenAiTeacher slash_teacher(http_, clock_, slash_options);
  for (const std::string& echoed :
       {std::string(R"(sk-proj-AbC\/dEf+GhI9xYz0)"),
        std::string(R"(sk-proj-AbC\u002fdEf\u002bGhI9xYz0)")}) {
    http_.response = Response(
        401, R"({"error":{"message":"Incorrect API key provided: )" + echoed +
                 R"(","type":"invalid_request_error","code":"invalid_api_key"}})");
    TeacherResult result = AskOnce(slash_teacher);
    EXPECT_EQ(result.kind, FailureKind::kTeacherDown);
    EXPECT_EQ(result.status.message(),
              "HTTP 401 from teacher: \"Incorrect API key provided: "
              "[redacted]\" (code invalid_api_key, type invalid_request_error)");
  }

  // Nor any part of it when a quote is cut in the middle of the key.
  for (size_t pad = 280; pad < 320; ++pad) {
    http_.response = Response(500, std::string(pad, 'x') + key + " tail");
    TeacherResult result = AskOnce(teacher);
    EXPECT_THAT(std::string(result.status.message()),
                Not(HasSubstr(key.substr(0, 6))))
        << pad;
  }

  // Nor when the key itself is the bad option.
  OpenAiTeacherOptions options = Options();
  options.api_key = "sk-line1\nsk-line2";
  OpenAiTeacher misconfigured(http_, clock_, options);
  TeacherResult result = AskOnce(misconfigured);
  EXPECT_EQ(result.kind, FailureKind::kTeacherDown);
  EXPECT_THAT(std::string(result.status.message()), Not(HasSubstr("sk-line")));
}

}  // namespace
}  // namespace distillery
