// Teacher profiles (common/config/teachers): parsing with defaults per API
// and variant, errors that name the file, the profile and the field, API key
// resolution that never leaks a key, and the shipped example profiles.
#include "common/config/teachers.h"

#include <stdlib.h>

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/temp_dir.h"

namespace distillery {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kOrigin[] = "conf/teachers.yaml";

// Sets an environment variable for one test and restores it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old, had_old_ = true;
    if (value) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (had_old_) {
      setenv(name_.c_str(), old_.c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::string old_;
  bool had_old_ = false;
};

absl::Status ParseError(const std::string& yaml) {
  absl::StatusOr<std::vector<TeacherProfile>> profiles =
      ParseTeachersYaml(yaml, kOrigin);
  EXPECT_FALSE(profiles.ok()) << "parsed: " << yaml;
  return profiles.status();
}

TEST(TeachersYamlTest, ParsesSeveralProfilesAndAppliesDefaults) {
  absl::StatusOr<std::vector<TeacherProfile>> profiles =
      ParseTeachersYaml(R"(
teachers:
  - name: openai
    base_url: https://api.openai.com/v1
    api_key_env: OPENAI_API_KEY
    rpm: 500
    tpm: 200000
    max_concurrency: 8
  - name: local
    api: openai
    base_url: http://127.0.0.1:8000/v1
    max_tokens_field: max_tokens
    max_attempts: 3
    connect_timeout_ms: 500
    idle_timeout_ms: 1000
    total_timeout_ms: 2000
  - name: secret
    base_url: https://example.test/v1
    api_key_file: /run/secrets/key
)",
                        kOrigin);
  ASSERT_TRUE(profiles.ok()) << profiles.status();
  ASSERT_EQ(profiles->size(), 3u);

  const TeacherProfile& openai = (*profiles)[0];
  EXPECT_EQ(openai.name, "openai");
  EXPECT_EQ(openai.api, "openai");
  EXPECT_EQ(openai.base_url, "https://api.openai.com/v1");
  EXPECT_EQ(openai.api_key_env, "OPENAI_API_KEY");
  EXPECT_EQ(openai.api_key_file, "");
  EXPECT_EQ(openai.max_tokens_field, "max_completion_tokens");
  EXPECT_EQ(openai.rpm, 500);
  EXPECT_EQ(openai.tpm, 200000);
  EXPECT_EQ(openai.max_concurrency, 8);
  EXPECT_EQ(openai.max_attempts, 5);
  EXPECT_EQ(openai.connect_timeout_ms, 10'000);
  EXPECT_EQ(openai.idle_timeout_ms, 120'000);
  EXPECT_EQ(openai.total_timeout_ms, 900'000);

  const TeacherProfile& local = (*profiles)[1];
  EXPECT_EQ(local.name, "local");
  EXPECT_EQ(local.base_url, "http://127.0.0.1:8000/v1");
  EXPECT_EQ(local.max_tokens_field, "max_tokens");
  // Limits left out are learned (-1); no concurrency cap by default.
  EXPECT_EQ(local.rpm, -1);
  EXPECT_EQ(local.tpm, -1);
  EXPECT_EQ(local.limit_window_s, 60);
  EXPECT_EQ(local.max_concurrency, 0);
  EXPECT_EQ(local.max_attempts, 3);
  EXPECT_EQ(local.connect_timeout_ms, 500);
  EXPECT_EQ(local.idle_timeout_ms, 1000);
  EXPECT_EQ(local.total_timeout_ms, 2000);
  EXPECT_EQ(local.api_key_env, "");

  const TeacherProfile& secret = (*profiles)[2];
  EXPECT_EQ(secret.name, "secret");
  EXPECT_EQ(secret.api_key_file, "/run/secrets/key");
  EXPECT_EQ(secret.api_key_env, "");
}

TEST(TeachersYamlTest, UnknownFieldNamesFileProfileAndField) {
  absl::Status s = ParseError(R"(
teachers:
  - name: alpha
    base_url: http://a/v1
    max_concurency: 4
)");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr(kOrigin), HasSubstr("'alpha'"),
                                 HasSubstr("'max_concurency'"),
                                 HasSubstr("not a known field")));
}

TEST(TeachersYamlTest, MissingNameNamesTheProfilePosition) {
  absl::Status s = ParseError(R"(
teachers:
  - name: alpha
    base_url: http://a/v1
  - base_url: http://b/v1
)");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr(kOrigin), HasSubstr("#2"),
                                 HasSubstr("'name'"), HasSubstr("required")));
}

