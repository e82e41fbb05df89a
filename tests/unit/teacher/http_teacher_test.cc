#include "common/teacher/http_teacher.h"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/base/clock.h"
#include "common/teacher/openai_chat_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/teacher/scripted_http.h"

// HttpTeacher's own concerns, on the OpenAI format: what it sends (URL,
// headers, timeouts, the format's body), option checks, redaction of the
// key, retry-after on the injected clock, transport errors. Each format's
// wire details are tested in its own file.
namespace distillery {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;
using testing::HeaderValue;
using testing::Response;
using testing::ScriptedHttpClient;

constexpr char kOpenAiBody[] =
    R"({"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assistant",)"
    R"("content":"Hello!"},"finish_reason":"stop"}]})";

TeacherRequest SimpleRequest() {
  TeacherRequest request;
  request.model = "gpt-4o-mini";
  request.messages = {{"system", "Be brief."}, {"user", "What is 2+2?"}};
  return request;
}

TEST(ValidateHttpTeacherOptionsTest, AcceptsGoodRejectsBad) {
  HttpTeacherOptions options;
  options.base_url = "https://api.openai.com/v1";
  EXPECT_TRUE(ValidateHttpTeacherOptions(options).ok());

  HttpTeacherOptions bad = options;
  bad.base_url = "api.openai.com/v1";
  EXPECT_THAT(std::string(ValidateHttpTeacherOptions(bad).message()),
              HasSubstr("base_url"));
  bad = options;
  bad.extra_headers = {{"Bad Name", "v"}};
  EXPECT_FALSE(ValidateHttpTeacherOptions(bad).ok());
  bad = options;
  bad.extra_headers = {{"X-Ok", "v\r\nInjected: yes"}};
  EXPECT_FALSE(ValidateHttpTeacherOptions(bad).ok());
  bad = options;
  bad.idle_timeout = Duration(0);
  EXPECT_FALSE(ValidateHttpTeacherOptions(bad).ok());
  bad = options;
  bad.max_response_bytes = 0;
  EXPECT_FALSE(ValidateHttpTeacherOptions(bad).ok());
  bad = options;
  bad.api_key = "sk-ant-secret\nmore";
  absl::Status s = ValidateHttpTeacherOptions(bad);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("sk-ant-secret")));
}

constexpr char kKey[] = "sk-test-0123456789abcdef";

class HttpTeacherTest : public ::testing::Test {
 protected:
  HttpTeacherOptions Options() {
    HttpTeacherOptions options;
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

  static std::shared_ptr<const WireFormat> Chat(ChatBodyOptions options = {}) {
    return std::make_shared<const OpenAiChatFormat>(std::move(options));
  }

  ScriptedHttpClient http_;
  FakeClock clock_;
};

TEST_F(HttpTeacherTest, SendsThePostItBuilt) {
  HttpTeacherOptions options = Options();
  options.connect_timeout = std::chrono::seconds(3);
  options.idle_timeout = std::chrono::seconds(300);
  options.total_timeout = std::chrono::minutes(20);
  options.max_response_bytes = 1234;
  ChatBodyOptions body;
  body.max_tokens_field = std::string(kMaxTokensField);
  HttpTeacher teacher(http_, clock_, Chat(body), options);
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
TEST_F(HttpTeacherTest, AnAnswerMentioningTheKeyIsKeptRedacted) {
  HttpTeacher teacher(http_, clock_, Chat(), Options());
  const std::string body =
      std::string(R"({"choices":[{"message":{"content":")") + kKey + R"("}}]})";
  http_.response = Response(200, body);
  TeacherResult result = AskOnce(teacher);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.answer.content, "[redacted]");
  EXPECT_EQ(result.answer.raw_body,
            R"({"choices":[{"message":{"content":"[redacted]"}}]})");
}

// A streamed answer that spells the key out a piece per chunk: no chunk
// holds it, the assembled content does.
TEST_F(HttpTeacherTest, AStreamedAnswerSpellingTheKeyIsRedacted) {
  HttpTeacher teacher(http_, clock_, Chat({.stream = true}), Options());
  const std::string key = kKey;
  std::string body;
  for (size_t i = 0; i < key.size(); i += 5) {
    body += R"(data: {"choices":[{"index":0,"delta":{"content":")" +
            key.substr(i, 5) + "\"}}]}\n\n";
  }
  body +=
      "data: {\"choices\":[{\"index\":0,\"delta\":{},"
      "\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
  http_.response = Response(200, body);
  TeacherResult result = AskOnce(teacher);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.answer.content, "[redacted]");
}

TEST_F(HttpTeacherTest, NoAuthorizationWithoutAKey) {
  HttpTeacherOptions options = Options();
  options.api_key = "";
  HttpTeacher teacher(http_, clock_, Chat(), options);
  http_.response = Response(200, kOpenAiBody);
  AskOnce(teacher);
  ASSERT_EQ(http_.requests.size(), 1u);
  for (const auto& [name, value] : http_.requests[0].headers) {
    EXPECT_NE(name, "Authorization");
  }
}

TEST_F(HttpTeacherTest, KeyFromAFileLosesItsNewline) {
  HttpTeacherOptions options = Options();
  options.api_key = std::string(kKey) + "\n";
  HttpTeacher teacher(http_, clock_, Chat(), options);
  http_.response = Response(200, kOpenAiBody);
  AskOnce(teacher);
  ASSERT_EQ(http_.requests.size(), 1u);
  EXPECT_EQ(HeaderValue(http_.requests[0], "Authorization"),
            std::string("Bearer ") + kKey);
}

