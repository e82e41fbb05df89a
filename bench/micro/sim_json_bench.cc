// teacher-sim's hand-written JsonWriter against nlohmann::ordered_json on
// the simulator's real response shapes: the chat.completion body
// (RenderCompletionJson) and one streamed delta chunk. The question is
// whether the writer pays for itself (bench/results.md); both sides build
// the same bytes, which the benchmark checks once before timing.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "nlohmann/json.hpp"
#include "services/teacher_sim/answer_generator.h"
#include "services/teacher_sim/json_writer.h"

namespace distillery::teacher_sim {
namespace {

using nlohmann::ordered_json;

SimCompletion Completion(size_t content_bytes, bool reasoning) {
  SimCompletion completion;
  completion.model = "sim-reasoner";
  completion.reasoning_model = reasoning;
  SimChoice choice;
  const std::string words =
      "The answer is four, because two and two make four. ";
  while (choice.content.size() < content_bytes) choice.content += words;
  choice.content.resize(content_bytes);
  if (reasoning)
    choice.reasoning_content = choice.content.substr(0, content_bytes / 2);
  choice.finish_reason = "stop";
  completion.choices.push_back(choice);
  completion.usage = {120, 400, reasoning ? 100 : 0, 520};
  return completion;
}

// What RenderCompletionJson would be on nlohmann.
std::string RenderWithNlohmann(const SimCompletion& completion,
                               std::string_view id, int64_t created) {
  ordered_json doc;
  doc["id"] = id;
  doc["object"] = "chat.completion";
  doc["created"] = created;
  doc["model"] = completion.model;
  ordered_json choices = ordered_json::array();
  for (size_t i = 0; i < completion.choices.size(); ++i) {
    const SimChoice& c = completion.choices[i];
    ordered_json message;
    message["role"] = "assistant";
    message["content"] = c.content;
    if (completion.reasoning_model) {
      message["reasoning_content"] = c.reasoning_content;
    }
    message["refusal"] = nullptr;
    ordered_json choice;
    choice["index"] = static_cast<int64_t>(i);
    choice["message"] = std::move(message);
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = c.finish_reason;
    choices.push_back(std::move(choice));
  }
  doc["choices"] = std::move(choices);
  doc["usage"] = {{"prompt_tokens", completion.usage.prompt_tokens},
                  {"completion_tokens", completion.usage.completion_tokens},
                  {"total_tokens", completion.usage.total_tokens},
                  {"prompt_tokens_details", {{"cached_tokens", 0}}},
                  {"completion_tokens_details",
                   {{"reasoning_tokens", completion.usage.reasoning_tokens}}}};
  doc["system_fingerprint"] = "fp_teachersim";
  return doc.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

// One streamed content delta as response_render.cc writes it.
std::string DeltaWithWriter(std::string_view text) {
  JsonWriter w;
  w.BeginObject();
  w.Key("id").String("chatcmpl-sim-0123456789");
  w.Key("object").String("chat.completion.chunk");
  w.Key("created").Int(1750000000);
  w.Key("model").String("sim-reasoner");
  w.Key("system_fingerprint").String("fp_teachersim");
  w.Key("choices").BeginArray().BeginObject();
  w.Key("index").Int(0);
  w.Key("delta").BeginObject().Key("content").String(text).EndObject();
  w.Key("logprobs").Null();
  w.Key("finish_reason").Null();
  w.EndObject().EndArray();
  w.EndObject();
  return w.Release();
}

std::string DeltaWithNlohmann(std::string_view text) {
  ordered_json doc;
  doc["id"] = "chatcmpl-sim-0123456789";
  doc["object"] = "chat.completion.chunk";
  doc["created"] = 1750000000;
  doc["model"] = "sim-reasoner";
  doc["system_fingerprint"] = "fp_teachersim";
  ordered_json choice;
  choice["index"] = 0;
  choice["delta"] = {{"content", text}};
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = nullptr;
  doc["choices"] = ordered_json::array({std::move(choice)});
  return doc.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

void CheckSame(benchmark::State& state, const std::string& a,
               const std::string& b) {
  if (a != b) state.SkipWithError("the two writers disagree");
}

void BM_SimCompletionWriter(benchmark::State& state) {
  const SimCompletion completion = Completion(state.range(0), true);
  CheckSame(state, RenderCompletionJson(completion, "chatcmpl-1", 1750000000),
            RenderWithNlohmann(completion, "chatcmpl-1", 1750000000));
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        RenderCompletionJson(completion, "chatcmpl-1", 1750000000));
  }
  state.SetBytesProcessed(state.iterations() * state.range(0) * 3 / 2);
}
BENCHMARK(BM_SimCompletionWriter)
    ->ArgName("bytes")
    ->Arg(256)
    ->Arg(2048)
    ->Arg(16384);

void BM_SimCompletionNlohmann(benchmark::State& state) {
  const SimCompletion completion = Completion(state.range(0), true);
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        RenderWithNlohmann(completion, "chatcmpl-1", 1750000000));
  }
  state.SetBytesProcessed(state.iterations() * state.range(0) * 3 / 2);
}
BENCHMARK(BM_SimCompletionNlohmann)
    ->ArgName("bytes")
    ->Arg(256)
    ->Arg(2048)
    ->Arg(16384);

void BM_SimDeltaWriter(benchmark::State& state) {
  CheckSame(state, DeltaWithWriter(" the answer is"),
            DeltaWithNlohmann(" the answer is"));
  for (auto _ : state)
    benchmark::DoNotOptimize(DeltaWithWriter(" the answer is"));
}
BENCHMARK(BM_SimDeltaWriter);

void BM_SimDeltaNlohmann(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(DeltaWithNlohmann(" the answer is"));
  }
}
BENCHMARK(BM_SimDeltaNlohmann);

}  // namespace
}  // namespace distillery::teacher_sim