TEST(TeachersYamlTest, DuplicateNameIsAnError) {
  absl::Status s = ParseError(R"(
teachers:
  - name: alpha
    base_url: http://a/v1
  - name: alpha
    base_url: http://b/v1
)");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr(kOrigin), HasSubstr("'alpha'"),
                                 HasSubstr("'name'"), HasSubstr("twice")));
}

TEST(TeachersYamlTest, BaseUrlMustBeHttpOrHttps) {
  for (const char* url : {"ftp://a/v1", "api.openai.com/v1", "\"\""}) {
    SCOPED_TRACE(url);
    absl::Status s = ParseError(std::string(R"(
teachers:
  - name: alpha
    base_url: )") + url + "\n");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(),
                AllOf(HasSubstr(kOrigin), HasSubstr("'alpha'"),
                      HasSubstr("'base_url'"), HasSubstr("http://")));
  }
  absl::Status missing = ParseError("teachers:\n  - name: alpha\n");
  EXPECT_THAT(missing.message(), HasSubstr("'base_url'"));
}

TEST(TeachersYamlTest, UnsupportedApiIsNamed) {
  absl::Status s = ParseError(R"(
teachers:
  - name: gem
    api: gemini
    base_url: https://example.invalid/v1
)");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr(kOrigin), HasSubstr("'gem'"),
                                 HasSubstr("'api'"), HasSubstr("gemini"),
                                 HasSubstr("openai"), HasSubstr("anthropic")));
}

TEST(TeachersYamlTest, BadMaxTokensFieldIsRejected) {
  absl::Status s = ParseError(R"(
teachers:
  - name: alpha
    base_url: http://a/v1
    max_tokens_field: maxTokens
)");
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("'alpha'"), HasSubstr("'max_tokens_field'")));
}

TEST(TeachersYamlTest, NegativeRpmIsRejected) {
  absl::Status s = ParseError(R"(
teachers:
  - name: alpha
    base_url: http://a/v1
    rpm: -5
)");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr(kOrigin), HasSubstr("'alpha'"),
                                 HasSubstr("'rpm'"), HasSubstr("at least 0")));
}

TEST(TeachersYamlTest, NonNumericRpmIsRejected) {
  for (const char* value : {"lots", "1.5", "[1]"}) {
    SCOPED_TRACE(value);
    absl::Status s = ParseError(std::string(R"(
teachers:
  - name: alpha
    base_url: http://a/v1
    rpm: )") + value + "\n");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(),
                AllOf(HasSubstr(kOrigin), HasSubstr("'alpha'"),
                      HasSubstr("'rpm'"), HasSubstr("whole number")));
  }
}

TEST(TeachersYamlTest, LimitsBelowOneAreRejected) {
  for (const char* field :
       {"max_attempts", "connect_timeout_ms", "idle_timeout_ms",
        "total_timeout_ms", "limit_window_s"}) {
    SCOPED_TRACE(field);
    absl::Status s = ParseError(std::string(R"(
teachers:
  - name: alpha
    base_url: http://a/v1
    )") + field + ": 0\n");
    EXPECT_THAT(s.message(), AllOf(HasSubstr("'alpha'"),
                                   HasSubstr(std::string("'") + field + "'"),
                                   HasSubstr("at least 1")));
  }
}

TEST(TeachersYamlTest, ZeroMeansNoLimit) {
  absl::StatusOr<std::vector<TeacherProfile>> p = ParseTeachersYaml(R"(
teachers:
  - name: alpha
    base_url: http://a/v1
    rpm: 0
    tpm: 0
    max_concurrency: 0
    limit_window_s: 10
)",
                                                                    kOrigin);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)[0].rpm, 0);
  EXPECT_EQ((*p)[0].tpm, 0);
  EXPECT_EQ((*p)[0].max_concurrency, 0);
  EXPECT_EQ((*p)[0].limit_window_s, 10);
}

TEST(TeachersYamlTest, ApiKeyEnvAndFileTogetherAreRejected) {
  absl::Status s = ParseError(R"(
teachers:
  - name: alpha
    base_url: http://a/v1
    api_key_env: ALPHA_KEY
    api_key_file: /run/secrets/alpha
)");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr(kOrigin), HasSubstr("'alpha'"),
                    HasSubstr("api_key_file"), HasSubstr("api_key_env")));
}

