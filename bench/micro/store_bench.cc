// Store::Apply of what committing a reported answer writes, on a real
// RocksDB store in a scratch directory: the Answer (text, trace, raw body,
// MinHash signature), the Task marked done, the content-index entry, the 16
// LSH buckets of a new answer, and the Job with its counters. That is the
// StoreBatch Coordinator::CommitResultLocked builds for a new, unique answer.
//
// answers_per_batch:1 is what the coordinator does today (one Apply per
// result); larger values put that many answers in one WriteBatch, to show
// what grouping a Report's results would save. sync:1 opens the store with
// --sync-writes (StoreOptions::sync_writes, an fsync of the WAL per Apply).
#include <cstring>
#include <memory>
#include <string>

#include "bench/micro/bench_inputs.h"
#include "benchmark/benchmark.h"
#include "common/dedup/keys.h"
#include "common/dedup/minhash.h"
#include "common/store/store.h"

namespace distillery::bench {
namespace {

constexpr char kJobId[] = "job-000001";

// Overwrites the first 8 bytes of `key` (after `skip` bytes) with `n`, so
// every iteration writes new keys of the real size and shape.
void Stamp(std::string* key, size_t skip, uint64_t n) {
  std::memcpy(key->data() + skip, &n, sizeof(n));
}

v1::Job SampleJob() {
  v1::Job job;
  job.set_id(kJobId);
  v1::JobSpec* spec = job.mutable_spec();
  spec->set_teacher(std::string(kTeacherName));
  spec->set_model(std::string(kModelName));
  spec->set_samples(1);
  *spec->mutable_params() = SampleParams();
  spec->set_system_prompt(std::string(kSystemPrompt));
  spec->set_source("prompts/math-train.jsonl");
  job.set_state(v1::JOB_STATE_RUNNING);
  job.set_created_ms(1'750'000'000'000);
  v1::JobCounters* c = job.mutable_counters();
  c->set_prompts(100000);
  c->set_tasks_total(100000);
  c->set_tasks_done(4242);
  c->set_teacher_requests(4242);
  c->set_prompt_tokens(4242 * 142);
  c->set_completion_tokens(4242 * 388);
  c->set_reasoning_tokens(4242 * 151);
  return job;
}

// One answer as the coordinator stores it, for prompt `seq`.
v1::Answer SampleAnswer(uint64_t seq) {
  const v1::Prompt prompt = SamplePrompt(seq);
  v1::Answer answer;
  answer.set_content(AnswerText(seq));
  answer.set_reasoning(ReasoningText(seq));
  answer.set_raw_body(ChatCompletionBody(answer.content(), answer.reasoning()));
  answer.set_finish_reason("stop");
  answer.mutable_usage()->set_prompt_tokens(142);
  answer.mutable_usage()->set_completion_tokens(388);
  answer.mutable_usage()->set_reasoning_tokens(151);
  answer.mutable_usage()->set_cached_tokens(64);
  answer.set_provider_id("chatcmpl-b7d1e2f0a9c84e5d");
  answer.set_teacher(std::string(kTeacherName));
  answer.set_model(std::string(kModelName));
  *answer.mutable_params() = SampleParams();
  answer.set_received_ms(1'750'000'100'000);
  answer.set_latency_ms(5400);
  answer.set_worker("worker-3");
  answer.set_request_key(RequestKey(SampleTeacherProfile(), kModelName,
                                    prompt.messages(), SampleParams(), 0));
  answer.set_minhash(MinHashSignature(answer.content()));
  return answer;
}

// Adds to `batch` what committing `answer` for prompt `seq` writes besides
// the job record: the answer, its task, its content and LSH index entries.
void AddCommit(const v1::Answer& answer, int64_t seq, StoreBatch* batch) {
  v1::Task task;
  task.set_job_id(kJobId);
  task.set_prompt_seq(seq);
  task.set_sample(0);
  task.set_state(v1::TASK_STATE_DONE);
  task.set_request_key(answer.request_key());
  task.set_attempts(1);
  batch->tasks.push_back(std::move(task));
  batch->content.emplace_back(AnswerContentHash(answer.content()),
                              answer.request_key());
  for (std::string& band : LshBandKeys(answer.minhash())) {
    batch->lsh.emplace_back(std::move(band), answer.request_key());
  }
  batch->answers.push_back(answer);
}

void BM_StoreApplyReportedAnswer(benchmark::State& state) {
  const int answers_per_batch = static_cast<int>(state.range(0));
  const bool sync = state.range(1) != 0;
  ScratchDir dir("distillery-microbench-store");
  absl::StatusOr<std::unique_ptr<Store>> store =
      OpenRocksDbStore(dir.path(), StoreOptions{.sync_writes = sync});
  if (!store.ok()) {
    state.SkipWithError(std::string(store.status().message()).c_str());
    return;
  }
  StoreBatch batch;
  batch.jobs.push_back(SampleJob());
  for (int i = 0; i < answers_per_batch; ++i) {
    AddCommit(SampleAnswer(static_cast<uint64_t>(i)), i, &batch);
  }
  int64_t bytes_per_batch = 0;
  for (const v1::Answer& a : batch.answers) {
    bytes_per_batch += static_cast<int64_t>(a.ByteSizeLong());
  }

  uint64_t n = 0;
  for (auto _ : state) {
    // New keys each time: a fresh answer, task and index entries, the job
    // record rewritten in place, as in a real commit.
    for (int i = 0; i < answers_per_batch; ++i, ++n) {
      std::string* key = batch.answers[i].mutable_request_key();
      Stamp(key, 0, n);
      batch.tasks[i].set_request_key(*key);
      batch.tasks[i].set_prompt_seq(static_cast<int64_t>(n));
      Stamp(&batch.content[i].first, 0, n);
      batch.content[i].second = *key;
      for (int b = 0; b < kMinHashBands; ++b) {
        auto& [band, owner] = batch.lsh[i * kMinHashBands + b];
        Stamp(&band, 1, n);
        owner = *key;
      }
    }
    batch.jobs[0].mutable_counters()->set_tasks_done(static_cast<int64_t>(n));
    absl::Status s = (*store)->Apply(batch);
    if (!s.ok()) {
      state.SkipWithError(std::string(s.message()).c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * answers_per_batch);
  state.SetBytesProcessed(state.iterations() * bytes_per_batch);
  state.counters["answer_bytes"] =
      static_cast<double>(bytes_per_batch / answers_per_batch);
}
BENCHMARK(BM_StoreApplyReportedAnswer)
    ->ArgNames({"answers_per_batch", "sync"})
    ->ArgsProduct({{1, 256}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace distillery::bench
