// What both batch APIs share: custom_id rules, the multipart body, and the
// factory (MakeBatchApi, MakeWireFormat with stream off).
#include "common/teacher/batch_api.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "common/http/fake_http_client.h"
#include "common/teacher/batch_apis.h"
#include "common/teacher/multipart.h"
#include "common/teacher/teacher_factory.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/teacher/scripted_http.h"

namespace distillery {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ValidCustomIdTest, TakesTheStricterRuleOfBothApis) {
  EXPECT_TRUE(BatchApi::ValidCustomId("a"));
  EXPECT_TRUE(BatchApi::ValidCustomId("task_12-AbZ"));
  EXPECT_TRUE(BatchApi::ValidCustomId(std::string(64, 'x')));
  EXPECT_FALSE(BatchApi::ValidCustomId(""));
  EXPECT_FALSE(BatchApi::ValidCustomId(std::string(65, 'x')));
  EXPECT_FALSE(BatchApi::ValidCustomId("a.b"));
  EXPECT_FALSE(BatchApi::ValidCustomId("a b"));
  EXPECT_FALSE(BatchApi::ValidCustomId("a\"b"));
  EXPECT_FALSE(BatchApi::ValidCustomId("caf\xc3\xa9"));
  EXPECT_FALSE(BatchApi::ValidCustomId(std::string("a\0b", 3)));
}

TEST(MultipartTest, ExactBytes) {
  MultipartBody form = BuildMultipartFormData({
      {"purpose", "", "", "batch"},
      {"file", "x.jsonl", "application/jsonl", "{}\n"},
  });
  EXPECT_EQ(form.content_type,
            "multipart/form-data; boundary=distillery-form-boundary");
  EXPECT_EQ(form.body,
            "--distillery-form-boundary\r\n"
            "Content-Disposition: form-data; name=\"purpose\"\r\n"
            "\r\n"
            "batch\r\n"
            "--distillery-form-boundary\r\n"
            "Content-Disposition: form-data; name=\"file\"; "
            "filename=\"x.jsonl\"\r\n"
            "Content-Type: application/jsonl\r\n"
            "\r\n"
            "{}\n\r\n"
            "--distillery-form-boundary--\r\n");
}

TEST(MultipartTest, BoundaryNeverInTheData) {
  MultipartBody form = BuildMultipartFormData({
      {"file", "f", "",
       "a distillery-form-boundary and distillery-form-boundary-1"},
  });
  EXPECT_EQ(form.content_type,
            "multipart/form-data; boundary=distillery-form-boundary-2");
  EXPECT_THAT(form.body, HasSubstr("\r\n--distillery-form-boundary-2--\r\n"));
}

TEST(MultipartTest, QuotesAndLineBreaksInNamesCannotEscape) {
  MultipartBody form = BuildMultipartFormData({
      {"n\"a\r\nme", "f\\\"\n.txt", "text/plain\r\nX-Evil: 1", "d"},
  });
  EXPECT_THAT(form.body, HasSubstr("name=\"n_a__me\"; filename=\"f___.txt\""));
  EXPECT_THAT(form.body, HasSubstr("Content-Type: text/plain__X-Evil: 1\r\n"));
  EXPECT_THAT(form.body, Not(HasSubstr("\r\nX-Evil")));
}

TeacherProfile Profile(std::string api, std::string base_url) {
  TeacherProfile profile;
  profile.name = "t-" + api;
  profile.api = std::move(api);
  profile.base_url = std::move(base_url);
  profile.stream = true;  // batch requests are never streamed, whatever this
  return profile;
}

