// What the distillation features cost per answer: checking an answer with
// --verify math (extraction and normalisation of a long reasoning answer),
// validating one against a --json-schema, and storing logprobs, with the
// bytes a token they take (counter bytes_per_token; the provider's JSON for
// the same answer in json_bytes_per_token), for teacher-sim's tokens.
#include <benchmark/benchmark.h>

#include <string>

#include "common/teacher/logprobs_codec.h"
#include "common/teacher/openai_chat_format.h"
#include "common/verify/answer_check.h"
#include "common/verify/json_schema.h"
#include "services/teacher_sim/json_writer.h"
#include "services/teacher_sim/sim_logprobs.h"

namespace distillery {
namespace {

// A 2,000-byte worked answer ending in a boxed result, as reasoning
// teachers write them.
std::string LongMathAnswer() {
  std::string text;
  for (int i = 0; text.size() < 2000; ++i) {
    text += "Step " + std::to_string(i) +
            ": we add the partial sums $1,234 + " + std::to_string(i) +
            "$ and carry the tens, so the running total is \\frac{" +
            std::to_string(2 * i + 1) + "}{2}. ";
  }
  return text + "So the answer is $\\boxed{\\dfrac{3}{4}}$.";
}

void BM_VerifyMath(benchmark::State& state) {
  const AnswerChecker checker = *AnswerChecker::Create("math");
  const std::string answer = LongMathAnswer();
  for (auto _ : state) {
    CheckOutcome outcome = checker.Check(answer, std::string("0.75"));
    benchmark::DoNotOptimize(outcome);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VerifyMath);

void BM_ValidateJsonSchema(benchmark::State& state) {
  const auto validator = *JsonSchemaValidator::Create(
      R"({"type":"object","properties":{"name":{"type":"string"},)"
      R"("age":{"type":"integer","minimum":0},"tags":{"type":"array",)"
      R"("items":{"type":"string"}}},"required":["name","age","tags"],)"
      R"("additionalProperties":false})");
  const std::string answer =
      R"({"name":"Ada Lovelace","age":36,"tags":["maths","engines","notes"]})";
  for (auto _ : state) {
    absl::Status s = validator->Validate(answer);
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ValidateJsonSchema);

// teacher-sim's logprobs for a 400-token answer with K = 5, read back as
// the worker reads them.
std::vector<TokenLogprob> SimAnswerLogprobs(std::string* json_body) {
  std::string text;
  for (int i = 0; i < 400; ++i) {
    text += (i % 9 == 8) ? ". " : (" word" + std::to_string(i % 37));
  }
  const std::vector<teacher_sim::SimTokenLogprob> sim =
      teacher_sim::TokenLogprobs(text, 42, 5);
  teacher_sim::JsonWriter w;
  w.BeginObject().Key("choices").BeginArray().BeginObject();
  w.Key("index").Int(0);
  w.Key("message").BeginObject().Key("role").String("assistant");
  w.Key("content").String(text).EndObject();
  w.Key("logprobs").BeginObject().Key("content");
  teacher_sim::WriteLogprobContent(sim, 0, sim.size(), w);
  w.EndObject();
  w.Key("finish_reason").String("stop").EndObject().EndArray().EndObject();
  *json_body = w.Release();
  TeacherResult r = ParseChatResponse(*json_body);
  return r.answer.logprobs;
}

void BM_EncodeLogprobs(benchmark::State& state) {
  std::string body;
  const std::vector<TokenLogprob> tokens = SimAnswerLogprobs(&body);
  size_t bytes = 0;
  for (auto _ : state) {
    std::string coded = EncodeLogprobs(tokens);
    bytes = coded.size();
    benchmark::DoNotOptimize(coded);
  }
  state.SetItemsProcessed(state.iterations() * tokens.size());
  state.counters["bytes_per_token"] =
      static_cast<double>(bytes) / tokens.size();
  // The logprobs part of the provider's body (all but the message).
  state.counters["json_bytes_per_token"] =
      static_cast<double>(body.size() - body.find("\"logprobs\"")) /
      tokens.size();
}
BENCHMARK(BM_EncodeLogprobs);

void BM_DecodeLogprobs(benchmark::State& state) {
  std::string body;
  const std::vector<TokenLogprob> tokens = SimAnswerLogprobs(&body);
  const std::string coded = EncodeLogprobs(tokens);
  for (auto _ : state) {
    auto decoded = DecodeLogprobs(coded);
    benchmark::DoNotOptimize(decoded);
  }
  state.SetItemsProcessed(state.iterations() * tokens.size());
}
BENCHMARK(BM_DecodeLogprobs);

}  // namespace
}  // namespace distillery
