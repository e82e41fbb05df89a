// Export formats: each record becomes one JSON line of the chosen shape.
#include "common/dataset/export_format.h"

#include <string>

#include "common/dedup/keys.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

const std::string kKey(
    "\x01\x02\xfe\xff\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xb0\xc0", 16);
const std::string kFirstKey(
    "\xaa\xbb\xcc\xdd\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xee\xff", 16);

v1::ExportRecord Record() {
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
  EXPECT_EQ(*ParseExportFormat("sharegpt"), ExportFormat::kShareGpt);
  EXPECT_EQ(*ParseExportFormat("raw"), ExportFormat::kRaw);
  for (const char* bad : {"jsonl", "OpenAI", ""}) {
    absl::StatusOr<ExportFormat> f = ParseExportFormat(bad);
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(f.status().message(), HasSubstr(std::string("'") + bad + "'"));
    EXPECT_THAT(f.status().message(), HasSubstr("openai, sharegpt, raw or errors"));
  }
}

TEST(FormatRecordTest, OpenAiAppendsTheAssistantAnswer) {
  json j = Format(Record(), ExportFormat::kOpenAi);
  EXPECT_EQ(j, json::parse(R"({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "What is 2 + 2?"},
      {"role": "assistant", "content": "4"},
      {"role": "user", "content": "Sure?"},
      {"role": "assistant", "content": "Yes, 4.", "reasoning": "2 + 2 = 4"}
    ],
    "metadata": {"topic": "math", "level": 2}
  })"));
}

TEST(FormatRecordTest, OpenAiOmitsEmptyReasoningAndMetadata) {
  v1::ExportRecord r = Record();
  r.mutable_answer()->clear_reasoning();
  r.mutable_prompt()->clear_metadata_json();
  json j = Format(r, ExportFormat::kOpenAi);
  ASSERT_EQ(j["messages"].size(), 5u);
  const json& last = j["messages"].back();
  EXPECT_EQ(last,
            json::parse(R"({"role": "assistant", "content": "Yes, 4."})"));
  EXPECT_FALSE(last.contains("reasoning"));
  EXPECT_FALSE(j.contains("metadata"));
}

TEST(FormatRecordTest, ShareGptMapsRoles) {
  json j = Format(Record(), ExportFormat::kShareGpt);
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

  v1::ExportRecord plain = Record();
  plain.mutable_answer()->clear_reasoning();
  plain.mutable_prompt()->clear_metadata_json();
  json p = Format(plain, ExportFormat::kShareGpt);
  EXPECT_FALSE(p.contains("reasoning"));
  EXPECT_FALSE(p.contains("metadata"));
}

TEST(FormatRecordTest, RawCarriesProvenance) {
  json j = Format(Record(), ExportFormat::kRaw);
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
  v1::ExportRecord r = Record();
  r.mutable_answer()->set_duplicate_of(kFirstKey);
  r.mutable_answer()->mutable_params()->Clear();
  r.mutable_answer()->mutable_params()->set_top_p(0.9);
  json j = Format(r, ExportFormat::kRaw);
  EXPECT_EQ(j["duplicate_of"], "aabbccdd00112233445566778899eeff");
  EXPECT_EQ(j["params"], json::parse(R"({"top_p": 0.9})"));
}

TEST(FormatRecordTest, RawFailedRecord) {
  v1::ExportRecord r = Record();
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
  v1::ExportRecord r = Record();
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
