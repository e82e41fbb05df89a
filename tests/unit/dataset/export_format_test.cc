// Export formats (common/dataset/export_format): each record becomes one
// JSON line of the chosen shape (OpenAI messages, ShareGPT, raw with its
// provenance, dead letters), the reasoning laid out as asked, metadata and
// reasoning blocks past the JSON depth limit left out.
#include "common/dataset/export_format.h"

#include <string>

#include "common/base/json_depth.h"
#include "common/dedup/keys.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/base/deep_json.h"

namespace distillery {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

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

TEST(ExportFormatTest, OpenAiHasNoTraceKeyAndNoMetadata) {
  for (ReasoningLayout layout : {ReasoningLayout::kField, ReasoningLayout::kDrop}) {
    const json line = json::parse(FormatRecord(
        Record("2 plus 2 is 4."), ExportFormat::kOpenAi, layout));
    ExpectChatShape(line.at("messages"), "role", "system", "user",
                    "assistant");
    const json& a = line.at("messages").back();
    EXPECT_EQ(a, json::parse(R"({"role":"assistant","content":"4"})"));
    EXPECT_FALSE(line.contains("metadata"));
    EXPECT_EQ(line.size(), 1u);
  }
  // Field order: role before content, as people read it.
  EXPECT_EQ(FormatRecord(Record(""), ExportFormat::kOpenAi).find("\"role\""),
            std::string("{\"messages\":[{").size());
}

TEST(ExportFormatTest, ChatKeepsTheTraceUnderItsKeyAndTheMetadata) {
  const json line = json::parse(
      FormatRecord(Record("2 plus 2 is 4."), ExportFormat::kChat));
  ExpectChatShape(line.at("messages"), "role", "system", "user", "assistant");
  const json& a = line.at("messages").back();
  EXPECT_EQ(a.at("content"), "4");
  EXPECT_EQ(a.at("reasoning_content"), "2 plus 2 is 4.");
  EXPECT_FALSE(a.contains("reasoning"));
  EXPECT_EQ(line.at("metadata").at("topic"), "math");

  const json thinking = json::parse(
      FormatRecord(Record("2 plus 2 is 4."), ExportFormat::kChat,
                   ReasoningLayout::kField, "thinking"));
  EXPECT_EQ(thinking.at("messages").back().at("thinking"), "2 plus 2 is 4.");
  EXPECT_FALSE(thinking.at("messages").back().contains("reasoning_content"));

  const json think = json::parse(FormatRecord(
      Record("because"), ExportFormat::kChat, ReasoningLayout::kThinkTags));
  EXPECT_EQ(think.at("messages").back(),
            json::parse(R"({"role":"assistant",
                            "content":"<think>\nbecause\n</think>\n4"})"));
  // No trace: no empty key.
  const json none = json::parse(FormatRecord(Record(""), ExportFormat::kChat));
  EXPECT_FALSE(none.at("messages").back().contains("reasoning_content"));
}

TEST(ParseRecordLayoutTest, DefaultsPerFormatAndTheirChecks) {
  absl::StatusOr<RecordLayout> openai = ParseRecordLayout("openai", "", "");
  ASSERT_TRUE(openai.ok()) << openai.status();
  EXPECT_EQ(openai->reasoning, ReasoningLayout::kDrop);
  absl::StatusOr<RecordLayout> chat = ParseRecordLayout("chat", "", "");
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_EQ(chat->format, ExportFormat::kChat);
  EXPECT_EQ(chat->reasoning, ReasoningLayout::kField);
  EXPECT_EQ(chat->reasoning_key, "reasoning_content");
  EXPECT_EQ(ParseRecordLayout("sharegpt", "", "")->reasoning,
            ReasoningLayout::kField);
  EXPECT_EQ(ParseRecordLayout("openai", "think-tags", "")->reasoning,
            ReasoningLayout::kThinkTags);
  EXPECT_EQ(ParseRecordLayout("chat", "", "thinking")->reasoning_key,
            "thinking");

  absl::StatusOr<RecordLayout> field = ParseRecordLayout("openai", "field", "");
  ASSERT_FALSE(field.ok());
  EXPECT_NE(field.status().message().find("--format chat"), std::string::npos)
      << field.status();
  for (const char* bad : {"role", "content", "has space", "a\"b", "é"}) {
    absl::StatusOr<RecordLayout> key = ParseRecordLayout("chat", "", bad);
    ASSERT_FALSE(key.ok()) << bad;
    EXPECT_NE(key.status().message().find("--reasoning-key"),
              std::string::npos);
  }
  EXPECT_FALSE(ParseRecordLayout("alpaca", "", "").ok());
  EXPECT_FALSE(ParseRecordLayout("chat", "inline", "").ok());
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
  const json chat = json::parse(FormatRecord(r, ExportFormat::kChat));
  EXPECT_TRUE(chat.at("metadata").is_array());
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
         {ExportFormat::kOpenAi, ExportFormat::kChat, ExportFormat::kShareGpt}) {
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

// --- Records with their provenance ------------------------------------------

const std::string kKey(
    "\x01\x02\xfe\xff\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xb0\xc0", 16);
const std::string kFirstKey(
    "\xaa\xbb\xcc\xdd\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xee\xff", 16);

// A multi-turn record with every provenance field set.
v1::ExportRecord ProvenanceRecord() {
  v1::ExportRecord r;
  r.set_job_id("job-000007");
  v1::Prompt* p = r.mutable_prompt();
  p->set_id("p-1");
  p->set_line(3);
  p->set_metadata_json(R"({"topic":"math","level":2})");
  auto add = [p](const char* role, const char* content) {
    v1::ChatMessage* m = p->add_messages();
    m->set_role(role);
    m->set_content(content);
  };
  add("system", "Be brief.");
  add("user", "What is 2 + 2?");
  add("assistant", "4");
  add("user", "Sure?");
  v1::Task* t = r.mutable_task();
  t->set_job_id("job-000007");
  t->set_prompt_seq(2);
  t->set_sample(1);
  t->set_state(v1::TASK_STATE_DONE);
  t->set_request_key(kKey);
  t->set_attempts(2);
  t->set_from_cache(true);
  v1::Answer* a = r.mutable_answer();
  a->set_content("Yes, 4.");
  a->set_reasoning("2 + 2 = 4");
  a->set_finish_reason("stop");
  a->mutable_usage()->set_prompt_tokens(11);
  a->mutable_usage()->set_completion_tokens(7);
  a->mutable_usage()->set_reasoning_tokens(3);
  a->mutable_usage()->set_cached_tokens(5);
  a->set_provider_id("chatcmpl-1");
  a->set_teacher("sim");
  a->set_model("gpt-test");
  a->mutable_params()->set_max_tokens(100);
  a->mutable_params()->set_temperature(0.5);
  a->mutable_params()->set_seed(8);
  a->mutable_params()->add_stop("END");
  a->set_sample(1);
  a->set_received_ms(1'750'000'000'123);
  a->set_latency_ms(456);
  a->set_worker("w-1");
  a->set_request_key(kKey);
  return r;
}

json Format(const v1::ExportRecord& r, ExportFormat f) {
  const std::string line = FormatRecord(r, f);
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  return json::parse(line);
}

TEST(ParseExportFormatTest, KnownNamesAndAnError) {
  EXPECT_EQ(*ParseExportFormat("openai"), ExportFormat::kOpenAi);
  EXPECT_EQ(*ParseExportFormat("chat"), ExportFormat::kChat);
  EXPECT_EQ(*ParseExportFormat("sharegpt"), ExportFormat::kShareGpt);
  EXPECT_EQ(*ParseExportFormat("raw"), ExportFormat::kRaw);
  for (const char* bad : {"jsonl", "OpenAI", ""}) {
    absl::StatusOr<ExportFormat> f = ParseExportFormat(bad);
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(f.status().message(), HasSubstr(std::string("'") + bad + "'"));
    EXPECT_THAT(f.status().message(),
                HasSubstr("openai, chat, sharegpt, raw, logprobs or errors"));
  }
}

TEST(FormatRecordTest, OpenAiAppendsTheAssistantAnswer) {
  json j = Format(ProvenanceRecord(), ExportFormat::kOpenAi);
  EXPECT_EQ(j, json::parse(R"({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "What is 2 + 2?"},
      {"role": "assistant", "content": "4"},
      {"role": "user", "content": "Sure?"},
      {"role": "assistant", "content": "Yes, 4."}
    ]
  })"));
  j = Format(ProvenanceRecord(), ExportFormat::kChat);
  EXPECT_EQ(j, json::parse(R"({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "What is 2 + 2?"},
      {"role": "assistant", "content": "4"},
      {"role": "user", "content": "Sure?"},
      {"role": "assistant", "content": "Yes, 4.",
       "reasoning_content": "2 + 2 = 4"}
    ],
    "metadata": {"topic": "math", "level": 2}
  })"));
}

