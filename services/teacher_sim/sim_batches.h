// SimBatches: teacher-sim's two batch APIs, faithful enough that the batch
// path is tested on loopback without a real provider (../shared/
// TEACHER_APIS.md has the wire facts). Routes:
//   POST /v1/files                    upload (multipart/form-data, purpose
//                                     "batch"): a file object
//   GET  /v1/files/{id}/content       a file's bytes (input, output, error)
//   POST /v1/batches                  OpenAI create: validating, then
//                                     in_progress, or failed with errors
//   GET  /v1/batches[?limit&after]    newest first; GET /v1/batches/{id}
//   POST /v1/batches/{id}/cancel
//   POST /v1/messages/batches         Anthropic create: validated at once
//                                     (413 request_too_large, 400 for a bad
//                                     or repeated custom_id, 429 when the
//                                     enqueued-token limit is full)
//   GET  /v1/messages/batches[?limit&after_id]; GET .../{id}
//   POST /v1/messages/batches/{id}/cancel; GET .../{id}/results (JSONL)
// The caller (SimHandler) has checked the key and, for Anthropic, the
// anthropic-version header.
//
// Time is the injected clock's, and processing is lazy: a batch's state is
// worked out from the clock whenever it is read. A batch validates for
// `validate`, then its requests run after `latency`, `requests_per_second`
// at a time (0: all at once); it ends completed once all ran, or expired at
// `expire` after creation with what ran by then (the rest "batch_expired" /
// "expired"), or cancelled `cancel` after a cancel with what ran before it.
// Each request is answered by the SimBatchRunner (the online answer to the
// same body, counted in the online stats), or, at `error_rate`, by a 500;
// results come in a shuffled order. An OpenAI file that breaks a limit (too
// many requests or bytes, mixed models, a repeated custom_id, a bad line)
// is accepted and its batch then fails validation with `errors`. A request
// counts against `enqueued_token_limit` (0: none) as its body bytes / 4 plus
// its max_tokens, summed over unfinished batches (per model for OpenAI).
//
// Thread-safe (an annotated absl::Mutex).
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_SIM_BATCHES_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_SIM_BATCHES_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/base/clock.h"
#include "services/teacher_sim/sim_http.h"

namespace distillery::teacher_sim {

struct SimBatchOptions {
  int64_t openai_max_requests = 50'000;
  int64_t openai_max_bytes = 209'715'200;
  int64_t anthropic_max_requests = 100'000;
  int64_t anthropic_max_bytes = 268'435'456;
  int64_t max_upload_bytes = 335'544'320;
  int64_t enqueued_token_limit = 0;
  Duration validate{0};
  double requests_per_second = 0;
  Duration latency = std::chrono::seconds(1);
  Duration expire = std::chrono::hours(24);
  Duration cancel = std::chrono::milliseconds(200);
  double error_rate = 0;
  uint64_t seed = 1;
};

// The answer one request of a batch gets: what the online endpoint would
// have answered (status and JSON body).
struct SimBatchAnswer {
  int status = 200;
  std::string body;
};
// Answers the request `body` (a Chat Completions body, or a Messages one
// when `anthropic`).
using SimBatchRunner =
    std::function<SimBatchAnswer(bool anthropic, std::string_view body)>;

class SimBatches {
 public:
  // `clock` must outlive this.
  SimBatches(SimBatchOptions options, Clock& clock, SimBatchRunner runner);
  ~SimBatches();

  // Whether `path` is one of the routes above (OpenAI's or Anthropic's).
  static bool IsOpenAiPath(std::string_view path);
  static bool IsAnthropicPath(std::string_view path);

  SimResponse Handle(const SimRequest& request, std::string_view path);

  // {"created":N,"failed_validation":{code:N},"rejected":{reason:N},
  //  "completed":N,"cancelled":N,"expired":N,"requests_succeeded":N,
  //  "requests_errored":N,"requests_expired":N,"requests_cancelled":N,
  //  "open":N}
  std::string RenderStatsJson();

 private:
  struct Batch;
  struct Counters {
    int64_t created = 0;
    std::map<std::string, int64_t> failed_validation;
    std::map<std::string, int64_t> rejected;
    int64_t completed = 0, cancelled = 0, expired = 0;
    int64_t requests_succeeded = 0, requests_errored = 0;
    int64_t requests_expired = 0, requests_cancelled = 0;
  };

  SimResponse Upload(const SimRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  SimResponse FileContent(std::string_view file_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  SimResponse CreateOpenAi(const SimRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  SimResponse CreateAnthropic(const SimRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  SimResponse List(const SimRequest& request, bool anthropic)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  SimResponse Cancel(Batch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  SimResponse Results(const Batch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Batch* Find(std::string_view id, bool anthropic)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Brings `batch` to where the clock says it is; runs its requests when it
  // ends.
  void Advance(Batch& batch, int64_t now_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AdvanceAll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Finish(Batch& batch, std::string_view status, int64_t ran,
              int64_t now_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t RanBy(const Batch& batch, int64_t t_ms) const;
  // Tokens of unfinished batches (of `model` when not empty).
  int64_t EnqueuedTokens(std::string_view model) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NewId(std::string_view prefix) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string Render(const Batch& batch) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SimBatchOptions options_;
  Clock& clock_;
  const SimBatchRunner runner_;
  const uint64_t nonce_;

  absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::string> files_ ABSL_GUARDED_BY(mu_);
  // In creation order; ids are unique across both APIs.
  std::vector<std::unique_ptr<Batch>> batches_ ABSL_GUARDED_BY(mu_);
  Counters counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_SIM_BATCHES_H_