TEST(TeachersYamlTest, StructuralErrors) {
  EXPECT_THAT(ParseError("teachers: [\n").message(),
              AllOf(HasSubstr(kOrigin), HasSubstr("not valid YAML")));
  EXPECT_THAT(ParseError("profiles:\n  - name: a\n").message(),
              AllOf(HasSubstr(kOrigin), HasSubstr("'teachers:'")));
  EXPECT_THAT(ParseError("teachers: []\n").message(), HasSubstr("'teachers:'"));
  EXPECT_THAT(ParseError("").message(), HasSubstr("'teachers:'"));
  EXPECT_THAT(
      ParseError("teachers:\n  - just a string\n").message(),
      AllOf(HasSubstr(kOrigin), HasSubstr("#1"), HasSubstr("not a mapping")));
  EXPECT_THAT(
      ParseError("teachers:\n  - name: [a, b]\n    base_url: http://a\n")
          .message(),
      AllOf(HasSubstr("'name'"), HasSubstr("must be a string")));
}

TEST(TeachersYamlTest, LoadTeachersFileUsesThePathAsOrigin) {
  distillery::testing::TempDir dir("teachers_test");
  const std::string good = dir.File(
      "good.yaml", "teachers:\n  - name: sim\n    base_url: http://h:1/v1\n");
  absl::StatusOr<std::vector<TeacherProfile>> profiles = LoadTeachersFile(good);
  ASSERT_TRUE(profiles.ok()) << profiles.status();
  ASSERT_EQ(profiles->size(), 1u);
  EXPECT_EQ((*profiles)[0].name, "sim");

  const std::string bad =
      dir.File("bad.yaml",
               "teachers:\n  - name: sim\n    base_url: http://h/v1\n"
               "    colour: red\n");
  absl::StatusOr<std::vector<TeacherProfile>> error = LoadTeachersFile(bad);
  ASSERT_FALSE(error.ok());
  EXPECT_THAT(error.status().message(),
              AllOf(HasSubstr(bad), HasSubstr("'sim'"), HasSubstr("'colour'")));

  const std::string missing = dir.path() + "/missing.yaml";
  absl::StatusOr<std::vector<TeacherProfile>> none = LoadTeachersFile(missing);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(none.status().message(), HasSubstr(missing));
}

TEST(FindTeacherTest, FindsByNameOrListsKnownNames) {
  std::vector<TeacherProfile> profiles(3);
  profiles[0].name = "openai";
  profiles[1].name = "local";
  profiles[1].rpm = 7;
  profiles[2].name = "sim";

  absl::StatusOr<TeacherProfile> local = FindTeacher(profiles, "local");
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_EQ(local->name, "local");
  EXPECT_EQ(local->rpm, 7);

  absl::StatusOr<TeacherProfile> unknown = FindTeacher(profiles, "gemini");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.status().message(),
              AllOf(HasSubstr("'gemini'"), HasSubstr("openai, local, sim")));
}

TEST(ResolveApiKeyTest, ReadsTheEnvironmentVariable) {
  ScopedEnv env("DISTILLERY_TEST_API_KEY", "sk-env-value-123");
  TeacherProfile p;
  p.name = "alpha";
  p.api_key_env = "DISTILLERY_TEST_API_KEY";
  absl::StatusOr<std::string> key = ResolveApiKey(p);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(*key, "sk-env-value-123");
}