TEST(FormatRecordTest, ChatOmitsEmptyReasoningAndMetadata) {
  v1::ExportRecord r = ProvenanceRecord();
  r.mutable_answer()->clear_reasoning();
  r.mutable_prompt()->clear_metadata_json();
  json j = Format(r, ExportFormat::kChat);
  ASSERT_EQ(j["messages"].size(), 5u);
  const json& last = j["messages"].back();
  EXPECT_EQ(last,
            json::parse(R"({"role": "assistant", "content": "Yes, 4."})"));
  EXPECT_FALSE(last.contains("reasoning_content"));
  EXPECT_FALSE(j.contains("metadata"));
}

TEST(FormatRecordTest, ShareGptMapsRoles) {
  json j = Format(ProvenanceRecord(), ExportFormat::kShareGpt);
  EXPECT_EQ(j, json::parse(R"({
    "conversations": [
      {"from": "system", "value": "Be brief."},
      {"from": "human", "value": "What is 2 + 2?"},
      {"from": "gpt", "value": "4"},
      {"from": "human", "value": "Sure?"},
      {"from": "gpt", "value": "Yes, 4.", "reasoning": "2 + 2 = 4"}
    ],
    "metadata": {"topic": "math", "level": 2}
  })"));

  v1::ExportRecord plain = ProvenanceRecord();
  plain.mutable_answer()->clear_reasoning();
  plain.mutable_prompt()->clear_metadata_json();
  json p = Format(plain, ExportFormat::kShareGpt);
  EXPECT_FALSE(p.contains("reasoning"));
  EXPECT_FALSE(p.contains("metadata"));
}

