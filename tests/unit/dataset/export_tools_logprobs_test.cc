// Export of tool use and logprobs: an agent trace and a tool-call answer in
// OpenAI's fine-tuning form (openai, chat) and LLaMA-Factory's ShareGPT
// form (function_call and observation turns, "tools" as JSON text), in raw
// verbatim; and the logprobs format a logit-distillation run reads.
#include <string>

#include "common/dataset/export_format.h"
#include "common/teacher/logprobs_codec.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using nlohmann::json;

const char* kTools =
    R"([{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}])";
const char* kFirstCall =
    R"([{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}])";
const char* kAnswerCalls =
    R"([{"id":"c2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}},{"id":"c3","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}])";

// A trace: the user asks, the assistant calls, the tool answers; the
// teacher's answer calls the tool twice more.
v1::ExportRecord AgentRecord() {
  v1::ExportRecord r;
  r.set_job_id("job-000001");
  v1::Prompt* p = r.mutable_prompt();
  p->set_id("t1");
  p->set_line(1);
  p->set_tools_json(kTools);
  auto add = [&](const char* role, const char* content) {
    v1::ChatMessage* m = p->add_messages();
    m->set_role(role);
    m->set_content(content);
    return m;
  };
  add("user", "Weather in Paris, Rome and Oslo?");
  add("assistant", "")->set_tool_calls_json(kFirstCall);
  add("tool", "18 C")->set_tool_call_id("c1");
  r.mutable_task()->set_state(v1::TASK_STATE_DONE);
  r.mutable_answer()->set_tool_calls_json(kAnswerCalls);
  r.mutable_answer()->set_finish_reason("tool_calls");
  return r;
}

json Line(const v1::ExportRecord& r, ExportFormat format) {
  const std::string line = FormatRecord(r, format, ReasoningLayout::kDrop);
  json j = json::parse(line, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << line;
  return j;
}

TEST(ExportToolsTest, OpenAiFineTuningShape) {
  const json j = Line(AgentRecord(), ExportFormat::kOpenAi);
  EXPECT_EQ(j["tools"], json::parse(kTools));
  const json& m = j["messages"];
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[1], json::parse(std::string(R"({"role":"assistant","content":null,"tool_calls":)") +
                              kFirstCall + "}"));
  EXPECT_EQ(m[2], json::parse(R"({"role":"tool","content":"18 C","tool_call_id":"c1"})"));
  EXPECT_EQ(m[3]["role"], "assistant");
  EXPECT_EQ(m[3]["content"], nullptr);
  EXPECT_EQ(m[3]["tool_calls"], json::parse(kAnswerCalls));
  EXPECT_EQ(j.size(), 2u) << "messages and tools only: " << j.dump();
}

TEST(ExportToolsTest, ShareGptAsLlamaFactoryReadsIt) {
  const json j = Line(AgentRecord(), ExportFormat::kShareGpt);
  const json& c = j["conversations"];
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[0]["from"], "human");
  EXPECT_EQ(c[1]["from"], "function_call");
  EXPECT_EQ(json::parse(c[1]["value"].get<std::string>()),
            json::parse(R"({"name":"get_weather","arguments":{"city":"Paris"}})"));
  EXPECT_EQ(c[2], json::parse(R"({"from":"observation","value":"18 C"})"));
  EXPECT_EQ(c[3]["from"], "function_call");
  EXPECT_EQ(json::parse(c[3]["value"].get<std::string>()),
            json::parse(R"([{"name":"get_weather","arguments":{"city":"Rome"}},
                            {"name":"get_weather","arguments":{"city":"Oslo"}}])"));
  EXPECT_EQ(json::parse(j["tools"].get<std::string>()),
            json::parse(R"([{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}])"));
}

TEST(ExportToolsTest, RawKeepsToolsAndCallsAndPlainRecordsHaveNeither) {
  const json j = Line(AgentRecord(), ExportFormat::kRaw);
  EXPECT_EQ(j["tools"], json::parse(kTools));
  EXPECT_EQ(j["tool_calls"], json::parse(kAnswerCalls));
  EXPECT_EQ(j["messages"][1]["tool_calls"], json::parse(kFirstCall));
  EXPECT_EQ(j["finish_reason"], "tool_calls");
  v1::ExportRecord plain = AgentRecord();
  plain.mutable_prompt()->clear_tools_json();
  plain.mutable_answer()->clear_tool_calls_json();
  const json p = Line(plain, ExportFormat::kRaw);
  EXPECT_FALSE(p.contains("tools"));
  EXPECT_FALSE(p.contains("tool_calls"));
  EXPECT_FALSE(p.contains("logprobs"));
}

TEST(ExportLogprobsTest, LogprobsFormatAndRaw) {
  v1::ExportRecord r;
  r.set_job_id("job-000002");
  r.mutable_prompt()->set_id("p");
  v1::ChatMessage* user = r.mutable_prompt()->add_messages();
  user->set_role("user");
  user->set_content("Say hi");
  r.mutable_task()->set_state(v1::TASK_STATE_DONE);
  r.mutable_answer()->set_content("Hi!");
  std::vector<TokenLogprob> tokens = {
      {"Hi", -0.125, {{"Hi", -0.125}, {"Hey", -2.5}}},
      {"!", -0.5, {{".", -0.25}, {"!", -0.5}}}};
  r.mutable_answer()->set_logprobs(EncodeLogprobs(tokens));
  const json j = Line(r, ExportFormat::kLogprobs);
  EXPECT_EQ(j["messages"], json::parse(R"([{"role":"user","content":"Say hi"},
                                           {"role":"assistant","content":"Hi!"}])"));
  EXPECT_EQ(j["tokens"], json::parse(R"(["Hi","!"])"));
  EXPECT_EQ(j["logprobs"], json::parse(R"([-0.125,-0.5])"));
  EXPECT_EQ(j["top_logprobs"],
            json::parse(R"([[["Hi",-0.125],["Hey",-2.5]],[[".",-0.25],["!",-0.5]]])"));
  const json raw = Line(r, ExportFormat::kRaw);
  EXPECT_EQ(raw["logprobs"]["tokens"], j["tokens"]);
  EXPECT_EQ(raw["logprobs"]["top_logprobs"], j["top_logprobs"]);
  EXPECT_EQ(*ParseExportFormat("logprobs"), ExportFormat::kLogprobs);
  // Without stored logprobs: empty lists, still one line.
  r.mutable_answer()->clear_logprobs();
  const json none = Line(r, ExportFormat::kLogprobs);
  EXPECT_EQ(none["tokens"], json::array());
}

}  // namespace
}  // namespace distillery
