// Content-addressed keys and near-duplicate signatures. RequestKey runs
// once per task at submission; AnswerContentHash, MinHashSignature and
// LshBandKeys once per new answer on the coordinator's commit path
// (Coordinator::CommitResultLocked, under the coordinator's one mutex).
#include <string>
#include <vector>

#include "bench/micro/bench_inputs.h"
#include "benchmark/benchmark.h"
#include "common/dedup/keys.h"
#include "common/dedup/minhash.h"

namespace distillery::bench {
namespace {

constexpr uint64_t kSeed = 1;

int64_t PromptBytes(const v1::Prompt& prompt) {
  int64_t bytes = 0;
  for (const v1::ChatMessage& m : prompt.messages()) {
    bytes += static_cast<int64_t>(m.content().size());
  }
  return bytes;
}

void BM_RequestKey(benchmark::State& state) {
  const v1::Prompt prompt = SamplePrompt(kSeed);
  const v1::SamplingParams params = SampleParams();
  const TeacherProfile teacher = SampleTeacherProfile();
  int sample = 0;
  for (auto _ : state) {
    std::string key =
        RequestKey(teacher, kModelName, prompt.messages(), params, sample);
    sample = (sample + 1) & 7;
    benchmark::DoNotOptimize(key);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * PromptBytes(prompt));
}
BENCHMARK(BM_RequestKey);

void BM_AnswerContentHash(benchmark::State& state) {
  const std::string content = AnswerText(kSeed);
  for (auto _ : state) {
    std::string hash = AnswerContentHash(content);
    benchmark::DoNotOptimize(hash);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(content.size()));
}
BENCHMARK(BM_AnswerContentHash);

void BM_MinHashSignature(benchmark::State& state) {
  const std::string content = AnswerText(kSeed);
  for (auto _ : state) {
    std::string signature = MinHashSignature(content);
    benchmark::DoNotOptimize(signature);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(content.size()));
  state.counters["words"] = static_cast<double>(MinHashWords(content).size());
}
BENCHMARK(BM_MinHashSignature);

void BM_LshBandKeys(benchmark::State& state) {
  const std::string signature = MinHashSignature(AnswerText(kSeed));
  for (auto _ : state) {
    std::vector<std::string> bands = LshBandKeys(signature);
    benchmark::DoNotOptimize(bands);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LshBandKeys);

}  // namespace
}  // namespace distillery::bench
