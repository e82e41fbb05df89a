#include "common/config/teachers.h"

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using ::testing::HasSubstr;

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