TEST_F(HttpTeacherTest, ExtraHeadersAddAndReplace) {
  HttpTeacherOptions options = Options();
  options.extra_headers = {{"X-Team", "distill"},
                           {"authorization", "Token proxy-secret"}};
  HttpTeacher teacher(http_, clock_, Chat(), options);
  http_.response = Response(200, kOpenAiBody);
  AskOnce(teacher);
  ASSERT_EQ(http_.requests.size(), 1u);
  const HttpRequest& sent = http_.requests[0];
  EXPECT_EQ(HeaderValue(sent, "X-Team"), "distill");
  EXPECT_EQ(HeaderValue(sent, "authorization"), "Token proxy-secret");
  EXPECT_EQ(HeaderValue(sent, "Authorization"), std::nullopt);
  EXPECT_EQ(HeaderValue(sent, "Content-Type"), "application/json");
}

TEST_F(HttpTeacherTest, RateLimitWithDateRetryAfterUsesTheClock) {
  HttpTeacher teacher(http_, clock_, Chat(), Options());
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

TEST_F(HttpTeacherTest, TransportErrors) {
  HttpTeacher teacher(http_, clock_, Chat(), Options());
  http_.response = absl::UnavailableError("connection refused");
  TeacherResult result = AskOnce(teacher);
  EXPECT_EQ(result.kind, FailureKind::kRetryable);
  EXPECT_EQ(result.http_status, 0);

  http_.response = absl::InvalidArgumentError("malformed URL");
  result = AskOnce(teacher);
  EXPECT_EQ(result.kind, FailureKind::kPermanent);
}

TEST_F(HttpTeacherTest, BadOptionsFailEveryAskWithoutSending) {
  HttpTeacherOptions options = Options();
  options.base_url = "ftp://example.com";
  HttpTeacher teacher(http_, clock_, Chat(), options);
  TeacherResult result = AskOnce(teacher);
  EXPECT_EQ(result.kind, FailureKind::kTeacherDown);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(result.status.message()), HasSubstr("base_url"));
  EXPECT_TRUE(http_.requests.empty());
}

TEST_F(HttpTeacherTest, UnencodableRequestIsPermanentWithoutSending) {
  HttpTeacher teacher(http_, clock_, Chat(), Options());
  TeacherRequest request = SimpleRequest();
  request.messages[0].content = "\xC3";  // a cut UTF-8 sequence
  TeacherResult result = AskOnce(teacher, request);
  EXPECT_EQ(result.kind, FailureKind::kPermanent);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(http_.requests.empty());
}

TEST_F(HttpTeacherTest, KeyAppearsInNoErrorMessage) {
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
  HttpTeacher teacher(http_, clock_, Chat(), Options());
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
  HttpTeacherOptions slash_options = Options();
  slash_options.api_key = slashed;
  HttpTeacher slash_teacher(http_, clock_, Chat(), slash_options);
  for (const std::string& echoed :
       {std::string(R"(sk-proj-AbC\/dEf+GhI9xYz0)"),
        std::string(R"(sk-proj-AbC\u002fdEf\u002bGhI9xYz0)")}) {
    http_.response = Response(
        401,
        R"({"error":{"message":"Incorrect API key provided: )" + echoed +
            R"(","type":"invalid_request_error","code":"invalid_api_key"}})");
    TeacherResult result = AskOnce(slash_teacher);
    EXPECT_EQ(result.kind, FailureKind::kTeacherDown);
    EXPECT_EQ(
        result.status.message(),
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
  HttpTeacherOptions options = Options();
  options.api_key = "sk-line1\nsk-line2";
  HttpTeacher misconfigured(http_, clock_, Chat(), options);
  TeacherResult result = AskOnce(misconfigured);
  EXPECT_EQ(result.kind, FailureKind::kTeacherDown);
  EXPECT_THAT(std::string(result.status.message()), Not(HasSubstr("sk-line")));
}

// A format's own bad option fails every Ask as the teacher's do, naming the
// API.
TEST_F(HttpTeacherTest, BadFormatOptionsFailEveryAskWithoutSending) {
  ChatBodyOptions body;
  body.max_tokens_field = "max_new_tokens";
  HttpTeacher teacher(http_, clock_, Chat(body), Options());
  TeacherResult result = AskOnce(teacher);
  EXPECT_EQ(result.kind, FailureKind::kTeacherDown);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(result.status.message()),
              HasSubstr("OpenAI teacher misconfigured: max_tokens_field"));
  EXPECT_TRUE(http_.requests.empty());
}

// The callback shares the format rather than pointing into the teacher: a
// response that arrives after the teacher is gone is still read.
TEST(HttpTeacherLifetimeTest, AResponseAfterTheTeacherIsGoneIsStillRead) {
  class DeferredHttpClient : public HttpClient {
   public:
    void Send(HttpRequest, Callback done) override {
      pending = std::move(done);
    }
    Callback pending;
  } http;
  FakeClock clock;
  HttpTeacherOptions options;
  options.base_url = "http://127.0.0.1:9/v1";
  TeacherResult got;
  {
    HttpTeacher teacher(http, clock, std::make_shared<OpenAiChatFormat>(),
                        options);
    teacher.Ask(SimpleRequest(), [&](TeacherResult r) { got = std::move(r); });
  }
  ASSERT_TRUE(http.pending);
  http.pending(
      Response(200, kOpenAiBody, {{"x-ratelimit-limit-requests", "5"}}));
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_EQ(got.answer.content, "Hello!");
  ASSERT_EQ(got.rate_limit_headers.size(), 1u);
  EXPECT_EQ(got.rate_limit_headers[0].second, "5");
}

}  // namespace
}  // namespace distillery
