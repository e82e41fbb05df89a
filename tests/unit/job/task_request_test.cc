// The one definition of a task's request: the parameters each sample sends
// and the key it is stored under, made from what is sent.
#include "common/job/task_request.h"

#include <optional>
#include <set>
#include <string>

#include "common/dedup/keys.h"
#include "gtest/gtest.h"

namespace distillery {
namespace {

TeacherProfile Teacher() {
  TeacherProfile p;
  p.name = "sim";
  p.base_url = "http://127.0.0.1:9/v1";
  return p;
}

google::protobuf::RepeatedPtrField<v1::ChatMessage> Messages() {
  google::protobuf::RepeatedPtrField<v1::ChatMessage> m;
  v1::ChatMessage* user = m.Add();
  user->set_role("user");
  user->set_content("What is 2+2?");
  return m;
}

// TaskRequestKey of a prompt with Messages() and its own `params`.
std::string Key(const TeacherProfile& t, const v1::JobSpec& spec,
                const v1::SamplingParams& params, int sample) {
  v1::Prompt prompt;
  *prompt.mutable_messages() = Messages();
  *prompt.mutable_params() = params;
  return TaskRequestKey(t, spec, prompt, sample);
}

v1::JobSpec Spec(std::optional<int64_t> seed) {
  v1::JobSpec spec;
  spec.set_teacher("sim");
  spec.set_model("m");
  spec.mutable_params()->set_max_tokens(64);
  if (seed) spec.mutable_params()->set_seed(*seed);
  return spec;
}

TEST(TaskRequestTest, SampleZeroIsSentAsAskedAndLaterSamplesOffsetTheSeed) {
  EXPECT_FALSE(TaskParams(Spec(std::nullopt), {}, 0).has_seed());
  EXPECT_EQ(TaskParams(Spec(std::nullopt), {}, 2).seed(), 2);
  EXPECT_EQ(TaskParams(Spec(5), {}, 0).seed(), 5);
  EXPECT_EQ(TaskParams(Spec(5), {}, 3).seed(), 8);
  EXPECT_EQ(TaskParams(Spec(5), {}, 3).max_tokens(), 64);
}

TEST(TaskRequestTest, TheSameRequestSentHasTheSameKey) {
  const TeacherProfile t = Teacher();
  // --seed 5 --samples 2: sample 1 sends seed 6, as --seed 6 does.
  EXPECT_EQ(Key(t, Spec(5), {}, 1),
            Key(t, Spec(6), {}, 0));
  // Unseeded sample 1 sends seed 1.
  EXPECT_EQ(Key(t, Spec(std::nullopt), {}, 1),
            Key(t, Spec(1), {}, 0));
}

TEST(TaskRequestTest, DistinctRequestsHaveDistinctKeys) {
  const TeacherProfile t = Teacher();
  std::set<std::string> keys;
  for (int sample = 0; sample < 4; ++sample) {
    keys.insert(Key(t, Spec(std::nullopt), {}, sample));
  }
  keys.insert(Key(t, Spec(100), {}, 0));
  EXPECT_EQ(keys.size(), 5u);
  // No seed and seed 0 are different requests on the wire.
  EXPECT_NE(Key(t, Spec(std::nullopt), {}, 0),
            Key(t, Spec(0), {}, 0));
}

TEST(TaskRequestTest, FirstSampleKeysAreThoseOfKeyFormatV2) {
  // Answers stored before the key followed the sent seed stay cache hits.
  const TeacherProfile t = Teacher();
  const v1::JobSpec seeded = Spec(5);
  EXPECT_EQ(Key(t, seeded, {}, 0),
            RequestKey(t, "m", Messages(), seeded.params(), 0));
  const v1::JobSpec unseeded = Spec(std::nullopt);
  EXPECT_EQ(Key(t, unseeded, {}, 0),
            RequestKey(t, "m", Messages(), unseeded.params(), 0));
}

// A row's own max_tokens and temperature (Prompt.params) win over the job's,
// and they are part of the key: the same prompt asked with another budget is
// another request.
TEST(TaskRequestTest, ThePromptsOwnParametersOverrideTheJobsAndJoinTheKey) {
  v1::JobSpec spec = Spec(5);
  spec.mutable_params()->set_temperature(1.0);
  spec.mutable_params()->set_top_p(0.9);
  v1::SamplingParams row;
  row.set_max_tokens(4096);
  row.set_temperature(0.2);
  const v1::SamplingParams p = TaskParams(spec, row, 1);
  EXPECT_EQ(p.max_tokens(), 4096);
  EXPECT_DOUBLE_EQ(p.temperature(), 0.2);
  EXPECT_DOUBLE_EQ(p.top_p(), 0.9);  // not a row field: the job's
  EXPECT_EQ(p.seed(), 6);
  v1::SamplingParams only_tokens;
  only_tokens.set_max_tokens(10);
  EXPECT_DOUBLE_EQ(TaskParams(spec, only_tokens, 0).temperature(), 1.0);
  EXPECT_EQ(TaskParams(spec, {}, 0).max_tokens(), 64);

  const TeacherProfile t = Teacher();
  EXPECT_NE(Key(t, spec, row, 0),
            Key(t, spec, {}, 0));
  // Overriding with the job's own values is the same request.
  v1::SamplingParams same;
  same.set_max_tokens(64);
  same.set_temperature(1.0);
  EXPECT_EQ(Key(t, spec, same, 0),
            Key(t, spec, {}, 0));
}

// Tools, tool turns, logprobs and a JSON schema change what is asked, so
// they change the key; a request without them keeps the key it had.
TEST(TaskRequestTest, ToolsLogprobsAndSchemasJoinTheKeyOnlyWhenSet) {
  const TeacherProfile t = Teacher();
  const v1::JobSpec spec = Spec(5);
  v1::Prompt plain;
  *plain.mutable_messages() = Messages();
  const std::string base = TaskRequestKey(t, spec, plain, 0);
  EXPECT_EQ(base, RequestKey(t, "m", Messages(), spec.params(), 0));
  std::set<std::string> keys = {base};
  v1::Prompt tools = plain;
  tools.set_tools_json(R"([{"type":"function","function":{"name":"f"}}])");
  keys.insert(TaskRequestKey(t, spec, tools, 0));
  v1::Prompt choice = tools;
  choice.set_tool_choice_json(R"("required")");
  keys.insert(TaskRequestKey(t, spec, choice, 0));
  v1::Prompt trace = plain;
  v1::ChatMessage* call = trace.add_messages();
  call->set_role("assistant");
  call->set_tool_calls_json(R"([{"id":"c1"}])");
  v1::Prompt trace2 = trace;
  trace2.mutable_messages(1)->set_tool_calls_json(R"([{"id":"c2"}])");
  keys.insert(TaskRequestKey(t, spec, trace, 0));
  keys.insert(TaskRequestKey(t, spec, trace2, 0));
  v1::JobSpec logprobs = spec;
  logprobs.mutable_params()->set_top_logprobs(5);
  keys.insert(TaskRequestKey(t, logprobs, plain, 0));
  v1::JobSpec schema = spec;
  schema.set_json_schema(R"({"type":"object"})");
  keys.insert(TaskRequestKey(t, schema, plain, 0));
  EXPECT_EQ(keys.size(), 7u);
  // The lease carries all of them to the worker's request.
  v1::LeasedTask leased;
  FillTaskRequest(schema, choice, 1, &leased);
  const TeacherRequest request = ToTeacherRequest(leased);
  EXPECT_EQ(request.tools_json, choice.tools_json());
  EXPECT_EQ(request.tool_choice_json, R"("required")");
  EXPECT_EQ(request.json_schema, R"({"type":"object"})");
  EXPECT_EQ(*request.params.seed, 6);
}

}  // namespace
}  // namespace distillery
