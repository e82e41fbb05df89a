#include "common/teacher/teacher_factory.h"

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/teacher/scripted_http.h"

namespace distillery {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;
using testing::HeaderValue;
using testing::Response;
using testing::ScriptedHttpClient;

TeacherProfile Profile(std::string api) {
  TeacherProfile profile;
  profile.name = "t-" + api;
  profile.api = std::move(api);
  profile.base_url = "http://127.0.0.1:9/v1";
  return profile;
}

TeacherRequest Request() {
  TeacherRequest request;
  request.model = "m";
  request.messages = {{"user", "What is 2+2?"}};
  return request;
}

// Builds the teacher for `profile` and asks once; the request it sent.
HttpRequest SentBy(const TeacherProfile& profile, std::string key) {
  ScriptedHttpClient http;
  http.response = Response(500, "");
  absl::StatusOr<std::unique_ptr<Teacher>> teacher =
      MakeTeacher(profile, std::move(key), http);
  EXPECT_TRUE(teacher.ok()) << teacher.status();
  if (!teacher.ok()) return HttpRequest();
  (*teacher)->Ask(Request(), [](TeacherResult) {});
  EXPECT_EQ(http.requests.size(), 1u);
  return http.requests.empty() ? HttpRequest() : http.requests[0];
}

TEST(TeacherFactoryTest, OpenAiProfileSpeaksChatCompletions) {
  TeacherProfile profile = Profile("openai");
  profile.max_tokens_field = "max_tokens";
  profile.default_max_tokens = 77;
  profile.stream = true;
  profile.connect_timeout_ms = 1'000;
  profile.idle_timeout_ms = 2'000;
  profile.total_timeout_ms = 3'000;
  profile.max_response_bytes = 4'096;
  const HttpRequest sent = SentBy(profile, "sk-1");
  EXPECT_EQ(sent.url, "http://127.0.0.1:9/v1/chat/completions");
  EXPECT_EQ(HeaderValue(sent, "Authorization"), "Bearer sk-1");
  EXPECT_EQ(HeaderValue(sent, "Accept"), "text/event-stream");
  const json body = json::parse(sent.body);
  EXPECT_EQ(body.at("max_tokens"), 77);
  EXPECT_EQ(body.at("stream"), true);
  EXPECT_EQ(sent.connect_timeout, Duration(std::chrono::seconds(1)));
  EXPECT_EQ(sent.idle_timeout, Duration(std::chrono::seconds(2)));
  EXPECT_EQ(sent.total_timeout, Duration(std::chrono::seconds(3)));
  EXPECT_EQ(sent.max_response_bytes, 4'096u);
}

TEST(TeacherFactoryTest, AnthropicProfileSpeaksMessages) {
  TeacherProfile profile = Profile("anthropic");
  profile.anthropic_version = "2024-01-01";
  profile.thinking_budget_tokens = 1024;
  const HttpRequest sent = SentBy(profile, "sk-ant");
  EXPECT_EQ(sent.url, "http://127.0.0.1:9/v1/messages");
  EXPECT_EQ(HeaderValue(sent, "x-api-key"), "sk-ant");
  EXPECT_EQ(HeaderValue(sent, "anthropic-version"), "2024-01-01");
  EXPECT_EQ(HeaderValue(sent, "Authorization"), std::nullopt);
  const json body = json::parse(sent.body);
  // A profile's 0 is the API's default; Messages requires a limit.
  EXPECT_EQ(body.at("max_tokens"), 4096);
  EXPECT_EQ(body.at("thinking").at("budget_tokens"), 1024);
}

TEST(TeacherFactoryTest, UnknownApiIsAClearError) {
  ScriptedHttpClient http;
  absl::StatusOr<std::unique_ptr<Teacher>> teacher =
      MakeTeacher(Profile("gemini"), "", http);
  ASSERT_FALSE(teacher.ok());
  EXPECT_EQ(teacher.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(teacher.status().message()),
              HasSubstr("api 'gemini'"));
  EXPECT_THAT(std::string(teacher.status().message()), HasSubstr("t-gemini"));
}

TEST(TeacherFactoryTest, KeyFromTheEnvironment) {
  TeacherProfile profile = Profile("openai");
  profile.api_key_env = "DISTILLERY_TEACHER_FACTORY_TEST_KEY";
  ::unsetenv(profile.api_key_env.c_str());
  ScriptedHttpClient http;
  absl::StatusOr<std::unique_ptr<Teacher>> missing =
      MakeTeacherWithKey(profile, http);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr(profile.api_key_env));

  ASSERT_EQ(::setenv(profile.api_key_env.c_str(), "sk-env", 1), 0);
  absl::StatusOr<std::unique_ptr<Teacher>> teacher =
      MakeTeacherWithKey(profile, http);
  ::unsetenv(profile.api_key_env.c_str());
  ASSERT_TRUE(teacher.ok()) << teacher.status();
  http.response = Response(500, "");
  (*teacher)->Ask(Request(), [](TeacherResult) {});
  ASSERT_EQ(http.requests.size(), 1u);
  EXPECT_EQ(HeaderValue(http.requests[0], "Authorization"), "Bearer sk-env");
}

TEST(TeacherFactoryTest, KeyFromASecretFile) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) /
      ("teacher_factory_test." + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::filesystem::path file = dir / "key";
  std::ofstream(file) << "sk-file\n";
  TeacherProfile profile = Profile("anthropic");
  profile.api_key_file = file.string();
  ScriptedHttpClient http;
  http.response = Response(500, "");
  absl::StatusOr<std::unique_ptr<Teacher>> teacher =
      MakeTeacherWithKey(profile, http);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(teacher.ok()) << teacher.status();
  (*teacher)->Ask(Request(), [](TeacherResult) {});
  ASSERT_EQ(http.requests.size(), 1u);
  EXPECT_EQ(HeaderValue(http.requests[0], "x-api-key"), "sk-file");

  profile.api_key_file = (dir / "gone").string();
  absl::StatusOr<std::unique_ptr<Teacher>> unreadable =
      MakeTeacherWithKey(profile, http);
  ASSERT_FALSE(unreadable.ok());
  EXPECT_THAT(std::string(unreadable.status().message()),
              HasSubstr("cannot read key file"));
}

}  // namespace
}  // namespace distillery