TEST(MakeWireFormatTest, StreamOverride) {
  for (const char* api : {"openai", "anthropic"}) {
    TeacherProfile profile = Profile(api, "http://h/v1");
    TeacherRequest request;
    request.model = "m";
    request.messages = {{"user", "hi"}};
    auto streamed = MakeWireFormat(profile);
    auto plain = MakeWireFormat(profile, /*stream=*/false);
    ASSERT_TRUE(streamed.ok() && plain.ok()) << api;
    EXPECT_THAT(*(*streamed)->BuildBody(request), HasSubstr("\"stream\""));
    EXPECT_THAT(*(*plain)->BuildBody(request), Not(HasSubstr("\"stream\"")));
  }
}

TEST(MakeBatchApiTest, PicksTheApiOrRefuses) {
  FakeHttpClient http;
  auto openai = MakeBatchApi(Profile("openai", "http://h/v1"), "k", http);
  ASSERT_TRUE(openai.ok()) << openai.status();
  EXPECT_EQ((*openai)->api_name(), "OpenAI");
  EXPECT_EQ((*openai)->DefaultLimits().max_requests, 50'000);
  TeacherProfile sim = Profile("openai", "http://h/v1");
  sim.variant = "sim";
  EXPECT_TRUE(MakeBatchApi(sim, "", http).ok());

  auto anthropic = MakeBatchApi(Profile("anthropic", "http://h"), "k", http);
  ASSERT_TRUE(anthropic.ok()) << anthropic.status();
  EXPECT_EQ((*anthropic)->api_name(), "Anthropic");
  EXPECT_EQ((*anthropic)->DefaultLimits().max_requests, 100'000);

  TeacherProfile vllm = Profile("openai", "http://h/v1");
  vllm.variant = "vllm";
  EXPECT_EQ(MakeBatchApi(vllm, "k", http).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      MakeBatchApi(Profile("gemini", "http://h"), "k", http).status().code(),
      absl::StatusCode::kInvalidArgument);
  TeacherProfile bad_url = Profile("openai", "ftp://h");
  auto bad = MakeBatchApi(bad_url, "sk-secret", http);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), Not(HasSubstr("sk-secret")));
  EXPECT_EQ(http.request_count(), 0u);
}

TEST(BatchHeadersTest, ExtraHeadersReplaceTheFormatsAndTheKeyIsTrimmed) {
  FakeHttpClient http;
  auto format = MakeWireFormat(Profile("openai", "http://h/v1"), false);
  ASSERT_TRUE(format.ok());
  HttpTeacherOptions options;
  options.base_url = "http://h/v1/";
  options.api_key = " sk-1\n";
  OpenAiBatchApi trimmed(http, *format, options);
  http.EnqueueResponse(404, "");
  EXPECT_EQ(trimmed.Get("batch_1").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(http.last_request().url, "http://h/v1/batches/batch_1");
  EXPECT_EQ(testing::HeaderValue(http.last_request(), "Authorization"),
            "Bearer sk-1");

  options.extra_headers = {{"authorization", "Proxy p"}, {"X-Team", "a"}};
  OpenAiBatchApi proxied(http, *format, options);
  http.EnqueueResponse(404, "");
  EXPECT_FALSE(proxied.Get("batch_1").ok());
  const HttpRequest sent = http.last_request();
  EXPECT_EQ(testing::HeaderValue(sent, "Authorization"), std::nullopt);
  EXPECT_EQ(testing::HeaderValue(sent, "authorization"), "Proxy p");
  EXPECT_EQ(testing::HeaderValue(sent, "X-Team"), "a");
}

TEST(BatchHeadersTest, BadOptionsFailEveryCallWithoutSending) {
  FakeHttpClient http;
  auto format = MakeWireFormat(Profile("anthropic", "http://h"), false);
  ASSERT_TRUE(format.ok());
  HttpTeacherOptions options;
  options.base_url = "h";
  options.api_key = "sk-secret";
  AnthropicBatchApi api(http, *format, options);
  absl::Status status = api.Get("msgbatch_1").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("misconfigured"));
  EXPECT_EQ(api.Create({"{}"}, "m", "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(http.request_count(), 0u);
}

}  // namespace
}  // namespace distillery
