// The BatchApi implementations (batch_api.h): OpenAiBatchApi (OpenAI's Batch
// API: a JSONL file uploaded to /files, a batch over /batches) and
// AnthropicBatchApi (Message Batches at /v1/messages/batches). Each line's
// body is built, and each result read, by the profile's WireFormat made
// without streaming (MakeWireFormat(profile, /*stream=*/false)), so a batch
// answer is the same TeacherResult an online call gives; the HTTP plumbing
// (headers, timeouts, failure classification, redaction) is shared in
// batch_http.h. MakeBatchApi (teacher_factory.h) picks one for a profile.
//
// Thread-safe: immutable after construction. Every call blocks its thread
// until the HttpClient answers, so it must not be made on the client's own
// event-loop thread.
#ifndef DISTILLERY_COMMON_TEACHER_BATCH_APIS_H_
#define DISTILLERY_COMMON_TEACHER_BATCH_APIS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/base/clock.h"
#include "common/http/http_client.h"
#include "common/teacher/batch_api.h"
#include "common/teacher/http_teacher.h"
#include "common/teacher/wire_format.h"

namespace distillery {

// The response cap for downloading a batch's results (OpenAI's output and
// error files, Anthropic's results_url): 1 GiB. A result file holds every
// answer of up to 50,000 (OpenAI) or 100,000 (Anthropic) requests, far past
// an online call's cap; a worker that sends long-answer batches must keep
// batch_max_requests low enough for its results to fit under this.
inline constexpr size_t kMaxBatchResultsBytes = size_t{1} << 30;
// The least total timeout for an upload or a results download; the
// profile's total_timeout applies when it is longer.
inline constexpr Duration kMinBatchTransferTimeout = std::chrono::minutes(30);
// Batch list pages: how many batches a page asks for, and how many pages
// Find reads at most (a server that never stops paging cannot hold it).
inline constexpr int kBatchListPageSize = 100;
inline constexpr int kMaxBatchListPages = 200;

class BatchHttp;

// Precondition for both: `format` is the API's format (OpenAiChatFormat,
// AnthropicMessagesFormat) built with stream off, not null. `options` are
// checked by ValidateHttpTeacherOptions and format->Validate(): with bad
// ones every call fails INVALID_ARGUMENT. `http` must outlive the API.
class OpenAiBatchApi : public BatchApi {
 public:
  OpenAiBatchApi(HttpClient& http, std::shared_ptr<const WireFormat> format,
                 HttpTeacherOptions options);
  ~OpenAiBatchApi() override;

  std::string_view api_name() const override { return "OpenAI"; }
  // 50,000 requests, 200 MB.
  BatchLimits DefaultLimits() const override;
  // {"custom_id","method":"POST","url":"/v1/chat/completions","body"}.
  absl::StatusOr<std::string> BuildLine(
      std::string_view custom_id, const TeacherRequest& request) const override;
  // POST {base_url}/files (multipart: purpose=batch, the lines as
  // distillery-<tag>.jsonl), then POST {base_url}/batches with metadata
  // {"distillery_batch": tag}. INVALID_ARGUMENT for no lines or a tag over
  // 512 bytes (OpenAI's limit on a metadata value).
  absl::StatusOr<BatchInfo> Create(const std::vector<std::string>& lines,
                                   std::string_view model,
                                   std::string_view tag) override;
  absl::StatusOr<BatchInfo> Get(std::string_view batch_id) override;
  // Matches metadata.distillery_batch == tag only (request_count and
  // exclude are not needed to tell batches apart; an id in `exclude` is
  // still skipped).
  absl::StatusOr<std::optional<BatchInfo>> Find(
      std::string_view tag, int64_t created_after_s, int64_t request_count,
      const std::vector<std::string>& exclude) override;
  absl::Status Cancel(std::string_view batch_id) override;
  // The output file's lines, then the error file's.
  absl::StatusOr<std::vector<BatchItemResult>> Results(
      const BatchInfo& batch) override;

 private:
  absl::StatusOr<std::string> Download(std::string_view file_id);

  const std::unique_ptr<const BatchHttp> http_;
};

class AnthropicBatchApi : public BatchApi {
 public:
  AnthropicBatchApi(HttpClient& http, std::shared_ptr<const WireFormat> format,
                    HttpTeacherOptions options);
  ~AnthropicBatchApi() override;

  std::string_view api_name() const override { return "Anthropic"; }
  // 100,000 requests, 256 MB.
  BatchLimits DefaultLimits() const override;
  // {"custom_id","params"}; Create joins the lines into {"requests":[...]}.
  absl::StatusOr<std::string> BuildLine(
      std::string_view custom_id, const TeacherRequest& request) const override;
  // POST {base_url}/v1/messages/batches. `model` and `tag` are not sent
  // (each request names its model; batches carry no metadata).
  absl::StatusOr<BatchInfo> Create(const std::vector<std::string>& lines,
                                   std::string_view model,
                                   std::string_view tag) override;
  absl::StatusOr<BatchInfo> Get(std::string_view batch_id) override;
  absl::StatusOr<std::optional<BatchInfo>> Find(
      std::string_view tag, int64_t created_after_s, int64_t request_count,
      const std::vector<std::string>& exclude) override;
  absl::Status Cancel(std::string_view batch_id) override;
  // GET results_url (with the auth headers). FAILED_PRECONDITION when the
  // batch has no results_url yet (not ended).
  absl::StatusOr<std::vector<BatchItemResult>> Results(
      const BatchInfo& batch) override;

 private:
  // {base_url}/v1/messages/batches.
  std::string BatchesUrl() const;

  const std::unique_ptr<const BatchHttp> http_;
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_TEACHER_BATCH_APIS_H_