TEST(ResolveApiKeyTest, MissingOrEmptyVariableNamesItAndNoKey) {
  TeacherProfile p;
  p.name = "alpha";
  p.api_key_env = "DISTILLERY_TEST_API_KEY_ABSENT";
  // A key for another profile is set: the error must not pick it up or show it.
  ScopedEnv other("DISTILLERY_TEST_OTHER_KEY", "sk-do-not-print");
  {
    ScopedEnv env("DISTILLERY_TEST_API_KEY_ABSENT", nullptr);
    absl::StatusOr<std::string> key = ResolveApiKey(p);
    EXPECT_EQ(key.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(key.status().message(),
                AllOf(HasSubstr("DISTILLERY_TEST_API_KEY_ABSENT"),
                      HasSubstr("'alpha'"), Not(HasSubstr("sk-"))));
  }
  {
    ScopedEnv env("DISTILLERY_TEST_API_KEY_ABSENT", "");
    absl::StatusOr<std::string> key = ResolveApiKey(p);
    EXPECT_EQ(key.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(key.status().message(),
                HasSubstr("DISTILLERY_TEST_API_KEY_ABSENT"));
  }
}

TEST(ResolveApiKeyTest, ReadsTheKeyFileAndTrimsTheLineEnd) {
  distillery::testing::TempDir dir("teachers_test");
  TeacherProfile p;
  p.name = "alpha";
  p.api_key_file = dir.File("key", "sk-file-value\n");
  absl::StatusOr<std::string> key = ResolveApiKey(p);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(*key, "sk-file-value");

  p.api_key_file = dir.File("key-crlf", "sk-crlf-value \r\n");
  key = ResolveApiKey(p);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(*key, "sk-crlf-value");
}

TEST(ResolveApiKeyTest, UnreadableOrEmptyKeyFileNamesThePath) {
  distillery::testing::TempDir dir("teachers_test");
  TeacherProfile p;
  p.name = "alpha";
  p.api_key_file = dir.path() + "/absent";
  absl::StatusOr<std::string> key = ResolveApiKey(p);
  EXPECT_EQ(key.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(key.status().message(),
              AllOf(HasSubstr(p.api_key_file), HasSubstr("'alpha'")));

  p.api_key_file = dir.File("empty", "\n");
  key = ResolveApiKey(p);
  EXPECT_EQ(key.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(key.status().message(),
              AllOf(HasSubstr(p.api_key_file), HasSubstr("empty")));
}

TEST(ResolveApiKeyTest, NoKeyConfiguredIsAnEmptyKey) {
  TeacherProfile p;
  p.name = "sim";
  absl::StatusOr<std::string> key = ResolveApiKey(p);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(*key, "");
}

TEST(TeachersYamlTest, MaxResponseBytesHasADefaultAndAFloor) {
  absl::StatusOr<std::vector<TeacherProfile>> p = ParseTeachersYaml(R"(
teachers:
  - name: alpha
    base_url: http://a/v1
  - name: beta
    base_url: http://b/v1
    max_response_bytes: 4096
)",
                                                                    "t.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)[0].max_response_bytes, 16 << 20);
  EXPECT_EQ((*p)[1].max_response_bytes, 4096);
  absl::Status s = ParseError(R"(
teachers:
  - name: alpha
    base_url: http://a/v1
    max_response_bytes: 10
)");
  EXPECT_THAT(s.message(), AllOf(HasSubstr("'max_response_bytes'"),
                                 HasSubstr("at least 1024")));
}

// --- Per-API defaults and the example profiles ------------------------------

absl::StatusOr<TeacherProfile> ParseOne(const std::string& body) {
  absl::StatusOr<std::vector<TeacherProfile>> profiles =
      ParseTeachersYaml("teachers:\n  - name: t\n" + body, "test.yaml");
  if (!profiles.ok()) return profiles.status();
  return profiles->front();
}

std::string ErrorOf(const std::string& body) {
  absl::StatusOr<TeacherProfile> p = ParseOne(body);
  EXPECT_FALSE(p.ok()) << body;
  return p.ok() ? "" : std::string(p.status().message());
}

TEST(TeachersConfigTest, OpenAiDefaults) {
  absl::StatusOr<TeacherProfile> p =
      ParseOne("    base_url: https://api.openai.com/v1\n");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->api, "openai");
  EXPECT_EQ(p->variant, "openai");
  EXPECT_EQ(p->max_tokens_field, "max_completion_tokens");
  EXPECT_FALSE(p->stream);
  EXPECT_EQ(p->default_max_tokens, 0);
  EXPECT_EQ(p->response_format_json, "");
}

TEST(TeachersConfigTest, VariantPicksTheTokenField) {
  for (const char* variant : {"deepseek", "vllm", "ollama", "llamacpp", "sim"}) {
    absl::StatusOr<TeacherProfile> p =
        ParseOne(std::string("    base_url: http://h/v1\n    variant: ") +
                 variant + "\n");
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->max_tokens_field, "max_tokens") << variant;
  }
  absl::StatusOr<TeacherProfile> p = ParseOne(
      "    base_url: http://h/v1\n    variant: vllm\n"
      "    max_tokens_field: max_completion_tokens\n");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->max_tokens_field, "max_completion_tokens");  // explicit wins
}

TEST(TeachersConfigTest, AnthropicProfile) {
  absl::StatusOr<TeacherProfile> p = ParseOne(
      "    api: anthropic\n    base_url: https://api.anthropic.com\n"
      "    stream: true\n    thinking_budget_tokens: 2048\n"
      "    default_max_tokens: 8192\n    anthropic_version: 2023-06-01\n");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->api, "anthropic");
  EXPECT_TRUE(p->stream);
  EXPECT_EQ(p->thinking_budget_tokens, 2048);
  EXPECT_EQ(p->default_max_tokens, 8192);
  EXPECT_EQ(p->anthropic_version, "2023-06-01");

  p = ParseOne("    api: anthropic\n    base_url: https://api.anthropic.com\n");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->default_max_tokens, 4096);  // the API requires one
}

