// The coordinator's whole report path: Coordinator::Report of a worker's
// batch of results on a real RocksDB store, as the gRPC service calls it.
// Per result that is a lease lookup, a task read, the pay-once check, the
// content hash and its index read, the MinHash signature and 16 LSH bucket
// reads, one Store::Apply, and the metrics, all under the coordinator's one
// mutex.
//
// Set-up (not timed): a job of kPromptsPerJob prompts is submitted, 256
// tasks are leased and their results built, each with a distinct answer of
// ~900 bytes, a ~600-byte trace and the chat completion body as raw_body.
// When a job runs out of tasks, another is submitted. Only Report is timed.
#include <memory>
#include <string>
#include <vector>

#include "bench/micro/bench_inputs.h"
#include "benchmark/benchmark.h"
#include "common/base/clock.h"
#include "common/config/teachers.h"
#include "common/store/store.h"
#include "nlohmann/json.hpp"
#include "services/coordinator/coordinator.h"

namespace distillery::bench {
namespace {

constexpr int kPromptsPerJob = 4096;
constexpr int kLinesPerAddLines = 1024;

TeacherProfile SimProfile() {
  TeacherProfile profile;
  profile.name = std::string(kTeacherName);
  profile.base_url = "http://127.0.0.1:9/v1";
  // DeepSeek-like prices, so every commit computes a cost.
  profile.pricing["*"] = ModelPrice{0.55, 0.14, 2.19};
  return profile;
}

v1::JobSpec SampleSpec() {
  v1::JobSpec spec;
  spec.set_teacher(std::string(kTeacherName));
  spec.set_model(std::string(kModelName));
  spec.set_samples(1);
  *spec.mutable_params() = SampleParams();
  spec.set_system_prompt(std::string(kSystemPrompt));
  spec.set_source("prompts/math-train.jsonl");
  return spec;
}

// A coordinator on a store in a scratch directory, with one registered
// worker, that submits jobs of distinct prompts as they are needed.
class ReportBench {
 public:
  ReportBench() : dir_("distillery-microbench-coordinator") {}

  // False (with `error` set) when the store cannot be opened.
  bool Start(std::string* error) {
    absl::StatusOr<std::unique_ptr<Store>> store =
        OpenRocksDbStore(dir_.path());
    if (!store.ok()) {
      *error = std::string(store.status().message());
      return false;
    }
    store_ = std::move(*store);
    coordinator_ = std::make_unique<Coordinator>(
        *store_, std::vector<TeacherProfile>{SimProfile()}, clock_);
    if (absl::Status s = coordinator_->Recover(); !s.ok()) {
      *error = std::string(s.message());
      return false;
    }
    v1::RegisterRequest request;
    request.set_name("bench-worker");
    request.add_teachers(std::string(kTeacherName));
    worker_id_ = coordinator_->Register(request).worker_id();
    return true;
  }

  // Leases `count` tasks, submitting new jobs when the running ones have
  // none left, and returns a report with a distinct answer for each.
  absl::StatusOr<v1::ReportRequest> LeaseAndAnswer(int count) {
    v1::ReportRequest report;
    report.set_worker_id(worker_id_);
    while (report.results_size() < count) {
      v1::LeaseRequest lease;
      lease.set_worker_id(worker_id_);
      lease.set_max_tasks(count - report.results_size());
      lease.add_teachers(std::string(kTeacherName));
      absl::StatusOr<v1::LeaseResponse> leased = coordinator_->Lease(lease);
      if (!leased.ok()) return leased.status();
      if (leased->tasks().empty()) {
        if (absl::Status s = SubmitJob(); !s.ok()) return s;
        continue;
      }
      for (const v1::LeasedTask& task : leased->tasks()) {
        *report.add_results() = Answered(task);
      }
    }
    return report;
  }

  Coordinator& coordinator() { return *coordinator_; }

 private:
  absl::Status SubmitJob() {
    absl::StatusOr<std::unique_ptr<Submission>> submission =
        coordinator_->BeginSubmission(SampleSpec());
    if (!submission.ok()) return submission.status();
    google::protobuf::RepeatedPtrField<std::string> lines;
    for (int i = 0; i < kPromptsPerJob; ++i) {
      nlohmann::json line = {{"prompt", PromptText(next_prompt_seed_++)}};
      *lines.Add() = line.dump();
      if (lines.size() == kLinesPerAddLines || i + 1 == kPromptsPerJob) {
        if (absl::Status s = (*submission)->AddLines(lines); !s.ok()) return s;
        lines.Clear();
      }
    }
    absl::StatusOr<v1::Job> job = (*submission)->Commit();
    return job.status();
  }

  // A successful result for `task` with an answer no other task has.
  v1::TaskResult Answered(const v1::LeasedTask& task) {
    const uint64_t seed = next_answer_seed_++;
    v1::TaskResult result;
    result.set_job_id(task.job_id());
    result.set_prompt_seq(task.prompt_seq());
    result.set_sample(task.sample());
    result.set_request_key(task.request_key());
    result.set_lease_id(task.lease_id());
    result.set_attempts(1);
    v1::Answer* answer = result.mutable_answer();
    answer->set_content(AnswerText(seed));
    answer->set_reasoning(ReasoningText(seed));
    answer->set_raw_body(
        ChatCompletionBody(answer->content(), answer->reasoning()));
    answer->set_finish_reason("stop");
    answer->mutable_usage()->set_prompt_tokens(142);
    answer->mutable_usage()->set_completion_tokens(388);
    answer->mutable_usage()->set_reasoning_tokens(151);
    answer->mutable_usage()->set_cached_tokens(64);
    answer->set_provider_id("chatcmpl-b7d1e2f0a9c84e5d");
    answer->set_received_ms(clock_.WallMillis());
    answer->set_latency_ms(5400);
    return result;
  }

  ScratchDir dir_;
  FakeClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::string worker_id_;
  uint64_t next_prompt_seed_ = 1;
  uint64_t next_answer_seed_ = 1;
};

void BM_CoordinatorReport(benchmark::State& state) {
  const int results_per_report = static_cast<int>(state.range(0));
  ReportBench bench;
  std::string error;
  if (!bench.Start(&error)) {
    state.SkipWithError(error.c_str());
    return;
  }
  int64_t report_bytes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    absl::StatusOr<v1::ReportRequest> report =
        bench.LeaseAndAnswer(results_per_report);
    if (!report.ok()) {
      state.SkipWithError(std::string(report.status().message()).c_str());
      break;
    }
    report_bytes += static_cast<int64_t>(report->ByteSizeLong());
    state.ResumeTiming();

    absl::StatusOr<v1::ReportResponse> response =
        bench.coordinator().Report(*report);
    if (!response.ok() || response->accepted() != results_per_report) {
      state.SkipWithError(
          response.ok() ? "a result was ignored"
                        : std::string(response.status().message()).c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * results_per_report);
  state.SetBytesProcessed(report_bytes);
  state.counters["results_per_report"] = results_per_report;
}
BENCHMARK(BM_CoordinatorReport)
    ->ArgName("results_per_report")
    ->Arg(256)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace distillery::bench
