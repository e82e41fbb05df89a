#include "common/dataset/export_format.h"

#include <gtest/gtest.h>

#include "common/base/json_depth.h"
#include "nlohmann/json.hpp"
#include "tests/unit/base/deep_json.h"

namespace distillery {
namespace {

using nlohmann::json;

v1::ExportRecord Record(const std::string& reasoning) {
  v1::ExportRecord r;
  r.set_job_id("job-000001");
  v1::Prompt* p = r.mutable_prompt();
  p->set_id("q7");
  p->set_line(7);
  p->set_metadata_json(R"({"topic":"math","level":3})");
  auto* sys = p->add_messages();
  sys->set_role("system");
  sys->set_content("Be brief.");
  auto* user = p->add_messages();
  user->set_role("user");
  user->set_content("What is 2+2?");
  r.mutable_task()->set_state(v1::TASK_STATE_DONE);
  r.mutable_task()->set_request_key(std::string(16, '\x01'));
  r.mutable_answer()->set_content("4");
  r.mutable_answer()->set_reasoning(reasoning);
  r.mutable_answer()->set_finish_reason("stop");
  return r;
}

// The chat-format invariants fine-tuning tools check: an optional system
// message first, then user and assistant alternating, the assistant last.
void ExpectChatShape(const json& messages, const std::string& role_key,
                     const std::string& system, const std::string& user,
                     const std::string& assistant) {
  ASSERT_TRUE(messages.is_array());
  ASSERT_GE(messages.size(), 2u);
  size_t i = 0;
  if (messages[0].at(role_key) == system) ++i;
  for (; i < messages.size(); ++i) {
    const bool expect_user = (i - (messages[0].at(role_key) == system)) % 2 == 0;
    EXPECT_EQ(messages[i].at(role_key), expect_user ? user : assistant) << i;
  }
  EXPECT_EQ(messages.back().at(role_key), assistant);
}

TEST(ExportFormatTest, ParsesNames) {
  EXPECT_EQ(*ParseExportFormat("errors"), ExportFormat::kErrors);
  EXPECT_EQ(*ParseExportFormat("sharegpt"), ExportFormat::kShareGpt);
  EXPECT_FALSE(ParseExportFormat("alpaca").ok());
  EXPECT_EQ(*ParseReasoningLayout("think-tags"), ReasoningLayout::kThinkTags);
  EXPECT_EQ(*ParseReasoningLayout("drop"), ReasoningLayout::kDrop);
  absl::StatusOr<ReasoningLayout> bad = ParseReasoningLayout("inline");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("field, think-tags or drop"),
            std::string::npos);
}

TEST(ExportFormatTest, OpenAiReasoningField) {
  const json line = json::parse(
      FormatRecord(Record("2 plus 2 is 4."), ExportFormat::kOpenAi));
  ExpectChatShape(line.at("messages"), "role", "system", "user", "assistant");
  const json& a = line.at("messages").back();
  EXPECT_EQ(a.at("content"), "4");
  EXPECT_EQ(a.at("reasoning"), "2 plus 2 is 4.");
  EXPECT_EQ(line.at("metadata").at("topic"), "math");
  // Field order: role before content, as people read it.
  EXPECT_EQ(FormatRecord(Record(""), ExportFormat::kOpenAi).find("\"role\""),
            std::string("{\"messages\":[{").size());
}

TEST(ExportFormatTest, OpenAiThinkTagsAndDrop) {
  const json think = json::parse(FormatRecord(
      Record("2 plus 2 is 4."), ExportFormat::kOpenAi,
      ReasoningLayout::kThinkTags));
  ExpectChatShape(think.at("messages"), "role", "system", "user", "assistant");
  const json& a = think.at("messages").back();
  EXPECT_EQ(a.at("content"), "<think>\n2 plus 2 is 4.\n</think>\n4");
  EXPECT_FALSE(a.contains("reasoning"));

  const json drop = json::parse(FormatRecord(
      Record("2 plus 2 is 4."), ExportFormat::kOpenAi, ReasoningLayout::kDrop));
  const json& d = drop.at("messages").back();
  EXPECT_EQ(d.at("content"), "4");
  EXPECT_FALSE(d.contains("reasoning"));
  EXPECT_EQ(FormatRecord(Record("x"), ExportFormat::kOpenAi,
                         ReasoningLayout::kDrop)
                .find("\"x\""),
            std::string::npos);

  // No reasoning: think-tags adds no empty block.
  const json none = json::parse(FormatRecord(
      Record(""), ExportFormat::kOpenAi, ReasoningLayout::kThinkTags));
  EXPECT_EQ(none.at("messages").back().at("content"), "4");
}

TEST(ExportFormatTest, ShareGptLayouts) {
  const json field = json::parse(
      FormatRecord(Record("because"), ExportFormat::kShareGpt));
  ExpectChatShape(field.at("conversations"), "from", "system", "human", "gpt");
  const json& g = field.at("conversations").back();
  EXPECT_EQ(g.at("value"), "4");
  EXPECT_EQ(g.at("reasoning"), "because");
  EXPECT_FALSE(field.contains("reasoning"));

  const json think = json::parse(FormatRecord(
      Record("because"), ExportFormat::kShareGpt, ReasoningLayout::kThinkTags));
  EXPECT_EQ(think.at("conversations").back().at("value"),
            "<think>\nbecause\n</think>\n4");
  EXPECT_FALSE(think.at("conversations").back().contains("reasoning"));

  const json drop = json::parse(FormatRecord(
      Record("because"), ExportFormat::kShareGpt, ReasoningLayout::kDrop));
  EXPECT_EQ(drop.at("conversations").back().at("value"), "4");
  EXPECT_FALSE(drop.at("conversations").back().contains("reasoning"));
}

TEST(ExportFormatTest, RawKeepsReasoningWhateverTheLayout) {
  const json raw = json::parse(FormatRecord(
      Record("because"), ExportFormat::kRaw, ReasoningLayout::kDrop));
  EXPECT_EQ(raw.at("reasoning"), "because");
  EXPECT_EQ(raw.at("content"), "4");
  EXPECT_TRUE(raw.at("near_duplicate_of").is_null());
}

TEST(ExportFormatTest, ErrorsLine) {
  v1::ExportRecord r = Record("");
  r.clear_answer();
  r.mutable_task()->set_state(v1::TASK_STATE_FAILED);
  r.mutable_task()->set_attempts(5);
  r.mutable_task()->set_last_error("HTTP 500: server_error");
  r.mutable_task()->set_sample(1);
  const json line = json::parse(FormatRecord(r, ExportFormat::kErrors));
  EXPECT_EQ(line.at("job_id"), "job-000001");
  EXPECT_EQ(line.at("prompt_id"), "q7");
  EXPECT_EQ(line.at("line"), 7);
  EXPECT_EQ(line.at("sample"), 1);
  EXPECT_EQ(line.at("attempts"), 5);
  EXPECT_EQ(line.at("error"), "HTTP 500: server_error");
  EXPECT_EQ(line.at("messages").back().at("role"), "user");
  EXPECT_EQ(line.at("request_key").get<std::string>().size(), 32u);
}

// Metadata stored before submission refused deep nesting: up to the limit it
// is written as it was; deeper, the record is still exported (as it was not
// before: dump() recursed until the stack ran out) without it.
TEST(ExportFormatTest, MetadataUpToTheDepthLimitIsWritten) {
  v1::ExportRecord r = Record("");
  r.mutable_prompt()->set_metadata_json(testing::NestedArrays(kMaxJsonDepth));
  const json raw = json::parse(FormatRecord(r, ExportFormat::kRaw));
  EXPECT_EQ(raw.at("metadata").dump(), testing::NestedArrays(kMaxJsonDepth));
  const json openai = json::parse(FormatRecord(r, ExportFormat::kOpenAi));
  EXPECT_TRUE(openai.at("metadata").is_array());
}

TEST(ExportFormatTest, MetadataDeeperThanTheLimitIsLeftOut) {
  for (int levels : {kMaxJsonDepth + 1, 200'000}) {
    v1::ExportRecord r = Record("");
    r.mutable_prompt()->set_metadata_json(testing::NestedObjects(levels));
    for (ExportFormat format : {ExportFormat::kRaw, ExportFormat::kErrors}) {
      const json line = json::parse(FormatRecord(r, format));
      EXPECT_TRUE(line.at("metadata").is_null()) << levels;
      EXPECT_EQ(line.at("prompt_id"), "q7");
    }
    for (ExportFormat format :
         {ExportFormat::kOpenAi, ExportFormat::kShareGpt}) {
      const json line = json::parse(FormatRecord(r, format));
      EXPECT_FALSE(line.contains("metadata")) << levels;
    }
  }
}

TEST(ExportFormatTest, ReasoningBlocksDeeperThanTheLimitAreNull) {
  v1::ExportRecord r = Record("because");
  r.mutable_answer()->set_reasoning_blocks(testing::NestedArrays(200'000));
  json raw = json::parse(FormatRecord(r, ExportFormat::kRaw));
  EXPECT_TRUE(raw.at("reasoning_blocks").is_null());
  r.mutable_answer()->set_reasoning_blocks(
      testing::NestedArrays(kMaxJsonDepth));
  raw = json::parse(FormatRecord(r, ExportFormat::kRaw));
  EXPECT_TRUE(raw.at("reasoning_blocks").is_array());
}

}  // namespace
}  // namespace distillery
