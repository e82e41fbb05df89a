// Export filters: which records of a job go into a dataset. Built from an
// ExportRequest and applied by the coordinator while it streams, so records
// left out never cross the network. Checks are split by what they need, so
// the caller can skip work early: a whole job (teacher, model), a prompt
// (metadata), an answer (finish reason, length).
#ifndef DISTILLERY_COMMON_DATASET_EXPORT_FILTER_H_
#define DISTILLERY_COMMON_DATASET_EXPORT_FILTER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "distillery/v1/client_service.pb.h"

namespace distillery {

// The finish reasons teachers report (OpenAI-compatible servers, Anthropic,
// DeepSeek), which an export may keep.
const std::vector<std::string>& KnownFinishReasons();

// Immutable once built; thread-compatible.
class ExportFilter {
 public:
  // INVALID_ARGUMENT for a bad request (negative bound, min above max,
  // empty metadata key, threshold outside [0, 1], a finish reason no
  // teacher reports: a typo would export nothing).
  static absl::StatusOr<ExportFilter> Create(const v1::ExportRequest& request);

  // Teacher and model filters. Every answer of a job has the job's teacher
  // and model (they are part of the request key), so they decide per job.
  bool MatchesJob(const v1::JobSpec& spec) const;
  bool MatchesPrompt(const v1::Prompt& prompt) const;
  bool MatchesAnswer(const v1::Answer& answer) const;
  // Whether MatchesPrompt reads the prompt, and MatchesAnswer the answer's
  // text (it always reads its finish reason and usage): a caller holding
  // them serialised parses only what is read.
  bool FiltersPrompts() const { return !metadata_.empty(); }
  bool ReadsAnswerContent() const { return min_chars_ > 0 || max_chars_ > 0; }

 private:
  ExportFilter() = default;

  std::vector<std::string> finish_reasons_;
  std::vector<std::string> teachers_;
  std::vector<std::string> models_;
  int64_t min_chars_ = 0, max_chars_ = 0, min_tokens_ = 0, max_tokens_ = 0;
  std::vector<std::pair<std::string, std::string>> metadata_;
};

// Unicode code points in valid UTF-8 `text` (bytes that do not start one,
// i.e. continuation bytes, are not counted).
int64_t CountChars(std::string_view text);

// Tokens of the answer text as the teacher reported them: completion tokens
// minus reasoning tokens (OpenAI counts reasoning inside completion).
int64_t AnswerTokens(const v1::Answer& answer);

// Parses "key=value" for --metadata.
absl::StatusOr<v1::MetadataMatch> ParseMetadataMatch(std::string_view text);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_DATASET_EXPORT_FILTER_H_
