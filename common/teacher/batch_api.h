// BatchApi: a teacher's batch API (OpenAI's Batch API over /v1/files and
// /v1/batches; Anthropic's Message Batches), at half the online price. One
// call per step of a batch's life: build its lines, create it, read it, find
// it again after a crash, cancel it, read its results. Each line's body is
// built by the same WireFormat as an online call (never streamed), so a
// task's request, its key and its answer do not depend on how it was sent;
// each result is read into the same TeacherResult an online answer gives.
//
// Calls are synchronous (they wait for the HttpClient's answer) and are made
// from a worker's batch thread, never from its lease loop. Failures come back
// as Status values the worker's batch loop can act on:
//   RESOURCE_EXHAUSTED  the provider's queue or enqueued-token limit (a 429
//                       on create, or a batch failed token_limit_exceeded):
//                       wait for running batches, then create it again
//   INVALID_ARGUMENT    the provider refused the batch itself (too large,
//                       bad custom_id, mixed models): never retried as is
//   NOT_FOUND           no such batch or file at the provider
//   UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL  transport errors, 5xx, bodies
//                       that do not parse: retry the step later
//   PERMISSION_DENIED, UNAUTHENTICATED  the key (401/403): the teacher is down
// The API key appears in no status message and no result (redact.h).
//
// Implementations: OpenAiBatchApi and AnthropicBatchApi (batch_apis.h), made
// by MakeBatchApi (teacher_factory.h) for a profile whose api has one.
// Thread-safe: immutable after construction.
#ifndef DISTILLERY_COMMON_TEACHER_BATCH_API_H_
#define DISTILLERY_COMMON_TEACHER_BATCH_API_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/teacher/teacher.h"

namespace distillery {

// The provider's limits on one batch (a profile may set lower ones:
// batch_max_requests, batch_max_bytes).
struct BatchLimits {
  int64_t max_requests = 0;
  int64_t max_bytes = 0;
};

// Where a batch is in its life, as every API's states map onto it.
enum class BatchPhase {
  kRunning,     // OpenAI validating, in_progress, finalizing; Anthropic
                // in_progress
  kCancelling,  // OpenAI cancelling, Anthropic canceling
  kEnded,       // results can be read: OpenAI completed, expired or
                // cancelled; Anthropic ended
  kFailed,      // OpenAI failed (validation): nothing ran, nothing billed
};

struct BatchInfo {
  std::string id;             // the provider's batch id
  BatchPhase phase = BatchPhase::kRunning;
  std::string provider_status;  // the provider's own word for the state
  // Request counts as the provider reports them.
  int64_t total = 0;
  int64_t succeeded = 0;
  int64_t errored = 0;      // OpenAI: failed; Anthropic: errored
  int64_t not_run = 0;      // Anthropic expired + canceled; OpenAI unknown
  int64_t created_at_s = 0;   // Unix seconds
  // OpenAI: the input, output and error files ("" when none).
  std::string input_file_id;
  std::string output_file_id;
  std::string error_file_id;
  // Anthropic: where the results are, once ended ("" before).
  std::string results_url;
  // The tag the batch was created with (OpenAI metadata
  // "distillery_batch"); "" for Anthropic, whose batches carry none.
  std::string tag;
  // kFailed: why, from the batch's errors (codes and messages, printable).
  std::string failure;
  // kFailed because of the enqueued-token limit (token_limit_exceeded): the
  // batch was fine, the queue was full. Create it again later.
  bool token_limit = false;
};

// One line of an ended batch's results, by custom_id.
struct BatchItemResult {
  std::string custom_id;
  // OK with the answer, or the failure of that one request classified as an
  // online call's would be (retryable, permanent, ...).
  TeacherResult result;
  // The request never ran (the batch expired or was cancelled first): send
  // it again; nothing was billed. `result` is then a retryable failure.
  bool not_run = false;
};

class BatchApi {
 public:
  virtual ~BatchApi() = default;

  // The API's name for messages ("OpenAI", "Anthropic").
  virtual std::string_view api_name() const = 0;
  // The provider's own limits on one batch.
  virtual BatchLimits DefaultLimits() const = 0;
  // Whether `custom_id` is one the API takes. Both APIs take
  // ^[a-zA-Z0-9_-]{1,64}$ (OpenAI takes more, but Distillery's ids always
  // fit the stricter rule).
  static bool ValidCustomId(std::string_view custom_id);

  // One request line, without its trailing newline, exactly as it will be
  // sent: its size is what counts towards max_bytes. INVALID_ARGUMENT for a
  // request the API cannot carry (BuildBody's errors) or a bad custom_id.
  virtual absl::StatusOr<std::string> BuildLine(
      std::string_view custom_id, const TeacherRequest& request) const = 0;

  // Creates a batch of `lines` (from BuildLine, all for `model`), tagged
  // with `tag` where the API keeps one. OpenAI: uploads the file, then
  // creates the batch (a file left behind by a failure is harmless).
  // Returns the batch as created.
  virtual absl::StatusOr<BatchInfo> Create(const std::vector<std::string>& lines,
                                           std::string_view model,
                                           std::string_view tag) = 0;

  // The batch as the provider has it now.
  virtual absl::StatusOr<BatchInfo> Get(std::string_view batch_id) = 0;

  // After a crash between asking for a batch and recording its id: the
  // batch created with `tag` (OpenAI: its metadata; Anthropic: none, so the
  // most recent batch of `request_count` requests not in `exclude`) at or
  // after `created_after_s`, through the list endpoint; nullopt when there
  // is none. Reads pages until batches older than `created_after_s`.
  virtual absl::StatusOr<std::optional<BatchInfo>> Find(
      std::string_view tag, int64_t created_after_s, int64_t request_count,
      const std::vector<std::string>& exclude) = 0;

  // Asks the provider to cancel the batch; what finished stays in its
  // results. OK when it is already ended.
  virtual absl::Status Cancel(std::string_view batch_id) = 0;

  // Every line of an ended batch's results (OpenAI: its output and error
  // files), in the order they came. A line that cannot be read is left out
  // (its task is then missing from the results, and sent again).
  virtual absl::StatusOr<std::vector<BatchItemResult>> Results(
      const BatchInfo& batch) = 0;
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_TEACHER_BATCH_API_H_
