// The export CLI's per-record work: FormatRecord turns one ExportRecord into
// one JSONL line. `distillery export` runs it once per record, on the same
// two cores as the coordinator that streams the records.
//
// The record is the typical one: the job's system prompt and a ~350-byte
// user prompt, a ~900-byte answer with a ~600-byte reasoning trace, and
// metadata {"id":123,"source":"x"}. The reasoning layout is the default
// (a "reasoning" field).
#include <string>

#include "bench/micro/bench_inputs.h"
#include "benchmark/benchmark.h"
#include "common/dataset/export_format.h"
#include "common/dedup/keys.h"

namespace distillery::bench {
namespace {

constexpr uint64_t kSeed = 1;

v1::ExportRecord SampleRecord() {
  v1::ExportRecord record;
  record.set_job_id("job-000001");
  v1::Prompt* prompt = record.mutable_prompt();
  *prompt = SamplePrompt(kSeed);
  prompt->set_id("p-123");
  prompt->set_line(123);
  prompt->set_metadata_json(R"({"id":123,"source":"x"})");
  v1::Task* task = record.mutable_task();
  task->set_job_id(record.job_id());
  task->set_state(v1::TASK_STATE_DONE);
  task->set_attempts(1);
  task->set_request_key(RequestKey(SampleTeacherProfile(), kModelName,
                                   prompt->messages(), SampleParams(), 0));
  v1::Answer* answer = record.mutable_answer();
  answer->set_content(AnswerText(kSeed));
  answer->set_reasoning(ReasoningText(kSeed));
  answer->set_finish_reason("stop");
  answer->set_teacher(std::string(kTeacherName));
  answer->set_model(std::string(kModelName));
  *answer->mutable_params() = SampleParams();
  answer->mutable_usage()->set_prompt_tokens(120);
  answer->mutable_usage()->set_completion_tokens(400);
  answer->mutable_usage()->set_reasoning_tokens(150);
  answer->set_provider_id("chatcmpl-b7d1e2f0a9c84e5d");
  answer->set_received_ms(1'750'000'000'123);
  answer->set_latency_ms(2345);
  answer->set_worker("worker-1");
  answer->set_request_key(task->request_key());
  answer->set_cost_usd(0.00123);
  return record;
}

void BM_FormatRecord(benchmark::State& state, ExportFormat format) {
  const v1::ExportRecord record = SampleRecord();
  int64_t bytes = 0;
  for (auto _ : state) {
    std::string line = FormatRecord(record, format);
    bytes += static_cast<int64_t>(line.size());
    benchmark::DoNotOptimize(line);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}
BENCHMARK_CAPTURE(BM_FormatRecord, openai, ExportFormat::kOpenAi);
BENCHMARK_CAPTURE(BM_FormatRecord, sharegpt, ExportFormat::kShareGpt);
BENCHMARK_CAPTURE(BM_FormatRecord, raw, ExportFormat::kRaw);

}  // namespace
}  // namespace distillery::bench
