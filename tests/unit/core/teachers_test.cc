// Teacher profiles: parsing with defaults, errors that name the file, the
// profile and the field, and API key resolution that never leaks a key.
#include "common/config/teachers.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace distillery {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kOrigin[] = "conf/teachers.yaml";

// A fresh directory under the test's temp dir, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "teachers_test.XXXXXX";
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string File(const std::string& name, const std::string& contents) {
    const std::string path = path_ + "/" + name;
    std::ofstream(path, std::ios::binary) << contents;
    return path;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

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
)", kOrigin);
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
  TempDir dir;
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
  TempDir dir;
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
  TempDir dir;
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

}  // namespace
}  // namespace distillery
