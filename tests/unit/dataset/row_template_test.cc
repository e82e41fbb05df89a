// Row templates (common/dataset/row_template): a dataset row becomes a
// prompt line; a missing or unusable field is an error naming the row and
// the field.
#include "common/dataset/row_template.h"

#include "common/dataset/prompt_parser.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

RowTemplate Make(std::string_view text) {
  absl::StatusOr<RowTemplate> t = RowTemplate::Parse(text);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *t : *RowTemplate::Parse("{{x}}");
}

TEST(RowTemplateTest, FillsFieldsAndCarriesTheRestIntoMetadata) {
  const RowTemplate t = Make(
      "Solve: {{ question }}\nGive {{n}} steps. Level {{level}}, "
      "hard: {{hard}}. Again: {{question}}");
  EXPECT_EQ(t.fields(),
            (std::vector<std::string>{"question", "n", "level", "hard"}));
  absl::StatusOr<std::string> line =
      t.Render(R"({"id":"r1","question":"2+2?","n":3,"level":1.5,"hard":false,)"
               R"("answer":"4","source":{"set":"gsm8k"}})",
               1);
  ASSERT_TRUE(line.ok()) << line.status();
  const json j = json::parse(*line);
  EXPECT_EQ(j.at("id"), "r1");
  EXPECT_EQ(j.at("prompt"),
            "Solve: 2+2?\nGive 3 steps. Level 1.5, hard: false. Again: 2+2?");
  EXPECT_EQ(j.at("metadata"),
            json::parse(R"({"answer":"4","source":{"set":"gsm8k"}})"));
  EXPECT_FALSE(j.at("metadata").contains("question"));

  // And the prompt parser takes it.
  absl::StatusOr<std::optional<v1::Prompt>> p = ParsePromptLine(*line, 1, "");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->id(), "r1");
}

TEST(RowTemplateTest, PerRowSystemMaxTokensAndTemperatureGoToThePrompt) {
  const RowTemplate t = Make("Q: {{q}}");
  absl::StatusOr<std::string> line = t.Render(
      R"({"q":"x","system":"Be terse.","max_tokens":64,"temperature":0.1})", 4);
  ASSERT_TRUE(line.ok()) << line.status();
  const json j = json::parse(*line);
  EXPECT_EQ(j.at("system"), "Be terse.");
  EXPECT_EQ(j.at("max_tokens"), 64);
  EXPECT_EQ(j.at("temperature"), 0.1);
  EXPECT_FALSE(j.contains("metadata"));
  absl::StatusOr<std::optional<v1::Prompt>> p = ParsePromptLine(*line, 4, "");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->params().max_tokens(), 64);
  EXPECT_EQ((*p)->messages(0).role(), "system");
  // A bad override is the parser's error, on the row's line.
  line = t.Render(R"({"q":"x","max_tokens":"lots"})", 9);
  ASSERT_TRUE(line.ok());
  p = ParsePromptLine(*line, 9, "");
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("line 9: \"max_tokens\""));
}

TEST(RowTemplateTest, MissingAndUnusableFieldsNameTheRowAndTheField) {
  const RowTemplate t = Make("Solve {{question}} in {{unit}}");
  absl::StatusOr<std::string> r =
      t.Render(R"({"question":"2+2","answer":"4"})", 17);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(),
              HasSubstr("row 17: the template uses field \"unit\", which the "
                        "row does not have (it has: question, answer)"));
  r = t.Render(R"({"question":null,"unit":"cm"})", 2);
  EXPECT_THAT(r.status().message(),
              HasSubstr("row 2: field \"question\" is null"));
  r = t.Render(R"({"question":["a"],"unit":"cm"})", 3);
  EXPECT_THAT(r.status().message(),
              HasSubstr("row 3: field \"question\" is array"));
  r = t.Render(R"(["question"])", 5);
  EXPECT_THAT(r.status().message(), HasSubstr("row 5: expected a JSON object"));
  r = t.Render(R"({"question":)", 6);
  EXPECT_THAT(r.status().message(), HasSubstr("row 6: not valid JSON"));
  r = t.Render("{\"question\":\"\xff\"}", 7);
  EXPECT_THAT(r.status().message(), HasSubstr("row 7: invalid UTF-8"));
}

TEST(RowTemplateTest, BadTemplatesAreRefused) {
  EXPECT_THAT(RowTemplate::Parse("Solve {{question").status().message(),
              HasSubstr("not closed"));
  EXPECT_THAT(RowTemplate::Parse("Solve {{ }}").status().message(),
              HasSubstr("does not name a field"));
  EXPECT_THAT(RowTemplate::Parse("Solve {{a b}}").status().message(),
              HasSubstr("does not name a field"));
  EXPECT_THAT(RowTemplate::Parse("Solve it").status().message(),
              HasSubstr("no {{field}}"));
  EXPECT_THAT(RowTemplate::Parse("").status().message(),
              HasSubstr("no {{field}}"));
}

}  // namespace
}  // namespace distillery
