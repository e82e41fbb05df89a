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
  EXPECT_EQ(TaskRequestKey(t, Spec(5), Messages(), {}, 1),
            TaskRequestKey(t, Spec(6), Messages(), {}, 0));
  // Unseeded sample 1 sends seed 1.
  EXPECT_EQ(TaskRequestKey(t, Spec(std::nullopt), Messages(), {}, 1),
            TaskRequestKey(t, Spec(1), Messages(), {}, 0));
}

TEST(TaskRequestTest, DistinctRequestsHaveDistinctKeys) {
  const TeacherProfile t = Teacher();
  std::set<std::string> keys;
  for (int sample = 0; sample < 4; ++sample) {
    keys.insert(TaskRequestKey(t, Spec(std::nullopt), Messages(), {}, sample));
  }
  keys.insert(TaskRequestKey(t, Spec(100), Messages(), {}, 0));
  EXPECT_EQ(keys.size(), 5u);
  // No seed and seed 0 are different requests on the wire.
  EXPECT_NE(TaskRequestKey(t, Spec(std::nullopt), Messages(), {}, 0),
            TaskRequestKey(t, Spec(0), Messages(), {}, 0));
}

TEST(TaskRequestTest, FirstSampleKeysAreThoseOfKeyFormatV2) {
  // Answers stored before the key followed the sent seed stay cache hits.
  const TeacherProfile t = Teacher();
  const v1::JobSpec seeded = Spec(5);
  EXPECT_EQ(TaskRequestKey(t, seeded, Messages(), {}, 0),
            RequestKey(t, "m", Messages(), seeded.params(), 0));
  const v1::JobSpec unseeded = Spec(std::nullopt);
  EXPECT_EQ(TaskRequestKey(t, unseeded, Messages(), {}, 0),
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
  EXPECT_NE(TaskRequestKey(t, spec, Messages(), row, 0),
            TaskRequestKey(t, spec, Messages(), {}, 0));
  // Overriding with the job's own values is the same request.
  v1::SamplingParams same;
  same.set_max_tokens(64);
  same.set_temperature(1.0);
  EXPECT_EQ(TaskRequestKey(t, spec, Messages(), same, 0),
            TaskRequestKey(t, spec, Messages(), {}, 0));
}

}  // namespace
}  // namespace distillery