TEST(FormatRecordTest, RawCarriesProvenance) {
  json j = Format(ProvenanceRecord(), ExportFormat::kRaw);
  EXPECT_EQ(j["job_id"], "job-000007");
  EXPECT_EQ(j["prompt_id"], "p-1");
  EXPECT_EQ(j["line"], 3);
  EXPECT_EQ(j["sample"], 1);
  EXPECT_EQ(j["messages"].size(), 4u);
  EXPECT_EQ(j["messages"][3],
            json::parse(R"({"role":"user","content":"Sure?"})"));
  EXPECT_EQ(j["metadata"], json::parse(R"({"topic": "math", "level": 2})"));
  EXPECT_EQ(j["state"], "done");
  EXPECT_EQ(j["content"], "Yes, 4.");
  EXPECT_EQ(j["reasoning"], "2 + 2 = 4");
  EXPECT_EQ(j["finish_reason"], "stop");
  EXPECT_EQ(j["teacher"], "sim");
  EXPECT_EQ(j["model"], "gpt-test");
  EXPECT_EQ(j["params"], json::parse(R"({"max_tokens": 100, "temperature": 0.5,
                                         "seed": 8, "stop": ["END"]})"));
  EXPECT_EQ(j["usage"],
            json::parse(R"({"prompt_tokens": 11, "completion_tokens": 7,
                            "reasoning_tokens": 3, "cached_tokens": 5})"));
  EXPECT_EQ(j["provider_id"], "chatcmpl-1");
  EXPECT_EQ(j["received_ms"], 1'750'000'000'123);
  EXPECT_EQ(j["latency_ms"], 456);
  EXPECT_EQ(j["worker"], "w-1");
  EXPECT_EQ(j["request_key"], "0102feff102030405060708090a0b0c0");
  EXPECT_EQ(j["request_key"], HexKey(kKey));
  EXPECT_EQ(j["from_cache"], true);
  EXPECT_TRUE(j["duplicate_of"].is_null());
  EXPECT_EQ(j["attempts"], 2);
  EXPECT_EQ(j["error"], "");
}

TEST(FormatRecordTest, RawShowsDuplicateOfAndOnlySetParams) {
  v1::ExportRecord r = ProvenanceRecord();
  r.mutable_answer()->set_duplicate_of(kFirstKey);
  r.mutable_answer()->mutable_params()->Clear();
  r.mutable_answer()->mutable_params()->set_top_p(0.9);
  json j = Format(r, ExportFormat::kRaw);
  EXPECT_EQ(j["duplicate_of"], "aabbccdd00112233445566778899eeff");
  EXPECT_EQ(j["params"], json::parse(R"({"top_p": 0.9})"));
}

TEST(FormatRecordTest, RawFailedRecord) {
  v1::ExportRecord r = ProvenanceRecord();
  r.clear_answer();
  r.mutable_prompt()->clear_metadata_json();
  r.mutable_task()->set_state(v1::TASK_STATE_FAILED);
  r.mutable_task()->set_last_error("HTTP 400: context too long");
  json j = Format(r, ExportFormat::kRaw);
  EXPECT_EQ(j["state"], "failed");
  EXPECT_EQ(j["error"], "HTTP 400: context too long");
  EXPECT_EQ(j["content"], "");
  EXPECT_TRUE(j["metadata"].is_null());
  EXPECT_EQ(j["params"], json::object());
  EXPECT_EQ(j["request_key"], HexKey(kKey));
}

TEST(FormatRecordTest, KeepsUtf8AndSurvivesInvalidBytes) {
  v1::ExportRecord r = ProvenanceRecord();
  r.mutable_answer()->set_content("na\xC3\xAFve \xF0\x9F\x98\x80");
  const std::string line = FormatRecord(r, ExportFormat::kOpenAi);
  EXPECT_THAT(line, HasSubstr("na\xC3\xAFve \xF0\x9F\x98\x80"));

  r.mutable_answer()->set_content("bad \xFF byte");
  std::string bad;
  ASSERT_NO_THROW(bad = FormatRecord(r, ExportFormat::kRaw));
  json j = json::parse(bad);
  EXPECT_THAT(j["content"].get<std::string>(), HasSubstr("bad "));
}

}  // namespace
}  // namespace distillery