TEST(TeachersConfigTest, ResponseFormatMappingBecomesJson) {
  absl::StatusOr<TeacherProfile> p = ParseOne(
      "    base_url: http://h/v1\n    response_format:\n"
      "      type: json_schema\n      json_schema:\n        name: answer\n"
      "        strict: true\n        version: 2\n        label: '3'\n");
  ASSERT_TRUE(p.ok()) << p.status();
  nlohmann::json format = nlohmann::json::parse(p->response_format_json);
  EXPECT_EQ(format.at("type"), "json_schema");
  EXPECT_EQ(format.at("json_schema").at("strict"), true);
  EXPECT_EQ(format.at("json_schema").at("version"), 2);
  EXPECT_EQ(format.at("json_schema").at("label"), "3");
}

TEST(TeachersConfigTest, ErrorsNameTheField) {
  EXPECT_THAT(ErrorOf("    api: gemini\n    base_url: http://h\n"),
              HasSubstr("field 'api'"));
  EXPECT_THAT(ErrorOf("    base_url: http://h\n    variant: tgi\n"),
              HasSubstr("field 'variant'"));
  EXPECT_THAT(ErrorOf("    base_url: http://h\n    stream: maybe\n"),
              HasSubstr("field 'stream'"));
  EXPECT_THAT(ErrorOf("    base_url: http://h\n    thinking_budget_tokens: 2048\n"),
              HasSubstr("field 'thinking_budget_tokens'"));
  EXPECT_THAT(ErrorOf("    api: anthropic\n    base_url: http://h\n"
                      "    thinking_budget_tokens: 100\n"),
              HasSubstr("at least 1024"));
  EXPECT_THAT(ErrorOf("    api: anthropic\n    base_url: http://h\n"
                      "    thinking_budget_tokens: 5000\n"),
              HasSubstr("below default_max_tokens"));
  EXPECT_THAT(ErrorOf("    api: anthropic\n    base_url: http://h\n"
                      "    max_tokens_field: max_tokens\n"),
              HasSubstr("field 'max_tokens_field'"));
  EXPECT_THAT(ErrorOf("    api: anthropic\n    base_url: http://h\n"
                      "    variant: vllm\n"),
              HasSubstr("field 'variant'"));
  EXPECT_THAT(ErrorOf("    base_url: http://h\n    anthropic_version: x\n"),
              HasSubstr("field 'anthropic_version'"));
  EXPECT_THAT(ErrorOf("    base_url: http://h\n    response_format: json\n"),
              HasSubstr("field 'response_format'"));
  EXPECT_THAT(ErrorOf("    api: anthropic\n    base_url: http://h\n"
                      "    default_max_tokens: 0\n"),
              HasSubstr("field 'default_max_tokens'"));
  EXPECT_THAT(ErrorOf("    base_url: http://h\n    strem: true\n"),
              HasSubstr("field 'strem' is not a known field"));
}

// deploy/teachers.example.yaml loads, and each profile prices its own
// provider's models (the anthropic profile once priced gpt-4o-mini).
TEST(TeachersConfigTest, TheExampleProfilesPriceTheirOwnModels) {
  absl::StatusOr<std::vector<TeacherProfile>> profiles = LoadTeachersFile(
      std::string(DISTILLERY_SOURCE_DIR) + "/deploy/teachers.example.yaml");
  ASSERT_TRUE(profiles.ok()) << profiles.status();
  const std::map<std::string, std::vector<std::string>> families = {
      {"openai", {"gpt-", "o1", "o3", "o4"}},
      {"anthropic", {"claude-"}},
      {"deepseek", {"deepseek-"}}};
  for (const TeacherProfile& p : *profiles) {
    auto family = families.find(p.name);
    for (const auto& [model, price] : p.pricing) {
      if (model == "*") continue;
      ASSERT_NE(family, families.end())
          << p.name << " prices " << model << ": add its model family here";
      bool ok = false;
      for (const std::string& prefix : family->second) {
        ok |= model.rfind(prefix, 0) == 0;
      }
      EXPECT_TRUE(ok) << p.name << " prices another provider's model "
                      << model;
    }
    if (family != families.end()) {
      EXPECT_FALSE(p.pricing.empty()) << p.name << " has no example prices";
    }
  }
}

}  // namespace
}  // namespace distillery
