#include "common/teacher/openai_chat_format.h"

#include <chrono>
#include <cmath>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "common/base/json_string.h"
#include "gtest/gtest.h"
#include "tests/unit/teacher/scripted_http.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;
using testing::Response;

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

// --- BuildChatRequestBody ---------------------------------------------------

// A plain request's body is written directly, a request with JSON of its
// own (tool calls, tools, schema, response format) through the tree; the
// bytes must be the tree's for every request, and a string that is not
// UTF-8 gets the tree's error.
TEST(BuildChatRequestBodyTest, DirectWriterMatchesTheTreeByteForByte) {
  std::mt19937_64 rng(17);
  const std::vector<std::string> pieces = {
      "", "a", "plain words", "\"quoted\"", "back\\slash", "tab\there",
      "new\nline", "\r\b\f", std::string("nul\0byte", 8), "\x01\x1f\x7f",
      "caf\xc3\xa9", "\xe2\x82\xac euro", "\xf0\x9f\x98\x80 emoji", "</script>",
      "slash/ed", "\xef\xbb\xbf bom", "\xe2\x80\xa8 line sep",
      std::string(5000, 'x')};
  const auto text = [&](int max_pieces) {
    std::string out;
    const int n = static_cast<int>(rng() % (max_pieces + 1));
    for (int i = 0; i < n; ++i) out += pieces[rng() % pieces.size()];
    return out;
  };
  const std::vector<double> numbers = {0.0, 1.0, 0.7, 0.1, 2.0, 1e-7,
                                       0.30000000000000004, 123456.789,
                                       -0.5, 1e21, 5e-324};
  int compared = 0;
  for (int i = 0; i < 3000; ++i) {
    TeacherRequest request;
    request.model = text(2);
    const int messages = static_cast<int>(rng() % 4);
    for (int m = 0; m < messages; ++m) {
      ChatMessage message;
      message.role = rng() % 2 ? "user" : "assistant";
      message.content = text(4);
      if (rng() % 5 == 0) message.tool_call_id = text(1);
      request.messages.push_back(std::move(message));
    }
    if (rng() % 3 == 0) request.choices = static_cast<int>(rng() % 4);
    SamplingParams& p = request.params;
    if (rng() % 2) p.max_tokens = static_cast<int64_t>(rng() % 100000);
    if (rng() % 2) p.temperature = numbers[rng() % numbers.size()];
    if (rng() % 3 == 0) p.top_p = numbers[rng() % numbers.size()];
    if (rng() % 3 == 0) p.seed = static_cast<int64_t>(rng()) / 3;
    if (rng() % 3 == 0) {
      for (int k = static_cast<int>(rng() % 3); k >= 0; --k) {
        p.stop.push_back(text(1));
      }
    }
    if (rng() % 4 == 0) p.top_logprobs = static_cast<int>(rng() % 21);
    ChatBodyOptions options;
    options.max_tokens_field =
        std::string(rng() % 2 ? kMaxTokensField : kMaxCompletionTokensField);
    options.stream = rng() % 2;
    if (rng() % 3 == 0) options.default_max_tokens = 4096;
    // Now and then a request the direct writer leaves to the tree.
    switch (rng() % 12) {
      case 0: request.tools_json = R"([{"type":"function","function":{"name":"f"}}])"; break;
      case 1: options.response_format_json = R"({"type":"json_object"})"; break;
      case 2: request.json_schema = R"({"type":"object"})"; break;
      case 3:
        if (!request.messages.empty()) {
          request.messages[0].tool_calls_json =
              R"([{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}])";
        }
        break;
      case 4: request.messages.push_back({"user", "bad \xff byte"}); break;
      default: break;
    }
    absl::StatusOr<std::string> direct = BuildChatRequestBody(request, options);
    absl::StatusOr<std::string> tree =
        internal::BuildChatRequestBodyWithTree(request, options);
    ASSERT_EQ(direct.ok(), tree.ok()) << i << ": " << direct.status() << " / "
                                      << tree.status();
    if (!direct.ok()) {
      EXPECT_EQ(direct.status(), tree.status()) << i;
      continue;
    }
    ASSERT_EQ(*direct, *tree) << i;
    ++compared;
  }
  EXPECT_GT(compared, 2000);
}


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

// The quote of an unusable body is cut at a character boundary, so the
// message stays valid UTF-8 wherever the cut falls.
TEST(ParseChatResponseTest, QuoteOfABadBodyNeverSplitsACharacter) {
  for (size_t pad = 195; pad < 200; ++pad) {
    const std::string body = std::string(pad, 'x') + "\xE4\xB8\x96 not json";
    const TeacherResult r = ParseChatResponse(body);
    ASSERT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
    EXPECT_TRUE(IsValidUtf8(std::string(r.status.message()))) << pad;
    EXPECT_THAT(std::string(r.status.message()), HasSubstr("..."));
  }
}

TEST(OpenAiChatFormatTest, ValidateAcceptsGoodRejectsBad) {
  EXPECT_TRUE(OpenAiChatFormat().Validate().ok());
  ChatBodyOptions options;
  options.max_tokens_field = std::string(kMaxTokensField);
  EXPECT_TRUE(OpenAiChatFormat(options).Validate().ok());
  options.max_tokens_field = "max_new_tokens";
  EXPECT_THAT(std::string(OpenAiChatFormat(options).Validate().message()),
              HasSubstr("max_tokens_field"));
}

}  // namespace
}  // namespace distillery
